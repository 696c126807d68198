//! The compiled-filter cache under `<runtime root>/seccomp@cache`: libseccomp spends milliseconds
//! on a Docker-size profile, reading a cached program costs microseconds. `create` fills it and
//! records the entry's key in the container's state; `exec` reads the entry by that key, so an
//! exec into a default-profile container compiles nothing.
//!
//! An entry is named by its key, the hex SHA-256 of the cache format, the skiff and libseccomp
//! versions, the target architecture set (the section's architectures plus the native one) and
//! the exact serialized `linux.seccomp`; a different profile, architecture set or compiler is a
//! different key. An entry holds a header with its key, the seccomp(2) flags, the program and a
//! SHA-256 of all of that: a truncated or corrupt entry, one whose embedded key is not its name
//! (a foreign entry), one not owned by us or readable by others, or a symlink is rejected, and the
//! caller compiles the section again and rewrites the entry. Entries are written to a private temp
//! file (mode 0600 set explicitly, never left to the umask), fsynced, renamed into place and the
//! directory (mode 0700) fsynced, so readers see a whole entry or none.

use super::{compile, CompiledFilter, SeccompError};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Name of the cache directory under the runtime root. The `@` keeps it apart from container
/// directories (container ids cannot contain `@`).
pub const CACHE_DIR: &str = "seccomp@cache";

/// Bumped whenever `compile` changes the program it emits for the same section, or the entry
/// layout changes.
const FORMAT: u32 = 2;

/// First bytes of every entry of this format.
const MAGIC: &[u8] = b"skiff-seccomp-cache 2\n";

/// At most this many cached programs; a store beyond it empties the cache first.
const MAX_ENTRIES: usize = 256;

/// The kernel's limit on a filter's length (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// Bytes of a key: hex SHA-256.
const KEY_LEN: usize = 64;

/// Header after MAGIC: key, '\n', flags (u32 LE), notify (u8), 3 zero bytes, count (u32 LE).
const HEADER_LEN: usize = MAGIC.len() + KEY_LEN + 1 + 4 + 4 + 4;

/// Temp files older than this are leftovers of a killed writer and are swept on the next store.
const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(600);

/// Where a filter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Read from a valid cache entry.
    Cache,
    /// Compiled with libseccomp (and stored, when the cache is writable).
    Compiled,
}

/// A filter with its cache key and where it came from.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The program.
    pub filter: CompiledFilter,
    /// The cache key of the section it was compiled from.
    pub key: String,
    /// Cache hit or compile.
    pub origin: Origin,
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// The cache key of a `linux.seccomp` section on this host (see the module documentation).
pub fn key(s: &LinuxSeccomp) -> Result<String, SeccompError> {
    let canon = serde_json::to_vec(s)
        .map_err(|e| SeccompError(format!("serialize for the cache key: {e}")))?;
    let v = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut arches: Vec<String> = s
        .architectures()
        .iter()
        .flatten()
        .map(|a| format!("{a:?}"))
        .collect();
    arches.push(format!("native:{}", std::env::consts::ARCH));
    arches.sort();
    arches.dedup();
    let mut h = Sha256::new();
    h.update(format!(
        "skiff-seccomp-key {FORMAT}\0skiff {}\0libseccomp {v}\0arches {}\0",
        env!("CARGO_PKG_VERSION"),
        arches.join(",")
    ));
    h.update(&canon);
    Ok(hex(&h.finalize()))
}

