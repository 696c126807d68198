//! Rootless mode: skiff run by an ordinary user.
//!
//! Paths: the store in `$XDG_DATA_HOME/skiff` (default `~/.local/share/skiff`), run state in
//! `$XDG_RUNTIME_DIR/skiff` (or a private `/tmp/skiff-<uid>` when that is unset), configuration in
//! `$XDG_CONFIG_HOME/skiff` (default `~/.config/skiff`): root's and users' stores never mix.
//!
//! The namespace: every rootless command runs in one user namespace (container root = the user;
//! uids 1.. = the user's `/etc/subuid` range, mapped by the setuid `newuidmap`/`newgidmap` of the
//! uidmap package; only the user's own uid without a range) and one mount namespace owned by it,
//! where layers are unpacked with their owners and overlays are mounted. Both are kept alive by a
//! small pause process (`skiff-pause`, pid in `<rundir>/pause.pid`), made by the first command and
//! joined by the following ones with one `setns(2)` on its pidfd: every command, monitor and
//! container of the user sees the same mounts, as podman's rootless namespace does. When the
//! pause process is gone while containers run, a new one joins their monitors' namespaces;
//! `skiff system migrate` stops it, so that once no container runs the next command maps the
//! current ranges afresh.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use skiff_image::perms;

/// What can go wrong setting up rootless mode.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// A path skiff would use is unsafe or cannot be made.
    #[error("rootless: {0}")]
    Path(String),
    /// The user or mount namespace could not be made or joined.
    #[error("rootless namespace: {0}")]
    Namespace(String),
}

type Result<T> = std::result::Result<T, RootlessError>;

/// The file in the run directory holding the pid of the hub network namespace's pasta.
pub const HUB_PASTA_PID: &str = "hub-pasta.pid";

/// The name the pause process shows in `ps` (and is recognized by).
const PAUSE_COMM: &str = "skiff-pause";

/// True when this process is an ordinary user's (effective uid not 0).
pub fn is_user() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() != 0 }
}

/// The environment variable that carries the run directory into processes started in the
/// namespace (a re-exec'd CLI, monitors), where the real uid reads as 0.
pub const RUNDIR_ENV: &str = "SKIFF_ROOTLESS_RUNDIR";

/// True in a process that [`enter`] put (or that inherited) the rootless namespace.
pub fn in_namespace() -> bool {
    std::env::var_os(RUNDIR_ENV).is_some() && !skiff_image::sys::is_real_root()
}

/// True when skiff runs rootless: not as root of the initial user namespace (an ordinary user, or
/// a process in the rootless namespace, whose root is that user).
pub fn active() -> bool {
    !skiff_image::sys::is_real_root()
}

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

fn home() -> Result<PathBuf> {
    if let Some(h) = env_dir("HOME") {
        return Ok(h);
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    passwd_entry(uid)
        .map(|(_, home)| PathBuf::from(home))
        .ok_or_else(|| RootlessError::Path(format!("no HOME and no passwd entry for uid {uid}")))
}

/// (name, home) of `uid` from /etc/passwd.
fn passwd_entry(uid: u32) -> Option<(String, String)> {
    let text = fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid))
            .then(|| (f[0].to_string(), f[5].to_string()))
    })
}

/// The rootless store: `$XDG_DATA_HOME/skiff`, default `~/.local/share/skiff`.
pub fn data_root() -> Result<PathBuf> {
    Ok(match env_dir("XDG_DATA_HOME") {
        Some(d) => d.join("skiff"),
        None => home()?.join(".local/share/skiff"),
    })
}

/// The rootless configuration directory: `$XDG_CONFIG_HOME/skiff`, default `~/.config/skiff`.
pub fn config_dir() -> Result<PathBuf> {
    Ok(match env_dir("XDG_CONFIG_HOME") {
        Some(d) => d.join("skiff"),
        None => home()?.join(".config/skiff"),
    })
}

