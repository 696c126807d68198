//! A minimal, blocking D-Bus client: just enough of the wire protocol (SASL EXTERNAL auth, method
//! calls, replies, errors and signals, little-endian marshalling of the handful of types systemd's
//! Manager interface needs) to create and stop transient units. It talks to systemd's private
//! socket (`/run/systemd/private`, root only, peer-to-peer) or to the system bus.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// A D-Bus value of the types this client marshals.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `b`
    Bool(bool),
    /// `u`
    U32(u32),
    /// `t`
    U64(u64),
    /// `s`
    Str(String),
    /// `o`
    Path(String),
    /// `au`
    U32Array(Vec<u32>),
}

impl Value {
    fn signature(&self) -> &'static str {
        match self {
            Value::Bool(_) => "b",
            Value::U32(_) => "u",
            Value::U64(_) => "t",
            Value::Str(_) => "s",
            Value::Path(_) => "o",
            Value::U32Array(_) => "au",
        }
    }
}

/// One argument of a method call.
#[derive(Debug, Clone)]
pub enum Arg {
    /// A plain value.
    Val(Value),
    /// `a(sv)`: a property list.
    Props(Vec<(String, Value)>),
    /// `a(sa(sv))`: auxiliary units (always empty here).
    AuxUnits,
}

impl Arg {
    fn signature(&self) -> String {
        match self {
            Arg::Val(v) => v.signature().into(),
            Arg::Props(_) => "a(sv)".into(),
            Arg::AuxUnits => "a(sa(sv))".into(),
        }
    }
}

/// Little-endian marshalling buffer; offsets are relative to the message start, which is what
/// D-Bus alignment is defined against.
struct Buf {
    b: Vec<u8>,
}

impl Buf {
    fn pad(&mut self, n: usize) {
        while !self.b.len().is_multiple_of(n) {
            self.b.push(0);
        }
    }
    fn u8(&mut self, v: u8) {
        self.b.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.b.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.pad(8);
        self.b.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.b.extend_from_slice(s.as_bytes());
        self.b.push(0);
    }
    fn sig(&mut self, s: &str) {
        self.u8(s.len() as u8);
        self.b.extend_from_slice(s.as_bytes());
        self.b.push(0);
    }
    /// Writes an array: length placeholder, padding to the element alignment, elements.
    fn array(&mut self, elem_align: usize, f: impl FnOnce(&mut Buf)) {
        self.pad(4);
        let at = self.b.len();
        self.b.extend_from_slice(&[0; 4]);
        self.pad(elem_align);
        let start = self.b.len();
        f(self);
        let len = (self.b.len() - start) as u32;
        self.b[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    fn value(&mut self, v: &Value) {
        match v {
            Value::Bool(b) => self.u32(*b as u32),
            Value::U32(u) => self.u32(*u),
            Value::U64(u) => self.u64(*u),
            Value::Str(s) | Value::Path(s) => self.str(s),
            Value::U32Array(a) => self.array(4, |b| a.iter().for_each(|x| b.u32(*x))),
        }
    }
    fn variant(&mut self, v: &Value) {
        self.sig(v.signature());
        self.value(v);
    }
    fn arg(&mut self, a: &Arg) {
        match a {
            Arg::Val(v) => self.value(v),
            Arg::Props(props) => self.array(8, |b| {
                for (k, v) in props {
                    b.pad(8);
                    b.str(k);
                    b.variant(v);
                }
            }),
            Arg::AuxUnits => self.array(8, |_| {}),
        }
    }
}

/// A reader over a received message body (or header), alignment relative to `base`.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    base: usize,
}

impl Cursor<'_> {
    fn align(&mut self, n: usize) {
        while !(self.base + self.pos).is_multiple_of(n) {
            self.pos += 1;
        }
    }
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.b.len());
        let Some(end) = end else {
            return Err(proto("truncated message"));
        };
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        self.align(4);
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.take(1)?;
        Ok(s)
    }
    fn sig(&mut self) -> Result<String> {
        let n = self.u8()? as usize;
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.take(1)?;
        Ok(s)
    }
    /// Reads a variant of a basic type, returning it as text (enough for header fields).
    fn variant_text(&mut self) -> Result<String> {
        let sig = self.sig()?;
        match sig.as_str() {
            "s" | "o" => self.str(),
            "g" => self.sig(),
            "u" => Ok(self.u32()?.to_string()),
            other => Err(proto(&format!("unexpected header field type {other:?}"))),
        }
    }
}

fn proto(what: &str) -> Error {
    Error::Invalid(format!("systemd D-Bus: {what}"))
}

fn io(what: &str, e: std::io::Error) -> Error {
    Error::Sys {
        what: format!("systemd D-Bus: {what}"),
        source: e,
    }
}

