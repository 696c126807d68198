//! Test and benchmark helper: writes `<bundle>/config.json` from Docker-style options through
//! `skiff_runtime::docker::docker_spec`, the function the engine calls, so integration tests and
//! bench/seccomp.sh run real containers with exactly the spec `skiff run` would produce.
//!
//! `skiff-docker-spec --bundle DIR [--privileged] [--read-only] [--cap-add C] [--cap-drop C]
//!  [--security-opt O] [--pid-host] [--ipc-host] [--network-host] [--sysctl K=V] [--ulimit N=S:H]
//!  [--memory BYTES] [--pids-limit N] [--cgroups-path P] [--hostname H] [--user UID:GID] -- ARGS...`

use skiff_runtime::docker::{docker_spec, DockerSpecOpts, NetworkNs};
use std::path::PathBuf;

fn main() {
    if let Err(e) = run() {
        eprintln!("skiff-docker-spec: {e}");
        std::process::exit(125);
    }
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a number"))
}

fn run() -> Result<(), String> {
    let mut o = DockerSpecOpts {
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        cwd: "/".into(),
        hostname: "skiff-test".into(),
        ..Default::default()
    };
    let mut bundle: Option<PathBuf> = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a}: missing value"));
        match a.as_str() {
            "--" => {
                o.args = it.by_ref().collect();
                break;
            }
            "--bundle" => bundle = Some(val()?.into()),
            "--privileged" => o.privileged = true,
            "--read-only" => o.read_only = true,
            "--pid-host" => o.pid_host = true,
            "--ipc-host" => o.ipc_host = true,
            "--network-host" => o.network = NetworkNs::Host,
            "--cap-add" => o.cap_add.push(val()?),
            "--cap-drop" => o.cap_drop.push(val()?),
            "--security-opt" => o.security_opt.push(val()?),
            "--cgroups-path" => o.cgroups_path = Some(val()?),
            "--hostname" => o.hostname = val()?,
            "--memory" => o.memory = Some(num(&a, &val()?)?),
            "--pids-limit" => o.pids_limit = Some(num(&a, &val()?)?),
            "--sysctl" => {
                let v = val()?;
                let (k, x) = v
                    .split_once('=')
                    .ok_or(format!("--sysctl {v:?}: want K=V"))?;
                o.sysctls.push((k.into(), x.into()));
            }
            "--ulimit" => {
                let v = val()?;
                let (n, l) = v
                    .split_once('=')
                    .ok_or(format!("--ulimit {v:?}: want N=S[:H]"))?;
                let (s, h) = l.split_once(':').unwrap_or((l, l));
                o.ulimits.push((n.into(), num(&a, s)?, num(&a, h)?));
            }
            "--user" => {
                let v = val()?;
                let (u, g) = v.split_once(':').unwrap_or((&v, &v));
                o.uid = num(&a, u)?;
                o.gid = num(&a, g)?;
            }
            _ => return Err(format!("unknown option {a:?}")),
        }
    }
    let bundle = bundle.ok_or("--bundle is required")?;
    let spec = docker_spec(&o).map_err(|e| e.to_string())?;
    let text = serde_json::to_vec_pretty(&spec).map_err(|e| e.to_string())?;
    let path = bundle.join("config.json");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}