/// The rootless run directory: `$XDG_RUNTIME_DIR/skiff`, or `/tmp/skiff-<uid>` (made 0700; an
/// existing one must be a directory, not a symlink, owned by the user and private). Uses the real
/// uid, so call it before entering the namespace.
pub fn run_root() -> Result<PathBuf> {
    if let Some(d) = env_dir(RUNDIR_ENV).filter(|_| in_namespace()) {
        return Ok(d);
    }
    if let Some(d) = env_dir("XDG_RUNTIME_DIR") {
        return Ok(d.join("skiff"));
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let dir = PathBuf::from(format!("/tmp/skiff-{uid}"));
    perms::mkdir(&dir, perms::PRIVATE_DIR)
        .map_err(|e| RootlessError::Path(format!("create {}: {e}", dir.display())))?;
    let md = fs::symlink_metadata(&dir)
        .map_err(|e| RootlessError::Path(format!("{}: {e}", dir.display())))?;
    if !md.file_type().is_dir() || md.uid() != uid || md.mode() & 0o077 != 0 {
        return Err(RootlessError::Path(format!(
            "{} is not a private directory owned by uid {uid} (a symlink, another user's, or group/other-accessible); remove it or set XDG_RUNTIME_DIR",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Refuses a `--root` this user cannot use (its nearest existing directory not writable and
/// searchable for the real uid), before any namespace is made: root's store is root's.
pub fn check_root_access(root: &Path) -> Result<()> {
    let mut p = root;
    loop {
        match fs::symlink_metadata(p) {
            Ok(_) => break,
            Err(_) => match p.parent() {
                Some(q) => p = q,
                None => return Ok(()),
            },
        }
    }
    let c = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
        .map_err(|_| RootlessError::Path(format!("{}: bad path", root.display())))?;
    // SAFETY: access with a valid NUL-terminated path; checks the real uid, as wanted.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        return Err(RootlessError::Path(format!(
            "--root {}: {} is not accessible to uid {uid} ({}); as an ordinary user skiff keeps its own store (default {})",
            root.display(),
            p.display(),
            io::Error::last_os_error(),
            data_root().map(|d| d.display().to_string()).unwrap_or_else(|_| "~/.local/share/skiff".into())
        )));
    }
    Ok(())
}

/// The default `--root`: `/var/lib/skiff` for root, [`data_root`] for a user.
pub fn default_root() -> PathBuf {
    if is_user() || in_namespace() {
        if let Ok(r) = data_root() {
            return r;
        }
    }
    PathBuf::from("/var/lib/skiff")
}

/// One subordinate id range: `count` ids from `start` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First host id.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

/// The ranges `/etc/subuid`-style `text` gives the user `name` (or its numeric `id`).
pub fn parse_subids(text: &str, name: &str, id: u32) -> Vec<Range> {
    let ids = id.to_string();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            if f.len() != 3 || (f[0] != name && f[0] != ids) {
                return None;
            }
            let r = Range {
                start: f[1].parse().ok()?,
                count: f[2].parse().ok()?,
            };
            (r.count > 0).then_some(r)
        })
        .collect()
}

/// The id map `newuidmap` takes: `0 <id> 1`, then the ranges from inside id 1 on.
fn map_args(id: u32, ranges: &[Range]) -> Vec<String> {
    let mut v = vec!["0".to_string(), id.to_string(), "1".to_string()];
    let mut next: u32 = 1;
    for r in ranges {
        v.extend([next.to_string(), r.start.to_string(), r.count.to_string()]);
        next = next.saturating_add(r.count);
    }
    v
}

/// Joins the user's rootless namespace (user + mount), making it (and its pause process) first
/// when it does not exist. `rundir` is [`run_root`]. The process must be single-threaded. Keeps
/// the working directory (by path).
pub fn enter(rundir: &Path) -> Result<()> {
    let ns = |m: String| RootlessError::Namespace(m);
    perms::open_root(rundir).map_err(|e| ns(format!("create {}: {e}", rundir.display())))?;
    let cwd = std::env::current_dir().ok();
    let lock_path = rundir.join("pause.lock");
    let lock = perms::lock_file(&lock_path)
        .map_err(|e| ns(format!("open {}: {e}", lock_path.display())))?;
    let pidfile = rundir.join("pause.pid");
    // Fast path without the lock's wait: a running pause process.
    let pidfd = match find_pause(&pidfile) {
        Some(fd) => fd,
        None => {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(ns(format!(
                    "lock {}: {}",
                    lock_path.display(),
                    io::Error::last_os_error()
                )));
            }
            match find_pause(&pidfile) {
                Some(fd) => fd,
                None => match adopt_namespace(&pidfile) {
                    Some(fd) => fd,
                    None => make_pause(&pidfile)?,
                },
            }
        }
    };
    drop(lock);
    // SAFETY: setns on a pidfd we own; the process is single-threaded (the caller's contract),
    // as joining a user namespace requires.
    if unsafe { libc::setns(pidfd.as_raw_fd(), libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
        return Err(ns(format!(
            "join the pause process's namespaces: {}",
            io::Error::last_os_error()
        )));
    }
    if let Some(d) = cwd {
        // setns(CLONE_NEWNS) moved us to the namespace's `/`; it holds the same paths.
        let _ = std::env::set_current_dir(d);
    }
    // Still single-threaded (the caller's contract): changing the environment races with nothing.
    std::env::set_var(RUNDIR_ENV, rundir);
    Ok(())
}

/// A pidfd of the pause process named in `pidfile` when it runs (and is ours).
fn find_pause(pidfile: &Path) -> Option<OwnedFd> {
    let pid: i32 = fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    if pid <= 1 {
        return None;
    }
    // SAFETY: pidfd_open with integer arguments; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // The pid is ours and the pause process's (checked after the pidfd pins it: a reused pid
    // would show another name or owner).
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let md = fs::metadata(format!("/proc/{pid}")).ok()?;
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    (comm.trim() == PAUSE_COMM && md.uid() == uid).then_some(fd)
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut p = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into our array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(RootlessError::Namespace(format!(
            "pipe: {}",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: fresh descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

/// Makes the pause process (in a new user + mount namespace), maps its ids, records its pid and
/// returns a pidfd of it.
fn make_pause(pidfile: &Path) -> Result<OwnedFd> {
    let ns = |m: String| RootlessError::Namespace(m);
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let name = passwd_entry(uid).map(|(n, _)| n).unwrap_or_default();
    let subuid = parse_subids(
        &fs::read_to_string("/etc/subuid").unwrap_or_default(),
        &name,
        uid,
    );
    let subgid = parse_subids(
        &fs::read_to_string("/etc/subgid").unwrap_or_default(),
        &name,
        uid,
    );
    let (up_r, up_w) = pipe()?; // pause → CLI: its pid, then "ready"
    let (down_r, down_w) = pipe()?; // CLI → pause: "mapped"
                                    // SAFETY: the process is single-threaded (the caller's contract): the child may do anything.
    let mid = unsafe { libc::fork() };
    if mid < 0 {
        return Err(ns(format!("fork: {}", io::Error::last_os_error())));
    }
    if mid == 0 {
        // The intermediate child: fork the pause process and exit, so it is nobody's child.
        // SAFETY: single-threaded child; fork then _exit.
        unsafe {
            if libc::fork() == 0 {
                pause_main(up_w.as_raw_fd(), down_r.as_raw_fd());
            }
            libc::_exit(0);
        }
    }
    drop(up_w);
    drop(down_r);
    let mut status = 0;
    // SAFETY: reaping the intermediate child we forked.
    unsafe { libc::waitpid(mid, &mut status, 0) };
    let mut up = fs::File::from(up_r);
    let mut buf = [0u8; 4];
    up.read_exact(&mut buf)
        .map_err(|e| ns(format!("the pause process did not start: {e}")))?;
    let pid = i32::from_ne_bytes(buf);
    // SAFETY: pidfd_open with integer arguments; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return Err(ns(format!("pidfd_open: {}", io::Error::last_os_error())));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let kill = || {
        // SAFETY: signalling the pause process we made, through its pidfd.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                libc::SIGKILL,
                0,
                0,
            )
        };
    };
    // Wait for its unshare (the first byte after the pid).
    let mut b = [0u8; 1];
    if up.read_exact(&mut b).is_err() || b[0] != b'u' {
        kill();
        return Err(ns(
            "unshare(CLONE_NEWUSER|CLONE_NEWNS) failed in the pause process (unprivileged user namespaces disabled? see sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces)".into(),
        ));
    }
    if let Err(e) = write_maps(pid, uid, gid, &name, &subuid, &subgid) {
        kill();
        return Err(e);
    }
    let mut down = fs::File::from(down_w);
    let _ = down.write_all(b"m");
    drop(down);
    if up.read_exact(&mut b).is_err() || b[0] != b'r' {
        kill();
        return Err(ns(
            "the pause process failed to set up its mount namespace".into()
        ));
    }
    let tmp = pidfile.with_extension("pid.tmp");
    perms::write_file(&tmp, pid.to_string().as_bytes(), perms::PRIVATE_FILE)
        .and_then(|()| fs::rename(&tmp, pidfile))
        .map_err(|e| {
            kill();
            ns(format!("write {}: {e}", pidfile.display()))
        })?;
    Ok(pidfd)
}

/// Writes the uid and gid maps of `pid`: through newuidmap/newgidmap with the user's ranges, or
/// (no range, or no uidmap package) the user's own ids only, with a warning naming the fix.
fn write_maps(
    pid: i32,
    uid: u32,
    gid: u32,
    name: &str,
    subuid: &[Range],
    subgid: &[Range],
) -> Result<()> {
    let ns = |m: String| RootlessError::Namespace(m);
    let who = if name.is_empty() {
        uid.to_string()
    } else {
        name.to_string()
    };
    if !subuid.is_empty() && !subgid.is_empty() {
        let run = |tool: &str, id: u32, ranges: &[Range]| -> Result<bool> {
            match Command::new(tool)
                .arg(pid.to_string())
                .args(map_args(id, ranges))
                .stdin(std::process::Stdio::null())
                .output()
            {
                Ok(o) if o.status.success() => Ok(true),
                Ok(o) => Err(ns(format!(
                    "{tool}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(ns(format!("{tool}: {e}"))),
            }
        };
        if run("newuidmap", uid, subuid)? && run("newgidmap", gid, subgid)? {
            return Ok(());
        }
        eprintln!(
            "skiff: warning: newuidmap/newgidmap not found (Debian package uidmap): containers get a single uid and gid"
        );
    } else {
        let file = if subuid.is_empty() {
            "/etc/subuid"
        } else {
            "/etc/subgid"
        };
        eprintln!(
            "skiff: warning: no subordinate id range for user {who} in {file}: containers get a single uid and gid (0 = you); add one, e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who}`, then `skiff system migrate`"
        );
    }
    let w = |f: &str, s: String| {
        fs::write(format!("/proc/{pid}/{f}"), s).map_err(|e| ns(format!("write {f}: {e}")))
    };
    w("setgroups", "deny".into())?;
    w("uid_map", format!("0 {uid} 1\n"))?;
    w("gid_map", format!("0 {gid} 1\n"))
}

/// The pause process: unshare, report, wait for the maps, make mounts slaves, then sleep forever.
fn pause_main(up: i32, down: i32) -> ! {
    // SAFETY: a single-threaded forked child working on its own descriptors and namespaces; it
    // never returns.
    unsafe {
        libc::setsid();
        set_pause_name();
        let pid = libc::getpid().to_ne_bytes();
        libc::write(up, pid.as_ptr().cast(), 4);
        let ok = libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) == 0;
        libc::write(up, if ok { b"u".as_ptr() } else { b"x".as_ptr() }.cast(), 1);
        if !ok {
            libc::_exit(1);
        }
        let mut b = 0u8;
        if libc::read(down, (&mut b as *mut u8).cast(), 1) != 1 {
            libc::_exit(1);
        }
        let root = CString::new("/").unwrap_or_default();
        let none = CString::new("none").unwrap_or_default();
        let r = libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        );
        libc::write(
            up,
            if r == 0 { b"r".as_ptr() } else { b"x".as_ptr() }.cast(),
            1,
        );
        libc::chdir(root.as_ptr());
        pause_loop()
    }
}

/// Names the pause process (before it reports, so a pidfile never names an unrecognizable one).
fn set_pause_name() {
    let comm = CString::new(PAUSE_COMM).unwrap_or_default();
    // SAFETY: prctl with a valid NUL-terminated name.
    unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr()) };
}

/// The rest of the pause process's life: stdio on /dev/null, no other descriptor, and sleep.
fn pause_loop() -> ! {
    // SAFETY: a single-threaded forked child working on its own descriptors; never returns.
    unsafe {
        let null = CString::new("/dev/null").unwrap_or_default();
        let n = libc::open(null.as_ptr(), libc::O_RDWR);
        if n >= 0 {
            for fd in 0..3 {
                libc::dup2(n, fd);
            }
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        for s in [libc::SIGINT, libc::SIGHUP, libc::SIGPIPE, libc::SIGQUIT] {
            libc::signal(s, libc::SIG_IGN);
        }
        loop {
            libc::pause();
        }
    }
}

/// When the pause process is gone but containers of the user still run (their monitors hold
/// the old namespaces), a new pause process joins those namespaces instead of making new ones:
/// commands keep reaching the running containers (exec, stop) and their mounts. Returns a pidfd
/// of the new pause process, recorded in `pidfile`.
fn adopt_namespace(pidfile: &Path) -> Option<OwnedFd> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let own = fs::read_link("/proc/self/ns/user").ok()?;
    // Every monitor of the user's in another user namespace (a monitor of a `--rm` container
    // may be on its way out: the new pause process tries them in turn).
    let targets: Vec<OwnedFd> = fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let md = fs::metadata(e.path()).ok()?;
            let ns = fs::read_link(format!("/proc/{pid}/ns/user")).ok()?;
            if comm.trim() != "skiff-monitor" || md.uid() != uid || ns == own {
                return None;
            }
            // SAFETY: pidfd_open with integer arguments; the result is checked.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
            // SAFETY: a fresh descriptor nobody else owns.
            (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .take(64)
        .collect();
    if targets.is_empty() {
        return None;
    }
    let (up_r, up_w) = pipe().ok()?;
    // SAFETY: the process is single-threaded (enter's contract).
    let mid = unsafe { libc::fork() };
    if mid < 0 {
        return None;
    }
    if mid == 0 {
        // SAFETY: single-threaded children; the grandchild joins and becomes the pause process.
        unsafe {
            if libc::fork() == 0 {
                libc::setsid();
                set_pause_name();
                let ok = targets.iter().any(|t| {
                    libc::setns(t.as_raw_fd(), libc::CLONE_NEWUSER | libc::CLONE_NEWNS) == 0
                });
                let pid = libc::getpid().to_ne_bytes();
                libc::write(up_w.as_raw_fd(), pid.as_ptr().cast(), 4);
                libc::write(
                    up_w.as_raw_fd(),
                    if ok { b"r".as_ptr() } else { b"x".as_ptr() }.cast(),
                    1,
                );
                if !ok {
                    libc::_exit(1);
                }
                let root = CString::new("/").unwrap_or_default();
                libc::chdir(root.as_ptr());
                pause_loop();
            }
            libc::_exit(0);
        }
    }
    drop(up_w);
    let mut status = 0;
    // SAFETY: reaping the intermediate child we forked.
    unsafe { libc::waitpid(mid, &mut status, 0) };
    let mut up = fs::File::from(up_r);
    let mut buf = [0u8; 5];
    up.read_exact(&mut buf).ok()?;
    if buf[4] != b'r' {
        return None;
    }
    let pid = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
    // SAFETY: pidfd_open with integer arguments; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tmp = pidfile.with_extension("pid.tmp");
    perms::write_file(&tmp, pid.to_string().as_bytes(), perms::PRIVATE_FILE).ok()?;
    fs::rename(&tmp, pidfile).ok()?;
    Some(pidfd)
}

/// Stops the user's pause process (`skiff system migrate`): the next command makes a fresh
/// namespace with the current /etc/subuid ranges. Returns whether one was running.
pub fn stop_pause(rundir: &Path) -> bool {
    // The hub network namespace's pasta (see skiff_engine::network) goes with it.
    let hub = rundir.join(HUB_PASTA_PID);
    if let Some(pid) = fs::read_to_string(&hub)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
    {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let ours = fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid);
        if pid > 1 && ours && (comm.starts_with("pasta") || comm.starts_with("passt")) {
            // SAFETY: kill with integer arguments; the pid is the user's hub pasta.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = fs::remove_file(&hub);
    }
    let pidfile = rundir.join("pause.pid");
    let Some(fd) = find_pause(&pidfile) else {
        return false;
    };
    // SAFETY: signalling the pause process through the pidfd we hold.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            0,
            0,
        )
    };
    let _ = fs::remove_file(pidfile);
    true
}

