//! Glob patterns as Go's `filepath.Match` reads them (COPY sources, `.dockerignore`) and as a
//! shell reads them (`${V#pat}` and friends): `*`, `?`, `[...]` classes with ranges and `^`/`!`
//! negation, `\` escapes.

/// A malformed pattern (an unterminated class or a trailing escape).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern {0:?}")]
pub struct BadPattern(pub String);

/// Whether `name` matches `pattern`; with `sep`, `*` and `?` never match that character (Go's
/// `filepath.Match` with `/`), without it they match anything (a shell pattern).
pub fn matches(pattern: &str, name: &str, sep: Option<char>) -> Result<bool, BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    check(&p).map_err(|()| BadPattern(pattern.to_string()))?;
    Ok(m(&p, &n, sep))
}

fn check(p: &[char]) -> Result<(), ()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(());
                }
                i += 2;
            }
            '[' => {
                let (_, end) = class(p, i, '\0').ok_or(())?;
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Parses the class at `p[i] == '['`; returns whether `c` is in it and the index after `]`.
fn class(p: &[char], mut i: usize, c: char) -> Option<(bool, usize)> {
    i += 1;
    let neg = matches!(p.get(i), Some('^') | Some('!'));
    if neg {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            return Some((found != neg, i + 1));
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            ch
        };
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|x| *x != ']') {
            i += 1;
            hi = if p[i] == '\\' {
                i += 1;
                *p.get(i)?
            } else {
                p[i]
            };
            i += 1;
        }
        if lo <= c && c <= hi {
            found = true;
        }
    }
}

fn m(p: &[char], n: &[char], sep: Option<char>) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // Backtracking point for the last `*`: (pattern index after it, name index it resumes at).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && Some(n[ni]) != sep => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() && Some(n[ni]) != sep => {
                    if let Some((true, end)) = class(p, pi, n[ni]) {
                        pi = end;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if ni < n.len() && p.get(pi + 1) == Some(&n[ni]) => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                c if c != '*'
                    && c != '?'
                    && c != '['
                    && c != '\\'
                    && ni < n.len()
                    && n[ni] == c =>
                {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return true;
        }
        // Mismatch: let the last star eat one more character (never a separator).
        match star {
            Some((sp, sn)) if sn < n.len() && Some(n[sn]) != sep => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => return false,
        }
    }
}

/// Whether the pattern has glob metacharacters at all.
pub fn has_meta(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fm(p: &str, n: &str) -> bool {
        matches(p, n, Some('/')).unwrap()
    }

    #[test]
    fn filepath_match() {
        assert!(fm("*.txt", "a.txt"));
        assert!(!fm("*.txt", "dir/a.txt"));
        assert!(fm("dir/*.txt", "dir/a.txt"));
        assert!(fm("a?c", "abc"));
        assert!(!fm("a?c", "a/c"));
        assert!(fm("[a-c]x", "bx"));
        assert!(!fm("[^a-c]x", "bx"));
        assert!(fm("[!a-c]x", "dx"));
        assert!(fm("\\*", "*"));
        assert!(!fm("\\*", "x"));
        assert!(fm("*", ""));
        assert!(fm("a*b*c", "aXXbYYc"));
        assert!(!fm("a*b*c", "aXXbYY"));
        assert!(matches("[", "x", None).is_err());
        assert!(matches("a\\", "a", None).is_err());
    }

    #[test]
    fn shell_match() {
        assert!(matches("*/", "a/b/", None).unwrap());
        assert!(matches("*.tar.*", "x/y.tar.gz", None).unwrap());
    }
}
