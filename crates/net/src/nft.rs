//! nftables: one `ip` table per root (`skiff` by default), changed in one transaction per change
//! through `nft -f -` (the one exec of skiff-net; speaking nf_tables netlink directly is left for
//! later). nft's native syntax, not its JSON: nft 1.0.6 (Debian 12) segfaults parsing the JSON
//! of a `dnat ip to … map @m` rule with a concatenated address . port value. Nothing per container is a rule: published ports are elements of two
//! maps and networks elements of two sets, so adding and removing them never needs rule
//! handles, and the few rules are rewritten atomically whenever a bridge is set up.
//!
//! ```text
//! table ip skiff {
//!   set nets { type ipv4_addr; flags interval }       subnets of the networks (masqueraded)
//!   set bridges { type ifname }                       their bridges
//!   map pany { inet_proto . inet_service : ipv4_addr . inet_service }           -p PORT:PORT
//!   map pip  { ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service } -p IP:PORT:PORT
//!   chain pub { dnat via @pip; dnat via @pany }
//!   chain prerouting/output (nat) { fib daddr type local jump pub }
//!   chain postrouting (nat) { ip saddr @nets oifname != @bridges masquerade
//!                             ip saddr 127.0.0.0/8 oifname @bridges masquerade }
//! }
//! ```

use std::io::Write;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// One published port as nftables sees it (in the `ip6` table when `addr` is IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dnat {
    /// Host address the port is bound to (`None` = every local address of `addr`'s family).
    pub host_ip: Option<std::net::IpAddr>,
    /// `tcp` or `udp`.
    pub proto: String,
    /// Host port.
    pub host_port: u16,
    /// Container address.
    pub addr: std::net::IpAddr,
    /// Container port.
    pub port: u16,
}

/// The commands that create (or repair) `table` with its sets, maps, chains and rules; the
/// chains are flushed and refilled in the same transaction, so running it twice changes nothing.
pub fn table_setup(table: &str) -> Vec<String> {
    let mut c = vec![
        format!("add table ip {table}"),
        format!("add set ip {table} nets {{ type ipv4_addr; flags interval; }}"),
        format!("add set ip {table} bridges {{ type ifname; }}"),
        format!("add map ip {table} pany {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}"),
        format!("add map ip {table} pip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}"),
        format!("add chain ip {table} pub"),
        format!("add chain ip {table} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}"),
        format!("add chain ip {table} output {{ type nat hook output priority -100; policy accept; }}"),
        format!("add chain ip {table} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}"),
    ];
    for ch in ["pub", "prerouting", "output", "postrouting"] {
        c.push(format!("flush chain ip {table} {ch}"));
    }
    c.push(format!(
        "add rule ip {table} pub dnat ip to ip daddr . meta l4proto . th dport map @pip"
    ));
    c.push(format!(
        "add rule ip {table} pub dnat ip to meta l4proto . th dport map @pany"
    ));
    c.push(format!(
        "add rule ip {table} prerouting fib daddr type local jump pub"
    ));
    c.push(format!(
        "add rule ip {table} output fib daddr type local jump pub"
    ));
    c.push(format!(
        "add rule ip {table} postrouting ip saddr @nets oifname != @bridges masquerade"
    ));
    c.push(format!(
        "add rule ip {table} postrouting ip saddr 127.0.0.0/8 oifname @bridges masquerade"
    ));
    c
}

/// `add`/`delete` of one network's set elements (subnet and bridge).
pub fn network_elems(
    verb: &str,
    table: &str,
    subnet: (std::net::Ipv4Addr, u8),
    bridge: &str,
) -> Vec<String> {
    vec![
        format!(
            "{verb} element ip {table} nets {{ {}/{} }}",
            subnet.0, subnet.1
        ),
        format!("{verb} element ip {table} bridges {{ \"{bridge}\" }}"),
    ]
}

