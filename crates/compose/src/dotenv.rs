//! `.env` and `env_file` files as compose reads them: `KEY=VALUE` lines, `export ` prefixes,
//! `#` comments, single quotes (literal), double quotes (escapes `\n`, `\t`, `\"`, `\\`),
//! unquoted values with trailing ` # comments` removed, `${VAR}` interpolated from earlier lines
//! and the environment, and a bare `KEY` meaning the environment's value (or unset).

use std::collections::BTreeMap;

use crate::interp::interpolate;

/// Parses `text` (from `file`, for errors); `lookup` gives the variables defined outside it.
/// Returns the pairs in file order; a `None` value is a bare key with no value anywhere.
pub fn parse(
    text: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut mine: BTreeMap<String, String> = BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").map(str::trim_start).unwrap_or(l);
        let (key, raw) = match l.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim_start())),
            None => (l, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!(
                "{file}:{}: unexpected character in variable name {key:?}",
                n + 1
            ));
        }
        let value = match raw {
            None => lookup(key),
            Some(v) if v.starts_with('\'') || v.starts_with('"') => {
                let q = v.as_bytes()[0] as char;
                let mut body = v[1..].to_string();
                // A quoted value may span lines.
                while !closes(&body, q) {
                    match lines.next() {
                        Some((_, more)) => {
                            body.push('\n');
                            body.push_str(more);
                        }
                        None => return Err(format!("{file}:{}: unterminated quoted value", n + 1)),
                    }
                }
                let end = close_index(&body, q).unwrap_or(body.len());
                let inner = &body[..end];
                if q == '\'' {
                    Some(inner.to_string())
                } else {
                    let unescaped = unescape(inner);
                    let look = |k: &str| mine.get(k).cloned().or_else(|| lookup(k));
                    Some(
                        interpolate(&unescaped, &look)
                            .map_err(|e| format!("{file}:{}: {e}", n + 1))?,
                    )
                }
            }
            Some(v) => {
                let v = match v.find(" #") {
                    Some(i) => &v[..i],
                    None => v,
                };
                let look = |k: &str| mine.get(k).cloned().or_else(|| lookup(k));
                Some(
                    interpolate(v.trim_end(), &look)
                        .map_err(|e| format!("{file}:{}: {e}", n + 1))?,
                )
            }
        };
        if let Some(v) = &value {
            mine.insert(key.to_string(), v.clone());
        }
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn close_index(body: &str, q: char) -> Option<usize> {
    let mut esc = false;
    for (i, c) in body.char_indices() {
        if esc {
            esc = false;
        } else if c == '\\' && q == '"' {
            esc = true;
        } else if c == q {
            return Some(i);
        }
    }
    None
}

fn closes(body: &str, q: char) -> bool {
    close_index(body, q).is_some()
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let text = "# c\nA=1\nexport B = two words # note\nC='lit $A'\nD=\"x\\ny${A}\"\nE=${A}${B}\nHOME\nNOPE\n";
        let env = |k: &str| (k == "HOME").then(|| "/root".to_string());
        let v = parse(text, ".env", &env).unwrap();
        let m: BTreeMap<_, _> = v.into_iter().collect();
        assert_eq!(m["A"].as_deref(), Some("1"));
        assert_eq!(m["B"].as_deref(), Some("two words"));
        assert_eq!(m["C"].as_deref(), Some("lit $A"));
        assert_eq!(m["D"].as_deref(), Some("x\ny1"));
        assert_eq!(m["E"].as_deref(), Some("1two words"));
        assert_eq!(m["HOME"].as_deref(), Some("/root"));
        assert_eq!(m["NOPE"], None);
        assert!(parse("BAD KEY=1", ".env", &env)
            .unwrap_err()
            .contains(".env:1"));
    }
}
