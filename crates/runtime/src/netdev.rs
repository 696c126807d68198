//! `linux.netDevices`: host network interfaces moved into the container's network namespace at
//! `create` (renamed to `name`), and back to the runtime's namespace, under their host names, at
//! `delete`.
//!
//! A move keeps what the kernel keeps (MAC, MTU) and what it drops is carried by hand, as the spec
//! asks: the interface's addresses (IPv6 link-local ones are made again by the kernel) and its up
//! state. The parent does the moves with rtnetlink while the init waits (the same pause as for
//! prestart hooks). So that `delete` can still bring the interfaces back after the init has exited
//! (a virtual interface dies with its namespace), the container's network namespace is held by a
//! bind mount of its nsfs file at `<root>/<id>/netns` until `delete` is done with it.

use crate::error::{Error, IoContext, Result};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One interface to move: its name on the host and in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dev {
    /// Name in the runtime's network namespace.
    pub host: String,
    /// Name in the container (`name`, else the host name).
    pub name: String,
}

/// The interfaces of `linux.netDevices`, sorted by host name.
pub fn devices(spec: &Spec) -> Vec<Dev> {
    let mut v: Vec<Dev> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .into_iter()
        .flatten()
        .map(|(host, d)| Dev {
            host: host.clone(),
            name: d
                .name()
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| host.clone()),
        })
        .collect();
    v.sort_by(|a, b| a.host.cmp(&b.host));
    v
}

fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() < libc::IFNAMSIZ
        && n != "."
        && n != ".."
        && !n.contains(['/', ':'])
        && !n.chars().any(char::is_whitespace)
}

/// Refuse what cannot be moved, before anything exists: bad names, two devices with one name
/// inside, no network namespace of the container's own, or a runtime without CAP_NET_ADMIN on
/// the host (rootless).
pub fn validate(spec: &Spec, rootless: bool) -> Result<()> {
    let devs = devices(spec);
    if devs.is_empty() {
        return Ok(());
    }
    let bad = |m: String| Error::Config(format!("linux.netDevices: {m}"));
    if rootless {
        return Err(bad(
            "moving host interfaces needs root on the host (not rootless)".into(),
        ));
    }
    let netns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Network);
    if !netns {
        return Err(bad(
            "the container has no network namespace of its own to move them to".into(),
        ));
    }
    let mut names: Vec<&str> = Vec::new();
    for d in &devs {
        if !valid_ifname(&d.host) {
            return Err(bad(format!("{:?}: not an interface name", d.host)));
        }
        if !valid_ifname(&d.name) {
            return Err(bad(format!(
                "{:?}: name {:?} is not an interface name",
                d.host, d.name
            )));
        }
        if names.contains(&d.name.as_str()) {
            return Err(bad(format!(
                "two devices named {:?} in the container",
                d.name
            )));
        }
        names.push(&d.name);
    }
    Ok(())
}

/// The bind mount that holds the container's network namespace.
pub fn hold_path(dir: &Path) -> PathBuf {
    dir.join("netns")
}

/// Move every device into the network namespace of `pid`, then hold that namespace at
/// [`hold_path`]. On failure the devices already moved are brought back.
pub fn move_in(devs: &[Dev], pid: i32, dir: &Path) -> Result<()> {
    let theirs =
        crate::fsutil::open_path(Path::new(&format!("/proc/{pid}/ns/net")), libc::O_RDONLY)?;
    let ours = own_netns()?;
    for (i, d) in devs.iter().enumerate() {
        if let Err(e) = move_link(&ours, &theirs, &d.host, &d.name) {
            for d in devs[..i].iter().rev() {
                let _ = move_link(&theirs, &ours, &d.name, &d.host);
            }
            return Err(Error::Other(format!(
                "linux.netDevices: move {:?} into the container as {:?}: {e}",
                d.host, d.name
            )));
        }
    }
    let hold = hold_path(dir);
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&hold)
        .at(&hold)
        .and_then(|_| {
            nix::mount::mount(
                Some(&PathBuf::from(format!("/proc/{pid}/ns/net"))),
                &hold,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|errno| Error::Sys {
                what: format!("linux.netDevices: hold the network namespace at {hold:?}"),
                errno,
            })
        });
    if let Err(e) = r {
        for d in devs.iter().rev() {
            let _ = move_link(&theirs, &ours, &d.name, &d.host);
        }
        let _ = std::fs::remove_file(&hold);
        return Err(e);
    }
    Ok(())
}

/// Bring the devices back from the namespace held in `dir` (or, without a hold, that of `pid`
/// while it lives) and release the hold. Every device is tried; the first failure is returned.
pub fn move_out(devs: &[Dev], pid: Option<i32>, dir: &Path) -> Result<()> {
    let hold = hold_path(dir);
    let theirs = crate::fsutil::open_path(&hold, libc::O_RDONLY)
        .ok()
        .filter(is_netns)
        .or_else(|| {
            pid.and_then(|p| {
                crate::fsutil::open_path(Path::new(&format!("/proc/{p}/ns/net")), libc::O_RDONLY)
                    .ok()
            })
        });
    let mut first = None;
    if let Some(theirs) = theirs {
        let ours = own_netns()?;
        for d in devs {
            if let Err(e) = move_link(&theirs, &ours, &d.name, &d.host) {
                first.get_or_insert(Error::Other(format!(
                    "linux.netDevices: move {:?} back to the host as {:?}: {e}",
                    d.name, d.host
                )));
            }
        }
    }
    release(dir);
    first.map_or(Ok(()), Err)
}