/// (host id of inside id 0, number of inside ids) from a `/proc/<pid>/uid_map`-style text.
fn map_info(text: &str) -> Option<(u64, u64)> {
    let mut zero = None;
    let mut top = 0;
    for l in text.lines() {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() != 3 {
            continue;
        }
        if f[0] == 0 {
            zero = Some(f[1]);
        }
        top = top.max(f[0] + f[2]);
    }
    Some((zero?, top))
}

/// The id mappings of `--userns keep-id` for a user whose host id is `id` in a namespace of
/// `n` ids: container `id` is the namespace's 0 (the user), container 0..id its 1..=id, the
/// rest one to one.
fn keep_id_map(id: u64, n: u64) -> serde_json::Value {
    serde_json::json!([
        {"containerID": 0, "hostID": 1, "size": id},
        {"containerID": id, "hostID": 0, "size": 1},
        {"containerID": id + 1, "hostID": id + 1, "size": n - id - 1}
    ])
}

/// One id map as [`map_info`] reads it: (host id of inside id 0, number of inside ids).
type IdMap = (u64, u64);

/// This process's uid and gid maps read by [`map_info`].
fn own_maps() -> std::result::Result<(IdMap, IdMap), String> {
    let read = |f: &str| fs::read_to_string(f).map_err(|e| format!("{f}: {e}"));
    let u = map_info(&read("/proc/self/uid_map")?).ok_or("no uid 0 in the namespace")?;
    let g = map_info(&read("/proc/self/gid_map")?).ok_or("no gid 0 in the namespace")?;
    Ok((u, g))
}

