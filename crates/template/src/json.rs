//! JSON as Go's encoding/json writes it with SetEscapeHTML(false): compact, map keys sorted,
//! floats in Go's notation (`1e+21`, `1e-7`), U+2028/U+2029 escaped.

use serde_json::Value;

use crate::gofmt::{format_float, num, Num};

/// Encodes `v` (None is a nil interface: `null`).
pub fn encode(v: Option<&Value>) -> String {
    let mut out = String::new();
    match v {
        None => out.push_str("null"),
        Some(v) => write_value(&mut out, v),
    }
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match num(n) {
            Num::Int(i) => out.push_str(&i.to_string()),
            Num::Uint(u) => out.push_str(&u.to_string()),
            Num::Float(f) => out.push_str(&float(f)),
        },
        Value::String(s) => write_string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, e);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, e);
            }
            out.push('}');
        }
    }
}

/// A float64 as encoding/json writes it.
fn float(f: f64) -> String {
    let neg = f.is_sign_negative() && f != 0.0;
    let a = f.abs();
    let mut s = if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let mut e = format_float(a, 'e', None);
        // e-07 → e-7, as Go cleans it.
        let n = e.len();
        if n >= 4 && &e[n - 4..n - 2] == "e-" && e.as_bytes()[n - 2] == b'0' {
            e.remove(n - 2);
        }
        e
    } else {
        format_float(a, 'f', None)
    };
    if neg {
        s.insert(0, '-');
    }
    s
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}
