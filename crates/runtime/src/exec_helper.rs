//! `skiff-exec`, the small static program that enters a container for `skiff exec` and for the
//! engine's other exec callers (CVE-2019-5736 without re-executing the 14 MB `skiff`).
//!
//! A process that joins a container must not have a writable host binary as its
//! `/proc/self/exe`. `skiff` used to re-execute itself from a read-only view of its own file
//! before every exec (loading the dynamically linked CLI twice). Now the CLI does its own work
//! (database, events, user and environment) from the host binary, which never enters the
//! container, and hands the one step that does to `skiff-exec`, installed next to `skiff` and
//! started from a read-only view of its file (or a sealed memfd copy where mounts are not
//! permitted, see [`crate::sealed::sealed_view`]):
//!
//! 1. the caller becomes a child subreaper and blocks the forwarded signals (unless detached);
//! 2. it spawns the helper's view with fd 3 = one end of a SOCK_SEQPACKET pair and its own
//!    stdio (which the exec'd process inherits), and sends one request: the container, the
//!    process and `detach`;
//! 3. the helper (refusing to run from anything but a sealed view) loads the container's state
//!    and runs [`crate::exec::spawn_for_parent`]: the clone into the cgroup, `setns`, the second
//!    clone into the pid namespace, the process settings and the cached seccomp filter, exactly as
//!    `skiff-runtime exec` does;
//! 4. it answers `Pid(pid)` (with the pty master when a terminal was asked for) or `Error(msg)`
//!    and exits; the exec'd process is reparented to the caller, which reaps it, forwards
//!    signals and relays the terminal as before.
//!
//! A process that already runs sealed (the container's monitor and its healthcheck probes, a
//! read-only install) spawns directly: [`spawn`] picks the path.

use crate::error::{Error, Result};
use crate::exec::{ExecOpts, ExecTarget, Spawned};
use crate::sync::{self, Channel, Msg};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// The helper's file name, looked up next to the running binary.
pub const HELPER_NAME: &str = "skiff-exec";

/// The descriptor the helper reads its request from.
const REQUEST_FD: RawFd = 3;

/// The request the caller sends (one datagram of JSON).
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    root: PathBuf,
    id: String,
    process: oci_spec::runtime::Process,
    detach: bool,
    /// The caller's debug lines are on: the helper writes its own to stderr.
    #[serde(default)]
    debug: bool,
}

/// The helper next to the running binary, when installed there.
pub fn find() -> Option<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let p = exe.parent()?.join(HELPER_NAME);
    std::fs::metadata(&p).ok()?.is_file().then_some(p)
}

/// True when this process can put a process into a container without a host binary entering it:
/// it runs sealed itself, or the helper is installed beside it. Otherwise callers re-execute
/// themselves sealed first ([`crate::sealed::ensure_sealed_exe`]).
pub fn available() -> bool {
    crate::sealed::running_sealed() || find().is_some()
}

/// Starts the exec with only sealed binaries entering the container: directly when this process
/// runs sealed, else through the helper (see the module documentation). The caller reaps the
/// process ([`crate::forward::wait`]) unless `o.detach`.
pub fn spawn(t: &ExecTarget, o: ExecOpts) -> Result<Spawned> {
    if crate::sealed::running_sealed() {
        crate::debug!("exec: spawned by this process (it runs from a sealed view)");
        return crate::exec::spawn_in(t, o);
    }
    let helper = find().ok_or_else(|| {
        Error::Other(format!(
            "exec: {HELPER_NAME} is not installed next to this binary (and it does not run \
             from a sealed view)"
        ))
    })?;
    spawn_via(&helper, o)
}

/// [`spawn`], then waits for the process (signals forwarded, terminal relayed); returns its exit
/// code (0 when detached).
pub fn exec(t: &ExecTarget, o: ExecOpts) -> Result<i32> {
    let detach = o.detach;
    let s = spawn(t, o)?;
    if detach {
        return Ok(0);
    }
    crate::forward::wait(s.pid, s.master)
}

