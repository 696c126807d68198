//! Layer unpacking against real files: overlay-form whiteouts, links, devices, xattrs, ownership,
//! mtimes, and hostile tarballs (nothing may land outside the snapshot).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use skiff_image::unpack::{unpack_layer, UnpackOptions};
use skiff_image::Error;

enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Char(&'a str, u32, u32),
}

/// Builds a tar with raw (unvalidated) names, as an attacker would.
fn tarball(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data): (&str, &[u8]) = match e {
            E::File(n, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o640);
                (n, d)
            }
            E::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o750);
                (n, b"")
            }
            E::Sym(n, t) | E::Hard(n, t) => {
                h.set_entry_type(if matches!(e, E::Sym(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_mode(0o777);
                let gnu = h.as_gnu_mut().unwrap();
                gnu.linkname[..t.len()].copy_from_slice(t.as_bytes());
                (n, b"")
            }
            E::Char(n, ma, mi) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o666);
                h.set_device_major(*ma).unwrap();
                h.set_device_minor(*mi).unwrap();
                (n, b"")
            }
        };
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name = [0; 100];
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_uid(1234);
        h.set_gid(4321);
        h.set_mtime(1_000_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

struct Env {
    _tmp: tempfile::TempDir,
    snap: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("a/b/snap");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&snap).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "s").unwrap();
    Env {
        _tmp: tmp,
        snap,
        outside,
    }
}

fn root() -> UnpackOptions {
    UnpackOptions { rootless: false }
}

fn outside_untouched(e: &Env) {
    let names: Vec<_> = fs::read_dir(&e.outside)
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("secret")],
        "something was written outside the snapshot"
    );
    assert_eq!(
        fs::metadata(e.outside.join("secret")).unwrap().nlink(),
        1,
        "outside file gained a hard link"
    );
    assert!(!e.snap.parent().unwrap().join("escape").exists());
    assert!(!e
        .snap
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("escape")
        .exists());
}

