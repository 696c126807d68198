//! skiff-net owns container networks without a daemon: the default `bridge` network and
//! user-defined ones (a Linux bridge each), one network namespace per container pre-created at
//! `<runroot>/netns/<id>` and joined by the runtime by path, a veth pair whose peer is created
//! directly inside that namespace (one netlink message), addresses from an IPAM kept in the state
//! database (`networks` and `endpoints` tables, see [`store`]), outbound masquerade and published
//! ports as elements of one nftables table (see [`nft`]), and names: the engine writes the peers
//! of a user network into each container's /etc/hosts from [`Net::peers`].
//!
//! Links, addresses and routes go through synchronous rtnetlink ([`netlink`]); the one exec is
//! `nft -j -f -` for a JSON transaction, and only when a bridge is set up, a network removed or a
//! container publishes ports. Settings come from `<root>/daemon.json` (or
//! `/etc/skiff/daemon.json`): `bip`, `bridge`, `mtu`, `ip-forward`, `nft-table`.

pub mod dns;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod ports;
pub mod store;

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub use ports::PortRequest;
pub use store::{Endpoint, Network, Published};

/// skiff-net's errors; each names the network, container or object concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// A netlink request failed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// An nftables transaction failed.
    #[error("nftables: {0}")]
    Nft(String),
    /// The state database failed.
    #[error("{0}: {1}")]
    Db(String, rusqlite::Error),
    /// No such network.
    #[error("network {0} not found")]
    NotFound(String),
    /// A network of that name exists.
    #[error("network with name {0} already exists")]
    Exists(String),
    /// A bad value or a conflict, described in full.
    #[error("{0}")]
    Invalid(String),
}

/// skiff-net's result.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) trait IoCtx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoCtx<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Io(what(), e))
    }
}

/// Network settings of `daemon.json` (docker's keys where docker has one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Config {
    /// The default bridge's address and prefix (`172.17.0.1/16`); chosen clear of the host's
    /// routes when unset.
    pub bip: Option<String>,
    /// The default bridge's device name.
    pub bridge: String,
    /// MTU of bridges and veths (default: the MTU of the host's default-route interface).
    pub mtu: Option<u32>,
    /// Turn on `net.ipv4.ip_forward` when a bridge is set up (docker's default).
    pub ip_forward: bool,
    /// The nftables table (family `ip`) holding skiff's NAT.
    pub nft_table: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bip: None,
            bridge: "skiff0".into(),
            mtu: None,
            ip_forward: true,
            nft_table: "skiff".into(),
        }
    }
}

impl Config {
    /// Reads `<root>/daemon.json`, else `/etc/skiff/daemon.json`, else the defaults.
    pub fn load(root: &Path) -> Result<Config> {
        for p in [
            root.join("daemon.json"),
            PathBuf::from("/etc/skiff/daemon.json"),
        ] {
            match std::fs::read(&p) {
                Ok(b) => {
                    return serde_json::from_slice(&b)
                        .map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::Io(format!("read {}", p.display()), e)),
            }
        }
        Ok(Config::default())
    }
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// Name.
    pub name: String,
    /// `--subnet` (CIDR).
    pub subnet: Option<String>,
    /// `--gateway`.
    pub gateway: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--label`.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--ip-range` (CIDR inside the subnet).
    pub ip_range: Option<String>,
    /// `--attachable`.
    pub attachable: bool,
    /// `--opt k=v` (`com.docker.network.bridge.name` names the bridge).
    pub options: std::collections::BTreeMap<String, String>,
    /// `--ipv6`.
    pub ipv6: bool,
    /// `--subnet` values that are IPv6 (with `--ipv6`; a ULA /64 is picked when absent).
    pub subnet6: Option<String>,
}

/// The option naming a network's bridge device.
pub const BRIDGE_NAME_OPT: &str = "com.docker.network.bridge.name";

/// What attaching a container asks for.
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    /// Container id.
    pub container: String,
    /// Container name (its DNS name on user networks).
    pub name: String,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// `--mac-address`.
    pub mac: Option<String>,
    /// Published ports.
    pub ports: Vec<PortRequest>,
    /// Its names on this network besides its own.
    pub aliases: Vec<String>,
}