/// Runs the exec through the helper at `helper`.
pub fn spawn_via(helper: &Path, o: ExecOpts) -> Result<Spawned> {
    if !matches!(o.console, crate::container::Console::None) || o.pid_file.is_some() {
        return Err(Error::Other(
            "exec helper: a console socket or pid file is not supported".into(),
        ));
    }
    if !o.detach {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        crate::forward::block_signals()?;
    }
    let path = CString::new(helper.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Other(format!("exec helper {}: bad path", helper.display())))?;
    let mut view = crate::sealed::sealed_view(&path)?;
    if view.as_raw_fd() <= REQUEST_FD {
        view = dup_high(view.as_raw_fd())?;
    }
    // Only the helper may hold the other end: its exit without an answer is then an EOF here.
    let (ours, child_end) = sync::pair()?;
    let theirs = dup_high(child_end.raw())?;
    drop(child_end);
    let req = serde_json::to_vec(&Request {
        root: o.root,
        id: o.id,
        process: o.process,
        detach: o.detach,
        debug: crate::log::debug_enabled(),
    })
    .map_err(|e| Error::Other(format!("exec helper: request: {e}")))?;
    crate::debug!(
        "exec: entering the container through {} (a read-only view of it)",
        helper.display()
    );
    let pid = posix_spawn_view(&view, &theirs)?;
    drop(theirs);
    drop(view);
    let reply = send_request(&ours, &req).and_then(|()| ours.recv_or_eof());
    let status = crate::util::wait_code(pid);
    match reply? {
        Some((Msg::Pid(p), master)) => Ok(Spawned {
            pid: p,
            master: if o.detach { None } else { master },
        }),
        Some((Msg::Error(e), _)) => Err(Error::Other(e)),
        Some((m, _)) => Err(Error::Other(format!("exec helper: unexpected {m:?}"))),
        None => Err(Error::Other(format!(
            "exec helper {} ended without an answer (exit code {})",
            helper.display(),
            status.unwrap_or(-1)
        ))),
    }
}

