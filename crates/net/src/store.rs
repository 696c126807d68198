//! Networks and endpoints in the state database (`skiff.db`, opened by the engine through the
//! state database's gate): the `networks` table, and `endpoints`, which is the IPAM — one row
//! per (network, container) holding its address, MAC and published ports, allocated in an
//! immediate transaction (so concurrent runs never get the same address: `UNIQUE(network, ip)`
//! backs that) and deleted only when the container is removed (no reuse before).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS networks(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  bridge TEXT NOT NULL UNIQUE,
  subnet TEXT NOT NULL,
  gateway TEXT NOT NULL,
  created TEXT NOT NULL,
  internal INTEGER NOT NULL DEFAULT 0,
  labels TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS builtin_networks(
  name TEXT PRIMARY KEY,
  id TEXT NOT NULL,
  created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints(
  network TEXT NOT NULL,
  container TEXT NOT NULL,
  name TEXT NOT NULL,
  ip TEXT NOT NULL,
  mac TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  ports TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY(network, container),
  UNIQUE(network, ip)
);
";

pub(crate) fn db(what: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Db(what.to_string(), e)
}

/// Creates the tables if needed (and the `extra` column of databases made before it).
pub fn init(conn: &Connection) -> Result<()> {
    conn.execute_batch(SCHEMA)
        .map_err(db("create network tables"))?;
    let has_extra: bool = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('networks') WHERE name = 'extra'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db("read network table"))?
        > 0;
    let has_aliases: bool = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('endpoints') WHERE name = 'aliases'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db("read endpoint table"))?
        > 0;
    if !has_aliases {
        match conn
            .execute_batch("ALTER TABLE endpoints ADD COLUMN aliases TEXT NOT NULL DEFAULT '[]'")
        {
            Ok(()) => {}
            Err(e) if e.to_string().contains("duplicate column") => {}
            Err(e) => return Err(Error::Db("add endpoint column".into(), e)),
        }
    }
    if !has_extra {
        match conn.execute_batch("ALTER TABLE networks ADD COLUMN extra TEXT NOT NULL DEFAULT '{}'")
        {
            Ok(()) => {}
            // A concurrent command added it first.
            Err(e) if e.to_string().contains("duplicate column") => {}
            Err(e) => return Err(Error::Db("add network column".into(), e)),
        }
    }
    Ok(())
}

