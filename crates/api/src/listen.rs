//! Listeners (`-H unix://PATH`, `-H tcp://IP:PORT`, `-H fd://`), the socket's owner and mode,
//! the accept loop, and the reaper of finished monitor processes.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{ServeError, State};

/// One `-H` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A unix socket path.
    Unix(PathBuf),
    /// A TCP address (loopback only unless client certificates are verified).
    Tcp(std::net::SocketAddr),
    /// Sockets passed by systemd socket activation (`fd://` all of them, `fd://N` one).
    Fd(Option<i32>),
}

/// Parses a `-H` value: `unix:///path`, `tcp://IP:PORT`, `fd://`, `fd://N` (or a bare absolute
/// path). Whether a TCP address is allowed depends on the TLS flags ([`crate::tls`]).
pub fn parse_host(s: &str) -> Result<Host, String> {
    if let Some(p) = s.strip_prefix("unix://") {
        if !p.starts_with('/') {
            return Err(format!("-H {s}: the socket path must be absolute"));
        }
        return Ok(Host::Unix(PathBuf::from(p)));
    }
    if s.starts_with('/') {
        return Ok(Host::Unix(PathBuf::from(s)));
    }
    if let Some(a) = s.strip_prefix("tcp://") {
        let addr: std::net::SocketAddr = a
            .trim_end_matches('/')
            .parse()
            .map_err(|_| format!("-H {s}: expected tcp://IP:PORT"))?;
        return Ok(Host::Tcp(addr));
    }
    if let Some(n) = s.strip_prefix("fd://") {
        if n.is_empty() || n == "*" {
            return Ok(Host::Fd(None));
        }
        return match n.parse::<i32>() {
            Ok(fd) if fd >= 3 => Ok(Host::Fd(Some(fd))),
            _ => Err(format!("-H {s}: expected fd:// or fd://N (N >= 3)")),
        };
    }
    Err(format!(
        "-H {s}: expected unix:///path, tcp://127.0.0.1:PORT or fd://"
    ))
}

pub(crate) enum Bound {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

/// The gid of group `skiff`, made with `groupadd --system` when missing.
fn skiff_group() -> Option<u32> {
    let lookup = || {
        nix::unistd::Group::from_name("skiff")
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    };
    if let Some(g) = lookup() {
        return Some(g);
    }
    let ok = std::process::Command::new("groupadd")
        .args(["--system", "skiff"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        lookup()
    } else {
        None
    }
}

fn bind_unix(path: &Path) -> Result<std::os::unix::net::UnixListener, ServeError> {
    let err = |msg: String| ServeError::Listen {
        addr: format!("unix://{}", path.display()),
        msg,
    };
    if let Some(parent) = path.parent() {
        if !parent.exists() {
            skiff_image::perms::mkdir_all(parent, 0o755)
                .map_err(|e| err(format!("create {}: {e}", parent.display())))?;
        }
    }
    // A stale socket from an earlier server is replaced; anything else at the path is left alone
    // (never followed: symlink_metadata).
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(err("another server is listening there".into()));
            }
            std::fs::remove_file(path).map_err(|e| err(format!("remove stale socket: {e}")))?;
        }
        Ok(_) => return Err(err("the path exists and is not a socket".into())),
        Err(_) => {}
    }
    // Made 0600 whatever the caller's umask (no window in which others may connect), then
    // opened to group skiff.
    // SAFETY: umask only swaps the process's file mode mask; no other thread exists yet.
    let old = unsafe { libc::umask(0o177) };
    let l = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above, restoring the mask.
    unsafe { libc::umask(old) };
    let l = l.map_err(|e| err(e.to_string()))?;
    if skiff_engine::rootless::active() {
        // A user's server is the user's alone: its socket stays 0600 and the user's (root of
        // the rootless namespace is the user on the host); no group could be mapped anyway.
        return Ok(l);
    }
    match skiff_group() {
        Some(gid) => {
            std::os::unix::fs::lchown(path, Some(0), Some(gid))
                .map_err(|e| err(format!("chown root:skiff: {e}")))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                .map_err(|e| err(format!("chmod 0660: {e}")))?;
        }
        None => eprintln!(
            "skiff serve: no group 'skiff' and groupadd failed: {} stays root-only (0600)",
            path.display()
        ),
    }
    Ok(l)
}

