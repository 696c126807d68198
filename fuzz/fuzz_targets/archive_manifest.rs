//! The index files of an archive given to `skiff load`: docker's `manifest.json` (first byte even)
//! or an OCI `index.json` (odd), parsed with their image names normalized, as load does before it
//! touches the store.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_image::archive;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, doc)) = data.split_first() else {
        return;
    };
    let err = if sel & 1 == 0 {
        match archive::parse_manifest_json(doc) {
            Ok(entries) => {
                for (e, names) in entries {
                    assert_eq!(names.len(), e.repo_tags.map_or(0, |t| t.len()));
                }
                return;
            }
            Err(e) => e,
        }
    } else {
        match archive::parse_index_json(doc) {
            Ok(_) => return,
            Err(e) => e,
        }
    };
    let msg = err.to_string();
    assert!(!msg.chars().any(char::is_control), "not one line: {msg:?}");
});