fn unpack(
    e: &Env,
    entries: &[E<'_>],
    opts: &UnpackOptions,
) -> Result<skiff_image::unpack::UnpackStats, Error> {
    unpack_layer(&tarball(entries)[..], &e.snap, opts)
}

#[test]
fn regular_layer_with_metadata_and_links() {
    let e = env();
    let st = unpack(
        &e,
        &[
            E::Dir("etc/"),
            E::File("etc/hosts", b"127.0.0.1 localhost\n"),
            E::Sym("etc/link", "hosts"),
            E::Hard("etc/hard", "etc/hosts"),
            E::File("implicit/dir/file", b"x"),
            E::Char("dev/null", 1, 3),
        ],
        &root(),
    )
    .unwrap();
    assert_eq!(st.size, 21);
    let hosts = fs::metadata(e.snap.join("etc/hosts")).unwrap();
    assert_eq!(
        (hosts.uid(), hosts.gid(), hosts.mode() & 0o7777),
        (1234, 4321, 0o640)
    );
    assert_eq!(hosts.mtime(), 1_000_000_000);
    assert_eq!(hosts.nlink(), 2);
    assert_eq!(
        fs::read_link(e.snap.join("etc/link")).unwrap(),
        Path::new("hosts")
    );
    let etc = fs::metadata(e.snap.join("etc")).unwrap();
    assert_eq!(
        (etc.mode() & 0o7777, etc.mtime()),
        (0o750, 1_000_000_000),
        "dir metadata applied last"
    );
    assert_eq!(fs::read(e.snap.join("implicit/dir/file")).unwrap(), b"x");
    let null = fs::symlink_metadata(e.snap.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
}

#[test]
fn whiteouts_become_overlay_form() {
    let e = env();
    unpack(
        &e,
        &[
            E::Dir("d/"),
            E::File("d/.wh..wh..opq", b""),
            E::File("d/.wh.gone", b""),
            E::File(".wh.top", b""),
        ],
        &root(),
    )
    .unwrap();
    let gone = fs::symlink_metadata(e.snap.join("d/gone")).unwrap();
    assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
    assert!(fs::symlink_metadata(e.snap.join("top"))
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(!e.snap.join("d/.wh.gone").exists());
    let out = std::process::Command::new("getfattr")
        .args(["-n", "trusted.overlay.opaque", "--only-values"])
        .arg(e.snap.join("d"))
        .output();
    if let Ok(out) = out {
        if out.status.success() {
            assert_eq!(out.stdout, b"y");
        }
    }
    let mut buf = [0u8; 4];
    let p = std::ffi::CString::new(e.snap.join("d").to_str().unwrap()).unwrap();
    // SAFETY: valid path and buffer.
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            4,
        )
    };
    assert_eq!(n, 1);
    assert_eq!(buf[0], b'y');
}

#[test]
fn dotdot_entry_is_rejected() {
    let e = env();
    let err = unpack(&e, &[E::File("../escape", b"x")], &root()).unwrap_err();
    assert!(matches!(err, Error::UnsafeEntry { .. }), "{err}");
    let err = unpack(&e, &[E::File("a/../../escape", b"x")], &root()).unwrap_err();
    assert!(err.to_string().contains(".."), "{err}");
    outside_untouched(&e);
}

#[test]
fn absolute_paths_stay_inside() {
    let e = env();
    let abs = format!("{}/evil", e.outside.display());
    unpack(&e, &[E::File(&abs, b"x")], &root()).unwrap();
    assert!(e.snap.join(abs.trim_start_matches('/')).is_file());
    outside_untouched(&e);
}

#[test]
fn symlink_then_file_through_it_stays_inside() {
    let e = env();
    let target = e.outside.display().to_string();
    // Absolute symlink to the outside directory, then a file "through" it.
    let r = unpack(
        &e,
        &[E::Sym("link", &target), E::File("link/evil", b"x")],
        &root(),
    );
    if r.is_ok() {
        assert!(e
            .snap
            .join(target.trim_start_matches('/'))
            .join("evil")
            .is_file());
    }
    outside_untouched(&e);
    // Relative symlink climbing out.
    let e = env();
    let r = unpack(
        &e,
        &[
            E::Sym("up", "../../../../../../.."),
            E::Dir("up/escape/"),
            E::File("up/escape/f", b"x"),
        ],
        &root(),
    );
    if r.is_ok() {
        assert!(
            e.snap.join("escape/f").is_file(),
            "the write must land inside the snapshot"
        );
    }
    outside_untouched(&e);
}

#[test]
fn hardlink_to_outside_is_rejected() {
    let e = env();
    let rel = "../../../outside/secret";
    let err = unpack(&e, &[E::Hard("h", rel)], &root()).unwrap_err();
    assert!(matches!(err, Error::UnsafeEntry { .. }), "{err}");
    let abs = format!("{}/secret", e.outside.display());
    let r = unpack(&e, &[E::Hard("h2", &abs)], &root());
    assert!(
        r.is_err(),
        "absolute hard link target must resolve inside (and not exist)"
    );
    let target = e.outside.display().to_string();
    let r = unpack(
        &e,
        &[E::Sym("s", &target), E::Hard("h3", "s/secret")],
        &root(),
    );
    assert!(r.is_err());
    outside_untouched(&e);
}

#[test]
fn whiteout_of_dotdot_is_rejected() {
    let e = env();
    for name in ["sub/.wh...", "sub/.wh..", "sub/.wh."] {
        let err = unpack(&e, &[E::File(name, b"")], &root()).unwrap_err();
        assert!(matches!(err, Error::UnsafeEntry { .. }), "{name}: {err}");
    }
    assert!(e.snap.parent().unwrap().is_dir());
    outside_untouched(&e);
}

#[test]
fn devices_are_skipped_when_rootless() {
    let e = env();
    let st = unpack(
        &e,
        &[E::Char("dev/sda", 8, 0), E::File("f", b"1")],
        &UnpackOptions { rootless: true },
    )
    .unwrap();
    assert_eq!(st.skipped_devices, 1);
    assert!(!e.snap.join("dev/sda").exists());
    assert!(e.snap.join("f").is_file());
}

#[test]
fn replacing_entries_in_one_layer() {
    let e = env();
    unpack(
        &e,
        &[
            E::Dir("x/"),
            E::File("x/a", b"1"),
            E::File("x", b"now a file"),
            E::Sym("y", "x"),
            E::File("y", b"file"),
        ],
        &root(),
    )
    .unwrap();
    assert_eq!(fs::read(e.snap.join("x")).unwrap(), b"now a file");
    assert!(fs::symlink_metadata(e.snap.join("y")).unwrap().is_file());
}

#[test]
fn overlay_mount_and_copy_fallback_agree() {
    let e = env();
    let base = e.snap.parent().unwrap().to_path_buf();
    let l1 = base.join("l1");
    let l2 = base.join("l2");
    fs::create_dir_all(&l1).unwrap();
    fs::create_dir_all(&l2).unwrap();
    unpack_layer(
        &tarball(&[
            E::File("keep", b"1"),
            E::File("gone", b"2"),
            E::Dir("d/"),
            E::File("d/old", b"3"),
            E::Sym("lnk", "/"),
        ])[..],
        &l1,
        &root(),
    )
    .unwrap();
    unpack_layer(
        &tarball(&[
            E::File(".wh.gone", b""),
            E::Dir("d/"),
            E::File("d/.wh..wh..opq", b""),
            E::File("d/new", b"4"),
        ])[..],
        &l2,
        &root(),
    )
    .unwrap();
    let copy = base.join("copy");
    skiff_image::overlay::copy_layers(&[l1.clone(), l2.clone()], &copy).unwrap();
    let check = |r: &Path| {
        assert_eq!(fs::read(r.join("keep")).unwrap(), b"1");
        assert!(!r.join("gone").exists());
        assert!(!r.join("d/old").exists());
        assert_eq!(fs::read(r.join("d/new")).unwrap(), b"4");
    };
    check(&copy);
    let (up, work, mnt) = (base.join("up"), base.join("work"), base.join("mnt"));
    for d in [&up, &work, &mnt] {
        fs::create_dir_all(d).unwrap();
    }
    skiff_image::overlay::mount_overlay(&[l1, l2], &up, &work, &mnt).expect("overlayfs mount");
    check(&mnt);
    fs::write(mnt.join("written"), "w").unwrap();
    assert!(up.join("written").is_file());
    let c = std::ffi::CString::new(mnt.to_str().unwrap()).unwrap();
    // SAFETY: valid path.
    assert_eq!(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }, 0);
}

