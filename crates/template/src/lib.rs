//! skiff-template owns Go's text/template language as docker's `--format` flags use it: the
//! lexer (lex.rs), parser (parse.rs) and executor (exec.rs) of Go's templates over JSON values
//! (serde_json::Value standing in for Go's decoded `map[string]interface{}`), Go's fmt printing
//! and Printf (gofmt.rs), Go's JSON encoder (json.rs), and the functions: Go's builtins plus
//! docker's `json`, `split`, `join`, `title`, `lower`, `upper`, `pad`, `truncate` (funcs.rs).
//!
//! It knows nothing of containers or of docker's `table` directive; the CLI builds those on it.
//! Outputs and error messages follow Go's (`template: :1:2: executing "" at <.Foo>: ...`).
//! Parsing and execution are bounded (nesting depth, template-call depth) so no input panics or
//! exhausts the stack.

mod exec;
mod funcs;
mod gofmt;
mod json;
mod lex;
mod parse;

use std::collections::HashMap;

use serde_json::Value;

/// A template error (parse or execution), worded as Go words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    fn new(msg: String) -> Error {
        Error(msg)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// How a template is executed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// docker's header functions: `json`, `split`, `join`, `title`, `lower`, `upper` and
    /// `truncate` return their string argument unchanged (used to render table headers).
    pub header: bool,
    /// Go's `missingkey=error`: a missing map key is an error instead of `<no value>`.
    pub missing_key_error: bool,
    /// The data's top-level object stands for a Go struct of this type (docker's list rows,
    /// version and info are structs): a field it lacks is an error, `can't evaluate field X in
    /// type T`, where a map would give `<no value>`.
    pub root_type: Option<&'static str>,
}

/// A parsed template (the main one and every `define`/`block` in it).
#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    trees: HashMap<String, Vec<parse::Node>>,
}

impl Template {
    /// Parses Go template text.
    pub fn parse(src: &str) -> Result<Template, Error> {
        let trees = parse::parse(src)?;
        Ok(Template {
            src: src.to_string(),
            trees,
        })
    }

    /// Executes the template on `data` and returns its output.
    pub fn execute(&self, data: &Value) -> Result<String, Error> {
        let mut out = String::new();
        self.execute_into(&mut out, data, Options::default())?;
        Ok(out)
    }

    /// Executes the template, appending to `out`; on error, `out` keeps what was written before
    /// the error, as Go's writer would.
    pub fn execute_into(&self, out: &mut String, data: &Value, opts: Options) -> Result<(), Error> {
        let Some(root) = self.trees.get("") else {
            return Err(Error::new(
                "template: \"\" is an incomplete or empty template".into(),
            ));
        };
        let mut st = exec::State {
            root: data,
            src: &self.src,
            trees: &self.trees,
            name: String::new(),
            vars: Vec::new(),
            out,
            depth: 0,
            opts,
        };
        st.run(exec::Val::Ref(data), root)
    }
}

/// Go's `fmt.Sprint` of a JSON value (`[a b]`, `map[k:v]`, `<nil>`, floats as `%v`).
pub fn sprint(v: &Value) -> String {
    gofmt::sprint_value(Some(v))
}

/// docker's `json` template function: Go's compact JSON with HTML characters left alone.
pub fn to_json(v: &Value) -> String {
    json::encode(Some(v))
}
