//! The parser: items into trees, following Go's text/template/parse (actions, pipelines with
//! declarations, if/with/range with else chains, break/continue, define/template/block).

use std::collections::HashMap;

use crate::lex::{Item, Kind};
use crate::Error;

/// Deepest nesting of control structures and parenthesised pipelines the parser accepts; keeps
/// recursion (here and in execution) far from the stack's end on hostile input.
pub(crate) const MAX_DEPTH: usize = 100;

/// A number literal, as Go's NumberNode keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub uint: Option<u64>,
    pub float: Option<f64>,
    pub is_char: bool,
}

/// An operand of a command.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Field(usize, Vec<String>),
    Variable(usize, Vec<String>),
    Chain(usize, Box<Arg>, Vec<String>),
    Ident(usize, String),
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number(usize, Number),
    Str(usize, String, String),
    Pipe(usize, Box<Pipe>),
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Field(p, _)
            | Arg::Variable(p, _)
            | Arg::Chain(p, _, _)
            | Arg::Ident(p, _)
            | Arg::Dot(p)
            | Arg::Nil(p)
            | Arg::Bool(p, _)
            | Arg::Number(p, _)
            | Arg::Str(p, _, _)
            | Arg::Pipe(p, _) => *p,
        }
    }
}

impl std::fmt::Display for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arg::Field(_, idents) => {
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Variable(_, idents) => f.write_str(&idents.join(".")),
            Arg::Chain(_, node, fields) => {
                if matches!(**node, Arg::Pipe(..)) {
                    write!(f, "({node})")?;
                } else {
                    write!(f, "{node}")?;
                }
                for i in fields {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Ident(_, n) => f.write_str(n),
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number(_, n) => f.write_str(&n.text),
            Arg::Str(_, _, raw) => f.write_str(raw),
            Arg::Pipe(_, p) => write!(f, "{p}"),
        }
    }
}

/// One command of a pipeline: a function or operand and its arguments.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    pub args: Vec<Arg>,
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if matches!(a, Arg::Pipe(..)) {
                write!(f, "({a})")?;
            } else {
                write!(f, "{a}")?;
            }
        }
        Ok(())
    }
}

/// A pipeline, with its variable declarations (`$x :=`) or assignments (`$x =`).
#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Cmd>,
}

impl std::fmt::Display for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// The kinds of control structure that share a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    If,
    With,
    Range,
}

/// A node of a template's tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    Control {
        kind: Control,
        pipe: Pipe,
        list: Vec<Node>,
        else_list: Option<Vec<Node>>,
    },
    Break,
    Continue,
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
}

/// What ended an item list.
enum Ender {
    End,
    Else(usize),
}

struct Parser<'a> {
    src: &'a str,
    items: Vec<Item>,
    next: usize,
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
    action_line: usize,
    trees: &'a mut HashMap<String, Vec<Node>>,
}

type PResult<T> = Result<T, Error>;

