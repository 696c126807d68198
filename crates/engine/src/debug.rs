//! `skiff debug`: a shell (or any command) that shares a container's pid, net, ipc, uts and cgroup
//! namespaces and its cgroup, sees the container's filesystem at `/`, and finds its tools in a
//! toolbox at `/.skiff-debug` that exists only in its own mount namespace
//! ([`skiff_runtime::debugview`]): nothing is written into the container or its image, so even a
//! scratch image holding one static binary can be debugged.
//!
//! The process is started through the same runtime path as `exec` (the container's stored process
//! template: its user, capabilities, no_new_privs, rlimits and its cached seccomp filter), unless
//! `--privileged` asks for every capability and no seccomp filter. A stopped container or an image
//! is debugged in a temporary container ([`Temporary`]) with the same filesystem, idle behind
//! `skiff-init --pause`, removed when the debug session ends.

use std::path::{Path, PathBuf};

use skiff_image::store::ImageRecord;
use skiff_image::Store;
use skiff_runtime::debugview::{Toolbox, DEBUG_DIR};

use crate::error::{Error, Result};
use crate::model::Container;
use crate::{spec, Engine};

/// What `debug` runs and how.
#[derive(Debug, Clone, Default)]
pub struct DebugRequest {
    /// The command (empty: the shell).
    pub cmd: Vec<String>,
    /// `--shell`: `sh` (default) or `bash`.
    pub shell: Option<String>,
    /// `-i`.
    pub interactive: bool,
    /// `-t`.
    pub tty: bool,
    /// `-e`.
    pub env: Vec<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `--privileged`: every capability, no seccomp filter.
    pub privileged: bool,
    /// The detach sequence of an interactive tty (empty: docker's default).
    pub detach_keys: Vec<u8>,
}

/// Places a static busybox is looked for on the host, in order.
pub const BUSYBOX_PATHS: [&str; 3] = ["/bin/busybox", "/usr/bin/busybox", "/sbin/busybox"];

/// True when `b` is an ELF file without a program interpreter (statically linked).
pub fn is_static_elf(b: &[u8]) -> bool {
    if b.len() < 0x40 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let Ok(off) = b[0x20..0x28].try_into().map(u64::from_le_bytes) else {
        return false;
    };
    let (phoff, phentsize, phnum) = (off as usize, u16at(0x36), u16at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        b.get(o..o + 4)
            .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != 3)
            .unwrap_or(false)
    })
}

/// The default toolbox: the host's static busybox and its applets.
pub fn host_busybox() -> Result<Toolbox> {
    for p in BUSYBOX_PATHS {
        let Ok(head) = read_head(Path::new(p)) else {
            continue;
        };
        if !is_static_elf(&head) {
            continue;
        }
        let out = std::process::Command::new(p)
            .arg("--list")
            .output()
            .map_err(|e| Error::Other(format!("toolbox {p}: {e}")))?;
        let applets = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .filter(|a| !a.is_empty())
            .collect();
        return Ok(Toolbox::Busybox {
            path: PathBuf::from(p),
            applets,
        });
    }
    Err(Error::Other(
        "no toolbox: no static busybox on this host (install Debian's busybox-static) and no --toolbox IMAGE given".into(),
    ))
}

