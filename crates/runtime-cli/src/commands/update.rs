//! `update`: change the resource limits of a live container (flags as runc has them, or
//! `-r resources.json` / `-r -` with a runtime-spec `linux.resources` object).

use anyhow::Context;
use serde_json::{json, Map, Value};
use skiff_runtime::state::{State, Status};

/// Flags of `update`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path to a JSON file with linux.resources ("-" for stdin).
    #[arg(short, long)]
    pub resources: Option<String>,
    /// Memory limit in bytes.
    #[arg(long)]
    pub memory: Option<i64>,
    /// Memory soft limit in bytes.
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap limit in bytes.
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<i64>,
    /// Kernel memory limit (ignored, as in runc).
    #[arg(long = "kernel-memory")]
    pub kernel_memory: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds.
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// Realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds.
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use.
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Maximum number of pids (-1 for unlimited).
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Intel RDT L3 cache schema (not supported here).
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported here).
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    /// Container id.
    pub id: String,
}

/// Run `update`.
pub fn run(cli: &super::Cli, a: &Args) -> anyhow::Result<i32> {
    let st = State::load(&cli.root, &a.id)?;
    if st.status(&cli.root) == Status::Stopped {
        anyhow::bail!("container {:?} is not running", a.id);
    }
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        anyhow::bail!(
            "container {:?}: Intel RDT is not supported on this host",
            a.id
        );
    }
    let v: Value = if let Some(r) = &a.resources {
        let data = if r == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            s
        } else {
            std::fs::read_to_string(r).with_context(|| format!("resources file {r}"))?
        };
        serde_json::from_str(&data).with_context(|| format!("resources file {r}"))?
    } else {
        let mut res = Map::new();
        let mut mem = Map::new();
        let put = |m: &mut Map<String, Value>, k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        put(&mut mem, "limit", a.memory.map(Value::from));
        put(
            &mut mem,
            "reservation",
            a.memory_reservation.map(Value::from),
        );
        put(&mut mem, "swap", a.memory_swap.map(Value::from));
        if !mem.is_empty() {
            res.insert("memory".into(), Value::Object(mem));
        }
        let mut cpu = Map::new();
        put(&mut cpu, "shares", a.cpu_shares.map(Value::from));
        put(&mut cpu, "quota", a.cpu_quota.map(Value::from));
        put(&mut cpu, "period", a.cpu_period.map(Value::from));
        put(&mut cpu, "realtimePeriod", a.cpu_rt_period.map(Value::from));
        put(
            &mut cpu,
            "realtimeRuntime",
            a.cpu_rt_runtime.map(Value::from),
        );
        put(&mut cpu, "cpus", a.cpuset_cpus.clone().map(Value::from));
        put(&mut cpu, "mems", a.cpuset_mems.clone().map(Value::from));
        if !cpu.is_empty() {
            res.insert("cpu".into(), Value::Object(cpu));
        }
        if let Some(p) = a.pids_limit {
            res.insert("pids".into(), json!({"limit": p}));
        }
        if let Some(w) = a.blkio_weight {
            res.insert("blockIO".into(), json!({"weight": w}));
        }
        Value::Object(res)
    };
    let res: oci_spec::runtime::LinuxResources =
        serde_json::from_value(v).context("linux.resources")?;
    st.cgroup
        .apply(&res)
        .map_err(|e| anyhow::anyhow!("container {:?}: update: {e}", a.id))?;
    Ok(0)
}