fn is_key(k: &str) -> bool {
    k.len() == KEY_LEN
        && k.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The filter for `s`: from the cache under `root` when it holds a valid entry for it, otherwise
/// compiled and stored. Only compile errors fail; a cache that cannot be read or written is
/// passed over (and said so in the debug log).
pub fn get(s: &LinuxSeccomp, root: &Path) -> Result<Cached, SeccompError> {
    let k = key(s)?;
    let dir = root.join(CACHE_DIR);
    match read(&dir, &k) {
        Ok(filter) => Ok(hit(filter, k)),
        Err(miss) => {
            miss.log(&k);
            compile_and_store(s, &dir, k)
        }
    }
}

/// Like [`get`], starting from a key recorded in a container's state: `profile` (the section the
/// key was made from) is only produced when that entry is missing or rejected, and the entry is
/// then written again. When the key of the profile differs from the recorded one (skiff or
/// libseccomp changed since the container was created), the current key is used.
pub fn get_by_key(
    recorded: &str,
    root: &Path,
    profile: impl FnOnce() -> Result<LinuxSeccomp, SeccompError>,
) -> Result<Cached, SeccompError> {
    let dir = root.join(CACHE_DIR);
    if is_key(recorded) {
        match read(&dir, recorded) {
            Ok(filter) => return Ok(hit(filter, recorded.to_string())),
            Err(miss) => miss.log(recorded),
        }
    }
    let s = profile()?;
    let k = key(&s)?;
    if k == recorded {
        return compile_and_store(&s, &dir, k);
    }
    crate::debug!("seccomp: the profile's key is now {k} (was {recorded})");
    match read(&dir, &k) {
        Ok(filter) => Ok(hit(filter, k)),
        Err(miss) => {
            miss.log(&k);
            compile_and_store(&s, &dir, k)
        }
    }
}

fn hit(filter: CompiledFilter, key: String) -> Cached {
    crate::debug!(
        "seccomp: filter from cache {key} ({} instructions)",
        filter.len()
    );
    Cached {
        filter,
        key,
        origin: Origin::Cache,
    }
}

fn compile_and_store(s: &LinuxSeccomp, dir: &Path, key: String) -> Result<Cached, SeccompError> {
    let filter = compile(s)?;
    crate::debug!(
        "seccomp: compiled filter {key} ({} instructions)",
        filter.len()
    );
    if let Err(e) = store(dir, &key, &filter) {
        crate::debug!("seccomp: cache entry {key} not written: {e}");
    }
    Ok(Cached {
        filter,
        key,
        origin: Origin::Compiled,
    })
}

/// Why no entry was used.
enum Miss {
    /// There is none.
    Absent,
    /// There is one, but it cannot be trusted or read.
    Rejected(String),
}

impl Miss {
    fn log(&self, key: &str) {
        match self {
            Miss::Absent => crate::debug!("seccomp: no cache entry {key}"),
            Miss::Rejected(why) => {
                crate::debug!("seccomp: cache entry {key} rejected ({why}); recompiling")
            }
        }
    }
}

/// Open `name` in the directory `dir` (itself not followed if a symlink), never following a
/// symlink at `name`.
fn open_in(dir: &Path, name: &str, flags: OFlag, mode: u32) -> nix::Result<std::fs::File> {
    let d = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let f = nix::fcntl::openat(
        &d,
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )?;
    Ok(std::fs::File::from(f))
}

fn read(dir: &Path, key: &str) -> Result<CompiledFilter, Miss> {
    let mut f = match open_in(dir, key, OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0) {
        Ok(f) => f,
        Err(Errno::ENOENT) => return Err(Miss::Absent),
        Err(Errno::ELOOP) => return Err(Miss::Rejected("a symlink".into())),
        Err(e) => return Err(Miss::Rejected(format!("open: {e}"))),
    };
    let md = f
        .metadata()
        .map_err(|e| Miss::Rejected(format!("stat: {e}")))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !md.is_file() || md.uid() != me || md.mode() & 0o077 != 0 {
        return Err(Miss::Rejected(format!(
            "not a private file of uid {me}: uid {} mode {:o}",
            md.uid(),
            md.mode()
        )));
    }
    let max = HEADER_LEN + MAX_INSNS * 8 + 32;
    if md.len() as usize > max {
        return Err(Miss::Rejected(format!("{} bytes is too large", md.len())));
    }
    let mut b = Vec::with_capacity(md.len() as usize);
    f.read_to_end(&mut b)
        .map_err(|e| Miss::Rejected(format!("read: {e}")))?;
    parse(&b, key).map_err(Miss::Rejected)
}

/// Check and decode an entry's bytes; the error says why it is rejected.
fn parse(b: &[u8], key: &str) -> Result<CompiledFilter, String> {
    let rest = b
        .strip_prefix(MAGIC)
        .ok_or("not an entry of this cache format")?;
    let (k, rest) = rest.split_at_checked(KEY_LEN).ok_or("truncated")?;
    if k != key.as_bytes() {
        return Err(format!(
            "a foreign entry: made for key {}",
            String::from_utf8_lossy(k)
        ));
    }
    let (nl, rest) = rest.split_first().ok_or("truncated")?;
    let (flags, rest) = rest.split_first_chunk::<4>().ok_or("truncated")?;
    let (misc, rest) = rest.split_first_chunk::<4>().ok_or("truncated")?;
    let (count, rest) = rest.split_first_chunk::<4>().ok_or("truncated")?;
    let count = u32::from_le_bytes(*count) as usize;
    if *nl != b'\n' || misc[0] > 1 || misc[1..] != [0, 0, 0] || count == 0 || count > MAX_INSNS {
        return Err("malformed header".into());
    }
    let want = count * 8 + 32;
    if rest.len() < want {
        return Err(format!(
            "truncated: {} of {} bytes",
            b.len(),
            b.len() - rest.len() + want
        ));
    }
    if rest.len() > want {
        return Err(format!("{} trailing bytes", rest.len() - want));
    }
    let (body, sum) = b.split_at(b.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err("checksum mismatch (corrupt)".into());
    }
    let program = rest[..count * 8]
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Ok(CompiledFilter {
        program,
        flags: u32::from_le_bytes(*flags),
        notify: misc[0] == 1,
    })
}

/// An entry's bytes (see [`parse`]).
fn encode(key: &str, f: &CompiledFilter) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + f.program.len() * 8 + 32);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(key.as_bytes());
    b.push(b'\n');
    b.extend_from_slice(&f.flags.to_le_bytes());
    b.extend_from_slice(&[u8::from(f.notify), 0, 0, 0]);
    b.extend_from_slice(&(f.program.len() as u32).to_le_bytes());
    for i in &f.program {
        b.extend_from_slice(&i.code.to_le_bytes());
        b.extend_from_slice(&[i.jt, i.jf]);
        b.extend_from_slice(&i.k.to_le_bytes());
    }
    let sum = Sha256::digest(&b);
    b.extend_from_slice(sum.as_slice());
    b
}

