//! Templates against a fixed JSON value, with outputs as Go's text/template and docker's
//! template functions produce them (each case written from Go's and docker's documented behaviour).

use serde_json::{json, Value};
use skiff_template::{Options, Template};

fn data() -> Value {
    serde_json::from_str(
        r#"{
        "Id": "abc123",
        "Name": "/web",
        "State": {"Status": "running", "Running": true, "Paused": false, "Pid": 4242,
                  "ExitCode": 0, "Health": null},
        "Config": {"Labels": {"b": "2", "a": "1", "com.example": "x"}, "Env": ["A=1", "B=2"],
                   "Cmd": ["sh", "-c", "echo hi"], "Image": "busybox", "Domainname": ""},
        "Mounts": [{"Destination": "/data", "Source": "/var/x", "RW": true},
                   {"Destination": "/cfg", "Source": "/etc/y", "RW": false}],
        "Big": 9223372036854775807, "Uint": 18446744073709551615, "Million": 1000000,
        "FloatMillion": 1000000.0, "Float": 1.5, "Tiny": 0.00001, "Tinier": 0.0000001,
        "Pi": 3.14159, "Num": 42, "Neg": -7,
        "Html": "<a&b>", "Empty": "", "EmptyList": [], "EmptyMap": {}, "Null": null,
        "Nested": {"Deep": {"Deeper": "x"}},
        "Ints": [3, 1, 2], "Strs": ["x", "y", "z"]
    }"#,
    )
    .unwrap()
}

