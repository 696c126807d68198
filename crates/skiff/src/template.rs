//! docker's `--format` on top of Go's templates (crate skiff-template): the `table` directive
//! (headers rendered by running the template over the command's header names with docker's
//! header functions, columns aligned by Go's tabwriter with minwidth 10, padding 3), `json` as
//! `{{json .}}`, and the `\t` / `\n` escapes docker expands.

use serde_json::Value;
use skiff_template::Options;

/// Errors of template parsing/evaluation, worded as docker words them.
#[derive(Debug, thiserror::Error)]
#[error("template parsing error: {0}")]
pub struct TemplateError(skiff_template::Error);

/// Formats a value the way Go's `fmt.Print` shows decoded JSON.
pub fn go_format(v: &Value) -> String {
    skiff_template::sprint(v)
}

/// A compiled `--format`.
pub struct Template {
    table: bool,
    tmpl: skiff_template::Template,
    root_type: Option<&'static str>,
    missing_key_error: bool,
}

impl Template {
    /// Compiles a format as docker's formatter does: `table ...` or a plain template, `json`
    /// meaning `{{json .}}`; surrounding spaces trimmed and `\t` / `\n` escapes honoured.
    pub fn new(format: &str) -> Result<Template, TemplateError> {
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) => (true, rest),
            None if format == "json" => (false, "{{json .}}"),
            None => (false, format),
        };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let tmpl = skiff_template::Template::parse(&body).map_err(TemplateError)?;
        Ok(Template {
            table,
            tmpl,
            root_type: None,
            missing_key_error: false,
        })
    }

    /// The command's format: the user's, or `default` when none (or just `table`) was given.
    pub fn or_default(format: Option<&str>, default: &str) -> Result<Template, TemplateError> {
        match format {
            None | Some("") | Some("table") => Template::new(default),
            Some(f) => Template::new(f),
        }
    }

    /// Declares the rows as docker's Go struct `name` (list contexts, version, info): a field
    /// they lack is an error rather than `<no value>`.
    pub fn typed(mut self, name: &'static str) -> Template {
        self.root_type = Some(name);
        self
    }

    /// `inspect`'s mode: the data is the object's JSON as a map, and a key it lacks is an error
    /// (`map has no entry for key "X"`), as docker 28's `inspect -f` reports it.
    pub fn inspect(mut self) -> Template {
        self.missing_key_error = true;
        self
    }

    fn opts(&self) -> Options {
        Options {
            root_type: self.root_type,
            missing_key_error: self.missing_key_error,
            ..Options::default()
        }
    }

    /// Renders one value (without a trailing newline).
    pub fn render(&self, v: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        self.tmpl
            .execute_into(&mut out, v, self.opts())
            .map_err(TemplateError)?;
        Ok(out)
    }

    /// The header row of a table: the template run over `headers` (field name → column name)
    /// with docker's header functions; as in docker, an error just ends the row early.
    pub fn header(&self, headers: &Value) -> String {
        let mut out = String::new();
        let opts = Options {
            header: true,
            ..Options::default()
        };
        let _ = self.tmpl.execute_into(&mut out, headers, opts);
        out
    }

    /// Renders every row, one per line; tables get their header row and aligned columns.
    pub fn render_all(&self, rows: &[Value], headers: &Value) -> Result<String, TemplateError> {
        let mut buf = String::new();
        for r in rows {
            self.tmpl
                .execute_into(&mut buf, r, self.opts())
                .map_err(TemplateError)?;
            buf.push('\n');
        }
        if !self.table {
            return Ok(buf);
        }
        let mut text = self.header(headers);
        text.push('\n');
        text.push_str(&buf);
        Ok(tabwrite(&text))
    }
}

/// Header names from `(field, header)` pairs.
pub fn headers(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

/// Columns past this many in one line are left as text (bounds the column recursion).
const MAX_COLUMNS: usize = 1000;

struct TabWriter<'a> {
    lines: Vec<Vec<&'a str>>,
    widths: Vec<usize>,
    out: String,
}

impl<'a> TabWriter<'a> {
    fn write_lines(&mut self, line0: usize, line1: usize) {
        for i in line0..line1 {
            for (j, cell) in self.lines[i].iter().enumerate() {
                self.out.push_str(cell);
                if j < self.widths.len() {
                    let w = cell.chars().count();
                    self.out
                        .extend(std::iter::repeat_n(' ', self.widths[j].saturating_sub(w)));
                }
            }
            if i + 1 < self.lines.len() {
                self.out.push('\n');
            }
        }
    }

    /// Go's tabwriter.format: a column's width is set per block of consecutive lines that have
    /// a tab-terminated cell in that column.
    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(line0, this);
            line0 = this;
            let mut width = 10; // minwidth
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                width = width.max(line[column].chars().count() + 3); // padding
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }
}

/// Aligns tab-terminated cells like docker's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
pub fn tabwrite(text: &str) -> String {
    let lines = text
        .split(['\n', '\x0c'])
        .map(|l| l.splitn(MAX_COLUMNS + 1, ['\t', '\x0b']).collect())
        .collect();
    let mut tw = TabWriter {
        lines,
        widths: Vec::new(),
        out: String::with_capacity(text.len() + 64),
    };
    let n = tw.lines.len();
    tw.format(0, n);
    tw.out
}

/// Aligns already-built rows (tab-separated cells, one row each) and joins them with newlines.
pub fn tabwrite_rows(rows: &[String]) -> String {
    tabwrite(&rows.join("\n"))
}

