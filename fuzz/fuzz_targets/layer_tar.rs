//! A layer tarball, as pull, load and import unpack it: the input (after a first byte of options)
//! is unpacked with the project's unpacker into a fresh directory, through the same decompressor
//! pull and load use (plain, gzip or zstd by magic bytes). Bit 0 of the first byte gzip-wraps the
//! rest first, so the gzip path sees meaningful tars too; bit 1 unpacks rootless.
//!
//! Afterwards nothing may exist outside the target directory: it sits in a parent directory that
//! sits in a private base directory, and both must hold only their one child.
#![no_main]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use skiff_image::compress;
use skiff_image::unpack::{unpack_layer, UnpackOptions};

/// A decompressed stream larger than this is cut (a tiny zstd frame can expand to gigabytes).
const MAX_PLAIN: u64 = 16 << 20;

fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let b = std::env::temp_dir().join(format!("skiff-fuzz-layer.{}", std::process::id()));
        let _ = force_remove(&b);
        fs::create_dir(&b).expect("create fuzz base directory");
        fs::set_permissions(&b, fs::Permissions::from_mode(0o700)).expect("chmod base");
        b
    })
}

/// Removes a tree even when the layer left directories without permissions.
fn force_remove(p: &Path) -> std::io::Result<()> {
    if fs::remove_dir_all(p).is_ok() || !p.exists() {
        return Ok(());
    }
    fn open_up(p: &Path) {
        if let Ok(m) = fs::symlink_metadata(p) {
            if m.is_dir() {
                let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
                if let Ok(rd) = fs::read_dir(p) {
                    for e in rd.flatten() {
                        open_up(&e.path());
                    }
                }
            }
        }
    }
    open_up(p);
    fs::remove_dir_all(p)
}

fn only_child(dir: &Path, name: &str) {
    let names: Vec<String> = fs::read_dir(dir)
        .expect("read fuzz directory")
        .map(|e| {
            e.expect("read entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        vec![name.to_string()],
        "layer wrote outside its directory: {} holds {names:?}",
        dir.display()
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let input: Vec<u8> = if sel & 1 != 0 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(body).expect("gzip into memory");
        gz.finish().expect("gzip into memory")
    } else {
        body.to_vec()
    };
    let opts = UnpackOptions {
        rootless: sel & 2 != 0,
    };
    let parent = base().join("p");
    let dest = parent.join("layer");
    fs::create_dir(&parent).expect("create parent directory");
    fs::create_dir(&dest).expect("create target directory");

    if let Ok(plain) = compress::decompress(&input[..]) {
        if let Err(e) = unpack_layer(plain.take(MAX_PLAIN), &dest, &opts) {
            let msg = e.to_string();
            assert!(
                !msg.is_empty() && !msg.chars().any(char::is_control),
                "not one line: {msg:?}"
            );
        }
    }

    only_child(base(), "p");
    only_child(&parent, "layer");
    force_remove(&parent).expect("remove the unpacked layer");
});
