//! The Dockerfile parser, with BuildKit's frontend semantics: parser directives (`syntax`,
//! `escape`, `check`), comments, line continuations (with comments and blank lines inside them
//! skipped), every instruction and its flags, JSON (exec) and shell forms, heredocs (`<<EOF`,
//! `<<-EOF` with tab stripping, quoted delimiters that turn expansion off, several per line).
//!
//! Values are kept as written (quotes included) where BuildKit expands them later with the
//! stage's variables ([`crate::expand`]); the executor does that expansion.

use std::fmt;

/// A parse error: file, line and column, the message and the offending source line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The Dockerfile's name as the user gave it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub msg: String,
    /// The source line.
    pub text: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}\n{:>5} | {}\n      | {}^",
            self.file,
            self.line,
            self.col,
            self.msg,
            self.line,
            self.text,
            " ".repeat(self.col.saturating_sub(1))
        )
    }
}

impl std::error::Error for ParseError {}

/// Shell form (a string for the shell) or exec form (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// `CMD echo hi`.
    Shell(String),
    /// `CMD ["echo", "hi"]`.
    Exec(Vec<String>),
}

/// One heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word (quotes removed).
    pub name: String,
    /// The body, each line ending in `\n`.
    pub content: String,
    /// False when the delimiter was quoted (no variable expansion in the body).
    pub expand: bool,
}

/// One COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A path (or glob, URL, git address) as written, to be expanded.
    Path(String),
    /// The instruction's heredoc with this index.
    Heredoc(usize),
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyArgs {
    /// Sources.
    pub srcs: Vec<Source>,
    /// Destination, as written.
    pub dest: String,
    /// `--from`.
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` (repeatable).
    pub excludes: Vec<String>,
    /// `--checksum` (ADD).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD).
    pub keep_git_dir: bool,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", cmd]`.
    pub test: Vec<String>,
    /// `--interval`, as written.
    pub interval: Option<String>,
    /// `--timeout`.
    pub timeout: Option<String>,
    /// `--start-period`.
    pub start_period: Option<String>,
    /// `--start-interval`.
    pub start_interval: Option<String>,
    /// `--retries`.
    pub retries: Option<String>,
}

/// A parsed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `FROM [--platform=p] image [AS name]`.
    From {
        /// Image reference as written.
        image: String,
        /// Stage name.
        name: Option<String>,
        /// `--platform`.
        platform: Option<String>,
    },
    /// `RUN`.
    Run {
        /// The command.
        cmd: Form,
        /// `--mount` values.
        mounts: Vec<String>,
        /// `--network`.
        network: Option<String>,
        /// `--security`.
        security: Option<String>,
    },
    /// `CMD`.
    Cmd(Form),
    /// `ENTRYPOINT`.
    Entrypoint(Form),
    /// `LABEL k=v ...` (raw words).
    Label(Vec<(String, String)>),
    /// `ENV k=v ...` or `ENV k v` (raw words).
    Env(Vec<(String, String)>),
    /// `EXPOSE` ports (raw words).
    Expose(Vec<String>),
    /// `VOLUME` paths (raw words).
    Volume(Vec<String>),
    /// `USER` (raw).
    User(String),
    /// `WORKDIR` (raw).
    Workdir(String),
    /// `ARG name[=default] ...` (raw).
    Arg(Vec<(String, Option<String>)>),
    /// `ONBUILD <instruction>` (the trigger as written).
    Onbuild(String),
    /// `STOPSIGNAL` (raw).
    StopSignal(String),
    /// `HEALTHCHECK`.
    Healthcheck(Health),
    /// `SHELL [...]`.
    Shell(Vec<String>),
    /// `MAINTAINER` (raw).
    Maintainer(String),
    /// `COPY`.
    Copy(CopyArgs),
    /// `ADD`.
    Add(CopyArgs),
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// What it says.
    pub cmd: Command,
    /// First line (1-based).
    pub line: usize,
    /// Last line, heredoc bodies included.
    pub end_line: usize,
    /// The instruction as one line (continuations joined, heredoc bodies left out).
    pub original: String,
    /// Heredocs, in the order of their markers.
    pub heredocs: Vec<Heredoc>,
}