/// `add`/`delete` of published ports.
pub fn port_elems(verb: &str, table: &str, ports: &[Dnat]) -> Vec<String> {
    ports
        .iter()
        .map(|p| {
            let (name, key) = match p.host_ip {
                Some(ip) => ("pip", format!("{ip} . {} . {}", p.proto, p.host_port)),
                None => ("pany", format!("{} . {}", p.proto, p.host_port)),
            };
            let val = if verb == "delete" {
                String::new()
            } else {
                format!(" : {} . {}", p.addr, p.port)
            };
            let family = if p.addr.is_ipv6() { "ip6" } else { "ip" };
            format!("{verb} element {family} {table} {name} {{ {key}{val} }}")
        })
        .collect()
}

/// The `ip6` table of the same name for `--ipv6` networks, shaped as the `ip` one: outbound
/// masquerade of their IPv6 subnets (ULA), published ports (`pany`, `pip`) DNAT'd to the
/// containers' IPv6 addresses (on every local address but `::1`); written like [`table_setup`].
pub fn table6_setup(table: &str) -> Vec<String> {
    let mut c = vec![
        format!("add table ip6 {table}"),
        format!("add set ip6 {table} nets {{ type ipv6_addr; flags interval; }}"),
        format!("add set ip6 {table} bridges {{ type ifname; }}"),
        format!("add map ip6 {table} pany {{ type inet_proto . inet_service : ipv6_addr . inet_service; }}"),
        format!("add map ip6 {table} pip {{ type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }}"),
        format!("add chain ip6 {table} pub"),
        format!("add chain ip6 {table} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}"),
        format!("add chain ip6 {table} output {{ type nat hook output priority -100; policy accept; }}"),
        format!("add chain ip6 {table} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}"),
    ];
    for ch in ["pub", "prerouting", "output", "postrouting"] {
        c.push(format!("flush chain ip6 {table} {ch}"));
    }
    c.extend([
        format!(
            "add rule ip6 {table} pub dnat ip6 to ip6 daddr . meta l4proto . th dport map @pip"
        ),
        format!("add rule ip6 {table} pub dnat ip6 to meta l4proto . th dport map @pany"),
        format!("add rule ip6 {table} prerouting fib daddr type local jump pub"),
        // Not ::1: its replies cannot come back (README, `-p [::1]`); a local client of
        // `localhost:PORT` is refused there at once and falls back to 127.0.0.1.
        format!("add rule ip6 {table} output ip6 daddr != ::1 fib daddr type local jump pub"),
        format!("add rule ip6 {table} postrouting ip6 saddr @nets oifname != @bridges masquerade"),
    ]);
    c
}

/// `add`/`delete` of an `--ipv6` network's elements in the `ip6` table.
pub fn network6_elems(verb: &str, table: &str, subnet6: &str, bridge: &str) -> Vec<String> {
    vec![
        format!("{verb} element ip6 {table} nets {{ {subnet6} }}"),
        format!("{verb} element ip6 {table} bridges {{ \"{bridge}\" }}"),
    ]
}

/// `delete table` (tests and clean-up).
pub fn delete_table(table: &str) -> Vec<String> {
    vec![format!("delete table ip {table}")]
}

/// Runs `cmds` as one nftables transaction (all or nothing).
pub fn apply(cmds: &[String]) -> Result<()> {
    if cmds.is_empty() {
        return Ok(());
    }
    let doc = cmds.join("\n") + "\n";
    // By path first: an ordinary user's PATH (rootless skiff) often lacks /usr/sbin.
    let nft = ["/usr/sbin/nft", "/sbin/nft"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nft");
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Nft(format!("run nft (install the nftables package): {e}")))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(doc.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Nft(format!("run nft: {e}")))?;
    if !out.status.success() {
        if let Some(p) = std::env::var_os("SKIFF_NFT_DEBUG") {
            let _ = std::fs::write(p, &doc);
        }
        let msg = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = msg
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
            .collect();
        let text = if lines.is_empty() {
            "failed".to_string()
        } else {
            lines.join("; ")
        };
        return Err(Error::Nft(text));
    }
    Ok(())
}
