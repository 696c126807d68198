//! Minimal RFC 3339 / UTC time helpers (no time-zone database needed: everything skiff writes and
//! shows is UTC, like docker).

/// Seconds since the epoch, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats seconds since the epoch as `2006-01-02T15:04:05Z`.
pub fn rfc3339(secs: i64) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Formats like docker's `CreatedAt`: `2006-01-02 15:04:05 +0000 UTC`.
pub fn docker_date(secs: i64) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Parses an RFC 3339 timestamp (fractional seconds and offsets accepted) into epoch seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        rest = &r[end..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        o if (o.starts_with('+') || o.starts_with('-')) && o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// Docker's "N units ago" (go-units HumanDuration + " ago").
pub fn ago(secs: i64) -> String {
    let d = (now_unix() - secs).max(0);
    let s = if d < 1 {
        "Less than a second".to_string()
    } else if d == 1 {
        "1 second".to_string()
    } else if d < 60 {
        format!("{d} seconds")
    } else if d / 60 == 1 {
        "About a minute".to_string()
    } else if d < 3600 {
        format!("{} minutes", d / 60)
    } else if (d as f64 / 3600.0).round() as i64 == 1 {
        "About an hour".to_string()
    } else if d < 48 * 3600 {
        format!("{} hours", (d as f64 / 3600.0).round() as i64)
    } else if d < 7 * 24 * 3600 * 2 {
        format!("{} days", d / 86_400)
    } else if d < 24 * 3600 * 30 * 3 {
        format!("{} weeks", d / (7 * 86_400))
    } else if d < 24 * 3600 * 365 * 2 {
        format!("{} months", d / (30 * 86_400))
    } else {
        format!("{} years", d / (365 * 86_400))
    };
    format!("{s} ago")
}

/// Docker's human size (go-units HumanSizeWithPrecision(size, 3)): decimal units, 3 significant digits.
pub fn human_size(size: u64) -> String {
    human_size_precision(size, 3)
}

/// go-units' HumanSizeWithPrecision: decimal units (`B kB MB …`) and `precision` (≥ 3)
/// significant digits, trailing zeros trimmed (`1.049MB` with 4, `512kB`, `32B`).
pub fn human_size_precision(size: u64, precision: usize) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = size as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // Go's %.*g: the integer digits count towards the precision.
    let int_digits = if v >= 100.0 {
        3
    } else if v >= 10.0 {
        2
    } else {
        1
    };
    let digits = precision.saturating_sub(int_digits);
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = parse_rfc3339("2024-02-29T12:34:56.123456789Z").unwrap();
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_240), "1.24kB");
    }
}

/// Parses a Go duration (`300ms`, `1.5s`, `1m30s`, `-2s`, `0`) into nanoseconds, as Go's
/// `time.ParseDuration` (and so docker's duration flags and Dockerfile options) reads it.
/// The error is Go's wording: `time: invalid duration "x"`, `time: missing unit in duration "5"`.
pub fn parse_go_duration_ns(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n_end == 0 || &rest[..n_end] == "." {
            return Err(invalid());
        }
        let n: f64 = rest[..n_end].parse().map_err(|_| invalid())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "" => return Err(format!("time: missing unit in duration \"{s}\"")),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            u => return Err(format!("time: unknown unit \"{u}\" in duration \"{s}\"")),
        };
        total += n * mult;
        rest = &rest[u_end..];
    }
    if !total.is_finite() || total >= 9.223_372_036_854_775e18 {
        return Err(invalid());
    }
    let ns = total.round() as i64;
    Ok(if neg { -ns } else { ns })
}

/// Formats nanoseconds as Go's `time.Duration.String()` does: `300ms`, `30s`, `1.5s`, `1m30s`,
/// `1h0m0s`, `0s`.
pub fn format_go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    // Trailing zeros of a fraction are dropped, as Go does.
    let frac = |v: u64, digits: u32| -> String {
        let s = format!("{v:0width$}", width = digits as usize);
        let s = s.trim_end_matches('0');
        if s.is_empty() {
            String::new()
        } else {
            format!(".{s}")
        }
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}{}µs", u / 1_000, frac(u % 1_000, 3));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}{}ms", u / 1_000_000, frac(u % 1_000_000, 6));
    }
    let secs = u / 1_000_000_000;
    let s = format!("{}{}s", secs % 60, frac(u % 1_000_000_000, 9));
    if secs < 60 {
        return format!("{sign}{s}");
    }
    let mins = secs / 60;
    if mins < 60 {
        return format!("{sign}{mins}m{s}");
    }
    format!("{sign}{}h{}m{s}", mins / 60, mins % 60)
}

#[cfg(test)]
mod go_duration_tests {
    use super::*;

    #[test]
    fn parse_and_format_as_go() {
        assert_eq!(parse_go_duration_ns("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration_ns("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration_ns("-2s"), Ok(-2_000_000_000));
        assert_eq!(parse_go_duration_ns("0"), Ok(0));
        assert_eq!(parse_go_duration_ns("1.5s"), Ok(1_500_000_000));
        assert!(parse_go_duration_ns("5")
            .unwrap_err()
            .contains("missing unit"));
        assert!(parse_go_duration_ns("abc")
            .unwrap_err()
            .contains("invalid duration"));
        assert!(parse_go_duration_ns("").is_err());
        for (ns, s) in [
            (300_000_000, "300ms"),
            (30_000_000_000, "30s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (1_500_000, "1.5ms"),
            (999, "999ns"),
            (0, "0s"),
        ] {
            assert_eq!(format_go_duration(ns), s);
        }
    }
}
