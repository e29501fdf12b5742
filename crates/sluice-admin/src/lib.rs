//! The admin plane: `/metrics` (Prometheus/OpenMetrics text), `/healthz` (the process
//! is up) and `/readyz` (it accepts traffic; 503 while draining), and, when the binary
//! hands it a [`Control`], `POST /reload`, `GET /config` and `GET /pools` (JSON). It runs
//! on its own listener so the data path's load never hides it.

mod control;
mod reload;
mod response;
mod routes;

pub use control::{Control, ReloadFuture};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use sluice_net::Listener;
use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    pub registry: Arc<Registry>,
    /// False while starting up and while draining on shutdown.
    pub ready: Arc<AtomicBool>,
    /// True while sluice has been shedding clients for `limits.unready_after`:
    /// `/readyz` then answers 503 so the load balancer sends traffic elsewhere.
    /// `/healthz` never looks at it (restarting an overloaded proxy helps no one).
    pub overloaded: Arc<AtomicBool>,
    /// Reload and the config/pool views; `None` answers those endpoints with 404.
    pub control: Option<Arc<dyn Control>>,
}

/// Serves admin requests until the task is dropped.
pub async fn serve(listener: Listener, state: AdminState) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(routes::route(req, &state).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "admin connection error");
            }
        });
    }
}
