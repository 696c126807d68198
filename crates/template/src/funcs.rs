//! The functions templates can call: Go's builtins (and, or, not, len, index, slice, print,
//! printf, println, html, js, urlquery, eq, ne, lt, le, gt, ge, call) and docker's additions
//! (json, split, join, title, lower, upper, pad, truncate), with docker's header variants.

use serde_json::Value;

use crate::exec::{truth, Val};
use crate::gofmt::{self, num, Num};

/// A parameter type, as the Go function declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// `any` / `reflect.Value`.
    Any,
    /// `string`.
    Str,
    /// `int`.
    Int,
    /// `[]string`.
    StrSlice,
}

impl Ty {
    pub fn go_name(self) -> &'static str {
        match self {
            Ty::Any => "interface {}",
            Ty::Str => "string",
            Ty::Int => "int",
            Ty::StrSlice => "[]string",
        }
    }
}

/// An evaluated argument.
pub(crate) enum ArgVal<'a> {
    Any(Val<'a>),
    Str(String),
    Int(i64),
    StrSlice(Vec<String>),
}

impl<'a> ArgVal<'a> {
    fn any(&self) -> Option<&Value> {
        match self {
            ArgVal::Any(v) => v.iface(),
            _ => None,
        }
    }
    fn val(&self) -> Val<'a> {
        match self {
            ArgVal::Any(v) => v.clone(),
            ArgVal::Str(s) => Val::own(Value::String(s.clone())),
            ArgVal::Int(i) => Val::own(Value::from(*i)),
            ArgVal::StrSlice(v) => Val::own(Value::from(v.clone())),
        }
    }
    fn str(&self) -> &str {
        match self {
            ArgVal::Str(s) => s,
            _ => "",
        }
    }
    fn int(&self) -> i64 {
        match self {
            ArgVal::Int(i) => *i,
            _ => 0,
        }
    }
}

/// A function's parameters.
pub(crate) struct Sig {
    pub fixed: &'static [Ty],
    pub variadic: Option<Ty>,
}

const fn fixed(f: &'static [Ty]) -> Sig {
    Sig {
        fixed: f,
        variadic: None,
    }
}

const fn var(f: &'static [Ty], v: Ty) -> Sig {
    Sig {
        fixed: f,
        variadic: Some(v),
    }
}

/// True for every function name a template may use.
pub(crate) fn exists(name: &str) -> bool {
    sig(name, false).is_some()
}

/// The parameters of `name`; `header` selects docker's header variants.
pub(crate) fn sig(name: &str, header: bool) -> Option<Sig> {
    use Ty::*;
    Some(match name {
        "and" | "or" | "eq" | "index" | "slice" | "call" => var(&[Any], Any),
        "not" | "len" => fixed(&[Any]),
        "ne" | "lt" | "le" | "gt" | "ge" => fixed(&[Any, Any]),
        "print" | "println" | "html" | "js" | "urlquery" => var(&[], Any),
        "printf" => var(&[Str], Any),
        "json" if header => fixed(&[Str]),
        "json" => fixed(&[Any]),
        "split" if header => fixed(&[Str, Str]),
        "split" => fixed(&[Str, Str]),
        "join" if header => fixed(&[Str, Str]),
        "join" => fixed(&[StrSlice, Str]),
        "title" | "lower" | "upper" => fixed(&[Str]),
        "pad" => fixed(&[Str, Int, Int]),
        "truncate" => fixed(&[Str, Int]),
        _ => return None,
    })
}

fn s<'a>(v: impl Into<String>) -> Val<'a> {
    Val::own(Value::String(v.into()))
}

