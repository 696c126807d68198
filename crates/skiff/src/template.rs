//! A small subset of Go's text/template, enough for docker's `--format`: literal text, `{{.Field}}`,
//! `{{.A.B}}`, `{{json .}}` / `{{json .Field}}`, `{{.Field | json}}`, `{{upper .F}}`, `{{lower .F}}`,
//! `{{index .Map "key"}}`, `{{println .F}}`, and the `table` prefix with aligned columns and
//! docker's header names.

use serde_json::Value;

/// Errors of template parsing/evaluation.
#[derive(Debug, thiserror::Error)]
#[error("template: {0}")]
pub struct TemplateError(String);

enum Piece {
    Text(String),
    Action(String),
}

fn parse(t: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Piece::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| TemplateError(format!("unclosed action in {t:?}")))?;
        let mut action = after[..end].trim();
        action = action.trim_start_matches('-').trim_end_matches('-').trim();
        out.push(Piece::Action(action.to_string()));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

fn lookup<'a>(v: &'a Value, path: &str) -> Result<&'a Value, TemplateError> {
    if path == "." {
        return Ok(v);
    }
    let p = path
        .strip_prefix('.')
        .ok_or_else(|| TemplateError(format!("unsupported expression {path:?}")))?;
    let mut cur = v;
    for field in p.split('.') {
        cur = match cur.get(field) {
            Some(x) => x,
            None => {
                return Err(TemplateError(format!(
                    "can't evaluate field {field} in type {}",
                    type_name(cur)
                )))
            }
        };
    }
    Ok(cur)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map",
        Value::Array(_) => "slice",
        Value::String(_) => "string",
        _ => "value",
    }
}

/// Formats a value the way Go's `fmt.Print` shows decoded JSON.
pub fn go_format(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_format).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn eval(action: &str, v: &Value) -> Result<String, TemplateError> {
    let mut stages = action.split('|').map(str::trim);
    let first = stages.next().unwrap_or("");
    let words = split_words(first);
    let mut cur: Value = match words.as_slice() {
        [] => return Ok(String::new()),
        [path] => lookup(v, path)?.clone(),
        [f, path] => apply(f, lookup(v, path)?.clone())?,
        [f, path, key] if *f == "index" => {
            let m = lookup(v, path)?;
            let k = key.trim_matches('"');
            match (m, k.parse::<usize>()) {
                (Value::Array(a), Ok(i)) => a.get(i).cloned().unwrap_or(Value::Null),
                _ => m.get(k).cloned().unwrap_or(Value::Null),
            }
        }
        [f, path, sep] if *f == "join" => {
            let m = lookup(v, path)?;
            let sep = sep.trim_matches('"');
            let parts: Vec<String> = m.as_array().into_iter().flatten().map(go_format).collect();
            Value::String(parts.join(sep))
        }
        _ => {
            return Err(TemplateError(format!(
                "unsupported action {{{{{action}}}}}"
            )))
        }
    };
    for f in stages {
        cur = apply(f, cur)?;
    }
    Ok(go_format(&cur))
}

fn split_words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

