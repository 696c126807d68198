//! Applying `linux.resources`: checks every value first (so a bad request changes nothing), then
//! hands the request to the v1 (also used for hybrid) or v2 writer.

use crate::{Cgroup, Driver, Error, Result};
use oci_spec::runtime::LinuxResources;

/// The smallest memory limit skiff accepts (as docker does): below it not even a shell starts.
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// Hugepage sizes this host supports, as the runtime spec names them (`2MB`, `1GB`).
pub fn hugepage_sizes() -> Vec<String> {
    let mut v: Vec<(u64, String)> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = n
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some((kb, kb_to_name(kb)))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, n)| n).collect()
}

fn kb_to_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb.is_multiple_of(1 << 20) {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb.is_multiple_of(1 << 10) {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

/// Check `r` without touching any cgroup: limits below kernel minimums, inconsistent pairs, bad
/// device rules, unknown hugepage sizes.
pub fn validate(r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            if l > 0 && l < MIN_MEMORY {
                return Err(Error::Invalid(format!(
                    "memory limit {l} below minimum 6M ({MIN_MEMORY} bytes)"
                )));
            }
            if l < -1 {
                return Err(Error::Invalid(format!("memory limit {l} is invalid")));
            }
        }
        if let (Some(l), Some(s)) = (m.limit(), m.swap()) {
            if l > 0 && s > 0 && s < l {
                return Err(Error::Invalid(format!(
                    "memory+swap limit {s} must be >= memory limit {l}"
                )));
            }
        }
        if let Some(v) = m.swappiness() {
            if v > 100 {
                return Err(Error::Invalid(format!(
                    "memory swappiness {v} is out of range 0-100"
                )));
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(p) = c.period() {
            if p != 0 && !(1000..=1_000_000).contains(&p) {
                return Err(Error::Invalid(format!(
                    "cpu period {p} is out of range 1000-1000000 us"
                )));
            }
        }
        if let Some(q) = c.quota() {
            if q > 0 && q < 1000 {
                return Err(Error::Invalid(format!(
                    "cpu quota {q} below minimum 1000 us"
                )));
            }
        }
        if let (Some(rt), Some(p)) = (c.realtime_runtime(), c.realtime_period()) {
            if rt > 0 && p > 0 && rt as u64 > p {
                return Err(Error::Invalid(format!(
                    "cpu realtime runtime {rt} exceeds realtime period {p}"
                )));
            }
        }
    }
    if let Some(b) = r.block_io() {
        for w in [b.weight(), b.leaf_weight()].into_iter().flatten() {
            if w != 0 && !(10..=1000).contains(&w) {
                return Err(Error::Invalid(format!(
                    "blkio weight {w} is out of range 10-1000"
                )));
            }
        }
    }
    if let Some(h) = r.hugepage_limits() {
        let have = hugepage_sizes();
        for l in h {
            if !have.iter().any(|s| s == l.page_size()) {
                return Err(Error::Invalid(format!(
                    "hugepage size {:?} not supported on this host (have: {})",
                    l.page_size(),
                    have.join(", ")
                )));
            }
        }
    }
    if let Some(d) = r.devices() {
        crate::devices::rules(d)?;
    }
    Ok(())
}

/// The block device `maj:min` must exist for per-device rules.
pub(crate) fn check_block_device(what: &str, major: i64, minor: i64) -> Result<()> {
    if std::path::Path::new(&format!("/sys/dev/block/{major}:{minor}")).exists() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what}: unknown block device {major}:{minor}"
        )))
    }
}

impl Cgroup {
    /// Apply every resource field; a field whose controller is missing on this host is an error
    /// naming the controller, and values are checked before anything is written.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        if self.paths.is_empty() {
            return Ok(());
        }
        validate(r)?;
        match self.driver() {
            Driver::V2 => crate::v2::apply(self, &self.paths["unified"], r),
            Driver::V1 | Driver::Hybrid => crate::v1::apply(self, r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_hugepage_sizes() {
        assert_eq!(kb_to_name(2048), "2MB");
        assert_eq!(kb_to_name(1 << 20), "1GB");
        assert_eq!(kb_to_name(64), "64KB");
    }

    #[test]
    fn validation_rejects_before_writing() {
        let r: LinuxResources = serde_json::from_str(r#"{"memory":{"limit":4096}}"#).unwrap();
        assert!(validate(&r)
            .unwrap_err()
            .to_string()
            .contains("below minimum 6M"));
        let r: LinuxResources =
            serde_json::from_str(r#"{"hugepageLimits":[{"pageSize":"3MB","limit":0}]}"#).unwrap();
        assert!(validate(&r).unwrap_err().to_string().contains("3MB"));
        let r: LinuxResources =
            serde_json::from_str(r#"{"devices":[{"allow":true,"type":"c","access":"rwx"}]}"#)
                .unwrap();
        assert!(validate(&r).unwrap_err().to_string().contains("rwx"));
        let r: LinuxResources = serde_json::from_str(r#"{"cpu":{"quota":10}}"#).unwrap();
        assert!(validate(&r).is_err());
    }
}
