//! Request plumbing: API version prefixes, routing, body limits, JSON decoding that names the
//! field, errors as docker writes them (`{"message": …}` with 400/404/409/500), streamed bodies.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::State;

/// The oldest API version served.
pub const MIN_API_VERSION: &str = "1.24";
/// The newest API version served (what `/_ping` announces).
pub const MAX_API_VERSION: &str = "1.50";
/// The largest JSON request body accepted.
pub const MAX_JSON_BODY: usize = 1 << 20;

/// Response body: a whole buffer or a stream of chunks.
pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A handler's response.
pub type Resp = Response<Body>;

/// An API error: docker's status code and message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

fn image_status(e: &skiff_image::Error) -> StatusCode {
    match e {
        skiff_image::Error::NotFound(_) => StatusCode::NOT_FOUND,
        skiff_image::Error::Invalid { .. } | skiff_image::Error::Unsupported(_) => {
            StatusCode::BAD_REQUEST
        }
        skiff_image::Error::Conflict(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<skiff_engine::Error> for ApiError {
    fn from(e: skiff_engine::Error) -> ApiError {
        use skiff_engine::Error as E;
        let status = match &e {
            E::NoSuchContainer(_) => StatusCode::NOT_FOUND,
            E::NameConflict { .. } | E::State(_) => StatusCode::CONFLICT,
            E::Invalid(_) => StatusCode::BAD_REQUEST,
            E::Start { code, .. } if *code == 126 || *code == 127 => StatusCode::BAD_REQUEST,
            E::Image(i) => image_status(i),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<skiff_image::Error> for ApiError {
    fn from(e: skiff_image::Error) -> ApiError {
        ApiError::new(image_status(&e), e.to_string())
    }
}

impl From<skiff_engine::volumes::VolumeError> for ApiError {
    fn from(e: skiff_engine::volumes::VolumeError) -> ApiError {
        use skiff_engine::volumes::VolumeError as V;
        let status = match &e {
            V::NotFound(_) => StatusCode::NOT_FOUND,
            V::InUse { .. } => StatusCode::CONFLICT,
            V::TooShort(_) | V::InvalidName(_) | V::BadOptions { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// Handler result.
pub type R = Result<Resp, ApiError>;

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// A JSON response.
pub fn json(status: StatusCode, v: &impl serde::Serialize) -> Resp {
    let data = serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec());
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .body(full(data))
        .unwrap_or_else(|_| Response::new(full("")))
}

/// 200 with JSON.
pub fn ok_json(v: &impl serde::Serialize) -> R {
    Ok(json(StatusCode::OK, v))
}

/// An empty response with `status` (204 for most container verbs).
pub fn empty(status: StatusCode) -> R {
    Ok(Response::builder()
        .status(status)
        .body(full(""))
        .unwrap_or_else(|_| Response::new(full(""))))
}

fn error_response(e: ApiError) -> Resp {
    json(e.status, &serde_json::json!({ "message": e.message }))
}

/// A streamed body fed by a channel; the stream ends when every sender is dropped. A client that
/// goes away drops the receiver, so senders see their `send` fail and stop.
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.0.poll_recv(cx) {
            Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A streamed response of `content_type`; returns the sender.
pub fn stream(content_type: &str) -> (tokio::sync::mpsc::Sender<Bytes>, Resp) {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let resp = Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", content_type)
        .body(ChannelBody(rx).boxed())
        .unwrap_or_else(|_| Response::new(full("")));
    (tx, resp)
}

/// A writer into a streamed response (from a blocking thread).
pub struct ChanWriter(pub tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reader of a request body (on a blocking thread; a task feeds it).
pub struct BodyReader {
    rx: std::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.cur = b,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// A blocking reader of `body`, fed by a task (abort the task when done).
pub fn body_reader(mut body: Incoming) -> (BodyReader, tokio::task::JoinHandle<()>) {
    let (btx, brx) = std::sync::mpsc::sync_channel::<Bytes>(16);
    let feeder = tokio::spawn(async move {
        while let Some(f) = body.frame().await {
            let Ok(f) = f else { break };
            if let Ok(d) = f.into_data() {
                let tx = btx.clone();
                let sent = tokio::task::spawn_blocking(move || tx.send(d).is_ok()).await;
                if !matches!(sent, Ok(true)) {
                    break;
                }
            }
        }
    });
    (
        BodyReader {
            rx: brx,
            cur: Bytes::new(),
        },
        feeder,
    )
}

/// Query parameters (percent-decoded; `+` is a space).
#[derive(Debug, Default)]
pub struct Query(pub HashMap<String, String>, Vec<(String, String)>);

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    fn parse(q: Option<&str>) -> Query {
        let mut m = HashMap::new();
        let mut all = Vec::new();
        for kv in q.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            m.insert(pct_decode(k), pct_decode(v));
            all.push((pct_decode(k), pct_decode(v)));
        }
        Query(m, all)
    }
    /// Every value of a repeated parameter (`names=a&names=b`).
    pub fn all(&self, k: &str) -> Vec<String> {
        self.1
            .iter()
            .filter(|(x, _)| x == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
    /// A string parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    /// A boolean parameter as docker's `BoolValue`: absent, ``, `0`, `false`, `no`, `none` → false.
    pub fn bool(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| {
            !matches!(
                v.to_ascii_lowercase().as_str(),
                "" | "0" | "false" | "no" | "none" | "off"
            )
        })
    }
    /// An integer parameter (400 naming it when malformed).
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad(format!("invalid value for {k}: {v:?} is not an integer"))
            }),
        }
    }
    /// docker's `filters` parameter (`{"key": ["v", …]}` or the old `{"key": {"v": true}}`),
    /// as `key=value` pairs.
    pub fn filters(&self) -> Result<Vec<(String, String)>, ApiError> {
        let Some(f) = self.get("filters").filter(|f| !f.is_empty()) else {
            return Ok(Vec::new());
        };
        let v: Value =
            serde_json::from_str(f).map_err(|e| ApiError::bad(format!("invalid filters: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| ApiError::bad("invalid filters: not a JSON object"))?;
        let mut out = Vec::new();
        for (k, vals) in obj {
            match vals {
                Value::Array(a) => {
                    for x in a {
                        let s = x.as_str().ok_or_else(|| {
                            ApiError::bad(format!("invalid filter value for {k}"))
                        })?;
                        out.push((k.clone(), s.to_string()));
                    }
                }
                Value::Object(m) => {
                    for (x, on) in m {
                        if on.as_bool() == Some(true) {
                            out.push((k.clone(), x.clone()));
                        }
                    }
                }
                _ => return Err(ApiError::bad(format!("invalid filter value for {k}"))),
            }
        }
        Ok(out)
    }
}

/// Reads a request body of at most `limit` bytes (413 beyond it).
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body larger than {limit} bytes"),
                ))
            } else {
                Err(ApiError::bad(format!("read request body: {e}")))
            }
        }
    }
}

/// Decodes a JSON body; errors name the field (`HostConfig.Memory: invalid type …`). An empty
/// body is the type's default when `empty_ok`.
pub fn decode<T: DeserializeOwned + Default>(b: &[u8], empty_ok: bool) -> Result<T, ApiError> {
    if b.iter().all(u8::is_ascii_whitespace) {
        if empty_ok {
            return Ok(T::default());
        }
        return Err(ApiError::bad("a JSON request body is required"));
    }
    // Go's encoding/json leaves a field alone on `null` (docker-py and docker-compose 1.x send
    // `"IPRange": null`, `"Labels": null`…): nulls inside objects are dropped before decoding.
    let mut v: serde_json::Value =
        serde_json::from_slice(b).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?;
    strip_nulls(&mut v);
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::bad(format!("invalid JSON: {inner}"))
        } else {
            ApiError::bad(format!("invalid JSON: {path}: {inner}"))
        }
    })
}

fn strip_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Runs blocking engine work on tokio's blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("handler failed: {e}")))?
}

