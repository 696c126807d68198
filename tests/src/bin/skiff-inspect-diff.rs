//! Key-by-key comparison of two `inspect` outputs (docker's and skiff's, for equivalent objects):
//! every key docker returns must exist in skiff's output with the same JSON type, and every leaf
//! value must be equal, unless an allow-list entry documents why it legitimately differs.
//!
//! `skiff-inspect-diff [--allow FILE] [--label NAME] DOCKER.json SKIFF.json`
//!
//! Both files hold what `inspect` prints (an array of objects, compared pairwise) or one object.
//! Paths are dotted (`HostConfig.LogConfig.Type`; array elements by index, `Args.0`); in the
//! allow-list `*` stands for one path segment and a trailing `**` for any rest. Allow-list lines:
//!
//! ```text
//! value  <path>  <reason>    the values may differ (ids, times, paths, sizes)
//! extra  <path>  <reason>    skiff may show a key docker 20.10 lacks (newer API fields)
//! unordered <path> <reason>  an array docker fills in Go map order (random): both sides are
//!                            compared sorted (by `Destination`, else the element's JSON)
//! ```
//!
//! Missing keys and type mismatches (`null` vs `[]` included) are never allowed. Exit status: 0
//! identical modulo the allow-list, 1 differences (each printed on one line), 2 usage or I/O errors.

use serde_json::Value;

/// What an allow-list line permits.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Value,
    Extra,
    Unordered,
}

/// One allow-list entry.
struct Allow {
    kind: Kind,
    pattern: Vec<String>,
}

fn matches(pattern: &[String], path: &[String]) -> bool {
    match (pattern.first(), path.first()) {
        (Some(p), _) if p == "**" => true,
        (Some(p), Some(s)) => (p == "*" || p == s) && matches(&pattern[1..], &path[1..]),
        (None, None) => true,
        _ => false,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

struct Diff<'a> {
    allow: &'a [Allow],
    problems: Vec<String>,
}

impl Diff<'_> {
    fn allowed(&self, kind: Kind, path: &[String]) -> bool {
        self.allow
            .iter()
            .any(|a| a.kind == kind && matches(&a.pattern, path))
    }

    fn walk(&mut self, path: &mut Vec<String>, d: &Value, s: &Value) {
        let shown = || path.join(".");
        if type_name(d) != type_name(s) {
            self.problems.push(format!(
                "type     {}: docker {} {}, skiff {} {}",
                shown(),
                type_name(d),
                short(d),
                type_name(s),
                short(s)
            ));
            return;
        }
        match (d, s) {
            (Value::Object(dm), Value::Object(sm)) => {
                for (k, dv) in dm {
                    path.push(k.clone());
                    match sm.get(k) {
                        Some(sv) => self.walk(path, dv, sv),
                        None => self.problems.push(format!(
                            "missing  {}: docker {}",
                            path.join("."),
                            short(dv)
                        )),
                    }
                    path.pop();
                }
                for (k, sv) in sm {
                    if dm.contains_key(k) {
                        continue;
                    }
                    path.push(k.clone());
                    if !self.allowed(Kind::Extra, path) && !self.allowed(Kind::Value, path) {
                        self.problems.push(format!(
                            "extra    {}: skiff {}",
                            path.join("."),
                            short(sv)
                        ));
                    }
                    path.pop();
                }
            }
            (Value::Array(da), Value::Array(sa)) if da.len() == sa.len() => {
                let (da, sa) = if self.allowed(Kind::Unordered, path) {
                    (sorted(da), sorted(sa))
                } else {
                    (da.clone(), sa.clone())
                };
                for (i, (dv, sv)) in da.iter().zip(&sa).enumerate() {
                    path.push(i.to_string());
                    self.walk(path, dv, sv);
                    path.pop();
                }
            }
            _ => {
                if d != s && !self.allowed(Kind::Value, path) {
                    self.problems.push(format!(
                        "value    {}: docker {}, skiff {}",
                        shown(),
                        short(d),
                        short(s)
                    ));
                }
            }
        }
    }
}

/// The elements of an unordered array in a stable order: by `Destination` (mounts), else by
/// their JSON text.
fn sorted(a: &[Value]) -> Vec<Value> {
    let mut v = a.to_vec();
    v.sort_by_key(|e| {
        e.get("Destination")
            .and_then(Value::as_str)
            .map_or_else(|| e.to_string(), str::to_string)
    });
    v
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(117).collect::<String>())
    } else {
        s
    }
}

