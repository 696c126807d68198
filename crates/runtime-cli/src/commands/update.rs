//! `update`: change the resource limits of a live container, with runc's flags (memory values take
//! docker-style units: `64m`, `1g`, `-1`), or `-r resources.json` / `-r -` holding a runtime-spec
//! `linux.resources` object (then the other flags are ignored, as in runc). Device rules are not
//! changed by `update`, as in runc.

use anyhow::Context;
use serde_json::{json, Map, Value};
use skiff_runtime::state::{State, Status};

/// Flags of `update`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path to a JSON file with linux.resources ("-" for stdin); all other options are then ignored.
    #[arg(short, long)]
    pub resources: Option<String>,
    /// Block IO weight (10-1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds (0 = system default).
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1 = unlimited).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS burst in microseconds.
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight vs. other containers).
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds per period.
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use (e.g. 0-1,3).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// SCHED_IDLE for the group: 1, or 0 for the default.
    #[arg(long = "cpu-idle")]
    pub cpu_idle: Option<i64>,
    /// Kernel memory limit (obsolete; ignored with a warning, as in runc).
    #[arg(long = "kernel-memory", hide = true)]
    pub kernel_memory: Option<String>,
    /// Kernel TCP memory limit (obsolete; ignored with a warning, as in runc).
    #[arg(long = "kernel-memory-tcp", hide = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Memory limit (bytes, or with a unit: 64m, 1g; -1 = unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit (bytes or with a unit).
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (bytes or with a unit; -1 = unlimited swap).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids (-1 = unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT/CAT L3 cache schema.
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT/MBA memory bandwidth schema.
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    /// Container id.
    pub id: String,
}

/// Parse a docker-style size (`1024`, `64m`, `1.5g`, `512KiB`; binary multiples) or `-1`.
pub fn ram_in_bytes(s: &str) -> anyhow::Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {s:?}"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => anyhow::bail!("invalid size {s:?}: unknown unit"),
    };
    let v = n * mult;
    if !v.is_finite() || v < 0.0 || v > i64::MAX as f64 {
        anyhow::bail!("invalid size {s:?}");
    }
    Ok(v as i64)
}

fn from_flags(a: &Args) -> anyhow::Result<Value> {
    let mut res = Map::new();
    let mut mem = Map::new();
    for (k, v, flag) in [
        ("limit", &a.memory, "memory"),
        ("reservation", &a.memory_reservation, "memory-reservation"),
        ("swap", &a.memory_swap, "memory-swap"),
    ] {
        if let Some(v) = v {
            let n = ram_in_bytes(v).with_context(|| format!("invalid value for --{flag}"))?;
            mem.insert(k.into(), Value::from(n));
        }
    }
    // As in runc: an unlimited memory limit without an explicit swap means unlimited swap too.
    if mem.get("limit") == Some(&Value::from(-1)) && !mem.contains_key("swap") {
        mem.insert("swap".into(), Value::from(-1));
    }
    if !mem.is_empty() {
        res.insert("memory".into(), Value::Object(mem));
    }
    let mut cpu = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            cpu.insert(k.into(), v);
        }
    };
    put("shares", a.cpu_share.map(Value::from));
    put("quota", a.cpu_quota.map(Value::from));
    put("period", a.cpu_period.map(Value::from));
    put("burst", a.cpu_burst.map(Value::from));
    put("idle", a.cpu_idle.map(Value::from));
    put("realtimePeriod", a.cpu_rt_period.map(Value::from));
    put("realtimeRuntime", a.cpu_rt_runtime.map(Value::from));
    put(
        "cpus",
        a.cpuset_cpus
            .clone()
            .filter(|s| !s.is_empty())
            .map(Value::from),
    );
    put(
        "mems",
        a.cpuset_mems
            .clone()
            .filter(|s| !s.is_empty())
            .map(Value::from),
    );
    if !cpu.is_empty() {
        res.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = a.pids_limit {
        res.insert("pids".into(), json!({ "limit": p }));
    }
    if let Some(w) = a.blkio_weight.filter(|w| *w != 0) {
        res.insert("blockIO".into(), json!({ "weight": w }));
    }
    for (flag, v) in [
        ("kernel-memory", &a.kernel_memory),
        ("kernel-memory-tcp", &a.kernel_memory_tcp),
    ] {
        if v.is_some() {
            eprintln!("skiff-runtime: warning: setting --{flag} is ignored and will be removed");
        }
    }
    Ok(Value::Object(res))
}

/// Run `update`.
pub fn run(cli: &super::Cli, a: &Args) -> anyhow::Result<i32> {
    let st = State::load(&cli.root, &a.id)?;
    if st.status(&cli.root) == Status::Stopped {
        anyhow::bail!("container {:?} is not running", a.id);
    }
    if a.l3_cache_schema.is_some() {
        anyhow::bail!("Intel RDT/CAT: l3 cache schema is not enabled");
    }
    if a.mem_bw_schema.is_some() {
        anyhow::bail!("Intel RDT/MBA: memory bandwidth schema is not enabled");
    }
    let v: Value = if let Some(r) = &a.resources {
        let data = if r == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("read resources from stdin")?;
            s
        } else {
            std::fs::read_to_string(r).with_context(|| format!("resources file {r}"))?
        };
        serde_json::from_str(&data).with_context(|| format!("resources file {r}"))?
    } else {
        from_flags(a)?
    };
    let mut res: oci_spec::runtime::LinuxResources =
        serde_json::from_value(v).context("linux.resources")?;
    // runc's update never changes device rules.
    res.set_devices(None);
    if st.cgroup.paths.is_empty() {
        anyhow::bail!("container {:?} has no cgroup (cgroups disabled)", a.id);
    }
    st.cgroup
        .apply(&res)
        .map_err(|e| anyhow::anyhow!("container {:?}: update: {e}", a.id))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::ram_in_bytes;

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(ram_in_bytes("1024").unwrap(), 1024);
        assert_eq!(ram_in_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(ram_in_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(ram_in_bytes("512KiB").unwrap(), 512 << 10);
        assert_eq!(ram_in_bytes("-1").unwrap(), -1);
        assert!(ram_in_bytes("12q").is_err());
        assert!(ram_in_bytes("").is_err());
    }
}
