//! Networks end to end (issue 15): real containers in network namespaces skiff made, on real
//! bridges, with real nftables NAT. Every test picks its own bridge name, /24 from 10.200.0.0/16
//! and nft table, sends traffic only to 127.0.0.1 and to its own containers, and deletes what it
//! made in a Drop guard, failed or not.

use std::io::{Read, Write};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_tests::{stderr, stdout, unique, EngineEnv};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// An engine root whose default bridge, subnet and nft table are the test's own.
struct NetEnv {
    env: EngineEnv,
    bridge: String,
    table: String,
    /// `10.200.N`.
    prefix: String,
}

impl std::ops::Deref for NetEnv {
    type Target = EngineEnv;
    fn deref(&self) -> &EngineEnv {
        &self.env
    }
}

/// Third octets of the 10.200.0.0/16 routes the host has now (other tests' bridges).
fn used_octets() -> Vec<u32> {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    routes
        .lines()
        .skip(1)
        .filter_map(|l| {
            let dst = u32::from_str_radix(l.split_whitespace().nth(1)?, 16).ok()?;
            // Little-endian: 10.200.x.y is 0xyyxxc80a.
            ((dst & 0xffff) == 0xc80a).then_some((dst >> 16) & 0xff)
        })
        .collect()
}

impl NetEnv {
    fn new(name: &str) -> NetEnv {
        skiff_tests::require_root();
        if Command::new("nft").arg("--version").output().is_err() {
            panic!("nft is missing: install the nftables package (scripts/deps.sh)");
        }
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let used = used_octets();
        let mut octet = (pid % 50) * 5 + n % 5 + 1;
        while used.contains(&octet) {
            octet = octet % 250 + 1;
        }
        let bridge = format!("sk{}{n}", pid % 100000);
        let table = format!("sk{pid}_{n}");
        let dir = tempfile::Builder::new()
            .prefix(&format!("skiff-net-{name}-"))
            .tempdir()
            .unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("daemon.json"),
            format!(
                "{{\"bridge\": \"{bridge}\", \"bip\": \"10.200.{octet}.1/24\", \"nft-table\": \"{table}\", \"ip-forward\": false}}"
            ),
        )
        .unwrap();
        let env = EngineEnv {
            dir,
            cgroup: unique(&format!("skiff-test-net-{name}")),
        };
        let rootfs = env.dir.path().join("rootfs");
        skiff_tests::busybox_rootfs(&rootfs);
        env.ok(&[
            "import",
            "-c",
            "CMD [\"sh\"]",
            rootfs.to_str().unwrap(),
            "busybox:latest",
        ]);
        NetEnv {
            env,
            bridge,
            table,
            prefix: format!("10.200.{octet}"),
        }
    }

    fn inspect(&self, name: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        v[0].clone()
    }

    fn nft(&self) -> String {
        let o = Command::new("nft")
            .args(["list", "table", "ip", &self.table])
            .output()
            .unwrap();
        stdout(&o)
    }

    fn endpoint_rows(&self, id: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.root().join("skiff.db")).unwrap();
        conn.query_row(
            "SELECT count(*) FROM endpoints WHERE container = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    }
}

