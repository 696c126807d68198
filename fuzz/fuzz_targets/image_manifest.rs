//! A registry's manifest or index, as pull reads it: the first byte picks the Content-Type the
//! registry sent (documents without a mediaType fall back to it), the rest is the document. For an
//! index, the platform is picked as pull does; for a manifest, every layer's media type is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_image::spec::{self, Document};
use skiff_image::{Digest, Platform};

const TRANSPORT: &[&str] = &[
    "",
    spec::OCI_MANIFEST,
    spec::OCI_INDEX,
    spec::DOCKER_MANIFEST,
    spec::DOCKER_LIST,
    spec::DOCKER_SCHEMA1,
    "application/json",
    "text/plain",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, doc)) = data.split_first() else {
        return;
    };
    let mt = TRANSPORT[usize::from(sel) % TRANSPORT.len()];
    match spec::parse_document(doc, Some(mt)) {
        Ok(Document::Index(idx)) => {
            let _ = Platform::host().select(&idx.manifests);
            for m in &idx.manifests {
                if let Some(p) = &m.platform {
                    let _ = Platform::parse(&p.to_string());
                }
            }
        }
        Ok(Document::Manifest(m)) => {
            for l in &m.layers {
                let _ = spec::layer_compression(&l.media_type);
            }
            // The digests were validated when parsed: they round-trip.
            let d = Digest::parse(m.config.digest.as_str()).expect("descriptor digest re-parses");
            assert_eq!(d, m.config.digest);
            let _ = serde_json::to_vec(&m).expect("a parsed manifest serializes");
        }
        Err(e) => {
            assert!(
                !e.to_string().chars().any(char::is_control),
                "not one line: {e:?}"
            );
        }
    }
});
