//! Synchronous rtnetlink: links (bridge, veth with its peer created in another namespace),
//! addresses, routes. One blocking socket per namespace, one request and its ack at a time; no
//! `ip` execs (3 ms each here) and no async runtime in the short-lived CLI.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::{Error, Result};

/// A route of the host's main table, as far as collision checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route4 {
    /// Destination network.
    pub dst: Ipv4Addr,
    /// Prefix length (0 = default route).
    pub len: u8,
}

/// A link as far as skiff needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// MTU.
    pub mtu: u32,
}

/// An rtnetlink socket bound to the network namespace it was created in.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

fn nl_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Netlink(format!("{what}: {e}"))
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| nl_err("open socket", e))?;
        sock.bind_auto().map_err(|e| nl_err("bind socket", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| nl_err("connect socket", e))?;
        Ok(Netlink { sock, seq: 0 })
    }

    /// Sends one request; returns the messages answering it (for dumps) after its ack.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | flags;
        hdr.sequence_number = self.seq;
        let mut m = NetlinkMessage::new(hdr, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        self.sock.send(&buf, 0).map_err(|e| nl_err(what, e))?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 64 * 1024];
        loop {
            let n = {
                let mut b = &mut rbuf[..];
                self.sock.recv(&mut b, 0).map_err(|e| nl_err(what, e))?
            };
            let mut off = 0;
            while off < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n])
                    .map_err(|e| nl_err(what, e))?;
                let len = m.header.length as usize;
                if len == 0 {
                    return Err(nl_err(what, "empty netlink message"));
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(c) => Err(Error::Io(
                                what.to_string(),
                                std::io::Error::from_raw_os_error(-c.get()),
                            )),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(i) => {
                        out.push(i);
                        if !dump {
                            // A non-dump answer is followed by its ack.
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// The link named `name`, if there is one.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            RouteNetlinkMessage::GetLink(m),
            NLM_F_ACK,
            &format!("get link {name}"),
        ) {
            Ok(v) => Ok(v.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link {
                    index: l.header.index,
                    mtu: l
                        .attributes
                        .iter()
                        .find_map(|a| match a {
                            LinkAttribute::Mtu(m) => Some(*m),
                            _ => None,
                        })
                        .unwrap_or(1500),
                }),
                _ => None,
            })),
            Err(Error::Io(_, e)) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates bridge `name` (up; its MTU is set afterwards, see [`Netlink::set_up_mtu`]);
    /// `Ok(false)` when it already existed.
    pub fn add_bridge(&mut self, name: &str) -> Result<bool> {
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        match self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("create bridge {name}"),
        ) {
            Ok(_) => Ok(true),
            Err(Error::Io(_, e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates a veth pair: `host` (up, enslaved to `master`) here, and its peer `peer` (down, with
    /// `mac`) directly in the namespace `netns_fd` — one message, so the peer never appears on
    /// the host.
    pub fn add_veth(
        &mut self,
        host: &str,
        master: u32,
        mtu: u32,
        peer: &str,
        mac: [u8; 6],
        netns_fd: RawFd,
    ) -> Result<()> {
        // The peer is set up from inside its namespace afterwards: veth refuses to open an end
        // before both exist (ENOTCONN), and the kernel configures the peer first.
        let mut p = LinkMessage::default();
        p.attributes.push(LinkAttribute::IfName(peer.to_string()));
        p.attributes.push(LinkAttribute::Mtu(mtu));
        p.attributes.push(LinkAttribute::Address(mac.to_vec()));
        p.attributes.push(LinkAttribute::NetNsFd(netns_fd));
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(host.to_string()));
        m.attributes.push(LinkAttribute::Mtu(mtu));
        m.attributes.push(LinkAttribute::Controller(master));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("create veth {host}"),
        )?;
        Ok(())
    }

    /// Deletes link `name`; `Ok(false)` when there was none.
    pub fn del_link(&mut self, name: &str) -> Result<bool> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            RouteNetlinkMessage::DelLink(m),
            NLM_F_ACK,
            &format!("delete link {name}"),
        ) {
            Ok(_) => Ok(true),
            Err(Error::Io(_, e)) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets link `index` up (and its MTU).
    pub fn set_up_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::Mtu(mtu));
        self.request(
            RouteNetlinkMessage::SetLink(m),
            NLM_F_ACK,
            &format!("set link {index} up"),
        )?;
        Ok(())
    }

    /// Sets link `index` up.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        self.request(
            RouteNetlinkMessage::SetLink(m),
            NLM_F_ACK,
            &format!("set link {index} up"),
        )?;
        Ok(())
    }

    /// Adds `addr/len` to link `index` (EEXIST is success).
    pub fn add_addr(&mut self, index: u32, addr: Ipv4Addr, len: u8) -> Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = len;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(IpAddr::V4(addr)));
        m.attributes
            .push(AddressAttribute::Address(IpAddr::V4(addr)));
        if len < 31 {
            let bits = u32::from(addr) | (u32::MAX >> len);
            m.attributes
                .push(AddressAttribute::Broadcast(Ipv4Addr::from(bits)));
        }
        match self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {addr}/{len}"),
        ) {
            Err(Error::Io(_, e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Adds `addr/len` (IPv6) to link `index` without duplicate address detection, so it is
    /// usable at once (EEXIST is success).
    pub fn add_addr6(&mut self, index: u32, addr: Ipv6Addr, len: u8) -> Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet6;
        m.header.prefix_len = len;
        m.header.index = index;
        m.attributes
            .push(AddressAttribute::Address(IpAddr::V6(addr)));
        m.attributes.push(AddressAttribute::Flags(
            netlink_packet_route::address::AddressFlags::Nodad,
        ));
        match self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {addr}/{len}"),
        ) {
            Err(Error::Io(_, e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Adds the IPv6 default route via `gw`.
    pub fn add_default_route6(&mut self, gw: Ipv6Addr) -> Result<()> {
        self.add_default_route_via(AddressFamily::Inet6, RouteAddress::Inet6(gw), &gw)
    }

    /// Adds the default route via `gw`.
    pub fn add_default_route(&mut self, gw: Ipv4Addr) -> Result<()> {
        self.add_default_route_via(AddressFamily::Inet, RouteAddress::Inet(gw), &gw)
    }

    /// The default route of `family` in the main table via `gw`.
    fn add_default_route_via(
        &mut self,
        family: AddressFamily,
        gw: RouteAddress,
        shown: &dyn std::fmt::Display,
    ) -> Result<()> {
        let mut m = RouteMessage::default();
        m.header.address_family = family;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Gateway(gw));
        self.request(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add default route via {shown}"),
        )?;
        Ok(())
    }

    /// The IPv4 routes of the main table.
    pub fn routes4(&mut self) -> Result<Vec<Route4>> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        let v = self.request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP, "list routes")?;
        let mut out = Vec::new();
        for r in v {
            let RouteNetlinkMessage::NewRoute(r) = r else {
                continue;
            };
            if r.header.table != RouteHeader::RT_TABLE_MAIN {
                continue;
            }
            let dst = r
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(d)) => Some(*d),
                    _ => None,
                })
                .unwrap_or(Ipv4Addr::UNSPECIFIED);
            out.push(Route4 {
                dst,
                len: r.header.destination_prefix_length,
            });
        }
        Ok(out)
    }

    /// The MTU of the interface the host's default route leaves by (1500 without one).
    pub fn default_mtu(&mut self) -> Result<u32> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        let v = self.request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP, "list routes")?;
        let oif = v.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewRoute(r)
                if r.header.table == RouteHeader::RT_TABLE_MAIN
                    && r.header.destination_prefix_length == 0 =>
            {
                r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                })
            }
            _ => None,
        });
        let Some(oif) = oif else { return Ok(1500) };
        let mut m = LinkMessage::default();
        m.header.index = oif;
        let v = self.request(RouteNetlinkMessage::GetLink(m), NLM_F_ACK, "get link")?;
        Ok(v.iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Mtu(m) => Some(*m),
                    _ => None,
                }),
                _ => None,
            })
            .unwrap_or(1500))
    }
}

impl AsRawFd for Netlink {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}
