//! The request body sent upstream: nothing, or the client's body streamed through.

use crate::client_body::ClientBody;
use crate::clock::{instant, now_ms};
use crate::error::ClientBodyError;
use crate::idle::IdleTimer;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// Its errors are the client's ([`ClientBodyError`]), so a failed exchange can tell a
/// broken or stalled client body from a failing server.
#[derive(Debug)]
pub enum ReqBody {
    Empty,
    Stream {
        inner: ClientBody,
        idle: IdleTimer,
        upload: Arc<Upload>,
        /// `routes[].max_request_body`, and the bytes passed on so far.
        limit: Option<u64>,
        sent: u64,
    },
}

/// What the client's upload did, shared with the exchange that sends it.
///
/// - Its failure: hyper's HTTP/2 client swallows a request body's error (it resets the
///   stream and reports only that), so the exchange reads the client's fault here.
/// - Whether it waits on the client, and when it last moved: the response timeout
///   counts from the last byte sent upstream, so a client's slow upload is never taken
///   for a slow server (its pauses are bounded by the client's own idle timeout),
///   while an origin that stops taking the upload still times out.
#[derive(Debug)]
pub struct Upload {
    failure: OnceLock<ClientBodyError>,
    waiting_on_client: AtomicBool,
    last_progress_ms: AtomicU64,
}

impl Upload {
    pub fn failure(&self) -> Option<&ClientBodyError> {
        self.failure.get()
    }

    pub fn waiting_on_client(&self) -> bool {
        self.waiting_on_client.load(Relaxed)
    }

    /// When the upload last moved (or began).
    pub fn last_progress(&self) -> Instant {
        instant(self.last_progress_ms.load(Relaxed))
    }
}

impl ReqBody {
    /// The client's body; fails if no data arrives for `idle` while the upstream waits,
    /// or once more than `limit` bytes have come.
    pub fn from_client(
        inner: ClientBody,
        idle: Duration,
        limit: Option<u64>,
    ) -> (Self, Arc<Upload>) {
        let upload = Arc::new(Upload {
            failure: OnceLock::new(),
            waiting_on_client: AtomicBool::new(false),
            last_progress_ms: AtomicU64::new(now_ms()),
        });
        let body = Self::Stream {
            inner,
            idle: IdleTimer::new(idle),
            upload: upload.clone(),
            limit,
            sent: 0,
        };
        (body, upload)
    }
}

impl ReqBody {
    /// The upload will not be read again (the origin stopped taking it): from now on
    /// the exchange waits on the origin alone, so the response timeout runs.
    pub fn stop(&self) {
        if let Self::Stream { upload, .. } = self {
            upload.waiting_on_client.store(false, Relaxed);
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
        let Self::Stream {
            inner,
            idle,
            upload,
            limit,
            sent,
        } = self.get_mut()
        else {
            return Poll::Ready(None);
        };
        let polled = match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                idle.progress();
                upload.last_progress_ms.store(now_ms(), Relaxed);
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                *sent = sent.saturating_add(len);
                match *limit {
                    // The bytes over the limit are not passed on: the upstream request
                    // fails with this error instead of ending as if complete.
                    Some(max) if *sent > max => {
                        Poll::Ready(Some(Err(ClientBodyError::TooLarge(max))))
                    }
                    _ => Poll::Ready(Some(Ok(frame))),
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {
                upload.last_progress_ms.store(now_ms(), Relaxed);
                Poll::Ready(None)
            }
            Poll::Pending => match idle.poll_expired(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(ClientBodyError::Idle(idle.limit())))),
                Poll::Pending => Poll::Pending,
            },
        };
        upload.waiting_on_client.store(polled.is_pending(), Relaxed);
        if let Poll::Ready(Some(Err(e))) = &polled {
            let _ = upload.failure.set(e.clone());
        }
        polled
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
