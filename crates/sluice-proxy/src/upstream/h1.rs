//! One request/response exchange on a pooled HTTP/1.1 connection, driven in the
//! request's own task: the head (and a first piece of body) in one write, the rest of
//! the body streamed with backpressure, and the response head read meanwhile, so an
//! origin that answers before taking the whole upload is heard.

use crate::cause::{Cause, Party};
use crate::error::{ClientBodyError, ProxyError, Retry};
use crate::h1_conn::{BodyState, H1};
use crate::h1_wire::{self, ReqFraming};
use crate::req_body::ReqBody;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Body bytes gathered before a write: the head and a small body go out in one TLS
/// record (and one segment), a large body in pieces of this size.
const WRITE_BATCH: usize = 16 * 1024;

/// Why an exchange failed, and the request if none of it was sent.
pub struct Failed {
    pub error: ProxyError,
    /// Boxed: a failure is rare, and the request would make every result large.
    pub unsent: Option<Box<Request<ReqBody>>>,
    /// A bodiless request that was (at least partly) sent, handed back for a replay
    /// the caller may decide on: no copy of the head is made in advance.
    pub replay: Option<Box<Request<ReqBody>>>,
    /// Only this one HTTP/2 stream was reset: the connection goes on.
    pub stream_only: bool,
}

enum Upload {
    Body,
    Done,
}

/// The response body of an exchange, and the rest of the upload when the head came
/// before all of it was sent: an origin may stream its answer while it reads (an
/// echo, a long upload with progress), so the upload goes on beside the response, as
/// it did with hyper's client. The connection is reused only if the upload ended.
pub struct H1Body {
    pub state: BodyState,
    rest: Option<Box<UploadRest>>,
}

struct UploadRest {
    body: ReqBody,
    upload: Upload,
    framing: ReqFraming,
}

impl H1Body {
    /// The next piece of the response body; moves the rest of the upload on first.
    pub fn poll_frame(
        &mut self,
        h1: &mut H1,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<bytes::Bytes, String>>> {
        if let Some(r) = &mut self.rest {
            let mut sent = true;
            match poll_upload(h1, cx, &mut r.body, &mut r.upload, r.framing, &mut sent) {
                Poll::Ready(Ok(())) => self.rest = None,
                // The origin stopped taking it, or the client's body failed: the
                // answer still goes to the client; the connection does not go back.
                Poll::Ready(Err(e)) => {
                    tracing::debug!(cause = e.cause.as_str(), detail = %e.detail, "upload after the response head ended early");
                    h1.retire();
                    self.rest = None;
                }
                Poll::Pending => {}
            }
        }
        let polled = h1.poll_body(cx, &mut self.state);
        if matches!(polled, Poll::Ready(None)) {
            self.end(h1);
        }
        polled
    }

    /// The whole request went out.
    pub fn upload_done(&self) -> bool {
        self.rest.is_none()
    }

    /// The response is over: an upload not finished by now leaves the connection in
    /// an unknown state.
    pub fn end(&mut self, h1: &mut H1) {
        if self.rest.take().is_some() {
            h1.retire();
        }
    }
}

/// Sends `req` on `h1` and reads the response head. The body that follows is read
/// with [`H1Body::poll_frame`]. `upgrade`: the request asks for a protocol switch, so
/// a `101` is its answer (and the connection then leaves HTTP for good).
pub async fn send(
    h1: &mut H1,
    req: Request<ReqBody>,
    upgrade: bool,
) -> Result<Response<H1Body>, Failed> {
    let (parts, mut body) = req.into_parts();
    let framing = if body.is_end_stream() {
        ReqFraming::None
    } else if parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        ReqFraming::Length
    } else {
        ReqFraming::Chunked
    };
    h1.out.clear();
    h1_wire::encode_request_head(
        &mut h1.out,
        &parts.method,
        &parts.uri,
        &parts.headers,
        framing,
    );
    let head_request = parts.method == Method::HEAD;
    let mut upload = match framing {
        ReqFraming::None => Upload::Done,
        _ => Upload::Body,
    };
    let mut sent_any = false;
    // An origin may answer and close before taking the whole upload (a 413, a 401):
    // the write then fails, but its answer may already be here, and it is what the
    // client should get. So a failed write ends the upload, and its error is returned
    // only when reading fails too.
    let mut write_failed: Option<ProxyError> = None;
    let mut heard = false;
    let result = poll_fn(|cx| {
        if write_failed.is_none() {
            match poll_upload(h1, cx, &mut body, &mut upload, framing, &mut sent_any) {
                Poll::Ready(Err(e)) if e.cause.party() == Party::Client => {
                    return Poll::Ready(Err(e))
                }
                Poll::Ready(Err(e)) => {
                    body.stop();
                    write_failed = Some(e);
                }
                _ => {}
            }
        }
        match poll_head(h1, cx, head_request, upgrade, &mut heard) {
            // After a failed write the read side is still waited for: the socket's
            // readiness may not show yet what arrived before the origin's reset, and
            // a reset socket answers promptly (the response timeout bounds it anyway).
            Poll::Ready(Err(e)) => {
                let mut err = write_failed.take().unwrap_or(e);
                if heard {
                    err.retry = Retry::Never;
                }
                Poll::Ready(Err(err))
            }
            other => other,
        }
    })
    .await;
    match result {
        Ok(head) => {
            let rest = match (write_failed, upload) {
                (None, Upload::Done) if h1.out.is_empty() => None,
                (None, upload) => Some(Box::new(UploadRest {
                    body,
                    upload,
                    framing,
                })),
                (Some(_), _) => {
                    h1.retire();
                    None
                }
            };
            let body = H1Body {
                state: BodyState::new(head.framing),
                rest,
            };
            let mut resp = Response::new(body);
            *resp.status_mut() = head.status;
            *resp.version_mut() = head.version;
            *resp.headers_mut() = head.headers;
            Ok(resp)
        }
        Err(error) => {
            h1.retire();
            let mut back =
                (framing == ReqFraming::None).then(|| Box::new(Request::from_parts(parts, body)));
            let replay = if sent_any { back.take() } else { None };
            Err(Failed {
                error,
                unsent: back,
                replay,
                stream_only: false,
            })
        }
    }
}

