//! `.dockerignore` with moby's `patternmatcher` semantics: one pattern a line, `#` comments, a
//! leading `!` makes an exception, patterns are cleaned (`filepath.Clean`) and a leading `/` is
//! dropped, `*` and `?` stop at `/`, `**` spans directories, the last matching pattern wins, and a
//! path is excluded when it or one of its parent directories matches.

use crate::glob::BadPattern;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    Star,
    /// `**` at the end: everything.
    AllRest,
    /// `**/` (or `**` before more pattern): any number of directories, even none.
    Dirs,
    Class(String),
}

/// One compiled pattern.
#[derive(Debug, Clone)]
struct Pattern {
    toks: Vec<Tok>,
    exclusion: bool,
    text: String,
}

/// The patterns of one `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    pats: Vec<Pattern>,
}

/// Go's `filepath.Clean` on a `/` path.
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            x => out.push(x),
        }
    }
    let s = out.join("/");
    match (rooted, s.is_empty()) {
        (true, _) => format!("/{s}"),
        (false, true) => ".".into(),
        (false, false) => s,
    }
}

fn compile(p: &str) -> Result<Vec<Tok>, BadPattern> {
    let c: Vec<char> = p.chars().collect();
    let mut t = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '*' if c.get(i + 1) == Some(&'*') => {
                i += 2;
                if c.get(i) == Some(&'/') {
                    i += 1;
                }
                t.push(if i >= c.len() {
                    Tok::AllRest
                } else {
                    Tok::Dirs
                });
                continue;
            }
            '*' => t.push(Tok::Star),
            '?' => t.push(Tok::Any),
            '[' => {
                let start = i;
                i += 1;
                if matches!(c.get(i), Some('^') | Some('!')) {
                    i += 1;
                }
                if c.get(i) == Some(&']') {
                    i += 1;
                }
                while i < c.len() && c[i] != ']' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= c.len() {
                    return Err(BadPattern(p.to_string()));
                }
                t.push(Tok::Class(c[start..=i].iter().collect()));
            }
            '\\' => {
                i += 1;
                match c.get(i) {
                    Some(x) => t.push(Tok::Lit(*x)),
                    None => return Err(BadPattern(p.to_string())),
                }
            }
            x => t.push(Tok::Lit(x)),
        }
        i += 1;
    }
    Ok(t)
}

fn tmatch(t: &[Tok], s: &[char]) -> bool {
    let Some(first) = t.first() else {
        return s.is_empty();
    };
    match first {
        Tok::Lit(c) => s.first() == Some(c) && tmatch(&t[1..], &s[1..]),
        Tok::Any => s.first().is_some_and(|c| *c != '/') && tmatch(&t[1..], &s[1..]),
        Tok::Class(cls) => {
            let Some(c) = s.first() else { return false };
            *c != '/'
                && crate::glob::matches(cls, &c.to_string(), Some('/')).unwrap_or(false)
                && tmatch(&t[1..], &s[1..])
        }
        Tok::Star => {
            for k in 0..=s.len() {
                if tmatch(&t[1..], &s[k..]) {
                    return true;
                }
                if k < s.len() && s[k] == '/' {
                    break;
                }
            }
            false
        }
        Tok::AllRest => true,
        Tok::Dirs => {
            // `(.*/)?`: nothing, or anything ending in `/`.
            if tmatch(&t[1..], s) {
                return true;
            }
            (0..s.len()).any(|k| s[k] == '/' && tmatch(&t[1..], &s[k + 1..]))
        }
    }
}

