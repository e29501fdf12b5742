//! A hand-driven client connection for requests no well-behaved client would send
//! (malformed framing, stalls, disconnects), and for seeing exactly how the server ended
//! the connection: a clean close, a reset, or not at all.

use std::{net::SocketAddr, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// How long a [`RawConn`] call waits before it panics.
pub const RAW_WAIT: Duration = Duration::from_secs(10);

/// How the server ended a connection, as seen by [`RawConn::read_to_end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A clean close (FIN): a response that ends here looks complete.
    Eof,
    /// A reset (ECONNRESET): the server aborted the connection.
    Reset,
    /// Still open when the wait ran out.
    StillOpen,
}

/// One TCP connection written and read by hand. Everything received is kept.
pub struct RawConn {
    stream: TcpStream,
    received: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = tokio::time::timeout(RAW_WAIT, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("connect to {addr}: no answer within {RAW_WAIT:?}"))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        RawConn {
            stream,
            received: Vec::new(),
        }
    }

    /// Writes all of `bytes` (panics if the server does not take them in time).
    pub async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(RAW_WAIT, self.stream.write_all(bytes))
            .await
            .unwrap_or_else(|_| panic!("write: not taken within {RAW_WAIT:?}"))
            .unwrap_or_else(|e| panic!("write: {e}"));
    }

    /// Reads until what was received contains `needle`; returns everything so far.
    /// Panics if the connection ends first or [`RAW_WAIT`] runs out.
    pub async fn read_until(&mut self, needle: &str) -> String {
        self.read_until_count(needle, 1).await
    }

    /// Reads until what was received contains `needle` `n` times (e.g. the n-th
    /// response on a keep-alive connection); returns everything so far.
    pub async fn read_until_count(&mut self, needle: &str, n: usize) -> String {
        let reading = async {
            let mut buf = vec![0u8; 16 * 1024];
            while self.text().matches(needle).count() < n {
                match self.stream.read(&mut buf).await {
                    Ok(0) => panic!("closed before {needle:?}; got {:?}", self.text()),
                    Ok(n) => self.received.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("{e} before {needle:?}; got {:?}", self.text()),
                }
            }
        };
        if tokio::time::timeout(RAW_WAIT, reading).await.is_err() {
            panic!("no {needle:?} within {RAW_WAIT:?}; got {:?}", self.text());
        }
        self.text()
    }

    /// Reads until the server ends the connection, or `within` runs out; returns
    /// everything received and how it ended.
    pub async fn read_to_end(&mut self, within: Duration) -> (String, Ending) {
        let reading = async {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) => return Ending::Eof,
                    Ok(n) => self.received.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                        return Ending::Reset
                    }
                    Err(e) => panic!("read: {e}; got {:?}", self.text()),
                }
            }
        };
        let ending = tokio::time::timeout(within, reading)
            .await
            .unwrap_or(Ending::StillOpen);
        (self.text(), ending)
    }

    /// Shuts down the sending side (a FIN), as `nc -N` does after its request.
    pub async fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Everything received so far (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }

    /// The socket, e.g. to split it into a writer and a reader.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

/// Sends `request` on a new connection to `addr` and reads until the server ends it
/// (or [`RAW_WAIT`] runs out): everything received and how it ended.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> (String, Ending) {
    let mut conn = RawConn::connect(addr).await;
    conn.send(request).await;
    conn.read_to_end(RAW_WAIT).await
}

/// Asserts `answer`, a raw response, is sluice's own `status` answer naming `cause` in
/// its `sluice-error` header.
pub fn assert_sluice_answer(answer: &str, status: u16, cause: &str) {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status} ")),
        "{answer:?}"
    );
    assert!(
        answer.contains(&format!("sluice-error: {cause}\r\n")),
        "{answer}"
    );
}