/// A user namespace added to a spec's `linux.namespaces` (JSON) unless it has one.
fn add_user_ns(linux: &mut serde_json::Value) -> std::result::Result<(), String> {
    let ns = linux["namespaces"]
        .as_array_mut()
        .ok_or("spec without namespaces")?;
    if !ns.iter().any(|n| n["type"] == "user") {
        ns.push(serde_json::json!({"type": "user"}));
    }
    Ok(())
}

/// `--userns keep-id` on a spec (JSON): a user namespace of the container's own in which the
/// user's host uid and gid are themselves (files of the user's, bind-mounted, keep their owner
/// in and out); the process runs as that uid and gid unless `--user` was given (`set_user`).
pub fn keep_id(v: &mut serde_json::Value, set_user: bool) -> std::result::Result<(), String> {
    let ((uid, nu), (gid, ng)) = own_maps()?;
    if uid + 1 >= nu || gid + 1 >= ng {
        return Err(format!(
            "uid {uid}/gid {gid} lie beyond the {nu}/{ng} ids of the rootless namespace: add a range of more than {} ids to /etc/subuid and /etc/subgid",
            uid.max(gid)
        ));
    }
    let linux = &mut v["linux"];
    add_user_ns(linux)?;
    linux["uidMappings"] = keep_id_map(uid, nu);
    linux["gidMappings"] = keep_id_map(gid, ng);
    if set_user {
        let u = &mut v["process"]["user"];
        u["uid"] = uid.into();
        u["gid"] = gid.into();
        u["additionalGids"] = serde_json::json!([gid]);
    }
    Ok(())
}

