//! Execution: walks a parsed tree over a JSON value with Go's semantics (field lookup on maps,
//! `<no value>` for missing keys, variables and their scopes, range over lists, maps (sorted keys)
//! and integers, break/continue, template calls with a depth bound) and Go's error messages.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

use crate::funcs::{self, ArgVal, Ty};
use crate::gofmt::{self, quote};
use crate::parse::{Arg, Cmd, Control, Node, Number, Pipe};
use crate::{Error, Options};

/// Deepest chain of `{{template}}` calls executed (Go allows 100000; we keep the stack small).
pub(crate) const MAX_EXEC_DEPTH: usize = 100;

/// A value during execution: Go's invalid reflect.Value (a missing key), a value inside the
/// data, or one computed by the template.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Missing,
    Ref(&'a Value),
    Own(Rc<Value>),
}

impl<'a> Val<'a> {
    /// The value, None when missing.
    pub fn get(&self) -> Option<&Value> {
        match self {
            Val::Missing => None,
            Val::Ref(v) => Some(v),
            Val::Own(v) => Some(v),
        }
    }

    /// The value as a nil-able interface: None for missing keys and JSON null.
    pub fn iface(&self) -> Option<&Value> {
        self.get().filter(|v| !v.is_null())
    }

    /// A computed value.
    pub fn own(v: Value) -> Val<'a> {
        Val::Own(Rc::new(v))
    }

    /// A part of this value (a map entry or list element), sharing the data when it can.
    pub fn child(&self, f: impl Fn(&Value) -> Option<&Value>) -> Option<Val<'a>> {
        match self {
            Val::Missing => None,
            Val::Ref(v) => f(v).map(Val::Ref),
            Val::Own(v) => f(v).map(|c| Val::own(c.clone())),
        }
    }

    /// Go's "dig down one level" of interface values: a JSON null becomes no value.
    fn dig(self) -> Val<'a> {
        match self.get() {
            Some(Value::Null) => Val::Missing,
            _ => self,
        }
    }
}

