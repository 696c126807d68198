//! The engine's side of skiff-net: which network a container's `--network` names, attaching it
//! before its monitor starts (the namespace at `<runroot>/netns/<id>` is what the OCI spec joins),
//! detaching when it exits, freeing its address on `rm`, and the /etc/hosts of containers on a
//! user-defined network (their peers' names: skiff's daemonless container DNS), rewritten in
//! place — the files are bind-mounted, so a rename would not reach a running container.

use std::collections::BTreeMap;
use std::path::PathBuf;

use skiff_net::{AttachRequest, Net, PortRequest};

use crate::error::{Error, Result};
use crate::model::{Container, PortBinding};
use crate::Engine;
use skiff_image::perms;

/// Whether `mode` puts the container on a bridge network (the default one or a user's).
pub fn is_bridge(mode: &str) -> bool {
    !matches!(
        mode,
        "" | "none" | "host" | "default" | "pasta" | "slirp4netns"
    ) && !mode.starts_with("container:")
}

/// Whether `mode` is `pasta`: user-mode networking through Debian's passt package (rootless).
pub fn is_pasta(mode: &str) -> bool {
    mode == "pasta"
}

/// Whether `mode` is `slirp4netns`: user-mode networking through Debian's slirp4netns (rootless).
pub fn is_slirp(mode: &str) -> bool {
    mode == "slirp4netns"
}

/// Whether `mode` is a user-mode network (pasta or slirp4netns): a namespace of the engine's
/// whose traffic, and published ports, a process of the user's forwards.
pub fn is_user_mode(mode: &str) -> bool {
    is_pasta(mode) || is_slirp(mode)
}