/// A received message.
#[derive(Debug, Default)]
pub struct Message {
    /// 2 = method return, 3 = error, 4 = signal.
    pub kind: u8,
    /// Serial of the call this replies to.
    pub reply_serial: Option<u32>,
    /// Error name for errors.
    pub error_name: Option<String>,
    /// Member name for signals.
    pub member: Option<String>,
    /// Body signature.
    pub signature: String,
    /// Raw body.
    pub body: Vec<u8>,
}

impl Message {
    /// The leading string arguments of the body (for errors: the message; for `JobRemoved`:
    /// skips the `u` id). Only string-like (`s`, `o`) and `u` fields are decoded.
    pub fn strings(&self) -> Vec<String> {
        let mut c = Cursor {
            b: &self.body,
            pos: 0,
            base: 0,
        };
        let mut out = Vec::new();
        for t in self.signature.chars() {
            let r = match t {
                's' | 'o' => c.str(),
                'u' => c.u32().map(|u| u.to_string()),
                _ => break,
            };
            match r {
                Ok(s) => out.push(s),
                Err(_) => break,
            }
        }
        out
    }
}

/// A connection to systemd.
pub struct Conn {
    sock: UnixStream,
    serial: u32,
    bus: bool,
    /// Signals that arrived while waiting for a method reply, for `wait_signal`.
    pending: Vec<Message>,
}

impl Conn {
    /// Connect to systemd: its private socket when it exists (root), else the system bus.
    pub fn systemd() -> Result<Conn> {
        let private = Path::new("/run/systemd/private");
        if private.exists() {
            if let Ok(c) = Conn::connect(private, false) {
                return Ok(c);
            }
        }
        let bus = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .ok()
            .and_then(|a| a.strip_prefix("unix:path=").map(|s| s.to_string()))
            .unwrap_or_else(|| "/run/dbus/system_bus_socket".into());
        Conn::connect(Path::new(&bus), true)
    }

    /// Connect to `path` and authenticate with SASL EXTERNAL; `bus` sends the Hello a message
    /// bus requires.
    pub fn connect(path: &Path, bus: bool) -> Result<Conn> {
        let mut sock =
            UnixStream::connect(path).map_err(|e| io(&format!("connect {}", path.display()), e))?;
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| io("socket timeout", e))?;
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() }.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        // AUTH and BEGIN go in one write, as sd-bus clients send them: systemd's server drops a
        // message that arrives right behind a separately sent BEGIN until more data comes.
        sock.write_all(format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").as_bytes())
            .map_err(|e| io("auth", e))?;
        let line = read_line(&mut sock)?;
        if !line.starts_with("OK") {
            return Err(proto(&format!("authentication refused: {line}")));
        }
        let mut c = Conn {
            sock,
            serial: 0,
            bus,
            pending: Vec::new(),
        };
        if bus {
            c.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                &[],
            )?;
        }
        Ok(c)
    }

    /// True when connected through a message bus (signals then need a match rule).
    pub fn is_bus(&self) -> bool {
        self.bus
    }

    /// Send a method call and return its serial.
    pub fn send(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Arg],
    ) -> Result<u32> {
        self.serial += 1;
        let serial = self.serial;
        let sig: String = args.iter().map(|a| a.signature()).collect();
        let mut body = Buf { b: Vec::new() };
        for a in args {
            body.arg(a);
        }
        let mut h = Buf { b: Vec::new() };
        h.u8(b'l');
        h.u8(1); // METHOD_CALL
        h.u8(0);
        h.u8(1); // protocol version
        h.u32(body.b.len() as u32);
        h.u32(serial);
        h.array(8, |b| {
            let mut field = |code: u8, sig: &str, v: &str| {
                b.pad(8);
                b.u8(code);
                b.sig(sig);
                if sig == "g" {
                    b.sig(v);
                } else {
                    b.str(v);
                }
            };
            field(1, "o", path);
            field(2, "s", iface);
            field(3, "s", member);
            field(6, "s", dest);
            if !sig.is_empty() {
                field(8, "g", &sig);
            }
        });
        h.pad(8);
        h.b.extend_from_slice(&body.b);
        self.sock
            .write_all(&h.b)
            .map_err(|e| io(&format!("send {member}"), e))?;
        Ok(serial)
    }

    /// Read the next message.
    pub fn recv(&mut self) -> Result<Message> {
        let mut fixed = [0u8; 16];
        self.sock
            .read_exact(&mut fixed)
            .map_err(|e| io("receive", e))?;
        if fixed[0] != b'l' {
            return Err(proto("big-endian messages are not supported"));
        }
        let body_len = u32::from_le_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]) as usize;
        let fields_len = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]) as usize;
        if body_len > 64 << 20 || fields_len > 1 << 20 {
            return Err(proto("oversized message"));
        }
        let padded = (16 + fields_len).div_ceil(8) * 8 - 16;
        let mut rest = vec![0u8; padded + body_len];
        self.sock
            .read_exact(&mut rest)
            .map_err(|e| io("receive", e))?;
        let mut m = Message {
            kind: fixed[1],
            ..Default::default()
        };
        let mut c = Cursor {
            b: &rest[..fields_len],
            pos: 0,
            base: 16,
        };
        while c.pos < fields_len {
            c.align(8);
            if c.pos >= fields_len {
                break;
            }
            let code = c.u8()?;
            let v = c.variant_text()?;
            match code {
                3 => m.member = Some(v),
                4 => m.error_name = Some(v),
                5 => m.reply_serial = v.parse().ok(),
                8 => m.signature = v,
                _ => {}
            }
        }
        m.body = rest[padded..].to_vec();
        Ok(m)
    }

    /// Call a method and wait for its reply; D-Bus errors become `Err` naming the error. Signals
    /// that arrive meanwhile are kept for [`Conn::wait_signal`].
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Arg],
    ) -> Result<Message> {
        let serial = self.send(dest, path, iface, member, args)?;
        loop {
            let m = self.recv()?;
            if m.kind == 4 {
                if self.pending.len() < 1024 {
                    self.pending.push(m);
                }
                continue;
            }
            if m.reply_serial != Some(serial) {
                continue;
            }
            if m.kind == 3 {
                let name = m.error_name.clone().unwrap_or_default();
                let text = m.strings().into_iter().next().unwrap_or_default();
                return Err(DbusError { name, text }.into());
            }
            return Ok(m);
        }
    }

    /// Wait until `pred` accepts a signal, for at most `timeout`.
    pub fn wait_signal(
        &mut self,
        timeout: Duration,
        pred: &mut dyn FnMut(&Message) -> bool,
    ) -> Result<()> {
        for m in std::mem::take(&mut self.pending) {
            if pred(&m) {
                return Ok(());
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(proto("timed out waiting for systemd"));
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(|e| io("socket timeout", e))?;
            let m = match self.recv() {
                Ok(m) => m,
                Err(Error::Sys { source, .. })
                    if source.kind() == std::io::ErrorKind::WouldBlock
                        || source.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Err(proto("timed out waiting for systemd"));
                }
                Err(e) => return Err(e),
            };
            if m.kind == 4 && pred(&m) {
                return Ok(());
            }
        }
    }
}

