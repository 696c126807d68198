//! Go's fmt and strconv as templates see them, over JSON values: `%v` printing (`[a b]`,
//! `map[k:v]`, `<nil>`, floats as `%g` with Go's exponent rule), Sprint/Sprintln spacing, Printf
//! verbs and flags with Go's `%!verb(type=value)` complaints, and Go's string quoting.

use serde_json::{Number, Value};

/// Go's type name of a decoded JSON value (None is a nil interface).
pub fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None | Some(Value::Null) => "<nil>",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Number(n)) => match num(n) {
            Num::Int(_) => "int",
            Num::Uint(_) => "uint64",
            Num::Float(_) => "float64",
        },
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "[]interface {}",
        Some(Value::Object(_)) => "map[string]interface {}",
    }
}

/// A JSON number as Go would hold it.
#[derive(Debug, Clone, Copy)]
pub enum Num {
    /// Fits an int.
    Int(i64),
    /// Beyond int64, within uint64.
    Uint(u64),
    /// Has a fraction or exponent.
    Float(f64),
}

/// Classifies a JSON number.
pub fn num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::Int(i)
    } else if let Some(u) = n.as_u64() {
        Num::Uint(u)
    } else {
        Num::Float(n.as_f64().unwrap_or(0.0))
    }
}

/// `%v` of one value, as fmt.Sprint prints it.
pub fn sprint_value(v: Option<&Value>) -> String {
    let mut p = Printer::default();
    p.print_arg(v, 'v');
    p.buf
}

/// fmt.Sprint: operands separated by a space when neither side is a string.
pub fn sprint(args: &[Option<&Value>]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Some(Value::String(_)));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        out.push_str(&sprint_value(*a));
        prev_string = is_string;
    }
    out
}

/// fmt.Sprintln: operands always separated by spaces, then a newline.
pub fn sprintln(args: &[Option<&Value>]) -> String {
    let parts: Vec<String> = args.iter().map(|a| sprint_value(*a)).collect();
    parts.join(" ") + "\n"
}

/// fmt.Sprintf.
pub fn sprintf(format: &str, args: &[Option<&Value>]) -> String {
    let mut p = Printer::default();
    let b = format.as_bytes();
    let end = b.len();
    let mut i = 0;
    let mut arg_num = 0usize;
    let mut reordered = false;
    while i < end {
        let lasti = i;
        while i < end && b[i] != b'%' {
            i += 1;
        }
        if i > lasti {
            p.buf.push_str(&format[lasti..i]);
        }
        if i >= end {
            break;
        }
        i += 1; // the '%'
        p.f = Flags::default();
        // Flags.
        while i < end {
            match b[i] {
                b'#' => p.f.sharp = true,
                b'0' => p.f.zero = !p.f.minus,
                b'+' => p.f.plus = true,
                b'-' => {
                    p.f.minus = true;
                    p.f.zero = false;
                }
                b' ' => p.f.space = true,
                _ => break,
            }
            i += 1;
        }
        // Argument index, width.
        let (n, ni, after_index) = arg_number(arg_num, format, i, args.len());
        if after_index {
            reordered = true;
        }
        arg_num = n;
        i = ni;
        if i < end && b[i] == b'*' {
            i += 1;
            match int_arg(args, arg_num) {
                Some(w) => {
                    p.f.wid = Some(w.unsigned_abs() as usize);
                    if w < 0 {
                        p.f.minus = true;
                        p.f.zero = false;
                    }
                }
                None => p.buf.push_str("%!(BADWIDTH)"),
            }
            if arg_num < args.len() {
                arg_num += 1;
            }
        } else {
            let (w, ni) = parse_num(b, i);
            if ni > i {
                p.f.wid = Some(w);
            }
            i = ni;
        }
        // Precision.
        if i < end && b[i] == b'.' {
            i += 1;
            let (n, ni, ai) = arg_number(arg_num, format, i, args.len());
            if ai {
                reordered = true;
            }
            arg_num = n;
            i = ni;
            if i < end && b[i] == b'*' {
                i += 1;
                match int_arg(args, arg_num) {
                    Some(pr) if pr >= 0 => p.f.prec = Some(pr as usize),
                    Some(_) => p.f.prec = None,
                    None => p.buf.push_str("%!(BADPREC)"),
                }
                if arg_num < args.len() {
                    arg_num += 1;
                }
            } else {
                let (pr, ni) = parse_num(b, i);
                p.f.prec = Some(pr);
                i = ni;
            }
        }
        let (n, ni, ai) = arg_number(arg_num, format, i, args.len());
        if ai {
            reordered = true;
        }
        arg_num = n;
        i = ni;
        if i >= end {
            p.buf.push_str("%!(NOVERB)");
            break;
        }
        let verb = format[i..].chars().next().unwrap_or('?');
        i += verb.len_utf8();
        match verb {
            '%' => p.buf.push('%'),
            _ if arg_num >= args.len() => {
                p.buf.push_str("%!");
                p.buf.push(verb);
                p.buf.push_str("(MISSING)");
            }
            'v' => {
                p.f.sharp_v = p.f.sharp;
                p.f.sharp = false;
                p.f.plus_v = p.f.plus;
                p.f.plus = false;
                p.print_arg(args[arg_num], 'v');
                arg_num += 1;
            }
            _ => {
                p.print_arg(args[arg_num], verb);
                arg_num += 1;
            }
        }
    }
    if !reordered && arg_num < args.len() {
        p.f = Flags::default();
        p.buf.push_str("%!(EXTRA ");
        for (k, a) in args[arg_num..].iter().enumerate() {
            if k > 0 {
                p.buf.push_str(", ");
            }
            match a {
                None | Some(Value::Null) => p.buf.push_str("<nil>"),
                Some(v) => {
                    p.buf.push_str(type_name(Some(v)));
                    p.buf.push('=');
                    p.print_arg(Some(v), 'v');
                }
            }
        }
        p.buf.push(')');
    }
    p.buf
}

