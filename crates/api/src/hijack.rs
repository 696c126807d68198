//! Connections before hyper sees them: the plain (non-`Upgrade`) hijack of attach and exec
//! start that older clients use. Their request has no `Upgrade: tcp`, yet they read the raw
//! stream after a `200 OK` head and write stdin on the same connection (a half-close of it is
//! stdin's end), which hyper cannot do without a 101. The first request head of every new
//! connection is read here: a plain hijack is answered by this module with the same handlers
//! (the connection is handed to them as if upgraded); anything else goes to hyper with the bytes
//! already read put back in front. Later requests of a keep-alive connection are hyper's.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::State;

/// The longest request head read before hyper (beyond it hyper answers).
const MAX_HEAD: usize = 64 * 1024;
/// The largest body of a plain-hijack request (an exec start's JSON).
const MAX_RAW_BODY: usize = 64 * 1024;

/// A byte stream a hijacking handler reads stdin from and writes output to.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A hijacked connection.
pub type Conn = Box<dyn Io>;

/// `inner` with bytes already read from it put back in front.
pub struct Rewind<I> {
    pre: Bytes,
    inner: I,
}

impl<I> Rewind<I> {
    /// `pre` is returned by the first reads, then `inner`'s bytes.
    pub fn new(pre: Bytes, inner: I) -> Rewind<I> {
        Rewind { pre, inner }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = buf.remaining().min(self.pre.len());
            buf.put_slice(&self.pre[..n]);
            self.pre = self.pre.slice(n..);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn find(h: &[u8], pat: &[u8]) -> Option<usize> {
    h.windows(pat.len()).position(|w| w == pat)
}

/// True for `POST [/vX.Y]/containers/{id}/attach` and `POST [/vX.Y]/exec/{id}/start`.
fn is_hijack_path(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let segs = match segs.first() {
        Some(v) if v.starts_with('v') && v[1..].contains('.') => &segs[1..],
        _ => &segs[..],
    };
    matches!(segs, ["containers", _, "attach"] | ["exec", _, "start"])
}

/// Serves one connection: a plain hijack here, everything else through hyper.
pub(crate) async fn serve<I>(mut io: I, state: Arc<State>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break Some(i + 4);
        }
        if buf.len() > MAX_HEAD {
            break None;
        }
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(60), io.read(&mut chunk)).await;
        match read {
            Ok(Ok(0)) => {
                if buf.is_empty() {
                    return;
                }
                break None;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    };
    if let Some(end) = head_end {
        if let Some(h) = parse_plain_hijack(&buf[..end]) {
            let rest = buf.split_off(end);
            raw(io, rest, h, state).await;
            return;
        }
    }
    hyper_conn(Rewind::new(Bytes::from(buf), io), state).await;
}

/// Serves `io` with hyper (with upgrades, for the `Upgrade: tcp` hijack).
pub(crate) async fn hyper_conn<I>(io: I, state: Arc<State>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| crate::http::handle(state.clone(), req));
    let _ = http1::Builder::new()
        .max_buf_size(1 << 20)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await;
}

/// A parsed plain-hijack request head.
struct Head {
    method: hyper::Method,
    target: String,
    headers: hyper::HeaderMap,
    content_length: usize,
}

fn parse_plain_hijack(head: &[u8]) -> Option<Head> {
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut hs);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    if req.method != Some("POST") || !is_hijack_path(req.path?) {
        return None;
    }
    let mut headers = hyper::HeaderMap::new();
    let mut content_length = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("upgrade") {
            // The 101 hijack is hyper's.
            return None;
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
        }
        let name = hyper::header::HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = hyper::header::HeaderValue::from_bytes(h.value).ok()?;
        headers.append(name, value);
    }
    if content_length > MAX_RAW_BODY {
        return None;
    }
    Some(Head {
        method: hyper::Method::POST,
        target: req.path?.to_string(),
        headers,
        content_length,
    })
}

async fn raw<I>(mut io: I, mut rest: Vec<u8>, h: Head, state: Arc<State>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut chunk = vec![0u8; 8192];
    while rest.len() < h.content_length {
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
        }
    }
    let after = rest.split_off(h.content_length);
    let (tx, rx) = tokio::sync::oneshot::channel::<Conn>();
    let resp =
        crate::http::handle_raw(state, h.method, &h.target, h.headers, Bytes::from(rest), rx).await;
    let status = resp.status();
    if status == hyper::StatusCode::SWITCHING_PROTOCOLS {
        // docker's plain hijack: a 200 head, then the raw stream both ways.
        let ctype = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/vnd.docker.raw-stream")
            .to_string();
        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\n\r\n");
        if io.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let _ = io.flush().await;
        let _ = tx.send(Box::new(Rewind::new(Bytes::from(after), io)));
        return;
    }
    drop(tx);
    // Any other answer (an error, a detached exec, `logs` without `stream`) as a plain HTTP
    // response delimited by the connection's close.
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (k, v) in resp.headers() {
        if let Ok(v) = v.to_str() {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    if io.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut body = resp.into_body();
    while let Some(Ok(f)) = body.frame().await {
        if let Ok(d) = f.into_data() {
            if io.write_all(&d).await.is_err() {
                return;
            }
            let _ = io.flush().await;
        }
    }
    let _ = io.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_hijack_requests() {
        let h = parse_plain_hijack(
            b"POST /v1.24/containers/abc/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.content_length, 0);
        assert!(
            parse_plain_hijack(b"POST /exec/abc/start HTTP/1.1\r\nContent-Length: 2\r\n\r\n")
                .is_some()
        );
        // The Upgrade hijack, other verbs and paths are hyper's.
        assert!(parse_plain_hijack(
            b"POST /containers/abc/attach HTTP/1.1\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n"
        )
        .is_none());
        assert!(parse_plain_hijack(b"GET /containers/abc/attach HTTP/1.1\r\n\r\n").is_none());
        assert!(parse_plain_hijack(b"POST /containers/create HTTP/1.1\r\n\r\n").is_none());
        assert!(parse_plain_hijack(b"POST /containers/a/b/attach HTTP/1.1\r\n\r\n").is_none());
    }
}