impl Matcher {
    /// Parses the contents of a `.dockerignore`.
    pub fn parse(text: &str) -> Result<Matcher, BadPattern> {
        let mut pats = Vec::new();
        for line in text.lines() {
            let mut p = line.trim();
            if p.is_empty() || p.starts_with('#') {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(BadPattern("!".into()));
                }
            }
            let mut p = clean(p);
            if p.len() > 1 && p.starts_with('/') {
                p = p[1..].to_string();
            }
            pats.push(Pattern {
                toks: compile(&p)?,
                exclusion,
                text: p,
            });
        }
        Ok(Matcher { pats })
    }

    /// No patterns at all.
    pub fn is_empty(&self) -> bool {
        self.pats.is_empty()
    }

    /// Whether there are `!` exceptions (then an excluded directory must still be walked).
    pub fn has_exclusions(&self) -> bool {
        self.pats.iter().any(|p| p.exclusion)
    }

    /// Whether an exception pattern could match something below directory `dir`.
    pub fn may_reinclude_below(&self, dir: &str) -> bool {
        self.pats.iter().any(|p| {
            p.exclusion
                && (p.text.contains("**")
                    || p.text.starts_with(&format!("{dir}/"))
                    || p.text.split('/').count() > dir.split('/').count() && {
                        let prefix: Vec<&str> =
                            p.text.split('/').take(dir.split('/').count()).collect();
                        let toks = compile(&prefix.join("/")).unwrap_or_default();
                        tmatch(&toks, &dir.chars().collect::<Vec<_>>())
                    })
        })
    }

    /// moby's `MatchesOrParentMatches`: whether the context path `path` (relative, `/`
    /// separated) is excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let chars: Vec<char> = path.chars().collect();
        let parents: Vec<&str> = path.split('/').collect();
        let mut matched = false;
        for p in &self.pats {
            let mut m = tmatch(&p.toks, &chars);
            if !m && parents.len() > 1 {
                for i in 1..parents.len() {
                    let pp: Vec<char> = parents[..i].join("/").chars().collect();
                    if tmatch(&p.toks, &pp) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(pats: &str, path: &str) -> bool {
        Matcher::parse(pats).unwrap().excluded(path)
    }

    #[test]
    fn basic() {
        assert!(ex("*.md", "README.md"));
        assert!(!ex("*.md", "docs/README.md"));
        assert!(ex("*/*.md", "docs/README.md"));
        assert!(ex("docs", "docs/a/b.txt"));
        assert!(ex("/docs", "docs/a"));
        assert!(ex("./docs/", "docs/a"));
        assert!(!ex("docs", "docsx"));
        assert!(ex("# c\n\n  tmp  ", "tmp"));
        assert!(!ex("# tmp", "tmp"));
    }

    #[test]
    fn double_star() {
        assert!(ex("**/*.go", "a.go"));
        assert!(ex("**/*.go", "x/y/a.go"));
        assert!(ex("a/**/b", "a/b"));
        assert!(ex("a/**/b", "a/x/y/b"));
        assert!(ex("a/**", "a/x/y"));
        assert!(!ex("a/**/b", "c/a/b"));
        assert!(ex("**", "anything/at/all"));
    }

    #[test]
    fn exceptions_last_match_wins() {
        let p = "*.md\n!README.md";
        assert!(ex(p, "CHANGES.md"));
        assert!(!ex(p, "README.md"));
        let p = "!README.md\n*.md";
        assert!(ex(p, "README.md"));
        let p = "docs\n!docs/keep.txt";
        assert!(ex(p, "docs/x"));
        assert!(!ex(p, "docs/keep.txt"));
        let m = Matcher::parse(p).unwrap();
        assert!(m.may_reinclude_below("docs"));
        assert!(!m.may_reinclude_below("other"));
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean("a/../b"), "b");
        assert_eq!(clean("./a//b/"), "a/b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean(""), ".");
        assert!(ex("a/../b", "b/c"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(ex("file[0-9].txt", "file3.txt"));
        assert!(!ex("file[0-9].txt", "filex.txt"));
        assert!(ex("a\\*b", "a*b"));
        assert!(!ex("a\\*b", "axb"));
        assert!(ex("?", "x"));
        assert!(!ex("?", "xy"));
        assert!(Matcher::parse("[").is_err());
    }
}
