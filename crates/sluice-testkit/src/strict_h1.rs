//! A strict reader of HTTP/1.1 requests, written independently of sluice's parser:
//! CRLF line ends only, no obs-fold, no whitespace before a colon, one `Host`, at most
//! one `Content-Length` (digits), `Transfer-Encoding` only as exactly `chunked` and
//! never with `Content-Length`, chunk sizes in bare hex, no trailers. What it reads,
//! no conforming origin can read differently. Used by [`crate::RecordingOrigin`] and,
//! through `#[path]`, by the fuzz target `h1_forward` (so it needs only `std`).

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
    // Field values may carry obs-text (bytes above 0x7f, RFC 9110 §5.5): read, not
    // refused. The request line and names are checked as ASCII below.
    let text = String::from_utf8_lossy(head);
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
        // Found by the fuzz target h1_forward: obs-text in a value is legal.
        assert!(
            frame(b"GET / HTTP/1.1\r\nHost: a\r\nX: ch\xf9unked\r\n\r\n")
                .unwrap()
                .is_some()
        );
    }
}
