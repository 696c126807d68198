//! The lexer: template text into items, as Go's text/template/parse lexer cuts it (delimiters
//! `{{ }}`, trim markers `{{- ` and ` -}}`, comments `{{/* */}}`, and the tokens inside actions).

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    LeftDelim,
    RightDelim,
    Space,
    Ident,
    Field,
    Variable,
    Dot,
    Str,
    RawStr,
    CharConst,
    Number,
    Bool,
    Nil,
    Pipe,
    LeftParen,
    RightParen,
    Declare,
    Assign,
    Char,
    Eof,
    Error,
    // Keywords.
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
}

impl Kind {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            Kind::Block
                | Kind::Break
                | Kind::Continue
                | Kind::Define
                | Kind::Else
                | Kind::End
                | Kind::If
                | Kind::Range
                | Kind::Template
                | Kind::With
        )
    }
}

/// One lexed item: its kind, its text (for errors, the message) and its byte offset.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub kind: Kind,
    pub val: String,
    pub pos: usize,
}

impl std::fmt::Display for Item {
    /// As Go's `item.String()`, used in "unexpected X in Y" messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Eof => f.write_str("EOF"),
            Kind::Error => f.write_str(&self.val),
            k if k.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let short: String = self.val.chars().take(10).collect();
                write!(f, "{}...", crate::gofmt::quote(&short, false))
            }
            _ => f.write_str(&crate::gofmt::quote(&self.val, false)),
        }
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

/// `{{- ` opens an action that trims the text before it.
fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

