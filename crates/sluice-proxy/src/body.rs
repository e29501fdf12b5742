//! Body types on both sides of the proxy. Bodies stream: a frame is forwarded as soon
//! as it arrives and never accumulated.

use crate::access::Completion;
use crate::upstream::Upstream;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The request body sent upstream: nothing, or the client's body streamed through.
#[derive(Debug)]
pub enum ReqBody {
    Empty,
    Stream(Incoming),
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Stream(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Stream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Stream(b) => b.size_hint(),
        }
    }
}

/// The response body sent to the client.
pub struct RespBody {
    kind: Kind,
    bytes: u64,
    /// Runs once the body is finished (access log, request metrics).
    done: Option<Completion>,
}

enum Kind {
    Full(Option<Bytes>),
    /// The origin's body; `conn` goes back to the pool once the body has ended.
    Upstream {
        inner: Incoming,
        conn: Option<Upstream>,
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

    /// Streams `inner`; returns `conn` to its pool when `inner` ends cleanly.
    pub fn upstream(inner: Incoming, conn: Option<Upstream>) -> Self {
        Self {
            kind: Kind::Upstream { inner, conn },
            bytes: 0,
            done: None,
        }
    }

    /// Sets what runs once the body is finished (access log, duration metrics).
    pub fn on_complete(&mut self, done: Completion) {
        self.done = Some(done);
    }

    fn finish(&mut self, complete: bool) {
        if let Kind::Upstream { conn, .. } = &mut self.kind {
            if let Some(c) = conn.take() {
                if complete {
                    c.release();
                }
            }
        }
        if let Some(done) = self.done.take() {
            done.complete(self.bytes, complete);
        }
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream { inner, .. } => Pin::new(inner).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

impl Drop for RespBody {
    /// hyper drops a body without polling it when it is already at its end (HEAD, 204,
    /// 304, `Content-Length: 0`): that still counts as complete.
    fn drop(&mut self) {
        let complete = self.is_end_stream();
        self.finish(complete);
    }
}