/// The size of the id slice `--userns auto` gives each container (podman's default size).
pub const AUTO_SIZE: u32 = 65536;

/// The ids `--userns auto` slices are cut from: 1..n of the rootless namespace (0 is the user),
/// n the smaller of its uid and gid counts (the user's subordinate ranges plus one).
pub fn auto_space() -> std::result::Result<u32, String> {
    let ((_, nu), (_, ng)) = own_maps()?;
    Ok(nu.min(ng).min(u32::MAX as u64) as u32)
}

/// The first start (≥ 1) of `size` ids below `space` overlapping no slice of `taken`
/// (start, size): first fit, so released slices are reused.
pub fn first_fit(taken: &[(u32, u32)], size: u32, space: u32) -> Option<u32> {
    let mut t: Vec<(u64, u64)> = taken
        .iter()
        .map(|&(s, n)| (s as u64, s as u64 + n as u64))
        .collect();
    t.sort();
    let mut start: u64 = 1;
    for (a, b) in t {
        if start + size as u64 <= a {
            break;
        }
        start = start.max(b);
    }
    (start + size as u64 <= space as u64).then_some(start as u32)
}

/// `--userns auto` on a spec (JSON): a user namespace of the container's own mapping its ids
/// 0..size onto the slice at `start` of the rootless namespace.
pub fn auto_map(
    v: &mut serde_json::Value,
    start: u32,
    size: u32,
) -> std::result::Result<(), String> {
    let linux = &mut v["linux"];
    add_user_ns(linux)?;
    let map = serde_json::json!([{"containerID": 0, "hostID": start, "size": size}]);
    linux["uidMappings"] = map.clone();
    linux["gidMappings"] = map;
    // The default ICMP range may name only gids the container's namespace maps.
    if let Some(r) = linux["sysctl"].get_mut("net.ipv4.ping_group_range") {
        *r = format!("0 {}", size.saturating_sub(1)).into();
    }
    Ok(())
}