/// The stable id of docker's built-in network `name` (`host` or `none`), recorded on first use
/// with its creation time.
pub fn builtin(conn: &Connection, name: &str, id: &str, created: &str) -> Result<(String, String)> {
    conn.execute(
        "INSERT OR IGNORE INTO builtin_networks(name, id, created) VALUES (?1, ?2, ?3)",
        params![name, id, created],
    )
    .map_err(db("record built-in network"))?;
    conn.query_row(
        "SELECT id, created FROM builtin_networks WHERE name = ?1",
        [name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(db("read built-in network"))
}

/// Settings of a network beyond its subnet, kept as JSON in the `extra` column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Extra {
    /// `--ip-range`: automatic addresses come from this CIDR only.
    pub ip_range: Option<String>,
    /// `--attachable` (accepted; every skiff network takes `network connect`).
    pub attachable: bool,
    /// `--opt` values as given (`com.docker.network.bridge.name`, …).
    pub options: BTreeMap<String, String>,
    /// `--ipv6`: the IPv6 subnet (`fd00:1::/64`).
    pub subnet6: Option<String>,
    /// `--ipv6`: the IPv6 gateway (the bridge's address).
    pub gateway6: Option<String>,
    /// `--subnet` was given without `--gateway`: docker's `IPAM.Config` then shows the subnet
    /// only (the gateway is still the subnet's first address).
    pub subnet_only: bool,
}

/// A network as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// 64-hex id.
    pub id: String,
    /// Name (`bridge` for the default one).
    pub name: String,
    /// Bridge device.
    pub bridge: String,
    /// Subnet address.
    pub subnet: Ipv4Addr,
    /// Subnet prefix length.
    pub prefix: u8,
    /// Gateway (the bridge's address).
    pub gateway: Ipv4Addr,
    /// RFC 3339 creation time.
    pub created: String,
    /// `--internal`: no masquerade.
    pub internal: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--ip-range`, `--attachable`, `--opt`, IPv6.
    pub extra: Extra,
}

impl Network {
    /// `10.1.0.0/16`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.subnet, self.prefix)
    }
    /// The IPv6 subnet (`--ipv6`).
    pub fn subnet6(&self) -> Option<(Ipv6Addr, u8)> {
        self.extra.subnet6.as_deref().and_then(parse_cidr6)
    }
    /// The IPv6 gateway (`--ipv6`).
    pub fn gateway6(&self) -> Option<Ipv6Addr> {
        self.extra.gateway6.as_deref()?.parse().ok()
    }
    /// The IPv6 address going with IPv4 address `ip` on this network: the same host offset in
    /// the IPv6 subnet, so it is as unique as the IPv4 one and needs no allocation of its own.
    pub fn ip6_of(&self, ip: Ipv4Addr) -> Option<Ipv6Addr> {
        let (net, _) = self.subnet6()?;
        let off = u32::from(ip).wrapping_sub(u32::from(self.subnet));
        Some(Ipv6Addr::from(u128::from(net) + off as u128))
    }
    /// `--ip-range` as an address and prefix.
    pub fn ip_range(&self) -> Option<(Ipv4Addr, u8)> {
        self.extra.ip_range.as_deref().and_then(parse_cidr)
    }
    /// Whether `ip` lies in the subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        in_subnet(ip, self.subnet, self.prefix)
    }
}

/// One published port of an endpoint (host port resolved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// Host address (`0.0.0.0` = all).
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
    /// Container port.
    pub port: u16,
    /// `tcp` or `udp`.
    pub proto: String,
}

impl Endpoint {
    /// Its IPv6 address on an `--ipv6` network.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.network.ip6_of(self.ip)
    }
}

/// A container's attachment to one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The network.
    pub network: Network,
    /// Container id.
    pub container: String,
    /// Container name (its DNS name on user networks).
    pub name: String,
    /// Address.
    pub ip: Ipv4Addr,
    /// MAC address, `02:42:…`.
    pub mac: String,
    /// 64-hex endpoint id.
    pub endpoint_id: String,
    /// Published ports.
    pub ports: Vec<Published>,
    /// Its names on this network besides its own (`--network-alias`, `network connect --alias`).
    pub aliases: Vec<String>,
}

/// Whether `ip` is in `net/len`.
pub fn in_subnet(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// Whether two subnets overlap.
pub fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let len = a.1.min(b.1);
    in_subnet(a.0, b.0, len)
}

/// Parses `fd00:1::/64` (host bits are cleared); prefixes from /48 to /120.
pub fn parse_cidr6(s: &str) -> Option<(Ipv6Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    let a: Ipv6Addr = a.parse().ok()?;
    let l: u8 = l.parse().ok()?;
    if !(48..=120).contains(&l) {
        return None;
    }
    let mask = u128::MAX << (128 - l);
    Some((Ipv6Addr::from(u128::from(a) & mask), l))
}

/// Whether two IPv6 subnets overlap.
pub fn overlaps6(a: (Ipv6Addr, u8), b: (Ipv6Addr, u8)) -> bool {
    let len = a.1.min(b.1);
    let mask = u128::MAX << (128 - len);
    u128::from(a.0) & mask == u128::from(b.0) & mask
}

/// Parses `10.1.0.0/16` (host bits are cleared).
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    let a: Ipv4Addr = a.parse().ok()?;
    let l: u8 = l.parse().ok()?;
    if l > 30 {
        return None;
    }
    let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
    Some((Ipv4Addr::from(u32::from(a) & mask), l))
}

fn row_network(r: &rusqlite::Row) -> rusqlite::Result<Network> {
    let subnet: String = r.get(3)?;
    let (net, len) = parse_cidr(&subnet).unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
    let gw: String = r.get(4)?;
    let labels: String = r.get(7)?;
    let extra: String = r.get(8)?;
    Ok(Network {
        id: r.get(0)?,
        name: r.get(1)?,
        bridge: r.get(2)?,
        subnet: net,
        prefix: len,
        gateway: gw.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
        created: r.get(5)?,
        internal: r.get::<_, i64>(6)? != 0,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        extra: serde_json::from_str(&extra).unwrap_or_default(),
    })
}

const NET_COLS: &str = "id, name, bridge, subnet, gateway, created, internal, labels, extra";

/// All networks, by name.
pub fn networks(conn: &Connection) -> Result<Vec<Network>> {
    let mut st = conn
        .prepare_cached(&format!("SELECT {NET_COLS} FROM networks ORDER BY name"))
        .map_err(db("list networks"))?;
    let v = st
        .query_map([], row_network)
        .map_err(db("list networks"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db("list networks"))?;
    Ok(v)
}

/// The network with this name, full id or unique id prefix.
pub fn network(conn: &Connection, s: &str) -> Result<Option<Network>> {
    let q = format!("SELECT {NET_COLS} FROM networks WHERE name = ?1 OR id = ?1");
    if let Some(n) = conn
        .query_row(&q, [s], row_network)
        .optional()
        .map_err(db("find network"))?
    {
        return Ok(Some(n));
    }
    if s.len() < 3 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let m: Vec<Network> = networks(conn)?
        .into_iter()
        .filter(|n| n.id.starts_with(s))
        .collect();
    Ok(if m.len() == 1 {
        m.into_iter().next()
    } else {
        None
    })
}

/// Records a new network; errors name the clash.
pub fn insert_network(conn: &Connection, n: &Network) -> Result<()> {
    for o in networks(conn)? {
        if o.name == n.name {
            return Err(Error::Exists(n.name.clone()));
        }
        if o.bridge == n.bridge {
            return Err(Error::Invalid(format!(
                "network \"{}\": bridge name {} is used by network \"{}\"",
                n.name, n.bridge, o.name
            )));
        }
        if let (Some(a), Some(b)) = (o.subnet6(), n.subnet6()) {
            if overlaps6(a, b) {
                return Err(Error::Invalid(format!(
                    "network \"{}\": subnet {} overlaps \"{}\" ({})",
                    n.name,
                    n.extra.subnet6.as_deref().unwrap_or(""),
                    o.name,
                    o.extra.subnet6.as_deref().unwrap_or("")
                )));
            }
        }
        if overlaps((o.subnet, o.prefix), (n.subnet, n.prefix)) {
            return Err(Error::Invalid(format!(
                "network \"{}\": subnet {} overlaps \"{}\" ({})",
                n.name,
                n.cidr(),
                o.name,
                o.cidr()
            )));
        }
    }
    conn.execute(
        "INSERT INTO networks(id, name, bridge, subnet, gateway, created, internal, labels, extra) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            n.id,
            n.name,
            n.bridge,
            n.cidr(),
            n.gateway.to_string(),
            n.created,
            n.internal as i64,
            serde_json::to_string(&n.labels).unwrap_or_else(|_| "{}".into()),
            serde_json::to_string(&n.extra).unwrap_or_else(|_| "{}".into())
        ],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            Error::Exists(n.name.clone())
        }
        e => Error::Db(format!("record network \"{}\"", n.name), e),
    })?;
    Ok(())
}

/// Deletes a network's row.
pub fn delete_network(conn: &Connection, id: &str) -> Result<()> {
    conn.execute("DELETE FROM networks WHERE id = ?1", [id])
        .map_err(db("delete network"))?;
    Ok(())
}

fn row_endpoint(r: &rusqlite::Row, n: Network) -> rusqlite::Result<Endpoint> {
    let ip: String = r.get(3)?;
    let ports: String = r.get(6)?;
    let aliases: String = r.get(7)?;
    Ok(Endpoint {
        network: n,
        container: r.get(1)?,
        name: r.get(2)?,
        ip: ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
        mac: r.get(4)?,
        endpoint_id: r.get(5)?,
        ports: serde_json::from_str(&ports).unwrap_or_default(),
        aliases: serde_json::from_str(&aliases).unwrap_or_default(),
    })
}

/// Endpoints of a container (`Some(id)`) or of every container, with their networks.
pub fn endpoints(conn: &Connection, container: Option<&str>) -> Result<Vec<Endpoint>> {
    let nets: BTreeMap<String, Network> = networks(conn)?
        .into_iter()
        .map(|n| (n.id.clone(), n))
        .collect();
    // One statement: a row removed by a concurrent `rm` is simply not in the result (a second
    // per-row read would find it gone and fail the whole listing).
    let mut st = conn
        .prepare_cached(
            "SELECT network, container, name, ip, mac, endpoint, ports, aliases FROM endpoints WHERE ?1 IS NULL OR container = ?1 ORDER BY network, ip",
        )
        .map_err(db("list endpoints"))?;
    let rows = st
        .query_map([container], |r| {
            let nid: String = r.get(0)?;
            match nets.get(&nid) {
                Some(n) => row_endpoint(r, n.clone()).map(Some),
                None => Ok(None),
            }
        })
        .map_err(db("list endpoints"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db("list endpoints"))?;
    let out: Vec<Endpoint> = rows.into_iter().flatten().collect();
    Ok(out)
}

/// Endpoints on network `id`.
pub fn network_endpoints(conn: &Connection, id: &str) -> Result<Vec<Endpoint>> {
    Ok(endpoints(conn, None)?
        .into_iter()
        .filter(|e| e.network.id == id)
        .collect())
}

/// `02:42:` followed by the address, as docker derives it.
pub fn mac_of(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// Allocates (or returns the existing) endpoint of `container` on `n`: the lowest free address
/// (or `want`), in one immediate transaction.
pub fn allocate(
    conn: &Connection,
    n: &Network,
    container: &str,
    name: &str,
    want: Option<Ipv4Addr>,
    mac: Option<&str>,
    endpoint_id: &str,
) -> Result<Endpoint> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(db("begin address allocation"))?;
    let r = (|| -> Result<Endpoint> {
        if let Some(e) = endpoints(conn, Some(container))?
            .into_iter()
            .find(|e| e.network.id == n.id)
        {
            return Ok(e);
        }
        let mut st = conn
            .prepare_cached("SELECT ip FROM endpoints WHERE network = ?1")
            .map_err(db("list addresses"))?;
        let used: std::collections::HashSet<u32> = st
            .query_map([&n.id], |r| r.get::<_, String>(0))
            .map_err(db("list addresses"))?
            .filter_map(|r| r.ok()?.parse::<Ipv4Addr>().ok().map(u32::from))
            .collect();
        let base = u32::from(n.subnet);
        let size = 1u64 << (32 - n.prefix);
        let ip = match want {
            Some(ip) => {
                let v = u32::from(ip);
                if !n.contains(ip) || v == base || v as u64 == base as u64 + size - 1 {
                    return Err(Error::Invalid(format!(
                        "network \"{}\": address {ip} is not in subnet {}",
                        n.name,
                        n.cidr()
                    )));
                }
                if used.contains(&v) || ip == n.gateway {
                    return Err(Error::Invalid(format!(
                        "network \"{}\": address {ip} is already in use",
                        n.name
                    )));
                }
                ip
            }
            None => (1..size - 1)
                .map(|o| base + o as u32)
                .filter(|v| match n.ip_range() {
                    Some((r, l)) => in_subnet(Ipv4Addr::from(*v), r, l),
                    None => true,
                })
                .find(|v| *v != u32::from(n.gateway) && !used.contains(v))
                .map(Ipv4Addr::from)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "network \"{}\": no free address in {}",
                        n.name,
                        n.cidr()
                    ))
                })?,
        };
        let mac = mac.map(str::to_string).unwrap_or_else(|| mac_of(ip));
        conn.execute(
            "INSERT INTO endpoints(network, container, name, ip, mac, endpoint) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![n.id, container, name, ip.to_string(), mac, endpoint_id],
        )
        .map_err(db("record endpoint"))?;
        Ok(Endpoint {
            network: n.clone(),
            container: container.to_string(),
            name: name.to_string(),
            ip,
            mac,
            endpoint_id: endpoint_id.to_string(),
            ports: Vec::new(),
            aliases: Vec::new(),
        })
    })();
    match r {
        Ok(e) => {
            conn.execute_batch("COMMIT")
                .map_err(db("commit address allocation"))?;
            Ok(e)
        }
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

/// Records the ports an endpoint publishes.
pub fn set_ports(
    conn: &Connection,
    network: &str,
    container: &str,
    ports: &[Published],
) -> Result<()> {
    conn.execute(
        "UPDATE endpoints SET ports = ?3 WHERE network = ?1 AND container = ?2",
        params![
            network,
            container,
            serde_json::to_string(ports).unwrap_or_else(|_| "[]".into())
        ],
    )
    .map_err(db("record published ports"))?;
    Ok(())
}

/// Records the aliases of a container on one network.
pub fn set_aliases(
    conn: &Connection,
    network: &str,
    container: &str,
    aliases: &[String],
) -> Result<()> {
    conn.execute(
        "UPDATE endpoints SET aliases = ?3 WHERE network = ?1 AND container = ?2",
        params![
            network,
            container,
            serde_json::to_string(aliases).unwrap_or_else(|_| "[]".into())
        ],
    )
    .map_err(db("record aliases"))?;
    Ok(())
}

/// Renames a container on every network it is on (its DNS name on user networks).
pub fn rename(conn: &Connection, container: &str, name: &str) -> Result<()> {
    conn.execute(
        "UPDATE endpoints SET name = ?2 WHERE container = ?1",
        params![container, name],
    )
    .map_err(db("rename endpoint"))?;
    Ok(())
}

/// Frees a container's addresses (all its endpoints).
pub fn release(conn: &Connection, container: &str) -> Result<()> {
    conn.execute("DELETE FROM endpoints WHERE container = ?1", [container])
        .map_err(db("release addresses"))?;
    Ok(())
}

/// Frees a container's address on one network.
pub fn release_one(conn: &Connection, network: &str, container: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM endpoints WHERE network = ?1 AND container = ?2",
        [network, container],
    )
    .map_err(db("release address"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        assert_eq!(
            parse_cidr("10.1.2.3/16"),
            Some((Ipv4Addr::new(10, 1, 0, 0), 16))
        );
        assert!(overlaps(
            parse_cidr("10.1.0.0/16").unwrap(),
            parse_cidr("10.1.5.0/24").unwrap()
        ));
        assert!(!overlaps(
            parse_cidr("10.1.0.0/16").unwrap(),
            parse_cidr("10.2.0.0/16").unwrap()
        ));
        assert_eq!(mac_of(Ipv4Addr::new(172, 17, 0, 2)), "02:42:ac:11:00:02");
    }

    #[test]
    fn allocation_is_lowest_free_and_unique() {
        let conn = Connection::open_in_memory().unwrap();
        init(&conn).unwrap();
        let n = Network {
            id: "n1".into(),
            name: "t".into(),
            bridge: "br-t".into(),
            subnet: Ipv4Addr::new(10, 9, 0, 0),
            prefix: 29,
            gateway: Ipv4Addr::new(10, 9, 0, 1),
            created: String::new(),
            internal: false,
            labels: BTreeMap::new(),
            extra: Extra::default(),
        };
        insert_network(&conn, &n).unwrap();
        let a = allocate(&conn, &n, "c1", "a", None, None, "e1").unwrap();
        let b = allocate(&conn, &n, "c2", "b", None, None, "e2").unwrap();
        assert_eq!(a.ip, Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(b.ip, Ipv4Addr::new(10, 9, 0, 3));
        // Idempotent per container.
        assert_eq!(
            allocate(&conn, &n, "c1", "a", None, None, "e9").unwrap().ip,
            a.ip
        );
        release(&conn, "c1").unwrap();
        assert_eq!(
            allocate(&conn, &n, "c3", "c", None, None, "e3").unwrap().ip,
            a.ip
        );
        assert!(allocate(&conn, &n, "c4", "d", Some(b.ip), None, "e4").is_err());
        for i in 5..9 {
            let _ = allocate(&conn, &n, &format!("c{i}"), "x", None, None, "e");
        }
        // /29: 6 hosts less the gateway.
        assert_eq!(network_endpoints(&conn, "n1").unwrap().len(), 5);
    }
}
