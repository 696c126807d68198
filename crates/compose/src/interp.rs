//! Variable interpolation as the Compose Specification defines it: `$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+replacement}`,
//! `${VAR+replacement}` (defaults and replacements interpolated in turn) and `$$` for a literal `$`.

/// Interpolates `s`, looking variables up with `lookup`; the error is compose's message
/// (`required variable X is missing a value: …`, `invalid interpolation format …`).
pub fn interpolate(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let ch = s[i..].chars().next().unwrap_or('\0');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let start = i + 2;
                let end = matching_brace(s, start).ok_or_else(|| {
                    format!("invalid interpolation format for {s:?}: unterminated \"${{\"")
                })?;
                out.push_str(&braced(&s[start..end], s, lookup)?);
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                out.push_str(&lookup(&s[i + 1..j]).unwrap_or_default());
                i = j;
            }
            _ => {
                // A lone `$` (at the end or before a character that starts no name) is kept.
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The index of the `}` closing the `${` whose body starts at `start` (nested `${…}` skipped).
fn matching_brace(s: &str, start: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 1;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(
    body: &str,
    whole: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let name_end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let name = &body[..name_end];
    let bad = || format!("invalid interpolation format for {whole:?}: \"${{{body}}}\"");
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return Err(bad());
    }
    let rest = &body[name_end..];
    let val = lookup(name);
    let (op, arg) = if rest.is_empty() {
        return Ok(val.unwrap_or_default());
    } else if let Some(a) = rest.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = rest.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = rest.strip_prefix(":+") {
        (":+", a)
    } else if let Some(a) = rest.strip_prefix('-') {
        ("-", a)
    } else if let Some(a) = rest.strip_prefix('?') {
        ("?", a)
    } else if let Some(a) = rest.strip_prefix('+') {
        ("+", a)
    } else {
        return Err(bad());
    };
    let set = val.is_some();
    let nonempty = val.as_deref().is_some_and(|v| !v.is_empty());
    match op {
        ":-" if nonempty => Ok(val.unwrap_or_default()),
        "-" if set => Ok(val.unwrap_or_default()),
        ":-" | "-" => interpolate(arg, lookup),
        ":?" if nonempty => Ok(val.unwrap_or_default()),
        "?" if set => Ok(val.unwrap_or_default()),
        ":?" | "?" => Err(format!(
            "required variable {name} is missing a value: {}",
            interpolate(arg, lookup)?
        )),
        ":+" if nonempty => interpolate(arg, lookup),
        "+" if set => interpolate(arg, lookup),
        _ => Ok(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &str) -> Result<String, String> {
        let env = |k: &str| match k {
            "SET" => Some("v".to_string()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("8080".to_string()),
            _ => None,
        };
        interpolate(s, &env)
    }

    #[test]
    fn forms() {
        assert_eq!(run("a${SET}b").unwrap(), "avb");
        assert_eq!(run("$SET/x").unwrap(), "v/x");
        assert_eq!(run("${UNSET}").unwrap(), "");
        assert_eq!(run("${UNSET:-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY-d}").unwrap(), "");
        assert_eq!(run("${UNSET-d}").unwrap(), "d");
        assert_eq!(run("${SET:-d}").unwrap(), "v");
        assert_eq!(run("${SET:+x}").unwrap(), "x");
        assert_eq!(run("${EMPTY:+x}").unwrap(), "");
        assert_eq!(run("${EMPTY+x}").unwrap(), "x");
        assert_eq!(run("${UNSET+x}").unwrap(), "");
        assert_eq!(run("$$SET $${SET}").unwrap(), "$SET ${SET}");
        assert_eq!(run("${UNSET:-${PORT}}").unwrap(), "8080");
        assert_eq!(run("${UNSET:-a${UNSET2:-b}c}").unwrap(), "abc");
        assert_eq!(run("cost: 5$").unwrap(), "cost: 5$");
    }

    #[test]
    fn errors() {
        assert_eq!(
            run("${UNSET:?need it}").unwrap_err(),
            "required variable UNSET is missing a value: need it"
        );
        assert_eq!(
            run("${EMPTY:?e}").unwrap_err(),
            "required variable EMPTY is missing a value: e"
        );
        assert_eq!(run("${EMPTY?e}").unwrap(), "");
        assert!(run("${UNSET?e}").is_err());
        assert!(run("${SET").unwrap_err().contains("invalid interpolation"));
        assert!(run("${SE T}")
            .unwrap_err()
            .contains("invalid interpolation"));
    }
}
