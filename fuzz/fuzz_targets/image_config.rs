//! An image config blob, as pull and `image inspect` read it: parse, the declared platform as pull
//! compares it with `--platform`, and the chain ids of the layers' diff ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_image::spec::ImageConfig;
use skiff_image::{Digest, Platform};

fuzz_target!(|data: &[u8]| {
    let config = match ImageConfig::parse(data) {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.chars().any(char::is_control), "not one line: {msg:?}");
            return;
        }
    };
    let actual = format!(
        "{}/{}{}",
        config.os,
        config.architecture,
        config
            .variant
            .as_deref()
            .map(|v| format!("/{v}"))
            .unwrap_or_default()
    );
    if let Ok(p) = Platform::parse(&actual) {
        let _ = Platform::host().matches(&p);
    }
    let _ = config.platform().to_string();
    let chains = Digest::chain_ids(&config.rootfs.diff_ids);
    assert_eq!(chains.len(), config.rootfs.diff_ids.len());
});