fn read_head(p: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(p)?;
    let mut b = vec![0u8; 64 * 1024];
    let mut n = 0;
    while n < b.len() {
        let r = f.read(&mut b[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    b.truncate(n);
    Ok(b)
}

/// A toolbox made of an image's layers.
pub fn image_toolbox(store: &Store, img: &ImageRecord) -> Result<Toolbox> {
    Ok(Toolbox::Layers(store.layer_dirs(img)?))
}

impl Engine {
    /// Runs the debug process in the running container `c`; returns how it ended (126/127 come
    /// back as [`Error::Start`]).
    pub fn debug(
        &self,
        c: &Container,
        req: &DebugRequest,
        toolbox: &Toolbox,
    ) -> Result<crate::tty::Ended> {
        match c.state.status.as_str() {
            "running" => {}
            "paused" => {
                return Err(Error::State(format!(
                    "container {} is paused, unpause the container before debug",
                    c.name
                )))
            }
            _ => return Err(Error::State(format!("container {} is not running", c.name))),
        }
        let rt = self.runtime_root();
        let target = skiff_runtime::exec::ExecTarget::load(&rt, &c.id)?;
        let rootfs = self.container_dir(&c.id).join("rootfs");
        let mut process = target
            .process()
            .cloned()
            .ok_or_else(|| Error::Other(format!("container {}: no stored process", c.name)))?;
        let mut env = process.env().clone().unwrap_or_default();
        // The toolbox goes last on PATH: the container's own programs keep their names.
        let extra = toolbox.path_dirs().join(":");
        match env.iter_mut().find(|e| e.starts_with("PATH=")) {
            Some(p) => {
                p.push(':');
                p.push_str(&extra);
            }
            None => env.push(format!("PATH={}:{extra}", spec::DEFAULT_PATH)),
        }
        for e in &req.env {
            let kv = if e.contains('=') {
                e.clone()
            } else if let Ok(v) = std::env::var(e) {
                format!("{e}={v}")
            } else {
                continue;
            };
            let key = kv.split_once('=').map(|x| x.0).unwrap_or("").to_string();
            env.retain(|x| x.split_once('=').map(|y| y.0) != Some(key.as_str()));
            env.push(kv);
        }
        if req.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        if !env.iter().any(|e| e.starts_with("PS1=")) {
            env.push(format!("PS1=[debug {}] \\w # ", c.name));
        }
        if let Some(u) = &req.user {
            let user = spec::resolve_user(&rootfs, u)?;
            let mut pu = process.user().clone();
            pu.set_uid(user.uid);
            pu.set_gid(user.gid);
            pu.set_additional_gids(Some(user.groups));
            process.set_user(pu);
            env.retain(|e| !e.starts_with("HOME="));
            let home = if user.home.is_empty() {
                "/"
            } else {
                &user.home
            };
            env.push(format!("HOME={home}"));
        }
        if let Some(w) = &req.workdir {
            if !w.starts_with('/') {
                return Err(Error::Invalid(format!(
                    "the working directory '{w}' is invalid, it needs to be an absolute path"
                )));
            }
            process.set_cwd(w.into());
        }
        let cmd = if req.cmd.is_empty() {
            let shell = req.shell.as_deref().unwrap_or("sh");
            if !matches!(shell, "sh" | "bash") {
                return Err(Error::Invalid(format!(
                    "invalid --shell {shell:?}: one of sh, bash"
                )));
            }
            if let Toolbox::Busybox { applets, .. } = toolbox {
                if !applets.iter().any(|a| a == shell) {
                    return Err(Error::Invalid(format!(
                        "--shell {shell}: the toolbox (busybox) has no {shell}; use --toolbox IMAGE with one"
                    )));
                }
            }
            vec![shell.to_string()]
        } else {
            req.cmd.clone()
        };
        process.set_env(Some(env));
        process.set_args(Some(cmd));
        if req.privileged {
            let all = skiff_runtime::docker::all_caps();
            let set: std::collections::HashSet<oci_spec::runtime::Capability> =
                all.iter().filter_map(|c| c.parse().ok()).collect();
            let mut caps = process.capabilities().clone().unwrap_or_default();
            caps.set_bounding(Some(set.clone()));
            caps.set_effective(Some(set.clone()));
            caps.set_permitted(Some(set.clone()));
            caps.set_inheritable(None);
            caps.set_ambient(None);
            process.set_capabilities(Some(caps));
            process.set_apparmor_profile(None);
        }
        let tty = req.tty;
        process.set_terminal(Some(tty));
        if tty {
            if let Some((rows, cols)) = crate::tty::local_size() {
                let size = oci_spec::runtime::BoxBuilder::default()
                    .height(u32::from(rows))
                    .width(u32::from(cols))
                    .build()
                    .map_err(|e| Error::Other(format!("debug: console size: {e}")))?;
                process.set_console_size(Some(size));
            }
        }
        let dopts = skiff_runtime::exec::DebugOpts {
            toolbox: toolbox.prepare()?,
            unconfined: req.privileged,
        };
        self.event(c, "exec_create: debug", &[]);
        let as_exec = crate::ops::ExecRequest {
            interactive: req.interactive,
            ..Default::default()
        };
        let saved = crate::ops::redirect_stdio(&as_exec)?;
        let opts = skiff_runtime::exec::ExecOpts {
            root: rt,
            id: c.id.clone(),
            process,
            console: skiff_runtime::container::Console::None,
            pid_file: None,
            detach: false,
            preserve_fds: 0,
        };
        let start_err = |e: skiff_runtime::Error| {
            let msg = e.to_string();
            let code = crate::error::start_code(&msg);
            Error::Start { msg, code }
        };
        if !tty {
            let r = skiff_runtime::exec::exec_debug(&target, opts, &dopts);
            drop(saved);
            return r.map(crate::tty::Ended::Exited).map_err(start_err);
        }
        let spawned = skiff_runtime::exec::spawn_debug(&target, opts, &dopts);
        drop(saved);
        let spawned = spawned.map_err(start_err)?;
        let Some(master) = spawned.master else {
            return Err(Error::Other(format!(
                "debug in {}: no terminal came back from the container",
                c.name
            )));
        };
        let keys = if req.detach_keys.is_empty() {
            crate::tty::DEFAULT_DETACH_KEYS
        } else {
            &req.detach_keys
        };
        crate::tty::relay_exec(spawned.pid, master, req.interactive, keys)
    }
}

/// A temporary container for debugging a stopped container or an image: created from the image
/// (a stopped container is first committed to an untagged image, so its changes are there too),
/// idle behind `skiff-init --pause`, without a network. Removed, with that image, on drop.
pub struct Temporary<'a> {
    e: &'a Engine,
    store: &'a Store,
    /// The running temporary container.
    pub container: Container,
    committed: Option<ImageRecord>,
}

impl<'a> Temporary<'a> {
    /// Starts a temporary container from `img`, or from the stopped container `from`.
    pub fn start(
        e: &'a Engine,
        store: &'a Store,
        img: Option<&ImageRecord>,
        from: Option<&Container>,
    ) -> Result<Temporary<'a>> {
        let (committed, img) = match (from, img) {
            (Some(c), _) => {
                let opts = crate::commit::CommitOptions {
                    message: Some(format!("skiff debug of {}", c.name)),
                    author: None,
                    changes: Vec::new(),
                    pause: false,
                    tag: None,
                };
                let rec = crate::commit::commit(e, store, &c.id, &opts)?;
                (Some(rec.clone()), rec)
            }
            (None, Some(i)) => (None, i.clone()),
            (None, None) => return Err(Error::Invalid("debug: nothing to debug".into())),
        };
        let mut req = crate::create::CreateRequest {
            image: img.id.to_string(),
            entrypoint: Some(crate::init::INIT_PATH.into()),
            cmd: vec!["--pause".into()],
            init: true,
            network: Some("none".into()),
            labels: vec!["skiff.debug=temporary".into()],
            ..Default::default()
        };
        if let Some(c) = from {
            let h = &c.host_config;
            req.privileged = h.privileged;
            req.cap_add = h.cap_add.clone().unwrap_or_default();
            req.cap_drop = h.cap_drop.clone().unwrap_or_default();
            req.security_opt = h.security_opt.clone().unwrap_or_default();
            req.volumes = h.binds.clone().unwrap_or_default();
            if !h.cgroup_parent.is_empty() {
                req.cgroup_parent = Some(h.cgroup_parent.clone());
            }
        }
        let drop_image = |store: &Store| {
            if let Some(r) = &committed {
                let _ = store.delete_image(&r.id);
            }
        };
        let (c, _) = match crate::create::create(e, store, &img, &req) {
            Ok(c) => c,
            Err(err) => {
                drop_image(store);
                return Err(err);
            }
        };
        let mut t = Temporary {
            e,
            store,
            container: c,
            committed,
        };
        t.e.start(&t.container.id, None)?;
        t.container = t.e.container(&t.container.id)?;
        Ok(t)
    }
}

impl Drop for Temporary<'_> {
    fn drop(&mut self) {
        let _ = self.e.remove(&self.container.id, true, true);
        if let Some(r) = &self.committed {
            let _ = self.store.delete_image(&r.id);
        }
    }
}

/// Where the toolbox appears in the debug view.
pub fn toolbox_dir() -> &'static str {
    DEBUG_DIR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_elf_detection() {
        assert!(is_static_elf(crate::init::INIT_BINARY));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
    }
}
