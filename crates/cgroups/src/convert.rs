//! Value conversions between cgroup v1 and v2, with the same arithmetic runc uses so a config moves
//! between runtimes unchanged.

use crate::{Error, Result};

/// cpu shares (v1, [2, 262144]) → cpu.weight (v2, [1, 10000]); 0 means unset.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio weight (v1, [10, 1000]) → io.weight (v2, [1, 10000]); 0 means unset.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// v1 `memory.memsw` semantics (memory + swap) → v2 `memory.swap.max` (swap alone).
/// Returns `None` when nothing is to be written, `Some(-1)` for "max".
pub fn swap_to_v2(memory: Option<i64>, swap: Option<i64>) -> Result<Option<i64>> {
    let mem = memory.unwrap_or(0);
    let swap = swap.unwrap_or(0);
    if mem == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    if swap == -1 {
        return Ok(Some(-1));
    }
    if swap == 0 {
        return Ok(None);
    }
    if mem <= 0 {
        return Err(Error::Invalid(
            "memory swap limit needs a memory limit too".into(),
        ));
    }
    if swap < mem {
        return Err(Error::Invalid(format!(
            "memory+swap limit {swap} must be >= memory limit {mem}"
        )));
    }
    Ok(Some(swap - mem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_like_runc() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(swap_to_v2(Some(100), Some(300)).unwrap(), Some(200));
        assert_eq!(swap_to_v2(Some(-1), None).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(Some(100), Some(-1)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(Some(100), None).unwrap(), None);
        assert!(swap_to_v2(Some(300), Some(100)).is_err());
        assert!(swap_to_v2(None, Some(100)).is_err());
    }
}