/// Calls `name` with evaluated arguments; `callee` names the first argument (for `call`).
pub(crate) fn apply<'a>(
    name: &str,
    header: bool,
    argv: Vec<ArgVal<'a>>,
    callee: &str,
) -> Result<Val<'a>, String> {
    let anys: Vec<Option<&Value>> = argv.iter().map(ArgVal::any).collect();
    if header {
        // docker keeps table headers intact: these print their (string) argument unchanged.
        match name {
            "json" | "split" | "join" | "title" | "lower" | "upper" | "truncate" => {
                return Ok(s(argv[0].str()))
            }
            _ => {}
        }
    }
    Ok(match name {
        "not" => Val::own(Value::Bool(!truth(argv[0].any()))),
        "len" => length(argv[0].val().get())?,
        "index" => index(argv[0].val(), &argv[1..])?,
        "slice" => slice(argv[0].val(), &argv[1..])?,
        "print" => s(gofmt::sprint(&anys)),
        "println" => s(gofmt::sprintln(&anys)),
        "printf" => s(gofmt::sprintf(argv[0].str(), &anys[1..])),
        "html" => s(html(&eval_args(&argv))),
        "js" => s(js(&eval_args(&argv))),
        "urlquery" => s(urlquery(&eval_args(&argv))),
        "eq" => {
            let first = argv[0].val();
            if argv.len() < 2 {
                return Err("missing argument for comparison".into());
            }
            let mut t = false;
            for a in &argv[1..] {
                if eq(first.iface(), a.val().iface())? {
                    t = true;
                    break;
                }
            }
            Val::own(Value::Bool(t))
        }
        "ne" => Val::own(Value::Bool(!eq(
            argv[0].val().iface(),
            argv[1].val().iface(),
        )?)),
        "lt" => Val::own(Value::Bool(lt(argv[0].any(), argv[1].any())?)),
        "le" => Val::own(Value::Bool(
            lt(argv[0].any(), argv[1].any())? || eq(argv[0].any(), argv[1].any())?,
        )),
        "gt" => Val::own(Value::Bool(
            !(lt(argv[0].any(), argv[1].any())? || eq(argv[0].any(), argv[1].any())?),
        )),
        "ge" => Val::own(Value::Bool(!lt(argv[0].any(), argv[1].any())?)),
        "call" => {
            return Err(match argv[0].any() {
                None => "call of nil".into(),
                Some(v) => format!(
                    "non-function {callee} of type {}",
                    gofmt::type_name(Some(v))
                ),
            })
        }
        "json" => s(crate::json::encode(argv[0].any())),
        "split" => {
            let (src, sep) = (argv[0].str(), argv[1].str());
            let parts: Vec<Value> = if sep.is_empty() {
                src.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                src.split(sep).map(|p| Value::String(p.into())).collect()
            };
            Val::own(Value::Array(parts))
        }
        "join" => match &argv[0] {
            ArgVal::StrSlice(v) => s(v.join(argv[1].str())),
            _ => s(""),
        },
        "title" => s(title(argv[0].str())),
        "lower" => s(argv[0].str().to_lowercase()),
        "upper" => s(argv[0].str().to_uppercase()),
        "pad" => {
            let (src, pre, post) = (argv[0].str(), argv[1].int(), argv[2].int());
            if pre < 0 || post < 0 {
                return Err("strings: negative Repeat count".into());
            }
            if src.is_empty() {
                s("")
            } else {
                let (pre, post) = (pre.min(1 << 20) as usize, post.min(1 << 20) as usize);
                s(format!("{}{src}{}", " ".repeat(pre), " ".repeat(post)))
            }
        }
        "truncate" => {
            let (src, n) = (argv[0].str(), argv[1].int());
            if n < 0 {
                return Err(format!("runtime error: slice bounds out of range [:{n}]"));
            }
            let n = n as usize;
            if src.len() < n {
                s(src)
            } else {
                let mut end = n;
                while !src.is_char_boundary(end) {
                    end -= 1;
                }
                s(&src[..end])
            }
        }
        other => return Err(format!("{other} is not a defined function")),
    })
}

fn length<'a>(v: Option<&Value>) -> Result<Val<'a>, String> {
    let n = match v {
        None | Some(Value::Null) => return Err("len of nil pointer".into()),
        Some(Value::String(s)) => s.len(),
        Some(Value::Array(a)) => a.len(),
        Some(Value::Object(m)) => m.len(),
        Some(other) => return Err(format!("len of type {}", gofmt::type_name(Some(other)))),
    };
    Ok(Val::own(Value::from(n)))
}

