//! Content digests (`sha256:<64 hex>`) and streaming hashers.

use std::fmt;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A validated `sha256:<hex>` content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// Parses and validates `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Digest> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| Error::invalid("digest", format!("{s:?} is not a sha256 digest")))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::invalid(
                "digest",
                format!("{s:?} does not have 64 lowercase hex digits"),
            ));
        }
        Ok(Digest(s.to_string()))
    }
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(data))
    }
    fn from_hasher(h: Sha256) -> Digest {
        Digest(format!("sha256:{}", to_hex(&h.finalize())))
    }
    /// The 64 hex digits without the algorithm.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }
    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The first 12 hex digits, as docker shows image ids.
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }
    /// Verifies that `data` hashes to this digest.
    pub fn verify(&self, what: &str, data: &[u8]) -> Result<()> {
        let got = Digest::of(data);
        if &got != self {
            return Err(Error::DigestMismatch {
                what: what.to_string(),
                expected: self.0.clone(),
                actual: got.0,
            });
        }
        Ok(())
    }
    /// Chain id of a layer stack: `chain(L0) = diff(L0)`, `chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))`.
    pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
        let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let next = match out.last() {
                None => d.clone(),
                Some(prev) => Digest::of(format!("{} {}", prev.0, d.0).as_bytes()),
            };
            out.push(next);
        }
        out
    }
}

impl TryFrom<String> for Digest {
    type Error = Error;
    fn try_from(s: String) -> Result<Digest> {
        Digest::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercase hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// A running sha256 with a byte count.
#[derive(Default, Clone)]
pub struct Hasher {
    h: Sha256,
    n: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Hasher {
        Hasher::default()
    }
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.h.update(data);
        self.n += data.len() as u64;
    }
    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.n
    }
    /// True when nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest::from_hasher(self.h)
    }
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    /// The running hash.
    pub hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// Reads the rest (so the hash covers the whole stream) and returns digest and size.
    pub fn drain(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let n = self.hasher.len();
        Ok((self.hasher.finish(), n))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes everything written through it.
pub struct HashingWriter<W> {
    /// The wrapped writer.
    pub inner: W,
    /// The running hash.
    pub hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_chain() {
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        let d = Digest::of(b"");
        assert_eq!(
            d.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let c = Digest::chain_ids(&[d.clone(), d.clone()]);
        assert_eq!(c[0], d);
        assert_eq!(c[1], Digest::of(format!("{d} {d}").as_bytes()));
    }
}
