//! Decoding a chunked response body (RFC 9112 §7.1) out of a connection's read buffer.
//! Trailers are read and dropped: the client side does not forward them.

use bytes::{Bytes, BytesMut};

/// A size line or trailer line longer than this is refused (they carry a size and
/// rarely an extension; 4 KiB is generous).
const MAX_LINE: usize = 4096;

/// Trailer bytes in total, at most.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; the bytes seen so far.
    Trailers(usize),
    Done,
}

impl Chunked {
    pub fn new() -> Self {
        Self::Size
    }

    pub fn is_done(&self) -> bool {
        *self == Self::Done
    }

    /// Data taken from the front of `buf`. `Ok(None)`: more input is needed, or the
    /// body is complete ([`Self::is_done`]).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, String> {
        loop {
            match *self {
                Self::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(None);
                    };
                    let size = parse_size(&line)?;
                    *self = if size == 0 {
                        Self::Trailers(0)
                    } else {
                        Self::Data(size)
                    };
                }
                Self::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    let left = left - n as u64;
                    *self = if left == 0 {
                        Self::DataEnd
                    } else {
                        Self::Data(left)
                    };
                    return Ok(Some(buf.split_to(n).freeze()));
                }
                Self::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    let _ = buf.split_to(2);
                    *self = Self::Size;
                }
                Self::Trailers(seen) => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(None);
                    };
                    if line.is_empty() {
                        *self = Self::Done;
                        return Ok(None);
                    }
                    let seen = seen + line.len() + 2;
                    if seen > MAX_TRAILERS {
                        return Err("chunked trailers too large".into());
                    }
                    *self = Self::Trailers(seen);
                }
                Self::Done => return Ok(None),
            }
        }
    }
}

/// A line up to its CRLF (which is consumed too), or `None` if it is not all there.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, String> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(end) if end > MAX_LINE => Err("chunk size line too long".into()),
        Some(end) => {
            let mut line = buf.split_to(end + 1);
            line.truncate(end);
            if line.last() != Some(&b'\r') {
                return Err("chunked body line not ended by CRLF".into());
            }
            line.truncate(end - 1);
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err("chunk size line too long".into()),
        None => Ok(None),
    }
}

/// The hex size before any `;extension`.
fn parse_size(line: &[u8]) -> Result<u64, String> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(format!(
            "invalid chunk size {:?}",
            String::from_utf8_lossy(line)
        ));
    }
    let mut n = 0u64;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => {
                return Err(format!(
                    "invalid chunk size {:?}",
                    String::from_utf8_lossy(line)
                ))
            }
        };
        n = (n << 4) | u64::from(v);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `step` bytes; returns the data and whether it ended.
    fn decode_in_steps(wire: &[u8], step: usize) -> Result<(Vec<u8>, bool), String> {
        let mut d = Chunked::new();
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(b) = d.decode(&mut buf)? {
                data.extend_from_slice(&b);
            }
        }
        Ok((data, d.is_done()))
    }

    #[test]
    fn decodes_whatever_the_read_boundaries() {
        let wire = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        for step in 1..wire.len() {
            let (data, done) = decode_in_steps(wire, step).unwrap();
            assert_eq!(data, b"hello0123456789", "step {step}");
            assert!(done, "step {step}");
        }
    }

    #[test]
    fn leaves_what_follows_the_body_in_the_buffer() {
        let mut d = Chunked::new();
        let mut buf = BytesMut::from(&b"1\r\na\r\n0\r\n\r\nHTTP/1.1"[..]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), "a");
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert!(d.is_done());
        assert_eq!(&buf[..], b"HTTP/1.1");
    }

    #[test]
    fn refuses_broken_framing() {
        for wire in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX",
            b"5\nhello",
            b"10000000000000000\r\n",
            b"\r\n",
        ] {
            assert!(decode_in_steps(wire, wire.len()).is_err(), "{wire:?}");
        }
        assert!(decode_in_steps(&[b'1'; MAX_LINE + 1], MAX_LINE + 1).is_err());
        let mut long = vec![b'0'; MAX_LINE + 1];
        long.extend_from_slice(b"1\r\n");
        assert!(
            decode_in_steps(&long, long.len()).is_err(),
            "with its LF in one read"
        );
        let (_, done) = decode_in_steps(b"5\r\nhel", 7).unwrap();
        assert!(!done, "an unfinished body is not done");
    }
}
