//! Variable expansion and quote removal in Dockerfile words, as BuildKit's `shell.Lex` does it:
//! `$V`, `${V}`, `${V:-x}`, `${V-x}`, `${V:+x}`, `${V+x}`, `${V:?msg}`, `${V?msg}`, `${V#pat}`,
//! `${V##pat}`, `${V%pat}`, `${V%%pat}`, `${V/pat/repl}`, `${V//pat/repl}`; single quotes are
//! literal, double quotes expand, the escape character (`\` or the `escape` directive's) quotes
//! the next character.

use crate::glob;

/// Why a word could not be expanded (the message BuildKit gives).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExpandError(pub String);

/// The expander: escape character plus the variables in scope.
pub struct Lexer<'a> {
    /// The escape character (`\` unless the `escape` directive says otherwise).
    pub escape: char,
    /// Looks a variable up.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

struct Cur<'s> {
    s: &'s [char],
    i: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.i += 1;
        }
        c
    }
}

impl Lexer<'_> {
    /// Expands one word: variables substituted, quotes and escapes removed.
    pub fn word(&self, word: &str) -> Result<String, ExpandError> {
        let chars: Vec<char> = word.chars().collect();
        let mut c = Cur { s: &chars, i: 0 };
        let mut out = Vec::new();
        self.run(&mut c, &[], &mut Words::one(&mut out))?;
        Ok(out.concat())
    }

    /// Expands and splits into words at unquoted whitespace (also whitespace that an unquoted
    /// variable's value brings).
    pub fn words(&self, word: &str) -> Result<Vec<String>, ExpandError> {
        let chars: Vec<char> = word.chars().collect();
        let mut c = Cur { s: &chars, i: 0 };
        let mut out = Vec::new();
        let mut w = Words {
            out: &mut out,
            cur: String::new(),
            started: false,
            split: true,
        };
        self.run(&mut c, &[], &mut w)?;
        w.flush();
        Ok(out)
    }

    fn run(&self, c: &mut Cur<'_>, stop: &[char], w: &mut Words<'_>) -> Result<(), ExpandError> {
        while let Some(ch) = c.peek() {
            if stop.contains(&ch) {
                return Ok(());
            }
            c.next();
            match ch {
                '\'' => {
                    w.start();
                    loop {
                        match c.next() {
                            Some('\'') => break,
                            Some(x) => w.push(x),
                            None => return Err(ExpandError("unexpected end of statement while looking for matching single-quote".into())),
                        }
                    }
                }
                '"' => {
                    w.start();
                    loop {
                        match c.next() {
                            Some('"') => break,
                            Some('$') => {
                                let v = self.dollar(c)?;
                                w.push_str(&v);
                            }
                            Some(x) if x == self.escape => match c.peek() {
                                Some(n) if n == '"' || n == '$' || n == self.escape => {
                                    c.next();
                                    w.push(n);
                                }
                                _ => w.push(x),
                            },
                            Some(x) => w.push(x),
                            None => return Err(ExpandError("unexpected end of statement while looking for matching double-quote".into())),
                        }
                    }
                }
                '$' => {
                    let v = self.dollar(c)?;
                    w.push_split(&v);
                }
                x if x == self.escape => match c.next() {
                    Some(n) => {
                        w.start();
                        w.push(n);
                    }
                    // A trailing escape stays (BuildKit keeps it).
                    None => w.push(x),
                },
                x if x.is_whitespace() && w.split => w.flush(),
                x => w.push(x),
            }
        }
        Ok(())
    }

    /// Expands a heredoc body (`COPY <<EOF` with an unquoted delimiter): variables only; quotes
    /// are kept and the escape character only protects a `$`.
    pub fn heredoc(&self, body: &str) -> Result<String, ExpandError> {
        let chars: Vec<char> = body.chars().collect();
        let mut c = Cur { s: &chars, i: 0 };
        let mut out = String::new();
        while let Some(ch) = c.next() {
            match ch {
                '$' => out.push_str(&self.dollar(&mut c)?),
                x if x == self.escape && c.peek() == Some('$') => {
                    c.next();
                    out.push('$');
                }
                x => out.push(x),
            }
        }
        Ok(out)
    }

    fn lookup(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// After a `$`: the variable reference, expanded.
    fn dollar(&self, c: &mut Cur<'_>) -> Result<String, ExpandError> {
        match c.peek() {
            Some('{') => {
                c.next();
            }
            Some(x) if x == '_' || x.is_ascii_alphanumeric() => {
                let name = name(c);
                return Ok(self.lookup(&name).unwrap_or_default());
            }
            // `$` followed by anything else is a literal `$`.
            _ => return Ok("$".into()),
        }
        let name = name(c);
        if name.is_empty() {
            return Err(ExpandError(
                "bad substitution: missing variable name".into(),
            ));
        }
        let val = self.lookup(&name);
        let Some(op) = c.next() else {
            return Err(ExpandError(format!(
                "bad substitution: missing '}}' in ${{{name}"
            )));
        };
        if op == '}' {
            return Ok(val.unwrap_or_default());
        }
        let colon = op == ':';
        let op = if colon {
            c.next().ok_or_else(|| {
                ExpandError(format!("bad substitution: missing '}}' in ${{{name}"))
            })?
        } else {
            op
        };
        // The operand, itself expanded, up to the closing brace.
        let operand = |c: &mut Cur<'_>, stop: &[char]| -> Result<String, ExpandError> {
            let mut out = Vec::new();
            self.run(c, stop, &mut Words::one(&mut out))?;
            Ok(out.concat())
        };
        let close = |c: &mut Cur<'_>| -> Result<(), ExpandError> {
            match c.next() {
                Some('}') => Ok(()),
                _ => Err(ExpandError(format!(
                    "bad substitution: missing '}}' in ${{{name}"
                ))),
            }
        };
        let set = if colon {
            val.as_deref().is_some_and(|v| !v.is_empty())
        } else {
            val.is_some()
        };
        match op {
            '-' => {
                let w = operand(c, &['}'])?;
                close(c)?;
                Ok(if set { val.unwrap_or_default() } else { w })
            }
            '+' => {
                let w = operand(c, &['}'])?;
                close(c)?;
                Ok(if set { w } else { String::new() })
            }
            '?' => {
                let w = operand(c, &['}'])?;
                close(c)?;
                if set {
                    Ok(val.unwrap_or_default())
                } else {
                    let msg = if !w.is_empty() {
                        w
                    } else if colon {
                        "is not allowed to be unset or empty".into()
                    } else {
                        "is not allowed to be unset".into()
                    };
                    Err(ExpandError(format!("{name}: {msg}")))
                }
            }
            '#' | '%' if !colon => {
                let longest = c.peek() == Some(op);
                if longest {
                    c.next();
                }
                let pat = operand(c, &['}'])?;
                close(c)?;
                let v = val.unwrap_or_default();
                trim(&v, &pat, op == '#', longest)
            }
            '/' if !colon => {
                let all = c.peek() == Some('/');
                if all {
                    c.next();
                }
                let pat = operand(c, &['/', '}'])?;
                let repl = if c.peek() == Some('/') {
                    c.next();
                    operand(c, &['}'])?
                } else {
                    String::new()
                };
                close(c)?;
                replace(&val.unwrap_or_default(), &pat, &repl, all)
            }
            x => Err(ExpandError(format!(
                "unsupported modifier ({}{x}) in substitution",
                if colon { ":" } else { "" }
            ))),
        }
    }
}

