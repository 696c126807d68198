//! Go templates as `--format` takes them: the input up to the first NUL byte is the template
//! text, the rest (when it parses as JSON) the data it runs on, else a fixed container-like
//! document. Parse and execute must return, bounded (nesting and `template` depth are capped),
//! with errors on one line, in every option mode the CLI uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use skiff_template::{Options, Template};

fuzz_target!(|data: &[u8]| {
    let (text, rest) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let value: Value = serde_json::from_slice(rest).unwrap_or_else(|_| {
        json!({"Name": "/web", "State": {"Running": true, "Pid": 42, "Status": "running"},
               "Config": {"Labels": {"a": "1", "b": "2"}, "Env": ["A=1"]},
               "Mounts": [{"Destination": "/data"}], "Size": 12345678901234_i64, "F": 1.5e-7})
    });
    let t = match Template::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            assert!(
                !e.to_string().contains('\n'),
                "parse error not one line: {e:?}"
            );
            return;
        }
    };
    for opts in [
        Options::default(),
        Options {
            header: true,
            ..Options::default()
        },
        Options {
            missing_key_error: true,
            root_type: Some("formatter.ContainerContext"),
            ..Options::default()
        },
    ] {
        let mut out = String::new();
        if let Err(e) = t.execute_into(&mut out, &value, opts) {
            assert!(
                !e.to_string().contains('\n'),
                "execute error not one line: {e:?}"
            );
        }
    }
});