fn parse_num(b: &[u8], mut i: usize) -> (usize, usize) {
    let mut n = 0usize;
    while i < b.len() && b[i].is_ascii_digit() {
        n = n.saturating_mul(10).saturating_add((b[i] - b'0') as usize);
        if n > 1_000_000 {
            // Go rejects absurd widths; keep the output bounded.
            n = 1_000_000;
        }
        i += 1;
    }
    (n, i)
}

/// An explicit `[n]` argument index, as Go's argNumber reads it.
fn arg_number(arg_num: usize, format: &str, i: usize, nargs: usize) -> (usize, usize, bool) {
    let b = format.as_bytes();
    if i >= b.len() || b[i] != b'[' {
        return (arg_num, i, false);
    }
    for j in i + 1..b.len() {
        if b[j] == b']' {
            let (n, ni) = parse_num(b, i + 1);
            if ni != j || n == 0 || n > nargs {
                return (arg_num, j + 1, false);
            }
            return (n - 1, j + 1, true);
        }
    }
    (arg_num, i, false)
}

fn int_arg(args: &[Option<&Value>], n: usize) -> Option<i64> {
    match args.get(n) {
        Some(Some(Value::Number(x))) => match num(x) {
            Num::Int(i) => Some(i),
            Num::Uint(u) => i64::try_from(u).ok(),
            Num::Float(_) => None,
        },
        _ => None,
    }
}

#[derive(Default, Clone, Copy)]
struct Flags {
    sharp: bool,
    zero: bool,
    plus: bool,
    minus: bool,
    space: bool,
    sharp_v: bool,
    plus_v: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

#[derive(Default)]
struct Printer {
    buf: String,
    f: Flags,
}

impl Printer {
    fn write_padding(&mut self, n: usize) {
        let c = if self.f.zero { '0' } else { ' ' };
        self.buf.extend(std::iter::repeat_n(c, n));
    }

