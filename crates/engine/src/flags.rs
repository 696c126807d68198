//! Docker's value parsers for the `run`/`create` flags that take numbers, sizes and policies:
//! every bad value is refused before anything is recorded, with one line that names the flag
//! and the value in docker's CLI wording (`invalid argument "64q" for "-m, --memory" flag:
//! invalid size: '64q'`) or docker's daemon wording where that is what docker prints
//! (`Minimum memory limit allowed is 6MB`, `invalid restart policy: ...`).

use crate::error::{Error, Result};
use crate::model::{RestartPolicy, Ulimit};

/// Docker's smallest `--memory` (6 MiB).
pub const MIN_MEMORY: i64 = 6 << 20;

/// `invalid argument "VALUE" for "FLAG" flag: WHY`, as docker's CLI words a bad flag value.
pub fn bad_flag(flag: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "invalid argument \"{value}\" for \"{flag}\" flag: {why}"
    ))
}

/// Docker's `RAMInBytes` (go-units): `N[.N][ ][kmgtp][i][b]`, any case, binary multiples
/// (`512m`, `1.5g`, `10KB`, `1gib`, `100`); negative, non-numeric and out-of-range sizes are
/// errors (`invalid size: '64q'`).
pub fn ram_in_bytes(s: &str) -> std::result::Result<i64, String> {
    let bad = || format!("invalid size: '{s}'");
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(end);
    if !num.starts_with(|c: char| c.is_ascii_digit()) || num.ends_with('.') {
        return Err(bad());
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let mut rest = rest.as_str();
    let mut shift = 0u32;
    if let Some(c) = rest.chars().next() {
        if let Some(i) = "kmgtp".find(c) {
            shift = 10 * (i as u32 + 1);
            rest = &rest[1..];
        }
    }
    let rest = rest.strip_prefix('i').unwrap_or(rest);
    let rest = rest.strip_prefix('b').unwrap_or(rest);
    if !rest.is_empty() {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    let v = n * (1u64 << shift) as f64;
    // i64::MAX as f64 rounds up to 2^63, which is already out of range.
    if !v.is_finite() || v >= 9_223_372_036_854_775_808.0 {
        return Err(format!("invalid size: '{s}': value out of range"));
    }
    Ok(v as i64)
}

/// `-m/--memory`: a size of at least 6 MiB, or 0 for no limit.
pub fn memory(s: &str) -> Result<i64> {
    let b = ram_in_bytes(s).map_err(|why| bad_flag("-m, --memory", s, why))?;
    if b > 0 && b < MIN_MEMORY {
        return Err(bad_flag(
            "-m, --memory",
            s,
            "Minimum memory limit allowed is 6MB",
        ));
    }
    Ok(b)
}

/// `--shm-size`: the size of /dev/shm in bytes (0 = docker's default, 64 MiB).
pub fn shm_size(s: &str) -> Result<i64> {
    ram_in_bytes(s).map_err(|why| bad_flag("--shm-size", s, why))
}

/// `--cpus`: a decimal number of CPUs, 0 (no limit) or from 0.01 up to `ncpu`, in billionths
/// (docker's NanoCPUs). NaN, infinities, fractions finer than 1e-9 and negative values are errors.
pub fn nano_cpus(s: &str, ncpu: usize) -> Result<i64> {
    let bad = |why: String| bad_flag("--cpus", s, why);
    let parse_err = || bad(format!("failed to parse {s} as a rational number"));
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(parse_err());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 9 {
        return Err(bad("value is too precise".into()));
    }
    let range = || {
        bad(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        ))
    };
    let int: i128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| range())?
    };
    let frac_nanos: i128 = format!("{frac:0<9}").parse().unwrap_or(0);
    let nano = int
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_nanos))
        .ok_or_else(range)?;
    if nano == 0 {
        return Ok(0);
    }
    if neg || nano < 10_000_000 || nano > ncpu as i128 * 1_000_000_000 {
        return Err(range());
    }
    Ok(nano as i64)
}

/// A Go-style integer flag (`--pids-limit`, `--stop-timeout`): docker's `strconv` wording.
pub fn int_flag(flag: &str, s: &str) -> Result<i64> {
    let t = s.strip_prefix('+').unwrap_or(s);
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_flag(
            flag,
            s,
            format!("parsing \"{s}\": invalid syntax"),
        ));
    }
    t.parse()
        .map_err(|_| bad_flag(flag, s, format!("parsing \"{s}\": value out of range")))
}

