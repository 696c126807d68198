//! Deep overlay stacks (needs root): 128 and 500 layers under a 260-character path, which no
//! single page of mount(2) options can hold, through the new mount API (`lowerdir+`) and through
//! the fallback for kernels without it (layers named `/proc/self/fd/N`). One test function: the
//! fallback switch is process-wide.

use std::fs;
use std::path::{Path, PathBuf};

use skiff_image::overlay::{force_classic_deep_mounts, mount_overlay, mount_overlay_volatile};

fn umount(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }, 0);
}

/// `n` layers (bottom first); layer i holds `layers/i` and its own version of `top`.
fn layers(base: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let l = base.join(format!("l{i}"));
            fs::create_dir_all(l.join("layers")).unwrap();
            fs::write(l.join("layers").join(i.to_string()), i.to_string()).unwrap();
            fs::write(l.join("top"), i.to_string()).unwrap();
            l
        })
        .collect()
}

fn check_stack(base: &Path, lowers: &[PathBuf], volatile: bool) {
    let (up, work, mnt) = (base.join("up"), base.join("work"), base.join("mnt"));
    let _ = fs::remove_dir_all(&up);
    let _ = fs::remove_dir_all(&work);
    for d in [&up, &work, &mnt] {
        fs::create_dir_all(d).unwrap();
    }
    let n = lowers.len();
    let r = if volatile {
        mount_overlay_volatile(lowers, &up, &work, &mnt)
    } else {
        mount_overlay(lowers, &up, &work, &mnt)
    };
    r.unwrap_or_else(|e| panic!("{n} layers: {e}"));
    // Bottom and top layers are visible, the top one wins, writes go to the upper directory.
    assert_eq!(fs::read_to_string(mnt.join("layers/0")).unwrap(), "0");
    assert_eq!(
        fs::read_to_string(mnt.join(format!("layers/{}", n - 1))).unwrap(),
        (n - 1).to_string()
    );
    assert_eq!(
        fs::read_to_string(mnt.join("top")).unwrap(),
        (n - 1).to_string()
    );
    assert_eq!(fs::read_dir(mnt.join("layers")).unwrap().count(), n);
    fs::write(mnt.join("written"), "w").unwrap();
    assert!(up.join("written").is_file());
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some(mnt.to_str().unwrap()))
        .expect("the overlay is in mountinfo");
    assert!(line.contains(" - overlay overlay "), "{line}");
    assert_eq!(line.contains("volatile"), volatile, "{line}");
    umount(&mnt);
}

#[test]
fn deep_stacks_under_a_long_path() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "d".repeat(60);
    // Longer than fsconfig(2) takes a string (255): layers go over as descriptors.
    let base = tmp.path().join(&long).join(&long).join(&long).join(&long);
    assert!(base.to_str().unwrap().len() > 255);
    let all = layers(&base, 501);

    check_stack(&base, &all[..128], false);
    check_stack(&base, &all[..128], true);
    check_stack(&base, &all[..500], true);
    let (up, work, mnt) = (base.join("up"), base.join("work"), base.join("mnt"));
    let e = mount_overlay(&all, &up, &work, &mnt).unwrap_err();
    assert!(e.to_string().contains("at most 500"), "{e}");

    // Kernels before 6.8: classic options naming each layer /proc/self/fd/N.
    force_classic_deep_mounts(true);
    check_stack(&base, &all[..128], false);
    check_stack(&base, &all[..128], true);
    let e = mount_overlay(&all[..400], &up, &work, &mnt).unwrap_err();
    assert!(e.to_string().contains("Linux 6.8"), "{e}");
    force_classic_deep_mounts(false);
}
