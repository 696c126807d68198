//! Layer compression: detection by magic bytes (gzip, zstd, plain tar), streaming decompressors, and
//! a two-thread pipe so reading/hashing and decompressing/unpacking run on different cores.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use crate::spec::LayerCompression;

/// Detects the compression of a stream from its first bytes without consuming them.
pub fn detect<R: BufRead>(r: &mut R) -> io::Result<LayerCompression> {
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        LayerCompression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        LayerCompression::Zstd
    } else {
        LayerCompression::None
    })
}

/// Wraps a (possibly compressed) layer stream into a reader of the plain tar, detecting the format.
pub fn decompress<'a, R: Read + Send + 'a>(r: R) -> io::Result<Box<dyn Read + Send + 'a>> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    Ok(match detect(&mut br)? {
        LayerCompression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        LayerCompression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
        LayerCompression::None => Box::new(br),
    })
}

/// A reader fed by a producer thread through a bounded channel of chunks.
pub struct PipeReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    handle: Option<JoinHandle<()>>,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    if let Some(h) = self.handle.take() {
                        let _ = h.join();
                    }
                    return Ok(0);
                }
            }
        }
        let n = (self.cur.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Runs `source` on its own thread, reading 256 KiB chunks ahead; the returned reader yields the
/// same bytes. An empty chunk is never sent; end of stream closes the channel.
pub fn pipelined<R: Read + Send + 'static>(mut source: R) -> PipeReader {
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(32);
    let handle = std::thread::spawn(move || loop {
        let mut buf = vec![0u8; 256 * 1024];
        let mut filled = 0;
        // Fill the chunk fully (network reads are small) unless EOF.
        loop {
            match source.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        if filled == 0 {
            return;
        }
        buf.truncate(filled);
        if tx.send(Ok(buf)).is_err() {
            return;
        }
    });
    PipeReader {
        rx,
        cur: Vec::new(),
        pos: 0,
        done: false,
        handle: Some(handle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn detects_and_decompresses() {
        let data = b"hello layer".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&data[..], 3).unwrap();
        for input in [gz, zs, data.clone()] {
            let mut out = Vec::new();
            decompress(pipelined(io::Cursor::new(input)))
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data);
        }
    }
}