impl Instruction {
    /// The instruction keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match &self.cmd {
            Command::From { .. } => "FROM",
            Command::Run { .. } => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Label(_) => "LABEL",
            Command::Env(_) => "ENV",
            Command::Expose(_) => "EXPOSE",
            Command::Volume(_) => "VOLUME",
            Command::User(_) => "USER",
            Command::Workdir(_) => "WORKDIR",
            Command::Arg(_) => "ARG",
            Command::Onbuild(_) => "ONBUILD",
            Command::StopSignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Shell(_) => "SHELL",
            Command::Maintainer(_) => "MAINTAINER",
            Command::Copy(_) => "COPY",
            Command::Add(_) => "ADD",
        }
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    /// The escape character.
    pub escape: char,
    /// The `syntax` directive (accepted and ignored).
    pub syntax: Option<String>,
    /// Instructions in order.
    pub instructions: Vec<Instruction>,
    /// The file name used in errors.
    pub file: String,
    /// Source lines (for errors raised after parsing).
    pub lines: Vec<String>,
}

impl Dockerfile {
    /// An error at `line` (1-based), column `col`.
    pub fn error(&self, line: usize, col: usize, msg: impl Into<String>) -> ParseError {
        ParseError {
            file: self.file.clone(),
            line,
            col,
            msg: msg.into(),
            text: self
                .lines
                .get(line.wrapping_sub(1))
                .cloned()
                .unwrap_or_default(),
        }
    }
}

const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

struct P<'a> {
    file: &'a str,
    lines: &'a [String],
    escape: char,
}

impl P<'_> {
    fn err(&self, line: usize, col: usize, msg: impl Into<String>) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line,
            col,
            msg: msg.into(),
            text: self.lines.get(line - 1).cloned().unwrap_or_default(),
        }
    }
    /// Column (1-based) of `needle` in `line`, or of the first non-blank character.
    fn col_of(&self, line: usize, needle: &str) -> usize {
        let t = self.lines.get(line - 1).map(String::as_str).unwrap_or("");
        match (!needle.is_empty()).then(|| t.find(needle)).flatten() {
            Some(i) => t[..i].chars().count() + 1,
            None => t.len() - t.trim_start().len() + 1,
        }
    }
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Strips a trailing escape (continuation); returns the line without it.
fn continuation(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end_matches([' ', '\t']);
    t.strip_suffix(escape)
}

fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?.trim();
    let (k, v) = rest.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((k.to_ascii_lowercase(), v.trim().to_string()))
}

/// Parses a Dockerfile; `file` names it in errors.
pub fn parse(file: &str, src: &str) -> Result<Dockerfile, ParseError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines: Vec<String> = src
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut i = 0;
    let mut seen = std::collections::HashSet::new();
    while i < lines.len() {
        let Some((k, v)) = directive(&lines[i]) else {
            break;
        };
        if !seen.insert(k.clone()) {
            if k == "escape" || k == "syntax" {
                return Err(ParseError {
                    file: file.into(),
                    line: i + 1,
                    col: 1,
                    msg: format!("only one {k} parser directive can be used"),
                    text: lines[i].clone(),
                });
            }
            break;
        }
        match k.as_str() {
            "escape" => {
                escape = match v.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(ParseError {
                            file: file.into(),
                            line: i + 1,
                            col: lines[i].find(&v).map(|x| x + 1).unwrap_or(1),
                            msg: format!("invalid escape token '{v}' does not match ` or \\"),
                            text: lines[i].clone(),
                        })
                    }
                }
            }
            "syntax" => syntax = Some(v),
            // `check` and unknown directives are comments to us.
            _ => {}
        }
        i += 1;
    }
    let p = P {
        file,
        lines: &lines,
        escape,
    };
    let mut out = Vec::new();
    while i < lines.len() {
        let l = &lines[i];
        if l.trim().is_empty() || is_comment(l) {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut logical = String::new();
        let mut cur = l.trim_start().to_string();
        loop {
            match continuation(&cur, escape) {
                Some(s) => {
                    logical.push_str(s);
                    i += 1;
                    // Blank and comment lines inside a continuation are skipped.
                    while i < lines.len() && (lines[i].trim().is_empty() || is_comment(&lines[i])) {
                        i += 1;
                    }
                    if i >= lines.len() {
                        break;
                    }
                    cur = lines[i].clone();
                }
                None => {
                    logical.push_str(&cur);
                    break;
                }
            }
        }
        i += 1;
        let logical = logical.trim().to_string();
        let (kw, rest) = match logical.find(char::is_whitespace) {
            Some(x) => (&logical[..x], logical[x..].trim_start()),
            None => (logical.as_str(), ""),
        };
        let upper = kw.to_ascii_uppercase();
        if !KEYWORDS.contains(&upper.as_str()) {
            return Err(p.err(
                start,
                p.col_of(start, kw),
                format!("unknown instruction: {kw}"),
            ));
        }
        // Heredocs (RUN, COPY, ADD): bodies follow the instruction's last line.
        let mut heredocs = Vec::new();
        if matches!(upper.as_str(), "RUN" | "COPY" | "ADD") {
            for (name, chomp, expand) in heredoc_markers(rest) {
                let mut content = String::new();
                let mut done = false;
                while i < lines.len() {
                    let body = &lines[i];
                    i += 1;
                    let cmp = if chomp {
                        body.trim_start_matches('\t')
                    } else {
                        body.as_str()
                    };
                    if cmp == name {
                        done = true;
                        break;
                    }
                    content.push_str(cmp);
                    content.push('\n');
                }
                if !done {
                    return Err(p.err(
                        start,
                        p.col_of(start, "<<"),
                        format!("unterminated heredoc {name:?}: no line {name:?} before the end of the file"),
                    ));
                }
                heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                });
            }
        }
        let end_line = i;
        let cmd = instruction(&p, start, &upper, rest, &heredocs)?;
        out.push(Instruction {
            cmd,
            line: start,
            end_line,
            original: logical.clone(),
            heredocs,
        });
    }
    Ok(Dockerfile {
        escape,
        syntax,
        instructions: out,
        file: file.to_string(),
        lines,
    })
}