    /// Pads `s` to the width (in runes), left or right.
    fn pad(&mut self, s: &str) {
        let Some(w) = self.f.wid else {
            self.buf.push_str(s);
            return;
        };
        let n = s.chars().count();
        if n >= w {
            self.buf.push_str(s);
            return;
        }
        if self.f.minus {
            self.buf.push_str(s);
            self.buf.extend(std::iter::repeat_n(' ', w - n));
        } else {
            self.write_padding(w - n);
            self.buf.push_str(s);
        }
    }

    fn bad_verb(&mut self, v: Option<&Value>, verb: char) {
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        match v {
            None | Some(Value::Null) => self.buf.push_str("<nil>"),
            Some(x) => {
                self.buf.push_str(type_name(Some(x)));
                self.buf.push('=');
                self.print_value(x, 'v', 0);
            }
        }
        self.buf.push(')');
    }

    fn print_arg(&mut self, v: Option<&Value>, verb: char) {
        match v {
            None | Some(Value::Null) => match verb {
                'T' | 'v' => self.pad("<nil>"),
                _ => self.bad_verb(None, verb),
            },
            Some(x) => {
                if verb == 'T' {
                    self.pad(type_name(Some(x)));
                    return;
                }
                self.print_value(x, verb, 0);
            }
        }
    }

    fn print_value(&mut self, v: &Value, verb: char, depth: usize) {
        match v {
            Value::Null => {
                if depth == 0 {
                    self.print_arg(None, verb);
                } else if self.f.sharp_v {
                    self.buf.push_str("interface {}(nil)");
                } else {
                    self.buf.push_str("<nil>");
                }
            }
            Value::Bool(b) => match verb {
                't' | 'v' => self.pad(if *b { "true" } else { "false" }),
                _ => self.bad_verb(Some(v), verb),
            },
            Value::Number(n) => match num(n) {
                Num::Int(i) => self.fmt_integer(i < 0, i.unsigned_abs(), verb, v),
                Num::Uint(u) => self.fmt_integer(false, u, verb, v),
                Num::Float(x) => self.fmt_float_verb(x, verb, v),
            },
            Value::String(s) => self.fmt_string(s, verb, v),
            Value::Array(a) => {
                if self.f.sharp_v {
                    self.buf.push_str("[]interface {}{");
                    for (i, e) in a.iter().enumerate() {
                        if i > 0 {
                            self.buf.push_str(", ");
                        }
                        self.print_value(e, verb, depth + 1);
                    }
                    self.buf.push('}');
                } else {
                    self.buf.push('[');
                    for (i, e) in a.iter().enumerate() {
                        if i > 0 {
                            self.buf.push(' ');
                        }
                        self.print_value(e, verb, depth + 1);
                    }
                    self.buf.push(']');
                }
            }
            Value::Object(m) => {
                if self.f.sharp_v {
                    self.buf.push_str("map[string]interface {}{");
                } else {
                    self.buf.push_str("map[");
                }
                for (i, (k, e)) in m.iter().enumerate() {
                    if i > 0 {
                        self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
                    }
                    self.fmt_string(k, verb, &Value::String(k.clone()));
                    self.buf.push(':');
                    self.print_value(e, verb, depth + 1);
                }
                self.buf.push(if self.f.sharp_v { '}' } else { ']' });
            }
        }
    }

    fn fmt_string(&mut self, s: &str, verb: char, v: &Value) {
        let s = match self.f.prec {
            Some(p) if matches!(verb, 's' | 'q' | 'v' | 'x' | 'X') => {
                if matches!(verb, 'x' | 'X') {
                    let end = p.min(s.len());
                    let mut end = end;
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    &s[..end]
                } else {
                    match s.char_indices().nth(p) {
                        Some((i, _)) => &s[..i],
                        None => s,
                    }
                }
            }
            _ => s,
        };
        match verb {
            'v' if self.f.sharp_v => {
                let q = quote(s, false);
                self.pad(&q);
            }
            'v' | 's' => self.pad(s),
            'x' | 'X' => {
                let digits = if verb == 'x' {
                    b"0123456789abcdef"
                } else {
                    b"0123456789ABCDEF"
                };
                let mut out = String::new();
                for (i, byte) in s.bytes().enumerate() {
                    if self.f.space && i > 0 {
                        out.push(' ');
                    }
                    if self.f.sharp && (self.f.space || i == 0) {
                        out.push_str(if verb == 'x' { "0x" } else { "0X" });
                    }
                    out.push(digits[(byte >> 4) as usize] as char);
                    out.push(digits[(byte & 15) as usize] as char);
                }
                self.pad(&out);
            }
            'q' => {
                let q = if self.f.sharp && can_backquote(s) {
                    format!("`{s}`")
                } else {
                    quote(s, self.f.plus)
                };
                self.pad(&q);
            }
            _ => self.bad_verb(Some(v), verb),
        }
    }

