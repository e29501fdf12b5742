//! The request body sent upstream: nothing, or the client's body streamed through.

use super::idle::IdleTimer;
use crate::error::ClientBodyError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Its errors are the client's ([`ClientBodyError`]), so a failed exchange can tell a
/// broken or stalled client body from a failing server.
#[derive(Debug)]
pub enum ReqBody {
    Empty,
    Stream { inner: Incoming, idle: IdleTimer },
}

impl ReqBody {
    /// The client's body; fails if no data arrives for `idle` while the upstream waits.
    pub fn from_client(inner: Incoming, idle: Duration) -> Self {
        Self::Stream {
            inner,
            idle: IdleTimer::new(idle),
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let Self::Stream { inner, idle } = self.get_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                idle.progress();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ClientBodyError::from_incoming(&e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match idle.poll_expired(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(ClientBodyError::Idle(idle.limit())))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Stream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Stream { inner, .. } => inner.size_hint(),
        }
    }
}
