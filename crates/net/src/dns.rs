//! The embedded DNS server of containers on user-defined networks, as docker's 127.0.0.11.
//!
//! Without a daemon, each such container's monitor serves it: a UDP socket bound to
//! `127.0.0.11:53` inside the container's network namespace answers A (and, on `--ipv6`
//! networks, AAAA) queries for the names in
//! the container's own `/etc/hosts` (which the engine keeps current: its address and hostname,
//! its peers on its user networks, their aliases, `--add-host`), answers other record types of
//! those names with an empty NOERROR (so resolvers do not fall through to search domains), and
//! forwards every other query to the upstream servers (the container's `--dns`, else the host's)
//! from the host's namespace, relaying the answer back.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// The address the embedded server answers on, inside the container (docker's).
pub const ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// The name of the file in a container's directory that lists the upstream servers (one address
/// per line); its presence turns the embedded server on.
pub const UPSTREAM_FILE: &str = "dns-upstream";

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const MAX_PENDING: usize = 256;
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// One parsed question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Query id.
    pub id: u16,
    /// Lower-cased name without the trailing dot.
    pub name: String,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// Offset just past the question section.
    pub end: usize,
}

/// Parses a standard query with exactly one question (compression is not allowed in questions).
pub fn parse_query(p: &[u8]) -> Option<Question> {
    if p.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([p[0], p[1]]);
    let flags = u16::from_be_bytes([p[2], p[3]]);
    // QR must be 0 (a query) and the opcode QUERY.
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 {
        return None;
    }
    if u16::from_be_bytes([p[4], p[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels: Vec<String> = Vec::new();
    let mut total = 0;
    loop {
        let len = *p.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        total += len + 1;
        if total > 255 {
            return None;
        }
        let l = p.get(i..i + len)?;
        labels.push(String::from_utf8_lossy(l).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*p.get(i + 2)?, *p.get(i + 3)?]);
    Some(Question {
        id,
        name: labels.join("."),
        qtype,
        qclass,
        end: i + 4,
    })
}

/// A response to `query` (whose question is `q`) with `rcode` and A/AAAA records for `ips`.
pub fn response(query: &[u8], q: &Question, rcode: u8, ips: &[IpAddr], ttl: u32) -> Vec<u8> {
    let mut r = Vec::with_capacity(q.end + ips.len() * 16);
    r.extend_from_slice(&query[..2]);
    // QR, opcode 0, AA, RD copied, RA.
    let rd = query[2] & 0x01;
    r.push(0x84 | rd);
    r.push(0x80 | (rcode & 0x0f));
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    r.extend_from_slice(&0u16.to_be_bytes());
    r.extend_from_slice(&0u16.to_be_bytes());
    r.extend_from_slice(&query[12..q.end]);
    for ip in ips {
        // A pointer to the question's name at offset 12.
        r.extend_from_slice(&[0xc0, 0x0c]);
        let (t, data) = match ip {
            IpAddr::V4(a) => (TYPE_A, a.octets().to_vec()),
            IpAddr::V6(a) => (TYPE_AAAA, a.octets().to_vec()),
        };
        r.extend_from_slice(&t.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(&data);
    }
    r
}

/// The names of a hosts file: lower-cased name → addresses (IPv4 and IPv6), in file order.
pub fn parse_hosts(text: &str) -> HashMap<String, Vec<IpAddr>> {
    let mut m: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut f = line.split_whitespace();
        let Some(Ok(ip)) = f.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        for name in f {
            let v = m
                .entry(name.trim_end_matches('.').to_ascii_lowercase())
                .or_default();
            if !v.contains(&ip) {
                v.push(ip);
            }
        }
    }
    m
}

/// The nameservers of a resolv.conf-like text or an upstream list (`nameserver X` or bare `X`).
pub fn parse_upstreams(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let a = l.strip_prefix("nameserver").unwrap_or(l).trim();
            a.parse::<std::net::IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// A running embedded server: the socket inside the container's namespace, the forwarding
/// socket in the host's, and the queries in flight.
pub struct Server {
    listen: UdpSocket,
    forward: UdpSocket,
    hosts_path: PathBuf,
    hosts: HashMap<String, Vec<IpAddr>>,
    hosts_stamp: Option<(i64, i64, u64)>,
    upstreams: Vec<SocketAddr>,
    pending: HashMap<u16, (SocketAddr, u16, Instant)>,
    next_id: u16,
}

/// Runs `f` inside the network namespace `netns`, back in the caller's afterwards. The calling
/// thread switches; the process must not run other threads that depend on its namespace.
fn in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    let io = |what: String| move |e: std::io::Error| Error::Io(what, e);
    let target: OwnedFd = std::fs::File::open(netns)
        .map_err(io(format!("open {}", netns.display())))?
        .into();
    let shown = netns.display().to_string();
    // A short-lived thread enters the namespace and ends there: the caller's thread never moves,
    // and nothing has to come back (which a rootless process could not do: the host's network
    // namespace belongs to the initial user namespace).
    std::thread::spawn(move || -> Result<T> {
        nix::sched::setns(target.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Io(format!("enter {shown}"), e.into()))?;
        f().map_err(io(format!("embedded DNS socket in {shown}")))
    })
    .join()
    .map_err(|_| Error::Netlink("embedded DNS thread panicked".into()))?
}

impl Server {
    /// Binds 127.0.0.11:53 in the namespace `netns` and a forwarding socket here; names come
    /// from `hosts_path`, unknown names go to `upstreams`.
    pub fn bind(netns: &Path, hosts_path: &Path, upstreams: Vec<SocketAddr>) -> Result<Server> {
        let listen = in_netns(netns, || {
            let s = UdpSocket::bind(SocketAddrV4::new(ADDR, 53))?;
            s.set_nonblocking(true)?;
            Ok(s)
        })?;
        let forward = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| Error::Io("embedded DNS: forwarding socket".into(), e))?;
        Ok(Server {
            listen,
            forward,
            hosts_path: hosts_path.to_path_buf(),
            hosts: HashMap::new(),
            hosts_stamp: None,
            upstreams,
            pending: HashMap::new(),
            next_id: std::process::id() as u16,
        })
    }

    /// The descriptors to poll for input: the container-side socket and the forwarding one.
    pub fn fds(&self) -> [i32; 2] {
        [self.listen.as_raw_fd(), self.forward.as_raw_fd()]
    }

    fn refresh_hosts(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let stamp = std::fs::metadata(&self.hosts_path)
            .ok()
            .map(|m| (m.mtime(), m.mtime_nsec(), m.size()));
        if stamp != self.hosts_stamp {
            self.hosts_stamp = stamp;
            self.hosts = std::fs::read_to_string(&self.hosts_path)
                .map(|t| parse_hosts(&t))
                .unwrap_or_default();
        }
    }

    /// Answers or forwards every query waiting on the container-side socket.
    pub fn on_query(&mut self) {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = self.listen.recv_from(&mut buf) {
            let p = &buf[..n];
            let Some(q) = parse_query(p) else { continue };
            self.refresh_hosts();
            if let Some(ips) = self.hosts.get(&q.name).filter(|_| q.qclass == CLASS_IN) {
                let ips: Vec<IpAddr> = ips
                    .iter()
                    .filter(|ip| match q.qtype {
                        TYPE_A => ip.is_ipv4(),
                        TYPE_AAAA => ip.is_ipv6(),
                        _ => false,
                    })
                    .copied()
                    .collect();
                let _ = self.listen.send_to(&response(p, &q, 0, &ips, 600), from);
                continue;
            }
            self.expire();
            let Some(up) = self.upstreams.first().copied() else {
                let _ = self.listen.send_to(&response(p, &q, 2, &[], 0), from);
                continue;
            };
            if self.pending.len() >= MAX_PENDING {
                let _ = self.listen.send_to(&response(p, &q, 2, &[], 0), from);
                continue;
            }
            self.next_id = self.next_id.wrapping_add(1);
            let id = self.next_id;
            let mut fwd = p.to_vec();
            fwd[..2].copy_from_slice(&id.to_be_bytes());
            if self.forward.send_to(&fwd, up).is_ok() {
                self.pending.insert(id, (from, q.id, Instant::now()));
            } else {
                let _ = self.listen.send_to(&response(p, &q, 2, &[], 0), from);
            }
        }
    }

    /// Relays upstream answers back to the containers' clients.
    pub fn on_answer(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = self.forward.recv_from(&mut buf) {
            if n < 12 || !self.upstreams.contains(&from) {
                continue;
            }
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            if let Some((client, orig, _)) = self.pending.remove(&id) {
                buf[..2].copy_from_slice(&orig.to_be_bytes());
                let _ = self.listen.send_to(&buf[..n], client);
            }
        }
    }

    fn expire(&mut self) {
        self.pending
            .retain(|_, (_, _, t)| t.elapsed() < FORWARD_TIMEOUT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            p.push(l.len() as u8);
            p.extend_from_slice(l.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p
    }

    #[test]
    fn parse_and_answer() {
        let p = query("Web.Example", TYPE_A);
        let q = parse_query(&p).unwrap();
        assert_eq!(q.name, "web.example");
        assert_eq!(q.end, p.len());
        let r = response(&p, &q, 0, &[IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))], 600);
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80, "QR set");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
        assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 2]);
        // Truncated, answers and wrong counts are not queries.
        assert!(parse_query(&p[..p.len() - 1]).is_none());
        assert!(parse_query(&r).is_none());
        assert!(parse_query(&[0; 5]).is_none());
        let mut bad = p.clone();
        bad[12] = 200;
        assert!(parse_query(&bad).is_none());
    }

    #[test]
    fn hosts_and_upstreams() {
        let h = parse_hosts("127.0.0.1\tlocalhost\n10.1.0.2\tabc alpha al\n::1 v6only\n10.1.0.3 web # c\n10.1.0.4 web\n");
        let a: IpAddr = Ipv4Addr::new(10, 1, 0, 2).into();
        assert_eq!(h["alpha"], [a]);
        assert_eq!(h["al"], [a]);
        assert_eq!(h["web"].len(), 2);
        assert_eq!(h["v6only"], ["::1".parse::<IpAddr>().unwrap()]);
        let p = query("v6only", TYPE_AAAA);
        let q = parse_query(&p).unwrap();
        let r = response(&p, &q, 0, &h["v6only"], 600);
        assert_eq!(&r[r.len() - 18..r.len() - 16], &[0, 16]);
        assert_eq!(r[r.len() - 1], 1);
        let u = parse_upstreams("search x\nnameserver 10.0.0.1\n# c\nnameserver ::1\n192.0.2.1\n");
        assert_eq!(u.len(), 3);
        assert_eq!(u[0], "10.0.0.1:53".parse().unwrap());
    }
}
