//! `pull`, `push`, `manifest inspect`, `login` and `logout` with docker's output: per-layer lines
//! updated in place with progress bars on a terminal, one plain line per state change otherwise.

use std::collections::HashMap;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skiff_image::credentials::{server_key, Credential, DockerConfig, Stored};
use skiff_image::names::{familiar, Name, DEFAULT_DOMAIN};
use skiff_image::pull::{self, Fetcher, Progress};
use skiff_image::registry::{Client, RegistryConfig};
use skiff_image::spec::{self, Descriptor, Document, ImageConfig};
use skiff_image::time::human_size_precision;
use skiff_image::{Digest, Platform, Store};

use crate::images::{resolve, LoginArgs, LogoutArgs, ManifestInspectArgs, PullArgs, PushArgs};

/// A registry client with the configured mirrors/insecure registries and docker's credentials.
fn client() -> Result<Client> {
    let config = RegistryConfig::load()?;
    let docker = DockerConfig::load()?;
    Ok(Client::new(config, docker))
}

fn short(d: &Digest) -> String {
    d.short().to_string()
}

/// Docker's progress bar: `[=====>      ]  1.049MB/2.813MB`.
fn bar(done: u64, total: u64) -> String {
    if total == 0 {
        return human_size_precision(done, 4);
    }
    let width = 50usize;
    let filled = ((done.min(total) as f64 / total as f64) * width as f64) as usize;
    let (eq, sp) = if filled >= width {
        (width, 0)
    } else {
        (filled, width - filled - 1)
    };
    let tip = if filled >= width { "" } else { ">" };
    format!(
        "[{}{tip}{}] {:>8}/{}",
        "=".repeat(eq),
        " ".repeat(sp),
        human_size_precision(done, 4),
        human_size_precision(total, 4)
    )
}

fn term_width() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize struct we pass; a failure leaves it zeroed.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: fd 1 is our stdout; the kernel writes at most sizeof(winsize) bytes into `ws`.
    let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    if r == 0 && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        80
    }
}

/// Docker-style status output. On a terminal each layer owns a line that is rewritten in place;
/// otherwise every state change is one plain line and byte counts are not shown.
struct Status {
    quiet: bool,
    tty: bool,
    width: usize,
    inner: Mutex<StatusInner>,
}

#[derive(Default)]
struct StatusInner {
    order: Vec<String>,
    last_draw: HashMap<String, Instant>,
}

impl Status {
    fn new(quiet: bool) -> Status {
        let tty = io::stdout().is_terminal();
        Status {
            quiet,
            tty,
            width: if tty { term_width() } else { 0 },
            inner: Mutex::new(StatusInner::default()),
        }
    }

    /// Byte progress as docker draws it: a bar with sizes on terminals at least 110 columns wide,
    /// the sizes alone on narrower ones.
    fn progress(&self, done: u64, total: u64) -> String {
        if self.width >= 110 || total == 0 {
            bar(done, total)
        } else {
            format!(
                "{:>8}/{}",
                human_size_precision(done, 4),
                human_size_precision(total, 4)
            )
        }
    }

    /// A line that is not a layer's.
    fn say(&self, s: &str) {
        if self.quiet {
            return;
        }
        let _guard = self.inner.lock();
        let mut o = io::stdout().lock();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    }

    /// Sets the status of layer `id`; `progress` lines are drawn only on a terminal, at most
    /// ten times a second per layer.
    fn layer(&self, id: &str, text: &str, progress: bool) {
        if self.quiet || (progress && !self.tty) {
            return;
        }
        let Ok(mut st) = self.inner.lock() else {
            return;
        };
        let now = Instant::now();
        if progress {
            if let Some(t) = st.last_draw.get(id) {
                if now.duration_since(*t) < Duration::from_millis(100) {
                    return;
                }
            }
        }
        if progress {
            st.last_draw.insert(id.to_string(), now);
        }
        let mut line = format!("{id}: {text}");
        let mut o = io::stdout().lock();
        if !self.tty {
            let _ = writeln!(o, "{line}");
            return;
        }
        if self.width > 1 && line.chars().count() >= self.width {
            line = line.chars().take(self.width - 1).collect();
        }
        match st.order.iter().position(|x| x == id) {
            None => {
                st.order.push(id.to_string());
                let _ = writeln!(o, "\x1b[2K\r{line}");
            }
            Some(i) => {
                let up = st.order.len() - i;
                let _ = write!(o, "\x1b[{up}A\x1b[2K\r{line}\r\x1b[{up}B");
            }
        }
        let _ = o.flush();
    }
}

