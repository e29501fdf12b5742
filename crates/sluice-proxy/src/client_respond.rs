//! Writing the proxy's answer to an HTTP/1.1 client: the head, then the body as it
//! comes (from the origin, or sluice's own), within the backpressure of the socket.

use crate::client_h1::wire::Shared;
use crate::client_h1::write::{encode_head, frame, Asked, Framing, Sink, HIGH_WATER};
use crate::h1_wire::LAST_CHUNK;
use crate::resp_body::RespBody;
use bytes::Bytes;
use http::Response;
use http_body::Body;
use std::pin::Pin;
use std::task::Poll;

/// How writing a response ended.
pub enum Written {
    /// All of it went out; `keep_alive`: the connection may take another request.
    Done { keep_alive: bool },
    /// The body failed (the connection was marked for a reset) or the client's socket
    /// did: the connection ends now.
    Failed,
}

/// Writes `resp` to the client of `wire`. `stopping`: sluice is shutting down, so this
/// is the connection's last response. `half_close`: the client's FIN does not end the
/// response (it may still read).
pub async fn write(
    wire: &Shared,
    resp: Response<RespBody>,
    mut asked: Asked,
    stopping: bool,
    half_close: bool,
) -> Written {
    let (mut parts, mut body) = resp.into_parts();
    // A refused CONNECT: what the client sent after it may be meant for a tunnel.
    if stopping || (asked.connect && !parts.status.is_success()) {
        asked.keep_alive = false;
    }
    // A body nothing reads any more (the answer did not need it) would be taken for
    // the next request: this is the connection's last answer. (One still being read
    // beside the response may yet end in time.)
    if std::sync::Arc::strong_count(wire) == 1 && !wire.lock().body.is_end() {
        asked.keep_alive = false;
    }
    let (framing, keep_alive) = frame(
        &mut parts,
        asked,
        body.is_end_stream(),
        body.size_hint().exact(),
    );
    let mut sink = Sink::default();
    sink.push(encode_head(&parts));
    drop(parts);
    // A `100 Continue` after the final answer would be taken for a response.
    wire.lock().forget_continue();
    let chunked = framing == Framing::Chunked;
    let mut body_done = framing == Framing::None;
    let ok = std::future::poll_fn(|cx| loop {
        while !body_done && sink.queued() < HIGH_WATER {
            match Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers have no place in HTTP/1.1 to a client that did not ask
                    // for them: dropped.
                    if let Ok(data) = frame.into_data() {
                        if chunked {
                            sink.push_chunk(data);
                        } else {
                            sink.push(data);
                        }
                    }
                }
                // The body marked the connection for a reset (see `RespBody::fail`).
                Poll::Ready(Some(Err(_))) => return Poll::Ready(false),
                Poll::Ready(None) => {
                    body_done = true;
                    if chunked {
                        sink.push(Bytes::from_static(LAST_CHUNK));
                    }
                }
                Poll::Pending => break,
            }
        }
        if sink.queued() > 0 {
            let mut w = wire.lock();
            match sink.poll_write_all(&mut w.io, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "writing the response to the client failed");
                    return Poll::Ready(false);
                }
                Poll::Pending => return Poll::Pending,
            }
            if !body_done {
                continue;
            }
        }
        if body_done {
            return Poll::Ready(true);
        }
        // Waiting on the body: a client that left is not waited for.
        if wire.lock().poll_client_gone(cx, half_close) {
            tracing::debug!("the client left during its response");
            return Poll::Ready(false);
        }
        return Poll::Pending;
    })
    .await;
    // Now, not at the next request: the upstream connection goes back to its pool and
    // the request is logged.
    drop(body);
    if ok {
        Written::Done { keep_alive }
    } else {
        Written::Failed
    }
}