/// Splits `/vX.Y/rest` into the version and `/rest`; checks the version is served.
/// An API version, `(major, minor)`.
pub type Version = (u32, u32);

/// The Content-Type of an attach, exec or logs stream: raw with a tty; multiplexed (stdcopy)
/// otherwise, named so from API 1.42 on (older clients were told `raw-stream` either way).
pub fn stream_type(version: Version, tty: bool) -> &'static str {
    if tty || version < (1, 42) {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

fn split_version(path: &str) -> Result<(Option<Version>, &str), ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((None, path));
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let parse = |s: &str| -> Option<(u32, u32)> {
        let (a, b) = s.split_once('.')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let Some(v) = parse(ver) else {
        return Ok((None, path));
    };
    let min = parse(MIN_API_VERSION).unwrap_or((1, 24));
    let max = parse(MAX_API_VERSION).unwrap_or((1, 50));
    if v < min {
        return Err(ApiError::bad(format!(
            "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    if v > max {
        return Err(ApiError::bad(format!(
            "client version {ver} is too new. Maximum supported API version is {MAX_API_VERSION}"
        )));
    }
    Ok((Some(v), tail))
}

/// One request as handlers see it.
pub struct Ctx {
    pub state: Arc<State>,
    pub method: Method,
    pub query: Query,
    /// The API version the client asked for (the newest when unversioned).
    pub version: Version,
    pub headers: hyper::HeaderMap,
    body: Option<Incoming>,
    /// The connection once a hijack's 101 has been sent.
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// A plain (non-`Upgrade`) hijack: the connection, once its 200 head has been sent.
    raw: Option<tokio::sync::oneshot::Receiver<crate::hijack::Conn>>,
    /// The body of a plain-hijack request, read before the handler.
    pre_body: Option<Bytes>,
}

/// A future that yields a hijacked connection once the answer's head has gone out (`None`
/// when the client went away or the answer was not a hijack).
pub type HijackFuture =
    Pin<Box<dyn std::future::Future<Output = Option<crate::hijack::Conn>> + Send>>;

impl Ctx {
    /// The body as JSON (size-limited, fields named in errors).
    pub async fn body<T: DeserializeOwned + Default>(
        &mut self,
        empty_ok: bool,
    ) -> Result<T, ApiError> {
        let b = match (self.pre_body.take(), self.body.take()) {
            (Some(b), _) => b,
            (None, Some(body)) => read_body(body, MAX_JSON_BODY).await?,
            (None, None) => Bytes::new(),
        };
        decode(&b, empty_ok)
    }
    /// The request body, for handlers that stream it.
    pub fn take_body(&mut self) -> Option<Incoming> {
        self.body.take()
    }
    /// The connection, once the handler's 101 answer (a 200 head on a plain hijack) is out.
    pub fn take_hijack(&mut self) -> Option<HijackFuture> {
        if let Some(rx) = self.raw.take() {
            return Some(Box::pin(async move { rx.await.ok() }));
        }
        let on = self.upgrade.take()?;
        Some(Box::pin(async move {
            on.await
                .ok()
                .map(|u| Box::new(hyper_util::rt::TokioIo::new(u)) as crate::hijack::Conn)
        }))
    }
    /// The client hijacks the connection: `Upgrade: tcp`, or the plain hijack of older clients.
    pub fn wants_upgrade(&self) -> bool {
        self.raw.is_some()
            || self
                .headers
                .get(hyper::header::UPGRADE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
    }
}

/// The entry point of every request.
pub async fn handle(state: Arc<State>, mut req: Request<Incoming>) -> Result<Resp, Infallible> {
    let t0 = std::time::Instant::now();
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let r = async {
        let (version, tail) = split_version(&path)?;
        let query = Query::parse(req.uri().query());
        let segs: Vec<String> = tail
            .split('/')
            .filter(|s| !s.is_empty())
            .map(pct_decode)
            .collect();
        let upgrade = Some(hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let ctx = Ctx {
            state,
            method: method.clone(),
            query,
            version: version.unwrap_or((1, 50)),
            headers: parts.headers,
            body: Some(body),
            upgrade,
            raw: None,
            pre_body: None,
        };
        route(ctx, segs).await
    }
    .await;
    let resp = r.unwrap_or_else(error_response);
    if timing_log() {
        // SKIFF_API_TIMING=1: one line per request (until its headers went out), for profiling.
        eprintln!(
            "skiff serve: {method} {path} {} {:.2} ms",
            resp.status().as_u16(),
            t0.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(resp)
}

/// Whether `SKIFF_API_TIMING` asks for a line per request on stderr.
fn timing_log() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SKIFF_API_TIMING").is_some_and(|v| v == "1"))
}

/// A plain-hijack request read by [`crate::hijack`]: routed as any other, the connection
/// handed over through `raw` when the handler hijacks it.
pub(crate) async fn handle_raw(
    state: Arc<State>,
    method: Method,
    target: &str,
    headers: hyper::HeaderMap,
    body: Bytes,
    raw: tokio::sync::oneshot::Receiver<crate::hijack::Conn>,
) -> Resp {
    let (path, q) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let r = async {
        let (version, tail) = split_version(path)?;
        let segs: Vec<String> = tail
            .split('/')
            .filter(|s| !s.is_empty())
            .map(pct_decode)
            .collect();
        let ctx = Ctx {
            state,
            method,
            query: Query::parse(q),
            version: version.unwrap_or((1, 50)),
            headers,
            body: None,
            upgrade: None,
            raw: Some(raw),
            pre_body: Some(body),
        };
        route(ctx, segs).await
    }
    .await;
    r.unwrap_or_else(error_response)
}

async fn route(ctx: Ctx, segs: Vec<String>) -> R {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = ctx.method.clone();
    match (m.as_str(), s.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => crate::misc::ping(&ctx),
        ("GET", ["version"]) => crate::misc::version(),
        ("GET", ["info"]) => crate::misc::info(ctx).await,
        ("GET", ["system", "df"]) => crate::misc::df(ctx).await,
        ("GET", ["events"]) => crate::misc::events(ctx).await,
        ("POST", ["auth"]) => crate::misc::auth(ctx).await,
        ("POST", ["build"]) => crate::build::build(ctx).await,
        ("POST", ["commit"]) => crate::more::commit(ctx).await,
        ("GET", ["distribution", name @ .., "json"]) if !name.is_empty() => {
            let name = name.join("/");
            crate::more::distribution(ctx, name).await
        }
        (_, ["containers", ..]) => crate::containers::route(ctx, &s[1..]).await,
        (_, ["exec", id, rest @ ..]) => crate::exec::route(ctx, id, rest).await,
        (_, ["images", ..]) => crate::images::route(ctx, &s[1..]).await,
        (_, ["volumes", ..]) => crate::misc::volumes(ctx, &s[1..]).await,
        (_, ["networks", ..]) => crate::misc::networks(ctx, &s[1..]).await,
        _ => Err(ApiError::not_found(format!(
            "page not found: {} {}",
            m,
            segs.join("/")
        ))),
    }
}
