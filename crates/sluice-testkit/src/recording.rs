//! A raw-TCP origin that keeps every byte a proxy sends it, and a strict reader of
//! those bytes: for request-smuggling tests, which must show that what reached the
//! origin can be read only one way.
//!
//! Each connection's bytes are split into requests by [`frame`], written here
//! independently of sluice's parser and stricter than RFC 9112 requires of a server:
//! CRLF line ends only, no obs-fold, no whitespace before a colon, one `Host`, at most
//! one `Content-Length` (digits), `Transfer-Encoding` only as exactly `chunked` and
//! never with `Content-Length`, chunk sizes in bare hex. A request it can frame gets
//! `200` with `x-recorded: <n>` (its number, from 1); anything else gets a `400` and
//! the connection is closed, and [`RecordingOrigin::messages`] reports why.

use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the origin read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The request line, e.g. `POST /x HTTP/1.1`.
    pub line: String,
    /// Header (name in lower case, value) pairs, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Message {
    /// Every value of header `name` (lower case).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

type Conns = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

pub struct RecordingOrigin {
    addr: SocketAddr,
    conns: Conns,
    task: JoinHandle<()>,
}

impl RecordingOrigin {
    pub async fn start() -> RecordingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("recording origin: bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("recording origin: local_addr: {e}"));
        let conns: Conns = Arc::default();
        let all = conns.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let bytes = Arc::new(Mutex::new(Vec::new()));
                all.lock().push(bytes.clone());
                tokio::spawn(serve(stream, bytes));
            }
        });
        RecordingOrigin { addr, conns, task }
    }

    pub fn server_spec(&self) -> String {
        self.addr.to_string()
    }

    /// The raw bytes received, per connection (in accept order).
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.conns.lock().iter().map(|c| c.lock().clone()).collect()
    }

    /// Every byte received, as requests: an error names the connection and why its
    /// bytes could not be read strictly (or that bytes were left over after the last
    /// whole request, which is where a smuggled request would sit). A connection
    /// that ends inside a request (the proxy gave up on it) is not an error: its
    /// partial request is not counted, since no origin would act on it.
    pub fn messages(&self) -> Result<Vec<Message>, String> {
        let mut out = Vec::new();
        for (i, bytes) in self.received().iter().enumerate() {
            let mut at = 0;
            loop {
                match frame(&bytes[at..]) {
                    Ok(Some((m, used))) => {
                        out.push(m);
                        at += used;
                    }
                    Ok(None) => break,
                    Err(e) => return Err(format!("connection {i}, byte {at}: {e}")),
                }
            }
        }
        Ok(out)
    }
}

impl Drop for RecordingOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: tokio::net::TcpStream, bytes: Arc<Mutex<Vec<u8>>>) {
    let mut buf = Vec::new();
    let mut answered = 0usize;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        bytes.lock().extend_from_slice(&chunk[..n]);
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match frame(&buf) {
                Ok(Some((_, used))) => {
                    buf.drain(..used);
                    answered += 1;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nx-recorded: {answered}\r\n\r\nok"
                    );
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    let _ = stream
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                }
            }
        }
    }
}

/// Reads one request from the start of `buf`: `Ok(None)` if it is not complete yet.
pub fn frame(buf: &[u8]) -> Result<Option<(Message, usize)>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.is_empty() {
            return Ok(None);
        }
        check_head_bytes(buf)?;
        return Ok(None);
    };
    let head = &buf[..end];
    check_head_bytes(head)?;
    let text = std::str::from_utf8(head).map_err(|_| "a head that is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default().to_string();
    let parts: Vec<&str> = line.split(' ').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) || parts[2] != "HTTP/1.1" {
        return Err(format!("request line {line:?}"));
    }
    let mut headers = Vec::new();
    for l in lines {
        let (name, value) = l
            .split_once(':')
            .ok_or_else(|| format!("header line without a colon: {l:?}"))?;
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(format!("header name {name:?}"));
        }
        headers.push((
            name.to_ascii_lowercase(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    let count = |n: &str| headers.iter().filter(|(h, _)| h == n).count();
    if count("host") != 1 {
        return Err(format!("{} Host headers", count("host")));
    }
    let mut m = Message {
        line,
        headers,
        body: Vec::new(),
    };
    let rest = &buf[end + 4..];
    let cls: Vec<String> = m
        .values("content-length")
        .into_iter()
        .map(String::from)
        .collect();
    let tes: Vec<String> = m
        .values("transfer-encoding")
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let cls: Vec<&str> = cls.iter().map(String::as_str).collect();
    let tes: Vec<&str> = tes.iter().map(String::as_str).collect();
    let used = match (&cls[..], &tes[..]) {
        ([], []) => 0,
        ([cl], []) => {
            if cl.is_empty() || !cl.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("Content-Length {cl:?}"));
            }
            let n: usize = cl.parse().map_err(|_| format!("Content-Length {cl:?}"))?;
            if rest.len() < n {
                return Ok(None);
            }
            m.body = rest[..n].to_vec();
            n
        }
        ([], ["chunked"]) => match dechunk(rest)? {
            Some((body, used)) => {
                m.body = body;
                used
            }
            None => return Ok(None),
        },
        (cl, te) => {
            return Err(format!(
                "framing headers Content-Length {cl:?}, Transfer-Encoding {te:?}"
            ))
        }
    };
    Ok(Some((m, end + 4 + used)))
}

/// CRLF only, no other control character, no obs-fold.
fn check_head_bytes(head: &[u8]) -> Result<(), String> {
    for (i, &b) in head.iter().enumerate() {
        let crlf = (b == b'\r' && head.get(i + 1) == Some(&b'\n'))
            || (b == b'\n' && i > 0 && head[i - 1] == b'\r');
        if (b == b'\r' || b == b'\n') && !crlf {
            return Err(format!("a bare CR or LF at byte {i}"));
        }
        if (b < 0x20 && b != b'\t' && b != b'\r' && b != b'\n') || b == 0x7f {
            return Err(format!("control byte {b:#04x} at byte {i}"));
        }
        if b == b'\n' && matches!(head.get(i + 1), Some(b' ' | b'\t')) {
            return Err(format!("obs-fold at byte {}", i + 1));
        }
    }
    Ok(())
}

/// A chunked body at the start of `buf`: (the data, bytes used), `None` if incomplete.
fn dechunk(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(&buf[at..], b"\r\n") else {
            return Ok(None);
        };
        let size = std::str::from_utf8(&buf[at..at + eol]).unwrap_or("?");
        if size.is_empty() || size.len() > 15 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("chunk size line {size:?}"));
        }
        let n = usize::from_str_radix(size, 16).map_err(|_| format!("chunk size {size:?}"))?;
        at += eol + 2;
        if n == 0 {
            // No trailers are expected from a proxy that drops them.
            return match buf.get(at..at + 2) {
                Some(b"\r\n") => Ok(Some((body, at + 2))),
                Some(other) => Err(format!("after the last chunk: {other:?}")),
                None => Ok(None),
            };
        }
        if buf.len() < at + n + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + n]);
        if &buf[at + n..at + n + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        at += n + 2;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::frame;

    #[test]
    fn the_strict_reader_frames_plain_requests_and_refuses_ambiguous_ones() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET";
        let (m, used) = frame(raw).unwrap().unwrap();
        assert_eq!((m.body.as_slice(), used), (&b"hi"[..], raw.len() - 3));
        let (m, _) = frame(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.body, b"hi");
        for bad in [
            &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\n x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\nhi\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\0\r\n\r\n",
        ] {
            assert!(frame(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(frame(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
    }
}