impl crate::Engine {
    /// The `--userns auto` slice (start, size) of container `id`, allocating one (first fit,
    /// in one write transaction so concurrent creates never share ids) when it has none.
    /// Slices of containers that no longer exist (nor are being created) are dropped first.
    pub fn userns_slice(&self, id: &str, name: &str) -> crate::Result<(u32, u32)> {
        use rusqlite::OptionalExtension;
        let err =
            |m: String| crate::Error::Invalid(format!("container \"{name}\": --userns auto: {m}"));
        let space = auto_space().map_err(err)?;
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(|e| err(format!("state database: {e}")))?;
        let q = |e: rusqlite::Error| err(format!("state database: {e}"));
        if let Some(r) = tx
            .query_row(
                "SELECT start, size FROM userns_slices WHERE container = ?1",
                [id],
                |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u32>(1)?)),
            )
            .optional()
            .map_err(q)?
        {
            return Ok(r);
        }
        let rows: Vec<(String, u32, u32)> = {
            let mut st = tx
                .prepare("SELECT container, start, size FROM userns_slices")
                .map_err(q)?;
            let it = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(q)?;
            it.collect::<rusqlite::Result<_>>().map_err(q)?
        };
        let mut taken = Vec::new();
        for (c, start, size) in rows {
            let live: i64 = tx
                .query_row("SELECT COUNT(*) FROM containers WHERE id = ?1", [&c], |r| {
                    r.get(0)
                })
                .map_err(q)?;
            let creating = self
                .root
                .join("containers")
                .join(format!("{}{c}", crate::ops::CREATING_PREFIX))
                .exists();
            if live == 0 && !creating {
                tx.execute("DELETE FROM userns_slices WHERE container = ?1", [&c])
                    .map_err(q)?;
            } else {
                taken.push((start, size));
            }
        }
        // The containers' own records too (a database repaired from disk has their rows but
        // not this table): a slice in use is never handed out twice.
        {
            let mut st = tx
                .prepare(
                    "SELECT json_extract(record, '$.HostConfig.SkiffUsernsSlice') FROM containers WHERE instr(record, 'SkiffUsernsSlice') > 0",
                )
                .map_err(q)?;
            let it = st
                .query_map([], |r| r.get::<_, Option<String>>(0))
                .map_err(q)?;
            for j in it {
                if let Some((start, size)) = j
                    .map_err(q)?
                    .and_then(|t| serde_json::from_str::<(u32, u32)>(&t).ok())
                {
                    taken.push((start, size));
                }
            }
        }
        let start = first_fit(&taken, AUTO_SIZE, space).ok_or_else(|| {
            err(format!(
                "no free slice of {AUTO_SIZE} ids: the rootless namespace has {space} ids and {} containers hold slices; give the user a larger range in /etc/subuid and /etc/subgid (then `skiff system migrate`)",
                taken.len()
            ))
        })?;
        tx.execute(
            "INSERT INTO userns_slices(container, start, size) VALUES(?1, ?2, ?3)",
            rusqlite::params![id, start, AUTO_SIZE],
        )
        .map_err(q)?;
        tx.commit().map_err(q)?;
        Ok((start, AUTO_SIZE))
    }

    /// Frees the `--userns auto` slice of container `id` (on rm; none is fine).
    pub fn release_userns_slice(&self, id: &str) {
        let _ = self
            .conn
            .execute("DELETE FROM userns_slices WHERE container = ?1", [id]);
    }
}

