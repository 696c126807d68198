//! A stop-gap registry transport: plain HTTP/1.1 to anonymous registries (what the loopback test
//! registries are), implementing skiff-image's `Fetcher`/`Pusher`. It is replaced by the real
//! registry client (TLS, basic/bearer auth, credential helpers) once that lands in
//! `skiff_image::registry`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use skiff_image::pull::{Fetcher, Pusher};
use skiff_image::{Digest, Error, Result};

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws";

/// One repository on a plain-HTTP registry.
pub struct HttpRepo {
    host: String,
    repo: String,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Box<dyn Read + Send>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(mut self) -> String {
        let mut s = String::new();
        let _ = self.body.by_ref().take(64 * 1024).read_to_string(&mut s);
        s
    }
}

struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            if line.trim().is_empty() {
                line.clear();
                self.inner.read_line(&mut line)?;
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = u64::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size {size:?}"),
                )
            })?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = (buf.len() as u64).min(self.left) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body ended early",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn reg_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Registry(format!("{what}: {e}"))
}

impl HttpRepo {
    /// A repository `repo` (path) on `host` (host:port). Only loopback/insecure plain HTTP.
    pub fn new(host: &str, repo: &str) -> HttpRepo {
        HttpRepo {
            host: host.to_string(),
            repo: repo.to_string(),
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<(u64, Box<dyn Read + Send + '_>)>,
    ) -> Result<Response> {
        let addr = if self.host.contains(':') {
            self.host.clone()
        } else {
            format!("{}:80", self.host)
        };
        let s = TcpStream::connect(&addr).map_err(|e| reg_err(&format!("connect {addr}"), e))?;
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        s.set_nodelay(true).ok();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: skiff\r\nConnection: close\r\n",
            self.host
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some((len, _)) = &body {
            req.push_str(&format!("Content-Length: {len}\r\n"));
        } else if method == "PUT" || method == "POST" {
            req.push_str("Content-Length: 0\r\n");
        }
        req.push_str("\r\n");
        let mut w = io::BufWriter::with_capacity(256 * 1024, &s);
        w.write_all(req.as_bytes())
            .map_err(|e| reg_err("send request", e))?;
        if let Some((_, mut b)) = body {
            io::copy(&mut b, &mut w).map_err(|e| reg_err("send body", e))?;
        }
        w.flush().map_err(|e| reg_err("send request", e))?;
        drop(w);
        let mut r = BufReader::with_capacity(256 * 1024, s);
        let mut line = String::new();
        r.read_line(&mut line)
            .map_err(|e| reg_err("read response", e))?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| reg_err("read response", format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            r.read_line(&mut line)
                .map_err(|e| reg_err("read response", e))?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let body: Box<dyn Read + Send> = if method == "HEAD" || status == 204 || status == 304 {
            Box::new(io::empty())
        } else if find("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            Box::new(Chunked {
                inner: r,
                left: 0,
                done: false,
            })
        } else if let Some(n) = find("Content-Length").and_then(|v| v.parse::<u64>().ok()) {
            Box::new(r.take(n))
        } else {
            Box::new(r)
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn path_of(&self, location: &str) -> String {
        match location.split_once("://") {
            Some((_, rest)) => rest
                .find('/')
                .map(|i| rest[i..].to_string())
                .unwrap_or_else(|| "/".into()),
            None => location.to_string(),
        }
    }
}

impl Fetcher for HttpRepo {
    fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String)> {
        let path = format!("/v2/{}/manifests/{reference}", self.repo);
        let r = self.request("GET", &path, &[("Accept", ACCEPT.into())], None)?;
        if r.status == 404 {
            return Err(Error::NotFound(format!(
                "manifest for {}/{}:{reference} not found: manifest unknown",
                self.host, self.repo
            )));
        }
        if r.status != 200 {
            let st = r.status;
            return Err(Error::Registry(format!("GET {path}: {st} {}", r.text())));
        }
        let mt = r
            .header("Content-Type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let mut b = Vec::new();
        let mut body = r.body;
        body.by_ref()
            .take(16 << 20)
            .read_to_end(&mut b)
            .map_err(|e| reg_err("read manifest", e))?;
        Ok((b, mt))
    }

    fn get_blob(&self, digest: &Digest, start: u64) -> Result<Box<dyn Read + Send>> {
        let mut path = format!("/v2/{}/blobs/{digest}", self.repo);
        for _ in 0..5 {
            let mut h = Vec::new();
            if start > 0 {
                h.push(("Range", format!("bytes={start}-")));
            }
            let r = self.request("GET", &path, &h, None)?;
            match r.status {
                200 if start == 0 => return Ok(r.body),
                200 => {
                    // No range support: skip what we already have.
                    let mut body = r.body;
                    io::copy(&mut body.by_ref().take(start), &mut io::sink())
                        .map_err(|e| reg_err("skip", e))?;
                    return Ok(body);
                }
                206 => return Ok(r.body),
                301 | 302 | 303 | 307 | 308 => {
                    let loc = r
                        .header("Location")
                        .ok_or_else(|| reg_err("redirect", "no Location"))?
                        .to_string();
                    if loc.starts_with("https://") {
                        return Err(Error::Registry(format!(
                            "blob {digest} redirects to HTTPS, not supported yet"
                        )));
                    }
                    path = self.path_of(&loc);
                }
                404 => {
                    return Err(Error::NotFound(format!(
                        "blob {digest} not found in {}/{}",
                        self.host, self.repo
                    )))
                }
                s => {
                    return Err(Error::Registry(format!(
                        "GET blob {digest}: {s} {}",
                        r.text()
                    )))
                }
            }
        }
        Err(Error::Registry(format!(
            "blob {digest}: too many redirects"
        )))
    }
}

impl Pusher for HttpRepo {
    fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let r = self.request(
            "HEAD",
            &format!("/v2/{}/blobs/{digest}", self.repo),
            &[],
            None,
        )?;
        Ok(r.status == 200)
    }

    fn put_blob(&self, digest: &Digest, size: u64, data: Box<dyn Read + Send>) -> Result<()> {
        let r = self.request(
            "POST",
            &format!("/v2/{}/blobs/uploads/", self.repo),
            &[],
            None,
        )?;
        if r.status != 202 {
            let st = r.status;
            return Err(Error::Registry(format!(
                "start upload of {digest}: {st} {}",
                r.text()
            )));
        }
        let loc = r
            .header("Location")
            .ok_or_else(|| reg_err("start upload", "no Location"))?
            .to_string();
        let mut path = self.path_of(&loc);
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str(&format!("digest={digest}"));
        let r = self.request(
            "PUT",
            &path,
            &[("Content-Type", "application/octet-stream".into())],
            Some((size, data)),
        )?;
        if r.status != 201 {
            let st = r.status;
            return Err(Error::Registry(format!(
                "upload {digest}: {st} {}",
                r.text()
            )));
        }
        Ok(())
    }

    fn put_manifest(&self, reference: &str, media_type: &str, data: &[u8]) -> Result<()> {
        let path = format!("/v2/{}/manifests/{reference}", self.repo);
        let body: Box<dyn Read + Send + '_> = Box::new(data);
        let r = self.request(
            "PUT",
            &path,
            &[("Content-Type", media_type.into())],
            Some((data.len() as u64, body)),
        )?;
        if r.status != 201 {
            let st = r.status;
            return Err(Error::Registry(format!(
                "PUT manifest {reference}: {st} {}",
                r.text()
            )));
        }
        Ok(())
    }
}