/// A `--rm` container's overlay is volatile; overlayfs then marks the work directory and refuses
/// it for any later mount unless the marker is cleared. The upper layer must also survive.
#[test]
fn volatile_overlay_mounts_again_after_a_clean_unmount() {
    let e = env();
    let base = e.snap.parent().unwrap().to_path_buf();
    let l1 = base.join("vl1");
    fs::create_dir_all(&l1).unwrap();
    fs::write(l1.join("base"), "b").unwrap();
    let (up, work, mnt) = (base.join("vup"), base.join("vwork"), base.join("vmnt"));
    for d in [&up, &work, &mnt] {
        fs::create_dir_all(d).unwrap();
    }
    let mountinfo_line = || {
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .find(|l| l.contains(mnt.to_str().unwrap()))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let umount = || {
        let c = std::ffi::CString::new(mnt.to_str().unwrap()).unwrap();
        // SAFETY: valid path.
        assert_eq!(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }, 0);
    };
    skiff_image::overlay::mount_overlay_volatile(std::slice::from_ref(&l1), &up, &work, &mnt)
        .expect("volatile overlay mount");
    assert!(
        mountinfo_line().contains("volatile"),
        "not volatile: {}",
        mountinfo_line()
    );
    fs::write(mnt.join("kept"), "k").unwrap();
    umount();
    assert!(work.join("work/incompat/volatile").exists());
    for volatile in [false, true] {
        let r = if volatile {
            skiff_image::overlay::mount_overlay_volatile(
                std::slice::from_ref(&l1),
                &up,
                &work,
                &mnt,
            )
        } else {
            skiff_image::overlay::mount_overlay(std::slice::from_ref(&l1), &up, &work, &mnt)
        };
        r.expect("the work directory of a volatile mount mounts again");
        assert_eq!(fs::read(mnt.join("kept")).unwrap(), b"k");
        assert_eq!(fs::read(mnt.join("base")).unwrap(), b"b");
        umount();
    }
}
