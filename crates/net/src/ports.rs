//! `-p/--publish` values as docker parses them: `80`, `8080:80`, `127.0.0.1:8080:80/tcp`,
//! `127.0.0.1::80`, `8080-8081:80-81/udp`, and `-P` over the image's exposed ports.

use std::net::{IpAddr, Ipv4Addr};

use crate::{Error, Result};

/// One requested binding (host port 0 = pick a free one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    /// Host address (`None` = all; an IPv6 one, `[::1]`, needs an `--ipv6` network).
    pub host_ip: Option<IpAddr>,
    /// Host port (0 = any free); with `host_port_end`, the first of a range.
    pub host_port: u16,
    /// Last port of a host range given for one container port (`8000-8010:80`: the first free
    /// one is taken), 0 otherwise.
    pub host_port_end: u16,
    /// Container port.
    pub port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
}

fn range(s: &str, what: &str) -> Result<(u16, u16)> {
    // docker's words: `invalid containerPort: X`, `invalid hostPort: X`.
    let bad = || Error::Invalid(format!("invalid {what}: {s}"));
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if a == 0 || b < a {
                return Err(bad());
            }
            Ok((a, b))
        }
        None => {
            let a: u16 = s.parse().map_err(|_| bad())?;
            if a == 0 && what != "hostPort" {
                return Err(bad());
            }
            Ok((a, a))
        }
    }
}

/// Parses one `-p` value into one request per port.
pub fn parse(v: &str) -> Result<Vec<PortRequest>> {
    let (spec, proto) = match v.rsplit_once('/') {
        Some((s, p)) => (s, p.to_ascii_lowercase()),
        None => (v, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(Error::Invalid(format!("invalid proto: {proto}")));
    }
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => ("", "", *c),
        [c, h] => ("", *h, *c),
        [c, h, i] => (*i, *h, *c),
        _ => {
            return Err(Error::Invalid(format!(
                "invalid port specification: \"{v}\""
            )))
        }
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let host_ip = match ip {
        "" | "0.0.0.0" => None,
        s => Some(
            s.parse::<IpAddr>()
                .map_err(|_| Error::Invalid(format!("invalid IP address: {s}")))?,
        ),
    };
    if host_ip.is_some_and(|i| i.is_ipv6() && i.is_loopback()) {
        return Err(Error::Invalid(format!(
            "invalid publish \"{v}\": the IPv6 loopback [::1] cannot be forwarded to a container in the kernel: a reply's address is translated back to ::1 before the kernel's check that drops ::1 on a non-loopback interface (RFC 4291 2.5.3; IPv6 has no route_localnet), and skiff runs no userland proxy; publish on 127.0.0.1 (a client of \"localhost\" falls back to it), on [::] or on another host IPv6 address instead"
        )));
    }
    let (c0, c1) = range(ctr, "containerPort")?;
    let (h0, h1) = if host.is_empty() {
        (0, 0)
    } else {
        range(host, "hostPort")?
    };
    if h0 != 0 && h1 - h0 != c1 - c0 {
        if c0 == c1 && h1 > h0 {
            // docker: one container port, a host range to pick a free port from.
            return Ok(vec![PortRequest {
                host_ip,
                host_port: h0,
                host_port_end: h1,
                port: c0,
                proto,
            }]);
        }
        return Err(Error::Invalid(format!(
            "invalid ranges specified for container and host Ports: {ctr} and {host}"
        )));
    }
    Ok((c0..=c1)
        .enumerate()
        .map(|(i, port)| PortRequest {
            host_ip,
            host_port: if h0 == 0 { 0 } else { h0 + i as u16 },
            host_port_end: 0,
            port,
            proto: proto.clone(),
        })
        .collect())
}

/// `-P`: every exposed port (`80/tcp` keys of the image's ExposedPorts) on a free host port.
pub fn publish_all(exposed: &[String]) -> Result<Vec<PortRequest>> {
    let mut out = Vec::new();
    for e in exposed {
        let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        out.extend(parse(&format!("{p}/{proto}"))?);
    }
    Ok(out)
}

/// Checks that `ip:port` is free on the host (and, for port 0, picks a free one) by binding
/// it for a moment, as docker's proxy would hold it.
pub fn reserve(host_ip: Option<IpAddr>, port: u16, proto: &str) -> Result<u16> {
    let ip = host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let r = if proto == "udp" {
        std::net::UdpSocket::bind((ip, port)).and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind((ip, port)).and_then(|s| s.local_addr())
    };
    match r {
        Ok(a) => Ok(a.port()),
        Err(e) => Err(Error::Invalid(format!(
            "Bind for {ip}:{port} failed: port is already allocated ({e})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let p = parse("8080:80").unwrap();
        assert_eq!(
            p,
            vec![PortRequest {
                host_ip: None,
                host_port: 8080,
                host_port_end: 0,
                port: 80,
                proto: "tcp".into()
            }]
        );
        let p = parse("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(p[0].host_ip, Some(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(p[0].proto, "udp");
        let p = parse("127.0.0.1::80").unwrap();
        assert_eq!(p[0].host_port, 0);
        let p = parse("80").unwrap();
        assert_eq!((p[0].host_port, p[0].port), (0, 80));
        let p = parse("8000-8002:80-82").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!((p[2].host_port, p[2].port), (8002, 82));
        assert!(parse("8000-8002:80-81").is_err());
        let p = parse("127.0.0.1:9000-9001:80-81/udp").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[1].host_port, p[1].port, p[1].proto.as_str()),
            (9001, 81, "udp")
        );
        assert_eq!(p[1].host_ip, Some(Ipv4Addr::LOCALHOST.into()));
        assert!(parse("[::1]:8080:80").is_err());
        let p = parse("[fd00::1]:8080:80").unwrap();
        assert_eq!(p[0].host_ip, Some("fd00::1".parse().unwrap()));
        assert_eq!(p[0].host_port, 8080);
        let p = parse("8000-8010:80").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].host_port, p[0].host_port_end, p[0].port),
            (8000, 8010, 80)
        );
        assert!(parse("8010-8000:80").is_err());
        assert!(parse("x:80").is_err());
        assert!(parse("80/icmp").is_err());
        assert_eq!(publish_all(&["53/udp".into()]).unwrap()[0].proto, "udp");
    }
}