    fn fmt_integer(&mut self, neg: bool, u: u64, verb: char, v: &Value) {
        let (base, upper) = match verb {
            'v' | 'd' => (10, false),
            'b' => (2, false),
            'o' | 'O' => (8, false),
            'x' => (16, false),
            'X' => (16, true),
            'c' => {
                let c = char::from_u32(u as u32)
                    .filter(|_| !neg && u <= 0x10FFFF)
                    .unwrap_or('\u{FFFD}');
                self.pad(&c.to_string());
                return;
            }
            'q' => {
                let c = char::from_u32(u as u32)
                    .filter(|_| !neg && u <= 0x10FFFF)
                    .unwrap_or('\u{FFFD}');
                let q = quote_rune(c, self.f.plus);
                self.pad(&q);
                return;
            }
            'U' => {
                let mut s = format!("U+{u:04X}");
                if self.f.sharp {
                    if let Some(c) = char::from_u32(u as u32).filter(|c| is_print(*c)) {
                        s.push_str(&format!(" '{c}'"));
                    }
                }
                self.pad(&s);
                return;
            }
            _ => {
                self.bad_verb(Some(v), verb);
                return;
            }
        };
        if self.f.sharp_v && verb == 'v' {
            // %#v of an int is its decimal form.
        }
        let mut digits = match base {
            2 => format!("{u:b}"),
            8 => format!("{u:o}"),
            16 if upper => format!("{u:X}"),
            16 => format!("{u:x}"),
            _ => u.to_string(),
        };
        let mut prec = 0usize;
        if let Some(p) = self.f.prec {
            prec = p;
            if p == 0 && u == 0 {
                let z = self.f.zero;
                self.f.zero = false;
                if let Some(w) = self.f.wid {
                    self.write_padding(w);
                }
                self.f.zero = z;
                return;
            }
        } else if self.f.zero && !self.f.minus {
            if let Some(w) = self.f.wid {
                prec = w;
                if neg || self.f.plus || self.f.space {
                    prec = prec.saturating_sub(1);
                }
            }
        }
        if digits.len() < prec {
            digits = "0".repeat(prec - digits.len()) + &digits;
        }
        let mut prefix = String::new();
        if self.f.sharp {
            match base {
                2 => prefix.push_str("0b"),
                8 if !digits.starts_with('0') => prefix.push('0'),
                16 => prefix.push_str(if upper { "0X" } else { "0x" }),
                _ => {}
            }
        }
        if verb == 'O' {
            prefix = "0o".into();
        }
        let sign = if neg {
            "-"
        } else if self.f.plus {
            "+"
        } else if self.f.space {
            " "
        } else {
            ""
        };
        let s = format!("{sign}{prefix}{digits}");
        let z = self.f.zero;
        self.f.zero = false;
        self.pad(&s);
        self.f.zero = z;
    }