/// Unmount and remove the hold (nothing when there is none).
pub fn release(dir: &Path) {
    let hold = hold_path(dir);
    let _ = nix::mount::umount2(&hold, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(&hold);
}

fn is_netns(f: &OwnedFd) -> bool {
    // SAFETY: NS_GET_NSTYPE takes no argument and only inspects the fd.
    let t = unsafe { libc::ioctl(f.as_raw_fd(), 0xb703) };
    t == libc::CLONE_NEWNET
}

fn own_netns() -> Result<OwnedFd> {
    crate::fsutil::open_path(Path::new("/proc/thread-self/ns/net"), libc::O_RDONLY)
}

fn setns(fd: &OwnedFd) -> Result<()> {
    nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|errno| {
        Error::Sys {
            what: "setns(network)".into(),
            errno,
        }
    })
}

/// Run `f` with this thread in network namespace `ns`, and come back to `home` whatever happens.
fn within<T>(ns: &OwnedFd, home: &OwnedFd, f: impl FnOnce() -> Result<T>) -> Result<T> {
    setns(ns)?;
    let r = f();
    setns(home)?;
    r
}

/// Move link `from` of namespace `src` into `dst` as `to`, with its addresses and up state.
fn move_link(src: &OwnedFd, dst: &OwnedFd, from: &str, to: &str) -> Result<()> {
    let home = own_netns()?;
    let (up, addrs) = within(src, &home, || {
        let mut nl = Rtnl::open()?;
        let (index, up) = nl
            .link(from)?
            .ok_or_else(|| Error::Other(format!("no interface {from:?}")))?;
        let addrs = nl.addresses(index)?;
        // Down before the move (as the kernel does anyway), then one message moves and renames.
        nl.set_up(index, false)?;
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfName(to.to_string()));
        m.attributes.push(LinkAttribute::NetNsFd(dst.as_raw_fd()));
        nl.request(RouteNetlinkMessage::SetLink(m), NLM_F_ACK)?;
        Ok((up, addrs))
    })?;
    within(dst, &home, || {
        let mut nl = Rtnl::open()?;
        let (index, _) = nl
            .link(to)?
            .ok_or_else(|| Error::Other(format!("{to:?} did not arrive")))?;
        for mut a in addrs {
            a.header.index = index;
            nl.request(
                RouteNetlinkMessage::NewAddress(a),
                NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            )?;
        }
        if up {
            nl.set_up(index, true)?;
        }
        Ok(())
    })
}

/// A blocking rtnetlink socket in the calling thread's network namespace.
struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    fn open() -> Result<Rtnl> {
        let e = |e: std::io::Error| Error::Other(format!("rtnetlink socket: {e}"));
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(e)?;
        sock.bind_auto().map_err(e)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(e)?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Send one request; the messages answering it, after its ack or the end of the dump.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let io = |e: std::io::Error| Error::Other(format!("rtnetlink: {e}"));
        self.seq += 1;
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | flags;
        hdr.sequence_number = self.seq;
        let mut m = NetlinkMessage::new(hdr, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        self.sock.send(&buf, 0).map_err(io)?;
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 64 * 1024];
        loop {
            let n = {
                let mut b = &mut rbuf[..];
                self.sock.recv(&mut b, 0).map_err(io)?
            };
            let mut off = 0;
            while off < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n])
                    .map_err(|e| Error::Other(format!("rtnetlink: {e}")))?;
                let len = m.header.length as usize;
                if len == 0 {
                    return Err(Error::Other("rtnetlink: empty message".into()));
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(c) => Err(Error::Sys {
                                what: "rtnetlink".into(),
                                errno: nix::errno::Errno::from_raw(-c.get()),
                            }),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(i) => out.push(i),
                    _ => {}
                }
            }
        }
    }

    /// Index and up state of link `name`.
    fn link(&mut self, name: &str) -> Result<Option<(u32, bool)>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), NLM_F_ACK) {
            Ok(v) => Ok(v.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => {
                    Some((l.header.index, l.header.flags.contains(LinkFlags::Up)))
                }
                _ => None,
            })),
            Err(Error::Sys {
                errno: nix::errno::Errno::ENODEV,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The addresses of link `index` worth carrying (not IPv6 link-local), reduced to what a
    /// new address needs.
    fn addresses(&mut self, index: u32) -> Result<Vec<AddressMessage>> {
        let all = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in all {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if a.header.index != index {
                continue;
            }
            let link_local = a.attributes.iter().any(|x| {
                matches!(x, AddressAttribute::Address(IpAddr::V6(v)) if v.segments()[0] & 0xffc0 == 0xfe80)
            });
            if link_local {
                continue;
            }
            let mut n = AddressMessage::default();
            n.header = a.header.clone();
            n.attributes = a
                .attributes
                .into_iter()
                .filter(|x| {
                    matches!(
                        x,
                        AddressAttribute::Address(_)
                            | AddressAttribute::Local(_)
                            | AddressAttribute::Broadcast(_)
                    )
                })
                .collect();
            out.push(n);
        }
        Ok(out)
    }

    fn set_up(&mut self, index: u32, up: bool) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        m.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(m), NLM_F_ACK)?;
        Ok(())
    }
}
