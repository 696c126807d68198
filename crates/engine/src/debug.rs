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
//! `skiff-init --pause`, removed when the debug session ends; with `--commit`
//! ([`Temporary::debug_commit`]) the session's writes go to an upper directory under the engine
//! root instead of a tmpfs, and become one layer of a new image on top of the temporary
//! container's image.
//!
//! `skiff debug install` keeps extra static tools in `<root>/debug/toolbox/bin` ([`install_tool`]),
//! attached read-only at `/.skiff-tools` in every debug session and put on PATH.

use std::path::{Path, PathBuf};

use skiff_image::store::ImageRecord;
use skiff_image::Store;
use skiff_runtime::debugview::{Toolbox, DEBUG_DIR, TOOLS_DIR};

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
    /// A directory (with `upper` and `work` in it) that keeps the debug view's writes, instead
    /// of a tmpfs (`--commit`; see [`Temporary::debug_commit`]).
    pub upper: Option<PathBuf>,
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
    file_head(std::fs::File::open(p)?)
}

/// The first 64 KiB of a file (where an ELF file's program headers are).
fn file_head(mut f: std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
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
        if let Some(x) = self.external_runtime(&c.id) {
            return Err(Error::Invalid(format!(
                "container {}: debug needs skiff-runtime; the container runs under runtime {}",
                c.name, x.name
            )));
        }
        let rt = self.runtime_root();
        let target = skiff_runtime::exec::ExecTarget::load(&rt, &c.id)?;
        let rootfs = self.container_dir(&c.id).join("rootfs");
        let mut process = target
            .process()
            .cloned()
            .ok_or_else(|| Error::Other(format!("container {}: no stored process", c.name)))?;
        let mut env = process.env().clone().unwrap_or_default();
        // The toolbox goes last on PATH: the container's own programs keep their names; the
        // installed tools come before the toolbox's.
        let tools = self.installed_tools_dir()?;
        let mut dirs = toolbox.path_dirs();
        if tools.is_some() {
            dirs.insert(0, TOOLS_DIR.to_string());
        }
        let extra = dirs.join(":");
        match env.iter_mut().find(|e| e.starts_with("PATH=")) {
            Some(p) => {
                p.push(':');
                p.push_str(&extra);
            }
            None => env.push(format!("PATH={}:{extra}", spec::DEFAULT_PATH)),
        }
        crate::ops::exec_env(&mut env, &req.env, req.tty);
        if !env.iter().any(|e| e.starts_with("PS1=")) {
            env.push(format!("PS1=[debug {}] \\w # ", c.name));
        }
        crate::ops::exec_user_workdir(
            &mut process,
            &mut env,
            &rootfs,
            req.user.as_deref(),
            req.workdir.as_deref(),
        )?;
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
        let mut prepared = toolbox.prepare()?;
        if let Some(t) = &tools {
            prepared = prepared.with_tools(t)?;
        }
        if let Some(u) = &req.upper {
            prepared = prepared.with_upper(u)?;
        }
        let dopts = skiff_runtime::exec::DebugOpts {
            toolbox: prepared,
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
        if !tty {
            let r = skiff_runtime::exec::exec_debug(&target, opts, &dopts);
            drop(saved);
            return r
                .map(crate::tty::Ended::Exited)
                .map_err(crate::ops::start_err);
        }
        let spawned = skiff_runtime::exec::spawn_debug(&target, opts, &dopts);
        drop(saved);
        let spawned = spawned.map_err(crate::ops::start_err)?;
        crate::ops::relay_spawned(spawned, "debug", &c.name, req.interactive, &req.detach_keys)
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
    image: ImageRecord,
    what: String,
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
        let what = match (from, img.tags.first()) {
            (Some(c), _) => format!("container {}", c.name),
            (None, Some(t)) => format!("image {}", skiff_image::names::familiar(t)),
            (None, None) => format!("image {}", img.id),
        };
        let mut t = Temporary {
            e,
            store,
            container: c,
            committed,
            image: img,
            what,
        };
        t.e.start(&t.container.id, None)?;
        t.container = t.e.container(&t.container.id)?;
        Ok(t)
    }
}

