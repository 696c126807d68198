//! CDI devices (`--device vendor.com/class=name`) and `--gpus`, resolved through CDI spec files the
//! test writes into the engine's `cdi-spec-dirs` (daemon.json): every edit checked inside the
//! container.

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use skiff_tests::{stderr, EngineEnv};

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn write_specs(env: &EngineEnv, specs: &Path, host_file: &Path, hook_out: &Path) {
    std::fs::create_dir_all(specs).unwrap();
    std::fs::write(
        env.root().join("daemon.json"),
        format!(
            "{{\"bridge\": \"none\", \"cdi-spec-dirs\": [\"{}\"]}}\n",
            specs.display()
        ),
    )
    .unwrap();
    std::fs::write(host_file, "from the host\n").unwrap();
    let dev = serde_json::json!({
        "cdiVersion": "0.6.0",
        "kind": "skiff.test/dev",
        "containerEdits": {"env": ["CDI_COMMON=yes"]},
        "devices": [{
            "name": "ctl",
            "containerEdits": {
                "env": ["CDI_DEV=ctl"],
                "deviceNodes": [{"path": "/dev/cdi-ctl", "hostPath": "/dev/loop-control", "permissions": "rw"}],
                "mounts": [{"hostPath": host_file, "containerPath": "/cdi/file", "options": ["ro", "bind"]}],
                "hooks": [{"hookName": "createRuntime", "path": "/bin/sh",
                           "args": ["sh", "-c", format!("echo hooked > {}", hook_out.display())]}]
            }
        }]
    });
    std::fs::write(specs.join("dev.json"), dev.to_string()).unwrap();
    let gpu = serde_json::json!({
        "cdiVersion": "0.6.0",
        "kind": "nvidia.com/gpu",
        "devices": [
            {"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/fakegpu0", "hostPath": "/dev/null"}]}},
            {"name": "1", "containerEdits": {"deviceNodes": [{"path": "/dev/fakegpu1", "hostPath": "/dev/zero"}]}}
        ]
    });
    std::fs::write(specs.join("gpu.json"), gpu.to_string()).unwrap();
}

#[test]
fn cdi_devices_and_gpus() {
    let env = EngineEnv::new("cdi", |_| {});
    let work = tempfile::tempdir().unwrap();
    let specs = work.path().join("cdi");
    let host_file = work.path().join("shared.txt");
    let hook_out = work.path().join("hook.out");
    write_specs(&env, &specs, &host_file, &hook_out);

    // Without the CDI device the node is absent; with it: env (device and spec-wide), the node,
    // its cgroup allow rule (loop-control is outside docker's default device list, so opening it
    // proves the rule), the mount and the hook.
    let has_loop_control = Path::new("/dev/loop-control").exists();
    let script = "echo $CDI_COMMON $CDI_DEV; cat /cdi/file; ls /dev/cdi-ctl && (exec 3</dev/cdi-ctl && echo opened)";
    let o = env.sk(&["run", "--rm", "busybox", "sh", "-c", script]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("opened"));
    if has_loop_control {
        let out = env.ok(&[
            "run",
            "--rm",
            "--device",
            "skiff.test/dev=ctl",
            "busybox",
            "sh",
            "-c",
            script,
        ]);
        assert!(out.starts_with("yes ctl\nfrom the host\n"), "{out}");
        assert!(out.contains("opened"), "{out}");
        assert_eq!(std::fs::read_to_string(&hook_out).unwrap(), "hooked\n");
    } else {
        skiff_tests::skip("cdi: no /dev/loop-control on this host to use as a CDI device node");
    }

    // --gpus through CDI devices of kind nvidia.com/gpu.
    let gpus = |arg: &str| {
        env.ok(&[
            "run",
            "--rm",
            "--gpus",
            arg,
            "busybox",
            "sh",
            "-c",
            "ls /dev | grep fakegpu || true",
        ])
    };
    assert_eq!(gpus("all"), "fakegpu0\nfakegpu1\n");
    assert_eq!(gpus("1"), "fakegpu0\n");
    assert_eq!(gpus("\"device=1\""), "fakegpu1\n");

    // inspect records docker's DeviceRequests.
    env.ok(&[
        "create",
        "--name",
        "dr",
        "--gpus",
        "all",
        "--device",
        "skiff.test/dev=ctl",
        "busybox",
        "true",
    ]);
    let v: Value = serde_json::from_str(&env.ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig.DeviceRequests}}",
        "dr",
    ]))
    .unwrap();
    assert_eq!(v[0]["Driver"], "cdi");
    assert_eq!(v[0]["DeviceIDs"][0], "skiff.test/dev=ctl");
    assert_eq!(v[1]["Count"], -1);
    assert_eq!(v[1]["Capabilities"][0][0], "gpu");
    env.ok(&["rm", "dr"]);

    // Errors: unknown device, too many GPUs, no GPU kind at all, a malformed spec file — each a
    // one-line 125 naming the problem, and no container left behind.
    let o = env.sk(&[
        "run",
        "--rm",
        "--device",
        "skiff.test/dev=nope",
        "busybox",
        "true",
    ]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("unresolvable CDI devices skiff.test/dev=nope"),
        "{}",
        stderr(&o)
    );
    let o = env.sk(&["run", "--rm", "--gpus", "3", "busybox", "true"]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("could not select device driver"),
        "{}",
        stderr(&o)
    );
    std::fs::write(specs.join("zz-broken.json"), "{not json").unwrap();
    let o = env.sk(&[
        "run",
        "--rm",
        "--device",
        "skiff.test/dev=ctl",
        "busybox",
        "true",
    ]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("zz-broken.json"), "{}", stderr(&o));
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    let o = env.sk(&["run", "--rm", "--gpus", "bogus=1", "busybox", "true"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("--gpus"), "{}", stderr(&o));
}
