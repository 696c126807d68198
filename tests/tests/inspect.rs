//! `inspect` parity with docker (issue 14.7): the keys and JSON types the docker 28 CLI prints
//! against dockerd 20.10 (API 1.41), and docker's values for the same settings. The full side by
//! side comparison with a real dockerd is tests/compat/inspect.sh; this checks the shape without one.

use serde_json::{json, Value};
use skiff_tests::{stdout, EngineEnv};

fn inspect(env: &EngineEnv, args: &[&str]) -> Value {
    let mut a = vec!["inspect"];
    a.extend(args);
    let v: Value = serde_json::from_str(&env.ok(&a)).unwrap();
    v[0].clone()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// (path, docker's JSON type) for keys skiff lacked or typed differently before.
#[rustfmt::skip]
const CONTAINER_KEYS: &[(&str, &str)] = &[
    ("/Platform", "string"), ("/MountLabel", "string"), ("/ProcessLabel", "string"),
    ("/AppArmorProfile", "string"), ("/ExecIDs", "null"), ("/State/Error", "string"),
    ("/State/OOMKilled", "bool"), ("/Config/OnBuild", "null"), ("/Config/Env", "null"),
    ("/HostConfig/PortBindings", "object"), ("/HostConfig/Dns", "array"),
    ("/HostConfig/DnsOptions", "array"), ("/HostConfig/DnsSearch", "array"),
    ("/HostConfig/ExtraHosts", "null"), ("/HostConfig/Links", "null"),
    ("/HostConfig/PublishAllPorts", "bool"), ("/HostConfig/ConsoleSize", "array"),
    ("/HostConfig/Isolation", "string"), ("/HostConfig/ContainerIDFile", "string"),
    ("/HostConfig/LogConfig/Type", "string"), ("/HostConfig/AutoRemove", "bool"),
    ("/HostConfig/VolumeDriver", "string"), ("/HostConfig/CapAdd", "null"),
    ("/HostConfig/CapDrop", "null"), ("/HostConfig/CgroupParent", "string"),
    ("/HostConfig/BlkioWeight", "number"), ("/HostConfig/BlkioWeightDevice", "array"),
    ("/HostConfig/Ulimits", "array"), ("/HostConfig/Runtime", "string"),
    ("/HostConfig/Cgroup", "string"), ("/HostConfig/DeviceRequests", "null"),
    ("/HostConfig/KernelMemoryTCP", "number"), ("/HostConfig/CpuRealtimePeriod", "number"),
    ("/HostConfig/IOMaximumIOps", "number"), ("/HostConfig/MaskedPaths", "array"),
    ("/HostConfig/ReadonlyPaths", "array"), ("/NetworkSettings/Bridge", "string"),
    ("/NetworkSettings/SandboxID", "string"), ("/NetworkSettings/SandboxKey", "string"),
    ("/NetworkSettings/Ports", "object"), ("/NetworkSettings/HairpinMode", "bool"),
    ("/NetworkSettings/LinkLocalIPv6Address", "string"),
    ("/NetworkSettings/LinkLocalIPv6PrefixLen", "number"),
    ("/NetworkSettings/SecondaryIPAddresses", "null"),
    ("/NetworkSettings/SecondaryIPv6Addresses", "null"),
    ("/NetworkSettings/EndpointID", "string"), ("/NetworkSettings/Gateway", "string"),
    ("/NetworkSettings/GlobalIPv6Address", "string"),
    ("/NetworkSettings/GlobalIPv6PrefixLen", "number"), ("/NetworkSettings/IPAddress", "string"),
    ("/NetworkSettings/IPPrefixLen", "number"), ("/NetworkSettings/IPv6Gateway", "string"),
    ("/NetworkSettings/MacAddress", "string"), ("/NetworkSettings/Networks", "object"),
];

#[test]
fn container_inspect_has_dockers_keys_types_and_values() {
    let env = EngineEnv::new("inspect", |_| {});
    env.ok(&["run", "-d", "--name", "def", "busybox", "sleep", "100"]);
    let v = inspect(&env, &["def"]);
    for (path, want) in CONTAINER_KEYS {
        let got = v
            .pointer(path)
            .unwrap_or_else(|| panic!("{path} missing: {v:#}"));
        assert_eq!(kind(got), *want, "{path}: {got}");
    }
    // docker omits these when unset.
    for k in ["Init", "Mounts", "Sysctls", "Tmpfs", "Annotations"] {
        assert!(v["HostConfig"].get(k).is_none(), "HostConfig.{k}: {v:#}");
    }
    // The default network: docker's `default` mode on its bridge network (empty while skiff has
    // no bridge, as dockerd with --bridge=none shows it).
    assert_eq!(v["HostConfig"]["NetworkMode"], "default");
    assert_eq!(v["Config"]["NetworkDisabled"], true);
    let bridge = &v["NetworkSettings"]["Networks"]["bridge"];
    for (k, t) in [
        ("IPAMConfig", "null"),
        ("Aliases", "null"),
        ("DriverOpts", "null"),
        ("IPPrefixLen", "number"),
        ("GlobalIPv6Address", "string"),
    ] {
        assert_eq!(kind(&bridge[k]), t, "Networks.bridge.{k}: {bridge}");
    }
    assert_eq!(v["HostConfig"]["ConsoleSize"], json!([0, 0]));
    assert_eq!(
        v["HostConfig"]["LogConfig"],
        json!({"Type": "json-file", "Config": {}})
    );
    assert_eq!(v["Platform"], "linux");

    // Settings docker records its own way: -m alone means swap = memory (MemorySwap twice -m).
    env.ok(&[
        "run",
        "-d",
        "--name",
        "res",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "-e",
        "A=b",
        "--restart",
        "on-failure:3",
        "--network",
        "host",
        "busybox",
        "sleep",
        "100",
    ]);
    let r = inspect(&env, &["res"]);
    assert_eq!(r["HostConfig"]["Memory"], 64 << 20);
    assert_eq!(r["HostConfig"]["MemorySwap"], 128 << 20);
    assert_eq!(r["HostConfig"]["NanoCpus"], 500_000_000);
    assert_eq!(r["Config"]["Env"], json!(["A=b"]));
    assert_eq!(r["HostConfig"]["NetworkMode"], "host");
    assert!(
        r["NetworkSettings"]["Networks"]["host"].is_object(),
        "{r:#}"
    );
    assert!(r["Config"].get("NetworkDisabled").is_none());

    // --privileged unmasks: docker shows null paths.
    env.ok(&[
        "create",
        "--name",
        "priv",
        "--privileged",
        "--network",
        "none",
        "busybox",
    ]);
    let p = inspect(&env, &["priv"]);
    assert_eq!(p["HostConfig"]["MaskedPaths"], Value::Null);
    assert_eq!(p["HostConfig"]["ReadonlyPaths"], Value::Null);
    assert!(p["NetworkSettings"]["Networks"]["none"].is_object());
    // docker's create attaches stdout and stderr (stdin and StdinOnce with -i).
    assert_eq!(p["Config"]["AttachStdout"], true);
    assert_eq!(p["Config"]["AttachStderr"], true);
    assert_eq!(p["Config"]["AttachStdin"], false);
    env.ok(&[
        "create",
        "--name",
        "ci",
        "-i",
        "--network",
        "none",
        "busybox",
    ]);
    let ci = inspect(&env, &["ci"]);
    assert_eq!(ci["Config"]["AttachStdin"], true);
    assert_eq!(ci["Config"]["StdinOnce"], true);

    // -s adds the sizes as numbers.
    let s = inspect(&env, &["-s", "def"]);
    assert!(
        s["SizeRw"].is_u64() && s["SizeRootFs"].as_u64().unwrap() > 1_000_000,
        "{s:#}"
    );
    env.ok(&["rm", "-f", "def", "res", "priv", "ci"]);
}

#[test]
fn image_inspect_and_history_of_an_import_match_docker() {
    let env = EngineEnv::new("inspect-img", |_| {});
    let text = env.ok(&["image", "inspect", "busybox"]);
    assert!(
        text.starts_with("[\n    {\n        \""),
        "docker's four-space indent: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    let v = &v[0];
    assert_eq!(v["Container"], "");
    assert!(v["ContainerConfig"].is_object() && v["ContainerConfig"]["OnBuild"].is_null());
    assert_eq!(v["VirtualSize"], v["Size"]);
    assert_eq!(v["Comment"], "Imported from -");
    assert_eq!(v["GraphDriver"]["Name"], "overlay2");
    let data = &v["GraphDriver"]["Data"];
    for k in ["MergedDir", "UpperDir", "WorkDir"] {
        assert!(data[k].is_string(), "{k}: {data}");
    }
    assert!(
        data.get("LowerDir").is_none(),
        "one layer has no LowerDir: {data}"
    );
    assert!(std::path::Path::new(data["UpperDir"].as_str().unwrap())
        .join("bin/busybox")
        .is_file());
    // docker history of an imported file: no CREATED BY, "Imported from -" as the comment.
    let h = env.ok(&[
        "history",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "busybox",
    ]);
    assert_eq!(h, "|Imported from -\n");
    let o = env.sk(&["history", "busybox"]);
    assert!(stdout(&o)
        .lines()
        .nth(1)
        .unwrap()
        .contains("Imported from -"));
}