/// `skiff pull`.
pub fn pull(store: &Store, a: &PullArgs) -> Result<i32> {
    if !a.disable_content_trust {
        bail!("content trust (--disable-content-trust=false) is not supported");
    }
    let n = Name::parse(&a.name)?;
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let client = client()?;
    let repo = client.repository(&n, false, a.insecure);
    let st = Status::new(a.quiet);
    if !a.all_tags {
        let reference = n
            .digest
            .clone()
            .or_else(|| n.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let downloaded = pull_one(store, &repo, &n, &reference, platform.as_ref(), &st, a)?;
        let sep = if reference.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        let shown = format!("{}{sep}{reference}", familiar(&n.repo()));
        st.say(&if downloaded {
            format!("Status: Downloaded newer image for {shown}")
        } else {
            format!("Status: Image is up to date for {shown}")
        });
        println!("{}{sep}{reference}", n.repo());
        return Ok(0);
    }
    if n.tag.is_some() || n.digest.is_some() {
        bail!("tag can't be used with --all-tags/-a");
    }
    let tags = repo
        .tags()
        .with_context(|| format!("list tags of {}", n.repo()))?;
    let mut downloaded = false;
    for tag in &tags {
        downloaded |= pull_one(store, &repo, &n, tag, platform.as_ref(), &st, a)?;
    }
    let shown = familiar(&n.repo());
    st.say(&if downloaded {
        format!("Status: Downloaded newer image for {shown}")
    } else {
        format!("Status: Image is up to date for {shown}")
    });
    println!("{}", n.repo());
    Ok(0)
}

/// Pulls one tag or digest with docker's per-layer lines; true when something was downloaded.
fn pull_one(
    store: &Store,
    repo: &skiff_image::registry::Repository<'_>,
    n: &Name,
    reference: &str,
    platform: Option<&Platform>,
    st: &Status,
    a: &PullArgs,
) -> Result<bool> {
    // Said once the manifest resolved (the first layer event), as docker does.
    let header = std::sync::Once::new();
    let say_header =
        || header.call_once(|| st.say(&format!("{reference}: Pulling from {}", n.path)));
    let progress = |p: Progress| {
        say_header();
        layer_event(st, p)
    };
    let r = pull::pull(store, repo, &n.repo(), reference, platform, &progress)
        .with_context(|| format!("pull {}", a.name))?;
    say_header();
    st.say(&format!("Digest: {}", r.digest));
    Ok(r.downloaded)
}

/// Shows one layer event of a pull.
fn layer_event(st: &Status, p: Progress) {
    match p {
        Progress::Waiting(d) => st.layer(&short(&d), "Pulling fs layer", false),
        Progress::AlreadyExists(d) => st.layer(&short(&d), "Already exists", false),
        Progress::Downloading(d, done, total) => st.layer(
            &short(&d),
            &format!("Downloading {}", st.progress(done, total)),
            true,
        ),
        Progress::Retrying(d, off, why) => st.layer(
            &short(&d),
            &format!("Retrying from byte {off} ({why})"),
            false,
        ),
        Progress::DownloadComplete(d) => st.layer(&short(&d), "Download complete", false),
        Progress::PullComplete(d) => st.layer(&short(&d), "Pull complete", false),
        Progress::Pushed(_) | Progress::LayerExists(_) => {}
    }
}

/// `skiff push`.
pub fn push(store: &Store, a: &PushArgs) -> Result<i32> {
    if !a.disable_content_trust {
        bail!("content trust (--disable-content-trust=false) is not supported");
    }
    let n = Name::parse(&a.name)?;
    if n.digest.is_some() {
        bail!("cannot push a digest reference");
    }
    let tags: Vec<String> = if a.all_tags {
        if n.tag.is_some() {
            bail!("tag can't be used with --all-tags/-a");
        }
        let t = store.repo_tags(&n.repo())?;
        if t.is_empty() {
            bail!(
                "An image does not exist locally with the tag: {}",
                familiar(&n.repo())
            );
        }
        t
    } else {
        vec![n.tag.clone().unwrap_or_else(|| "latest".into())]
    };
    let client = client()?;
    let repo = client.repository(&n, true, a.insecure);
    let st = Status::new(a.quiet);
    st.say(&format!(
        "The push refers to repository [{}]",
        familiar(&n.repo())
    ));
    for tag in &tags {
        push_one(store, &repo, &n, tag, &st, a)?;
    }
    Ok(0)
}

/// Pushes one tag with docker's per-layer lines.
fn push_one(
    store: &Store,
    repo: &skiff_image::registry::Repository<'_>,
    n: &Name,
    tag: &str,
    st: &Status,
    a: &PushArgs,
) -> Result<()> {
    let img = resolve(store, &format!("{}:{tag}", n.repo()))?;
    let progress = |p: Progress| match p {
        Progress::Waiting(d) => st.layer(&short(&d), "Preparing", false),
        Progress::Pushed(d) => st.layer(&short(&d), "Pushed", false),
        Progress::LayerExists(d) => st.layer(&short(&d), "Layer already exists", false),
        Progress::Retrying(d, _, why) => st.layer(&short(&d), &format!("Retrying ({why})"), false),
        _ => {}
    };
    let (digest, size) = pull::push(store, repo, &img, &n.repo(), tag, &progress)
        .with_context(|| format!("push {}:{tag}", familiar(&n.repo())))?;
    st.say(&format!("{tag}: digest: {digest} size: {size}"));
    if a.quiet {
        println!("{}:{tag}", familiar(&n.repo()));
    }
    Ok(())
}

/// The registry domain a login/logout SERVER argument names (`https://h:5000/v2/` → `h:5000`,
/// Docker Hub's names → `docker.io`).
fn server_domain(server: Option<&str>) -> String {
    let Some(s) = server.filter(|s| !s.is_empty()) else {
        return DEFAULT_DOMAIN.to_string();
    };
    let host = skiff_image::credentials::hostname_of(s);
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DEFAULT_DOMAIN.to_string(),
        h => h.to_string(),
    }
}