/// A D-Bus error reply.
#[derive(Debug)]
pub struct DbusError {
    /// The error name (`org.freedesktop.systemd1.NoSuchUnit`).
    pub name: String,
    /// The error message.
    pub text: String,
}

impl From<DbusError> for Error {
    fn from(e: DbusError) -> Error {
        Error::Invalid(format!("systemd: {}: {}", e.name, e.text))
    }
}

fn read_line(s: &mut UnixStream) -> Result<String> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while out.len() < 4096 {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(_) => {
                if b[0] == b'\n' {
                    break;
                }
                out.push(b[0]);
            }
            Err(e) => return Err(io("auth reply", e)),
        }
    }
    Ok(String::from_utf8_lossy(&out).trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marshals_properties_with_alignment() {
        let mut b = Buf { b: Vec::new() };
        b.arg(&Arg::Val(Value::Str("a".into())));
        b.arg(&Arg::Props(vec![
            ("Delegate".into(), Value::Bool(true)),
            ("PIDs".into(), Value::U32Array(vec![7])),
            ("MemoryMax".into(), Value::U64(1 << 20)),
        ]));
        let b = b.b;
        // "a": len 1, 'a', NUL → 6 bytes; array length at 8; elements start at 16 (8-aligned).
        assert_eq!(&b[0..6], &[1, 0, 0, 0, b'a', 0]);
        assert_eq!(&b[16..20], &[8, 0, 0, 0]);
        assert_eq!(&b[20..29], b"Delegate\0");
        let len = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
        assert_eq!(len, b.len() - 16);
        // The u64 of MemoryMax is 8-aligned and little-endian.
        let tail = &b[b.len() - 8..];
        assert_eq!(tail, &(1u64 << 20).to_le_bytes());
        assert!((b.len() - 8).is_multiple_of(8));
    }

    #[test]
    fn reads_back_strings() {
        let mut b = Buf { b: Vec::new() };
        b.u32(42);
        b.str("/org/freedesktop/systemd1/job/1");
        b.str("x.scope");
        b.str("done");
        let m = Message {
            kind: 4,
            signature: "uoss".into(),
            body: b.b,
            ..Default::default()
        };
        assert_eq!(
            m.strings(),
            vec!["42", "/org/freedesktop/systemd1/job/1", "x.scope", "done"]
        );
    }
}
