//! Load shedding at `limits.max_client_connections` (`when_full: shed`): a client
//! over the limit is accepted only to be told so, with a fast `503` and
//! `sluice-error: overloaded`, then closed. That costs an accept and a few bytes,
//! and the client learns at once; left in the listen backlog it would wait, and past
//! the backlog the kernel drops it without a word (the outage of seed 002).

use crate::cause::Cause;
use sluice_net::ClientStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The whole exchange with a shed client is bounded by this.
const SHED_TIMEOUT: Duration = Duration::from_secs(2);
/// Read at most this much of the request head before answering.
const MAX_HEAD: usize = 16 * 1024;
/// Shed clients being answered at once, at most; beyond, a client is closed at once
/// (a flood must not turn each shed client into a file descriptor held for 2 s).
const MAX_ANSWERING: usize = 1024;

static ANSWERING: AtomicUsize = AtomicUsize::new(0);

const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Retry-After: 1\r\n\
Connection: close\r\n\
Content-Length: 62\r\n";

const BODY: &[u8] = b"overloaded: sluice is at limits.max_client_connections; retry\n";

/// Answers and closes one client accepted over the limit.
pub async fn answer(stream: ClientStream) {
    if ANSWERING.fetch_add(1, Ordering::Relaxed) >= MAX_ANSWERING {
        ANSWERING.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let _ = tokio::time::timeout(SHED_TIMEOUT, async {
        match stream {
            ClientStream::Tcp(mut s) => exchange(&mut s).await,
            ClientStream::Unix(mut s) => exchange(&mut s).await,
            // No handshake under overload: the close is the answer.
            ClientStream::Tls(_) => {}
        }
    })
    .await;
    ANSWERING.fetch_sub(1, Ordering::Relaxed);
}

/// Reads the request head first, so that closing does not reset the answer away
/// with unread bytes, then answers, ends the write side and waits for the client
/// to close.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let mut answer = ANSWER.to_vec();
    answer.extend_from_slice(
        format!("sluice-error: {}\r\n\r\n", Cause::Overloaded.as_str()).as_bytes(),
    );
    answer.extend_from_slice(BODY);
    if s.write_all(&answer).await.is_err() || s.shutdown().await.is_err() {
        return;
    }
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_content_length_is_the_body_length() {
        assert!(String::from_utf8_lossy(super::ANSWER)
            .contains(&format!("Content-Length: {}\r\n", super::BODY.len())));
    }
}