fn line_of(src: &str, pos: usize) -> usize {
    1 + src.as_bytes()[..pos.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// True when a list holds only whitespace text (Go's IsEmptyTree).
fn is_empty_tree(list: &[Node]) -> bool {
    list.iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
}

impl<'a> Parser<'a> {
    fn err<T>(&self, pos: usize, msg: impl std::fmt::Display) -> PResult<T> {
        Err(Error::new(format!(
            "template: :{}: {msg}",
            line_of(self.src, pos)
        )))
    }

    fn peek(&self) -> &Item {
        &self.items[self.next.min(self.items.len() - 1)]
    }

    fn bump(&mut self) -> Item {
        let it = self.peek().clone();
        self.next += 1;
        it
    }

    fn backup(&mut self) {
        self.next = self.next.saturating_sub(1);
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let it = self.bump();
            if it.kind != Kind::Space {
                return it;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let it = self.next_non_space();
        self.backup();
        it
    }

    fn unexpected<T>(&self, it: &Item, context: &str) -> PResult<T> {
        if it.kind == Kind::Error {
            let line = line_of(self.src, it.pos);
            let extra = if self.action_line != 0 && self.action_line != line {
                format!(" in action started at :{}", self.action_line)
            } else {
                String::new()
            };
            return self.err(it.pos, format!("{it}{extra}"));
        }
        self.err(it.pos, format!("unexpected {it} in {context}"))
    }

    fn expect(&mut self, kind: Kind, context: &str) -> PResult<Item> {
        let it = self.next_non_space();
        if it.kind != kind {
            return self.unexpected(&it, context);
        }
        Ok(it)
    }

    fn enter(&mut self, pos: usize) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(pos, "max expression depth exceeded");
        }
        Ok(())
    }

    /// The top level: text, actions and definitions until EOF.
    fn parse_top(&mut self) -> PResult<Vec<Node>> {
        let mut root = Vec::new();
        loop {
            let it = self.peek().clone();
            match it.kind {
                Kind::Eof => return Ok(root),
                Kind::LeftDelim => {
                    let save = self.next;
                    self.bump();
                    if self.next_non_space().kind == Kind::Define {
                        self.parse_definition()?;
                        continue;
                    }
                    self.next = save;
                }
                _ => {}
            }
            match self.text_or_action()? {
                Ok(n) => root.push(n),
                Err((Ender::End, pos)) => return self.err(pos, "unexpected {{end}}"),
                Err((Ender::Else(_), pos)) => return self.err(pos, "unexpected {{else}}"),
            }
        }
    }

    fn parse_definition(&mut self) -> PResult<()> {
        let context = "define clause";
        let it = self.next_non_space();
        let name = match it.kind {
            Kind::Str | Kind::RawStr => self.unquote(&it)?,
            _ => return self.unexpected(&it, context),
        };
        self.expect(Kind::RightDelim, context)?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let (list, end) = self.item_list()?;
        self.vars = saved;
        if !matches!(end, Ender::End) {
            return self.err(it.pos, format!("unexpected {{{{else}}}} in {context}"));
        }
        self.add_tree(&name, list, it.pos)
    }

    fn add_tree(&mut self, name: &str, list: Vec<Node>, pos: usize) -> PResult<()> {
        match self.trees.get(name) {
            Some(old) if !is_empty_tree(old) => {
                if !is_empty_tree(&list) {
                    return self.err(
                        pos,
                        format!(
                            "template: multiple definition of template {}",
                            crate::gofmt::quote(name, false)
                        ),
                    );
                }
            }
            _ => {
                self.trees.insert(name.to_string(), list);
            }
        }
        Ok(())
    }

    /// Items until `{{end}}` or `{{else}}`; EOF is an error.
    fn item_list(&mut self) -> PResult<(Vec<Node>, Ender)> {
        let mut list = Vec::new();
        loop {
            if self.peek_non_space().kind == Kind::Eof {
                let pos = self.peek().pos;
                return self.err(pos, "unexpected EOF");
            }
            match self.text_or_action()? {
                Ok(n) => list.push(n),
                Err((e, _)) => return Ok((list, e)),
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn text_or_action(&mut self) -> PResult<Result<Node, (Ender, usize)>> {
        let it = self.next_non_space();
        match it.kind {
            Kind::Text => Ok(Ok(Node::Text(it.val))),
            Kind::LeftDelim => {
                self.action_line = line_of(self.src, it.pos);
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => self.unexpected(&it, "input"),
        }
    }

    #[allow(clippy::type_complexity)]
    fn action(&mut self) -> PResult<Result<Node, (Ender, usize)>> {
        let it = self.next_non_space();
        let node = match it.kind {
            Kind::Block => self.block_control(&it)?,
            Kind::Break | Kind::Continue => {
                let t = self.next_non_space();
                let word = if it.kind == Kind::Break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                if t.kind != Kind::RightDelim {
                    return self.unexpected(&t, word);
                }
                if self.range_depth == 0 {
                    return self.err(it.pos, format!("{word} outside {{{{range}}}}"));
                }
                if it.kind == Kind::Break {
                    Node::Break
                } else {
                    Node::Continue
                }
            }
            Kind::Else => {
                let p = self.peek_non_space();
                if p.kind == Kind::If || p.kind == Kind::With {
                    return Ok(Err((Ender::Else(p.pos), it.pos)));
                }
                self.expect(Kind::RightDelim, "else")?;
                return Ok(Err((Ender::Else(it.pos), it.pos)));
            }
            Kind::End => {
                self.expect(Kind::RightDelim, "end")?;
                return Ok(Err((Ender::End, it.pos)));
            }
            Kind::If => self.control(Control::If, it.pos)?,
            Kind::With => self.control(Control::With, it.pos)?,
            Kind::Range => self.control(Control::Range, it.pos)?,
            Kind::Template => self.template_control()?,
            _ => {
                self.backup();
                let pipe = self.pipeline("command", Kind::RightDelim)?;
                Node::Action(pipe)
            }
        };
        Ok(Ok(node))
    }

    fn control(&mut self, kind: Control, pos: usize) -> PResult<Node> {
        self.enter(pos)?;
        let mark = self.vars.len();
        let r = self.control_inner(kind);
        self.vars.truncate(mark);
        self.depth -= 1;
        r
    }

    fn control_inner(&mut self, kind: Control) -> PResult<Node> {
        let context = match kind {
            Control::If => "if",
            Control::With => "with",
            Control::Range => "range",
        };
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        if kind == Control::Range {
            self.range_depth += 1;
        }
        let r = self.item_list();
        if kind == Control::Range {
            self.range_depth -= 1;
        }
        let (list, end) = r?;
        let else_list = match end {
            Ender::End => None,
            Ender::Else(pos) => {
                let p = self.peek_non_space();
                if kind == Control::If && p.kind == Kind::If {
                    self.next_non_space();
                    Some(vec![self.control(Control::If, pos)?])
                } else if kind == Control::With && p.kind == Kind::With {
                    self.next_non_space();
                    Some(vec![self.control(Control::With, pos)?])
                } else {
                    let (l, end) = self.item_list()?;
                    if !matches!(end, Ender::End) {
                        return self.err(pos, "expected end; found {{else}}");
                    }
                    Some(l)
                }
            }
        };
        Ok(Node::Control {
            kind,
            pipe,
            list,
            else_list,
        })
    }

    fn template_name(&mut self, it: &Item, context: &str) -> PResult<String> {
        match it.kind {
            Kind::Str | Kind::RawStr => self.unquote(it),
            _ => self.unexpected(it, context),
        }
    }

    fn template_control(&mut self) -> PResult<Node> {
        let context = "template clause";
        let it = self.next_non_space();
        let name = self.template_name(&it, context)?;
        let pipe = if self.next_non_space().kind != Kind::RightDelim {
            self.backup();
            Some(self.pipeline(context, Kind::RightDelim)?)
        } else {
            None
        };
        Ok(Node::Template {
            pos: it.pos,
            name,
            pipe,
        })
    }

    fn block_control(&mut self, kw: &Item) -> PResult<Node> {
        let context = "block clause";
        let it = self.next_non_space();
        let name = self.template_name(&it, context)?;
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        self.enter(kw.pos)?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        let r = self.item_list();
        self.vars = saved;
        self.range_depth = saved_range;
        self.depth -= 1;
        let (list, end) = r?;
        if !matches!(end, Ender::End) {
            return self.err(it.pos, format!("unexpected {{{{else}}}} in {context}"));
        }
        self.add_tree(&name, list, it.pos)?;
        Ok(Node::Template {
            pos: it.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn pipeline(&mut self, context: &str, end: Kind) -> PResult<Pipe> {
        let first = self.peek_non_space();
        let mut pipe = Pipe {
            pos: first.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        // Declarations or assignments.
        loop {
            let v = self.peek_non_space();
            if v.kind != Kind::Variable {
                break;
            }
            self.next_non_space();
            let after = self.peek().clone();
            let next = self.peek_non_space();
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = next.kind == Kind::Assign;
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    break;
                }
                Kind::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        let p = self.peek_non_space();
                        match p.kind {
                            Kind::Variable | Kind::RightDelim | Kind::RightParen => continue,
                            _ => return self.err(p.pos, "range can only initialize variables"),
                        }
                    }
                    return self.err(next.pos, format!("too many declarations in {context}"));
                }
                _ => {
                    // Not a declaration: back up to the variable.
                    self.backup();
                    if after.kind == Kind::Space {
                        self.backup();
                    }
                    break;
                }
            }
        }
        loop {
            let it = self.next_non_space();
            if it.kind == end {
                self.check_pipeline(&pipe, context, it.pos)?;
                return Ok(pipe);
            }
            match it.kind {
                Kind::Bool
                | Kind::CharConst
                | Kind::Dot
                | Kind::Field
                | Kind::Ident
                | Kind::Number
                | Kind::Nil
                | Kind::RawStr
                | Kind::Str
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                _ => return self.unexpected(&it, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str, pos: usize) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return self.err(pos, format!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number(..) | Arg::Str(..)
            ) {
                return self.err(
                    c.args[0].pos(),
                    format!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Cmd> {
        let mut cmd = Cmd { args: Vec::new() };
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let it = self.bump();
            match it.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return self.unexpected(&it, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            let pos = self.peek().pos;
            return self.err(pos, "empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != Kind::Field {
            return Ok(Some(node));
        }
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            fields.push(self.bump().val[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field(p, mut idents) => {
                idents.extend(fields);
                Arg::Field(p, idents)
            }
            Arg::Variable(p, mut idents) => {
                idents.extend(fields);
                Arg::Variable(p, idents)
            }
            Arg::Bool(..) | Arg::Str(..) | Arg::Number(..) | Arg::Nil(_) | Arg::Dot(_) => {
                let shown = crate::gofmt::quote(&node.to_string(), false);
                return self.err(node.pos(), format!("unexpected . after term {shown}"));
            }
            other => Arg::Chain(other.pos(), Box::new(other), fields),
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let it = self.next_non_space();
        Ok(Some(match it.kind {
            Kind::Ident => {
                if !crate::funcs::exists(&it.val) {
                    return self.err(
                        it.pos,
                        format!(
                            "function {} not defined",
                            crate::gofmt::quote(&it.val, false)
                        ),
                    );
                }
                Arg::Ident(it.pos, it.val)
            }
            Kind::Dot => Arg::Dot(it.pos),
            Kind::Nil => Arg::Nil(it.pos),
            Kind::Variable => {
                if !self.vars.contains(&it.val) {
                    return self.err(
                        it.pos,
                        format!("undefined variable {}", crate::gofmt::quote(&it.val, false)),
                    );
                }
                Arg::Variable(it.pos, vec![it.val])
            }
            Kind::Field => Arg::Field(it.pos, vec![it.val[1..].to_string()]),
            Kind::Bool => Arg::Bool(it.pos, it.val == "true"),
            Kind::CharConst | Kind::Number => {
                let n = self.number(&it)?;
                Arg::Number(it.pos, n)
            }
            Kind::LeftParen => {
                self.enter(it.pos)?;
                let p = self.pipeline("parenthesized pipeline", Kind::RightParen);
                self.depth -= 1;
                Arg::Pipe(it.pos, Box::new(p?))
            }
            Kind::Str | Kind::RawStr => {
                let s = self.unquote(&it)?;
                Arg::Str(it.pos, s, it.val)
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }

    fn unquote(&self, it: &Item) -> PResult<String> {
        match crate::gofmt::unquote(&it.val) {
            Some(s) => Ok(s),
            None => self.err(it.pos, "invalid syntax"),
        }
    }

    fn number(&self, it: &Item) -> PResult<Number> {
        let text = &it.val;
        if it.kind == Kind::CharConst {
            let Some(c) = crate::gofmt::unquote_char(text) else {
                return self.err(it.pos, "invalid syntax");
            };
            let c = c as i64;
            return Ok(Number {
                text: text.clone(),
                int: Some(c),
                uint: Some(c as u64),
                float: Some(c as f64),
                is_char: true,
            });
        }
        if text.ends_with('i') {
            return self.err(
                it.pos,
                format!(
                    "complex numbers are not supported: {}",
                    crate::gofmt::quote(text, false)
                ),
            );
        }
        let mut n = Number {
            text: text.clone(),
            int: None,
            uint: None,
            float: None,
            is_char: false,
        };
        if let Some(v) = parse_go_int(text) {
            if v >= 0 && v <= u64::MAX as i128 {
                n.uint = Some(v as u64);
            }
            if v >= i64::MIN as i128 && v <= i64::MAX as i128 {
                n.int = Some(v as i64);
            }
        }
        if let Some(i) = n.int {
            n.float = Some(i as f64);
        } else if let Some(u) = n.uint {
            n.float = Some(u as f64);
        } else if let Some(f) = parse_go_float(text) {
            if !text.contains(['.', 'e', 'E', 'p', 'P']) {
                return self.err(
                    it.pos,
                    format!("integer overflow: {}", crate::gofmt::quote(text, false)),
                );
            }
            n.float = Some(f);
            if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
                n.int = Some(f as i64);
            }
            if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
                n.uint = Some(f as u64);
            }
        }
        if n.int.is_none() && n.uint.is_none() && n.float.is_none() {
            return self.err(
                it.pos,
                format!(
                    "illegal number syntax: {}",
                    crate::gofmt::quote(text, false)
                ),
            );
        }
        Ok(n)
    }
}

/// Parses an integer as Go's strconv.ParseInt(text, 0, 64) reads it (sign, 0x/0o/0b/0 prefixes,
/// underscores), into a wider type so the caller can test the int64 and uint64 ranges.
fn parse_go_int(text: &str) -> Option<i128> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower.clone())
    };
    if radix == 10 && digits.contains('_') {
        // Go allows underscores only with a base prefix.
        return None;
    }
    let digits = digits.trim_start_matches('_').replace('_', "");
    if digits.is_empty() {
        return None;
    }
    let v = u128::from_str_radix(&digits, radix).ok()?;
    if v > u64::MAX as u128 {
        return None;
    }
    let v = v as i128;
    Some(if neg { -v } else { v })
}

fn parse_go_float(text: &str) -> Option<f64> {
    if text.contains(['x', 'X']) || text.contains('_') {
        return None;
    }
    text.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Parses `src` into its named trees: `""` is the main template, plus every `define` and `block`.
pub(crate) fn parse(src: &str) -> Result<HashMap<String, Vec<Node>>, Error> {
    let mut trees = HashMap::new();
    let items = crate::lex::lex(src);
    let mut p = Parser {
        src,
        items,
        next: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        depth: 0,
        action_line: 0,
        trees: &mut trees,
    };
    let root = p.parse_top()?;
    p.add_tree("", root, 0)?;
    Ok(trees)
}