fn apply(f: &str, v: Value) -> Result<Value, TemplateError> {
    Ok(match f {
        "json" => Value::String(serde_json::to_string(&v).unwrap_or_default()),
        "upper" => Value::String(go_format(&v).to_uppercase()),
        "lower" => Value::String(go_format(&v).to_lowercase()),
        "println" => Value::String(format!("{}\n", go_format(&v))),
        "print" => Value::String(go_format(&v)),
        "title" => Value::String(
            go_format(&v)
                .split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    match c.next() {
                        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                        None => String::new(),
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "len" => Value::from(match &v {
            Value::Array(a) => a.len(),
            Value::Object(m) => m.len(),
            Value::String(s) => s.len(),
            _ => 0,
        }),
        other => return Err(TemplateError(format!("function {other:?} not defined"))),
    })
}

/// A compiled `--format`.
pub struct Template {
    table: bool,
    pieces: Vec<Piece>,
}

fn header_for(action: &str) -> String {
    let field = action
        .split_whitespace()
        .last()
        .unwrap_or("")
        .trim_start_matches('.');
    match field {
        "ID" => "IMAGE ID".into(),
        "CreatedSince" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        "CreatedBy" => "CREATED BY".into(),
        "" => String::new(),
        f => {
            let mut s = String::new();
            for (i, c) in f.chars().enumerate() {
                if i > 0 && c.is_uppercase() {
                    s.push(' ');
                }
                s.extend(c.to_uppercase());
            }
            s
        }
    }
}

impl Template {
    /// Compiles a format string (`table ...` or a plain template). `\t` and `\n` escapes are honoured.
    pub fn new(format: &str) -> Result<Template, TemplateError> {
        let f = format.replace("\\t", "\t").replace("\\n", "\n");
        let (table, body) = match f.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start().to_string()),
            None => (false, f),
        };
        Ok(Template {
            table,
            pieces: parse(&body)?,
        })
    }
    /// True for `table` formats.
    pub fn is_table(&self) -> bool {
        self.table
    }
    /// Renders one value.
    pub fn render(&self, v: &Value) -> Result<String, TemplateError> {
        let mut s = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => s.push_str(t),
                Piece::Action(a) => s.push_str(&eval(a, v)?),
            }
        }
        Ok(s)
    }
    /// The header row of a table format.
    pub fn header(&self) -> String {
        let mut s = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => s.push_str(t),
                Piece::Action(a) => s.push_str(&header_for(a)),
            }
        }
        s
    }
    /// Renders all rows (with the header and column alignment for tables), one line each.
    pub fn render_all(&self, rows: &[Value]) -> Result<String, TemplateError> {
        self.render_all_with(rows, &[])
    }
    /// Like [`Template::render_all`], with header names for fields given by the caller
    /// (`("ID", "CONTAINER ID")`) taking precedence over the defaults.
    pub fn render_all_with(
        &self,
        rows: &[Value],
        headers: &[(&str, &str)],
    ) -> Result<String, TemplateError> {
        let mut lines = Vec::new();
        if self.table && headers.is_empty() {
            lines.push(self.header());
        } else if self.table {
            let mut h = String::new();
            for p in &self.pieces {
                match p {
                    Piece::Text(t) => h.push_str(t),
                    Piece::Action(a) => {
                        let field = a
                            .split_whitespace()
                            .last()
                            .unwrap_or("")
                            .trim_start_matches('.');
                        match headers.iter().find(|(f, _)| *f == field) {
                            Some((_, name)) => h.push_str(name),
                            None => h.push_str(&header_for(a)),
                        }
                    }
                }
            }
            lines.push(h);
        }
        for r in rows {
            lines.push(self.render(r)?);
        }
        let mut out = if self.table {
            tabwrite(&lines)
        } else {
            lines.join("\n")
        };
        if !out.is_empty() {
            out.push('\n');
        }
        Ok(out)
    }
}

/// Aligns tab-separated cells like Go's tabwriter(minwidth 10, padding 3).
pub fn tabwrite(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max((c.chars().count() + 3).max(10));
            }
        }
    }
    rows.iter()
        .map(|r| {
            let mut s = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 < r.len() {
                    s.push_str(&format!("{c:<w$}", w = widths[i]));
                } else {
                    s.push_str(c);
                }
            }
            s.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders() {
        let v = json!({"ID": "abc", "Config": {"Cmd": ["sh", "-c"]}, "Labels": {"a": "b"}});
        assert_eq!(Template::new("{{.ID}}").unwrap().render(&v).unwrap(), "abc");
        assert_eq!(
            Template::new("{{.Config.Cmd}}")
                .unwrap()
                .render(&v)
                .unwrap(),
            "[sh -c]"
        );
        assert_eq!(
            Template::new("{{json .Config.Cmd}}")
                .unwrap()
                .render(&v)
                .unwrap(),
            r#"["sh","-c"]"#
        );
        assert_eq!(
            Template::new("{{index .Labels \"a\"}}")
                .unwrap()
                .render(&v)
                .unwrap(),
            "b"
        );
        assert!(Template::new("{{.Nope}}").unwrap().render(&v).is_err());
        let t = Template::new("table {{.ID}}\\t{{.ID}}").unwrap();
        assert_eq!(
            t.render_all(&[v]).unwrap(),
            "IMAGE ID   IMAGE ID\nabc        abc\n"
        );
    }
}
