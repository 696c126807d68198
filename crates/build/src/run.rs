//! RUN steps: a container over an overlay of the parent's layer snapshots, made by skiff-runtime
//! with docker's defaults (capabilities, seccomp profile, masked paths, a new network namespace
//! unless `--network host`). The runtime clones the container from a fresh single-threaded child
//! (`skiff __build-run`, exec'd from a read-only view of our binary like the monitor), whose
//! stdout and stderr are one pipe read here and streamed to the progress output.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use skiff_image::overlay::{self, Rootfs, RootfsKind};
use skiff_image::perms;
use skiff_runtime::docker::{docker_spec, DockerSpecOpts, NetworkNs};

use crate::BuildError;

/// Set when the build got SIGINT, SIGTERM or SIGHUP: the executor stops before its next step.
pub static INTERRUPTED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The running step's container (runtime root, id), killed when the build is interrupted.
static CURRENT_STEP: std::sync::Mutex<Option<(PathBuf, String)>> = std::sync::Mutex::new(None);

/// Turns SIGINT, SIGTERM and SIGHUP into a clean stop: they are blocked in this thread (and the
/// threads it starts later) and a watcher thread records them, kills the running step's
/// container and lets the executor fail the build normally, so its overlay mounts and
/// temporary directories are removed. Call once, before any other thread starts.
pub fn guard_signals() {
    // SAFETY: sigset manipulation on a local, zero-initialised set; pthread_sigmask on this
    // thread; the watcher only calls sigwait/kill and stores atomics.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        let set_copy = set;
        std::thread::spawn(move || loop {
            let mut sig = 0;
            // SAFETY: a valid signal set and out pointer.
            if libc::sigwait(&set_copy, &mut sig) != 0 {
                continue;
            }
            INTERRUPTED.store(sig, std::sync::atomic::Ordering::SeqCst);
            // As docker cancels a build: the step's processes are killed; its runtime child then
            // deletes the container and the executor unwinds.
            if let Ok(cur) = CURRENT_STEP.lock() {
                if let Some((rt, id)) = cur.as_ref() {
                    let _ = skiff_runtime::container::kill(rt, id, libc::SIGKILL, true);
                }
            }
        });
    }
}

/// The hidden subcommand of the skiff binary that runs one step's container.
pub const STEP_COMMAND: &str = "__build-run";

/// What a RUN step executes.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// process.args.
    pub args: Vec<String>,
    /// Environment (KEY=VALUE).
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User as written (`name`, `uid:gid`, …), resolved in the rootfs.
    pub user: String,
    /// Share the host's network namespace.
    pub host_network: bool,
    /// Extra OCI mounts (`RUN --mount`, heredoc scripts); their mount points are removed from
    /// the step's changes afterwards.
    pub mounts: Vec<serde_json::Value>,
}

/// A mounted overlay that is unmounted when dropped.
pub struct Mounted {
    /// The merged root.
    pub root: PathBuf,
    /// The upper directory (the step's changes).
    pub upper: PathBuf,
    mounted: bool,
}

impl Mounted {
    /// Mounts `lowers` (bottom first; none: an empty root) with a fresh upper under `work`.
    pub fn new(lowers: &[PathBuf], work: &Path) -> Result<Mounted, BuildError> {
        let root = work.join("rootfs");
        let upper = work.join("upper");
        let wd = work.join("work");
        for d in [&root, &upper, &wd] {
            perms::mkdir(d, perms::PRIVATE_DIR)
                .map_err(|e| BuildError::Other(format!("create {}: {e}", d.display())))?;
        }
        // The upper is the new layer's root: world-readable like an image root.
        perms::fchmod(
            &std::fs::File::open(&upper)
                .map_err(|e| BuildError::Other(format!("open {}: {e}", upper.display())))?,
            0o755,
        )
        .map_err(|e| BuildError::Other(format!("chmod {}: {e}", upper.display())))?;
        let mut lowers = lowers.to_vec();
        if lowers.is_empty() {
            let empty = work.join("empty");
            perms::mkdir(&empty, 0o755)
                .map_err(|e| BuildError::Other(format!("create {}: {e}", empty.display())))?;
            lowers.push(empty);
        }
        overlay::mount_overlay_volatile(&lowers, &upper, &wd, &root)?;
        Ok(Mounted {
            root,
            upper,
            mounted: true,
        })
    }