    fn fmt_float_verb(&mut self, x: f64, verb: char, v: &Value) {
        let (fmtc, default_prec): (char, Option<usize>) = match verb {
            'v' | 'g' => ('g', None),
            'G' => ('G', None),
            'e' => ('e', Some(6)),
            'E' => ('E', Some(6)),
            'f' | 'F' => ('f', Some(6)),
            _ => {
                self.bad_verb(Some(v), verb);
                return;
            }
        };
        let prec = self.f.prec.or(default_prec);
        let body = format_float(x.abs(), fmtc, prec);
        let mut num = String::new();
        if x.is_sign_negative() && !x.is_nan() {
            num.push('-');
        } else if self.f.plus {
            num.push('+');
        } else if self.f.space {
            num.push(' ');
        }
        if x.is_infinite() || x.is_nan() {
            let z = self.f.zero;
            self.f.zero = false;
            let s = if x.is_nan() {
                if self.f.plus {
                    "+NaN".to_string()
                } else if self.f.space {
                    " NaN".to_string()
                } else {
                    "NaN".to_string()
                }
            } else {
                let sign = if x < 0.0 {
                    "-"
                } else if self.f.space && !self.f.plus {
                    " "
                } else {
                    "+"
                };
                format!("{sign}Inf")
            };
            self.pad(&s);
            self.f.zero = z;
            return;
        }
        let mut body = body;
        if self.f.sharp && !body.contains('.') {
            // %#g and friends always show a decimal point.
            match body.find(['e', 'E']) {
                Some(e) => body.insert(e, '.'),
                None => body.push('.'),
            }
        }
        if !num.is_empty() {
            if let (true, Some(w)) = (self.f.zero, self.f.wid) {
                let total = num.chars().count() + body.len();
                if w > total {
                    self.buf.push_str(&num);
                    self.write_padding(w - total);
                    self.buf.push_str(&body);
                    return;
                }
            }
            num.push_str(&body);
            self.pad(&num);
        } else {
            self.pad(&body);
        }
    }
}

/// Decimal digits (no leading/trailing zeros) and the decimal exponent `dp` (value =
/// 0.d1d2... × 10^dp) of a non-negative finite float; `sig` rounds to that many significant
/// digits, None gives the shortest digits that read back exactly.
fn digits(x: f64, sig: Option<usize>) -> (String, i32) {
    if x == 0.0 {
        return ("0".into(), 1);
    }
    let s = match sig {
        None => format!("{x:e}"),
        Some(n) => format!("{:.*e}", n.max(1) - 1, x),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let d: String = mant.chars().filter(char::is_ascii_digit).collect();
    let d = d.trim_end_matches('0').to_string();
    (d, exp + 1)
}

fn exp_suffix(e: i32, upper: bool) -> String {
    let sign = if e < 0 { '-' } else { '+' };
    let a = e.unsigned_abs();
    format!(
        "{}{sign}{}{a}",
        if upper { 'E' } else { 'e' },
        if a < 10 { "0" } else { "" }
    )
}

/// `%e` from digits: d.ddd e±XX with `prec` fraction digits (None: as many as the digits).
fn fmt_e(d: &str, dp: i32, prec: Option<usize>, upper: bool) -> String {
    let d = if d.is_empty() { "0" } else { d };
    let exp = if d == "0" { 0 } else { dp - 1 };
    let mut s = String::new();
    s.push_str(&d[..1]);
    let frac = &d[1..];
    let p = prec.unwrap_or(frac.len());
    if p > 0 {
        s.push('.');
        s.push_str(&frac[..frac.len().min(p)]);
        s.extend(std::iter::repeat_n('0', p.saturating_sub(frac.len())));
    }
    s + &exp_suffix(exp, upper)
}

/// `%f` from digits with `prec` fraction digits.
fn fmt_f(d: &str, dp: i32, prec: usize) -> String {
    let mut s = String::new();
    if dp <= 0 {
        s.push('0');
    } else {
        for i in 0..dp as usize {
            s.push(d.as_bytes().get(i).map_or('0', |&b| b as char));
        }
    }
    if prec > 0 {
        s.push('.');
        for i in 0..prec {
            let idx = dp + i as i32;
            let c = if idx < 0 {
                '0'
            } else {
                d.as_bytes().get(idx as usize).map_or('0', |&b| b as char)
            };
            s.push(c);
        }
    }
    s
}

/// strconv.FormatFloat(x, fmt, prec, 64) for non-negative finite x; `fmt` is one of e E f g G.
pub fn format_float(x: f64, fmt: char, prec: Option<usize>) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else {
            "+Inf".into()
        };
    }
    match fmt {
        'e' | 'E' => {
            let (d, dp) = match prec {
                None => digits(x, None),
                Some(p) => digits(x, Some(p + 1)),
            };
            fmt_e(&d, dp, prec, fmt == 'E')
        }
        'f' => match prec {
            Some(p) => format!("{x:.p$}"),
            None => {
                let (d, dp) = digits(x, None);
                fmt_f(&d, dp, (d.len() as i32 - dp).max(0) as usize)
            }
        },
        _ => {
            let upper = fmt == 'G';
            let shortest = prec.is_none();
            let (d, dp) = match prec {
                None => digits(x, None),
                Some(p) => digits(x, Some(p.max(1))),
            };
            let nd = d.len().max(1) as i32;
            let mut eprec = match prec {
                None => 6,
                Some(p) => p.max(1) as i32,
            };
            if !shortest && eprec > nd && nd >= dp {
                eprec = nd;
            }
            let exp = if d.is_empty() { 0 } else { dp - 1 };
            if exp < -4 || exp >= eprec {
                fmt_e(&d, dp, Some((nd - 1) as usize), upper)
            } else {
                fmt_f(&d, dp, (nd - dp).max(0) as usize)
            }
        }
    }
}