/// Heredoc markers (`<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`) among the words of `rest`:
/// (delimiter, strip tabs, expand).
fn heredoc_markers(rest: &str) -> Vec<(String, bool, bool)> {
    let mut v = Vec::new();
    for w in split_words(rest) {
        if let Some((name, chomp, expand)) = heredoc_word(&w) {
            v.push((name, chomp, expand));
        }
    }
    v
}

fn heredoc_word(w: &str) -> Option<(String, bool, bool)> {
    // `<<EOF` may end a word (`cat<<EOF`) as in the shell; `<<<` is a herestring.
    let idx = w.find("<<")?;
    let r = &w[idx + 2..];
    if r.starts_with('<') {
        return None;
    }
    let (chomp, r) = match r.strip_prefix('-') {
        Some(x) => (true, x),
        None => (false, r),
    };
    // Stop at a redirection glued to the delimiter (`<<EOF>file`).
    let r = r.split(['>', '<', '|', ';', '&']).next().unwrap_or("");
    if r.is_empty() {
        return None;
    }
    let quoted = r.contains(['"', '\'']);
    let name: String = r.chars().filter(|c| *c != '"' && *c != '\'').collect();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return None;
    }
    Some((name, chomp, !quoted))
}

/// BuildKit's `parseWords`: splits at whitespace outside quotes, keeping quotes and escapes.
pub fn split_words_esc(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut esc = false;
    for c in rest.chars() {
        if esc {
            cur.push(c);
            esc = false;
            continue;
        }
        match quote {
            Some(q) => {
                if c == escape && q == '"' {
                    esc = true;
                } else if c == q {
                    quote = None;
                }
                cur.push(c);
            }
            None => {
                if c.is_whitespace() {
                    if !cur.is_empty() {
                        words.push(std::mem::take(&mut cur));
                    }
                    continue;
                }
                if c == escape {
                    esc = true;
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
                cur.push(c);
            }
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn split_words(rest: &str) -> Vec<String> {
    split_words_esc(rest, '\\')
}

/// Leading `--flag[=value]` words; returns them with the rest of the line.
fn take_flags(rest: &str) -> (Vec<(String, Option<String>)>, &str) {
    let mut flags = Vec::new();
    let mut r = rest.trim_start();
    while let Some(f) = r.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        if word.is_empty() {
            break;
        }
        match word.split_once('=') {
            Some((k, v)) => flags.push((k.to_string(), Some(v.to_string()))),
            None => flags.push((word.to_string(), None)),
        }
        r = f[end..].trim_start();
    }
    (flags, r)
}

fn json_array(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn form(rest: &str) -> Form {
    match json_array(rest) {
        Some(v) => Form::Exec(v),
        None => Form::Shell(rest.to_string()),
    }
}

/// Key/value pairs of ENV and LABEL (the legacy `ENV k v` form for ENV).
fn name_vals(
    p: &P<'_>,
    line: usize,
    kw: &str,
    rest: &str,
) -> Result<Vec<(String, String)>, ParseError> {
    let words = split_words_esc(rest, p.escape);
    if words.is_empty() {
        return Err(p.err(
            line,
            p.col_of(line, kw),
            format!("{kw} requires at least one argument"),
        ));
    }
    if !words[0].contains('=') {
        if kw == "LABEL" {
            return Err(p.err(
                line,
                p.col_of(line, &words[0]),
                format!(
                    "Syntax error - can't find = in {:?}. Must be of the form: name=value",
                    words[0]
                ),
            ));
        }
        // Legacy `ENV key value with spaces`.
        let key = words[0].clone();
        let val = rest.trim_start()[key.len()..].trim().to_string();
        if val.is_empty() {
            return Err(p.err(
                line,
                p.col_of(line, &key),
                format!("{kw} must have two arguments"),
            ));
        }
        return Ok(vec![(key, val)]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(p.err(
                line,
                p.col_of(line, &w),
                format!("Syntax error - can't find = in {w:?}. Must be of the form: name=value"),
            ));
        };
        if k.is_empty() {
            return Err(p.err(
                line,
                p.col_of(line, &w),
                format!("{kw} names can not be blank"),
            ));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

fn instruction(
    p: &P<'_>,
    line: usize,
    kw: &str,
    rest: &str,
    heredocs: &[Heredoc],
) -> Result<Command, ParseError> {
    let (flags, args) = if kw == "ONBUILD" {
        (Vec::new(), rest)
    } else {
        take_flags(rest)
    };
    let allowed: &[&str] = match kw {
        "FROM" => &["platform"],
        "RUN" => &["mount", "network", "security"],
        "COPY" => &["from", "chown", "chmod", "link", "parents", "exclude"],
        "ADD" => &[
            "chown",
            "chmod",
            "link",
            "checksum",
            "keep-git-dir",
            "exclude",
        ],
        "HEALTHCHECK" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => &[],
    };
    for (k, _) in &flags {
        if !allowed.contains(&k.as_str()) {
            return Err(p.err(
                line,
                p.col_of(line, &format!("--{k}")),
                format!("unknown flag: --{k}"),
            ));
        }
    }
    let flag = |name: &str| -> Option<String> {
        flags
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone().unwrap_or_default())
    };
    let bool_flag = |name: &str| -> Result<bool, ParseError> {
        match flags.iter().rev().find(|(k, _)| k == name) {
            None => Ok(false),
            Some((_, None)) => Ok(true),
            Some((_, Some(v))) => match v.as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(p.err(
                    line,
                    p.col_of(line, &format!("--{name}")),
                    format!("expecting boolean value for flag {name}, not: {v}"),
                )),
            },
        }
    };
    let need = |ok: bool, msg: &str| -> Result<(), ParseError> {
        if ok {
            Ok(())
        } else {
            Err(p.err(line, p.col_of(line, ""), msg.to_string()))
        }
    };
    let one_arg = |what: &str| -> Result<String, ParseError> {
        let a = args.trim();
        if a.is_empty() {
            return Err(p.err(
                line,
                p.col_of(line, ""),
                format!("{what} requires exactly one argument"),
            ));
        }
        Ok(a.to_string())
    };
    Ok(match kw {
        "FROM" => {
            let w: Vec<&str> = args.split_whitespace().collect();
            let (image, name) = match w.as_slice() {
                [img] => (img.to_string(), None),
                [img, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                    if !ok {
                        return Err(p.err(
                            line,
                            p.col_of(line, name),
                            format!("invalid name for build stage: {name:?}, name can't start with a number or contain symbols"),
                        ));
                    }
                    (img.to_string(), Some(name.to_ascii_lowercase()))
                }
                _ => {
                    return Err(p.err(
                        line,
                        p.col_of(line, ""),
                        "FROM requires either one or three arguments",
                    ))
                }
            };
            Command::From {
                image,
                name,
                platform: flag("platform"),
            }
        }
        "RUN" => {
            need(
                !args.trim().is_empty(),
                "RUN requires at least one argument",
            )?;
            Command::Run {
                cmd: form(args),
                mounts: flags
                    .iter()
                    .filter(|(k, _)| k == "mount")
                    .map(|(_, v)| v.clone().unwrap_or_default())
                    .collect(),
                network: flag("network"),
                security: flag("security"),
            }
        }
        "CMD" | "ENTRYPOINT" => {
            let f = form(args);
            if kw == "CMD" {
                Command::Cmd(f)
            } else {
                Command::Entrypoint(f)
            }
        }
        "ENV" | "LABEL" => {
            let kv = name_vals(p, line, kw, args)?;
            if kw == "ENV" {
                Command::Env(kv)
            } else {
                Command::Label(kv)
            }
        }
        "EXPOSE" => {
            need(
                !args.trim().is_empty(),
                "EXPOSE requires at least one argument",
            )?;
            Command::Expose(args.split_whitespace().map(String::from).collect())
        }
        "VOLUME" => {
            let v = json_array(args)
                .unwrap_or_else(|| args.split_whitespace().map(String::from).collect());
            need(!v.is_empty(), "VOLUME requires at least one argument")?;
            if v.iter().any(|x| x.trim().is_empty()) {
                return Err(p.err(
                    line,
                    p.col_of(line, ""),
                    "VOLUME specified can not be an empty string",
                ));
            }
            Command::Volume(v)
        }
        "USER" => Command::User(one_arg("USER")?),
        "WORKDIR" => Command::Workdir(one_arg("WORKDIR")?),
        "STOPSIGNAL" => Command::StopSignal(one_arg("STOPSIGNAL")?),
        "MAINTAINER" => Command::Maintainer(one_arg("MAINTAINER")?),
        "ARG" => {
            let words = split_words_esc(args, p.escape);
            need(!words.is_empty(), "ARG requires at least one argument")?;
            let mut v = Vec::new();
            for w in words {
                match w.split_once('=') {
                    Some((k, d)) => v.push((k.to_string(), Some(d.to_string()))),
                    None => v.push((w.clone(), None)),
                }
                let k = &v.last().map(|x| x.0.clone()).unwrap_or_default();
                if k.is_empty() {
                    return Err(p.err(line, p.col_of(line, &w), "ARG names can not be blank"));
                }
            }
            Command::Arg(v)
        }
        "ONBUILD" => {
            let t = args.trim();
            need(!t.is_empty(), "ONBUILD requires at least one argument")?;
            let inner = t
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match inner.as_str() {
                "ONBUILD" => {
                    return Err(p.err(
                        line,
                        p.col_of(line, ""),
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ))
                }
                "FROM" | "MAINTAINER" => {
                    return Err(p.err(
                        line,
                        p.col_of(line, ""),
                        format!("{inner} isn't allowed as an ONBUILD trigger"),
                    ))
                }
                x if !KEYWORDS.contains(&x) => {
                    let col = p.col_of(line, t.split_whitespace().next().unwrap_or(""));
                    return Err(p.err(
                        line,
                        col,
                        format!(
                            "unknown instruction: {}",
                            t.split_whitespace().next().unwrap_or("")
                        ),
                    ));
                }
                _ => {}
            }
            // Stored with the keyword upper-cased, as docker records triggers.
            let rest = t[inner.len()..].trim_start();
            Command::Onbuild(format!("{inner} {rest}").trim_end().to_string())
        }
        "HEALTHCHECK" => {
            let t = args.trim();
            let (w0, r) = match t.find(char::is_whitespace) {
                Some(x) => (&t[..x], t[x..].trim_start()),
                None => (t, ""),
            };
            let mut h = Health {
                interval: flag("interval"),
                timeout: flag("timeout"),
                start_period: flag("start-period"),
                start_interval: flag("start-interval"),
                retries: flag("retries"),
                ..Default::default()
            };
            match w0.to_ascii_uppercase().as_str() {
                "NONE" => {
                    if !r.is_empty() || !flags.is_empty() {
                        return Err(p.err(
                            line,
                            p.col_of(line, ""),
                            "HEALTHCHECK NONE takes no arguments",
                        ));
                    }
                    h.test = vec!["NONE".into()];
                }
                "CMD" => {
                    need(!r.is_empty(), "Missing command after HEALTHCHECK CMD")?;
                    h.test = match form(r) {
                        Form::Exec(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
                        Form::Shell(s) => vec!["CMD-SHELL".into(), s],
                    };
                }
                _ => {
                    return Err(p.err(
                        line,
                        p.col_of(line, w0),
                        format!("Unknown type {w0:?} in HEALTHCHECK (try CMD)"),
                    ))
                }
            }
            Command::Healthcheck(h)
        }
        "SHELL" => match json_array(args) {
            Some(v) if !v.is_empty() => Command::Shell(v),
            _ => {
                return Err(p.err(
                    line,
                    p.col_of(line, ""),
                    "SHELL requires the arguments to be in JSON form",
                ))
            }
        },
        "COPY" | "ADD" => {
            let mut c = CopyArgs {
                from: flag("from"),
                chown: flag("chown"),
                chmod: flag("chmod"),
                link: bool_flag("link")?,
                parents: bool_flag("parents")?,
                excludes: flags
                    .iter()
                    .filter(|(k, _)| k == "exclude")
                    .map(|(_, v)| v.clone().unwrap_or_default())
                    .collect(),
                checksum: flag("checksum"),
                keep_git_dir: bool_flag("keep-git-dir")?,
                ..Default::default()
            };
            let words: Vec<String> = match json_array(args) {
                Some(v) => v,
                None => args.split_whitespace().map(String::from).collect(),
            };
            if words.len() < 2 {
                return Err(p.err(
                    line,
                    p.col_of(line, ""),
                    format!("{kw} requires at least two arguments, but only {} provided. Destination could not be determined", if words.is_empty() { "none was".to_string() } else { "one was".to_string() }),
                ));
            }
            let mut hd = 0;
            for w in &words[..words.len() - 1] {
                if heredoc_word(w).is_some() && w.starts_with("<<") && hd < heredocs.len() {
                    c.srcs.push(Source::Heredoc(hd));
                    hd += 1;
                } else {
                    c.srcs.push(Source::Path(w.clone()));
                }
            }
            c.dest = words[words.len() - 1].clone();
            if kw == "COPY" {
                Command::Copy(c)
            } else {
                if c.parents {
                    return Err(p.err(
                        line,
                        p.col_of(line, "--parents"),
                        "unknown flag: --parents",
                    ));
                }
                Command::Add(c)
            }
        }
        _ => unreachable!("keyword checked above"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Instruction {
        let d = parse("Dockerfile", src).unwrap();
        assert_eq!(d.instructions.len(), 1, "{src}");
        d.instructions.into_iter().next().unwrap()
    }

    #[test]
    fn every_instruction() {
        let src = "FROM --platform=linux/amd64 busybox AS Build\nRUN echo hi\nCMD [\"a\", \"b\"]\nLABEL a=b \"c d\"=e\nENV A=1 B=\"x y\"\nENV C hello world\nEXPOSE 80/tcp 443\nVOLUME [\"/data\"]\nVOLUME /a /b\nUSER app:app\nWORKDIR /w\nARG X=1 Y\nONBUILD run echo x\nSTOPSIGNAL SIGTERM\nHEALTHCHECK --interval=5s CMD true\nHEALTHCHECK NONE\nSHELL [\"/bin/sh\", \"-ec\"]\nMAINTAINER me\nCOPY --from=build --chown=1:2 --chmod=600 a b /dst/\nADD --checksum=sha256:x --keep-git-dir f /x\nENTRYPOINT echo\n";
        let d = parse("Dockerfile", src).unwrap();
        let kws: Vec<&str> = d.instructions.iter().map(|i| i.keyword()).collect();
        assert_eq!(
            kws,
            vec![
                "FROM",
                "RUN",
                "CMD",
                "LABEL",
                "ENV",
                "ENV",
                "EXPOSE",
                "VOLUME",
                "VOLUME",
                "USER",
                "WORKDIR",
                "ARG",
                "ONBUILD",
                "STOPSIGNAL",
                "HEALTHCHECK",
                "HEALTHCHECK",
                "SHELL",
                "MAINTAINER",
                "COPY",
                "ADD",
                "ENTRYPOINT"
            ]
        );
        let ins = &d.instructions;
        assert_eq!(
            ins[0].cmd,
            Command::From {
                image: "busybox".into(),
                name: Some("build".into()),
                platform: Some("linux/amd64".into())
            }
        );
        assert_eq!(
            ins[2].cmd,
            Command::Cmd(Form::Exec(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            ins[3].cmd,
            Command::Label(vec![
                ("a".into(), "b".into()),
                ("\"c d\"".into(), "e".into())
            ])
        );
        assert_eq!(
            ins[4].cmd,
            Command::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"x y\"".into())
            ])
        );
        assert_eq!(
            ins[5].cmd,
            Command::Env(vec![("C".into(), "hello world".into())])
        );
        assert_eq!(ins[7].cmd, Command::Volume(vec!["/data".into()]));
        assert_eq!(
            ins[11].cmd,
            Command::Arg(vec![("X".into(), Some("1".into())), ("Y".into(), None)])
        );
        assert_eq!(ins[12].cmd, Command::Onbuild("RUN echo x".into()));
        match &ins[14].cmd {
            Command::Healthcheck(h) => {
                assert_eq!(h.test, vec!["CMD-SHELL", "true"]);
                assert_eq!(h.interval.as_deref(), Some("5s"));
            }
            x => panic!("{x:?}"),
        }
        match &ins[18].cmd {
            Command::Copy(c) => {
                assert_eq!(c.from.as_deref(), Some("build"));
                assert_eq!(c.chown.as_deref(), Some("1:2"));
                assert_eq!(c.chmod.as_deref(), Some("600"));
                assert_eq!(
                    c.srcs,
                    vec![Source::Path("a".into()), Source::Path("b".into())]
                );
                assert_eq!(c.dest, "/dst/");
            }
            x => panic!("{x:?}"),
        }
        match &ins[19].cmd {
            Command::Add(c) => {
                assert!(c.keep_git_dir);
                assert_eq!(c.checksum.as_deref(), Some("sha256:x"));
            }
            x => panic!("{x:?}"),
        }
        assert_eq!(ins[20].cmd, Command::Entrypoint(Form::Shell("echo".into())));
    }

    #[test]
    fn continuations_and_comments() {
        let i = one("RUN echo a \\\n# a comment\n\n    b \\\n  c");
        assert_eq!(
            i.cmd,
            Command::Run {
                cmd: Form::Shell("echo a     b   c".into()),
                mounts: vec![],
                network: None,
                security: None
            }
        );
        assert_eq!((i.line, i.end_line), (1, 5));
        let d = parse(
            "Dockerfile",
            "# comment\nFROM a\n\n  # indented comment\nRUN x",
        )
        .unwrap();
        assert_eq!(d.instructions[1].line, 5);
    }

    #[test]
    fn directives() {
        let d = parse(
            "Dockerfile",
            "# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN echo `\n  b\n",
        )
        .unwrap();
        assert_eq!(d.escape, '`');
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(
            d.instructions[1].cmd,
            Command::Run {
                cmd: Form::Shell("echo   b".into()),
                mounts: vec![],
                network: None,
                security: None
            }
        );
        // A directive after an instruction is a comment.
        let d = parse("Dockerfile", "FROM a\n# escape=`\nRUN echo \\\n b").unwrap();
        assert_eq!(d.escape, '\\');
        let e = parse("Dockerfile", "# escape=x\nFROM a").unwrap_err();
        assert_eq!((e.line, e.col), (1, 10));
    }

    #[test]
    fn exec_and_shell_forms() {
        assert_eq!(
            one("CMD [\"a\"]").cmd,
            Command::Cmd(Form::Exec(vec!["a".into()]))
        );
        // Invalid JSON is the shell form.
        assert_eq!(
            one("CMD [a, b]").cmd,
            Command::Cmd(Form::Shell("[a, b]".into()))
        );
        assert_eq!(
            one("CMD [\"a\\\"b\"]").cmd,
            Command::Cmd(Form::Exec(vec!["a\"b".into()]))
        );
        assert!(parse("Dockerfile", "SHELL sh -c").is_err());
    }

    #[test]
    fn heredocs() {
        let i = one("RUN <<EOF\necho $A\necho two\nEOF\n");
        assert_eq!(
            i.heredocs,
            vec![Heredoc {
                name: "EOF".into(),
                content: "echo $A\necho two\n".into(),
                expand: true
            }]
        );
        assert_eq!(i.end_line, 4);
        let d = parse(
            "Dockerfile",
            "COPY <<A <<'B' /dst/\nfile a\nA\nfile $b\nB\nRUN true",
        )
        .unwrap();
        let i = &d.instructions[0];
        assert_eq!(i.heredocs.len(), 2);
        assert!(i.heredocs[0].expand);
        assert!(!i.heredocs[1].expand);
        assert_eq!(i.heredocs[1].content, "file $b\n");
        match &i.cmd {
            Command::Copy(c) => assert_eq!(c.srcs, vec![Source::Heredoc(0), Source::Heredoc(1)]),
            x => panic!("{x:?}"),
        }
        assert_eq!(d.instructions[1].line, 6);
        let i = one("RUN <<-EOF\n\t\techo tab\n\tEOF\n");
        assert_eq!(i.heredocs[0].content, "echo tab\n");
        let i = one("RUN cat <<\"EOF\" > /f\n$x\nEOF");
        assert!(!i.heredocs[0].expand);
        let e = parse("Dockerfile", "FROM a\nRUN <<EOF\nno end\n").unwrap_err();
        assert_eq!(e.line, 2);
        // Not a heredoc in other instructions, nor a herestring.
        assert!(one("RUN cat <<<word").heredocs.is_empty());
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("df", "FROM a\n  BOGUS x\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 3));
        assert!(e.msg.contains("unknown instruction: BOGUS"));
        assert!(e
            .to_string()
            .starts_with("df:2:3: unknown instruction: BOGUS\n    2 |   BOGUS x\n      |   ^"));
        let e = parse("df", "FROM a\nCOPY --nope=1 a b\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 6));
        let e = parse("df", "FROM a\nCOPY onlyone\n").unwrap_err();
        assert!(e.msg.contains("at least two arguments"), "{}", e.msg);
        let e = parse("df", "FROM a b\n").unwrap_err();
        assert!(e.msg.contains("one or three"));
        let e = parse("df", "FROM a\nLABEL novalue\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 7));
        let e = parse("df", "FROM a\nENV =x\n").unwrap_err();
        assert!(e.msg.contains("blank"));
        let e = parse("df", "FROM a\nHEALTHCHECK FOO x\n").unwrap_err();
        assert_eq!(e.col, 13);
        let e = parse("df", "FROM a\nONBUILD FROM b\n").unwrap_err();
        assert!(e.msg.contains("isn't allowed"));
        let e = parse("df", "FROM a AS 1x\n").unwrap_err();
        assert!(e.msg.contains("invalid name"));
    }

    #[test]
    fn flags() {
        match one("RUN --mount=type=cache,target=/c --network=none echo").cmd {
            Command::Run {
                mounts,
                network,
                cmd,
                ..
            } => {
                assert_eq!(mounts, vec!["type=cache,target=/c"]);
                assert_eq!(network.as_deref(), Some("none"));
                assert_eq!(cmd, Form::Shell("echo".into()));
            }
            x => panic!("{x:?}"),
        }
        match one("COPY --link --exclude=*.md --exclude=x . /").cmd {
            Command::Copy(c) => {
                assert!(c.link);
                assert_eq!(c.excludes, vec!["*.md", "x"]);
            }
            x => panic!("{x:?}"),
        }
        assert!(parse("df", "COPY --link=maybe a b").is_err());
    }

    /// Mutated Dockerfiles (a fixed pseudo-random sequence) never panic the parser, the
    /// expander or the ignore matcher, and errors point into the file.
    #[test]
    fn mutations_never_panic() {
        let seed = "# escape=\\\nARG A=${B:-x}\nFROM busybox AS b\nRUN <<EOF cat <<-'X'\nbody $A\nEOF\n\tx\n\tX\nCOPY [\"a\", \"b\"] /d/\nENV K=\"v w\" L='x' \\\n  M=${N#*/}\nHEALTHCHECK --interval=1s CMD [\"true\"]\nONBUILD ADD . /\n";
        let pieces = [
            "\\", "\"", "'", "$", "{", "}", "<<", "<<-", "\n", "[", "]", "-", "=", "#", "`", " ",
            "\t", "${", ":-", ":?", "%%", "//", "--", "EOF", "FROM", "\u{e9}", "\r\n",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut s: Vec<char> = seed.chars().collect();
            for _ in 0..(next() % 6 + 1) {
                let pos = (next() as usize) % (s.len() + 1);
                match next() % 3 {
                    0 if !s.is_empty() => {
                        s.remove(pos.min(s.len() - 1));
                    }
                    _ => {
                        let p = pieces[(next() as usize) % pieces.len()];
                        for (k, c) in p.chars().enumerate() {
                            s.insert(pos + k, c);
                        }
                    }
                }
            }
            let text: String = s.into_iter().collect();
            let lines = text.split('\n').count();
            match parse("Dockerfile", &text) {
                Ok(d) => {
                    let env = |k: &str| (k == "A").then(|| "a b".to_string());
                    let l = crate::expand::Lexer {
                        escape: d.escape,
                        env: &env,
                    };
                    for w in text.split_whitespace() {
                        let _ = l.word(w);
                        let _ = l.words(w);
                        let _ = l.heredoc(w);
                    }
                }
                Err(e) => {
                    assert!(e.line >= 1 && e.line <= lines, "{e:?} in {text:?}");
                    assert!(!e.msg.contains('\n'), "{e:?}");
                }
            }
            let _ = crate::ignore::Matcher::parse(&text).map(|m| m.excluded("a/b/c"));
        }
    }
}
