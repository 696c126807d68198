//! `pull`, `push`, `manifest inspect` (and `login`/`logout`, which wait for the registry client's
//! credential store) with docker's output lines.

use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;

use anyhow::{bail, Result};
use skiff_image::names::{familiar, Name};
use skiff_image::pull::{self, Progress};
use skiff_image::{Platform, Store};

use crate::images::{resolve, LoginArgs, LogoutArgs, ManifestInspectArgs, PullArgs, PushArgs};
use crate::transport::HttpRepo;

fn is_loopback(domain: &str) -> bool {
    let host = domain.rsplit_once(':').map(|x| x.0).unwrap_or(domain);
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

fn transport(n: &Name, insecure: bool) -> Result<HttpRepo> {
    if !(insecure || is_loopback(&n.domain)) {
        bail!(
            "registry {}: HTTPS registries and authentication need the registry client, which this build does not have yet; plain-HTTP loopback or --insecure registries work",
            n.domain
        );
    }
    Ok(HttpRepo::new(&n.domain, &n.path))
}

fn short(d: &skiff_image::Digest) -> String {
    d.short().to_string()
}

/// `skiff pull`.
pub fn pull(store: &Store, a: &PullArgs) -> Result<i32> {
    if a.all_tags {
        bail!("--all-tags is not supported yet");
    }
    let n = Name::parse(&a.name)?;
    let reference = n
        .digest
        .clone()
        .or_else(|| n.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let platform = match &a.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let t = transport(&n, a.insecure)?;
    let out = Mutex::new(io::stdout());
    let tty = io::stdout().is_terminal();
    let say = |s: String| {
        if !a.quiet {
            if let Ok(mut o) = out.lock() {
                let _ = writeln!(o, "{s}");
            }
        }
    };
    say(format!("{reference}: Pulling from {}", n.path));
    let progress = |p: Progress| match p {
        Progress::Waiting(d) => say(format!("{}: Pulling fs layer", short(&d))),
        Progress::AlreadyExists(d) => say(format!("{}: Already exists", short(&d))),
        Progress::Downloading(d, done, total) if tty => say(format!(
            "{}: Downloading {:.1}MB/{:.1}MB",
            short(&d),
            done as f64 / 1e6,
            total as f64 / 1e6
        )),
        Progress::Downloading(..) => {}
        Progress::Retrying(d, off, why) => {
            say(format!("{}: Retrying from byte {off} ({why})", short(&d)))
        }
        Progress::PullComplete(d) => say(format!("{}: Pull complete", short(&d))),
        Progress::Pushed(_) | Progress::LayerExists(_) => {}
    };
    let r = pull::pull(store, &t, &n.repo(), &reference, &platform, &progress)?;
    let shown = if reference.starts_with("sha256:") {
        format!("{}@{reference}", familiar(&n.repo()))
    } else {
        format!("{}:{reference}", familiar(&n.repo()))
    };
    say(format!("Digest: {}", r.digest));
    if r.downloaded {
        say(format!("Status: Downloaded newer image for {shown}"));
    } else {
        say(format!("Status: Image is up to date for {shown}"));
    }
    let full = if reference.starts_with("sha256:") {
        format!("{}@{reference}", n.repo())
    } else {
        format!("{}:{reference}", n.repo())
    };
    println!("{full}");
    Ok(0)
}

/// `skiff push`.
pub fn push(store: &Store, a: &PushArgs) -> Result<i32> {
    if a.all_tags {
        bail!("--all-tags is not supported yet");
    }
    let n = Name::parse(&a.name)?;
    if n.digest.is_some() {
        bail!("cannot push a digest reference");
    }
    let tag = n.tag.clone().unwrap_or_else(|| "latest".into());
    let img = resolve(store, &format!("{}:{tag}", n.repo()))?;
    let t = transport(&n, a.insecure)?;
    let out = Mutex::new(io::stdout());
    let say = |s: String| {
        if !a.quiet {
            if let Ok(mut o) = out.lock() {
                let _ = writeln!(o, "{s}");
            }
        }
    };
    say(format!(
        "The push refers to repository [{}]",
        familiar(&n.repo())
    ));
    let progress = |p: Progress| match p {
        Progress::Waiting(d) => say(format!("{}: Preparing", short(&d))),
        Progress::Pushed(d) => say(format!("{}: Pushed", short(&d))),
        Progress::LayerExists(d) => say(format!("{}: Layer already exists", short(&d))),
        _ => {}
    };
    let (digest, size) = pull::push(store, &t, &img, &n.repo(), &tag, &progress)?;
    say(format!("{tag}: digest: {digest} size: {size}"));
    if a.quiet {
        println!("{}:{tag}", familiar(&n.repo()));
    }
    Ok(0)
}

/// `skiff login`.
pub fn login(_a: &LoginArgs) -> Result<i32> {
    bail!("login needs the registry client's credential store, which this build does not have yet")
}

/// `skiff logout`.
pub fn logout(_a: &LogoutArgs) -> Result<i32> {
    bail!("logout needs the registry client's credential store, which this build does not have yet")
}

/// `skiff manifest inspect`.
pub fn manifest_inspect(a: &ManifestInspectArgs) -> Result<i32> {
    use skiff_image::pull::Fetcher;
    let n = Name::parse(&a.name)?;
    let reference = n
        .digest
        .clone()
        .or_else(|| n.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let t = transport(&n, a.insecure)?;
    let (bytes, _mt) = t.get_manifest(&reference)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}