impl Temporary<'_> {
    /// Runs the debug session with its writes kept in a directory under the engine root, then
    /// records them as one layer on top of the temporary container's image (the image debugged,
    /// or the stopped container committed): a new image, tagged `tag`, with the parent's config.
    /// The toolbox directories and the container's mounts (proc, dev, sys, hosts files, volumes,
    /// binds) are not in the layer. The image is made whatever the session's exit code; not when
    /// the debug process could not start.
    pub fn debug_commit(
        &self,
        req: &DebugRequest,
        toolbox: &Toolbox,
        tag: Option<String>,
    ) -> Result<(crate::tty::Ended, ImageRecord)> {
        use skiff_image::perms;
        let sessions = self.e.root.join("debug").join("sessions");
        let io = |what: String| move |source| Error::Io { what, source };
        perms::mkdir_all(&sessions, perms::PRIVATE_DIR)
            .map_err(io(format!("create {}", sessions.display())))?;
        // Sessions of a skiff killed mid-way: their temporary containers are gone too.
        if let Ok(rd) = std::fs::read_dir(&sessions) {
            for d in rd.filter_map(|d| d.ok()) {
                let id = d.file_name().to_string_lossy().into_owned();
                if matches!(self.e.container(&id), Err(Error::NoSuchContainer(_))) {
                    let _ = skiff_image::sys::remove_all(&d.path());
                }
            }
        }
        let dir = sessions.join(&self.container.id);
        let _cleanup = RemoveDir(dir.clone());
        perms::mkdir(&dir, perms::PRIVATE_DIR).map_err(io(format!("create {}", dir.display())))?;
        // The upper's own mode is the mode of `/` in the debug view.
        perms::mkdir_shared(&dir.join("upper"), perms::SHARED_DIR)
            .map_err(io(format!("create {}/upper", dir.display())))?;
        perms::mkdir(&dir.join("work"), perms::PRIVATE_DIR)
            .map_err(io(format!("create {}/work", dir.display())))?;
        let mut r = req.clone();
        r.upper = Some(dir.clone());
        let ended = self.e.debug(&self.container, &r, toolbox)?;
        let layer = crate::commit::NewLayer {
            upper: &dir.join("upper"),
            what: format!("the debug session of {}", self.what),
            process: None,
            created_by: format!("skiff debug --commit {}", self.what),
            skip: &[DEBUG_DIR, TOOLS_DIR],
        };
        let opts = crate::commit::CommitOptions {
            message: Some(format!("skiff debug --commit of {}", self.what)),
            author: None,
            changes: Vec::new(),
            pause: false,
            tag,
        };
        let img = crate::commit::commit_layer(self.store, &self.image, &layer, &opts)?;
        Ok((ended, img))
    }
}

/// Removes a directory tree (a `--commit` session's upper and work) on drop.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = skiff_image::sys::remove_all(&self.0);
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

/// One tool of `skiff debug install`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// Its name (the command on PATH).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// False when it was installed with `--force` although it is not a static ELF executable.
    pub is_static: bool,
}

impl Engine {
    /// `<root>/debug/toolbox/bin`: the tools of `skiff debug install`.
    pub fn tools_dir(&self) -> PathBuf {
        self.root.join("debug").join("toolbox").join("bin")
    }