/// The POSIX ACL xattr of a directory's access ACL.
const ACL_XATTR: &[u8] = b"system.posix_acl_access\0";

/// ACL tags (linux/posix_acl.h) and the undefined id of entries without one.
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
const ACL_UNDEFINED: u32 = u32::MAX;

/// `acl` (the xattr's entries as (tag, perm, id)) with `uid` given search (x) permission: a
/// named-user entry added or widened and the mask made the union of the group class, entries
/// in the kernel's order (tag, then id).
fn acl_with_search(mut acl: Vec<(u16, u16, u32)>, uid: u32) -> Vec<(u16, u16, u32)> {
    match acl.iter_mut().find(|e| e.0 == ACL_USER && e.2 == uid) {
        Some(e) => e.1 |= 1,
        None => acl.push((ACL_USER, 1, uid)),
    }
    let mask = acl
        .iter()
        .filter(|e| matches!(e.0, ACL_USER | ACL_GROUP_OBJ | ACL_GROUP))
        .fold(0, |m, e| m | e.1);
    acl.retain(|e| e.0 != ACL_MASK);
    acl.push((ACL_MASK, mask, ACL_UNDEFINED));
    acl.sort_by_key(|e| (e.0, e.2));
    acl
}

/// Lets id `uid` of the rootless namespace (an `--userns auto` container's root, whose runtime
/// resolves the bundle's paths after entering its own namespace) search the private directory
/// `dir`: one named-user entry in its access ACL, so no other user of the host gains anything
/// (the id is one of the user's own subordinate ids). Never follows a symlink.
pub fn grant_search(dir: &Path, uid: u32) -> io::Result<()> {
    let md = fs::symlink_metadata(dir)?;
    if !md.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a directory",
        ));
    }
    let c = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut buf = vec![0u8; 1024];
    // SAFETY: lgetxattr with a valid path, name and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            ACL_XATTR.as_ptr().cast(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let mode = md.mode();
    let acl: Vec<(u16, u16, u32)> = if n < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENODATA) {
            return Err(e);
        }
        vec![
            (ACL_USER_OBJ, ((mode >> 6) & 7) as u16, ACL_UNDEFINED),
            (ACL_GROUP_OBJ, ((mode >> 3) & 7) as u16, ACL_UNDEFINED),
            (ACL_OTHER, (mode & 7) as u16, ACL_UNDEFINED),
        ]
    } else {
        buf[4..n as usize]
            .chunks_exact(8)
            .map(|e| {
                (
                    u16::from_le_bytes([e[0], e[1]]),
                    u16::from_le_bytes([e[2], e[3]]),
                    u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
                )
            })
            .collect()
    };
    let acl = acl_with_search(acl, uid);
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in acl {
        out.extend(tag.to_le_bytes());
        out.extend(perm.to_le_bytes());
        out.extend(id.to_le_bytes());
    }
    // SAFETY: lsetxattr with a valid path, name and value buffer.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            ACL_XATTR.as_ptr().cast(),
            out.as_ptr().cast(),
            out.len(),
            0,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The first directory above `dir` (exclusive) that other users cannot search (mode without
/// o+x): an `--userns auto` container's ids could not reach the store through it.
pub fn unsearchable_ancestor(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .skip(1)
        .find(|a| fs::metadata(a).is_ok_and(|m| m.mode() & 0o001 == 0))
        .map(Path::to_path_buf)
}

/// The warning for a rootless container whose spec asks for resource limits (none: no
/// warning). A user can create cgroups only in a delegated cgroup v2 subtree (a systemd user
/// session, see [`crate::delegation`]); without one offering the controllers the limits need,
/// the runtime starts the container without them: the limits are not enforced, and saying so
/// is better than a silent no-op. `delegated` is the probe's result.
pub fn limits_warning(
    linux: Option<&oci_spec::runtime::Linux>,
    delegated: Option<&crate::delegation::Delegation>,
) -> Option<String> {
    let res = linux?.resources().as_ref()?;
    let v = serde_json::to_value(res).ok()?;
    let wanted = crate::delegation::wanted(&v);
    if wanted.is_empty() {
        return None;
    }
    let kinds: Vec<&str> = wanted.iter().map(|w| w.0).collect();
    let ctls: Vec<&str> = wanted
        .iter()
        .map(|w| w.1)
        .filter(|c| !c.is_empty())
        .collect();
    Some(match delegated {
        Some(d) if wanted.iter().all(|w| !w.1.is_empty()) && d.missing(&ctls).is_empty() => {
            return None
        }
        Some(d) => format!(
            "rootless: resource limits are NOT enforced ({} given): the delegated cgroup v2 subtree {} does not offer the controllers {} (its cgroup.controllers: {})",
            kinds.join(", "),
            d.dir().display(),
            d.missing(&ctls).join(", "),
            d.controllers.join(" ")
        ),
        None => format!(
            "rootless: resource limits are NOT enforced ({} given): an ordinary user needs a delegated cgroup v2 subtree (a systemd user session with Delegate=yes) and none holds this process",
            kinds.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subids_by_name_or_uid() {
        let t = "alice:100000:65536\nbob:200000:65536\n1001:300000:10\nbad line\nalice:500000:0\n";
        assert_eq!(
            parse_subids(t, "alice", 1000),
            vec![Range {
                start: 100000,
                count: 65536
            }]
        );
        assert_eq!(parse_subids(t, "carol", 1001).len(), 1);
        assert!(parse_subids(t, "dave", 1002).is_empty());
    }

    #[test]
    fn auto_slices_first_fit() {
        let n = AUTO_SIZE;
        assert_eq!(first_fit(&[], n, 3 * n + 1), Some(1));
        assert_eq!(first_fit(&[(1, n)], n, 3 * n + 1), Some(n + 1));
        // A released slice in the middle is reused; slices never overlap or pass the space.
        assert_eq!(
            first_fit(&[(1, n), (2 * n + 1, n)], n, 3 * n + 1),
            Some(n + 1)
        );
        assert_eq!(
            first_fit(&[(1, n), (n + 1, n), (2 * n + 1, n)], n, 3 * n + 1),
            None
        );
        assert_eq!(first_fit(&[], n, n), None);
        assert_eq!(first_fit(&[(5, 10)], 4, 100), Some(1));
        assert_eq!(first_fit(&[(5, 10)], 5, 100), Some(15));
    }

    #[test]
    fn acl_search_entry_and_mask() {
        let base = vec![
            (ACL_USER_OBJ, 7, ACL_UNDEFINED),
            (ACL_GROUP_OBJ, 0, ACL_UNDEFINED),
            (ACL_OTHER, 0, ACL_UNDEFINED),
        ];
        let a = acl_with_search(base, 65537);
        assert_eq!(
            a,
            vec![
                (ACL_USER_OBJ, 7, ACL_UNDEFINED),
                (ACL_USER, 1, 65537),
                (ACL_GROUP_OBJ, 0, ACL_UNDEFINED),
                (ACL_MASK, 1, ACL_UNDEFINED),
                (ACL_OTHER, 0, ACL_UNDEFINED),
            ]
        );
        // Twice the same id: one entry; another id: sorted by id.
        let b = acl_with_search(acl_with_search(a.clone(), 65537), 1);
        let users: Vec<u32> = b.iter().filter(|e| e.0 == ACL_USER).map(|e| e.2).collect();
        assert_eq!(users, vec![1, 65537]);
        assert_eq!(b.iter().filter(|e| e.0 == ACL_MASK).count(), 1);
    }

    #[test]
    fn keep_id_maps_the_user_onto_itself() {
        let m = "         0       1001          1\n         1     200000      65536\n";
        assert_eq!(map_info(m), Some((1001, 65537)));
        let v = keep_id_map(1001, 65537);
        let sizes: u64 = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["size"].as_u64().unwrap())
            .sum();
        assert_eq!(sizes, 65537);
        assert_eq!(v[1]["containerID"], 1001);
        assert_eq!(v[1]["hostID"], 0);
    }

    #[test]
    fn maps_put_the_user_at_zero() {
        let r = [
            Range {
                start: 100000,
                count: 10,
            },
            Range {
                start: 300000,
                count: 5,
            },
        ];
        assert_eq!(
            map_args(1000, &r).join(" "),
            "0 1000 1 1 100000 10 11 300000 5"
        );
    }
}
