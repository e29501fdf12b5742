//! The response body sent to the client: sluice's own answer, or the origin's body
//! streamed through. An origin body that fails or stalls after the head went out
//! cannot become an error status any more: the client connection is then reset, so no
//! client takes a truncated body for a complete one, and the failure is recorded
//! against the server.

use crate::access::Completion;
use crate::cause::Cause;
use crate::error::{error_chain, ProxyError, ERROR_HEADER};
use crate::h1_conn::BodyState;
use crate::idle::IdleTimer;
use crate::passive;
use crate::req_body::Upload;
use crate::upstream::h1::H1Body;
use crate::upstream::Upstream;
use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The origin's body: read from the pooled HTTP/1.1 connection by its framing, or
/// hyper's HTTP/2 stream.
pub enum UpBody {
    H1(H1Body),
    H2(Incoming),
}

/// Why a response body ended early; the client connection is then aborted.
#[derive(Debug, thiserror::Error)]
#[error("response cut short: {0}")]
pub struct ResponseCut(&'static str);

pub struct RespBody {
    kind: Kind,
    bytes: u64,
    /// Runs once the body is finished (access log, request metrics).
    done: Option<Completion>,
}

// Boxing the big variant would cost an allocation on every proxied response; the small
// one is only sluice's own answers.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Full(Option<Bytes>),
    /// The origin's body; `conn` goes back to the pool once the body has ended.
    Upstream {
        inner: UpBody,
        conn: Option<Upstream>,
        idle: IdleTimer,
        /// The client's upload, if the request had a body: a failure of it, not the
        /// origin, may be what cut the response short.
        upload: Option<Arc<Upload>>,
    },
}

impl RespBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(Some(b.into())),
            bytes: 0,
            done: None,
        }
    }

    pub fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
            bytes: 0,
            done: None,
        }
    }

    /// Streams the origin's `inner`; returns `conn` to its pool when `inner` ends
    /// cleanly. `idle`: the longest wait for the origin's next bytes.
    pub fn upstream(
        inner: UpBody,
        conn: Upstream,
        idle: Duration,
        upload: Option<Arc<Upload>>,
    ) -> Self {
        Self {
            kind: Kind::Upstream {
                inner,
                conn: Some(conn),
                idle: IdleTimer::new(idle),
                upload,
            },
            bytes: 0,
            done: None,
        }
    }

    /// sluice's own answer for `e`: its status, `sluice-error: <cause>`, a text body.
    /// (`client_closed` is logged as 499, but a client that only half-closed mid-body
    /// may still read: it gets a 400.)
    pub fn error_response(e: &ProxyError) -> Response<Self> {
        let mut resp = Response::new(Self::full(e.body_text()));
        *resp.status_mut() = match e.cause {
            Cause::ClientClosed => http::StatusCode::BAD_REQUEST,
            c => c.status(),
        };
        let h = resp.headers_mut();
        h.insert(ERROR_HEADER, HeaderValue::from_static(e.cause.as_str()));
        if e.cause == Cause::ProxyAuthRequired {
            h.insert(
                http::header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sluice\""),
            );
        }
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }

    /// Sets what runs once the body is finished (access log, duration metrics).
    pub fn on_complete(&mut self, done: Completion) {
        self.done = Some(done);
    }

    fn finish(&mut self, complete: bool) {
        if let Kind::Upstream { conn, inner, .. } = &mut self.kind {
            if let (Some(c), UpBody::H1(b)) = (conn.as_mut(), inner) {
                // A body at its end is dropped unpolled (HEAD, 204, 304, a length of 0)
                // while the upload is still going.
                if let Some(h1) = c.h1_mut() {
                    b.end(h1);
                }
            }
            if let Some(c) = conn.take() {
                if complete {
                    let (backend, server) = (c.slot.group(), c.slot.member());
                    if c.succeeded && backend.settings.passive.is_some() {
                        passive::record(&backend.catalog.metrics, backend, server, true, || {});
                    }
                    c.release();
                }
            }
        }
        if let Some(done) = self.done.take() {
            done.complete(self.bytes, complete);
        }
    }

    /// The origin's body failed: count it against the server (unless the client's own
    /// upload failed first, which cuts the exchange too), abandon the upstream
    /// connection, and have the client connection reset.
    fn fail(&mut self, mut cause: Cause, detail: &str) -> ResponseCut {
        if let Kind::Upstream { conn, upload, .. } = &mut self.kind {
            if let Some(f) = upload.as_deref().and_then(Upload::failure) {
                cause = f.cause();
                conn.take();
            }
            if let Some(up) = conn.take() {
                let (backend, server) = (&up.slot.group(), &up.slot.member());
                tracing::warn!(backend = %backend.name.as_str(), server = %server.label.as_str(), cause = cause.as_str(), detail, bytes_sent = self.bytes, "upstream response body failed; resetting the client connection");
                passive::record(&backend.catalog.metrics, backend, server, false, || {
                    up.pools().forget(server)
                });
            }
        }
        if let Some(done) = &mut self.done {
            done.cause = Some(cause);
            done.conn.abort();
        }
        self.finish(false);
        ResponseCut(cause.as_str())
    }
}