    /// The tools directory when it holds at least one tool.
    fn installed_tools_dir(&self) -> Result<Option<PathBuf>> {
        let dir = self.tools_dir();
        let any = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .any(|e| !e.file_name().as_encoded_bytes().starts_with(b".")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(Error::Io {
                    what: format!("read {}", dir.display()),
                    source,
                })
            }
        };
        Ok(any.then_some(dir))
    }

    /// The installed tools, by name.
    pub fn list_tools(&self) -> Result<Vec<Tool>> {
        use std::os::fd::AsFd;
        let dir = self.tools_dir();
        let fd = match skiff_image::sys::open_dir(&dir) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Io {
                    what: format!("open {}", dir.display()),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        let names = skiff_image::sys::list_dir(fd.as_fd()).map_err(|source| Error::Io {
            what: format!("read {}", dir.display()),
            source,
        })?;
        for n in names {
            let Some(name) = n.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let Ok(Some(st)) = skiff_image::sys::lstatat(fd.as_fd(), &n) else {
                continue;
            };
            if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                continue;
            }
            let head = skiff_image::sys::openat(fd.as_fd(), &n, libc::O_RDONLY, 0)
                .ok()
                .and_then(|f| file_head(std::fs::File::from(f)).ok())
                .unwrap_or_default();
            out.push(Tool {
                name: name.to_string(),
                size: st.st_size as u64,
                is_static: is_static_elf(&head),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `skiff debug install PATH`: copies the regular executable file at `path` (never through
    /// a symlink) into the toolbox as its file name, mode 0755. A file that is not a static ELF
    /// executable is refused unless `force`: a dynamically linked one needs a libc and loader
    /// that scratch and distroless containers do not have. Returns the tool's name.
    pub fn install_tool(&self, path: &Path, force: bool) -> Result<String> {
        use skiff_image::perms;
        use std::io::Write;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let shown = path.display();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.starts_with('.') && !n.is_empty())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "debug install {shown}: not a usable tool name (a file name, not starting with '.')"
                ))
            })?
            .to_string();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => Error::Invalid(format!(
                    "debug install {shown}: is a symbolic link; name the file itself"
                )),
                _ => Error::Invalid(format!("debug install {shown}: {e}")),
            })?;
        let md = f
            .metadata()
            .map_err(|e| Error::Invalid(format!("debug install {shown}: {e}")))?;
        if !md.is_file() {
            return Err(Error::Invalid(format!(
                "debug install {shown}: not a regular file"
            )));
        }
        if md.mode() & 0o111 == 0 {
            return Err(Error::Invalid(format!(
                "debug install {shown}: not executable"
            )));
        }
        let data =
            read_all(f).map_err(|e| Error::Invalid(format!("debug install {shown}: {e}")))?;
        if !force && !is_static_elf(&data) {
            let why = if data.starts_with(b"\x7fELF") {
                "is dynamically linked: it would not run in a container without its C library and loader (scratch, distroless)"
            } else {
                "is not a static ELF executable: a script needs the interpreter on its #! line inside the container"
            };
            return Err(Error::Invalid(format!(
                "debug install {shown}: {why}; install a statically linked build, or --force"
            )));
        }
        let io = |what: String| move |source| Error::Io { what, source };
        let dir = self.tools_dir();
        let parent = self.root.join("debug").join("toolbox");
        perms::mkdir_all(&parent, perms::PRIVATE_DIR)
            .map_err(io(format!("create {}", parent.display())))?;
        // The directory is the root of a mount in the debug view: any uid must enter it.
        perms::mkdir_shared(&dir, perms::SHARED_DIR)
            .map_err(io(format!("create {}", dir.display())))?;
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let written = (|| -> std::io::Result<()> {
            let mut out = perms::create_private(&tmp)?;
            out.write_all(&data)?;
            perms::fchmod(&out, 0o755)?;
            out.sync_all()?;
            std::fs::rename(&tmp, dir.join(&name))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Io {
                what: format!("install {name} into {}", dir.display()),
                source: e,
            });
        }
        Ok(name)
    }

    /// `skiff debug uninstall NAME`: removes an installed tool.
    pub fn uninstall_tool(&self, name: &str) -> Result<()> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(Error::Invalid(format!(
                "debug uninstall {name:?}: not a tool name"
            )));
        }
        let p = self.tools_dir().join(name);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => std::fs::remove_file(&p).map_err(|source| Error::Io {
                what: format!("remove {}", p.display()),
                source,
            }),
            _ => Err(Error::Invalid(format!(
                "debug uninstall {name}: no such tool (see skiff debug ls)"
            ))),
        }
    }
}

fn read_all(mut f: std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut b = Vec::new();
    f.read_to_end(&mut b)?;
    Ok(b)
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