/// Expected result: the exact output, or an error containing the text.
enum Want {
    Out(&'static str),
    Err(&'static str),
}
use Want::{Err as E, Out as O};

const CASES: &[(&str, Want)] = &[
    // Text, fields, nesting, Go's printing of values.
    ("hello", O("hello")),
    ("{{.Id}}", O("abc123")),
    ("{{ .Id }}", O("abc123")),
    ("{{.State.Status}}", O("running")),
    ("{{.State.Running}}", O("true")),
    ("{{.State.Pid}}", O("4242")),
    ("{{.Big}}", O("9223372036854775807")),
    ("{{.Uint}}", O("18446744073709551615")),
    ("{{.Million}}", O("1000000")),
    ("{{.FloatMillion}}", O("1e+06")),
    ("{{.Float}}", O("1.5")),
    ("{{.Tiny}}", O("1e-05")),
    ("{{.Pi}}", O("3.14159")),
    ("{{.Neg}}", O("-7")),
    ("{{.Missing}}", O("<no value>")),
    ("{{.Null}}", O("<no value>")),
    ("{{.State.Health}}", O("<no value>")),
    ("{{.Missing.Foo}}", O("<no value>")),
    ("{{.Null.Foo}}", E("template: :1:2: executing \"\" at <.Null.Foo>: nil pointer evaluating interface {}.Foo")),
    ("{{.Id.Foo}}", E("template: :1:2: executing \"\" at <.Id.Foo>: can't evaluate field Foo in type")),
    ("{{.Config.Cmd}}", O("[sh -c echo hi]")),
    ("{{.Config.Labels}}", O("map[a:1 b:2 com.example:x]")),
    ("{{.Config.Labels.a}}", O("1")),
    ("{{.EmptyList}}", O("[]")),
    ("{{.EmptyMap}}", O("map[]")),
    ("{{.Nested}}", O("map[Deep:map[Deeper:x]]")),
    ("{{.Mounts}}", O("[map[Destination:/data RW:true Source:/var/x] map[Destination:/cfg RW:false Source:/etc/y]]")),
    ("{{$.Id}}", O("abc123")),
    ("{{(.State).Status}}", O("running")),
    ("{{(index .Mounts 1).Destination}}", O("/cfg")),
    ("{{.Id 1}}", E("Id is not a method but has arguments")),
    ("{{\"x\" 1}}", E("can't give argument to non-function \"x\"")),
    ("{{nil}}", E("template: :1:2: executing \"\" at <nil>: nil is not a command")),
    // Constants.
    ("{{-3}}", O("-3")),
    ("{{1.5}}", O("1.5")),
    ("{{1e3}}", O("1000")),
    ("{{0x1F}}", O("31")),
    ("{{'a'}}", O("97")),
    ("{{true}}", O("true")),
    ("{{\"a\\tb\"}}", O("a\tb")),
    ("{{`raw\\n`}}", O("raw\\n")),
    // Comments and trimming.
    ("a {{/* comment */}} b", O("a  b")),
    ("a {{- /* c */ -}} b", O("ab")),
    ("a  {{- .Id -}}  b", O("aabc123b")),
    ("x  {{- 3 -}}\n y", O("x3y")),
    ("{{.Id}}\n", O("abc123\n")),
    // index / slice / len.
    ("{{index .Config.Labels \"a\"}}", O("1")),
    ("{{index .Config.Labels \"com.example\"}}", O("x")),
    ("{{index .Config.Labels \"zz\"}}", O("<no value>")),
    ("{{index .Config.Cmd 1}}", O("-c")),
    ("{{index .Config.Cmd 5}}", E("template: :1:2: executing \"\" at <index>: error calling index: index out of range: 5")),
    ("{{index .Nested \"Deep\" \"Deeper\"}}", O("x")),
    ("{{index .Mounts 0 \"Destination\"}}", O("/data")),
    ("{{index .Id 0}}", O("97")),
    ("{{index .Missing 0}}", E("error calling index: index of untyped nil")),
    ("{{index .Config.Labels 1}}", E("error calling index: value has type int; should be string")),
    ("{{len .Strs}}", O("3")),
    ("{{len .Config.Labels}}", O("3")),
    ("{{len .Id}}", O("6")),
    ("{{.Ints | len}}", O("3")),
    ("{{len .Num}}", E("error calling len: len of type int")),
    ("{{slice .Strs 1}}", O("[y z]")),
    ("{{slice .Strs 1 2}}", O("[y]")),
    ("{{slice .Id 0 3}}", O("abc")),
    ("{{slice .Id 3 1}}", E("error calling slice: invalid slice index: 3 > 1")),
    // range.
    ("{{range .Mounts}}{{.Destination}} {{end}}", O("/data /cfg ")),
    ("{{range $i, $m := .Mounts}}{{$i}}:{{$m.Destination}};{{end}}", O("0:/data;1:/cfg;")),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", O("a=1,b=2,com.example=x,")),
    ("{{range $v := .Strs}}{{$v}}{{end}}", O("xyz")),
    ("{{range .Ints}}{{.}},{{end}}", O("3,1,2,")),
    ("{{range .EmptyList}}x{{else}}empty{{end}}", O("empty")),
    ("{{range .EmptyMap}}x{{else}}e{{end}}", O("e")),
    ("{{range .Missing}}x{{else}}none{{end}}", O("none")),
    ("{{range .Null}}x{{else}}none{{end}}", O("none")),
    ("{{range .Strs}}{{if eq . \"y\"}}{{break}}{{end}}{{.}}{{end}}", O("x")),
    ("{{range .Strs}}{{if eq . \"y\"}}{{continue}}{{end}}{{.}}{{end}}", O("xz")),
    ("{{range 3}}{{.}}{{end}}", O("012")),
    ("{{range $i := 3}}{{$i}}{{end}}", O("012")),
    ("{{range .Id}}{{end}}", E("range can't iterate over abc123")),
    ("{{range $i, $v := .Config.Labels}}{{end}}{{$i}}", E("template: :1: undefined variable \"$i\"")),
    ("{{range $a, $b, $c := .Strs}}{{end}}", E("template: :1: too many declarations in range")),
    ("{{range .Strs}}{{$.Id}}{{end}}", O("abc123abc123abc123")),
    // if / else if / with / else with.
    ("{{if .State.Running}}up{{else}}down{{end}}", O("up")),
    ("{{if .State.Paused}}p{{else if .State.Running}}r{{else}}x{{end}}", O("r")),
    ("{{if .Empty}}a{{else}}b{{end}}", O("b")),
    ("{{if .EmptyList}}a{{else}}b{{end}}", O("b")),
    ("{{if .Missing}}a{{else}}b{{end}}", O("b")),
    ("{{if 0}}a{{else}}b{{end}}", O("b")),
    ("{{if .Num}}a{{end}}", O("a")),
    ("{{with .State}}{{.Status}}{{end}}", O("running")),
    ("{{with .State}}{{$.Id}}{{end}}", O("abc123")),
    ("{{with .Missing}}x{{else}}y{{end}}", O("y")),
    ("{{with .Missing}}x{{else with .State}}{{.Pid}}{{end}}", O("4242")),
    ("{{with $s := .State}}{{$s.Status}}/{{.Pid}}{{end}}", O("running/4242")),
    // Variables.
    ("{{$x := 1}}{{$x}}", O("1")),
    ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", O("2")),
    ("{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}", O("21")),
    ("{{$x := 0}}{{range .Ints}}{{$x = .}}{{end}}{{$x}}", O("2")),
    ("{{$x := .Id}}{{range .Strs}}{{$x}}{{end}}", O("abc123abc123abc123")),
    ("{{$n := len .Strs}}{{$n}}", O("3")),
    ("{{$x}}", E("template: :1: undefined variable \"$x\"")),
    // define / template / block.
    ("{{define \"T\"}}[{{.}}]{{end}}{{template \"T\" .Id}}", O("[abc123]")),
    ("{{define \"T\"}}x{{end}}{{template \"T\"}}", O("x")),
    ("{{block \"B\" .State}}{{.Status}}{{end}}", O("running")),
    ("{{define \"rec\"}}{{if .}}{{index . 0}}{{template \"rec\" slice . 1}}{{end}}{{end}}{{template \"rec\" .Strs}}", O("xyz")),
    ("{{template \"nope\"}}", E("template: :1:11: executing \"\" at <{{template \"nope\"}}>: template \"nope\" not defined")),
    ("{{define \"a\"}}{{template \"a\"}}{{end}}{{template \"a\"}}", E("exceeded maximum template depth")),
    ("{{define \"x\"}}a{{end}}{{define \"x\"}}b{{end}}", E("template: :1: template: multiple definition of template \"x\"")),
    // Pipelines and printf.
    ("{{.Id | printf \"%s!\"}}", O("abc123!")),
    ("{{.Id | printf \"%s-%d\" .Name}}", O("/web-%!d(string=abc123)")),
    ("{{printf \"%s-%d\" .Name .State.Pid}}", O("/web-4242")),
    ("{{.State.Pid | printf \"%d\"}}", O("4242")),
    ("{{printf \"%s\" (print .State.Pid)}}", O("4242")),
    ("{{printf \"%v\" .Config.Cmd}}", O("[sh -c echo hi]")),
    ("{{printf \"%q\" .Id}}", O("\"abc123\"")),
    ("{{printf \"%q\" .Config.Cmd}}", O("[\"sh\" \"-c\" \"echo hi\"]")),
    ("{{printf \"%x\" .Id}}", O("616263313233")),
    ("{{printf \"%X\" 255}}", O("FF")),
    ("{{printf \"%x\" 255}}", O("ff")),
    ("{{printf \"%#x\" 255}}", O("0xff")),
    ("{{printf \"%t\" .State.Running}}", O("true")),
    ("{{printf \"%f\" .Float}}", O("1.500000")),
    ("{{printf \"%.2f\" .Pi}}", O("3.14")),
    ("{{printf \"%6.2f\" 3.14159}}", O("  3.14")),
    ("{{printf \"%5s|\" \"ab\"}}", O("   ab|")),
    ("{{printf \"%-10s|\" \"ab\"}}", O("ab        |")),
    ("{{printf \"%.3s\" \"abcdef\"}}", O("abc")),
    ("{{printf \"%05d\" 42}}", O("00042")),
    ("{{printf \"%05d\" -42}}", O("-0042")),
    ("{{printf \"%+d\" 5}}", O("+5")),
    ("{{printf \"%d%%\" 50}}", O("50%")),
    ("{{printf \"%d\" .Id}}", O("%!d(string=abc123)")),
    ("{{printf \"%d\"}}", O("%!d(MISSING)")),
    ("{{printf \"%d\" 1 2}}", O("1%!(EXTRA int=2)")),
    ("{{printf \"%s\" .Missing}}", O("%!s(<nil>)")),
    ("{{printf \"%v\" .Missing}}", O("<nil>")),
    ("{{printf \"%v\" .Null}}", O("<nil>")),
    ("{{printf \"%T\" .Float}}", O("float64")),
    ("{{printf \"%T\" .Num}}", O("int")),
    ("{{printf \"%T\" .Config.Cmd}}", O("[]interface {}")),
    ("{{printf \"%e\" 1234.5678}}", O("1.234568e+03")),
    ("{{printf \"%g\" 0.000012}}", O("1.2e-05")),
    ("{{printf \"%.3g\" 1234.5}}", O("1.23e+03")),
    ("{{printf \"%c\" 65}}", O("A")),
    ("{{printf \"%U\" 65}}", O("U+0041")),
    ("{{printf \"%o\" 8}}", O("10")),
    ("{{printf \"%b\" 5}}", O("101")),
    ("{{printf \"%v %v\" true 1.5}}", O("true 1.5")),
    ("{{printf \"%q\" 'x'}}", O("'x'")),
    ("{{printf \"%s=%s\" \"a\"}}", O("a=%!s(MISSING)")),
    ("{{printf 1}}", E("expected string; found 1")),
    // print / println.
    ("{{print \"a\" \"b\"}}", O("ab")),
    ("{{print 1 2}}", O("1 2")),
    ("{{print \"a\" 1 2 \"b\"}}", O("a1 2b")),
    ("{{println \"a\" 1}}", O("a 1\n")),
    ("{{print .Missing}}", O("<nil>")),
    ("{{print}}", O("")),
    ("{{print .Nested}}", O("map[Deep:map[Deeper:x]]")),
    // Comparisons and logic.
    ("{{eq .State.Status \"running\"}}", O("true")),
    ("{{eq .State.Status \"a\" \"b\" \"running\"}}", O("true")),
    ("{{eq .State.Status \"a\" \"b\"}}", O("false")),
    ("{{eq .Num 42}}", O("true")),
    ("{{eq .Num \"42\"}}", E("error calling eq: incompatible types for comparison")),
    ("{{eq .Missing \"x\"}}", O("false")),
    ("{{eq .Num}}", E("error calling eq: missing argument for comparison")),
    ("{{ne .Num 1}}", O("true")),
    ("{{lt 1 2}}", O("true")),
    ("{{lt \"a\" \"b\"}}", O("true")),
    ("{{le 2 2}}", O("true")),
    ("{{gt .Num 40}}", O("true")),
    ("{{ge .Num 43}}", O("false")),
    ("{{lt 1.5 2}}", E("error calling lt: incompatible types for comparison")),
    ("{{lt true false}}", E("error calling lt: invalid type for comparison")),
    ("{{and 1 0 2}}", O("0")),
    ("{{and 1 2}}", O("2")),
    ("{{or 0 \"\" \"x\"}}", O("x")),
    ("{{or 0 \"\"}}", O("")),
    ("{{or .Id .Null.Foo}}", O("abc123")),
    ("{{and .Empty .Null.Foo}}", O("")),
    ("{{and .Id .Null.Foo}}", E("nil pointer evaluating interface {}.Foo")),
    ("{{not .State.Running}}", O("false")),
    ("{{not .Missing}}", O("true")),
    ("{{if and .State.Running (eq .State.Pid 4242)}}ok{{end}}", O("ok")),
    ("{{if or .State.Paused (not .State.Running)}}a{{else}}b{{end}}", O("b")),
    // html / js / urlquery / call.
    ("{{html .Html}}", O("&lt;a&amp;b&gt;")),
    ("{{\"<b>\" | html}}", O("&lt;b&gt;")),
    ("{{html .Missing}}", O("&lt;no value&gt;")),
    ("{{js \"a'b\\\"<>=\"}}", O("a\\'b\\\"\\u003C\\u003E\\u003D")),
    ("{{urlquery \"a b&c=d/é\"}}", O("a+b%26c%3Dd%2F%C3%A9")),
    ("{{call .Id}}", E("error calling call: non-function .Id of type string")),
    // docker's functions.
    ("{{json .Config.Cmd}}", O("[\"sh\",\"-c\",\"echo hi\"]")),
    ("{{json .Html}}", O("\"<a&b>\"")),
    ("{{json .Config.Labels}}", O("{\"a\":\"1\",\"b\":\"2\",\"com.example\":\"x\"}")),
    ("{{json .Mounts}}", O("[{\"Destination\":\"/data\",\"RW\":true,\"Source\":\"/var/x\"},{\"Destination\":\"/cfg\",\"RW\":false,\"Source\":\"/etc/y\"}]")),
    ("{{json .Missing}}", O("null")),
    ("{{json .Big}}", O("9223372036854775807")),
    ("{{json .Float}}", O("1.5")),
    ("{{json .FloatMillion}}", O("1000000")),
    ("{{json .Tiny}}", O("0.00001")),
    ("{{json .Tinier}}", O("1e-7")),
    ("{{json \"a\\nb\"}}", O("\"a\\nb\"")),
    ("{{.State | json}}", O("{\"ExitCode\":0,\"Health\":null,\"Paused\":false,\"Pid\":4242,\"Running\":true,\"Status\":\"running\"}")),
    ("{{join .Config.Env \",\"}}", O("A=1,B=2")),
    ("{{join .Missing \",\"}}", O("")),
    ("{{join .Ints \",\"}}", E("wrong type for value; expected []string; got []interface {}")),
    ("{{split \"a,b,c\" \",\"}}", O("[a b c]")),
    ("{{index (split \"a:b\" \":\") 1}}", O("b")),
    ("{{len (split \"\" \",\")}}", O("1")),
    ("{{title \"hello world-foo\"}}", O("Hello World-Foo")),
    ("{{lower \"ABC\"}}", O("abc")),
    ("{{upper .State.Status}}", O("RUNNING")),
    ("{{upper 1}}", E("expected string; found 1")),
    ("{{upper .Missing}}", E("invalid value; expected string")),
    ("{{upper .Num}}", E("wrong type for value; expected string; got int")),
    ("{{truncate .Id 3}}", O("abc")),
    ("{{truncate .Id 10}}", O("abc123")),
    ("{{pad .Id 1 2}}", O(" abc123  ")),
    ("{{pad .Empty 1 2}}", O("")),
    ("{{upper}}", E("wrong number of args for upper: want 1 got 0")),
    // Parse errors.
    ("{{.Id", E("template: :1: unclosed action")),
    ("{{foo}}", E("template: :1: function \"foo\" not defined")),
    ("{{end}}", E("template: :1: unexpected {{end}}")),
    ("{{else}}", E("template: :1: unexpected {{else}}")),
    ("{{if .Id}}x", E("template: :1: unexpected EOF")),
    ("{{break}}", E("template: :1: {{break}} outside {{range}}")),
    ("{{\"abc}}", E("unterminated quoted string")),
    ("{{/* x }}", E("unclosed comment")),
    ("{{/* x */ .Id}}", E("comment ends before closing delimiter")),
    ("{{(.Id}}", E("unclosed left paren")),
    ("{{.Id)}}", E("unexpected right paren")),
    ("{{}}", E("template: :1: missing value for command")),
    ("{{.Id | \"x\"}}", E("non executable command in pipeline stage 2")),
    ("{{3x}}", E("bad number syntax: \"3x\"")),
    ("{{.Id #}}", E("unexpected \"#\" in operand")),
    ("a\n{{.Id}}\n{{.Null.X}}", E("template: :3:2: executing \"\" at <.Null.X>")),
    ("a\n\n{{if}}{{end}}", E("template: :3: missing value for if")),
];

#[test]
fn go_template_cases() {
    let d = data();
    let mut failures = Vec::new();
    for (src, want) in CASES {
        let got = Template::parse(src).and_then(|t| t.execute(&d));
        let ok = match (want, &got) {
            (O(w), Ok(g)) => w == g,
            (E(w), Err(e)) => e.to_string().contains(w),
            _ => false,
        };
        if !ok {
            let w = match want {
                O(w) => format!("output {w:?}"),
                E(w) => format!("error containing {w:?}"),
            };
            failures.push(format!("{src:?}: want {w}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
    assert!(CASES.len() >= 100);
}

#[test]
fn missingkey_error_and_header_modes() {
    let d = data();
    let t = Template::parse("{{.Missing}}").unwrap();
    let mut out = String::new();
    let opts = Options {
        missing_key_error: true,
        ..Options::default()
    };
    let e = t.execute_into(&mut out, &d, opts).unwrap_err();
    assert!(
        e.to_string()
            .contains("map has no entry for key \"Missing\""),
        "{e}"
    );
    // A struct-like root: its missing fields are errors, maps inside it still give <no value>.
    let opts = Options {
        root_type: Some("*formatter.ContainerContext"),
        ..Options::default()
    };
    for (src, want) in [
        ("{{.Nope}}", Err("template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope in type *formatter.ContainerContext")),
        ("{{.Config.Labels.zz}}", Ok("<no value>")),
        ("{{with .State}}{{.Nope}}{{end}}", Ok("<no value>")),
        ("{{.Id}}", Ok("abc123")),
    ] {
        let mut out = String::new();
        let r = Template::parse(src).unwrap().execute_into(&mut out, &d, opts);
        match want {
            Ok(w) => assert_eq!((r, out.as_str()), (Ok(()), w), "{src}"),
            Err(w) => assert_eq!(r.unwrap_err().to_string(), w, "{src}"),
        }
    }
    // docker's header functions leave header names as they are; pad still pads.
    let h = json!({"ID": "CONTAINER ID", "Names": "NAMES"});
    let opts = Options {
        header: true,
        ..Options::default()
    };
    for (src, want) in [
        ("{{json .ID}}", "CONTAINER ID"),
        ("{{upper .Names}}|{{lower .ID}}", "NAMES|CONTAINER ID"),
        ("{{truncate .ID 3}}", "CONTAINER ID"),
        ("{{pad .ID 1 1}}", " CONTAINER ID "),
    ] {
        let mut out = String::new();
        Template::parse(src)
            .unwrap()
            .execute_into(&mut out, &h, opts)
            .unwrap();
        assert_eq!(out, want, "{src}");
    }
    // Output written before an error is kept (docker prints partial headers).
    let mut out = String::new();
    let r = Template::parse("a{{.ID}}b{{json .}}c")
        .unwrap()
        .execute_into(&mut out, &h, opts);
    assert!(r.is_err());
    assert_eq!(out, "aCONTAINER IDb");
}

#[test]
fn hostile_inputs_error_without_panicking() {
    let d = data();
    let deep_if = "{{if 1}}".repeat(5000);
    let deep_paren = format!("{{{{{}1{}}}}}", "(".repeat(5000), ")".repeat(5000));
    let inputs = [
        deep_if.as_str(),
        deep_paren.as_str(),
        "{{",
        "{{-",
        "{{- ",
        "{{/*",
        "{{'",
        "{{'ab'}}",
        "{{\"\\q\"}}",
        "{{`",
        "{{$",
        "{{.",
        "{{..}}",
        "{{range}}",
        "{{with}}{{end}}",
        "{{define}}",
        "{{define \"a\"}}",
        "{{template}}",
        "{{block \"x\"}}{{end}}",
        "{{printf \"%*d\" 5}}",
        "{{printf \"%[3]d\" 1}}",
        "{{printf \"%\"}}",
        "{{printf \"%999999999999999999d\" 1}}",
        "{{99999999999999999999999}}",
        "{{slice .Strs 1 2 3 4}}",
        "{{index .Strs -1}}",
        "{{truncate .Id -1}}",
        "{{pad .Id -1 0}}",
        "{{range $i, $v := 3}}{{end}}",
        "\u{0}{{\u{0}}}",
        "{{.Id}}{{",
        "}}{{",
    ];
    for src in inputs {
        if let Ok(t) = Template::parse(src) {
            let _ = t.execute(&d);
        }
    }
    assert!(Template::parse(&deep_if).is_err());
    assert!(Template::parse(&deep_paren).is_err());
    assert_eq!(
        Template::parse("{{printf \"%*d\" 5}}")
            .unwrap()
            .execute(&d)
            .unwrap(),
        "%!d(MISSING)"
    );
    assert_eq!(
        Template::parse("{{printf \"%*d\" \"x\" 5}}")
            .unwrap()
            .execute(&d)
            .unwrap(),
        "%!(BADWIDTH)5"
    );
}