/// An index argument as Go's indexArg reads it.
fn index_arg(a: &ArgVal<'_>, cap: usize) -> Result<usize, String> {
    let x: i128 = match a.any() {
        None => return Err("cannot index slice/array with nil".into()),
        Some(Value::Number(n)) => match num(n) {
            Num::Int(i) => i as i128,
            Num::Uint(u) => u as i128,
            Num::Float(_) => return Err("cannot index slice/array with type float64".into()),
        },
        Some(other) => {
            return Err(format!(
                "cannot index slice/array with type {}",
                gofmt::type_name(Some(other))
            ))
        }
    };
    if x < 0 || x > cap as i128 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn index<'a>(item: Val<'a>, idx: &[ArgVal<'a>]) -> Result<Val<'a>, String> {
    let mut item = match item.get() {
        None | Some(Value::Null) => return Err("index of untyped nil".into()),
        Some(_) => item,
    };
    for i in idx {
        let next = match item.get() {
            None | Some(Value::Null) => return Err("index of nil pointer".into()),
            Some(Value::Array(a)) => {
                let x = index_arg(i, a.len())?;
                if x >= a.len() {
                    return Err(format!("index out of range: {x}"));
                }
                item.child(|v| v.as_array().and_then(|a| a.get(x)))
            }
            Some(Value::String(s)) => {
                let x = index_arg(i, s.len())?;
                if x >= s.len() {
                    return Err(format!("index out of range: {x}"));
                }
                Some(Val::own(Value::from(s.as_bytes()[x])))
            }
            Some(Value::Object(_)) => {
                let key = match i.any() {
                    Some(Value::String(k)) => k.clone(),
                    None => return Err("value is nil; should be of type string".into()),
                    Some(other) => {
                        return Err(format!(
                            "value has type {}; should be string",
                            gofmt::type_name(Some(other))
                        ))
                    }
                };
                Some(
                    item.child(|v| v.as_object().and_then(|m| m.get(&key)))
                        .unwrap_or(Val::own(Value::Null)),
                )
            }
            Some(other) => {
                return Err(format!(
                    "can't index item of type {}",
                    gofmt::type_name(Some(other))
                ))
            }
        };
        item = next.unwrap_or(Val::Missing);
    }
    Ok(item)
}

fn slice<'a>(item: Val<'a>, idx: &[ArgVal<'a>]) -> Result<Val<'a>, String> {
    let Some(v) = item.iface() else {
        return Err("slice of untyped nil".into());
    };
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let len = match v {
        Value::String(s) => {
            if idx.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::Array(a) => a.len(),
        other => {
            return Err(format!(
                "can't slice item of type {}",
                gofmt::type_name(Some(other))
            ))
        }
    };
    let mut ix = [0, len, len];
    for (k, i) in idx.iter().enumerate() {
        ix[k] = index_arg(i, len)?;
    }
    if ix[0] > ix[1] {
        return Err(format!("invalid slice index: {} > {}", ix[0], ix[1]));
    }
    if idx.len() == 3 && ix[1] > ix[2] {
        return Err(format!("invalid slice index: {} > {}", ix[1], ix[2]));
    }
    Ok(match v {
        Value::String(s) => s_lossy(&s.as_bytes()[ix[0]..ix[1]]),
        Value::Array(a) => Val::own(Value::Array(a[ix[0]..ix[1]].to_vec())),
        _ => Val::Missing,
    })
}

fn s_lossy<'a>(b: &[u8]) -> Val<'a> {
    s(String::from_utf8_lossy(b).into_owned())
}

/// Go's basic kinds for comparisons.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Uint,
    Float,
    Str,
}

fn basic(v: Option<&Value>) -> Result<Kind, String> {
    Ok(match v {
        Some(Value::Bool(_)) => Kind::Bool,
        Some(Value::Number(n)) => match num(n) {
            Num::Int(_) => Kind::Int,
            Num::Uint(_) => Kind::Uint,
            Num::Float(_) => Kind::Float,
        },
        Some(Value::String(_)) => Kind::Str,
        _ => return Err("invalid type for comparison".into()),
    })
}

fn eq(a: Option<&Value>, b: Option<&Value>) -> Result<bool, String> {
    let (ka, kb) = (basic(a), basic(b));
    match (ka, kb) {
        (Ok(x), Ok(y)) if x != y => match (a.map(num_of), b.map(num_of)) {
            (Some(Some(Num::Int(i))), Some(Some(Num::Uint(u))))
            | (Some(Some(Num::Uint(u))), Some(Some(Num::Int(i)))) => Ok(i >= 0 && i as u64 == u),
            _ => Err("incompatible types for comparison".into()),
        },
        (Ok(_), Ok(_)) => Ok(match (a, b) {
            (Some(Value::Number(x)), Some(Value::Number(y))) => match (num(x), num(y)) {
                (Num::Int(i), Num::Int(j)) => i == j,
                (Num::Uint(i), Num::Uint(j)) => i == j,
                (Num::Float(i), Num::Float(j)) => i == j,
                _ => false,
            },
            (x, y) => x == y,
        }),
        // A missing value compares unequal to any value, equal to another missing one.
        _ if a.is_none() || b.is_none() => Ok(a.is_none() && b.is_none()),
        (Ok(_), Err(_)) | (Err(_), Ok(_)) => Err("incompatible types for comparison".into()),
        _ => {
            let shown = b.or(a);
            Err(format!(
                "non-comparable type {}: {}",
                gofmt::sprint_value(shown),
                gofmt::type_name(shown)
            ))
        }
    }
}

fn num_of(v: &Value) -> Option<Num> {
    v.as_number().map(num)
}

fn lt(a: Option<&Value>, b: Option<&Value>) -> Result<bool, String> {
    let ka = basic(a)?;
    let kb = basic(b)?;
    let (a, b) = (a.unwrap_or(&Value::Null), b.unwrap_or(&Value::Null));
    if ka != kb {
        return match (a.as_number().map(num), b.as_number().map(num)) {
            (Some(Num::Int(i)), Some(Num::Uint(u))) => Ok(i < 0 || (i as u64) < u),
            (Some(Num::Uint(u)), Some(Num::Int(i))) => Ok(i >= 0 && u < i as u64),
            _ => Err("incompatible types for comparison".into()),
        };
    }
    match ka {
        Kind::Bool => Err("invalid type for comparison".into()),
        Kind::Str => Ok(a.as_str() < b.as_str()),
        _ => Ok(match (a.as_number().map(num), b.as_number().map(num)) {
            (Some(Num::Int(i)), Some(Num::Int(j))) => i < j,
            (Some(Num::Uint(i)), Some(Num::Uint(j))) => i < j,
            (Some(Num::Float(i)), Some(Num::Float(j))) => i < j,
            _ => false,
        }),
    }
}

/// The single string argument, or fmt.Sprint of all of them (missing values as `<no value>`).
fn eval_args(argv: &[ArgVal<'_>]) -> String {
    if let [ArgVal::Any(v)] = argv {
        if let Some(Value::String(s)) = v.get() {
            return s.clone();
        }
    }
    let no_value = Value::String("<no value>".into());
    let args: Vec<Option<&Value>> = argv
        .iter()
        .map(|a| match a {
            ArgVal::Any(v) if v.iface().is_none() => Some(&no_value),
            a => a.any(),
        })
        .collect();
    gofmt::sprint(&args)
}

/// template.HTMLEscapeString.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// template.JSEscapeString.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if c.is_ascii() || gofmt::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// url.QueryEscape.
fn urlquery(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// strings.Title: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let is_sep = |c: char| -> bool {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphanumeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        if is_sep(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}