/// ` -}}` closes an action and trims the text after it.
fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 4 && is_space(b[0] as char) && &b[1..4] == b"-}}"
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    items: Vec<Item>,
    paren_depth: i32,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn emit(&mut self, kind: Kind, start: usize) {
        self.items.push(Item {
            kind,
            val: self.src[start..self.pos].to_string(),
            pos: start,
        });
    }

    fn error(&mut self, msg: String) {
        self.items.push(Item {
            kind: Kind::Error,
            val: msg,
            pos: self.pos,
        });
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) || ".,|:()".contains(c) => true,
            _ => self.rest().starts_with("}}"),
        }
    }

    /// Lexes the whole input; the last item is EOF or an error.
    fn run(&mut self) {
        loop {
            let Some(idx) = self.rest().find("{{") else {
                if self.pos < self.src.len() {
                    let start = self.pos;
                    self.pos = self.src.len();
                    self.emit(Kind::Text, start);
                }
                self.items.push(Item {
                    kind: Kind::Eof,
                    val: String::new(),
                    pos: self.src.len(),
                });
                return;
            };
            let delim = self.pos + idx;
            let after = delim + 2;
            let trim = has_left_trim(&self.src[after..]);
            let mut text_end = delim;
            if trim {
                text_end = self.pos + self.src[self.pos..delim].trim_end_matches(is_space).len();
            }
            if text_end > self.pos {
                let start = self.pos;
                self.pos = text_end;
                self.emit(Kind::Text, start);
            }
            let inner = after + if trim { 2 } else { 0 };
            if self.src[inner..].starts_with("/*") {
                self.pos = inner;
                if !self.comment() {
                    return;
                }
                continue;
            }
            self.pos = after;
            self.emit(Kind::LeftDelim, delim);
            self.pos = inner;
            if !self.inside_action(delim) {
                return;
            }
        }
    }

    /// A comment; false after an error.
    fn comment(&mut self) -> bool {
        let body = self.pos + 2;
        let Some(x) = self.src[body..].find("*/") else {
            self.error("unclosed comment".into());
            return false;
        };
        self.pos = body + x + 2;
        if self.rest().starts_with("}}") {
            self.pos += 2;
        } else if has_right_trim(self.rest()) {
            self.pos += 4;
            self.skip_leading_space();
        } else {
            self.error("comment ends before closing delimiter".into());
            return false;
        }
        true
    }

    fn skip_leading_space(&mut self) {
        let n = self.rest().len() - self.rest().trim_start_matches(is_space).len();
        self.pos += n;
    }

    /// The tokens of one action, through its closing delimiter; false after an error.
    fn inside_action(&mut self, action_start: usize) -> bool {
        loop {
            let rest = self.rest();
            let right = if rest.starts_with("}}") {
                Some((2, false))
            } else if has_right_trim(rest) {
                Some((4, true))
            } else {
                None
            };
            if let Some((len, trim)) = right {
                if self.paren_depth > 0 {
                    self.error("unclosed left paren".into());
                    return false;
                }
                let start = self.pos + len - 2;
                self.pos += len;
                self.emit(Kind::RightDelim, start);
                if trim {
                    self.skip_leading_space();
                }
                return true;
            }
            let Some(c) = self.peek() else {
                let _ = action_start;
                self.error("unclosed action".into());
                return false;
            };
            let start = self.pos;
            match c {
                c if is_space(c) => {
                    // A run of spaces, stopping before one that starts " -}}".
                    while let Some(c) = self.peek() {
                        if !is_space(c) || has_right_trim(self.rest()) {
                            break;
                        }
                        self.pos += 1;
                    }
                    if self.pos == start {
                        // Only the trim marker's space: handled at the top of the loop.
                        continue;
                    }
                    self.emit(Kind::Space, start);
                }
                '=' => {
                    self.pos += 1;
                    self.emit(Kind::Assign, start);
                }
                ':' => {
                    if !self.rest().starts_with(":=") {
                        self.error("expected :=".into());
                        return false;
                    }
                    self.pos += 2;
                    self.emit(Kind::Declare, start);
                }
                '|' => {
                    self.pos += 1;
                    self.emit(Kind::Pipe, start);
                }
                '"' => {
                    if !self.quote() {
                        return false;
                    }
                }
                '`' => {
                    let Some(end) = self.src[start + 1..].find('`') else {
                        self.error("unterminated raw quoted string".into());
                        return false;
                    };
                    self.pos = start + 1 + end + 1;
                    self.emit(Kind::RawStr, start);
                }
                '\'' => {
                    if !self.char_const() {
                        return false;
                    }
                }
                '$' => {
                    self.pos += 1;
                    if !self.field_or_variable(Kind::Variable, start) {
                        return false;
                    }
                }
                '.' => {
                    let next = self.src[start + 1..].chars().next();
                    if matches!(next, Some(d) if d.is_ascii_digit()) {
                        if !self.number() {
                            return false;
                        }
                    } else {
                        self.pos += 1;
                        if !self.field_or_variable(Kind::Field, start) {
                            return false;
                        }
                    }
                }
                '+' | '-' | '0'..='9' => {
                    if !self.number() {
                        return false;
                    }
                }
                c if is_alnum(c) => {
                    while matches!(self.peek(), Some(c) if is_alnum(c)) {
                        self.pos += self.peek().map_or(1, char::len_utf8);
                    }
                    if !self.at_terminator() {
                        let bad = self.peek().unwrap_or(' ');
                        self.error(format!("bad character {}", crate::gofmt::sharp_u(bad)));
                        return false;
                    }
                    let word = &self.src[start..self.pos];
                    let kind = match word {
                        "block" => Kind::Block,
                        "break" => Kind::Break,
                        "continue" => Kind::Continue,
                        "define" => Kind::Define,
                        "else" => Kind::Else,
                        "end" => Kind::End,
                        "if" => Kind::If,
                        "range" => Kind::Range,
                        "template" => Kind::Template,
                        "with" => Kind::With,
                        "nil" => Kind::Nil,
                        "true" | "false" => Kind::Bool,
                        _ => Kind::Ident,
                    };
                    self.emit(kind, start);
                }
                '(' => {
                    self.pos += 1;
                    self.paren_depth += 1;
                    self.emit(Kind::LeftParen, start);
                }
                ')' => {
                    self.pos += 1;
                    self.paren_depth -= 1;
                    if self.paren_depth < 0 {
                        self.error("unexpected right paren".into());
                        return false;
                    }
                    self.emit(Kind::RightParen, start);
                }
                c if c.is_ascii() && !c.is_ascii_control() => {
                    self.pos += 1;
                    self.emit(Kind::Char, start);
                }
                c => {
                    self.error(format!("bad character {}", crate::gofmt::sharp_u(c)));
                    return false;
                }
            }
        }
    }

    fn field_or_variable(&mut self, kind: Kind, start: usize) -> bool {
        if self.at_terminator() {
            let k = if kind == Kind::Variable {
                Kind::Variable
            } else {
                Kind::Dot
            };
            self.emit(k, start);
            return true;
        }
        while let Some(c) = self.peek() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        if !self.at_terminator() {
            let bad = self.peek().unwrap_or(' ');
            self.error(format!("bad character {}", crate::gofmt::sharp_u(bad)));
            return false;
        }
        self.emit(kind, start);
        true
    }

    fn quote(&mut self) -> bool {
        let start = self.pos;
        let mut chars = self.src[start + 1..].char_indices();
        loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\n')) | None => break,
                    Some(_) => {}
                },
                Some((i, '"')) => {
                    self.pos = start + 1 + i + 1;
                    self.emit(Kind::Str, start);
                    return true;
                }
                Some((_, '\n')) | None => break,
                Some(_) => {}
            }
        }
        self.error("unterminated quoted string".into());
        false
    }

    fn char_const(&mut self) -> bool {
        let start = self.pos;
        let mut chars = self.src[start + 1..].char_indices();
        loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\n')) | None => break,
                    Some(_) => {}
                },
                Some((i, '\'')) => {
                    self.pos = start + 1 + i + 1;
                    self.emit(Kind::CharConst, start);
                    return true;
                }
                Some((_, '\n')) | None => break,
                Some(_) => {}
            }
        }
        self.error("unterminated character constant".into());
        false
    }

    fn accept(&mut self, set: &str) -> bool {
        match self.peek() {
            Some(c) if set.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, set: &str) {
        while self.accept(set) {}
    }

    /// A number, scanned as Go's scanNumber does; false after an error.
    fn number(&mut self) -> bool {
        let start = self.pos;
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if matches!(self.peek(), Some(c) if is_alnum(c)) {
            self.pos += self.peek().map_or(1, char::len_utf8);
            let text = self.src[start..self.pos].to_string();
            self.error(format!(
                "bad number syntax: {}",
                crate::gofmt::quote(&text, false)
            ));
            return false;
        }
        self.emit(Kind::Number, start);
        true
    }
}

/// Lexes `src` into items; the last one is EOF or an error.
pub(crate) fn lex(src: &str) -> Vec<Item> {
    let mut l = Lexer {
        src,
        pos: 0,
        items: Vec::new(),
        paren_depth: 0,
    };
    l.run();
    l.items
}