/// `--pids-limit`: an integer; 0 or less means no limit, as in docker.
pub fn pids_limit(s: &str) -> Result<i64> {
    int_flag("--pids-limit", s)
}

/// `--stop-timeout`: seconds; a negative value waits forever, as in docker.
pub fn stop_timeout(s: &str) -> Result<i64> {
    int_flag("--stop-timeout", s)
}

/// `--restart`, with docker's parser and daemon checks: `no`, `always`, `unless-stopped`,
/// `on-failure[:N]` with N ≥ 0.
pub fn restart(s: &str) -> Result<RestartPolicy> {
    let (name, count) = match s.split_once(':') {
        Some(("", _)) => {
            return Err(Error::Invalid(
                "invalid restart policy format: no policy provided before colon".into(),
            ))
        }
        Some((n, c)) => (n, c),
        None => (s, ""),
    };
    let count: i64 = if count.is_empty() {
        0
    } else {
        count.parse().map_err(|_| {
            Error::Invalid(
                "invalid restart policy format: maximum retry count must be an integer".into(),
            )
        })?
    };
    match name {
        "" | "no" | "always" | "unless-stopped" if count != 0 => Err(Error::Invalid(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                .into(),
        )),
        "" | "no" => Ok(RestartPolicy {
            name: "no".into(),
            maximum_retry_count: 0,
        }),
        "always" | "unless-stopped" => Ok(RestartPolicy {
            name: name.into(),
            maximum_retry_count: 0,
        }),
        "on-failure" if count < 0 => Err(Error::Invalid(
            "invalid restart policy: maximum retry count cannot be negative".into(),
        )),
        "on-failure" => Ok(RestartPolicy {
            name: name.into(),
            maximum_retry_count: count,
        }),
        _ => Err(Error::Invalid(format!(
            "invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        ))),
    }
}

/// An API client's `HostConfig.RestartPolicy`, with the daemon's checks of [`restart`].
pub fn check_restart(r: RestartPolicy) -> Result<RestartPolicy> {
    let name = if r.name.is_empty() { "no" } else { &r.name };
    match name {
        "no" | "always" | "unless-stopped" if r.maximum_retry_count != 0 => Err(Error::Invalid(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                .into(),
        )),
        "no" | "always" | "unless-stopped" => Ok(RestartPolicy {
            name: name.into(),
            maximum_retry_count: 0,
        }),
        "on-failure" if r.maximum_retry_count < 0 => Err(Error::Invalid(
            "invalid restart policy: maximum retry count cannot be negative".into(),
        )),
        "on-failure" => Ok(r),
        _ => Err(Error::Invalid(format!(
            "invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        ))),
    }
}

/// An API client's `HostConfig.Ulimits` entry, with the checks of [`ulimit`].
pub fn check_ulimit(u: Ulimit) -> Result<Ulimit> {
    if !ULIMITS.contains(&u.name.as_str()) {
        return Err(Error::Invalid(format!("invalid ulimit type: {}", u.name)));
    }
    if u.soft < -1 || u.hard < -1 {
        return Err(Error::Invalid(format!(
            "invalid ulimit value for {} (use -1 for unlimited)",
            u.name
        )));
    }
    if u.soft as u64 > u.hard as u64 {
        return Err(Error::Invalid(format!(
            "ulimit soft limit must be less than or equal to hard limit: {} > {}",
            u.soft, u.hard
        )));
    }
    Ok(u)
}

/// The `--ulimit` names docker knows.
const ULIMITS: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--ulimit name=soft[:hard]` (docker's `ParseUlimit`): -1 is unlimited; soft ≤ hard.
pub fn ulimit(s: &str) -> Result<Ulimit> {
    let bad = |why: String| bad_flag("--ulimit", s, why);
    let (name, v) = s
        .split_once('=')
        .ok_or_else(|| bad(format!("invalid ulimit argument: {s}")))?;
    if !ULIMITS.contains(&name) {
        return Err(bad(format!("invalid ulimit type: {name}")));
    }
    let parts: Vec<&str> = v.split(':').collect();
    if parts.len() > 2 {
        return Err(bad(format!(
            "too many limit value arguments - {v}, can only have up to two, `soft[:hard]`"
        )));
    }
    let value = |p: &str| -> Result<i64> {
        let n: i64 = p
            .parse()
            .map_err(|_| bad(format!("invalid ulimit value: {p:?}")))?;
        if n < -1 {
            return Err(bad(format!(
                "invalid ulimit value: {n} (use -1 for unlimited)"
            )));
        }
        Ok(n)
    };
    let soft = value(parts[0])?;
    let hard = match parts.get(1) {
        Some(h) => value(h)?,
        None => soft,
    };
    // -1 is RLIM_INFINITY: compare as the kernel does.
    if soft as u64 > hard as u64 {
        return Err(bad(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )));
    }
    Ok(Ulimit {
        name: name.into(),
        soft,
        hard,
    })
}

/// `-e/--env KEY[=VALUE]` (docker's `ValidateEnv`): the name may not be empty.
pub fn env(s: &str) -> Result<()> {
    let key = s.split_once('=').map_or(s, |x| x.0);
    if key.is_empty() {
        return Err(bad_flag(
            "-e, --env",
            s,
            format!("invalid environment variable: {s}"),
        ));
    }
    Ok(())
}

/// `--network`, checked for shape: `default` without the flag, `none`, `host`, or a network
/// name (resolved against the database by [`crate::Engine::resolve_network`]).
pub fn network(n: Option<&str>) -> Result<String> {
    match n {
        None | Some("default") | Some("") => Ok("default".into()),
        Some(m @ ("none" | "host")) => Ok(m.into()),
        Some("container:") => Err(Error::Invalid(
            "invalid argument \"container:\" for \"--network\" flag: no container named".into(),
        )),
        Some(n) => Ok(n.into()),
    }
}

/// A tmpfs `size=` value as the kernel takes it (memparse: digits with an optional
/// `k m g t p e` suffix, or a percentage of RAM).
pub fn tmpfs_size(v: &str) -> std::result::Result<(), String> {
    let digits = v
        .strip_suffix('%')
        .or_else(|| v.strip_suffix(|c: char| "kKmMgGtTpPeE".contains(c)))
        .unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid size: '{v}'"));
    }
    Ok(())
}

/// A tmpfs `mode=` value: octal permission bits.
pub fn tmpfs_mode(v: &str) -> std::result::Result<(), String> {
    match u32::from_str_radix(v, 8) {
        Ok(m) if m <= 0o7777 => Ok(()),
        _ => Err(format!("invalid mode: '{v}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn sizes_as_docker() {
        for (s, v) in [
            ("512m", 512 << 20),
            ("1g", 1 << 30),
            ("1G", 1 << 30),
            ("100", 100),
            ("100b", 100),
            ("10KB", 10 << 10),
            ("1gib", 1 << 30),
            ("1.5g", 3 << 29),
            ("6 m", 6 << 20),
            ("0", 0),
        ] {
            assert_eq!(ram_in_bytes(s), Ok(v), "{s}");
        }
        for s in [
            "", "-1", "64q", "lots", "1.2.3", ".5g", "5.g", "NaN", "inf", "1e3", "1gg", " 1g",
        ] {
            assert_eq!(ram_in_bytes(s), Err(format!("invalid size: '{s}'")), "{s}");
        }
        assert!(ram_in_bytes("99999999999999999999g")
            .unwrap_err()
            .ends_with("value out of range"));
        assert!(ram_in_bytes("8p").is_ok());
        assert!(ram_in_bytes("8192p").is_err());
    }

    #[test]
    fn memory_and_shm() {
        assert_eq!(memory("6m").unwrap(), 6 << 20);
        assert_eq!(memory("0").unwrap(), 0);
        assert_eq!(
            msg(memory("64q")),
            "invalid argument \"64q\" for \"-m, --memory\" flag: invalid size: '64q'"
        );
        assert_eq!(
            msg(memory("4k")),
            "invalid argument \"4k\" for \"-m, --memory\" flag: Minimum memory limit allowed is 6MB"
        );
        assert!(msg(memory("99999999999999999999g")).contains("out of range"));
        assert_eq!(shm_size("64m").unwrap(), 64 << 20);
        assert_eq!(
            msg(shm_size("-1")),
            "invalid argument \"-1\" for \"--shm-size\" flag: invalid size: '-1'"
        );
    }

    #[test]
    fn cpus_as_docker() {
        assert_eq!(nano_cpus("1.5", 2).unwrap(), 1_500_000_000);
        assert_eq!(nano_cpus("0.01", 2).unwrap(), 10_000_000);
        assert_eq!(nano_cpus(".5", 2).unwrap(), 500_000_000);
        assert_eq!(nano_cpus("2", 2).unwrap(), 2_000_000_000);
        assert_eq!(nano_cpus("0", 2).unwrap(), 0);
        assert_eq!(nano_cpus("0.000", 2).unwrap(), 0);
        for s in [
            "NaN", "nan", "inf", "-inf", "infinity", "1e3", "", ".", "1,5", "abc",
        ] {
            assert_eq!(
                msg(nano_cpus(s, 2)),
                format!(
                    "invalid argument \"{s}\" for \"--cpus\" flag: failed to parse {s} as a rational number"
                ),
                "{s}"
            );
        }
        let range = "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available";
        for s in ["-1", "-0.5", "3", "0.001", "99999999999999999999999999999"] {
            assert!(msg(nano_cpus(s, 2)).ends_with(range), "{s}");
        }
        assert!(msg(nano_cpus("0.0000000001", 2)).ends_with("value is too precise"));
    }

    #[test]
    fn integers_as_docker() {
        assert_eq!(pids_limit("100").unwrap(), 100);
        assert_eq!(pids_limit("-1").unwrap(), -1);
        assert_eq!(stop_timeout("+5").unwrap(), 5);
        assert_eq!(
            msg(pids_limit("abc")),
            "invalid argument \"abc\" for \"--pids-limit\" flag: parsing \"abc\": invalid syntax"
        );
        for s in ["", "-", "1.5", "1e3", "0x10", " 1"] {
            assert!(msg(pids_limit(s)).ends_with("invalid syntax"), "{s:?}");
        }
        assert!(msg(stop_timeout("99999999999999999999")).ends_with("value out of range"));
    }

    #[test]
    fn restart_policies_as_docker() {
        assert_eq!(restart("on-failure:3").unwrap().maximum_retry_count, 3);
        assert_eq!(restart("on-failure").unwrap().maximum_retry_count, 0);
        assert_eq!(restart("always").unwrap().name, "always");
        assert_eq!(restart("").unwrap().name, "no");
        assert_eq!(
            msg(restart("on-failure:-1")),
            "invalid restart policy: maximum retry count cannot be negative"
        );
        assert_eq!(
            msg(restart("bogus")),
            "invalid restart policy: unknown policy 'bogus'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        );
        assert!(msg(restart("always:2")).contains("only be used with 'on-failure'"));
        assert!(msg(restart("on-failure:x")).contains("must be an integer"));
        assert!(msg(restart(":3")).contains("no policy provided before colon"));
    }

    #[test]
    fn ulimits_as_docker() {
        let u = ulimit("nofile=100:200").unwrap();
        assert_eq!((u.soft, u.hard), (100, 200));
        let u = ulimit("core=-1").unwrap();
        assert_eq!((u.soft, u.hard), (-1, -1));
        assert!(ulimit("nofile=10:-1").is_ok());
        for (s, why) in [
            ("nofile", "invalid ulimit argument: nofile"),
            ("bogus=1", "invalid ulimit type: bogus"),
            ("nofile=abc", "invalid ulimit value: \"abc\""),
            ("nofile=1:2:3", "too many limit value arguments - 1:2:3"),
            (
                "nofile=300:200",
                "soft limit must be less than or equal to hard limit",
            ),
            (
                "nofile=-1:200",
                "soft limit must be less than or equal to hard limit",
            ),
            ("nofile=-5", "invalid ulimit value: -5"),
        ] {
            let m = msg(ulimit(s));
            assert!(
                m.starts_with(&format!("invalid argument \"{s}\" for \"--ulimit\" flag: ")),
                "{m}"
            );
            assert!(m.contains(why), "{s}: {m}");
        }
    }

    #[test]
    fn env_network_tmpfs() {
        assert!(env("A=1").is_ok() && env("A").is_ok() && env("A=").is_ok());
        assert_eq!(
            msg(env("=x")),
            "invalid argument \"=x\" for \"-e, --env\" flag: invalid environment variable: =x"
        );
        assert!(env("").is_err());
        assert_eq!(network(None).unwrap(), "default");
        assert_eq!(network(Some("host")).unwrap(), "host");
        assert_eq!(network(Some("none")).unwrap(), "none");
        assert_eq!(network(Some("bridge")).unwrap(), "bridge");
        assert_eq!(network(Some("container:web")).unwrap(), "container:web");
        assert!(network(Some("container:")).is_err());
        for v in ["64m", "65536k", "50%", "100", "1G"] {
            assert!(tmpfs_size(v).is_ok(), "{v}");
        }
        for v in ["-1", "", "m", "1.5m", "64q"] {
            assert!(tmpfs_size(v).is_err(), "{v}");
        }
        assert!(tmpfs_mode("1777").is_ok());
        assert!(tmpfs_mode("999").is_err() && tmpfs_mode("-1").is_err());
    }
}