/// An approximation of Go's unicode.IsPrint.
pub fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0xAD | 0xFFFD..=0xFFFF | 0xE000..=0xF8FF | 0x2028 | 0x2029)
        || ('\u{200B}'..='\u{200F}').contains(&c)
        || ('\u{2060}'..='\u{206F}').contains(&c)
        || c == '\u{FEFF}')
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control()))
}

fn push_escaped(out: &mut String, c: char, q: char, ascii: bool) {
    if c == q || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if (ascii && c.is_ascii() && is_print(c)) || (!ascii && is_print(c)) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// strconv.Quote (or QuoteToASCII when `ascii`).
pub fn quote(s: &str, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"', ascii);
    }
    out.push('"');
    out
}

/// strconv.QuoteRune (or QuoteRuneToASCII).
pub fn quote_rune(c: char, ascii: bool) -> String {
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'', ascii);
    out.push('\'');
    out
}

/// Go's `%#U`-style name of a character, used in lexer errors: `U+0023 '#'`.
pub fn sharp_u(c: char) -> String {
    if is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

/// Reads one escape (after the backslash) from `chars`; `q` is the enclosing quote.
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, q: char) -> Option<char> {
    let c = chars.next()?;
    Some(match c {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        '\\' => '\\',
        c if c == q => c,
        'x' | 'u' | 'U' => {
            let n = match c {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let mut v = 0u32;
            for _ in 0..n {
                v = v * 16 + chars.next()?.to_digit(16)?;
            }
            if c == 'x' {
                // A byte: only ASCII makes a whole character here.
                if v > 0x7f {
                    return None;
                }
            }
            char::from_u32(v)?
        }
        '0'..='7' => {
            let mut v = c.to_digit(8)?;
            for _ in 0..2 {
                v = v * 8 + chars.next()?.to_digit(8)?;
            }
            if v > 0x7f {
                return None;
            }
            char::from_u32(v)?
        }
        _ => return None,
    })
}

/// strconv.Unquote for "..." and `...` literals.
pub fn unquote(lit: &str) -> Option<String> {
    if let Some(body) = lit.strip_prefix('`').and_then(|s| s.strip_suffix('`')) {
        if body.contains('`') {
            return None;
        }
        return Some(body.replace('\r', ""));
    }
    let body = lit.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(unescape(&mut chars, '"')?),
            '"' | '\n' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// The value of a character constant such as `'a'` or `'\n'`.
pub fn unquote_char(lit: &str) -> Option<char> {
    let body = lit.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut chars = body.chars().peekable();
    let c = match chars.next()? {
        '\\' => unescape(&mut chars, '\'')?,
        '\'' => return None,
        c => c,
    };
    if chars.next().is_some() {
        return None;
    }
    Some(c)
}