/// What the origin's body did on one poll.
enum Step {
    Frame(Frame<Bytes>),
    End,
    Failed(Cause, String),
    Pending,
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = ResponseCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ResponseCut>>> {
        let this = self.get_mut();
        let step = match &mut this.kind {
            Kind::Full(b) => match b.take() {
                Some(b) => Step::Frame(Frame::data(b)),
                None => Step::End,
            },
            Kind::Upstream {
                inner, idle, conn, ..
            } => {
                let polled = match inner {
                    UpBody::H2(body) => match Pin::new(body).poll_frame(cx) {
                        Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(error_chain(&e)))),
                        Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                        Poll::Ready(None) => Poll::Ready(None),
                        Poll::Pending => Poll::Pending,
                    },
                    // Polled again after its end (the connection has gone back).
                    UpBody::H1(b) if b.state == BodyState::Done => Poll::Ready(None),
                    UpBody::H1(b) => match conn.as_mut().and_then(Upstream::h1_mut) {
                        Some(h1) => b.poll_frame(h1, cx).map(|o| o.map(|r| r.map(Frame::data))),
                        None => Poll::Ready(Some(Err("the upstream connection is gone".into()))),
                    },
                };
                match polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        idle.progress();
                        Step::Frame(frame)
                    }
                    Poll::Ready(None) => Step::End,
                    Poll::Ready(Some(Err(detail))) => {
                        Step::Failed(Cause::UpstreamBodyError, detail)
                    }
                    Poll::Pending => match idle.poll_expired(cx) {
                        Poll::Ready(()) => Step::Failed(
                            Cause::ResponseBodyTimeout,
                            format!(
                                "no response body data from the origin for {:?}",
                                idle.limit()
                            ),
                        ),
                        Poll::Pending => Step::Pending,
                    },
                }
            }
        };
        match step {
            Step::Frame(frame) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Step::End => {
                this.finish(true);
                Poll::Ready(None)
            }
            Step::Failed(cause, detail) => Poll::Ready(Some(Err(this.fail(cause, &detail)))),
            Step::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Upstream { inner, .. } => match inner {
                UpBody::H1(b) => b.state.is_end(),
                UpBody::H2(body) => body.is_end_stream(),
            },
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream { inner, .. } => match inner {
                UpBody::H1(b) => b.state.size_hint(),
                UpBody::H2(body) => body.size_hint(),
            },
        }
    }
}

impl Drop for RespBody {
    /// A body already at its end is dropped without being polled (HEAD, 204,
    /// 304, `Content-Length: 0`): that still counts as complete. Dropped before its end,
    /// the client went away: the upstream exchange is abandoned.
    fn drop(&mut self) {
        let complete = self.is_end_stream();
        self.finish(complete);
    }
}