/// Prints `inspect`'s objects as docker 28 does and returns the exit code: pretty JSON (four-space
/// indent) without `--format`, the compact array with `--format json`, else the template per
/// object (exit 64 when it does not parse; an object whose template fails is reported on stderr as
/// it is, the others still print); then `Error: <missing>` per object not found. Exit 1 when
/// anything failed.
/// What an inspect template runs on: the JSON with the keys docker's JSON omits when empty
/// put back where docker's CLI sees them. It executes the template on its typed structs first,
/// where `{{.Name}}` of a bind in `Mounts` or `{{.IPRange}}` of an `IPAM.Config` entry without
/// one is "", not a missing key (a nil pointer, `.State.Health` unset, still fails as in docker).
pub fn typed_view(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Value};
    let mut v = v.clone();
    let fill = |items: Option<&mut Value>, keys: &[(&str, Value)]| {
        for o in items
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            for (k, d) in keys {
                o.entry(*k).or_insert_with(|| d.clone());
            }
        }
    };
    fill(
        v.get_mut("Mounts"),
        &[("Name", json!("")), ("Driver", json!(""))],
    );
    fill(
        v.get_mut("IPAM").and_then(|i| i.get_mut("Config")),
        &[
            ("Subnet", json!("")),
            ("IPRange", json!("")),
            ("Gateway", json!("")),
            ("AuxAddress", json!({})),
        ],
    );
    v
}

pub fn print_inspect(
    values: &[serde_json::Value],
    format: Option<&str>,
    missing: &[String],
) -> anyhow::Result<i32> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut failed = Vec::new();
    match format {
        // docker 28: `--format json` prints the array compactly on one line.
        Some("json") => writeln!(
            out,
            "{}",
            skiff_template::to_json(&serde_json::Value::from(values.to_vec()))
        )?,
        Some(f) => {
            let t = match Template::new(f).map(Template::inspect) {
                Ok(t) => t,
                Err(e) => {
                    drop(out);
                    eprintln!("skiff: {e}");
                    return Ok(64);
                }
            };
            let mut printed = false;
            for v in values {
                match t.render(&typed_view(v)) {
                    Ok(s) => {
                        writeln!(out, "{s}")?;
                        printed = true;
                    }
                    // docker prints a template's failure as it is, without "Error: ".
                    Err(e) => failed.push(e.to_string()),
                }
            }
            if !printed {
                writeln!(out)?;
            }
        }
        None => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(values, &mut ser)?;
            out.write_all(&buf)?;
            writeln!(out)?;
        }
    }
    drop(out);
    for e in &failed {
        eprintln!("{e}");
    }
    if !missing.is_empty() {
        eprintln!("Error: {}", missing.join("\nError: "));
    }
    Ok(if missing.is_empty() && failed.is_empty() {
        0
    } else {
        1
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_and_plain_formats() {
        let v = json!({"ID": "abc", "Names": "web", "Labels": "", "Size": "1B"});
        let h = headers(&[("ID", "CONTAINER ID"), ("Names", "NAMES"), ("Size", "SIZE")]);
        let t = Template::new("table {{.ID}}\\t{{.Names}}").unwrap();
        assert_eq!(
            t.render_all(std::slice::from_ref(&v), &h).unwrap(),
            "CONTAINER ID   NAMES\nabc            web\n"
        );
        // Short columns are at least 10 wide; empty rows still print the header.
        let t = Template::new("table {{.Names}}\t{{.Size}}").unwrap();
        assert_eq!(t.render_all(&[], &h).unwrap(), "NAMES     SIZE\n");
        assert_eq!(
            t.render_all(std::slice::from_ref(&v), &h).unwrap(),
            "NAMES     SIZE\nweb       1B\n"
        );
        // Header functions leave names alone; `pad` pads them as it pads the cells.
        let t = Template::new("table {{upper .Names}}\t{{json .ID}}").unwrap();
        assert_eq!(
            t.render_all(std::slice::from_ref(&v), &h).unwrap(),
            "NAMES     CONTAINER ID\nWEB       \"abc\"\n"
        );
        // Plain and json formats: one line per row, no header.
        let t = Template::new("{{.ID}}: {{.Names}}").unwrap();
        assert_eq!(
            t.render_all(&[v.clone(), v.clone()], &h).unwrap(),
            "abc: web\nabc: web\n"
        );
        let t = Template::new("json").unwrap();
        assert_eq!(
            t.render_all(std::slice::from_ref(&v), &h).unwrap(),
            "{\"ID\":\"abc\",\"Labels\":\"\",\"Names\":\"web\",\"Size\":\"1B\"}\n"
        );
        assert!(Template::new("{{.ID").is_err());
        let e = Template::new("{{.ID.X}}").unwrap().render(&v).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("template parsing error: template: :1:2: executing"));
    }

    #[test]
    fn tabwriter_blocks_like_go() {
        // Column widths are per block of consecutive lines having that column.
        let s = tabwrite("aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n");
        assert_eq!(
            s,
            "aaaa      bbb       d\naa        b         dd\na         \naa        cccc      eee\n"
        );
        // Text without tabs passes through; a trailing partial line has no newline added.
        assert_eq!(tabwrite("plain\nx"), "plain\nx");
        // Hostile column counts do not recurse without bound.
        let many = "\t".repeat(100_000);
        assert!(tabwrite(&many).len() >= 10 * MAX_COLUMNS);
    }
}
