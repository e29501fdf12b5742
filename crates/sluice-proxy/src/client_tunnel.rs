//! A client connection that became a tunnel: the socket comes back from hyper after
//! it wrote the `101`, with what the client sent after its request, and is joined
//! to the origin's connection (see [`crate::tunnel`]).

use crate::client_io::ClientIo;
use crate::tunnel::{self, Pending};
use hyper_util::rt::TokioIo;

/// Runs the tunnel `p` once hyper hands the connection over.
pub async fn serve(mut p: Pending) {
    let upgraded = match (&mut p.on_upgrade).await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(route = %p.labels.route.as_str(), error = %e, "client connection ended before its upgrade");
            return;
        }
    };
    let parts = match upgraded.downcast::<TokioIo<ClientIo>>() {
        Ok(parts) => parts,
        Err(_) => {
            tracing::warn!(route = %p.labels.route.as_str(), "upgraded connection of an unexpected type; closed");
            return;
        }
    };
    let hyper::upgrade::Parts { io, read_buf, .. } = parts;
    let Some((stream, unread)) = io.into_inner().into_tunnel() else {
        return;
    };
    // hyper read `read_buf` before the bytes still pushed back on its socket.
    let mut first = Vec::with_capacity(read_buf.len() + unread.len());
    first.extend_from_slice(&read_buf);
    first.extend_from_slice(&unread);
    // Both share hyper's whole 8 KiB read buffer: not kept for the tunnel's life.
    drop((read_buf, unread));
    tunnel::run(p, stream, first).await;
}