/// Go's isTrue for our values.
pub(crate) fn truth(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => match gofmt::num(n) {
            gofmt::Num::Int(i) => i != 0,
            gofmt::Num::Uint(u) => u != 0,
            gofmt::Num::Float(f) => f != 0.0,
        },
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct State<'a, 'o> {
    pub root: &'a Value,
    pub src: &'a str,
    pub trees: &'a HashMap<String, Vec<Node>>,
    pub name: String,
    pub vars: Vec<(String, Val<'a>)>,
    pub out: &'o mut String,
    pub depth: usize,
    pub opts: Options,
}

type R<T> = Result<T, Error>;

impl<'a, 'o> State<'a, 'o> {
    /// An execution error at `pos`, showing `ctx` (the node) as Go does.
    pub fn err(&self, pos: usize, ctx: &str, msg: impl std::fmt::Display) -> Error {
        let before = &self.src[..pos.min(self.src.len())];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(i) => pos - i - 1,
            None => pos,
        };
        let ctx = if ctx.chars().count() > 20 {
            format!("{}...", ctx.chars().take(20).collect::<String>())
        } else {
            ctx.to_string()
        };
        Error::new(format!(
            "template: :{line}:{col}: executing {} at <{ctx}>: {msg}",
            quote(&self.name, false)
        ))
    }

    fn arg_err(&self, arg: &Arg, msg: impl std::fmt::Display) -> Error {
        self.err(arg.pos(), &arg.to_string(), msg)
    }

    /// Runs a whole template with `dot` as its data.
    pub fn run(&mut self, dot: Val<'a>, list: &'a [Node]) -> R<()> {
        self.vars = vec![("$".to_string(), dot.clone())];
        self.walk(&dot, list).map(|_| ())
    }

    fn walk(&mut self, dot: &Val<'a>, list: &'a [Node]) -> R<Flow> {
        for node in list {
            let flow = match node {
                Node::Text(t) => {
                    self.out.push_str(t);
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    let v = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.print(&v);
                    }
                    Flow::Normal
                }
                Node::Control {
                    kind: Control::Range,
                    pipe,
                    list,
                    else_list,
                } => self.walk_range(dot, pipe, list, else_list.as_deref())?,
                Node::Control {
                    kind,
                    pipe,
                    list,
                    else_list,
                } => {
                    let mark = self.vars.len();
                    let r = self.walk_if_with(*kind, dot, pipe, list, else_list.as_deref());
                    self.vars.truncate(mark);
                    r?
                }
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
                Node::Template { pos, name, pipe } => {
                    self.walk_template(dot, *pos, name, pipe.as_ref())?;
                    Flow::Normal
                }
            };
            if !matches!(flow, Flow::Normal) {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn print(&mut self, v: &Val<'a>) {
        match v.iface() {
            None => self.out.push_str("<no value>"),
            Some(x) => {
                let s = gofmt::sprint_value(Some(x));
                self.out.push_str(&s);
            }
        }
    }

    fn walk_if_with(
        &mut self,
        kind: Control,
        dot: &Val<'a>,
        pipe: &'a Pipe,
        list: &'a [Node],
        else_list: Option<&'a [Node]>,
    ) -> R<Flow> {
        let val = self.eval_pipeline(dot, pipe)?;
        if truth(val.get()) {
            if kind == Control::With {
                self.walk(&val, list)
            } else {
                self.walk(dot, list)
            }
        } else if let Some(e) = else_list {
            self.walk(dot, e)
        } else {
            Ok(Flow::Normal)
        }
    }

    fn set_var(&mut self, pos: usize, ctx: &str, name: &str, v: Val<'a>) -> R<()> {
        for slot in self.vars.iter_mut().rev() {
            if slot.0 == name {
                slot.1 = v;
                return Ok(());
            }
        }
        Err(self.err(pos, ctx, format!("undefined variable: {name}")))
    }

    fn set_top_var(&mut self, n: usize, v: Val<'a>) {
        let len = self.vars.len();
        if n <= len {
            self.vars[len - n].1 = v;
        }
    }

    fn walk_range(
        &mut self,
        dot: &Val<'a>,
        pipe: &'a Pipe,
        list: &'a [Node],
        else_list: Option<&'a [Node]>,
    ) -> R<Flow> {
        let mark = self.vars.len();
        let r = self.walk_range_inner(dot, pipe, list, else_list);
        self.vars.truncate(mark);
        r
    }

    fn walk_range_inner(
        &mut self,
        dot: &Val<'a>,
        pipe: &'a Pipe,
        list: &'a [Node],
        else_list: Option<&'a [Node]>,
    ) -> R<Flow> {
        let val = self.eval_pipeline(dot, pipe)?;
        let inner = self.vars.len();
        let ctx = pipe.to_string();
        let one = |s: &mut Self, index: Val<'a>, elem: Val<'a>| -> R<bool> {
            if !pipe.decl.is_empty() {
                if pipe.is_assign {
                    let v = if pipe.decl.len() > 1 {
                        index.clone()
                    } else {
                        elem.clone()
                    };
                    s.set_var(pipe.pos, &ctx, &pipe.decl[0], v)?;
                } else {
                    s.set_top_var(1, elem.clone());
                }
            }
            if pipe.decl.len() > 1 {
                if pipe.is_assign {
                    s.set_var(pipe.pos, &ctx, &pipe.decl[1], elem.clone())?;
                } else {
                    s.set_top_var(2, index);
                }
            }
            let flow = s.walk(&elem, list);
            s.vars.truncate(inner);
            Ok(!matches!(flow?, Flow::Break))
        };
        let mut any = false;
        match val.get() {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) => {
                for i in 0..a.len() {
                    any = true;
                    let elem = val
                        .child(|v| v.as_array().and_then(|a| a.get(i)))
                        .unwrap_or(Val::Missing);
                    if !one(self, Val::own(Value::from(i)), elem)? {
                        break;
                    }
                }
            }
            Some(Value::Object(m)) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    any = true;
                    let elem = val
                        .child(|v| v.as_object().and_then(|m| m.get(&k)))
                        .unwrap_or(Val::Missing);
                    if !one(self, Val::own(Value::String(k)), elem)? {
                        break;
                    }
                }
            }
            Some(Value::Number(n)) if matches!(gofmt::num(n), gofmt::Num::Int(_)) => {
                let n = n.as_i64().unwrap_or(0);
                if pipe.decl.len() > 1 {
                    return Err(self.err(
                        pipe.pos,
                        &ctx,
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                for i in 0..n.max(0) {
                    any = true;
                    let v = Val::own(Value::from(i));
                    if !one(self, v.clone(), v)? {
                        break;
                    }
                }
            }
            Some(other) => {
                return Err(self.err(
                    pipe.pos,
                    &ctx,
                    format!(
                        "range can't iterate over {}",
                        gofmt::sprint_value(Some(other))
                    ),
                ))
            }
        }
        if !any {
            if let Some(e) = else_list {
                return self.walk(dot, e);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_template(
        &mut self,
        dot: &Val<'a>,
        pos: usize,
        name: &str,
        pipe: Option<&'a Pipe>,
    ) -> R<()> {
        let ctx = match pipe {
            Some(p) => format!("{{{{template {} {p}}}}}", quote(name, false)),
            None => format!("{{{{template {}}}}}", quote(name, false)),
        };
        let trees: &'a HashMap<String, Vec<Node>> = self.trees;
        let Some(tree) = trees.get(name) else {
            return Err(self.err(
                pos,
                &ctx,
                format!("template {} not defined", quote(name, false)),
            ));
        };
        if self.depth >= MAX_EXEC_DEPTH {
            return Err(self.err(
                pos,
                &ctx,
                format!("exceeded maximum template depth ({MAX_EXEC_DEPTH})"),
            ));
        }
        let new_dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Val::Missing,
        };
        let saved_vars =
            std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
        let saved_name = std::mem::replace(&mut self.name, name.to_string());
        self.depth += 1;
        let r = self.walk(&new_dot, tree);
        self.depth -= 1;
        self.name = saved_name;
        self.vars = saved_vars;
        r.map(|_| ())
    }

    pub fn eval_pipeline(&mut self, dot: &Val<'a>, pipe: &'a Pipe) -> R<Val<'a>> {
        let mut value: Option<Val<'a>> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, value.take())?;
            value = Some(v.dig());
        }
        let value = value.unwrap_or(Val::Missing);
        for name in &pipe.decl {
            if pipe.is_assign {
                let ctx = pipe.to_string();
                self.set_var(pipe.pos, &ctx, name, value.clone())?;
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], has_final: bool) -> R<()> {
        if args.len() > 1 || has_final {
            return Err(self.arg_err(
                &args[0],
                format!("can't give argument to non-function {}", args[0]),
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Val<'a>, cmd: &'a Cmd, fin: Option<Val<'a>>) -> R<Val<'a>> {
        let first = &cmd.args[0];
        let has_args = cmd.args.len() > 1 || fin.is_some();
        match first {
            Arg::Field(_, idents) => self.field_chain(dot.clone(), first, idents, has_args),
            Arg::Chain(_, node, fields) => self.eval_chain(dot, first, node, fields, has_args),
            Arg::Ident(_, name) => self.eval_function(dot, first, name, &cmd.args[1..], fin),
            Arg::Pipe(_, p) => {
                self.not_a_function(&cmd.args, fin.is_some())?;
                self.eval_pipeline(dot, p)
            }
            Arg::Variable(_, idents) => self.eval_variable(first, idents, has_args),
            Arg::Nil(_) => Err(self.arg_err(first, "nil is not a command")),
            _ => {
                self.not_a_function(&cmd.args, fin.is_some())?;
                match first {
                    Arg::Dot(_) => Ok(dot.clone()),
                    Arg::Bool(_, b) => Ok(Val::own(Value::Bool(*b))),
                    Arg::Str(_, s, _) => Ok(Val::own(Value::String(s.clone()))),
                    Arg::Number(_, n) => self.ideal_constant(first, n),
                    _ => Err(self.arg_err(first, format!("can't evaluate command {first}"))),
                }
            }
        }
    }

    fn ideal_constant(&self, node: &Arg, n: &Number) -> R<Val<'a>> {
        let t = &n.text;
        let hex = t.len() > 2
            && (t.starts_with("0x")
                || t.starts_with("0X")
                || t.starts_with("-0x")
                || t.starts_with("+0x"));
        if let Some(f) = n.float {
            if !n.is_char && !hex && t.contains(['.', 'e', 'E', 'p', 'P']) {
                if let Some(num) = serde_json::Number::from_f64(f) {
                    return Ok(Val::own(Value::Number(num)));
                }
            }
        }
        if let Some(i) = n.int {
            return Ok(Val::own(Value::from(i)));
        }
        if n.uint.is_some() {
            return Err(self.arg_err(node, format!("{t} overflows int")));
        }
        match n.float.and_then(serde_json::Number::from_f64) {
            Some(num) => Ok(Val::own(Value::Number(num))),
            None => Err(self.arg_err(node, format!("illegal number syntax: {t}"))),
        }
    }

    fn eval_variable(&mut self, node: &Arg, idents: &'a [String], has_args: bool) -> R<Val<'a>> {
        let name = &idents[0];
        let Some(v) = self
            .vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
        else {
            return Err(self.arg_err(node, format!("undefined variable: {name}")));
        };
        if idents.len() == 1 {
            if has_args {
                return Err(
                    self.arg_err(node, format!("can't give argument to non-function {node}"))
                );
            }
            return Ok(v);
        }
        self.field_chain(v, node, &idents[1..], has_args)
    }

    fn eval_chain(
        &mut self,
        dot: &Val<'a>,
        chain: &Arg,
        node: &'a Arg,
        fields: &'a [String],
        has_args: bool,
    ) -> R<Val<'a>> {
        if matches!(node, Arg::Nil(_)) {
            return Err(self.arg_err(
                chain,
                format!("indirection through explicit nil in {chain}"),
            ));
        }
        let v = match self.eval_arg(dot, node, Ty::Any)? {
            ArgVal::Any(v) => v,
            _ => Val::Missing,
        };
        self.field_chain(v, chain, fields, has_args)
    }

    fn field_chain(
        &mut self,
        mut receiver: Val<'a>,
        node: &Arg,
        idents: &[String],
        has_args: bool,
    ) -> R<Val<'a>> {
        let n = idents.len();
        for (i, name) in idents.iter().enumerate() {
            receiver = self.eval_field(name, node, has_args && i + 1 == n, receiver)?;
        }
        Ok(receiver)
    }

    fn eval_field(
        &mut self,
        name: &str,
        node: &Arg,
        has_args: bool,
        receiver: Val<'a>,
    ) -> R<Val<'a>> {
        match receiver.get() {
            None => {
                if self.opts.missing_key_error {
                    return Err(self.arg_err(
                        node,
                        format!("nil data; no entry for key {}", quote(name, false)),
                    ));
                }
                Ok(Val::Missing)
            }
            Some(Value::Null) => Err(self.arg_err(
                node,
                format!("nil pointer evaluating interface {{}}.{name}"),
            )),
            Some(Value::Object(m)) => {
                if has_args {
                    return Err(
                        self.arg_err(node, format!("{name} is not a method but has arguments"))
                    );
                }
                if !m.contains_key(name) {
                    if let (Some(t), Val::Ref(r)) = (self.opts.root_type, &receiver) {
                        if std::ptr::eq(*r, self.root) {
                            return Err(self.arg_err(
                                node,
                                format!("can't evaluate field {name} in type {t}"),
                            ));
                        }
                    }
                    if self.opts.missing_key_error {
                        return Err(self.arg_err(
                            node,
                            format!("map has no entry for key {}", quote(name, false)),
                        ));
                    }
                    return Ok(Val::Missing);
                }
                Ok(receiver
                    .child(|v| v.as_object().and_then(|m| m.get(name)))
                    .unwrap_or(Val::Missing))
            }
            Some(other) => Err(self.arg_err(
                node,
                format!(
                    "can't evaluate field {name} in type {}",
                    gofmt::type_name(Some(other))
                ),
            )),
        }
    }

    fn validate(&self, v: Val<'a>, ty: Ty, at: &Arg) -> R<ArgVal<'a>> {
        let expected = ty.go_name();
        Ok(match ty {
            Ty::Any => ArgVal::Any(v),
            Ty::Str => match v.get() {
                None | Some(Value::Null) => {
                    return Err(self.arg_err(at, format!("invalid value; expected {expected}")))
                }
                Some(Value::String(s)) => ArgVal::Str(s.clone()),
                Some(other) => {
                    return Err(self.arg_err(
                        at,
                        format!(
                            "wrong type for value; expected {expected}; got {}",
                            gofmt::type_name(Some(other))
                        ),
                    ))
                }
            },
            Ty::Int => match v.get() {
                None | Some(Value::Null) => {
                    return Err(self.arg_err(at, format!("invalid value; expected {expected}")))
                }
                Some(Value::Number(n)) if n.is_i64() => ArgVal::Int(n.as_i64().unwrap_or(0)),
                Some(other) => {
                    return Err(self.arg_err(
                        at,
                        format!(
                            "wrong type for value; expected {expected}; got {}",
                            gofmt::type_name(Some(other))
                        ),
                    ))
                }
            },
            Ty::StrSlice => match v.get() {
                None | Some(Value::Null) => ArgVal::StrSlice(Vec::new()),
                Some(Value::Array(a)) if a.iter().all(Value::is_string) => ArgVal::StrSlice(
                    a.iter()
                        .map(|s| s.as_str().unwrap_or_default().to_string())
                        .collect(),
                ),
                Some(other) => {
                    return Err(self.arg_err(
                        at,
                        format!(
                            "wrong type for value; expected {expected}; got {}",
                            gofmt::type_name(Some(other))
                        ),
                    ))
                }
            },
        })
    }

    /// Evaluates one argument for a parameter of type `ty`.
    pub fn eval_arg(&mut self, dot: &Val<'a>, arg: &'a Arg, ty: Ty) -> R<ArgVal<'a>> {
        let v = match arg {
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(_) => {
                return match ty {
                    Ty::Any => Ok(ArgVal::Any(Val::Missing)),
                    Ty::StrSlice => Ok(ArgVal::StrSlice(Vec::new())),
                    _ => Err(self.arg_err(arg, format!("cannot assign nil to {}", ty.go_name()))),
                }
            }
            Arg::Field(_, idents) => self.field_chain(dot.clone(), arg, idents, false)?,
            Arg::Variable(_, idents) => self.eval_variable(arg, idents, false)?,
            Arg::Pipe(_, p) => self.eval_pipeline(dot, p)?,
            Arg::Ident(_, name) => self.eval_function(dot, arg, name, &[], None)?,
            Arg::Chain(_, node, fields) => self.eval_chain(dot, arg, node, fields, false)?,
            Arg::Bool(_, b) => match ty {
                Ty::Any => Val::own(Value::Bool(*b)),
                _ => return Err(self.literal_err(arg, ty)),
            },
            Arg::Str(_, s, _) => match ty {
                Ty::Any | Ty::Str => Val::own(Value::String(s.clone())),
                _ => return Err(self.literal_err(arg, ty)),
            },
            Arg::Number(_, n) => match ty {
                Ty::Any => self.ideal_constant(arg, n)?,
                Ty::Int => match n.int {
                    Some(i) => Val::own(Value::from(i)),
                    None => return Err(self.literal_err(arg, ty)),
                },
                _ => return Err(self.literal_err(arg, ty)),
            },
        };
        self.validate(v, ty, arg)
    }

    fn literal_err(&self, arg: &Arg, ty: Ty) -> Error {
        match ty {
            Ty::Str => self.arg_err(arg, format!("expected string; found {arg}")),
            Ty::Int => self.arg_err(arg, format!("expected integer; found {arg}")),
            _ => self.arg_err(
                arg,
                format!("can't handle {arg} for arg of type {}", ty.go_name()),
            ),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Val<'a>,
        node: &Arg,
        name: &str,
        args: &'a [Arg],
        fin: Option<Val<'a>>,
    ) -> R<Val<'a>> {
        let Some(sig) = funcs::sig(name, self.opts.header) else {
            return Err(self.arg_err(
                node,
                format!("{} is not a defined function", quote(name, false)),
            ));
        };
        let num_in = args.len() + usize::from(fin.is_some());
        match sig.variadic {
            Some(_) if num_in < sig.fixed.len() => {
                return Err(self.arg_err(
                    node,
                    format!(
                        "wrong number of args for {name}: want at least {} got {}",
                        sig.fixed.len(),
                        args.len()
                    ),
                ))
            }
            None if num_in != sig.fixed.len() => {
                return Err(self.arg_err(
                    node,
                    format!(
                        "wrong number of args for {name}: want {} got {num_in}",
                        sig.fixed.len()
                    ),
                ))
            }
            _ => {}
        }
        if name == "and" || name == "or" {
            let want = name == "or";
            let mut v = Val::Missing;
            for a in args {
                if let ArgVal::Any(x) = self.eval_arg(dot, a, Ty::Any)? {
                    v = x;
                }
                if truth(v.get()) == want {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = f;
            }
            return Ok(v);
        }
        let ty_at = |i: usize| -> Ty {
            if i < sig.fixed.len() {
                sig.fixed[i]
            } else {
                sig.variadic.unwrap_or(Ty::Any)
            }
        };
        let mut argv = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            argv.push(self.eval_arg(dot, a, ty_at(i))?);
        }
        if let Some(f) = fin {
            let v = self.validate(f, ty_at(args.len()), node)?;
            argv.push(v);
        }
        let callee = args.first().map(ToString::to_string).unwrap_or_default();
        funcs::apply(name, self.opts.header, argv, &callee)
            .map_err(|e| self.arg_err(node, format!("error calling {name}: {e}")))
    }
}