    /// Unmounts now (the upper directory stays).
    pub fn unmount(&mut self) -> Result<(), BuildError> {
        if self.mounted {
            self.mounted = false;
            overlay::unmount(&Rootfs {
                path: self.root.clone(),
                kind: RootfsKind::Overlay,
            })?;
        }
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}

/// Runs `spec` in a container over `m.root`; `out` gets its output as it comes. Returns the
/// exit code.
pub fn run(
    runroot: &Path,
    m: &Mounted,
    work: &Path,
    id: &str,
    spec: &RunSpec,
    out: &mut dyn FnMut(&[u8]),
) -> Result<i32, BuildError> {
    let user = skiff_engine::spec::resolve_user(&m.root, &spec.user)?;
    if spec.cwd != "/" {
        skiff_engine::spec::mkdir_in_root(&m.root, &spec.cwd)?;
    }
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let mut extra = spec.mounts.clone();
    // /etc/hosts (localhost and the sandbox's name) and, with the host's network, its
    // resolv.conf, as BuildKit gives a step; only where the image has an /etc (a mount point
    // made in a missing /etc would take the step's own /etc changes out with it).
    if m.root.join("etc").is_dir() && !m.root.join("etc").is_symlink() {
        let hosts = work.join("hosts");
        perms::write_file(
            &hosts,
            b"127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            0o644,
        )
        .map_err(|e| BuildError::Other(format!("write the step's hosts file: {e}")))?;
        extra.push(crate::mounts::bind(&hosts, "/etc/hosts", false)?);
        if spec.host_network {
            if let Ok(rc) = std::fs::read("/etc/resolv.conf") {
                let f = work.join("resolv.conf");
                perms::write_file(&f, &rc, 0o644)
                    .map_err(|e| BuildError::Other(format!("write the step's resolv.conf: {e}")))?;
                extra.push(crate::mounts::bind(&f, "/etc/resolv.conf", false)?);
            }
        }
    }
    let mut mounts = Vec::new();
    let mut made = Vec::new();
    for v in &extra {
        if let Some(d) = v["destination"].as_str() {
            if let Some(first) = first_missing(&m.root, d) {
                made.push(first);
            }
        }
        mounts
            .push(serde_json::from_value(v.clone()).map_err(|e| BuildError::Other(e.to_string()))?);
    }
    let o = DockerSpecOpts {
        args: spec.args.clone(),
        env,
        cwd: spec.cwd.clone(),
        uid: user.uid,
        gid: user.gid,
        additional_gids: user.groups,
        hostname: "buildkitsandbox".into(),
        // The step child's own network namespace: a new one with the loopback up (see
        // step_main), unless the host's is asked for.
        network: if spec.host_network {
            NetworkNs::Host
        } else {
            NetworkNs::Path("/proc/self/ns/net".into())
        },
        mounts,
        cgroups_path: Some(format!("/skiff/{id}")),
        ..Default::default()
    };
    let mut s = docker_spec(&o).map_err(|e| BuildError::Other(e.to_string()))?;
    let mut root = s.root().clone().unwrap_or_default();
    root.set_path(m.root.clone());
    root.set_readonly(Some(false));
    s.set_root(Some(root));
    let cfg = serde_json::to_vec(&s).map_err(|e| BuildError::Other(e.to_string()))?;
    perms::write_file(&work.join("config.json"), &cfg, perms::PRIVATE_FILE)
        .map_err(|e| BuildError::Other(format!("write the step's config.json: {e}")))?;

    let rt = runroot.join("runtime");
    perms::mkdir_all(&rt, perms::PRIVATE_DIR)
        .map_err(|e| BuildError::Other(format!("create {}: {e}", rt.display())))?;
    let (r, w) = pipe()?;
    let w2 = w
        .try_clone()
        .map_err(|e| BuildError::Other(format!("pipe: {e}")))?;
    let ro = skiff_runtime::sealed::readonly_self();
    let exe = match &ro {
        Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        None => PathBuf::from("/proc/self/exe"),
    };
    let mut child = Command::new(&exe)
        .arg0("skiff")
        .arg(STEP_COMMAND)
        .arg(&rt)
        .arg(id)
        .arg(work)
        .arg(if spec.host_network {
            "hostnet"
        } else {
            "newnet"
        })
        .stdin(Stdio::null())
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2))
        .spawn()
        .map_err(|e| BuildError::Other(format!("start the step's container: {e}")))?;
    drop(ro);
    if let Ok(mut cur) = CURRENT_STEP.lock() {
        *cur = Some((rt.clone(), id.to_string()));
    }
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) != 0 {
        // Interrupted while starting: the watcher may have missed this container.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _ = skiff_runtime::container::kill(&rt, id, libc::SIGKILL, true);
    }
    let mut f = std::fs::File::from(r);
    let mut buf = [0u8; 8192];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(BuildError::Other(format!("read the step's output: {e}"))),
        }
    }
    let st = child.wait();
    if let Ok(mut cur) = CURRENT_STEP.lock() {
        *cur = None;
    }
    let st = st.map_err(|e| BuildError::Other(format!("wait for the step's container: {e}")))?;
    // Mount points the runtime made for the step's mounts are not the step's changes.
    for rel in made {
        let p = m.upper.join(&rel);
        if std::fs::symlink_metadata(&p).is_ok() {
            let _ = skiff_image::sys::remove_all(&p);
        }
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
}