/// Make `dir` (mode 0700, set explicitly) or check the existing one is a directory of ours, and
/// return it opened.
fn open_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)?;
    let md = d.metadata()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if md.uid() != me {
        return Err(std::io::Error::other(format!(
            "{} is owned by uid {}, not {me}",
            dir.display(),
            md.uid()
        )));
    }
    if md.mode() & 0o7777 != 0o700 {
        d.set_permissions(std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(d)
}

/// Remove every entry when the cache is full, and temp files a killed writer left behind, and
/// anything that is not an entry of this format (older formats' entries).
fn sweep(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if is_key(&name) {
            entries.push(e.path());
        } else if name.starts_with(".tmp-") {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TMP);
            if old {
                let _ = std::fs::remove_file(e.path());
            }
        } else {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if entries.len() >= MAX_ENTRIES {
        for p in entries {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Write the entry for `key` atomically: private temp file, fsync, rename, fsync of the directory.
fn store(dir: &Path, key: &str, f: &CompiledFilter) -> std::io::Result<()> {
    let d = open_dir(dir)?;
    sweep(dir);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = format!(".tmp-{key}-{}-{nanos}", std::process::id());
    let r = (|| {
        let mut t = std::fs::File::from(nix::fcntl::openat(
            &d,
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?);
        // The umask may have taken bits off; the mode is set, not left to it.
        t.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        t.write_all(&encode(key, f))?;
        t.sync_all()?;
        nix::fcntl::renameat(&d, tmp.as_str(), &d, key)?;
        d.sync_all()
    })();
    if r.is_err() {
        let _ = nix::unistd::unlinkat(&d, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::{filter_flags, FLAG_NEW_LISTENER};
    use super::*;

    fn parse_spec(j: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(j).unwrap()
    }

    fn same(a: &CompiledFilter, b: &CompiledFilter) -> bool {
        a.flags == b.flags
            && a.notify == b.notify
            && a.program.len() == b.program.len()
            && a.program
                .iter()
                .zip(&b.program)
                .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k))
    }

    #[test]
    fn hit_returns_the_compiled_program_and_rejects_damage() {
        let root = tempfile_dir("hit");
        let a = parse_spec(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
        );
        let b = parse_spec(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}]}),
        );
        let fresh = compile(&a).unwrap();
        assert!(fresh.notify);
        assert_eq!(fresh.flags & FLAG_NEW_LISTENER, FLAG_NEW_LISTENER);
        assert_eq!(filter_flags(&a) | FLAG_NEW_LISTENER, fresh.flags);
        let first = get(&a, &root).unwrap();
        assert_eq!(first.origin, Origin::Compiled);
        let dir = root.join(CACHE_DIR);
        let entry = dir.join(&first.key);
        let md = std::fs::metadata(&entry).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o600);
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
        let hit = get(&a, &root).unwrap();
        assert_eq!(hit.origin, Origin::Cache);
        assert_eq!(hit.key, first.key);
        assert!(same(&hit.filter, &fresh) && same(&first.filter, &fresh));
        let by_key = get_by_key(&first.key, &root, || panic!("profile not needed")).unwrap();
        assert_eq!(by_key.origin, Origin::Cache);
        // Another section is another key; a differing arch set is another key.
        let kb = key(&b).unwrap();
        assert_ne!(kb, first.key);
        let mut a86 = a.clone();
        a86.set_architectures(Some(vec![oci_spec::runtime::Arch::ScmpArchX86]));
        assert_ne!(key(&a86).unwrap(), first.key);
        let good = std::fs::read(&entry).unwrap();
        // Truncated, flipped, foreign (b's entry under a's name) and trailing-garbage entries
        // are rejected, recompiled and rewritten.
        let fb = get(&b, &root).unwrap();
        let foreign = std::fs::read(dir.join(&fb.key)).unwrap();
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        let mut longer = good.clone();
        longer.push(0);
        for bad in [
            good[..good.len() - 9].to_vec(),
            good[..10].to_vec(),
            flipped,
            foreign,
            longer,
            Vec::new(),
        ] {
            assert!(parse(&bad, &first.key).is_err());
            std::fs::write(&entry, &bad).unwrap();
            let again = get_by_key(&first.key, &root, || Ok(a.clone())).unwrap();
            assert_eq!(again.origin, Origin::Compiled);
            assert!(same(&again.filter, &fresh));
            assert_eq!(std::fs::read(&entry).unwrap(), good, "entry rewritten");
            assert_eq!(std::fs::metadata(&entry).unwrap().mode() & 0o7777, 0o600);
        }
        // An entry readable by others is not trusted.
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(get(&a, &root).unwrap().origin, Origin::Compiled);
        assert_eq!(std::fs::metadata(&entry).unwrap().mode() & 0o7777, 0o600);
        // A symlink in place of an entry is not followed, even to a valid copy.
        let copy = root.join("copy");
        std::fs::write(&copy, &good).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::remove_file(&entry).unwrap();
        std::os::unix::fs::symlink(&copy, &entry).unwrap();
        assert!(matches!(read(&dir, &first.key), Err(Miss::Rejected(_))));
        assert_eq!(get(&a, &root).unwrap().origin, Origin::Compiled);
        assert!(!std::fs::symlink_metadata(&entry).unwrap().is_symlink());
        assert_eq!(get(&a, &root).unwrap().origin, Origin::Cache);
        // A stale recorded key (another skiff or libseccomp) falls back to the profile's key.
        let stale = "0".repeat(64);
        let r = get_by_key(&stale, &root, || Ok(a.clone())).unwrap();
        assert_eq!(
            (r.origin, r.key.as_str()),
            (Origin::Cache, first.key.as_str())
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn modes_do_not_come_from_the_umask() {
        let root = tempfile_dir("umask");
        let a = parse_spec(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}]}),
        );
        let dir = root.join(CACHE_DIR);
        // A pre-existing directory with loose bits is tightened; sweeps drop non-entries.
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("0123456789abcdef"), b"old format").unwrap();
        let c = get(&a, &root).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
        assert_eq!(
            std::fs::metadata(dir.join(&c.key)).unwrap().mode() & 0o7777,
            0o600
        );
        assert!(!dir.join("0123456789abcdef").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "skiff-seccomp-cache-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        d
    }
}