/// A close-on-exec duplicate of `fd` above the standard descriptors and fd 3 (so the helper's
/// file actions never overwrite a descriptor they still read).
fn dup_high(fd: RawFd) -> Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on an open fd; the new fd is owned by the OwnedFd below.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, REQUEST_FD + 1) };
    if n < 0 {
        return Err(Error::Sys {
            what: "exec helper: dup".into(),
            errno: nix::errno::Errno::last(),
        });
    }
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// One datagram with the whole request (a SEQPACKET message is delivered whole or not at all).
fn send_request(ch: &Channel, req: &[u8]) -> Result<()> {
    loop {
        // SAFETY: sending a buffer we own on an open socket.
        let n = unsafe { libc::send(ch.raw(), req.as_ptr().cast(), req.len(), libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let e = nix::errno::Errno::last();
        if e != nix::errno::Errno::EINTR {
            return Err(Error::Sys {
                what: "exec helper: send request".into(),
                errno: e,
            });
        }
    }
}

/// `posix_spawn` (a vfork: its cost does not grow with the caller's size) of the view with
/// `chan` on fd 3, this process's stdio and environment. Returns the helper's pid.
fn posix_spawn_view(view: &OwnedFd, chan: &OwnedFd) -> Result<i32> {
    let path = CString::new(format!("/proc/self/fd/{}", view.as_raw_fd()))
        .map_err(|e| Error::Other(e.to_string()))?;
    let arg0 = CString::new(HELPER_NAME).map_err(|e| Error::Other(e.to_string()))?;
    let argv: [*mut libc::c_char; 2] = [arg0.as_ptr().cast_mut(), std::ptr::null_mut()];
    extern "C" {
        static environ: *const *mut libc::c_char;
    }
    let fail = |what: &str, rc: i32| Error::Sys {
        what: format!("exec helper: {what}"),
        errno: nix::errno::Errno::from_raw(rc),
    };
    let mut pid: libc::pid_t = 0;
    // SAFETY: the file actions object is initialised before use and destroyed on every path;
    // path, argv and environ outlive the posix_spawn call.
    unsafe {
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let rc = libc::posix_spawn_file_actions_init(&mut fa);
        if rc != 0 {
            return Err(fail("file actions", rc));
        }
        let mut rc = libc::posix_spawn_file_actions_adddup2(&mut fa, chan.as_raw_fd(), REQUEST_FD);
        if rc == 0 {
            rc = libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                &fa,
                std::ptr::null(),
                argv.as_ptr(),
                environ,
            );
        }
        libc::posix_spawn_file_actions_destroy(&mut fa);
        if rc != 0 {
            return Err(fail("spawn", rc));
        }
    }
    Ok(pid)
}

/// The helper's side (`skiff-exec`'s main): reads the request on fd 3, starts the process and
/// answers. Returns the helper's exit code.
pub fn serve() -> i32 {
    // SAFETY: fd 3 is the request socket the caller's file actions put there; only this
    // function uses it.
    let ch = unsafe { Channel::from_raw(REQUEST_FD) };
    // Not inherited by the processes this one clones.
    // SAFETY: fcntl on the descriptor just wrapped.
    unsafe { libc::fcntl(REQUEST_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    let r = (|| -> Result<Spawned> {
        // Entering a container from a writable host file would undo the point of this program.
        if !crate::sealed::running_sealed() {
            return Err(Error::Other(format!(
                "{HELPER_NAME}: refusing to run from a writable file (it is started by skiff \
                 from a read-only view)"
            )));
        }
        let req = recv_request(&ch)?;
        if req.debug {
            crate::log::enable_debug(crate::log::Sink::default());
        }
        let t = ExecTarget::load(&req.root, &req.id)?;
        crate::exec::spawn_for_parent(
            &t,
            ExecOpts {
                root: req.root,
                id: req.id,
                process: req.process,
                console: crate::container::Console::None,
                pid_file: None,
                detach: req.detach,
                preserve_fds: 0,
            },
        )
    })();
    match r {
        Ok(s) => {
            let fd = s.master.as_ref().map(|m| m.as_raw_fd());
            match ch.send(&Msg::Pid(s.pid), fd) {
                Ok(()) => 0,
                Err(_) => 1,
            }
        }
        Err(e) => {
            if ch.send(&Msg::Error(e.to_string()), None).is_err() {
                // No caller on fd 3 (run by hand): say it here.
                eprintln!("{e}");
            }
            1
        }
    }
}

/// Reads the one request datagram, sized with MSG_PEEK | MSG_TRUNC.
fn recv_request(ch: &Channel) -> Result<Request> {
    let sys = |what: &str| Error::Sys {
        what: format!("{HELPER_NAME}: {what}"),
        errno: nix::errno::Errno::last(),
    };
    let len = loop {
        // SAFETY: a zero-length peek; the kernel reports the datagram's full length.
        let n = unsafe {
            libc::recv(
                ch.raw(),
                std::ptr::null_mut(),
                0,
                libc::MSG_PEEK | libc::MSG_TRUNC,
            )
        };
        if n >= 0 {
            break n as usize;
        }
        if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            return Err(sys("read request"));
        }
    };
    let mut buf = vec![0u8; len.max(1)];
    let n = loop {
        // SAFETY: receiving into a buffer we own of the given length.
        let n = unsafe { libc::recv(ch.raw(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            break n as usize;
        }
        if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            return Err(sys("read request"));
        }
    };
    serde_json::from_slice(&buf[..n])
        .map_err(|e| Error::Other(format!("{HELPER_NAME}: bad request: {e}")))
}