/// Binds every `-H` address (before the runtime's threads start); `fd://` takes the sockets
/// systemd passed. TCP listeners are checked against the TLS settings.
pub(crate) fn bind_all(hosts: &[Host], tls: &crate::tls::Tls) -> Result<Vec<Bound>, ServeError> {
    let mut out = Vec::new();
    let mut activated = None;
    for h in hosts {
        match h {
            Host::Unix(p) => out.push(Bound::Unix(bind_unix(p)?)),
            Host::Tcp(a) => {
                tls.check_tcp(a)?;
                let l = std::net::TcpListener::bind(a).map_err(|e| ServeError::Listen {
                    addr: format!("tcp://{a}"),
                    msg: e.to_string(),
                })?;
                out.push(Bound::Tcp(l));
            }
            Host::Fd(which) => {
                if activated.is_none() {
                    activated = Some(crate::activation::take()?);
                }
                let fds = activated.as_mut().map(std::mem::take).unwrap_or_default();
                let (picked, rest): (Vec<_>, Vec<_>) = fds
                    .into_iter()
                    .partition(|(fd, _)| which.is_none_or(|w| w == *fd));
                if picked.is_empty() {
                    return Err(ServeError::Listen {
                        addr: format!("fd://{}", which.map(|w| w.to_string()).unwrap_or_default()),
                        msg: "no such socket passed by socket activation (LISTEN_FDS)".into(),
                    });
                }
                activated = Some(rest);
                for (_, b) in picked {
                    if let Bound::Tcp(l) = &b {
                        if let Ok(a) = l.local_addr() {
                            tls.check_tcp(&a)?;
                        }
                    }
                    out.push(b);
                }
            }
        }
    }
    Ok(out)
}

/// Removes the unix sockets this server made.
pub(crate) fn cleanup(hosts: &[Host]) {
    for h in hosts {
        if let Host::Unix(p) = h {
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

fn serve_conn<I>(io: I, state: Arc<State>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(crate::hijack::serve(io, state));
}

/// Accepts connections until SIGINT/SIGTERM.
pub(crate) async fn run(
    listeners: Vec<Bound>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
) -> Result<(), ServeError> {
    let io_err = |e: std::io::Error| ServeError::Listen {
        addr: "listener".into(),
        msg: e.to_string(),
    };
    for l in listeners {
        let st = state.clone();
        match l {
            Bound::Unix(l) => {
                l.set_nonblocking(true).map_err(io_err)?;
                let l = tokio::net::UnixListener::from_std(l).map_err(io_err)?;
                tokio::spawn(async move {
                    loop {
                        match l.accept().await {
                            Ok((s, _)) => serve_conn(s, st.clone()),
                            Err(_) => {
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await
                            }
                        }
                    }
                });
            }
            Bound::Tcp(l) => {
                l.set_nonblocking(true).map_err(io_err)?;
                let l = tokio::net::TcpListener::from_std(l).map_err(io_err)?;
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    loop {
                        match l.accept().await {
                            Ok((s, _)) => match &acceptor {
                                Some(a) => crate::tls::serve(a.clone(), s, st.clone()),
                                None => serve_conn(s, st.clone()),
                            },
                            Err(_) => {
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await
                            }
                        }
                    }
                });
            }
        }
    }
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(io_err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io_err)?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Monitors are spawned by the engine as children of this process (as of the CLI, which exits
/// right after); a long-lived server must collect them when they end. Only zombies that are not
/// `skiff` processes of our own (exec relays, awaited by tokio) are reaped.
pub(crate) fn start_reaper() {
    std::thread::spawn(|| loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(t.path().join("children")) else {
                continue;
            };
            for pid in children
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                    continue;
                };
                let comm = &stat[open + 1..close];
                let zombie = stat[close + 1..].trim_start().starts_with('Z');
                if zombie && comm != "skiff" {
                    // SAFETY: waitpid on one of our own zombie children, non-blocking.
                    unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
                }
            }
        }
    });
}
