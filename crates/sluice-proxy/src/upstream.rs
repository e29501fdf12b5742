//! Getting an upstream HTTP/1.1 connection: from the pool when one is idle, otherwise
//! a new one (connect, TLS, hyper handshake).

use crate::backend::{Backend, Server};
use crate::body::ReqBody;
use crate::error::ProxyError;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use sluice_net::Connector;
use sluice_pool::{Connection, Pool, Pooled};
use std::future::poll_fn;

/// How long a just-returned connection may take to become ready for its next request.
const READY_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// A pooled HTTP/1.1 client connection (hyper's send half; its I/O runs in a task).
pub struct H1 {
    pub tx: http1::SendRequest<ReqBody>,
}

impl Connection for H1 {
    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A connection in use, which knows its way back to the pool.
pub struct Upstream {
    pub pooled: Pooled<H1>,
    pool: Pool<H1>,
}

impl Upstream {
    /// Back to the pool after a complete exchange (the pool closes it if it is dead
    /// or worn out).
    pub fn release(self) {
        self.pool.checkin(self.pooled);
    }
}

/// Checks out an idle connection to `server`, or opens one. `fresh` skips the pool.
/// Returns the connection and whether it was reused.
pub async fn acquire(
    pool: &Pool<H1>,
    connector: &Connector,
    backend: &Backend,
    server: &Server,
    fresh: bool,
) -> Result<(Upstream, bool), ProxyError> {
    if !fresh {
        while let Some(mut pooled) = pool.checkout(&server.key) {
            // One returned right after its previous response ended may not be ready
            // yet: its I/O task is about to mark it ready (or closed). Wait for that,
            // briefly: one that takes longer is broken, and a new connection beats a stall.
            let ready = pooled.conn.tx.is_ready()
                || matches!(
                    tokio::time::timeout(READY_WAIT, poll_fn(|cx| pooled.conn.tx.poll_ready(cx)))
                        .await,
                    Ok(Ok(()))
                );
            if ready {
                pooled.set_idle_gauge(&backend.metrics.idle);
                return Ok((
                    Upstream {
                        pooled,
                        pool: pool.clone(),
                    },
                    true,
                ));
            }
        }
    }
    let (stream, timings) = connector.connect(&server.target, backend.connect_timeout).await.map_err(|e| {
        tracing::debug!(backend = %backend.name.as_str(), server = %server.label.as_str(), error = %e, "upstream connect failed");
        ProxyError::connect(&e)
    })?;
    backend
        .metrics
        .connect
        .observe(timings.connect.as_secs_f64());
    if let Some(tls) = timings.tls_handshake {
        backend.metrics.tls.observe(tls.as_secs_f64());
    }
    let (tx, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::upstream(&e))?;
    let label = server.label.clone();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(server = %label.as_str(), error = %crate::error::error_chain(&e), "upstream connection ended with an error");
        }
    });
    backend.metrics.opened.inc();
    let pooled = Pooled::new(
        H1 { tx },
        server.key.clone(),
        backend.policy,
        backend.metrics.idle.clone(),
    );
    Ok((
        Upstream {
            pooled,
            pool: pool.clone(),
        },
        false,
    ))
}