/// Moves the upload forward as far as it can go without waiting: gathers body frames
/// into `out` (up to a batch), writes them, and repeats. `Ready(Ok)` once all of it is
/// written; `Pending` while the client or the origin holds it up.
fn poll_upload(
    h1: &mut H1,
    cx: &mut Context<'_>,
    body: &mut ReqBody,
    upload: &mut Upload,
    framing: ReqFraming,
    sent_any: &mut bool,
) -> Poll<Result<(), ProxyError>> {
    loop {
        let mut body_pending = false;
        while matches!(upload, Upload::Body) && h1.out.len() < WRITE_BATCH {
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers of a client's chunked body are not forwarded.
                    if let Ok(data) = frame.into_data() {
                        if framing == ReqFraming::Chunked {
                            h1_wire::encode_chunk(&mut h1.out, &data);
                        } else {
                            h1.out.extend_from_slice(&data);
                        }
                    }
                }
                Poll::Ready(None) => {
                    if framing == ReqFraming::Chunked {
                        h1.out.extend_from_slice(h1_wire::LAST_CHUNK);
                    }
                    *upload = Upload::Done;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(client_body(e))),
                Poll::Pending => {
                    body_pending = true;
                    break;
                }
            }
        }
        if h1.out.is_empty() {
            return match upload {
                Upload::Done => Poll::Ready(Ok(())),
                Upload::Body => Poll::Pending,
            };
        }
        match h1.poll_flush_out(cx) {
            Poll::Ready(Ok(())) => *sent_any = true,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(io_error(&e, "writing the request"))),
            Poll::Pending => return Poll::Pending,
        }
        if body_pending {
            return Poll::Pending;
        }
    }
}

/// Reads until a final response head is complete (informational ones are skipped;
/// a `101` is final when the request asked for an upgrade).
fn poll_head(
    h1: &mut H1,
    cx: &mut Context<'_>,
    head_request: bool,
    upgrade: bool,
    heard: &mut bool,
) -> Poll<Result<h1_wire::RespHead, ProxyError>> {
    let failed = |mut e: ProxyError, heard: bool| {
        // Once the origin has started answering (part of a head, a 1xx), it has the
        // request: never replayed.
        if heard {
            e.retry = Retry::Never;
        }
        Poll::Ready(Err(e))
    };
    loop {
        if !h1.buf.is_empty() {
            match h1_wire::parse_response_head(&mut h1.buf, head_request) {
                Ok(Some(head)) if head.status == StatusCode::SWITCHING_PROTOCOLS && upgrade => {
                    h1.retire();
                    return Poll::Ready(Ok(head));
                }
                Ok(Some(head)) if head.status == StatusCode::SWITCHING_PROTOCOLS => {
                    return Poll::Ready(Err(ProxyError::new(
                        Cause::UpstreamProtocolError,
                        "the origin switched protocols, which was not asked for",
                    )));
                }
                Ok(Some(head)) if head.status.is_informational() => continue,
                Ok(Some(head)) => {
                    if !head.keep_alive {
                        h1.retire();
                    }
                    return Poll::Ready(Ok(head));
                }
                Ok(None) => {}
                Err(detail) => {
                    return Poll::Ready(Err(ProxyError::new(Cause::UpstreamProtocolError, detail)))
                }
            }
        }
        match h1.poll_fill(cx) {
            Poll::Ready(Ok(0)) => {
                let mut e = ProxyError::new(
                    Cause::UpstreamClosed,
                    if h1.buf.is_empty() {
                        "the origin closed the connection without a response"
                    } else {
                        "the origin closed the connection in the middle of the response head"
                    },
                );
                e.retry = Retry::Stale;
                return failed(e, *heard);
            }
            Poll::Ready(Ok(_)) => *heard = true,
            Poll::Ready(Err(e)) => return failed(io_error(&e, "reading the response"), *heard),
            Poll::Pending => return Poll::Pending,
        }
    }
}

fn client_body(e: ClientBodyError) -> ProxyError {
    ProxyError::new(e.cause(), e.to_string())
}

/// A socket error: the origin resetting or closing under us is `upstream_closed` (a
/// stale pooled connection, replayable once); anything else `upstream_error`.
fn io_error(e: &std::io::Error, doing: &str) -> ProxyError {
    use std::io::ErrorKind as K;
    let closed = matches!(
        e.kind(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
    );
    let mut err = ProxyError::new(
        if closed {
            Cause::UpstreamClosed
        } else {
            Cause::UpstreamError
        },
        format!("{doing}: {e}"),
    );
    if closed {
        err.retry = Retry::Stale;
    }
    err
}