/// A random 64-hex id.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    // SAFETY: getrandom writes at most b.len() bytes into the buffer we own.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..16].copy_from_slice(&t.to_le_bytes());
        b[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The first default pool that overlaps none of `taken` (networks and host routes).
pub fn first_free_pool(taken: &[(Ipv4Addr, u8)]) -> Option<(Ipv4Addr, u8)> {
    pools().find(|p| !taken.iter().any(|t| store::overlaps(*p, *t)))
}

/// Candidate subnets for networks without `--subnet` (docker's default pools).
fn pools() -> impl Iterator<Item = (Ipv4Addr, u8)> {
    (17..=31u8)
        .map(|b| (Ipv4Addr::new(172, b, 0, 0), 16))
        .chain((0..16u8).map(|i| (Ipv4Addr::new(192, 168, i * 16, 0), 20)))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// The networks of one skiff root on this host.
pub struct Net<'a> {
    conn: &'a Connection,
    runroot: PathBuf,
    /// Settings from daemon.json.
    pub cfg: Config,
}

impl<'a> Net<'a> {
    /// Opens the networks of the engine whose state database is `conn`.
    pub fn new(conn: &'a Connection, root: &Path, runroot: &Path) -> Result<Net<'a>> {
        store::init(conn)?;
        Ok(Net {
            conn,
            runroot: runroot.to_path_buf(),
            cfg: Config::load(root)?,
        })
    }

    /// Where container `id`'s namespace is kept.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        netns::path(&self.runroot, id)
    }

    fn host_routes(&self) -> Vec<(Ipv4Addr, u8)> {
        netlink::Netlink::open()
            .and_then(|mut nl| nl.routes4())
            .map(|v| {
                v.into_iter()
                    .filter(|r| r.len > 0)
                    .map(|r| (r.dst, r.len))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn free_pool(&self, name: &str) -> Result<(Ipv4Addr, u8)> {
        let taken: Vec<(Ipv4Addr, u8)> = store::networks(self.conn)?
            .iter()
            .map(|n| (n.subnet, n.prefix))
            .chain(self.host_routes())
            .collect();
        first_free_pool(&taken).ok_or_else(|| {
            Error::Invalid(format!(
                "network \"{name}\": no free subnet in the default address pools; give --subnet"
            ))
        })
    }

    /// The default `bridge` network, recorded on first use.
    pub fn default_network(&self, created: &str) -> Result<Network> {
        if let Some(n) = store::network(self.conn, "bridge")? {
            return Ok(n);
        }
        let (subnet, prefix, gateway) = match &self.cfg.bip {
            Some(b) => {
                let (net, len) = store::parse_cidr(b).ok_or_else(|| {
                    Error::Invalid(format!("daemon.json: bip \"{b}\" is not an IPv4 CIDR"))
                })?;
                let gw: Ipv4Addr = b.split('/').next().unwrap_or("").parse().unwrap_or(net);
                let gw = if gw == net {
                    Ipv4Addr::from(u32::from(net) + 1)
                } else {
                    gw
                };
                (net, len, gw)
            }
            None => {
                let (net, len) = self.free_pool("bridge")?;
                (net, len, Ipv4Addr::from(u32::from(net) + 1))
            }
        };
        let n = Network {
            id: new_id(),
            name: "bridge".into(),
            bridge: self.cfg.bridge.clone(),
            subnet,
            prefix,
            gateway,
            created: created.to_string(),
            internal: false,
            labels: Default::default(),
            extra: Default::default(),
        };
        match store::insert_network(self.conn, &n) {
            Ok(()) => Ok(n),
            // A concurrent first run recorded it.
            Err(Error::Exists(_)) => {
                store::network(self.conn, "bridge")?.ok_or_else(|| Error::NotFound("bridge".into()))
            }
            Err(e) => Err(e),
        }
    }

    /// The network named (or with id / id prefix) `s`; `bridge` is recorded on first use.
    pub fn find(&self, s: &str, created: &str) -> Result<Network> {
        if s == "bridge" || s == "default" {
            if self.cfg.bridge == "none" {
                // The default bridge is disabled (`"bridge": "none"`, as `dockerd -b none`).
                return Err(Error::NotFound(s.to_string()));
            }
            return self.default_network(created);
        }
        store::network(self.conn, s)?.ok_or_else(|| Error::NotFound(s.to_string()))
    }

    /// The stable id and creation time of docker's built-in `host` or `none` network.
    pub fn builtin(&self, name: &str, created: &str) -> Result<(String, String)> {
        store::builtin(self.conn, name, &new_id(), created)
    }

    /// All networks (the default one included once it was used).
    pub fn list(&self, created: &str) -> Result<Vec<Network>> {
        if self.cfg.bridge != "none" {
            self.default_network(created)?;
            return store::networks(self.conn);
        }
        // Disabled: a row recorded before it was disabled is not shown.
        Ok(store::networks(self.conn)?
            .into_iter()
            .filter(|n| n.name != "bridge")
            .collect())
    }

    /// `network create`.
    pub fn create(&self, req: &CreateRequest, created: &str) -> Result<Network> {
        let name = &req.name;
        if !valid_name(name) {
            return Err(Error::Invalid(format!(
                "network \"{name}\": invalid name (only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed)"
            )));
        }
        if matches!(name.as_str(), "bridge" | "host" | "none" | "default") {
            // dockerd's words.
            return Err(Error::Invalid(
                format!("operation is not permitted on predefined {name} network ")
                    .trim_end()
                    .to_string(),
            ));
        }
        if req.subnet6.is_some() && !req.ipv6 {
            return Err(Error::Invalid(format!(
                "network \"{name}\": an IPv6 subnet needs --ipv6"
            )));
        }
        if self.cfg.bridge != "none" {
            // Recorded first, so user networks keep clear of its range.
            self.default_network(created)?;
        }
        let (subnet, prefix) = match &req.subnet {
            Some(s) => store::parse_cidr(s).ok_or_else(|| {
                Error::Invalid(format!(
                    "network \"{name}\": invalid subnet {s} (an IPv4 CIDR up to /30)"
                ))
            })?,
            None => self.free_pool(name)?,
        };
        let gateway = match &req.gateway {
            Some(g) => {
                let g: Ipv4Addr = g.parse().map_err(|_| {
                    Error::Invalid(format!("network \"{name}\": invalid gateway {g}"))
                })?;
                if !store::in_subnet(g, subnet, prefix) {
                    return Err(Error::Invalid(format!(
                        "network \"{name}\": gateway {g} is not in subnet {subnet}/{prefix}"
                    )));
                }
                g
            }
            None => Ipv4Addr::from(u32::from(subnet) + 1),
        };
        if let Some(r) = &req.ip_range {
            let ok = store::parse_cidr(r)
                .filter(|(a, l)| *l >= prefix && store::in_subnet(*a, subnet, prefix));
            if ok.is_none() {
                return Err(Error::Invalid(format!(
                    "network \"{name}\": invalid --ip-range {r}: not a CIDR inside subnet {subnet}/{prefix}"
                )));
            }
        }
        let id = new_id();
        let bridge = match req.options.get(BRIDGE_NAME_OPT) {
            Some(b) => {
                if b.is_empty()
                    || b.len() > 15
                    || !b
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
                {
                    return Err(Error::Invalid(format!(
                        "network \"{name}\": invalid bridge name \"{b}\" (1 to 15 of [a-zA-Z0-9_.-])"
                    )));
                }
                if quick_link(b).is_some() {
                    return Err(Error::Invalid(format!(
                        "network \"{name}\": bridge name {b}: a link of that name exists on the host"
                    )));
                }
                b.clone()
            }
            None => format!("br-{}", &id[..12]),
        };
        let (subnet6, gateway6) = if req.ipv6 {
            if !Path::new("/proc/net/if_inet6").exists() {
                return Err(Error::Invalid(format!(
                    "network \"{name}\": --ipv6: IPv6 is disabled on this host"
                )));
            }
            let (net6, len6) = match &req.subnet6 {
                Some(s) => store::parse_cidr6(s).ok_or_else(|| {
                    Error::Invalid(format!(
                        "network \"{name}\": invalid subnet {s} (an IPv6 CIDR from /48 to /120)"
                    ))
                })?,
                None => (random_ula(), 64),
            };
            if 128 - u32::from(len6) < 32 - u32::from(prefix) {
                return Err(Error::Invalid(format!(
                    "network \"{name}\": IPv6 subnet {net6}/{len6} is smaller than IPv4 subnet {subnet}/{prefix} (addresses go in pairs)"
                )));
            }
            let off = u32::from(gateway) - u32::from(subnet);
            let gw6 = std::net::Ipv6Addr::from(u128::from(net6) + off as u128);
            (Some(format!("{net6}/{len6}")), Some(gw6.to_string()))
        } else {
            (None, None)
        };
        let extra = store::Extra {
            ip_range: req
                .ip_range
                .as_deref()
                .and_then(store::parse_cidr)
                .map(|(a, l)| format!("{a}/{l}")),
            attachable: req.attachable,
            options: req.options.clone(),
            subnet6,
            gateway6,
            subnet_only: req.subnet.is_some() && req.gateway.is_none(),
        };
        let n = Network {
            bridge,
            id,
            name: name.clone(),
            subnet,
            prefix,
            gateway,
            created: created.to_string(),
            internal: req.internal,
            labels: req.labels.clone(),
            extra,
        };
        store::insert_network(self.conn, &n)?;
        Ok(n)
    }

    /// `network rm`: refuses while containers are attached; deletes the bridge and its NAT.
    pub fn remove(&self, s: &str) -> Result<Network> {
        let n = store::network(self.conn, s)?.ok_or_else(|| Error::NotFound(s.to_string()))?;
        if n.name == "bridge" {
            return Err(Error::Invalid(
                "bridge is a pre-defined network and cannot be removed".into(),
            ));
        }
        let eps = store::network_endpoints(self.conn, &n.id)?;
        if !eps.is_empty() {
            let names: Vec<&str> = eps.iter().map(|e| e.name.as_str()).collect();
            return Err(Error::Invalid(format!(
                "error while removing network: network {} id {} has active endpoints ({})",
                n.name,
                n.id,
                names.join(", ")
            )));
        }
        self.teardown_bridge(&n);
        store::delete_network(self.conn, &n.id)?;
        Ok(n)
    }

    fn teardown_bridge(&self, n: &Network) {
        if let Ok(mut nl) = netlink::Netlink::open() {
            if let Ok(true) = nl.del_link(&n.bridge) {
                let _ = nft::apply(&nft::network_elems(
                    "delete",
                    &self.cfg.nft_table,
                    (n.subnet, n.prefix),
                    &n.bridge,
                ));
                if let Some(s6) = &n.extra.subnet6 {
                    let _ = nft::apply(&nft::network6_elems(
                        "delete",
                        &self.cfg.nft_table,
                        s6,
                        &n.bridge,
                    ));
                }
            }
        }
    }

    /// Everything attached to a network.
    pub fn endpoints_of(&self, n: &Network) -> Result<Vec<Endpoint>> {
        store::network_endpoints(self.conn, &n.id)
    }

    /// A container's endpoints.
    pub fn endpoints(&self, container: &str) -> Result<Vec<Endpoint>> {
        store::endpoints(self.conn, Some(container))
    }

    /// Every endpoint (for `ps`).
    pub fn all_endpoints(&self) -> Result<Vec<Endpoint>> {
        store::endpoints(self.conn, None)
    }

    /// The containers sharing a user-defined network with `container`, with the name and
    /// address to write in its /etc/hosts (the default bridge has no names, as in docker).
    pub fn peers(&self, container: &str) -> Result<Vec<Endpoint>> {
        let mine = self.endpoints(container)?;
        let mut out = Vec::new();
        for e in mine.iter().filter(|e| e.network.name != "bridge") {
            out.extend(
                store::network_endpoints(self.conn, &e.network.id)?
                    .into_iter()
                    .filter(|p| p.container != container),
            );
        }
        Ok(out)
    }

    fn lock(&self, exclusive: bool) -> Result<std::fs::File> {
        let dir = self.runroot.join("netns");
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        use std::os::unix::fs::OpenOptionsExt;
        let p = dir.join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&p)
            .ctx(|| format!("open {}", p.display()))?;
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
            return Err(Error::Io(
                format!("lock {}", p.display()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(f)
    }

    /// Returns the bridge of `n`, setting it up (device, address, sysctls, NAT) when missing.
    /// The setup holds an exclusive lock, the check a shared one: a bridge is never seen
    /// half-made.
    fn ensure_bridge(&self, nl: &mut netlink::Netlink, n: &Network) -> Result<netlink::Link> {
        let l = self.lock(false)?;
        // The common case, without parsing a netlink answer: an ioctl and a sysfs read.
        if let Some(b) = quick_link(&n.bridge) {
            return Ok(b);
        }
        drop(l);
        let _l = self.lock(true)?;
        if let Some(b) = nl.link(&n.bridge)? {
            return Ok(b);
        }
        let what =
            |e: Error| Error::Invalid(format!("network \"{}\": bridge {}: {e}", n.name, n.bridge));
        let mtu = match self.cfg.mtu {
            Some(m) => m,
            None => nl.default_mtu().map_err(what)?,
        };
        nl.add_bridge(&n.bridge).map_err(what)?;
        let b = nl
            .link(&n.bridge)?
            .ok_or_else(|| what(Error::Netlink("vanished after creation".into())))?;
        // Set after creation: only an MTU changed on a bridge sticks (one given at creation
        // follows its ports, 1500 with none), and veths take the bridge's.
        nl.set_up_mtu(b.index, mtu).map_err(what)?;
        let b = netlink::Link { mtu, ..b };
        nl.add_addr(b.index, n.gateway, n.prefix).map_err(what)?;
        // Published ports answer on 127.0.0.1: DNAT'd loopback traffic must be routable out of
        // the bridge (and is masqueraded there, see nft).
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv4/conf/{}/route_localnet", n.bridge),
            "1",
        );
        if self.cfg.ip_forward && !n.internal {
            let p = "/proc/sys/net/ipv4/ip_forward";
            if std::fs::read_to_string(p)
                .map(|s| s.trim() != "1")
                .unwrap_or(false)
            {
                let _ = std::fs::write(p, "1");
            }
        }
        let mut cmds = nft::table_setup(&self.cfg.nft_table);
        if !n.internal {
            cmds.extend(nft::network_elems(
                "add",
                &self.cfg.nft_table,
                (n.subnet, n.prefix),
                &n.bridge,
            ));
        }
        if let (Some(s6), Some((_, len6)), Some(gw6)) =
            (&n.extra.subnet6, n.subnet6(), n.gateway6())
        {
            // --ipv6: the gateway on the bridge (no DAD), forwarding, masquerade in the ip6
            // table of the same name.
            let _ = std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", n.bridge),
                "0",
            );
            if let Err(e) = nl.add_addr6(b.index, gw6, len6) {
                let _ = nl.del_link(&n.bridge);
                return Err(what(e));
            }
            if self.cfg.ip_forward && !n.internal {
                let p = "/proc/sys/net/ipv6/conf/all/forwarding";
                if std::fs::read_to_string(p)
                    .map(|s| s.trim() != "1")
                    .unwrap_or(false)
                {
                    let _ = std::fs::write(p, "1");
                }
            }
            cmds.extend(nft::table6_setup(&self.cfg.nft_table));
            if !n.internal {
                cmds.extend(nft::network6_elems(
                    "add",
                    &self.cfg.nft_table,
                    s6,
                    &n.bridge,
                ));
            }
        }
        if let Err(e) = nft::apply(&cmds) {
            let _ = nl.del_link(&n.bridge);
            return Err(what(e));
        }
        Ok(b)
    }

    /// Attaches container `req.container` to `n` as its `eth0`: address (kept until
    /// [`Net::release`]), namespace, veth, routes, published ports.
    pub fn attach(&self, n: &Network, req: &AttachRequest) -> Result<Endpoint> {
        let id = &req.container;
        let mut ep = store::allocate(
            self.conn,
            n,
            id,
            &req.name,
            req.ip,
            req.mac.as_deref(),
            &new_id(),
        )?;
        if ep.aliases != req.aliases {
            store::set_aliases(self.conn, &n.id, id, &req.aliases)?;
            ep.aliases = req.aliases.clone();
        }
        let ctx = |e: Error| {
            Error::Invalid(format!(
                "container {}: network \"{}\": {e}",
                req.name, n.name
            ))
        };
        let mut nl = netlink::Netlink::open().map_err(ctx)?;
        let bridge = self.ensure_bridge(&mut nl, n)?;
        let mtu = bridge.mtu;
        let host_if = veth_name(&ep.endpoint_id);
        let path = self.netns_path(id);
        // A namespace left by a crash is replaced.
        let _ = nl.del_link(&host_if);
        netns::remove(&path);
        let (nsf, mut inner) = netns::create(&path).map_err(ctx)?;
        let r = (|| -> Result<()> {
            nl.add_veth(
                &host_if,
                bridge.index,
                mtu,
                "eth0",
                parse_mac(&ep.mac)?,
                nsf.as_raw_fd(),
            )?;
            inner.set_up(1)?;
            let eth0 = inner.link("eth0")?.ok_or_else(|| {
                Error::Netlink("eth0 missing in the container's namespace".into())
            })?;
            inner.add_addr(eth0.index, ep.ip, n.prefix)?;
            inner.set_up_mtu(eth0.index, mtu)?;
            if !n.internal {
                inner.add_default_route(n.gateway)?;
            }
            setup6(&nsf, &mut inner, "eth0", eth0.index, &ep, !n.internal)
        })();
        // Networks connected while it was stopped (`network connect`) come back as eth1, eth2…
        let r = r.and_then(|()| {
            for extra in store::endpoints(self.conn, Some(id))?
                .iter()
                .filter(|e| e.network.id != n.id)
            {
                self.plumb(&mut nl, &nsf, &mut inner, extra)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            let _ = nl.del_link(&host_if);
            netns::remove(&path);
            return Err(ctx(e));
        }
        if !req.ports.is_empty() {
            match self.publish(&ep, &req.ports) {
                Ok(p) => ep.ports = p,
                Err(e) => {
                    let _ = nl.del_link(&host_if);
                    netns::remove(&path);
                    return Err(e);
                }
            }
        }
        Ok(ep)
    }

    /// Puts an extra endpoint into a configured namespace as its first free `ethN` (no default
    /// route: the first network keeps it, as in docker).
    fn plumb(
        &self,
        nl: &mut netlink::Netlink,
        nsf: &std::fs::File,
        inner: &mut netlink::Netlink,
        ep: &Endpoint,
    ) -> Result<()> {
        let n = &ep.network;
        let bridge = self.ensure_bridge(nl, n)?;
        let host_if = veth_name(&ep.endpoint_id);
        let _ = nl.del_link(&host_if);
        let mut k = 0;
        while inner.link(&format!("eth{k}"))?.is_some() {
            k += 1;
        }
        let name = format!("eth{k}");
        nl.add_veth(
            &host_if,
            bridge.index,
            bridge.mtu,
            &name,
            parse_mac(&ep.mac)?,
            nsf.as_raw_fd(),
        )?;
        let l = inner.link(&name)?.ok_or_else(|| {
            Error::Netlink(format!("{name} missing in the container's namespace"))
        })?;
        inner.add_addr(l.index, ep.ip, n.prefix)?;
        inner.set_up_mtu(l.index, bridge.mtu)?;
        if k == 0 && !n.internal {
            // The container's only interface (its first network was disconnected): it routes.
            inner.add_default_route(n.gateway)?;
        }
        setup6(nsf, inner, &name, l.index, ep, k == 0 && !n.internal)
    }

    /// Starts a container whose first network was disconnected (`network disconnect`): a
    /// namespace with the networks it was connected to since, the first as `eth0`.
    pub fn attach_bare(&self, container: &str, name: &str) -> Result<()> {
        let ctx = |e: Error| Error::Invalid(format!("container {name}: networks: {e}"));
        let path = self.netns_path(container);
        netns::remove(&path);
        let (nsf, mut inner) = netns::create(&path).map_err(ctx)?;
        let r = (|| -> Result<()> {
            inner.set_up(1)?;
            let mut nl = netlink::Netlink::open()?;
            for ep in store::endpoints(self.conn, Some(container))? {
                self.plumb(&mut nl, &nsf, &mut inner, &ep)?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            netns::remove(&path);
            return Err(ctx(e));
        }
        Ok(())
    }

    /// `network connect`: an address on `n` for the container, plumbed now when it runs
    /// (`running`), else at its next start.
    pub fn connect(&self, n: &Network, req: &AttachRequest, running: bool) -> Result<Endpoint> {
        if self
            .endpoints(&req.container)?
            .iter()
            .any(|e| e.network.id == n.id)
        {
            return Err(Error::Invalid(format!(
                "endpoint with name {} already exists in network {}",
                req.name, n.name
            )));
        }
        let mut ep = store::allocate(
            self.conn,
            n,
            &req.container,
            &req.name,
            req.ip,
            req.mac.as_deref(),
            &new_id(),
        )?;
        if !req.aliases.is_empty() {
            store::set_aliases(self.conn, &n.id, &req.container, &req.aliases)?;
            ep.aliases = req.aliases.clone();
        }
        if running {
            let path = self.netns_path(&req.container);
            let r = (|| -> Result<()> {
                let nsf = std::fs::File::open(&path).ctx(|| format!("open {}", path.display()))?;
                let mut inner = netns::enter(&path)?;
                let mut nl = netlink::Netlink::open()?;
                self.plumb(&mut nl, &nsf, &mut inner, &ep)
            })();
            if let Err(e) = r {
                let _ = store::release_one(self.conn, &n.id, &req.container);
                return Err(Error::Invalid(format!(
                    "container {}: connect to network \"{}\": {e}",
                    req.name, n.name
                )));
            }
        }
        Ok(ep)
    }

    /// `network disconnect`: removes the container's interface on `n` (if it runs) and frees
    /// its address there.
    pub fn disconnect(&self, n: &Network, container: &str, name: &str) -> Result<()> {
        let Some(ep) = self
            .endpoints(container)?
            .into_iter()
            .find(|e| e.network.id == n.id)
        else {
            // docker's words, naming the container by id.
            let _ = name;
            return Err(Error::Invalid(format!(
                "container {container} is not connected to network {}",
                n.name
            )));
        };
        if let Ok(mut nl) = netlink::Netlink::open() {
            let _ = nl.del_link(&veth_name(&ep.endpoint_id));
        }
        self.unpublish(&ep);
        store::release_one(self.conn, &n.id, container)
    }

    fn publish(&self, ep: &Endpoint, reqs: &[PortRequest]) -> Result<Vec<Published>> {
        let others: Vec<Published> = store::endpoints(self.conn, None)?
            .into_iter()
            .filter(|e| e.container != ep.container)
            .flat_map(|e| e.ports)
            .collect();
        let mut out: Vec<Published> = Vec::new();
        let mut dnat = Vec::new();
        let ip6 = ep.ip6();
        for r in reqs {
            if r.host_ip.is_some_and(|i| i.is_ipv6()) && ip6.is_none() {
                return Err(Error::Invalid(format!(
                    "container {}: -p {}: network \"{}\" has no IPv6 (network create --ipv6)",
                    ep.name,
                    r.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    ep.network.name
                )));
            }
            let ip = r
                .host_ip
                .map(|i| i.to_string())
                .unwrap_or_else(|| "0.0.0.0".into());
            let clash = |p: &Published, port: u16| {
                p.proto == r.proto && p.host_port == port && binds_clash(&p.host_ip, &ip)
            };
            let taken = |port: u16| {
                others.iter().any(|p| clash(p, port)) || out.iter().any(|p| clash(p, port))
            };
            let shown = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.clone()
            };
            let hp = if r.host_port_end > r.host_port {
                // A host range for one container port: the first free one, as docker.
                (r.host_port..=r.host_port_end)
                    .filter(|p| !taken(*p))
                    .find_map(|p| ports::reserve(r.host_ip, p, &r.proto).ok())
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "Bind for {shown}:{}-{} failed: all ports are allocated",
                            r.host_port, r.host_port_end
                        ))
                    })?
            } else {
                if r.host_port != 0 && taken(r.host_port) {
                    return Err(Error::Invalid(format!(
                        "Bind for {shown}:{} failed: port is already allocated",
                        r.host_port
                    )));
                }
                ports::reserve(r.host_ip, r.host_port, &r.proto)?
            };
            let addr = match (r.host_ip, ip6) {
                (Some(std::net::IpAddr::V6(_)), Some(a6)) => std::net::IpAddr::V6(a6),
                _ => std::net::IpAddr::V4(ep.ip),
            };
            out.push(Published {
                host_ip: ip,
                host_port: hp,
                port: r.port,
                proto: r.proto.clone(),
            });
            dnat.push(nft::Dnat {
                // `[::]:8080:80`: every local IPv6 address.
                host_ip: r.host_ip.filter(|i| !i.is_unspecified()),
                proto: r.proto.clone(),
                host_port: hp,
                addr,
                port: r.port,
            });
            if let (None, Some(a6)) = (r.host_ip, ip6) {
                // Every local address: the IPv6 ones too on an --ipv6 network, as docker.
                out.push(Published {
                    host_ip: "::".into(),
                    host_port: hp,
                    port: r.port,
                    proto: r.proto.clone(),
                });
                dnat.push(nft::Dnat {
                    host_ip: None,
                    proto: r.proto.clone(),
                    host_port: hp,
                    addr: std::net::IpAddr::V6(a6),
                    port: r.port,
                });
            }
        }
        let t = &self.cfg.nft_table;
        let add = nft::port_elems("add", t, &dnat);
        if nft::apply(&add).is_err() {
            // The table was flushed or deleted under a live bridge (nft flush ruleset, a
            // firewall reload): write it again with this network, in the same transaction.
            let n = &ep.network;
            let mut cmds = nft::table_setup(t);
            if !n.internal {
                cmds.extend(nft::network_elems(
                    "add",
                    t,
                    (n.subnet, n.prefix),
                    &n.bridge,
                ));
            }
            if let Some(s6) = &n.extra.subnet6 {
                cmds.extend(nft::table6_setup(t));
                if !n.internal {
                    cmds.extend(nft::network6_elems("add", t, s6, &n.bridge));
                }
            }
            cmds.extend(add);
            nft::apply(&cmds).map_err(|e| {
                Error::Invalid(format!("container {}: publish ports: {e}", ep.name))
            })?;
        }
        store::set_ports(self.conn, &ep.network.id, &ep.container, &out)?;
        Ok(out)
    }

    /// Undoes [`Net::attach`] for every network of `container` (veth, namespace, published
    /// ports) and keeps its addresses; idempotent.
    pub fn detach(&self, container: &str) -> Result<()> {
        let eps = self.endpoints(container)?;
        let path = self.netns_path(container);
        if eps.is_empty() && !path.exists() {
            return Ok(());
        }
        // Unbinding the namespace is enough: the kernel destroys it (and the veth pair with it)
        // once the container's last process is gone, off our path. Deleting the veth here
        // would wait for an RCU grace period: 18 ms measured, most of a `run --rm`. (A
        // container whose networks were all disconnected has a namespace and no endpoint.)
        netns::remove(&path);
        for e in eps.iter().filter(|e| !e.ports.is_empty()) {
            self.unpublish(e);
            store::set_ports(self.conn, &e.network.id, container, &[])?;
        }
        Ok(())
    }

    /// Deletes an endpoint's published ports from the nft maps.
    fn unpublish(&self, e: &Endpoint) {
        if e.ports.is_empty() {
            return;
        }
        {
            let d: Vec<nft::Dnat> = e
                .ports
                .iter()
                .filter_map(|p| {
                    let host: std::net::IpAddr = p.host_ip.parse().ok()?;
                    let addr = match host {
                        std::net::IpAddr::V6(_) => std::net::IpAddr::V6(e.ip6()?),
                        std::net::IpAddr::V4(_) => std::net::IpAddr::V4(e.ip),
                    };
                    Some(nft::Dnat {
                        host_ip: Some(host).filter(|i| !i.is_unspecified()),
                        proto: p.proto.clone(),
                        host_port: p.host_port,
                        addr,
                        port: p.port,
                    })
                })
                .collect();
            let t = &self.cfg.nft_table;
            if nft::apply(&nft::port_elems("delete", t, &d)).is_err() {
                // Some were gone already (a flushed table): delete the rest one by one.
                for one in d.chunks(1) {
                    let _ = nft::apply(&nft::port_elems("delete", t, one));
                }
            }
        }
    }

    /// Records a container's new name on its endpoints (`rename`).
    pub fn rename(&self, container: &str, name: &str) -> Result<()> {
        store::rename(self.conn, container, name)
    }

    /// [`Net::detach`], then frees the container's addresses (on `rm`).
    pub fn release(&self, container: &str) -> Result<()> {
        self.detach(container)?;
        store::release(self.conn, container)
    }
}

/// An `--ipv6` network's side of an interface in a container's namespace: IPv6 on (the
/// namespace starts with it off), its address without DAD, and with `route` the default route.
fn setup6(
    nsf: &std::fs::File,
    inner: &mut netlink::Netlink,
    ifname: &str,
    index: u32,
    ep: &Endpoint,
    route: bool,
) -> Result<()> {
    let (Some(ip6), Some((_, len6)), Some(gw6)) =
        (ep.ip6(), ep.network.subnet6(), ep.network.gateway6())
    else {
        return Ok(());
    };
    netns::sysctl(nsf, "ipv6/conf/lo/disable_ipv6", "0")?;
    netns::sysctl(nsf, &format!("ipv6/conf/{ifname}/disable_ipv6"), "0")?;
    inner.add_addr6(index, ip6, len6)?;
    if route {
        inner.add_default_route6(gw6)?;
    }
    Ok(())
}

/// A random unique local IPv6 /64 (RFC 4193: `fd` and a 40-bit random global id).
fn random_ula() -> std::net::Ipv6Addr {
    let id = new_id();
    let g = u64::from_str_radix(&id[..10], 16).unwrap_or(1);
    std::net::Ipv6Addr::from((0xfdu128 << 120) | (u128::from(g) << 80))
}

/// Whether two published host addresses conflict on one port: the same address, or a wildcard
/// (`0.0.0.0`, `::`) and an address of its family.
fn binds_clash(a: &str, b: &str) -> bool {
    let v6 = |s: &str| s.contains(':');
    let any = |s: &str| s == "0.0.0.0" || s == "::";
    a == b || (v6(a) == v6(b) && (any(a) || any(b)))
}

/// Index and MTU of link `name` through `if_nametoindex` and sysfs.
fn quick_link(name: &str) -> Option<netlink::Link> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads the NUL-terminated string we own.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return None;
    }
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(netlink::Link { index, mtu })
}

/// The host side of an endpoint's veth pair.
pub fn veth_name(endpoint_id: &str) -> String {
    format!("veth{}", &endpoint_id[..endpoint_id.len().min(11)])
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .filter_map(|x| u8::from_str_radix(x, 16).ok())
        .collect();
    <[u8; 6]>::try_from(v).map_err(|_| Error::Invalid(format!("invalid MAC address: {s}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_skip_what_host_routes_and_networks_take() {
        assert_eq!(
            first_free_pool(&[]),
            Some((Ipv4Addr::new(172, 17, 0, 0), 16))
        );
        // A host route inside 172.17/16 (e.g. a VPN) moves the default bridge on, as docker.
        let taken = [
            (Ipv4Addr::new(172, 17, 3, 0), 24),
            (Ipv4Addr::new(172, 18, 0, 0), 16),
        ];
        assert_eq!(
            first_free_pool(&taken),
            Some((Ipv4Addr::new(172, 19, 0, 0), 16))
        );
        // A wide route covering all of 172.16/12 leaves the 192.168 pools.
        let taken = [(Ipv4Addr::new(172, 16, 0, 0), 12)];
        assert_eq!(
            first_free_pool(&taken),
            Some((Ipv4Addr::new(192, 168, 0, 0), 20))
        );
        let all = [
            (Ipv4Addr::new(172, 16, 0, 0), 12),
            (Ipv4Addr::new(192, 168, 0, 0), 16),
        ];
        assert_eq!(first_free_pool(&all), None);
        assert!(valid_name("web_1.a-b") && !valid_name("-x") && !valid_name("a b"));
        assert_eq!(veth_name(&"ab".repeat(32)).len(), 15);
        assert_eq!(
            parse_mac("02:42:ac:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        assert!(parse_mac("02:42").is_err());
    }
}