/// Reads one line from the terminal, without echo when `secret`.
fn prompt(label: &str, secret: bool) -> Result<String> {
    eprint!("{label}");
    io::stderr().flush().ok();
    let fd = 0;
    // SAFETY: a zeroed termios is a valid buffer for tcgetattr to fill.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd 0 is a terminal (checked by the caller); `old` is a valid termios buffer.
    let have = secret && unsafe { libc::tcgetattr(fd, &mut old) } == 0;
    if have {
        let mut t = old;
        t.c_lflag &= !libc::ECHO;
        // SAFETY: `t` is the terminal's own settings with echo cleared.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
    }
    let mut line = String::new();
    let r = io::stdin().lock().read_line(&mut line);
    if have {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
        eprintln!();
    }
    r.context("read from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `skiff login`.
pub fn login(a: &LoginArgs) -> Result<i32> {
    let domain = server_domain(a.server.as_deref());
    let key = server_key(&domain);
    if a.password.is_some() && a.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    if a.password_stdin && a.username.is_none() {
        bail!("Must provide --username with --password-stdin");
    }
    let mut docker = DockerConfig::load()?;
    let tty = io::stdin().is_terminal();
    let username = match &a.username {
        Some(u) => u.trim().to_string(),
        None => {
            if !tty {
                bail!("Cannot perform an interactive login from a non TTY device");
            }
            let old = docker.get(&key).ok().flatten().map(|c| c.username);
            let label = match &old {
                Some(u) if !u.is_empty() && u != "<token>" => format!("Username ({u}): "),
                _ => "Username: ".into(),
            };
            let u = prompt(&label, false)?;
            match (u.is_empty(), old) {
                (true, Some(o)) => o,
                _ => u,
            }
        }
    };
    if username.is_empty() {
        bail!("Error: Non-null Username Required");
    }
    let password = if let Some(p) = &a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else if a.password_stdin {
        let mut s = String::new();
        io::stdin()
            .read_to_string(&mut s)
            .context("read the password from stdin")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        if !tty {
            bail!("Cannot perform an interactive login from a non TTY device");
        }
        prompt("Password: ", true)?
    };
    if password.is_empty() {
        bail!("Error: Password Required");
    }
    let cred = Credential {
        username,
        secret: password,
    };
    let client = client()?;
    if let Err(e) = client.login(&domain, a.insecure, &cred) {
        eprintln!("skiff: login to {domain}: {e}");
        return Ok(1);
    }
    match docker
        .store(&key, &cred)
        .with_context(|| format!("store credentials for {key}"))?
    {
        Stored::File(p) => eprintln!(
            "WARNING! Your password will be stored unencrypted in {}.\nConfigure a credential helper to remove this warning.\n",
            p.display()
        ),
        Stored::Helper(_) => {}
    }
    println!("Login Succeeded");
    Ok(0)
}

/// `skiff logout`.
pub fn logout(a: &LogoutArgs) -> Result<i32> {
    let domain = server_domain(a.server.as_deref());
    let key = server_key(&domain);
    let mut docker = DockerConfig::load()?;
    if docker
        .erase(&key)
        .with_context(|| format!("remove credentials for {key}"))?
    {
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(0)
}

/// `skiff manifest inspect`.
pub fn manifest_inspect(a: &ManifestInspectArgs) -> Result<i32> {
    let n = Name::parse(&a.name)?;
    let reference = n
        .digest
        .clone()
        .or_else(|| n.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let client = client()?;
    let repo = client.repository(&n, false, a.insecure);
    let (bytes, mt) = repo
        .get_manifest(&reference)
        .with_context(|| format!("manifest inspect {}", a.name))?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("manifest of {}", a.name))?;
    if !a.verbose {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let sep = if reference.starts_with("sha256:") {
        '@'
    } else {
        ':'
    };
    let out = match spec::parse_document(&bytes, Some(&mt))? {
        Document::Manifest(m) => {
            let mt = m.media_type.clone().unwrap_or(mt);
            let desc = Descriptor::new(&mt, Digest::of(&bytes), bytes.len() as u64);
            verbose_manifest(
                &repo,
                &format!("{}{sep}{reference}", n.repo()),
                desc,
                &bytes,
            )?
        }
        Document::Index(idx) => {
            let mut all = Vec::new();
            for d in &idx.manifests {
                let (b, _) = repo
                    .get_manifest(d.digest.as_str())
                    .with_context(|| format!("manifest {} of {}", d.digest, a.name))?;
                d.digest.verify("manifest", &b)?;
                all.push(verbose_manifest(
                    &repo,
                    &format!("{}@{}", n.repo(), d.digest),
                    d.clone(),
                    &b,
                )?);
            }
            serde_json::Value::Array(all)
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

/// docker's verbose form of one manifest: Ref, Descriptor (with the config's platform when the
/// descriptor has none), Raw (base64) and the parsed manifest under `SchemaV2Manifest` or
/// `OCIManifest`.
fn verbose_manifest(
    repo: &skiff_image::registry::Repository<'_>,
    reference: &str,
    mut desc: Descriptor,
    bytes: &[u8],
) -> Result<serde_json::Value> {
    use base64::Engine;
    let v: serde_json::Value = serde_json::from_slice(bytes)?;
    if desc.platform.is_none() {
        if let Document::Manifest(m) = spec::parse_document(bytes, Some(&desc.media_type))? {
            let mut cfg = Vec::new();
            repo.get_blob(&m.config.digest, 0)?
                .take(16 << 20)
                .read_to_end(&mut cfg)
                .with_context(|| format!("config {}", m.config.digest))?;
            m.config.digest.verify("config", &cfg)?;
            let c = ImageConfig::parse(&cfg)?;
            desc.platform = Some(Platform {
                architecture: c.architecture,
                os: c.os,
                variant: c.variant,
                os_version: None,
            });
        }
    }
    let key = if desc.media_type == spec::DOCKER_MANIFEST {
        "SchemaV2Manifest"
    } else {
        "OCIManifest"
    };
    Ok(serde_json::json!({
        "Ref": reference,
        "Descriptor": desc,
        "Raw": base64::engine::general_purpose::STANDARD.encode(bytes),
        key: v,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_like_docker() {
        assert_eq!(human_size_precision(32, 4), "32B");
        assert_eq!(human_size_precision(512_000, 4), "512kB");
        assert_eq!(human_size_precision(1_049_000, 4), "1.049MB");
        assert_eq!(human_size_precision(2_813_000, 4), "2.813MB");
        assert_eq!(human_size_precision(123_456_789, 4), "123.5MB");
        let b = bar(50, 100);
        assert!(b.starts_with("[=========================>"), "{b}");
        assert!(b.ends_with("     50B/100B"), "{b}");
        assert_eq!(bar(100, 100).matches('=').count(), 50);
        assert_eq!(
            server_domain(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(server_domain(Some("http://h:5000/v2/")), "h:5000");
        assert_eq!(server_domain(None), "docker.io");
    }
}
