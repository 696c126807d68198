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
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.table])
            .output();
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
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match r {
            Ok(s) if s.contains("200") => return s,
            r if Instant::now() > deadline => panic!("127.0.0.1:{port}: {r:?}"),
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
