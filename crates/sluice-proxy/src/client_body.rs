//! A client's request body, from whichever protocol the client speaks: read by
//! sluice's HTTP/1.1 server side, or a stream of hyper's HTTP/2 server.

use crate::client_h1::wire::WireBody;
use crate::error::ClientBodyError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

#[derive(Debug)]
pub enum ClientBody {
    Empty,
    H1(WireBody),
    /// Carries the client's trailers too (gRPC sends none, but HTTP/2 allows them).
    /// Boxed: inline, hyper's body would grow every request the proxy moves from
    /// 8 bytes of body to about 60, HTTP/1.1 ones too (callgrind counted the copies).
    H2(Box<Incoming>),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::H1(b) => Pin::new(b).poll_frame(cx),
            Self::H2(b) => Pin::new(b.as_mut())
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(|e| ClientBodyError::from_incoming(&e)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::H1(b) => b.is_end_stream(),
            Self::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::H1(b) => b.size_hint(),
            Self::H2(b) => b.size_hint(),
        }
    }
}