fn name(c: &mut Cur<'_>) -> String {
    let mut n = String::new();
    while let Some(x) = c.peek() {
        if x == '_' || x.is_ascii_alphanumeric() {
            n.push(x);
            c.next();
        } else {
            break;
        }
    }
    n
}

fn pm(pat: &str, s: &str) -> Result<bool, ExpandError> {
    glob::matches(pat, s, None).map_err(|e| ExpandError(e.to_string()))
}

/// `${V#pat}` (prefix) / `${V%pat}` (suffix), shortest or longest match.
fn trim(v: &str, pat: &str, prefix: bool, longest: bool) -> Result<String, ExpandError> {
    let idx: Vec<usize> = v
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(v.len()))
        .collect();
    if prefix {
        let order: Vec<usize> = if longest {
            idx.iter().rev().copied().collect()
        } else {
            idx.clone()
        };
        for i in order {
            if pm(pat, &v[..i])? {
                return Ok(v[i..].to_string());
            }
        }
    } else {
        let order: Vec<usize> = if longest {
            idx.clone()
        } else {
            idx.iter().rev().copied().collect()
        };
        for i in order {
            if pm(pat, &v[i..])? {
                return Ok(v[..i].to_string());
            }
        }
    }
    Ok(v.to_string())
}

/// `${V/pat/repl}` (first, longest match) and `${V//pat/repl}` (all).
fn replace(v: &str, pat: &str, repl: &str, all: bool) -> Result<String, ExpandError> {
    if pat.is_empty() {
        return Ok(v.to_string());
    }
    let idx: Vec<usize> = v
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(v.len()))
        .collect();
    let mut out = String::new();
    let mut k = 0;
    while k < idx.len() {
        let start = idx[k];
        let mut hit = None;
        for j in (k + 1..idx.len()).rev() {
            if pm(pat, &v[start..idx[j]])? {
                hit = Some(j);
                break;
            }
        }
        match hit {
            Some(j) => {
                out.push_str(repl);
                k = j;
                if !all {
                    out.push_str(&v[idx[k]..]);
                    return Ok(out);
                }
            }
            None => {
                if k + 1 < idx.len() {
                    out.push_str(&v[start..idx[k + 1]]);
                }
                k += 1;
            }
        }
    }
    Ok(out)
}

