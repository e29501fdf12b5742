//! A client connection that became a tunnel: after the `101` (or the `200` to a
//! `CONNECT`) its socket, with what the client sent after its request, is joined to
//! the origin's connection (see [`crate::tunnel`]).

use crate::tunnel::{self, Pending};
use bytes::BytesMut;
use sluice_net::ClientStream;

/// Runs the tunnel `p` on the client's `stream`; `read`: bytes already read from it.
pub async fn serve(p: Pending, stream: ClientStream, read: BytesMut) {
    // Copied out: the read buffer is a whole 8 KiB one, not kept for the tunnel's life.
    let first = read.to_vec();
    drop(read);
    tunnel::run(p, stream, first).await;
}