fn load(path: &str) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))?;
    match serde_json::from_str(&text).map_err(|e| format!("parse {path}: {e}"))? {
        Value::Array(a) => Ok(a),
        v => Ok(vec![v]),
    }
}

fn load_allow(path: &str) -> Result<Vec<Allow>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut w = line.split_whitespace();
        let kind = match w.next() {
            Some("value") => Kind::Value,
            Some("extra") => Kind::Extra,
            Some("unordered") => Kind::Unordered,
            other => return Err(format!("{path}:{}: unknown kind {other:?}", n + 1)),
        };
        let pat = w
            .next()
            .ok_or_else(|| format!("{path}:{}: no path", n + 1))?;
        if w.next().is_none() {
            return Err(format!(
                "{path}:{}: every entry needs a reason after its path",
                n + 1
            ));
        }
        out.push(Allow {
            kind,
            pattern: pat.split('.').map(str::to_string).collect(),
        });
    }
    Ok(out)
}

fn run() -> Result<bool, String> {
    let mut allow_file = None;
    let mut label = String::new();
    let mut files = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--allow" => allow_file = Some(it.next().ok_or("--allow needs a file")?),
            "--label" => label = it.next().ok_or("--label needs a name")?,
            _ => files.push(a),
        }
    }
    let [docker, skiff] = files.as_slice() else {
        return Err(
            "usage: skiff-inspect-diff [--allow FILE] [--label NAME] DOCKER.json SKIFF.json".into(),
        );
    };
    let allow = match &allow_file {
        Some(f) => load_allow(f)?,
        None => Vec::new(),
    };
    let (d, s) = (load(docker)?, load(skiff)?);
    if d.len() != s.len() {
        return Err(format!(
            "docker printed {} objects, skiff {}",
            d.len(),
            s.len()
        ));
    }
    let mut diff = Diff {
        allow: &allow,
        problems: Vec::new(),
    };
    for (dv, sv) in d.iter().zip(&s) {
        diff.walk(&mut Vec::new(), dv, sv);
    }
    let prefix = if label.is_empty() {
        String::new()
    } else {
        format!("{label}: ")
    };
    for p in &diff.problems {
        println!("{prefix}{p}");
    }
    Ok(diff.problems.is_empty())
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("skiff-inspect-diff: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diff(d: Value, s: Value, allow: &[Allow]) -> Vec<String> {
        let mut x = Diff {
            allow,
            problems: Vec::new(),
        };
        x.walk(&mut Vec::new(), &d, &s);
        x.problems
    }

    #[test]
    fn unordered_arrays_compare_sorted() {
        let d = json!({"Mounts": [{"Destination": "/t"}, {"Destination": "/b"}], "Args": [1, 2]});
        let s = json!({"Mounts": [{"Destination": "/b"}, {"Destination": "/t"}], "Args": [2, 1]});
        let allow = [Allow {
            kind: Kind::Unordered,
            pattern: vec!["Mounts".into()],
        }];
        let p = diff(d.clone(), s.clone(), &allow);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().all(|x| x.contains("Args")), "{p:?}");
        assert_eq!(diff(d, s, &[]).len(), 4);
    }

    #[test]
    fn null_vs_empty_array_is_a_type_mismatch() {
        let p = diff(json!({"CapAdd": null}), json!({"CapAdd": []}), &[]);
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("type     CapAdd"), "{p:?}");
    }

    #[test]
    fn missing_keys_are_never_allowed() {
        let allow = [Allow {
            kind: Kind::Value,
            pattern: vec!["**".into()],
        }];
        let p = diff(json!({"A": {"B": 1}}), json!({"A": {}}), &allow);
        assert_eq!(p, vec!["missing  A.B: docker 1"]);
    }

    #[test]
    fn allow_list_patterns() {
        let allow = [Allow {
            kind: Kind::Value,
            pattern: vec!["Networks".into(), "*".into(), "NetworkID".into()],
        }];
        let d = json!({"Networks": {"none": {"NetworkID": "a", "Gateway": "x"}}});
        let s = json!({"Networks": {"none": {"NetworkID": "b", "Gateway": "y"}}});
        assert_eq!(
            diff(d, s, &allow),
            vec!["value    Networks.none.Gateway: docker \"x\", skiff \"y\""]
        );
    }
}