/// Collects output characters into words.
struct Words<'o> {
    out: &'o mut Vec<String>,
    cur: String,
    started: bool,
    split: bool,
}

impl<'o> Words<'o> {
    fn one(out: &'o mut Vec<String>) -> Words<'o> {
        out.push(String::new());
        Words {
            out,
            cur: String::new(),
            started: false,
            split: false,
        }
    }
    fn start(&mut self) {
        self.started = true;
    }
    fn push(&mut self, c: char) {
        self.started = true;
        if self.split {
            self.cur.push(c);
        } else if let Some(l) = self.out.last_mut() {
            l.push(c);
        }
    }
    fn push_str(&mut self, s: &str) {
        for c in s.chars() {
            self.push(c);
        }
    }
    /// An unquoted expansion: whitespace in it separates words (in word-splitting mode).
    fn push_split(&mut self, s: &str) {
        if !self.split {
            return self.push_str(s);
        }
        for c in s.chars() {
            if c.is_whitespace() {
                self.flush();
            } else {
                self.push(c);
            }
        }
    }
    fn flush(&mut self) {
        if self.split && (self.started || !self.cur.is_empty()) {
            self.out.push(std::mem::take(&mut self.cur));
        }
        self.started = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(w: &str) -> Result<String, ExpandError> {
        let env = |k: &str| match k {
            "A" => Some("hello".to_string()),
            "E" => Some(String::new()),
            "P" => Some("/usr/local/bin/app.tar.gz".to_string()),
            "S" => Some("a b".to_string()),
            _ => None,
        };
        Lexer {
            escape: '\\',
            env: &env,
        }
        .word(w)
    }

    #[test]
    fn simple_and_braces() {
        assert_eq!(ex("$A").unwrap(), "hello");
        assert_eq!(ex("${A}x").unwrap(), "hellox");
        assert_eq!(ex("$Ax").unwrap(), "");
        assert_eq!(ex("$U-x").unwrap(), "-x");
        assert_eq!(ex("a$").unwrap(), "a$");
        assert_eq!(ex("$1").unwrap(), "");
    }

    #[test]
    fn defaults_and_alternatives() {
        assert_eq!(ex("${U:-def}").unwrap(), "def");
        assert_eq!(ex("${E:-def}").unwrap(), "def");
        assert_eq!(ex("${E-def}").unwrap(), "");
        assert_eq!(ex("${U-def}").unwrap(), "def");
        assert_eq!(ex("${A:-def}").unwrap(), "hello");
        assert_eq!(ex("${A:+alt}").unwrap(), "alt");
        assert_eq!(ex("${E:+alt}").unwrap(), "");
        assert_eq!(ex("${E+alt}").unwrap(), "alt");
        assert_eq!(ex("${U:-$A}").unwrap(), "hello");
        assert_eq!(ex("${U:-${E:-deep}}").unwrap(), "deep");
    }

    #[test]
    fn required() {
        assert_eq!(ex("${U?must be set}").unwrap_err().0, "U: must be set");
        assert_eq!(
            ex("${U:?}").unwrap_err().0,
            "U: is not allowed to be unset or empty"
        );
        assert!(ex("${E?x}").is_ok());
        assert!(ex("${E:?x}").is_err());
        assert_eq!(ex("${A?x}").unwrap(), "hello");
    }

    #[test]
    fn patterns() {
        assert_eq!(ex("${P#*/}").unwrap(), "usr/local/bin/app.tar.gz");
        assert_eq!(ex("${P##*/}").unwrap(), "app.tar.gz");
        assert_eq!(ex("${P%.*}").unwrap(), "/usr/local/bin/app.tar");
        assert_eq!(ex("${P%%.*}").unwrap(), "/usr/local/bin/app");
        assert_eq!(ex("${A/l/L}").unwrap(), "heLlo");
        assert_eq!(ex("${A//l/L}").unwrap(), "heLLo");
        assert_eq!(ex("${A/l}").unwrap(), "helo");
        assert_eq!(ex("${A/x/y}").unwrap(), "hello");
        assert_eq!(ex("${U#x}").unwrap(), "");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(ex("'$A'").unwrap(), "$A");
        assert_eq!(ex("\"$A\"").unwrap(), "hello");
        assert_eq!(ex("\\$A").unwrap(), "$A");
        assert_eq!(ex("\"a\\\"b\"").unwrap(), "a\"b");
        assert_eq!(ex("\"a\\nb\"").unwrap(), "a\\nb");
        assert_eq!(ex("a\\ b").unwrap(), "a b");
        assert!(ex("'abc").is_err());
        assert!(ex("\"abc").is_err());
    }

    #[test]
    fn bad_substitutions() {
        assert!(ex("${A").is_err());
        assert!(ex("${}").is_err());
        assert!(ex("${A:=x}").is_err());
    }

    #[test]
    fn words_split() {
        let env = |k: &str| (k == "S").then(|| "a b".to_string());
        let l = Lexer {
            escape: '\\',
            env: &env,
        };
        assert_eq!(
            l.words("x $S \"$S\" ''").unwrap(),
            vec!["x", "a", "b", "a b", ""]
        );
    }

    #[test]
    fn heredoc_bodies() {
        let env = |k: &str| (k == "A").then(|| "x".to_string());
        let l = Lexer {
            escape: '\\',
            env: &env,
        };
        assert_eq!(
            l.heredoc("'$A' \"${A}\" \\$A \\n\n").unwrap(),
            "'x' \"x\" $A \\n\n"
        );
    }

    #[test]
    fn backtick_escape() {
        let env = |_: &str| None;
        let l = Lexer {
            escape: '`',
            env: &env,
        };
        assert_eq!(l.word("c:\\dir`$x").unwrap(), "c:\\dir$x");
    }
}
