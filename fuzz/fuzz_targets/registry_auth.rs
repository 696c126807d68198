//! What a registry says about authentication: `WWW-Authenticate` values (the input's lines up to
//! the first NUL byte), the token server URL built from a Bearer challenge, and the body after the
//! NUL as the token server's JSON answer and as a registry error body (whose message goes into a
//! one-line error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use reqwest::StatusCode;
use skiff_image::registry;

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    if let Some(ch) = registry::parse_challenges(head.lines()) {
        assert!(ch.scheme == "bearer" || ch.scheme == "basic", "{ch:?}");
        if let Ok((mut url, realm_host)) = registry::token_realm("registry.test:5000", &ch) {
            assert!(!realm_host.is_empty());
            // As the client builds the token request.
            let mut q = url.query_pairs_mut();
            if let Some(s) = ch.params.get("service") {
                q.append_pair("service", s);
            }
            q.append_pair("scope", "repository:library/busybox:pull");
            drop(q);
            let _ = url.as_str();
        }
    }
    let body = String::from_utf8_lossy(body);
    match registry::parse_token_response("https://auth.test/token", &body) {
        Ok(t) => assert!(!t.is_empty()),
        Err(e) => assert!(
            !e.to_string().chars().any(char::is_control),
            "not one line: {e:?}"
        ),
    }
    let status = StatusCode::from_u16(400 + u16::from(data.len() as u8 % 100))
        .unwrap_or(StatusCode::BAD_REQUEST);
    let msg = registry::registry_message(status, &body);
    assert!(!msg.chars().any(char::is_control), "not one line: {msg:?}");
});