use std::os::unix::process::CommandExt;

/// The first component of `dest` (absolute, in the container) missing from `root`, relative.
fn first_missing(root: &Path, dest: &str) -> Option<String> {
    let fd = skiff_image::sys::open_dir(root).ok()?;
    let mut cur = String::new();
    for comp in dest.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if !cur.is_empty() {
            cur.push('/');
        }
        cur.push_str(comp);
        let (dir, name) = match cur.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", cur.as_str()),
        };
        let d = skiff_image::sys::open_in_root(
            std::os::fd::AsFd::as_fd(&fd),
            Path::new(dir),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .ok()?;
        match skiff_image::sys::lstatat(std::os::fd::AsFd::as_fd(&d), std::ffi::OsStr::new(name)) {
            Ok(Some(_)) => {}
            _ => return Some(cur),
        }
    }
    None
}

fn pipe() -> Result<(OwnedFd, OwnedFd), BuildError> {
    let mut fds = [0; 2];
    // SAFETY: fds is a two-int array for pipe2 to fill.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if r < 0 {
        return Err(BuildError::Other(format!(
            "pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    use std::os::fd::FromRawFd;
    // SAFETY: both fds were just created by pipe2 and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A new network namespace for this process with its loopback interface up (docker's
/// `--network none`: `lo` only, but usable).
fn new_netns_with_lo() -> std::io::Result<()> {
    // SAFETY: unshare with a flag constant.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a datagram socket for interface ioctls; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket and nothing else owns it.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is valid; the name fits (3 bytes of 16).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, c) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *c as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS with a valid socket and ifreq.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `skiff __build-run RUNTIME_ROOT ID BUNDLE newnet|hostnet`: runs the container (in a new
/// network namespace with `lo` up, or the host's) and exits with its code.
pub fn step_main(args: &[String]) -> i32 {
    let [rt, id, bundle, net] = args else {
        eprintln!("skiff: {STEP_COMMAND}: expects RUNTIME_ROOT ID BUNDLE newnet|hostnet");
        return 125;
    };
    if net == "newnet" {
        if let Err(e) = new_netns_with_lo() {
            eprintln!("skiff: build step network namespace: {e}");
            return 125;
        }
    }
    let opts = skiff_runtime::container::CreateOpts {
        root: PathBuf::from(rt),
        id: id.clone(),
        bundle: PathBuf::from(bundle),
        ..Default::default()
    };
    match skiff_runtime::container::run(opts, false) {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string().replace('\n', " ");
            eprintln!("{msg}");
            skiff_engine::error::start_code(&msg)
        }
    }
}
