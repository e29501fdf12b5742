//! Active health checks: one task per server sends `GET <path>` on a new connection
//! (the backend's TLS, SNI and protocol) every `interval`. `fall` failures in a row
//! take the server down (its idle connections are closed); `rise` passes bring it back.
//! Servers start up, and the first check runs at once.

use crate::backend::{Backend, Server};
use crate::limit;
use crate::metrics::{CheckLabels, Metrics};
use crate::req_body::ReqBody;
use crate::upstream::Pools;
use http::{header, Request};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_config::{HealthCheck, Protocol};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Starts the check loop of `server` (if the backend has checks). It ends when the
/// server leaves the backend.
pub fn spawn(backend: &Arc<Backend>, server: &Arc<Server>, pools: &Pools, metrics: &Metrics) {
    let Some(hc) = backend.settings.check.clone() else {
        return;
    };
    let owner = backend.clone();
    let (backend, server, pools, metrics) = (
        backend.clone(),
        server.clone(),
        pools.clone(),
        metrics.clone(),
    );
    let task = tokio::spawn(async move {
        let labels = |result| CheckLabels {
            backend: backend.name.clone(),
            server: server.label.clone(),
            result,
        };
        // One statement each: `get_or_create` returns a read guard that lives to the
        // end of the statement, and a second insert into the same family would wait
        // for it forever.
        let pass = metrics.health_checks.get_or_create(&labels("pass")).clone();
        let fail = metrics.health_checks.get_or_create(&labels("fail")).clone();
        let mut tick = tokio::time::interval(hc.interval.get());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut passes, mut failures) = (0u32, 0u32);
        loop {
            tick.tick().await;
            if server.removed.load(Ordering::Relaxed) {
                return;
            }
            let result = check(&backend, &server, &hc).await;
            let down = server.health.active_down.load(Ordering::Relaxed);
            match result {
                Ok(()) => {
                    pass.inc();
                    failures = 0;
                    passes = passes.saturating_add(1);
                    if down && passes >= hc.rise {
                        server.health.active_down.store(false, Ordering::Relaxed);
                        tracing::info!(backend = %backend.name.as_str(), server = %server.label.as_str(), "health check passed; server is up");
                        server.refresh_health_gauge();
                        limit::kick(&backend);
                    }
                }
                Err(why) => {
                    fail.inc();
                    passes = 0;
                    failures = failures.saturating_add(1);
                    if !down && failures >= hc.fall {
                        server.health.active_down.store(true, Ordering::Relaxed);
                        tracing::warn!(backend = %backend.name.as_str(), server = %server.label.as_str(), reason = %why, "health check failed; server is down");
                        server.refresh_health_gauge();
                        pools.forget(&server);
                    } else {
                        tracing::debug!(backend = %backend.name.as_str(), server = %server.label.as_str(), reason = %why, "health check failed");
                    }
                }
            }
        }
    });
    owner.track(task.abort_handle());
}

/// One check: connect, request, expect 2xx or 3xx, all within `timeout`.
async fn check(backend: &Backend, server: &Server, hc: &HealthCheck) -> Result<(), String> {
    let attempt = async {
        let (stream, _) = backend
            .connector
            .connect(&server.target, hc.timeout.get())
            .await
            .map_err(|e| e.to_string())?;
        let h2 = stream.alpn() == Some(b"h2")
            || (!backend.settings.tls && backend.settings.protocol == Protocol::Http2);
        let req = Request::get(hc.path.as_str())
            .header(header::HOST, server.host.as_str())
            .header(header::USER_AGENT, "sluice-health-check")
            .body(ReqBody::Empty)
            .map_err(|e| e.to_string())?;
        let status = if h2 {
            let (mut tx, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            tx.send_request(req)
                .await
                .map_err(|e| e.to_string())?
                .status()
        } else {
            let (mut tx, conn) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            tx.send_request(req)
                .await
                .map_err(|e| e.to_string())?
                .status()
        };
        if status.is_success() || status.is_redirection() {
            Ok(())
        } else {
            Err(format!("{} answered {status}", hc.path))
        }
    };
    match tokio::time::timeout(hc.timeout.get(), attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}", hc.timeout)),
    }
}