impl Drop for NetEnv {
    fn drop(&mut self) {
        // Containers first (EngineEnv's clean-up does it again, harmlessly), then networks.
        if let Ok(o) = self.env.cmd(&["ps", "-aq"]).output() {
            for id in stdout(&o).split_whitespace() {
                let _ = self.env.cmd(&["rm", "-f", id]).output();
            }
        }
        if let Ok(o) = self
            .env
            .cmd(&["network", "ls", "--format", "{{.Name}}"])
            .output()
        {
            for n in stdout(&o).split_whitespace().filter(|n| *n != "bridge") {
                let _ = self.env.cmd(&["network", "rm", n]).output();
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        for family in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, &self.table])
                .output();
        }
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GET / from 127.0.0.1:port, retried while the server starts.
fn http_get(port: u16) -> String {
    http_get_at(&format!("127.0.0.1:{port}"))
}

/// GET / from `addr` (`[::1]:8080` too), retried while the server starts.
fn http_get_at(addr: &str) -> String {
    let port = addr;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(addr)?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match r {
            Ok(s) if s.contains("200") => return s,
            r if Instant::now() > deadline => panic!("{port}: {r:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The default bridge: addresses from its subnet, two containers reach each other, a port
/// published on 127.0.0.1 reaches a server in a container, and `rm -f` leaves no NAT element,
/// veth, namespace or address behind.
#[test]
fn default_bridge_ping_publish_and_cleanup() {
    let env = NetEnv::new("bridge");
    env.ok(&["run", "-d", "--name", "ca", "busybox", "sleep", "1000"]);
    env.ok(&["run", "-d", "--name", "cb", "busybox", "sleep", "1000"]);
    let (ia, ib) = (env.inspect("ca"), env.inspect("cb"));
    let ip_a = ia["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let ip_b = ib["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip_a.starts_with(&format!("{}.", env.prefix)), "{ip_a}");
    assert!(ip_b.starts_with(&format!("{}.", env.prefix)), "{ip_b}");
    assert_ne!(ip_a, ip_b);
    let net = &ia["NetworkSettings"]["Networks"]["bridge"];
    assert_eq!(net["IPAddress"], ip_a.as_str());
    assert_eq!(net["Gateway"], format!("{}.1", env.prefix).as_str());
    assert_eq!(net["MacAddress"].as_str().unwrap().len(), 17);
    assert_eq!(net["NetworkID"].as_str().unwrap().len(), 64);
    assert_eq!(net["EndpointID"].as_str().unwrap().len(), 64);
    assert_eq!(ia["HostConfig"]["NetworkMode"], "bridge");
    let o = env.ok(&["exec", "ca", "ping", "-c", "1", "-W", "5", &ip_b]);
    assert!(o.contains("1 packets received"), "{o}");
    // The container's view: eth0 with its address, a default route via the bridge.
    let o = env.ok(&["exec", "cb", "ip", "route"]);
    assert!(o.contains(&format!("default via {}.1", env.prefix)), "{o}");

    // -p 127.0.0.1:PORT:80 → httpd in the container.
    let www = env.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from the container\n").unwrap();
    let port = skiff_tests::free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let vol = format!("{}:/www:ro", www.display());
    let id = env
        .ok(&[
            "run", "-d", "--name", "web", "-p", &publish, "-v", &vol, "busybox", "httpd", "-f",
            "-p", "80", "-h", "/www",
        ])
        .trim()
        .to_string();
    let body = http_get(port);
    assert!(body.contains("hello from the container"), "{body}");
    assert_eq!(
        env.ok(&["port", "web", "80"]).trim(),
        format!("127.0.0.1:{port}")
    );
    let ps = env.ok(&["ps", "--format", "{{.Ports}}", "--filter", "name=web"]);
    assert_eq!(ps.trim(), format!("127.0.0.1:{port}->80/tcp"));
    let iw = env.inspect("web");
    assert_eq!(
        iw["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        port.to_string().as_str()
    );
    assert!(
        env.nft().contains(&format!("127.0.0.1 . tcp . {port}")),
        "{}",
        env.nft()
    );
    let veth = format!(
        "veth{}",
        &iw["NetworkSettings"]["Networks"]["bridge"]["EndpointID"]
            .as_str()
            .unwrap()[..11]
    );
    assert!(link_exists(&veth), "{veth} missing");
    // A second container cannot take the same host port.
    let o = env.sk(&["run", "-d", "-p", &publish, "busybox", "sleep", "100"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("port is already allocated"),
        "{}",
        stderr(&o)
    );

    env.ok(&["rm", "-f", "web"]);
    assert!(!env.nft().contains(&format!(". {port}")), "{}", env.nft());
    assert_eq!(env.endpoint_rows(&id), 0, "address not released");
    assert!(!env.root().join("run/netns").join(&id).exists());
    wait_until("the veth of a removed container to go", || {
        !link_exists(&veth)
    });
    assert!(
        std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            Duration::from_millis(500)
        )
        .is_err(),
        "the port still answers after rm"
    );
    // --add-host and --dns* land in the files a bridge container gets (no traffic sent).
    let o = env.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db.example:10.9.8.7",
        "--dns",
        "10.9.8.53",
        "--dns-search",
        "example.test",
        "--dns-option",
        "ndots:2",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(o.contains("10.9.8.7\tdb.example"), "{o}");
    assert!(o.contains("nameserver 10.9.8.53"), "{o}");
    assert!(o.contains("search example.test"), "{o}");
    assert!(o.contains("options ndots:2"), "{o}");
    assert_eq!(o.matches("nameserver").count(), 1, "{o}");
    // --network container:X shares X's namespace.
    let o = env.ok(&[
        "run",
        "--rm",
        "--network",
        "container:cb",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(o.contains(&format!("{ip_b}/24")), "{o}");
    // A table deleted under a live bridge (nft flush ruleset, a firewall reload) is written
    // again by the next publish.
    Command::new("nft")
        .args(["delete", "table", "ip", &env.table])
        .status()
        .unwrap();
    let port2 = skiff_tests::free_port();
    let publish2 = format!("127.0.0.1:{port2}:80");
    env.ok(&[
        "run", "-d", "--name", "web2", "-p", &publish2, "-v", &vol, "busybox", "httpd", "-f", "-p",
        "80", "-h", "/www",
    ]);
    assert!(http_get(port2).contains("hello from the container"));
    env.ok(&["rm", "-f", "web2"]);
    // `stop` unpublishes too, and keeps the address for the next start.
    env.ok(&["stop", "-t", "0", "ca"]);
    assert_eq!(env.endpoint_rows(ia["Id"].as_str().unwrap()), 1);
    env.ok(&["start", "ca"]);
    assert_eq!(
        env.inspect("ca")["NetworkSettings"]["IPAddress"],
        ip_a.as_str()
    );
}

/// 20 `run --rm` at once get 20 different addresses and leave no address or namespace behind.
#[test]
fn twenty_parallel_run_rm_get_distinct_addresses() {
    let env = NetEnv::new("parallel");
    let children: Vec<_> = (0..20)
        .map(|_| {
            env.cmd(&[
                "run",
                "--rm",
                "busybox",
                "sh",
                "-c",
                "ip -4 -o addr show eth0 | awk '{print $4}'; sleep 3",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut addrs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
            stdout(&o).trim().to_string()
        })
        .collect();
    for a in &addrs {
        assert!(
            a.starts_with(&format!("{}.", env.prefix)) && a.ends_with("/24"),
            "{a}"
        );
    }
    addrs.sort();
    let n = addrs.len();
    addrs.dedup();
    assert_eq!(addrs.len(), n, "duplicate addresses: {addrs:?}");
    let conn = rusqlite::Connection::open(env.root().join("skiff.db")).unwrap();
    let left: i64 = conn
        .query_row("SELECT count(*) FROM endpoints", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    let ns: Vec<_> = std::fs::read_dir(env.root().join("run/netns"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name())
                .filter(|n| n != ".lock")
                .collect()
        })
        .unwrap_or_default();
    assert!(ns.is_empty(), "namespaces left: {ns:?}");
}

/// A user-defined network: its own subnet and bridge, names resolve between its containers,
/// `network rm` refuses while a container uses it and deletes the bridge after.
#[test]
fn user_network_names_and_removal() {
    let env = NetEnv::new("user");
    let octet: u32 = env.prefix.rsplit('.').next().unwrap().parse().unwrap();
    // A neighbour /24 of the test's own (checked free of host routes).
    let mut o2 = (octet + 100) % 250 + 1;
    while skiff_tests_used(o2) {
        o2 = o2 % 250 + 1;
    }
    let subnet = format!("10.200.{o2}.0/24");
    let name = format!("n{}", env.table);
    let id = env
        .ok(&["network", "create", "--subnet", &subnet, &name])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let o = env.sk(&["network", "create", "--subnet", &subnet, "other"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("overlaps"), "{}", stderr(&o));
    let ls = env.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(ls.contains(&format!("{name} bridge")), "{ls}");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "alpha",
        "--network",
        &name,
        "busybox",
        "sleep",
        "1000",
    ]);
    let ip = env.inspect("alpha")["NetworkSettings"]["Networks"][&name]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ip, format!("10.200.{o2}.2"));
    let o = env.ok(&[
        "run",
        "--rm",
        "--name",
        "beta",
        "--network",
        &name,
        "busybox",
        "sh",
        "-c",
        "ping -c 1 -W 5 alpha && ping -c 1 -W 5 beta && head -1 /etc/resolv.conf && nslookup alpha",
    ]);
    assert!(o.contains(&format!("PING alpha ({ip})")), "{o}");
    // The embedded DNS server (docker's 127.0.0.11, served by the container's monitor inside its
    // namespace) answers for peers: nslookup asks it directly, not /etc/hosts.
    assert!(o.contains("nameserver 127.0.0.11"), "{o}");
    assert!(o.contains("Server:\t\t127.0.0.11"), "{o}");
    assert!(o.contains(&format!("Address: {ip}")), "{o}");
    // connect/disconnect: a default-bridge container joins the user network as eth1, reaches
    // alpha by name there, and leaves again.
    env.ok(&["run", "-d", "--name", "gamma", "busybox", "sleep", "1000"]);
    env.ok(&["network", "connect", &name, "gamma"]);
    let o = env.ok(&[
        "exec",
        "gamma",
        "sh",
        "-c",
        "ip -4 -o addr show eth1; ping -c 1 -W 5 alpha",
    ]);
    assert!(o.contains(&format!("10.200.{o2}.")), "{o}");
    assert!(o.contains("1 packets received"), "{o}");
    let o = env.sk(&["network", "connect", &name, "gamma"]);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    // rename: the new name resolves for peers (and the old one no longer), as with docker's DNS.
    env.ok(&["rename", "alpha", "alef"]);
    let o = env.ok(&["exec", "gamma", "cat", "/etc/hosts"]);
    assert!(o.contains(&format!("{ip}\talef")), "{o}");
    assert!(!o.contains("alpha"), "{o}");
    let o = env.ok(&["exec", "alef", "cat", "/etc/hosts"]);
    assert!(o.contains("alef"), "{o}");
    env.ok(&["rename", "alef", "alpha"]);
    env.ok(&["network", "disconnect", &name, "gamma"]);
    let o = env.sk(&["exec", "gamma", "ip", "-o", "link", "show", "eth1"]);
    assert_ne!(code(&o), 0, "eth1 still there: {}", stdout(&o));
    let o = env.ok(&["exec", "alpha", "cat", "/etc/hosts"]);
    assert!(!o.contains("gamma"), "{o}");
    env.ok(&["rm", "-f", "gamma"]);
    let o = env.sk(&["network", "rm", &name]);
    assert_ne!(code(&o), 0, "a used network must not be removable");
    assert!(stderr(&o).contains("active endpoints"), "{}", stderr(&o));
    let bridge = format!("br-{}", &id[..12]);
    assert!(link_exists(&bridge));
    let insp: Value = serde_json::from_str(&env.ok(&["network", "inspect", &name])).unwrap();
    assert_eq!(insp[0]["IPAM"]["Config"][0]["Subnet"], subnet.as_str());
    assert_eq!(insp[0]["Containers"].as_object().unwrap().len(), 1);
    env.ok(&["rm", "-f", "alpha"]);
    env.ok(&["network", "rm", &name]);
    assert!(!link_exists(&bridge), "{bridge} left");
    let o = env.sk(&["run", "--rm", "--network", &name, "busybox", "true"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
}

fn skiff_tests_used(octet: u32) -> bool {
    used_octets().contains(&octet)
}

/// A free 10.200.x octet for one more subnet of a test, clear of the host's routes and of
/// `avoid` (the test's other subnets).
fn free_octet(env: &NetEnv, k: u32, avoid: &[u32]) -> u32 {
    let base: u32 = env.prefix.rsplit('.').next().unwrap().parse().unwrap();
    let mut o = (base + 60 + 37 * k) % 250 + 1;
    while skiff_tests_used(o) || avoid.contains(&o) || o == base {
        o = o % 250 + 1;
    }
    o
}

/// `n` consecutive free TCP and UDP ports on 127.0.0.1.
fn free_ports(n: u16) -> u16 {
    loop {
        let p = skiff_tests::free_port();
        if p > 60000 {
            continue;
        }
        let ok = (p..p + n).all(|q| {
            std::net::TcpListener::bind(("127.0.0.1", q)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", q)).is_ok()
        });
        if ok {
            return p;
        }
    }
}

/// `-p` ranges as docker parses them (a range onto a range, UDP with a host address, a host
/// range for one container port taking the first free one), and docker's built-in networks:
/// `bridge`, `host` and `none` in `network ls` with stable ids, refused by `network create` and
/// `network rm`, and named in the inspect of a `--network host` container.
#[test]
fn port_ranges_and_builtin_networks() {
    let env = NetEnv::new("ranges");
    let p = free_ports(2);
    let spec = format!("127.0.0.1:{p}-{}:80-81", p + 1);
    env.ok(&[
        "run", "-d", "--name", "r1", "-p", &spec, "busybox", "sleep", "1000",
    ]);
    let i = env.inspect("r1");
    let ports = &i["NetworkSettings"]["Ports"];
    assert_eq!(
        ports["80/tcp"][0]["HostPort"],
        p.to_string().as_str(),
        "{ports}"
    );
    assert_eq!(ports["81/tcp"][0]["HostPort"], (p + 1).to_string().as_str());
    let q = free_ports(2);
    let spec = format!("127.0.0.1:{q}-{}:80-81/udp", q + 1);
    env.ok(&[
        "run", "-d", "--name", "r2", "-p", &spec, "busybox", "sleep", "1000",
    ]);
    let o = env.ok(&["port", "r2"]);
    assert!(o.contains(&format!("81/udp -> 127.0.0.1:{}", q + 1)), "{o}");
    let nft = env.nft();
    assert!(
        nft.contains(&format!("127.0.0.1 . udp . {}", q + 1)),
        "{nft}"
    );
    // A host range for one container port: the first free one (r is held by the test).
    let r = free_ports(4);
    let hold = std::net::TcpListener::bind(("127.0.0.1", r)).unwrap();
    let spec = format!("127.0.0.1:{r}-{}:80", r + 3);
    env.ok(&[
        "run", "-d", "--name", "r3", "-p", &spec, "busybox", "sleep", "1000",
    ]);
    let i = env.inspect("r3");
    assert_eq!(
        i["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        (r + 1).to_string().as_str()
    );
    assert_eq!(
        i["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
        format!("{r}-{}", r + 3).as_str()
    );
    // The next container on the same range takes the next free port.
    env.ok(&[
        "run", "-d", "--name", "r4", "-p", &spec, "busybox", "sleep", "1000",
    ]);
    assert_eq!(
        env.inspect("r4")["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        (r + 2).to_string().as_str()
    );
    drop(hold);
    let o = env.sk(&["run", "-d", "-p", "8010-8000:80", "busybox", "true"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));

    // Built-in networks.
    let ls = env.ok(&[
        "network",
        "ls",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Name}} {{.Driver}}",
    ]);
    let rows: Vec<Vec<&str>> = ls.lines().map(|l| l.split(' ').collect()).collect();
    let names: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(names, ["bridge", "host", "none"], "{ls}");
    assert_eq!(rows[1][2], "host");
    assert_eq!(rows[2][2], "null");
    assert_eq!(rows[1][0].len(), 64);
    let ls2 = env.ok(&[
        "network",
        "ls",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Name}} {{.Driver}}",
    ]);
    assert_eq!(ls, ls2, "built-in ids must be stable");
    for n in ["host", "none", "bridge"] {
        let o = env.sk(&["network", "create", n]);
        assert_ne!(code(&o), 0);
        assert!(
            stderr(&o).contains(&format!(
                "operation is not permitted on predefined {n} network"
            )),
            "{}",
            stderr(&o)
        );
    }
    let o = env.sk(&["network", "rm", "none"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("none is a pre-defined network and cannot be removed"));
    env.ok(&[
        "run",
        "-d",
        "--name",
        "hh",
        "--network",
        "host",
        "busybox",
        "sleep",
        "1000",
    ]);
    let i = env.inspect("hh");
    assert_eq!(
        i["NetworkSettings"]["Networks"]["host"]["NetworkID"],
        rows[1][0]
    );
    let insp: Value = serde_json::from_str(&env.ok(&["network", "inspect", "host"])).unwrap();
    assert_eq!(insp[0]["Driver"], "host");
    assert_eq!(insp[0]["Id"], rows[1][0]);
    assert_eq!(
        insp[0]["Containers"][i["Id"].as_str().unwrap()]["Name"],
        "hh"
    );
    env.ok(&[
        "run",
        "-d",
        "--name",
        "nn",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(
        env.inspect("nn")["NetworkSettings"]["Networks"]["none"]["NetworkID"],
        rows[2][0]
    );
}

/// docker 28's names on a user network: a container answers to its name, its `--network-alias`es
/// and its short id (in /etc/hosts, so the embedded DNS answers them too), shown as `Aliases` and
/// `DNSNames`; several `--network` flags put it on all of them; `--add-host …:host-gateway` and
/// `--domainname`.
#[test]
fn aliases_short_ids_and_several_networks() {
    let env = NetEnv::new("alias");
    let oa = free_octet(&env, 0, &[]);
    let ob = free_octet(&env, 1, &[oa]);
    let (na, nb) = (format!("a{}", env.table), format!("b{}", env.table));
    env.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.200.{oa}.0/24"),
        &na,
    ]);
    env.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.200.{ob}.0/24"),
        &nb,
    ]);
    let id = env
        .ok(&[
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            &na,
            "--network-alias",
            "db",
            "--network-alias",
            "cache",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let short = &id[..12];
    let i = env.inspect("srv");
    let ep = &i["NetworkSettings"]["Networks"][&na];
    let ip = ep["IPAddress"].as_str().unwrap().to_string();
    assert_eq!(ep["Aliases"], serde_json::json!(["db", "cache"]), "{ep}");
    assert_eq!(
        ep["DNSNames"],
        serde_json::json!(["srv", "db", "cache", short]),
        "{ep}"
    );
    let script = format!("nslookup db; nslookup {short}; ping -c 1 -W 5 cache");
    let o = env.ok(&[
        "run",
        "--rm",
        "--network",
        &na,
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(o.matches(&format!("Address: {ip}")).count(), 2, "{o}");
    assert!(o.contains(&format!("PING cache ({ip})")), "{o}");
    // An alias needs a user network, as in docker.
    let o = env.sk(&["run", "--rm", "--network-alias", "x", "busybox", "true"]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("network-scoped alias"),
        "{}",
        stderr(&o)
    );
    // Two --network flags: both networks, the first one routes.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "multi",
        "--network",
        &na,
        "--network",
        &nb,
        "busybox",
        "sleep",
        "1000",
    ]);
    let i = env.inspect("multi");
    let nets = i["NetworkSettings"]["Networks"].as_object().unwrap();
    assert!(nets.contains_key(&na) && nets.contains_key(&nb), "{nets:?}");
    let o = env.ok(&[
        "exec",
        "multi",
        "sh",
        "-c",
        "ip -4 -o addr; ip route; ping -c 1 -W 5 db",
    ]);
    assert!(
        o.contains(&format!("10.200.{oa}.")) && o.contains(&format!("10.200.{ob}.")),
        "{o}"
    );
    assert!(o.contains(&format!("default via 10.200.{oa}.1")), "{o}");
    assert!(o.contains("1 packets received"), "{o}");
    // Aliases are per network: `network connect --alias` names srv on nb only, and its
    // --network-alias names stay on na.
    env.ok(&["network", "connect", "--alias", "extra", &nb, "srv"]);
    let i = env.inspect("srv");
    let on_b = &i["NetworkSettings"]["Networks"][&nb];
    assert_eq!(on_b["Aliases"], serde_json::json!(["extra"]), "{on_b}");
    assert_eq!(
        i["NetworkSettings"]["Networks"][&na]["Aliases"],
        serde_json::json!(["db", "cache"])
    );
    let ip_b = on_b["IPAddress"].as_str().unwrap().to_string();
    let o = env.ok(&["exec", "multi", "nslookup", "extra"]);
    assert!(o.contains(&format!("Address: {ip_b}")), "{o}");
    let o = env.ok(&["exec", "multi", "cat", "/etc/hosts"]);
    assert!(
        o.lines()
            .any(|l| l.starts_with(&format!("{ip_b}\t")) && !l.contains("db")),
        "{o}"
    );
    let o = env.sk(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--network",
        &na,
        "busybox",
        "true",
    ]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert_eq!(
        env.ok(&["ps", "-aq"]).lines().count(),
        2,
        "a refused create must leave nothing"
    );
    // host-gateway is the network's gateway; --domainname sets the UTS domain name.
    let o = env.ok(&[
        "run",
        "--rm",
        "--network",
        &na,
        "--hostname",
        "box",
        "--domainname",
        "example.test",
        "--add-host",
        "host.docker.internal:host-gateway",
        "busybox",
        "sh",
        "-c",
        "cat /proc/sys/kernel/domainname /etc/hosts; ping -c 1 -W 5 host.docker.internal",
    ]);
    assert!(o.starts_with("example.test\n"), "{o}");
    assert!(
        o.contains(&format!("10.200.{oa}.1\thost.docker.internal")),
        "{o}"
    );
    assert!(o.contains("box.example.test\tbox"), "{o}");
    assert!(o.contains("1 packets received"), "{o}");
    let o = env.ok(&[
        "run",
        "--rm",
        "--add-host",
        "gw:host-gateway",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(o.contains(&format!("{}.1\tgw", env.prefix)), "{o}");
}

/// `network create --ip-range --opt com.docker.network.bridge.name= --attachable`, other
/// drivers refused, and `network disconnect` of the network a container was created on.
#[test]
fn ip_range_bridge_name_and_disconnect_primary() {
    let env = NetEnv::new("iprange");
    let oc = free_octet(&env, 2, &[]);
    let od = free_octet(&env, 3, &[oc]);
    let (nc, nd) = (format!("c{}", env.table), format!("d{}", env.table));
    let br = format!("skb{}", env.table.trim_start_matches("sk"));
    let br = &br[..br.len().min(15)];
    let o = env.sk(&["network", "create", "-d", "macvlan", "x"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("macvlan"), "{}", stderr(&o));
    let o = env.sk(&[
        "network",
        "create",
        "--subnet",
        &format!("10.200.{oc}.0/24"),
        "--ip-range",
        "10.9.0.0/25",
        &nc,
    ]);
    assert_ne!(
        code(&o),
        0,
        "an ip-range outside the subnet must be refused"
    );
    env.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.200.{oc}.0/24"),
        "--ip-range",
        &format!("10.200.{oc}.128/25"),
        "--opt",
        &format!("com.docker.network.bridge.name={br}"),
        "--attachable",
        &nc,
    ]);
    let insp: Value = serde_json::from_str(&env.ok(&["network", "inspect", &nc])).unwrap();
    assert_eq!(insp[0]["Attachable"], true);
    assert_eq!(
        insp[0]["IPAM"]["Config"][0]["IPRange"],
        format!("10.200.{oc}.128/25").as_str()
    );
    assert_eq!(insp[0]["Options"]["com.docker.network.bridge.name"], br);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "lone",
        "--network",
        &nc,
        "busybox",
        "sleep",
        "1000",
    ]);
    assert!(link_exists(br), "bridge {br} missing");
    let ip = env.inspect("lone")["NetworkSettings"]["Networks"][&nc]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ip, format!("10.200.{oc}.128"));
    // Disconnect the network it was created on: no interface, no network in inspect.
    env.ok(&["network", "disconnect", &nc, "lone"]);
    let o = env.ok(&["exec", "lone", "ip", "-o", "link"]);
    assert!(!o.contains("eth0"), "{o}");
    assert_eq!(
        env.inspect("lone")["NetworkSettings"]["Networks"],
        serde_json::json!({})
    );
    // The network is free to go now; the container starts again on no network.
    env.ok(&["network", "rm", &nc]);
    assert!(!link_exists(br), "bridge {br} left");
    env.ok(&["restart", "-t", "0", "lone"]);
    let o = env.ok(&["exec", "lone", "ip", "-o", "link"]);
    assert!(!o.contains("eth0"), "{o}");
    // Its namespace (lo only) goes when it stops, as any container's.
    let lone_id = env.inspect("lone")["Id"].as_str().unwrap().to_string();
    env.ok(&["stop", "-t", "0", "lone"]);
    assert!(
        !env.root().join("run/netns").join(&lone_id).exists(),
        "the namespace of a container without networks was left"
    );
    env.ok(&["start", "lone"]);
    // Connected to another: eth0 there with the default route, kept over a restart.
    env.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.200.{od}.0/24"),
        &nd,
    ]);
    env.ok(&["network", "connect", &nd, "lone"]);
    let o = env.ok(&[
        "exec",
        "lone",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip route",
    ]);
    assert!(o.contains(&format!("10.200.{od}.2/24")), "{o}");
    assert!(o.contains(&format!("default via 10.200.{od}.1")), "{o}");
    env.ok(&["restart", "-t", "0", "lone"]);
    let o = env.ok(&["exec", "lone", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(o.contains(&format!("10.200.{od}.2/24")), "{o}");
}

/// `network create --ipv6`: a ULA subnet (given, or picked), addresses on the bridge and in the
/// containers without DAD, an IPv6 default route, masquerade in the `ip6` table, AAAA answers
/// from the embedded DNS, `GlobalIPv6Address` in inspect; `network rm` takes it all away.
#[test]
fn ipv6_network() {
    let has_v6 = std::fs::read_to_string("/proc/net/if_inet6")
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false);
    if !has_v6 {
        skiff_tests::skip("the host has no IPv6 (/proc/net/if_inet6)");
        return;
    }
    let env = NetEnv::new("ipv6");
    let o6 = free_octet(&env, 4, &[]);
    let n6 = format!("v{}", env.table);
    let ula = format!(
        "fd5c:{:x}:{:x}:1",
        std::process::id() & 0xffff,
        o6 + 0x100 * (SEQ.load(Ordering::SeqCst) & 0xff)
    );
    let v6 = format!("{ula}::/64");
    let nid = env
        .ok(&[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            &format!("10.200.{o6}.0/24"),
            "--subnet",
            &v6,
            &n6,
        ])
        .trim()
        .to_string();
    let insp: Value = serde_json::from_str(&env.ok(&["network", "inspect", &n6])).unwrap();
    assert_eq!(insp[0]["EnableIPv6"], true);
    assert_eq!(insp[0]["IPAM"]["Config"][1]["Subnet"], v6.as_str());
    assert_eq!(
        insp[0]["IPAM"]["Config"][1]["Gateway"],
        format!("{ula}::1").as_str()
    );
    env.ok(&[
        "run",
        "-d",
        "--name",
        "six1",
        "--network",
        &n6,
        "busybox",
        "sleep",
        "1000",
    ]);
    let ep = &env.inspect("six1")["NetworkSettings"]["Networks"][&n6];
    let a6 = format!("{ula}::2");
    assert_eq!(ep["GlobalIPv6Address"], a6.as_str(), "{ep}");
    assert_eq!(ep["GlobalIPv6PrefixLen"], 64);
    assert_eq!(ep["IPv6Gateway"], format!("{ula}::1").as_str());
    let bridge = format!("br-{}", &nid[..12]);
    let o = Command::new("ip")
        .args(["-6", "-o", "addr", "show", "dev", &bridge])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains(&format!("{ula}::1/64")),
        "{}",
        stdout(&o)
    );
    let o = env.ok(&[
        "run", "--rm", "--network", &n6, "busybox", "sh", "-c",
        &format!("ip -6 -o addr show eth0; ip -6 route; ping -c 1 -W 5 {a6}; ping -c 1 -W 5 {ula}::1; nslookup -type=aaaa six1"),
    ]);
    assert!(o.contains(&format!("{ula}::3/64")), "{o}");
    assert!(o.contains(&format!("default via {ula}::1")), "{o}");
    assert_eq!(o.matches("1 packets received").count(), 2, "{o}");
    assert!(o.contains(&format!("Address: {a6}")), "{o}");
    let o = Command::new("nft")
        .args(["list", "table", "ip6", &env.table])
        .output()
        .unwrap();
    assert!(stdout(&o).contains(&v6), "{}", stdout(&o));
    // -p PORT:80 answers on the host's IPv6 addresses too (here the bridge's, a local address
    // the test owns), -p [ADDR]:PORT:80 on that address only, both DNAT'd in the kernel.
    let www = env.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello over IPv6\n").unwrap();
    let vol = format!("{}:/www:ro", www.display());
    let (p1, p2) = (free_ports(1), free_ports(1));
    let (pub1, pub2) = (format!("{p1}:80"), format!("[{ula}::1]:{p2}:80"));
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web6",
        "--network",
        &n6,
        "-p",
        &pub1,
        "-p",
        &pub2,
        "-v",
        &vol,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    // [::]:PORT:80 is every local IPv6 address (and no IPv4 one).
    let p3 = free_ports(1);
    let pub3 = format!("[::]:{p3}:80");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web6b",
        "--network",
        &n6,
        "-p",
        &pub3,
        "-v",
        &vol,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let body = http_get_at(&format!("[{ula}::1]:{p3}"));
    assert!(body.contains("hello over IPv6"), "{body}");
    assert_eq!(
        env.ok(&["port", "web6b"]).trim(),
        format!("80/tcp -> [::]:{p3}")
    );
    env.ok(&["rm", "-f", "web6b"]);
    let ports = env.ok(&["port", "web6"]);
    assert!(ports.contains(&format!("80/tcp -> [::]:{p1}")), "{ports}");
    assert!(
        ports.contains(&format!("80/tcp -> [{ula}::1]:{p2}")),
        "{ports}"
    );
    let body = http_get_at(&format!("[{ula}::1]:{p1}"));
    assert!(body.contains("hello over IPv6"), "{body}");
    let body = http_get_at(&format!("[{ula}::1]:{p2}"));
    assert!(body.contains("hello over IPv6"), "{body}");
    // [::1] is not DNAT'd (the reply could not come back): a client of localhost:P is refused
    // at once there and falls back to 127.0.0.1, instead of waiting for a SYN that never answers.
    let t = std::time::Instant::now();
    let r = std::net::TcpStream::connect_timeout(
        &format!("[::1]:{p1}").parse().unwrap(),
        std::time::Duration::from_secs(3),
    );
    assert_eq!(
        r.as_ref().map_err(std::io::Error::kind).err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{r:?} after {:?}",
        t.elapsed()
    );
    let nft6 = || {
        stdout(
            &Command::new("nft")
                .args(["list", "table", "ip6", &env.table])
                .output()
                .unwrap(),
        )
    };
    assert!(
        nft6().contains(&format!("{ula}::1 . tcp . {p2}")),
        "{}",
        nft6()
    );
    env.ok(&["rm", "-f", "web6"]);
    assert!(!nft6().contains(&format!(". {p2} :")), "{}", nft6());
    assert!(!nft6().contains(&format!(". {p1} :")), "{}", nft6());
    // An IPv6 host address needs an IPv6 network; the IPv6 loopback cannot be DNAT'd.
    let o = env.sk(&["run", "--rm", "-p", &pub2, "busybox", "true"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(stderr(&o).contains("has no IPv6"), "{}", stderr(&o));
    let o = env.sk(&[
        "run",
        "--rm",
        "--network",
        &n6,
        "-p",
        "[::1]:9:80",
        "busybox",
        "true",
    ]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("IPv6 loopback") && e.contains("RFC 4291") && e.contains("publish on 127.0.0.1"),
        "{e}"
    );
    // Without an IPv6 subnet: a ULA /64 is picked.
    let o7 = free_octet(&env, 5, &[o6]);
    let n7 = format!("w{}", env.table);
    env.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &format!("10.200.{o7}.0/24"),
        &n7,
    ]);
    let insp: Value = serde_json::from_str(&env.ok(&["network", "inspect", &n7])).unwrap();
    let s = insp[0]["IPAM"]["Config"][1]["Subnet"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(s.starts_with("fd") && s.ends_with("::/64"), "{s}");
    env.ok(&["network", "rm", &n7]);
    let o = env.sk(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00::/130",
        "bad6",
    ]);
    assert_ne!(code(&o), 0);
    env.ok(&["rm", "-f", "six1"]);
    env.ok(&["network", "rm", &n6]);
    assert!(!link_exists(&bridge), "{bridge} left");
    let o = Command::new("nft")
        .args(["list", "table", "ip6", &env.table])
        .output()
        .unwrap();
    assert!(!stdout(&o).contains(&v6), "{}", stdout(&o));
}

/// With the default bridge disabled (`"bridge": "none"`, as `dockerd -b none`) `network ls` has
/// docker's `host` and `none` rows only, and the `network` commands' refusals exit 1, as docker's
/// CLI does (no bridge, link or nft table is made here).
#[test]
fn no_default_bridge_lists_builtins_and_network_errors_exit_1() {
    let env = EngineEnv::new("nobridge", |_| {});
    let ls = env.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(ls, "host host\nnone null\n");
    for args in [
        &["network", "create", "host"][..],
        &["network", "create", "-d", "null", "x"],
        &["network", "inspect", "nosuchnet"],
        &["network", "rm", "none"],
    ] {
        let o = env.sk(args);
        assert_eq!(code(&o), 1, "{args:?}: {}", stderr(&o));
    }
    let o = env.sk(&["network", "inspect", "bridge"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
}

/// What tests/compat compares with dockerd: `network ls --filter` (type, label, dangling) and
/// its `Labels` column, `ps` PORTS in docker's order (grouped exposed ports first, then host
/// mappings), `port C 99` naming the port as typed, `network inspect -f` on an `IPAM.Config`
/// field docker's JSON omits, and docker's words for a `-p` with `--network container:` and
/// for a disconnect from a network the container is not on.
#[test]
fn ls_filters_ps_ports_and_docker_words() {
    let env = NetEnv::new("lsfilter");
    let oa = free_octet(&env, 1, &[]);
    let ob = free_octet(&env, 2, &[oa]);
    let (sa, sb) = (format!("10.200.{oa}.0/24"), format!("10.200.{ob}.0/24"));
    env.ok(&[
        "network", "create", "--subnet", &sa, "--label", "tier=web", "fa",
    ]);
    env.ok(&["network", "create", "--subnet", &sb, "fb"]);
    let ls = |f: &[&str]| {
        let mut a = vec!["network", "ls", "--format", "{{.Name}} {{.Labels}}"];
        for x in f {
            a.extend(["--filter", x]);
        }
        env.ok(&a)
    };
    assert_eq!(ls(&["type=custom"]), "fa tier=web\nfb \n");
    assert_eq!(ls(&["label=tier=web"]), "fa tier=web\n");
    assert_eq!(ls(&["type=builtin", "name=o"]), "host \nnone \n");
    assert_eq!(ls(&["dangling=true"]), "fa tier=web\nfb \n");
    let o = env.sk(&["network", "ls", "--filter", "bogus=1"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("Invalid filter 'bogus'"),
        "{}",
        stderr(&o)
    );
    let t = env.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}|{{.IPRange}}{{end}}",
        "fa",
    ]);
    assert_eq!(t, format!("{sa}|\n"));

    let p = free_ports(2);
    let (m80, m81) = (
        format!("127.0.0.1:{p}:80"),
        format!("127.0.0.1:{}:81/udp", p + 1),
    );
    env.ok(&[
        "run",
        "-d",
        "--name",
        "p1",
        "--network",
        "fa",
        "-p",
        &m81,
        "-p",
        &m80,
        "--expose",
        "90",
        "--expose",
        "91",
        "busybox",
        "sleep",
        "1000",
    ]);
    let ports = env.ok(&["ps", "--filter", "name=p1", "--format", "{{.Ports}}"]);
    assert_eq!(
        ports.trim(),
        format!(
            "90-91/tcp, 127.0.0.1:{p}->80/tcp, 127.0.0.1:{}->81/udp",
            p + 1
        )
    );
    assert_eq!(ls(&["dangling=true"]), "fb \n");
    assert_eq!(ls(&["dangling=false", "type=custom"]), "fa tier=web\n");

    let o = env.sk(&["port", "p1", "99"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("No public port '99' published for p1"),
        "{}",
        stderr(&o)
    );
    let o = env.sk(&[
        "run",
        "--rm",
        "--network",
        "container:p1",
        "-p",
        "80:80",
        "busybox",
        "true",
    ]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o)
            .contains("conflicting options: port publishing and the container type network mode"),
        "{}",
        stderr(&o)
    );
    let id = env.inspect("p1")["Id"].as_str().unwrap().to_string();
    let o = env.sk(&["network", "disconnect", "fb", "p1"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(&format!("container {id} is not connected to network fb")),
        "{}",
        stderr(&o)
    );
}

/// docker 25+'s long `--network` form: per-network alias, address, MAC and driver options on
/// `run` (two networks), `network connect --driver-opt`, and docker's CLI errors for bad or
/// conflicting values, with nothing left behind.
#[test]
fn network_long_form() {
    let env = NetEnv::new("longform");
    let o1 = free_octet(&env, 7, &[]);
    let o2 = free_octet(&env, 8, &[o1]);
    let (n1, n2) = (format!("la{}", env.table), format!("lb{}", env.table));
    env.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.200.{o1}.0/24"),
        &n1,
    ]);
    env.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.200.{o2}.0/24"),
        &n2,
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "lf",
        "--network",
        // Upper case as typed: docker's CLI lower-cases the long form.
        &format!("name={},alias=Web1,ip=10.200.{o1}.50,mac-address=02:42:AC:11:00:99,\"driver-opt=com.example.k=V\"", n1.to_uppercase()),
        "--network",
        &format!("name={n2},alias=two"),
        "busybox",
        "sleep",
        "1000",
    ]);
    let nets = env.inspect("lf")["NetworkSettings"]["Networks"].clone();
    let a = &nets[&n1];
    assert_eq!(a["IPAddress"], format!("10.200.{o1}.50").as_str(), "{nets}");
    assert_eq!(a["MacAddress"], "02:42:ac:11:00:99", "{nets}");
    assert_eq!(a["Aliases"], serde_json::json!(["web1"]), "{nets}");
    assert_eq!(
        a["DriverOpts"],
        serde_json::json!({"com.example.k": "v"}),
        "{nets}"
    );
    assert_eq!(nets[&n2]["Aliases"], serde_json::json!(["two"]), "{nets}");
    assert!(nets[&n2]["DriverOpts"].is_null(), "{nets}");
    let links = env.ok(&["exec", "lf", "ip", "-o", "link"]);
    assert!(links.contains("02:42:ac:11:00:99"), "{links}");
    // The per-network aliases resolve on their own network only.
    let o = env.ok(&[
        "run",
        "--rm",
        "--network",
        &n2,
        "busybox",
        "sh",
        "-c",
        "nslookup two 127.0.0.11 && ! nslookup web1 127.0.0.11",
    ]);
    assert!(o.contains(&format!("10.200.{o2}.")), "{o}");
    let o = env.ok(&[
        "run",
        "--rm",
        "--network",
        &n1,
        "busybox",
        "nslookup",
        "web1",
        "127.0.0.11",
    ]);
    assert!(o.contains(&format!("10.200.{o1}.50")), "{o}");

    // network connect --driver-opt: recorded for that network, dropped by disconnect.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "lc",
        "--network",
        &n1,
        "busybox",
        "sleep",
        "1000",
    ]);
    env.ok(&[
        "network",
        "connect",
        "--driver-opt",
        "com.example.x=Y",
        "--alias",
        "cee",
        &n2,
        "lc",
    ]);
    let nets = env.inspect("lc")["NetworkSettings"]["Networks"].clone();
    assert_eq!(
        nets[&n2]["DriverOpts"],
        serde_json::json!({"com.example.x": "Y"}),
        "{nets}"
    );
    assert_eq!(nets[&n2]["Aliases"], serde_json::json!(["cee"]), "{nets}");
    env.ok(&["network", "disconnect", &n2, "lc"]);
    env.ok(&["network", "connect", &n2, "lc"]);
    let nets = env.inspect("lc")["NetworkSettings"]["Networks"].clone();
    assert!(nets[&n2]["DriverOpts"].is_null(), "{nets}");

    // docker's CLI errors, exit 125, and no container left.
    let before = env.ok(&["ps", "-aq"]);
    let bad: [(&[&str], &str); 7] = [
        (
            &["--network", &format!("name={n1},foo=bar")],
            "invalid field key foo",
        ),
        (
            &["--network", "alias=x"],
            "network name/id is not specified",
        ),
        (
            &["--network", &format!("name={n1},driver-opt=x")],
            "invalid key value pair format in driver options",
        ),
        (
            &[
                "--network",
                &format!("name={n1},alias=a"),
                "--network-alias",
                "b",
            ],
            "conflicting options: cannot specify both --network-alias and per-network alias",
        ),
        (
            &[
                "--network",
                &format!("name={n1},ip=10.200.{o1}.60"),
                "--ip",
                &format!("10.200.{o1}.61"),
            ],
            "conflicting options: cannot specify both --ip and per-network IPv4 address",
        ),
        (
            &["--network", &format!("name={n1},mac-address=zz")],
            "zz is not a valid mac address",
        ),
        (
            &["--network", &format!("name={n1}"), "--network", &n1],
            "is specified multiple times",
        ),
    ];
    for (flags, msg) in bad {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["busybox", "true"]);
        let o = env.sk(&args);
        assert_eq!(code(&o), 125, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(msg), "{args:?}: {}", stderr(&o));
    }
    let o = env.sk(&[
        "run",
        "--rm",
        "--network",
        "name=bridge,alias=x",
        "busybox",
        "true",
    ]);
    assert!(
        stderr(&o).contains("network-scoped aliases are only supported for user-defined networks"),
        "{}",
        stderr(&o)
    );
    // A further network's settings that fail at connect remove the container again.
    let o = env.sk(&[
        "run",
        "-d",
        "--name",
        "lbad",
        "--network",
        &n1,
        "--network",
        &format!("name={n2},ip=10.200.{o1}.9"),
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert_eq!(env.ok(&["ps", "-aq"]), before);
}

/// The filter and nat tables as `iptables-save` prints them (counters off), one rule or chain a
/// line.
fn iptables_lines(table: &str) -> Vec<String> {
    let o = Command::new("iptables-save").args(["-t", table]).output();
    o.map(|o| {
        stdout(&o)
            .lines()
            .filter(|l| l.starts_with("-A ") || l.starts_with(':'))
            .map(|l| match l.split_once(' ') {
                // ":CHAIN POLICY [p:b]" → ":CHAIN POLICY"
                Some((c, rest)) if l.starts_with(':') => {
                    format!("{c} {}", rest.split(' ').next().unwrap_or(""))
                }
                _ => l.to_string(),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Debian's dockerd beside skiff, with iptables on: its own bridge (made here, with an address
/// from 10.203.0.0/16, handed over with `-b`), data root, exec root, socket and pid file. On
/// drop: its containers removed, the daemon stopped, the bridge deleted and every iptables rule
/// and chain it added (compared with a snapshot taken before it started) deleted.
struct IptDockerd {
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
    bridge: String,
    before: Vec<(&'static str, Vec<String>)>,
    /// The iptables (nf_tables) tables that did not exist before dockerd: deleted on drop.
    new_tables: Vec<&'static str>,
}

impl IptDockerd {
    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("d.sock").display()
            ))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.status.success(), "docker {args:?}: {}", stderr(&o));
        stdout(&o)
    }
}

impl Drop for IptDockerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in stdout(&ids).split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
            // SAFETY: kill with the pid of our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            for _ in 0..150 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        skiff_tests::unmount_under(self.dir.path());
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        // What dockerd added: its rules (deleted last-added first), then its chains.
        for (table, before) in &self.before {
            let now = iptables_lines(table);
            for rule in now
                .iter()
                .rev()
                .filter(|l| l.starts_with("-A ") && !before.contains(l))
            {
                let mut args = vec!["-t", table, "-D"];
                args.extend(shell_words(&rule[3..]));
                let _ = Command::new("iptables").args(&args).output();
            }
            for chain in now
                .iter()
                .filter(|l| l.starts_with(':') && !before.contains(l))
            {
                let name = chain[1..].split(' ').next().unwrap_or("");
                let _ = Command::new("iptables")
                    .args(["-t", table, "-X", name])
                    .output();
            }
        }
        // Tables dockerd's iptables calls created (empty now): gone as they were.
        for t in &self.new_tables {
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", t])
                .output();
        }
    }
}

/// Splits an `iptables-save` rule into arguments (its quoting: `"…"` around values with spaces).
fn shell_words(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            out.push(&r[..end]);
            rest = r[(end + 1).min(r.len())..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            out.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
    }
    out
}

/// docker and skiff on one host: Debian's dockerd (iptables on, its own bridge and 10.203.x
/// range) beside skiff's default bridge; each publishes a port on 127.0.0.1 and both answer,
/// skiff's containers still reach each other across its bridge with docker's FORWARD rules in
/// place, a publish made by skiff after docker's rules works, skiff's nft table keeps its
/// elements and docker's iptables chains keep theirs; afterwards dockerd, its bridge and every
/// iptables rule and chain it added are gone.
#[test]
fn docker_beside_skiff() {
    skiff_tests::require_root();
    if Command::new("dockerd").arg("--version").output().is_err()
        || Command::new("iptables-save")
            .arg("--version")
            .output()
            .is_err()
    {
        skiff_tests::skip("dockerd or iptables missing: no coexistence check");
        return;
    }
    if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap_or_default()
        .trim()
        != "1"
    {
        // dockerd would switch it on and set the host's FORWARD policy to DROP for every test.
        skiff_tests::skip(
            "net.ipv4.ip_forward is 0: dockerd would change the host's FORWARD policy",
        );
        return;
    }
    let env = NetEnv::new("coexist");
    let www = env.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from skiff\n").unwrap();
    let dwww = env.dir.path().join("dwww");
    std::fs::create_dir_all(&dwww).unwrap();
    std::fs::write(dwww.join("index.html"), "hello from docker\n").unwrap();

    // The docker side.
    let dir = tempfile::Builder::new()
        .prefix("skiff-coexist-dockerd-")
        .tempdir()
        .unwrap();
    let bridge = format!("skdk{}", std::process::id() % 100000);
    let octet = std::process::id() % 250 + 1;
    let mut d = IptDockerd {
        dir,
        child: None,
        bridge: bridge.clone(),
        before: vec![
            ("filter", iptables_lines("filter")),
            ("nat", iptables_lines("nat")),
        ],
        new_tables: ["filter", "nat"]
            .into_iter()
            .filter(|t| {
                !Command::new("nft")
                    .args(["list", "table", "ip", t])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .collect(),
    };
    for args in [
        vec!["link", "add", &bridge, "type", "bridge"],
        vec![
            "addr",
            "add",
            &format!("10.203.{octet}.1/24"),
            "dev",
            &bridge,
        ],
        vec!["link", "set", &bridge, "up"],
    ] {
        let o = Command::new("ip").args(&args).output().unwrap();
        assert!(o.status.success(), "ip {args:?}: {}", stderr(&o));
    }
    let p = d.dir.path().to_path_buf();
    d.child = Some(
        Command::new("dockerd")
            .arg(format!("--bridge={bridge}"))
            .args(["--default-address-pool", "base=10.204.0.0/16,size=24"])
            .arg(format!("-H=unix://{}", p.join("d.sock").display()))
            .arg(format!("--data-root={}", p.join("data").display()))
            .arg(format!("--exec-root={}", p.join("exec").display()))
            .arg(format!("--pidfile={}", p.join("d.pid").display()))
            .stdout(std::fs::File::create(p.join("d.log")).unwrap())
            .stderr(std::fs::File::create(p.join("d.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut up = false;
    for _ in 0..150 {
        if d.docker(&["info"]).status.success() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if !up {
        let log = std::fs::read_to_string(p.join("d.err")).unwrap_or_default();
        skiff_tests::skip(&format!(
            "dockerd did not come up here: {}",
            log.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
        ));
        return;
    }
    let rootfs = env.dir.path().join("rootfs");
    let tar = Command::new("tar")
        .args([
            "-C",
            rootfs.to_str().unwrap(),
            "-cf",
            p.join("bb.tar").to_str().unwrap(),
            ".",
        ])
        .output()
        .unwrap();
    assert!(tar.status.success(), "{}", stderr(&tar));
    d.ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        p.join("bb.tar").to_str().unwrap(),
        "bb:latest",
    ]);

    let (ps, pd) = (skiff_tests::free_port(), skiff_tests::free_port());
    let vol = format!("{}:/www:ro", www.display());
    let dvol = format!("{}:/www:ro", dwww.display());
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("127.0.0.1:{ps}:80"),
        "-v",
        &vol,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "dweb",
        "-p",
        &format!("127.0.0.1:{pd}:80"),
        "-v",
        &dvol,
        "bb:latest",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let dip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "dweb"]);
    assert!(dip.trim().starts_with(&format!("10.203.{octet}.")), "{dip}");
    assert!(http_get(ps).contains("hello from skiff"));
    assert!(http_get(pd).contains("hello from docker"));
    // docker's rules are in place, and skiff's table is its own.
    let nat = iptables_lines("nat").join("\n");
    assert!(nat.contains(":DOCKER ") && nat.contains(&bridge), "{nat}");
    assert!(
        env.nft().contains(&format!("127.0.0.1 . tcp . {ps}")),
        "{}",
        env.nft()
    );
    // Across skiff's bridge (bridged frames pass iptables' FORWARD with br_netfilter).
    env.ok(&["run", "-d", "--name", "peer", "busybox", "sleep", "1000"]);
    let wip = env.inspect("web")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let o = env.ok(&[
        "exec",
        "peer",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{wip}/index.html"),
    ]);
    assert!(o.contains("hello from skiff"), "{o}");
    // A skiff publish made after docker's rules, and one removed: docker's still answers.
    let ps2 = skiff_tests::free_port();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web2",
        "-p",
        &format!("{ps2}:80"),
        "-v",
        &vol,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    assert!(http_get(ps2).contains("hello from skiff"));
    env.ok(&["rm", "-f", "web2"]);
    assert!(!env.nft().contains(&format!(". {ps2} :")), "{}", env.nft());
    assert!(http_get(pd).contains("hello from docker"));
    assert!(http_get(ps).contains("hello from skiff"));
    // Docker's containers reach each other on its bridge with skiff's table loaded.
    d.ok(&[
        "run",
        "--rm",
        "bb:latest",
        "wget",
        "-q",
        "-O",
        "/dev/null",
        &format!("http://{}/index.html", dip.trim()),
    ]);

    // Clean-up: dockerd, its bridge, its iptables rules and chains.
    let before = d.before.clone();
    drop(d);
    assert!(!link_exists(&bridge), "{bridge} left");
    for (table, b) in before {
        let now = iptables_lines(table);
        let added: Vec<&String> = now.iter().filter(|l| !b.contains(l)).collect();
        assert!(added.is_empty(), "iptables -t {table}: left {added:?}");
    }
    assert!(http_get(ps).contains("hello from skiff"));
}

/// `kill -9` of every skiff process of an engine root (the containers' monitors, which also
/// serve their embedded DNS) with containers on a user network and the default bridge, with
/// published ports: the next command's sweep (`ps -a`) leaves no namespace, veth, nft element,
/// route or address of a removed container, no responder process; `system boot` after it
/// changes nothing; a container started again publishes and answers again.
#[test]
fn kill9_sweep_leaves_nothing() {
    let env = NetEnv::new("kill9");
    let o1 = free_octet(&env, 9, &[]);
    let net = format!("k{}", env.table);
    env.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.200.{o1}.0/24"),
        &net,
    ]);
    let www = env.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello again\n").unwrap();
    let vol = format!("{}:/www:ro", www.display());
    let (p1, p2, p3) = (
        skiff_tests::free_port(),
        skiff_tests::free_port(),
        skiff_tests::free_port(),
    );
    env.ok(&[
        "run",
        "-d",
        "--name",
        "k1",
        "--network",
        &net,
        "-p",
        &format!("127.0.0.1:{p1}:80"),
        "-v",
        &vol,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "k2",
        "--network",
        &net,
        "-p",
        &format!("{p2}:53/udp"),
        "busybox",
        "sleep",
        "1000",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "k3",
        "-p",
        &format!("127.0.0.1:{p3}:80"),
        "busybox",
        "sleep",
        "1000",
    ]);
    assert!(http_get(p1).contains("hello again"));
    // The embedded DNS answers before the kill.
    let o = env.ok(&["exec", "k1", "nslookup", "k2", "127.0.0.11"]);
    assert!(o.contains(&format!("10.200.{o1}.")), "{o}");
    let ids: Vec<String> = ["k1", "k2", "k3"]
        .iter()
        .map(|n| env.ok(&["inspect", "-f", "{{.Id}}", n]).trim().to_string())
        .collect();
    let veths: Vec<String> = ["k1", "k2", "k3"]
        .iter()
        .map(|n| {
            let eps = env.inspect(n)["NetworkSettings"]["Networks"].clone();
            let ep = eps.as_object().unwrap().values().next().unwrap()["EndpointID"]
                .as_str()
                .unwrap()
                .to_string();
            format!("veth{}", &ep[..11])
        })
        .collect();
    for v in &veths {
        assert!(link_exists(v), "{v} missing");
    }
    let nft_has = |p: u16| env.nft().contains(&format!(". {p} :"));
    assert!(nft_has(p1) && nft_has(p2) && nft_has(p3), "{}", env.nft());

    // Every skiff process of this root: the monitors (their pids are in the state rows).
    let conn = rusqlite::Connection::open(env.root().join("skiff.db")).unwrap();
    let mut pids = Vec::new();
    {
        let mut st = conn.prepare("SELECT state FROM containers").unwrap();
        let rows = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
        for s in rows.flatten() {
            let v: Value = serde_json::from_str(&s).unwrap();
            if let Some(p) = v["MonitorPid"].as_i64().filter(|p| *p > 0) {
                pids.push(p as i32);
            }
        }
    }
    assert_eq!(pids.len(), 3, "monitor pids: {pids:?}");
    for p in &pids {
        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        assert!(
            cmd.starts_with(b"skiff-monitor "),
            "{p}: {}",
            String::from_utf8_lossy(&cmd)
        );
        // SAFETY: kill with integer arguments; the pid is one of this test's monitors.
        unsafe { libc::kill(*p, libc::SIGKILL) };
    }
    wait_until("the monitors to die", || {
        pids.iter().all(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
        })
    });

    // The next command sweeps.
    let ps = env.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert!(!ps.contains("k2"), "{ps}");
    assert!(ps.contains("k1 exited") && ps.contains("k3 exited"), "{ps}");
    assert!(
        !nft_has(p1) && !nft_has(p2) && !nft_has(p3),
        "{}",
        env.nft()
    );
    let ns: Vec<_> = std::fs::read_dir(env.root().join("run/netns"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name())
                .filter(|n| n != ".lock")
                .collect()
        })
        .unwrap_or_default();
    assert!(ns.is_empty(), "namespaces left: {ns:?}");
    wait_until("the veths to go", || veths.iter().all(|v| !link_exists(v)));
    // Addresses: none for the removed container; the stopped ones keep theirs, port-less, as
    // after an ordinary stop.
    assert_eq!(env.endpoint_rows(&ids[1]), 0);
    let ports: Vec<String> = {
        let mut st = conn
            .prepare("SELECT ports FROM endpoints WHERE container IN (?1, ?2)")
            .unwrap();
        st.query_map([&ids[0], &ids[2]], |r| r.get(0))
            .unwrap()
            .flatten()
            .collect()
    };
    assert_eq!(ports, ["[]", "[]"]);
    // Routes: the subnets only through their bridges.
    let routes = stdout(&Command::new("ip").args(["-4", "route"]).output().unwrap());
    for r in routes.lines().filter(|l| {
        l.contains(&format!("10.200.{o1}.")) || l.starts_with(&format!("{}.", env.prefix))
    }) {
        assert!(!r.contains("veth"), "{routes}");
    }
    // No responder or monitor left: no process of the killed ones, and nothing answers DNS
    // on any address of the user network's bridge.
    for p in &pids {
        let st = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        assert!(st.is_empty() || st.contains(") Z "), "{p} alive: {st}");
    }
    let boot = env.ok(&["system", "boot"]);
    assert!(!boot.contains("k1") && !boot.contains("k3"), "{boot}");
    assert!(!nft_has(p1) && !nft_has(p3), "{}", env.nft());
    // Started again: its port and DNS come back.
    env.ok(&["start", "k1"]);
    assert!(http_get(p1).contains("hello again"));
    let o = env.ok(&["exec", "k1", "nslookup", "k1", "127.0.0.11"]);
    assert!(o.contains(&format!("10.200.{o1}.")), "{o}");
}