/// The slirp4netns binary when installed.
pub fn slirp_binary() -> Option<PathBuf> {
    ["/usr/bin/slirp4netns", "/usr/local/bin/slirp4netns"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The file (in the container's run dir) holding its slirp4netns's pid.
const SLIRP_PID: &str = "slirp4netns.pid";

/// The file (in the container's run dir) listing the ports a user-mode network forwards, one
/// `HOST_IP HOST_PORT PORT PROTO` line each (host ports chosen for `-p PORT` included).
const FORWARDED: &str = "forwarded-ports";

/// A free `proto` port on `ip` (the kernel's choice), for a `-p PORT` forwarded by a user-mode
/// network, which needs an explicit host port.
fn free_port(ip: std::net::IpAddr, proto: &str) -> std::io::Result<u16> {
    Ok(match proto {
        "udp" => std::net::UdpSocket::bind((ip, 0))?.local_addr()?.port(),
        _ => std::net::TcpListener::bind((ip, 0))?.local_addr()?.port(),
    })
}

/// The pasta binary when installed.
pub fn pasta_binary() -> Option<PathBuf> {
    ["/usr/bin/pasta", "/usr/local/bin/pasta", "/usr/sbin/pasta"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The file (in the container's run dir) holding its pasta's pid.
const PASTA_PID: &str = "pasta.pid";

/// Moves the calling thread into the rootless user's hub network namespace
/// (`<rundir>/hub.netns`, made on first use with `lo` up; owned by the rootless user namespace,
/// kept by a bind mount in the rootless mount namespace): where rootless user networks keep their
/// bridges, as podman's rootless netns. Once per thread.
fn enter_hub() -> Result<()> {
    use std::os::fd::AsRawFd;
    thread_local! {
        static IN_HUB: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if IN_HUB.with(|c| c.get()) {
        return Ok(());
    }
    let rd = crate::rootless::run_root().map_err(|e| Error::Invalid(e.to_string()))?;
    let hub = rd.join("hub.netns");
    let lock_path = rd.join("hub.lock");
    let lock = perms::lock_file(&lock_path)
        .map_err(|e| Error::Invalid(format!("open {}: {e}", lock_path.display())))?;
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    let is_ns = nix::sys::statfs::statfs(&hub).is_ok_and(
        |s| s.filesystem_type().0 == 0x6e73_6673, /* NSFS_MAGIC */
    );
    if !is_ns {
        let (_f, mut nl) = skiff_net::netns::create(&hub).map_err(net_err)?;
        nl.set_up(1)
            .map_err(|e| Error::Invalid(format!("rootless hub network namespace: lo: {e}")))?;
        start_hub_pasta(&rd, &hub);
    }
    let f = std::fs::File::open(&hub)
        .map_err(|e| Error::Invalid(format!("open {}: {e}", hub.display())))?;
    // SAFETY: setns of the calling thread into a network namespace we opened.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(Error::Invalid(format!(
            "rootless: enter the hub network namespace: {}",
            std::io::Error::last_os_error()
        )));
    }
    IN_HUB.with(|c| c.set(true));
    Ok(())
}

/// True when skiff runs rootless and the user's hub network namespace has not been made (so no
/// container of the user is on a user network).
pub fn hub_missing() -> bool {
    crate::rootless::active()
        && crate::rootless::run_root().is_ok_and(|rd| {
            !nix::sys::statfs::statfs(&rd.join("hub.netns")).is_ok_and(|s| {
                s.filesystem_type().0 == 0x6e73_6673
            } /* NSFS_MAGIC */)
        })
}

/// The way out of the hub: pasta attached to it (`--config-net`: a tap with the host's address
/// and default route; the bridges' subnets are masqueraded out of it by skiff-net's rules),
/// forwarding nothing inward. Best effort: without pasta (or /dev/net/tun open to the user)
/// user networks stay internal. Its pid is in `<rundir>/hub-pasta.pid`;
/// [`crate::rootless::stop_pause`] stops it.
fn start_hub_pasta(rundir: &std::path::Path, hub: &std::path::Path) {
    let Some(bin) = pasta_binary() else { return };
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .is_err()
    {
        return;
    }
    let pidfile = rundir.join(crate::rootless::HUB_PASTA_PID);
    let _ = std::process::Command::new(bin)
        .args(["--config-net", "--quiet", "--netns"])
        .arg(hub)
        .arg("--pid")
        .arg(&pidfile)
        .args(["-t", "none", "-u", "none", "-T", "none", "-U", "none"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// skiff-net's error as the engine's (exit 125, message kept).
pub fn net_err(e: skiff_net::Error) -> Error {
    match e {
        skiff_net::Error::NotFound(n) => Error::Invalid(format!("network {n} not found")),
        e => Error::Invalid(e.to_string()),
    }
}

/// `-p` values and `-P` as docker records them in HostConfig.PortBindings (keys `80/tcp`).
pub fn port_bindings(publish: &[String]) -> Result<BTreeMap<String, Vec<PortBinding>>> {
    let mut out: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for p in publish {
        for r in skiff_net::ports::parse(p).map_err(net_err)? {
            out.entry(format!("{}/{}", r.port, r.proto))
                .or_default()
                .push(PortBinding {
                    host_ip: r.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    host_port: match (r.host_port, r.host_port_end) {
                        (0, _) => String::new(),
                        (a, b) if b > a => format!("{a}-{b}"),
                        (a, _) => a.to_string(),
                    },
                });
        }
    }
    Ok(out)
}

/// An API client's `HostConfig.PortBindings`, checked as `-p` values are (keys `PORT[/PROTO]`,
/// host ports numbers or ranges, host addresses IPs); keys come back as `PORT/PROTO`.
pub fn check_port_bindings(
    pb: &BTreeMap<String, Vec<PortBinding>>,
) -> Result<BTreeMap<String, Vec<PortBinding>>> {
    let mut out: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for (k, v) in pb {
        let key = if k.contains('/') {
            k.clone()
        } else {
            format!("{k}/tcp")
        };
        let (port, proto) = key.split_once('/').unwrap_or((&key, "tcp"));
        if port.parse::<u16>().map_or(true, |p| p == 0) || !["tcp", "udp", "sctp"].contains(&proto)
        {
            return Err(Error::Invalid(format!(
                "invalid port specification: \"{k}\""
            )));
        }
        let list = if v.is_empty() {
            vec![PortBinding::default()]
        } else {
            v.clone()
        };
        for b in list {
            if !b.host_ip.is_empty() && b.host_ip.parse::<std::net::IpAddr>().is_err() {
                return Err(Error::Invalid(format!("invalid IP address: {}", b.host_ip)));
            }
            if !b.host_port.is_empty() && b.host_port.parse::<u16>().is_err() {
                return Err(Error::Invalid(format!(
                    "invalid port specification: \"{}\"",
                    b.host_port
                )));
            }
            out.entry(key.clone()).or_default().push(b);
        }
    }
    Ok(out)
}

/// The port requests of a container: its bindings, plus its exposed ports under `-P`.
fn port_requests(c: &Container) -> Result<Vec<PortRequest>> {
    let mut out = Vec::new();
    let mut bound = std::collections::BTreeSet::new();
    for (k, v) in c.host_config.port_bindings.iter().flatten() {
        bound.insert(k.clone());
        for b in v {
            let spec = if b.host_ip.contains(':') {
                format!("[{}]:{}:{k}", b.host_ip, b.host_port)
            } else {
                format!("{}:{}:{k}", b.host_ip, b.host_port)
            };
            out.extend(skiff_net::ports::parse(&spec).map_err(net_err)?);
        }
    }
    if c.host_config.publish_all_ports {
        let exposed: Vec<String> = c
            .config
            .exposed_ports
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .filter(|k| !bound.contains(k))
            .collect();
        out.extend(skiff_net::ports::publish_all(&exposed).map_err(net_err)?);
    }
    Ok(out)
}

impl Engine {
    /// The networks of this engine's root.
    pub fn net(&self) -> Result<Net<'_>> {
        if crate::rootless::active() {
            // Bridges, veths and nft rules of rootless user networks live in the user's hub
            // network namespace, never the host's.
            enter_hub()?;
        }
        Net::new(&self.conn, &self.root, &self.runroot).map_err(net_err)
    }

    /// `--network` at create time: the mode to record (`bridge` for the default network unless
    /// daemon.json disables it; a user network by its name, which must exist).
    pub fn resolve_network(&self, mode: &str) -> Result<String> {
        if is_slirp(mode) {
            return match slirp_binary() {
                Some(_) => Ok(mode.into()),
                None => Err(Error::Invalid(
                    "network slirp4netns: the slirp4netns binary is not installed (Debian package slirp4netns)"
                        .into(),
                )),
            };
        }
        if is_pasta(mode) {
            return match pasta_binary() {
                Some(_) => Ok(mode.into()),
                None => Err(Error::Invalid(
                    "network pasta: the pasta binary is not installed (Debian package passt)"
                        .into(),
                )),
            };
        }
        if crate::rootless::active() {
            // No bridge without privilege: no network by default (`--network pasta` for one),
            // and a clear refusal of the bridged kinds.
            if mode == "default" {
                return Ok("default".into());
            }
            if mode == "bridge" {
                return Err(Error::Invalid(
                    "network bridge: rootless containers have no default bridge; use --network pasta, none, host or a network of your own (skiff network create)".into(),
                ));
            }
        }
        if mode == "default" {
            let net = self.net()?;
            return Ok(if net.cfg.bridge == "none" {
                "default".into()
            } else {
                "bridge".into()
            });
        }
        if let Some(peer) = mode.strip_prefix("container:") {
            // Recorded by id, as --pid/--ipc container:X are; it must be running at start.
            return Ok(format!("container:{}", self.resolve_id(peer)?));
        }
        if !is_bridge(mode) {
            return Ok(mode.to_string());
        }
        let net = self.net()?;
        if mode == "bridge" && net.cfg.bridge == "none" {
            return Err(Error::Invalid(
                "network bridge not found (the default bridge is disabled: \"bridge\": \"none\" in daemon.json)".into(),
            ));
        }
        Ok(net.find(mode, &crate::proc::now()).map_err(net_err)?.name)
    }

    /// The namespace path a bridge-networked container's spec joins.
    pub fn netns_path(&self, c: &Container) -> Option<PathBuf> {
        let m = &c.host_config.network_mode;
        (is_bridge(m) || is_user_mode(m)).then(|| skiff_net::netns::path(&self.runroot, &c.id))
    }

    /// `--network pasta`: a namespace of the engine's (lo up), then pasta attached to it from
    /// the host's side (`--config-net`: a tap with the host's address and routes), forwarding
    /// the published ports. pasta runs on as a daemon until [`Engine::detach_network`].
    fn attach_pasta(&self, c: &Container) -> Result<()> {
        let bin = pasta_binary().ok_or_else(|| {
            Error::Invalid("network pasta: pasta is not installed (Debian package passt)".into())
        })?;
        let ports = user_mode_ports(c, "pasta")?;
        let mut tcp = Vec::new();
        let mut udp = Vec::new();
        for p in &ports {
            let spec = match p.host_ip {
                Some(ip) if !ip.is_unspecified() => format!("{ip}/{}:{}", p.host_port, p.port),
                _ => format!("{}:{}", p.host_port, p.port),
            };
            match p.proto.as_str() {
                "tcp" => tcp.push(spec),
                "udp" => udp.push(spec),
                other => {
                    return Err(Error::Invalid(format!(
                        "network pasta: cannot publish {other} ports"
                    )))
                }
            }
        }
        let ns = skiff_net::netns::path(&self.runroot, &c.id);
        let (_f, mut nl) = skiff_net::netns::create(&ns).map_err(net_err)?;
        let fail = |msg: String| {
            skiff_net::netns::remove(&ns);
            Error::Invalid(format!("container \"{}\": network pasta: {msg}", c.name))
        };
        nl.set_up(1).map_err(|e| fail(format!("set lo up: {e}")))?;
        let rd = self.run_dir(&c.id);
        perms::mkdir(&rd, perms::PRIVATE_DIR)
            .map_err(|e| fail(format!("create {}: {e}", rd.display())))?;
        let pidfile = rd.join(PASTA_PID);
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["--config-net", "--quiet", "--netns"])
            .arg(&ns)
            .arg("--pid")
            .arg(&pidfile);
        // Nothing forwarded that was not asked for: -t/-u host → container, -T/-U the reverse.
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(",")
            }
        };
        cmd.args([
            "-t",
            &list(&tcp),
            "-u",
            &list(&udp),
            "-T",
            "none",
            "-U",
            "none",
        ]);
        let out = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| fail(format!("start pasta: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!(
                "pasta failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        record_ports(&rd, &ports);
        Ok(())
    }

    /// Stops a container's pasta or slirp4netns (when it has one) and drops its namespace; true
    /// if it had one.
    fn detach_pasta(&self, id: &str) -> bool {
        let rd = self.run_dir(id);
        let mut had = false;
        for file in [PASTA_PID, SLIRP_PID] {
            let pidfile = rd.join(file);
            let Ok(text) = std::fs::read_to_string(&pidfile) else {
                continue;
            };
            had = true;
            if let Ok(pid) = text.trim().parse::<i32>() {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                // pasta runs as `passt.avx2` where the CPU has AVX2 (it re-executes itself).
                let comm = comm.trim();
                let ours = comm.starts_with("pasta")
                    || comm.starts_with("passt")
                    || comm.starts_with("slirp4netns");
                if pid > 1 && ours {
                    // SAFETY: kill with integer arguments; the pid is the forwarder this
                    // container started.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
            }
            let _ = std::fs::remove_file(&pidfile);
        }
        if !had {
            return false;
        }
        let _ = std::fs::remove_file(rd.join(FORWARDED));
        skiff_net::netns::remove(&skiff_net::netns::path(&self.runroot, id));
        true
    }

    /// `--network slirp4netns`: a namespace of the engine's (lo up), slirp4netns attached to it
    /// (`--configure`: tap0 10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3; the host's loopback
    /// unreachable from the container, as podman's default), then each published port added
    /// through its API socket (`add_hostfwd`). slirp4netns runs on, in a session of its own,
    /// until [`Engine::detach_network`].
    fn attach_slirp(&self, c: &Container) -> Result<()> {
        use std::io::{Read, Write};
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        let bin = slirp_binary().ok_or_else(|| {
            Error::Invalid(
                "network slirp4netns: slirp4netns is not installed (Debian package slirp4netns)"
                    .into(),
            )
        })?;
        let ports = user_mode_ports(c, "slirp4netns")?;
        if let Some(p) = ports
            .iter()
            .find(|p| !matches!(p.proto.as_str(), "tcp" | "udp"))
        {
            return Err(Error::Invalid(format!(
                "network slirp4netns: cannot publish {} ports",
                p.proto
            )));
        }
        let ns = skiff_net::netns::path(&self.runroot, &c.id);
        let (_f, mut nl) = skiff_net::netns::create(&ns).map_err(net_err)?;
        let rd = self.run_dir(&c.id);
        let pidfile = rd.join(SLIRP_PID);
        let mut child: Option<std::process::Child> = None;
        let fail = |child: &mut Option<std::process::Child>, msg: String| {
            if let Some(ch) = child.as_mut() {
                let _ = ch.kill();
                let _ = ch.wait();
            }
            let _ = std::fs::remove_file(rd.join(SLIRP_PID));
            skiff_net::netns::remove(&ns);
            Error::Invalid(format!(
                "container \"{}\": network slirp4netns: {msg}",
                c.name
            ))
        };
        if let Err(e) = nl.set_up(1) {
            return Err(fail(&mut child, format!("set lo up: {e}")));
        }
        if let Err(e) = perms::mkdir(&rd, perms::PRIVATE_DIR) {
            return Err(fail(&mut child, format!("create {}: {e}", rd.display())));
        }
        let log_path = rd.join("slirp4netns.log");
        let _ = std::fs::remove_file(&log_path);
        let log = match perms::create_private(&log_path) {
            Ok(f) => f,
            Err(e) => {
                return Err(fail(
                    &mut child,
                    format!("create {}: {e}", log_path.display()),
                ))
            }
        };
        let mut p = [0i32; 2];
        // SAFETY: pipe2 writes two descriptors into our array.
        if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(fail(&mut child, format!("pipe: {e}")));
        }
        // SAFETY: fresh descriptors nobody else owns.
        let (ready_r, ready_w) =
            unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
        let wfd = ready_w.as_raw_fd();
        let mut cmd = std::process::Command::new(bin);
        cmd.args([
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--netns-type=path",
            // Relative to its working directory, the run dir: a socket path has 108 bytes.
            "--api-socket",
            "api.sock",
            "-r",
            "3",
        ])
        .arg(&ns)
        .arg("tap0")
        .current_dir(&rd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
        // SAFETY: between fork and exec only async-signal-safe calls (setsid, dup2) on
        // descriptors we own.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                // dup2 clears close-on-exec on the copy: fd 3 is the ready pipe.
                if libc::dup2(wfd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(ch) => child = Some(ch),
            Err(e) => return Err(fail(&mut child, format!("start slirp4netns: {e}"))),
        }
        drop(ready_w);
        // "1" once tap0 is configured; EOF if it died first.
        let mut b = [0u8; 1];
        let ready = std::fs::File::from(ready_r)
            .read(&mut b)
            .is_ok_and(|n| n == 1);
        if !ready {
            let msg = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(fail(
                &mut child,
                format!("slirp4netns failed: {}", msg.trim()),
            ));
        }
        let pid = child.as_ref().map_or(0, |ch| ch.id());
        if let Err(e) = perms::write_file(&pidfile, pid.to_string().as_bytes(), perms::PRIVATE_FILE)
        {
            return Err(fail(
                &mut child,
                format!("write {}: {e}", pidfile.display()),
            ));
        }
        for p in &ports {
            let host = p
                .host_ip
                .filter(|ip| !ip.is_unspecified())
                .map_or("0.0.0.0".to_string(), |ip| ip.to_string());
            let req = serde_json::json!({
                "execute": "add_hostfwd",
                "arguments": {"proto": p.proto, "host_addr": host, "host_port": p.host_port, "guest_port": p.port}
            });
            let answer = (|| -> std::io::Result<String> {
                let mut s = connect_long(&rd.join("api.sock"))?;
                s.write_all(req.to_string().as_bytes())?;
                s.shutdown(std::net::Shutdown::Write)?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out)
            })();
            match answer {
                Ok(a) if a.contains("\"return\"") => {}
                Ok(a) => {
                    return Err(fail(
                        &mut child,
                        format!(
                            "forward {host}:{}->{}/{}: {}",
                            p.host_port,
                            p.port,
                            p.proto,
                            a.trim()
                        ),
                    ))
                }
                Err(e) => return Err(fail(&mut child, format!("its API socket: {e}"))),
            }
        }
        record_ports(&rd, &ports);
        Ok(())
    }

    /// Attaches `c` to its network before its process starts: namespace, veth, address,
    /// published ports; then its /etc/hosts and its peers'.
    pub fn attach_network(&self, c: &Container) -> Result<()> {
        if is_pasta(&c.host_config.network_mode) {
            return self.attach_pasta(c);
        }
        if is_slirp(&c.host_config.network_mode) {
            return self.attach_slirp(c);
        }
        if !is_bridge(&c.host_config.network_mode) {
            return Ok(());
        }
        let net = self.net()?;
        if c.network_detached {
            net.attach_bare(&c.id, &c.name).map_err(net_err)?;
            self.write_hosts(&net, &c.id, true);
            return Ok(());
        }
        let n = net
            .find(&c.host_config.network_mode, &crate::proc::now())
            .map_err(net_err)?;
        let req = AttachRequest {
            container: c.id.clone(),
            name: c.name.clone(),
            ip: match &c.host_config.ip_address {
                Some(s) => Some(
                    s.parse()
                        .map_err(|_| Error::Invalid(format!("invalid IPv4 address: {s}")))?,
                ),
                None => None,
            },
            mac: c.host_config.mac_address.clone(),
            ports: port_requests(c)?,
            // `--network-alias` (compose: its aliases on this network) name it there.
            aliases: c.aliases_on(&n.name).to_vec(),
        };
        net.attach(&n, &req).map_err(net_err)?;
        self.write_hosts(&net, &c.id, true);
        Ok(())
    }

    /// Undoes [`Engine::attach_network`] when the container stops (its address is kept).
    pub fn detach_network(&self, id: &str) {
        // Every exit comes here: a stat keeps containers without a bridge network (no namespace
        // of ours) off the database.
        if !skiff_net::netns::path(&self.runroot, id).exists() || self.detach_pasta(id) {
            return;
        }
        if let Ok(net) = self.net() {
            let _ = net.detach(id);
        }
    }

    /// Frees the container's addresses (on `rm`) and drops its name from its peers' hosts.
    pub fn release_network(&self, id: &str) -> Result<()> {
        let net = self.net()?;
        let peers: Vec<String> = net
            .peers(id)
            .map_err(net_err)?
            .into_iter()
            .map(|p| p.container)
            .collect();
        net.release(id).map_err(net_err)?;
        for p in peers {
            self.write_hosts(&net, &p, false);
        }
        Ok(())
    }

    /// Gives a renamed container its new name on its networks and in its peers' /etc/hosts
    /// (best effort: a container never attached has nothing to update).
    pub fn rename_network(&self, id: &str, name: &str) {
        let Ok(net) = self.net() else { return };
        if net.endpoints(id).map(|e| e.is_empty()).unwrap_or(true) {
            return;
        }
        if net.rename(id, name).is_ok() {
            self.write_hosts(&net, id, true);
        }
    }

    /// Rewrites the /etc/hosts of `id` (its address, hostname and peers), and with `peers` the
    /// files of everyone on its user networks.
    fn write_hosts(&self, net: &Net<'_>, id: &str, peers: bool) {
        let Ok(Some(c)) = self.get(id) else { return };
        let Ok(mine) = net.endpoints(id) else { return };
        let Ok(others) = net.peers(id) else { return };
        let mut s = String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        );
        let host = match c.config.domainname.as_str() {
            "" => c.config.hostname.clone(),
            d => format!("{}.{d}\t{}", c.config.hostname, c.config.hostname),
        };
        if let Some(e) = mine.first() {
            // On a user network the container's own names resolve too, as with docker's DNS.
            if e.network.name != "bridge" {
                let names: Vec<String> = dns_names(&c, &e.aliases)
                    .into_iter()
                    .filter(|n| *n != c.config.hostname)
                    .collect();
                let tail: String = names.iter().map(|n| format!("\t{n}")).collect();
                s.push_str(&format!("{}\t{host}{tail}\n", e.ip));
                if let Some(ip6) = e.ip6() {
                    s.push_str(&format!("{ip6}\t{host}{tail}\n"));
                }
            } else {
                s.push_str(&format!("{}\t{host}\n", e.ip));
            }
        }
        let gw = mine.first().map(|e| e.network.gateway);
        if let Ok(extra) = extra_hosts(c.host_config.extra_hosts.as_deref().unwrap_or_default(), gw)
        {
            s.push_str(&extra.join(""));
        }
        // One line per peer address: its names on that network (its aliases there).
        let mut seen = std::collections::BTreeSet::new();
        for p in &others {
            if seen.insert((p.container.clone(), p.ip)) {
                // Its name, aliases and short id (docker 28's DNSNames), by its current name.
                let names = match self.get(&p.container).ok().flatten() {
                    Some(pc) => {
                        let mut v = dns_names(&pc, &p.aliases);
                        if v.first() != Some(&p.name) {
                            v.insert(0, p.name.clone());
                        }
                        v
                    }
                    None => vec![p.name.clone()],
                };
                s.push_str(&format!("{}\t{}\n", p.ip, names.join("\t")));
                if let Some(ip6) = p.ip6() {
                    s.push_str(&format!("{ip6}\t{}\n", names.join("\t")));
                }
            }
        }
        let path = self.container_dir(id).join("hosts");
        // In place: the container sees this inode through its bind mount.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
        {
            use std::io::Write;
            let _ = f.write_all(s.as_bytes());
        }
        if peers {
            // Once per peer, however many networks it shares with `id`.
            let mut done = std::collections::BTreeSet::new();
            for p in others {
                if done.insert(p.container.clone()) {
                    self.write_hosts(net, &p.container, false);
                }
            }
        }
    }
}

/// The network a container is on, as `ps` shows it (`none` for no network).
pub fn network_name(c: &Container) -> &str {
    match c.host_config.network_mode.as_str() {
        "default" | "" => "none",
        m => m,
    }
}

impl Engine {
    /// The ports a container on a user-mode network (pasta, slirp4netns) has forwarded: the
    /// recorded ones while it runs (host ports chosen for `-p PORT` included), else its requests.
    pub fn forwarded_ports(&self, c: &Container) -> Vec<PortRequest> {
        forwarded_ports(&self.run_dir(&c.id))
            .unwrap_or_else(|| port_requests(c).unwrap_or_default())
    }

    /// `ps`'s PORTS: `0.0.0.0:8080->80/tcp, 443/tcp` (published, then exposed-only ports).
    pub fn ports_text(&self, c: &Container) -> String {
        if is_user_mode(&c.host_config.network_mode) {
            // pasta and slirp4netns forward what was asked (with the host ports chosen for
            // `-p PORT` while the container runs).
            return self
                .forwarded_ports(c)
                .iter()
                .map(|p| {
                    let ip = p.host_ip.map_or("0.0.0.0".into(), |i| i.to_string());
                    format!("{ip}:{}->{}/{}", p.host_port, p.port, p.proto)
                })
                .collect::<Vec<_>>()
                .join(", ");
        }
        if !is_bridge(&c.host_config.network_mode) {
            return String::new();
        }
        let eps = self
            .net()
            .and_then(|n| n.endpoints(&c.id).map_err(net_err))
            .unwrap_or_default();
        let mut published = std::collections::BTreeSet::new();
        let mut ports: Vec<PsPort> = Vec::new();
        for p in eps.iter().flat_map(|e| &e.ports) {
            published.insert(format!("{}/{}", p.port, p.proto));
            ports.push(PsPort {
                private: p.port,
                ip: p.host_ip.clone(),
                public: p.host_port,
                proto: p.proto.clone(),
            });
        }
        for k in c.config.exposed_ports.iter().flatten().map(|(k, _)| k) {
            if published.contains(k) {
                continue;
            }
            let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            if let Ok(private) = port.parse() {
                ports.push(PsPort {
                    private,
                    ip: String::new(),
                    public: 0,
                    proto: proto.to_string(),
                });
            }
        }
        displayable_ports(ports)
    }
}

/// One port of a `ps` row (docker's `container.Port`): exposed only when `ip` is empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PsPort {
    /// The container's port.
    pub private: u16,
    /// The host address it is published on (empty: not published).
    pub ip: String,
    /// The host port.
    pub public: u16,
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
}

/// docker's `DisplayablePorts`: ports sorted by (port, ip, host port, proto); runs of
/// consecutive exposed ports (and of ports published on the same number) grouped as `90-91/tcp`
/// first, in the order their groups appeared, then the other host mappings
/// (`127.0.0.1:8080->80/tcp`).
pub fn displayable_ports(mut ports: Vec<PsPort>) -> String {
    ports.sort();
    let join = |ip: &str, port: &str| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    let form = |(ip, proto): &(String, String), first: u16, last: u16| {
        let mut g = first.to_string();
        if first != last {
            g = format!("{g}-{last}");
        }
        if !ip.is_empty() {
            g = format!("{}->{g}", join(ip, &g));
        }
        format!("{g}/{proto}")
    };
    let mut groups: Vec<((String, String), u16, u16)> = Vec::new();
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    for p in ports {
        if !p.ip.is_empty() && p.public != p.private {
            mappings.push(format!(
                "{}->{}/{}",
                join(&p.ip, &p.public.to_string()),
                p.private,
                p.proto
            ));
            continue;
        }
        let key = (p.ip, p.proto);
        match groups.iter_mut().find(|g| g.0 == key) {
            None => groups.push((key, p.private, p.private)),
            Some(g) if g.2.checked_add(1) == Some(p.private) => g.2 = p.private,
            Some(g) => {
                result.push(form(&g.0, g.1, g.2));
                g.1 = p.private;
                g.2 = p.private;
            }
        }
    }
    for g in &groups {
        result.push(form(&g.0, g.1, g.2));
    }
    result.extend(mappings);
    result.join(", ")
}

/// The names a container answers to on a user network where it has `aliases`, docker 28's
/// `DNSNames`: its name, those aliases, its short id and its hostname, without repeats.
pub fn dns_names(c: &Container, aliases: &[String]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let all = std::iter::once(c.name.clone())
        .chain(aliases.iter().cloned())
        .chain(std::iter::once(c.short_id().to_string()))
        .chain(std::iter::once(c.config.hostname.clone()));
    for n in all {
        if !n.is_empty() && !v.contains(&n) {
            v.push(n);
        }
    }
    v
}

/// `--add-host host:ip` (or `host=ip`) values as /etc/hosts lines; `host-gateway` stands for
/// `gateway`, the gateway of the container's network (`None`: not known yet, checked only).
pub fn extra_hosts(v: &[String], gateway: Option<std::net::Ipv4Addr>) -> Result<Vec<String>> {
    v.iter()
        .map(|h| {
            let (name, ip) = h
                .split_once('=')
                .or_else(|| h.split_once(':'))
                .ok_or_else(|| {
                    crate::flags::bad_flag(
                        "--add-host",
                        h,
                        format!("bad format for add-host: \"{h}\""),
                    )
                })?;
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            if ip == "host-gateway" && !name.is_empty() {
                return Ok(match gateway {
                    Some(g) => format!("{g}\t{name}\n"),
                    None => String::new(),
                });
            }
            if name.is_empty() || ip.parse::<std::net::IpAddr>().is_err() {
                return Err(Error::Invalid(format!(
                    "invalid IP address in add-host: \"{ip}\""
                )));
            }
            Ok(format!("{ip}\t{name}\n"))
        })
        .collect()
}

/// Whether containers on `network` use the embedded DNS server at 127.0.0.11 (docker: the
/// user-defined networks; the default bridge, host, none and container:X do not).
pub fn embedded_dns(network: &str) -> bool {
    !matches!(
        network,
        "bridge" | "default" | "host" | "none" | "pasta" | "slirp4netns" | ""
    ) && !network.starts_with("container:")
}

/// resolv.conf of a container on a user network: the embedded server, the host's search
/// domains (or `--dns-search`), `ndots:0` as docker writes, and `--dns-option`s.
pub fn resolv_conf_embedded(search: &[String], opts: &[String]) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = format!("nameserver {}\n", skiff_net::dns::ADDR);
    if search.is_empty() {
        for l in host.lines() {
            let t = l.trim_start();
            if t.starts_with("search") || t.starts_with("domain") {
                out.push_str(t);
                out.push('\n');
            }
        }
    } else {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    let mut o = vec!["ndots:0".to_string()];
    o.extend(opts.iter().filter(|x| !x.starts_with("ndots:")).cloned());
    if let Some(n) = opts.iter().find(|x| x.starts_with("ndots:")) {
        o[0] = n.clone();
    }
    out.push_str(&format!("options {}\n", o.join(" ")));
    out
}

/// The upstream servers the embedded DNS server forwards to: `--dns`, else the host's.
pub fn dns_upstreams(dns: &[String]) -> String {
    if !dns.is_empty() {
        return dns.iter().map(|d| format!("{d}\n")).collect();
    }
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    skiff_net::dns::parse_upstreams(
        &host
            .lines()
            .filter(|l| l.trim_start().starts_with("nameserver"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .iter()
    .map(|a| format!("{}\n", a.ip()))
    .collect()
}

/// The container's resolv.conf: `--dns`/`--dns-search`/`--dns-option` replace the host's
/// entries of the same kind, as in docker.
pub fn resolv_conf(network: &str, dns: &[String], search: &[String], opts: &[String]) -> String {
    let base = crate::spec::resolv_conf(network);
    if dns.is_empty() && search.is_empty() && opts.is_empty() {
        return base;
    }
    let mut out = String::new();
    for l in base.lines() {
        let t = l.trim_start();
        let replaced = (!dns.is_empty() && t.starts_with("nameserver"))
            || (!search.is_empty() && (t.starts_with("search") || t.starts_with("domain")))
            || (!opts.is_empty() && t.starts_with("options"));
        if !replaced {
            out.push_str(l);
            out.push('\n');
        }
    }
    for d in dns {
        out.push_str(&format!("nameserver {d}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !opts.is_empty() {
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

impl Engine {
    /// Records the names (besides its own) that peers resolve container `id` by on the network it
    /// was created on (and on those [`Engine::connect_network`] adds without aliases of their
    /// own); they reach the peers' /etc/hosts when it is attached or connected.
    pub fn set_network_aliases(&self, id: &str, aliases: &[String]) -> Result<()> {
        let _l = self.lock(id)?;
        let mut c = self
            .get(id)?
            .ok_or_else(|| Error::NoSuchContainer(id.into()))?;
        c.network_aliases = aliases.to_vec();
        self.set_record(&c)?;
        crate::create::write_record(&self.container_dir(id), &c)
    }

    /// Records the aliases of container `id` per network name (they replace the ones of
    /// [`Engine::set_network_aliases`] on the networks named).
    pub fn set_network_aliases_on(
        &self,
        id: &str,
        aliases: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<()> {
        let _l = self.lock(id)?;
        let mut c = self
            .get(id)?
            .ok_or_else(|| Error::NoSuchContainer(id.into()))?;
        c.network_aliases_on = aliases.clone();
        self.set_record(&c)?;
        crate::create::write_record(&self.container_dir(id), &c)
    }

    /// `network connect NET C`: an address on `NET` now, an interface now if C runs (else at
    /// its next start); the names on NET's containers' /etc/hosts are rewritten. C's aliases
    /// there are its recorded ones (compose gives a service its names on every network).
    pub fn connect_network(&self, network: &str, container: &str, ip: Option<&str>) -> Result<()> {
        self.connect_network_as(network, container, ip, None)
    }

    /// [`Engine::connect_network`] with the aliases C gets on NET (`network connect --alias`;
    /// `None`: its recorded ones).
    pub fn connect_network_as(
        &self,
        network: &str,
        container: &str,
        ip: Option<&str>,
        aliases: Option<&[String]>,
    ) -> Result<()> {
        self.connect_network_with(
            network,
            container,
            &EndpointOpts {
                ip,
                aliases,
                ..Default::default()
            },
        )
    }

    /// Records endpoint driver options of container `id` on network `net` (a name).
    pub fn set_network_driver_opts(
        &self,
        id: &str,
        net: &str,
        opts: &BTreeMap<String, String>,
    ) -> Result<()> {
        let _l = self.lock(id)?;
        self.record_driver_opts(id, net, opts)
    }

    fn record_driver_opts(
        &self,
        id: &str,
        net: &str,
        opts: &BTreeMap<String, String>,
    ) -> Result<()> {
        let mut c = self
            .get(id)?
            .ok_or_else(|| Error::NoSuchContainer(id.into()))?;
        if opts.is_empty() {
            if c.network_driver_opts.remove(net).is_none() {
                return Ok(());
            }
        } else {
            c.network_driver_opts.insert(net.to_string(), opts.clone());
        }
        self.set_record(&c)?;
        crate::create::write_record(&self.container_dir(id), &c)
    }

    /// [`Engine::connect_network_as`] with a MAC address and driver options too (`network
    /// connect --driver-opt`, `--network name=N,mac-address=…,driver-opt=…`).
    pub fn connect_network_with(
        &self,
        network: &str,
        container: &str,
        o: &EndpointOpts<'_>,
    ) -> Result<()> {
        let (ip, aliases) = (o.ip, o.aliases);
        if let Some(m) = o.mac {
            check_mac(m)?;
        }
        let id = self.resolve_id(container)?;
        let _l = self.lock(&id)?;
        let c = self.reconcile_locked(&id)?;
        if !is_bridge(&c.host_config.network_mode) {
            return Err(Error::Invalid(format!(
                "container {} is on network \"{}\": only containers on a bridge network can be connected to another",
                c.name,
                network_name(&c)
            )));
        }
        let net = self.net()?;
        let n = net.find(network, &crate::proc::now()).map_err(net_err)?;
        if c.network_detached && !c.is_active() && n.name == c.host_config.network_mode {
            // Back on its own network before it ever ran (docker-compose 1.x disconnects and
            // reconnects a created container to set its aliases): the record says so and the
            // start attaches it as usual, published ports included.
            let mut c = c.clone();
            c.network_detached = false;
            if let Some(a) = aliases {
                c.network_aliases_on.insert(n.name.clone(), a.to_vec());
            }
            if let Some(ip) = ip {
                c.host_config.ip_address = Some(ip.to_string());
            }
            if let Some(m) = o.mac {
                c.host_config.mac_address = Some(m.to_string());
            }
            if !o.driver_opts.is_empty() {
                c.network_driver_opts
                    .insert(n.name.clone(), o.driver_opts.clone());
            }
            self.set_record(&c)?;
            return crate::create::write_record(&self.container_dir(&id), &c);
        }
        let req = AttachRequest {
            container: c.id.clone(),
            name: c.name.clone(),
            ip: match ip {
                Some(s) => Some(
                    s.parse()
                        .map_err(|_| Error::Invalid(format!("invalid IPv4 address: {s}")))?,
                ),
                None => None,
            },
            mac: o.mac.map(str::to_string),
            ports: Vec::new(),
            aliases: aliases
                .map(<[String]>::to_vec)
                .unwrap_or_else(|| c.aliases_on(&n.name).to_vec()),
        };
        if !req.aliases.is_empty() && !embedded_dns(&n.name) {
            return Err(Error::Invalid(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        net.connect(&n, &req, c.is_active()).map_err(net_err)?;
        if let Err(e) = self.record_driver_opts(&c.id, &n.name, &o.driver_opts) {
            let _ = net.disconnect(&n, &c.id, &c.name);
            return Err(e);
        }
        self.write_hosts(&net, &c.id, true);
        Ok(())
    }

    /// `network disconnect NET C`.
    pub fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        let id = self.resolve_id(container)?;
        let _l = self.lock(&id)?;
        let c = self
            .get(&id)?
            .ok_or_else(|| Error::NoSuchContainer(container.into()))?;
        let net = self.net()?;
        let n = net.find(network, &crate::proc::now()).map_err(net_err)?;
        let peers: Vec<String> = net
            .endpoints_of(&n)
            .map_err(net_err)?
            .into_iter()
            .map(|e| e.container)
            .filter(|p| *p != id)
            .collect();
        let own_unattached = n.name == c.host_config.network_mode
            && !c.network_detached
            && !c.is_active()
            && !net
                .endpoints(&id)
                .map_err(net_err)?
                .iter()
                .any(|e| e.network.id == n.id);
        if !own_unattached {
            net.disconnect(&n, &id, &c.name).map_err(net_err)?;
        }
        self.record_driver_opts(&id, &n.name, &BTreeMap::new())?;
        if n.name == c.host_config.network_mode && !c.network_detached {
            // docker allows it: the container keeps its NetworkMode and is on no network (or
            // the ones connected since) until connected again.
            let mut c = c.clone();
            c.network_detached = true;
            self.set_record(&c)?;
            crate::create::write_record(&self.container_dir(&id), &c)?;
        }
        self.write_hosts(&net, &id, false);
        for p in peers {
            self.write_hosts(&net, &p, false);
        }
        Ok(())
    }
}

impl Engine {
    /// docker's `network inspect` object of `n`.
    pub fn network_json(&self, n: &skiff_net::Network) -> Result<serde_json::Value> {
        use serde_json::json;
        let net = self.net()?;
        let mut containers = serde_json::Map::new();
        for ep in net.endpoints_of(n).map_err(net_err)? {
            containers.insert(
                ep.container.clone(),
                json!({
                    "Name": ep.name,
                    "EndpointID": ep.endpoint_id,
                    "MacAddress": ep.mac,
                    "IPv4Address": format!("{}/{}", ep.ip, n.prefix),
                    "IPv6Address": match (ep.ip6(), n.subnet6()) {
                        (Some(a), Some((_, l))) => format!("{a}/{l}"),
                        _ => String::new(),
                    },
                }),
            );
        }
        let mut options = serde_json::Map::new();
        for (k, v) in &n.extra.options {
            options.insert(k.clone(), json!(v));
        }
        // docker shows the device only where it was given (`-o`) and on its default bridge.
        if n.name == "bridge" {
            options.insert(skiff_net::BRIDGE_NAME_OPT.into(), json!(n.bridge));
        }
        let mut ipam = json!({"Subnet": n.cidr()});
        if !n.extra.subnet_only {
            ipam["Gateway"] = json!(n.gateway.to_string());
        }
        if let Some(r) = &n.extra.ip_range {
            ipam["IPRange"] = json!(r);
        }
        Ok(json!({
            "Name": n.name,
            "Id": n.id,
            "Created": n.created,
            "Scope": "local",
            "Driver": "bridge",
            "EnableIPv4": true,
            "EnableIPv6": n.extra.subnet6.is_some(),
            "IPAM": {
                "Driver": "default",
                "Options": {},
                "Config": match (&n.extra.subnet6, &n.extra.gateway6) {
                    (Some(s6), Some(g6)) => json!([ipam, {"Subnet": s6, "Gateway": g6}]),
                    _ => json!([ipam]),
                },
            },
            "Internal": n.internal,
            "Attachable": n.extra.attachable,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": options,
            "Labels": n.labels,
        }))
    }

    /// `network inspect host|none` / `GET /networks/host`: docker's built-in networks and the
    /// containers on them.
    pub fn builtin_network_json(&self, name: &str) -> Result<serde_json::Value> {
        use serde_json::json;
        let (id, created) = self
            .net()?
            .builtin(name, &crate::proc::now())
            .map_err(net_err)?;
        let mut containers = serde_json::Map::new();
        for c in self
            .list()?
            .into_iter()
            .filter(|c| c.host_config.network_mode == name && c.is_active())
        {
            containers.insert(
                c.id.clone(),
                json!({"Name": c.name, "EndpointID": "", "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}),
            );
        }
        Ok(json!({
            "Name": name,
            "Id": id,
            "Created": created,
            "Scope": "local",
            "Driver": if name == "none" { "null" } else { "host" },
            "EnableIPv4": true,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": []},
            "Internal": false,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": {},
            "Labels": {},
        }))
    }

    /// `host` or `none` when `s` names one of docker's built-in networks (by name, id or id
    /// prefix of at least 3).
    pub fn builtin_network_name(&self, s: &str) -> Result<Option<&'static str>> {
        for name in ["host", "none"] {
            if s == name {
                return Ok(Some(name));
            }
            let (id, _) = self
                .net()?
                .builtin(name, &crate::proc::now())
                .map_err(net_err)?;
            if s.len() >= 3 && id.starts_with(s) {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Whether network `name` has a container on it (created on it, or connected): what
    /// `network ls --filter dangling=…` asks. The built-in networks count as used.
    pub fn network_in_use(&self, name: &str) -> Result<bool> {
        if matches!(name, "bridge" | "host" | "none") {
            return Ok(true);
        }
        let net = self.net()?;
        let n = net.find(name, &crate::proc::now()).map_err(net_err)?;
        if !net.endpoints_of(&n).map_err(net_err)?.is_empty() {
            return Ok(true);
        }
        Ok(self
            .list()?
            .iter()
            .any(|c| c.host_config.network_mode == n.name && !c.network_detached))
    }

    /// `network rm` / `DELETE /networks/{id}`: refused for the built-in networks and while
    /// containers are recorded on it (but for those disconnected from it). Returns its name.
    pub fn remove_network(&self, s: &str) -> Result<String> {
        if let Some(b) = self.builtin_network_name(s)? {
            return Err(Error::Invalid(format!(
                "{b} is a pre-defined network and cannot be removed"
            )));
        }
        let net = self.net()?;
        let n = net.find(s, &crate::proc::now()).map_err(net_err)?;
        let users: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|c| c.host_config.network_mode == n.name && !c.network_detached)
            .map(|c| c.name)
            .collect();
        if !users.is_empty() && n.name != "bridge" {
            return Err(Error::State(format!(
                "error while removing network: network {} id {} has active endpoints ({})",
                n.name,
                n.id,
                users.join(", ")
            )));
        }
        net.remove(&n.id).map_err(net_err)?;
        Ok(n.name)
    }
}

/// The port requests of a container on a user-mode network (`what` names it in errors): host
/// ports below the unprivileged start refused for a user (naming the sysctl), `-p PORT`'s host
/// port chosen now (a free one).
fn user_mode_ports(c: &Container, what: &str) -> Result<Vec<PortRequest>> {
    let mut ports = port_requests(c)?;
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    for p in &mut ports {
        if p.host_port == 0 {
            let ip = p
                .host_ip
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            p.host_port = free_port(ip, &p.proto).map_err(|e| {
                Error::Invalid(format!(
                    "network {what}: no free host port for {}/{}: {e}",
                    p.port, p.proto
                ))
            })?;
        }
        if crate::rootless::active() && p.host_port < low {
            return Err(Error::Invalid(format!(
                "rootless: cannot publish host port {}: ports below {low} need privilege (sysctl net.ipv4.ip_unprivileged_port_start={} allows it)",
                p.host_port, p.host_port
            )));
        }
    }
    Ok(ports)
}

/// Records the ports a user-mode network forwards (see [`FORWARDED`]); best effort.
fn record_ports(rundir: &std::path::Path, ports: &[PortRequest]) {
    let text: String = ports
        .iter()
        .map(|p| {
            let ip = p.host_ip.map_or("0.0.0.0".into(), |i| i.to_string());
            format!("{ip} {} {} {}\n", p.host_port, p.port, p.proto)
        })
        .collect();
    let _ = perms::write_file(
        &rundir.join(FORWARDED),
        text.as_bytes(),
        perms::PRIVATE_FILE,
    );
}

/// The ports [`record_ports`] wrote (None: not running, or nothing recorded).
fn forwarded_ports(rundir: &std::path::Path) -> Option<Vec<PortRequest>> {
    let text = std::fs::read_to_string(rundir.join(FORWARDED)).ok()?;
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 4 {
                return None;
            }
            Some(PortRequest {
                host_ip: f[0]
                    .parse()
                    .ok()
                    .filter(|i: &std::net::IpAddr| !i.is_unspecified()),
                host_port: f[1].parse().ok()?,
                host_port_end: 0,
                port: f[2].parse().ok()?,
                proto: f[3].to_string(),
            })
        })
        .collect()
}

/// Connects to the unix socket at `path` even when the path is longer than a socket address
/// holds: through an O_PATH descriptor of it and its /proc/self/fd name.
fn connect_long(path: &std::path::Path) -> std::io::Result<std::os::unix::net::UnixStream> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)?;
    std::os::unix::net::UnixStream::connect(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

#[cfg(test)]
mod ps_ports_tests {
    use super::*;

    fn p(private: u16, ip: &str, public: u16, proto: &str) -> PsPort {
        PsPort {
            private,
            ip: ip.into(),
            public,
            proto: proto.into(),
        }
    }

    #[test]
    fn docker_order_and_groups() {
        // What docker 28 prints for -p 127.0.0.1:18081:80 -p 127.0.0.1:18082:81/udp --expose 90.
        assert_eq!(
            displayable_ports(vec![
                p(81, "127.0.0.1", 18082, "udp"),
                p(80, "127.0.0.1", 18081, "tcp"),
                p(90, "", 0, "tcp"),
            ]),
            "90/tcp, 127.0.0.1:18081->80/tcp, 127.0.0.1:18082->81/udp"
        );
        // Same-number publishing is a group; consecutive exposed ports collapse.
        assert_eq!(
            displayable_ports(vec![
                p(8080, "127.0.0.1", 8080, "tcp"),
                p(91, "", 0, "tcp"),
                p(90, "", 0, "tcp"),
                p(93, "", 0, "tcp"),
                p(80, "::", 8000, "tcp"),
            ]),
            "90-91/tcp, 93/tcp, 127.0.0.1:8080->8080/tcp, [::]:8000->80/tcp"
        );
    }
}

/// What `network connect` (or a further `--network`) gives the container's endpoint.
#[derive(Debug, Default, Clone)]
pub struct EndpointOpts<'a> {
    /// `--ip`.
    pub ip: Option<&'a str>,
    /// `--alias` (`None`: its recorded ones).
    pub aliases: Option<&'a [String]>,
    /// `--mac-address` (long form only).
    pub mac: Option<&'a str>,
    /// `--driver-opt`.
    pub driver_opts: BTreeMap<String, String>,
}

/// One `--network` value: a network name, or docker 25+'s long form
/// `name=NET,alias=A,ip=IP,mac-address=MAC,driver-opt=K=V,…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkAttachment {
    /// The network (name or id).
    pub target: String,
    /// `alias=` (repeatable).
    pub aliases: Vec<String>,
    /// `ip=`.
    pub ip: Option<String>,
    /// `mac-address=`.
    pub mac: Option<String>,
    /// `driver-opt=K=V` (repeatable).
    pub driver_opts: BTreeMap<String, String>,
}

/// Splits one CSV record as Go's encoding/csv does (docker's CLI reads the long form with it):
/// commas separate fields, a field that starts with `"` runs to its closing quote (`""` is a
/// quote inside it).
fn csv_fields(v: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = v.chars().peekable();
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if at_start && c == '"' {
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        cur.push('"');
                    }
                    Some('"') => break,
                    Some(x) => cur.push(x),
                    None => {
                        return Err(Error::Invalid(format!(
                            "invalid argument \"{v}\" for \"--network\" flag: extraneous or missing \" in quoted-field"
                        )))
                    }
                }
            }
            at_start = false;
            continue;
        }
        if c == ',' {
            out.push(std::mem::take(&mut cur));
            at_start = true;
            continue;
        }
        cur.push(c);
        at_start = false;
    }
    out.push(cur);
    Ok(out)
}

/// Whether `v` holds a `word=word` pair: docker's CLI then reads it as the long form (its
/// unanchored `\w+=\w+(,\w+=\w+)*`).
fn long_syntax(v: &str) -> bool {
    let w = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let b: Vec<char> = v.chars().collect();
    (1..b.len().saturating_sub(1)).any(|i| b[i] == '=' && w(b[i - 1]) && w(b[i + 1]))
}

/// Parses one `--network` value as docker 28's CLI does. The long form's fields are
/// lower-cased, values included (docker's CLI does so); `ip6=`, `link-local-ip=` and
/// `gw-priority=` are refused (a container's IPv6 address follows its IPv4 one, there are no
/// link-local extras and the first network routes).
pub fn parse_network_opt(v: &str) -> Result<NetworkAttachment> {
    if !long_syntax(v) {
        return Ok(NetworkAttachment {
            target: v.to_string(),
            ..Default::default()
        });
    }
    let bad = |why: String| {
        Error::Invalid(format!(
            "invalid argument \"{v}\" for \"--network\" flag: {why}"
        ))
    };
    let mut a = NetworkAttachment::default();
    for field in csv_fields(v)? {
        let lower = field.to_lowercase();
        let (key, val) = match lower.split_once('=') {
            Some((k, val)) if !k.is_empty() => (k.trim(), val.trim()),
            _ => return Err(bad(format!("invalid field {field}"))),
        };
        match key {
            "name" => a.target = val.to_string(),
            "alias" => a.aliases.push(val.to_string()),
            "ip" => a.ip = Some(val.to_string()),
            "mac-address" => a.mac = Some(val.to_string()),
            "driver-opt" => match val.split_once('=') {
                Some((k, dv)) if !k.trim().is_empty() => {
                    a.driver_opts.insert(k.trim().to_string(), dv.trim().to_string());
                }
                _ => return Err(bad("invalid key value pair format in driver options".into())),
            },
            "ip6" => {
                return Err(bad(
                    "ip6: skiff gives a container the IPv6 address matching its IPv4 one (set ip= instead)".into(),
                ))
            }
            "link-local-ip" | "gw-priority" => {
                return Err(bad(format!("{key}: not supported by skiff")))
            }
            _ => return Err(bad(format!("invalid field key {key}"))),
        }
    }
    if a.target.is_empty() {
        return Err(bad("network name/id is not specified".into()));
    }
    Ok(a)
}

/// Checks a MAC address as docker does (`… is not a valid mac address`).
pub fn check_mac(m: &str) -> Result<()> {
    let parts: Vec<&str> = m.split(':').collect();
    if parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        Ok(())
    } else {
        Err(Error::Invalid(format!("{m} is not a valid mac address")))
    }
}

#[cfg(test)]
mod attachment_tests {
    use super::*;

    #[test]
    fn long_form() {
        assert_eq!(parse_network_opt("net1").unwrap().target, "net1");
        // Not `word=word`: a plain name (docker's regexp).
        assert_eq!(parse_network_opt("a=").unwrap().target, "a=");
        let a = parse_network_opt(
            "name=MyNet,alias=Web,alias=w2,ip=10.1.0.5,mac-address=02:42:AC:11:00:09,\"driver-opt=com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.log_martians=1\"",
        )
        .unwrap();
        assert_eq!(a.target, "mynet");
        assert_eq!(a.aliases, ["web", "w2"]);
        assert_eq!(a.ip.as_deref(), Some("10.1.0.5"));
        assert_eq!(a.mac.as_deref(), Some("02:42:ac:11:00:09"));
        assert_eq!(
            a.driver_opts["com.docker.network.endpoint.sysctls"],
            "net.ipv4.conf.ifname.log_martians=1"
        );
        let e = |v: &str| parse_network_opt(v).unwrap_err().to_string();
        assert!(e("name=n1,foo=bar").ends_with("invalid field key foo"));
        assert!(e("alias=x").ends_with("network name/id is not specified"));
        assert!(
            e("name=n1,driver-opt=x").ends_with("invalid key value pair format in driver options")
        );
        assert!(e("name=n1,ip6=fd00::5").contains("ip6"));
        assert!(e("name=n1,\"alias=x").contains("quoted-field"));
        assert!(check_mac("zz").is_err());
        assert!(check_mac("02:42:ac:11:00:09").is_ok());
    }
}
