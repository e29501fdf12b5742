//! Taking a slot on a server of a backend before using a connection: sluice-pool's
//! limiter and FIFO queue (see `sluice_pool::Limiter`), with its refusals turned into
//! sluice's answers.

use crate::backend::{Backend, Server};
use crate::cause::Cause;
use crate::error::ProxyError;
use sluice_pool::{Group, Limiter, Member, Refusal};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// Permission to send one request to a server; dropping it frees the slot.
pub type Slot = sluice_pool::Slot<Backend>;

impl Member for Server {
    fn inflight(&self) -> &AtomicUsize {
        &self.inflight
    }

    fn available(&self) -> bool {
        Server::available(self)
    }

    fn inflight_changed(&self, delta: i64) {
        self.metrics.inflight.inc_by(delta);
    }
}

impl Group for Backend {
    type Member = Server;

    fn limiter(&self) -> &Limiter<Self> {
        &self.limiter
    }

    fn members(&self) -> Arc<[Arc<Server>]> {
        self.servers()
    }

    fn pick(
        &self,
        members: &[Arc<Server>],
        usable: &dyn Fn(&Server) -> bool,
        hash: Option<u64>,
    ) -> Option<Arc<Server>> {
        Backend::pick(self, members, usable, hash)
    }
}

fn no_server(backend: &Backend, servers: &[Arc<Server>]) -> ProxyError {
    if let Some(denied) = backend.egress.get().and_then(|e| e.denial()) {
        return ProxyError::new(Cause::DeniedByPolicy, denied);
    }
    if servers.is_empty() {
        if let Some(e) = backend.dns_error.lock().clone() {
            return ProxyError::new(Cause::DnsFailed, e);
        }
        return ProxyError::new(
            Cause::NoServer,
            format!(
                "backend {} has no server address yet",
                backend.name.as_str()
            ),
        );
    }
    ProxyError::new(
        Cause::NoHealthyServer,
        format!(
            "all {} servers of backend {} are down or ejected",
            servers.len(),
            backend.name.as_str()
        ),
    )
}

/// Gets a slot on a server of `backend`, waiting in its queue when all are busy.
/// `avoid` is a server a previous attempt failed on (used only if nothing else is).
pub async fn acquire(
    backend: &Arc<Backend>,
    hash: Option<u64>,
    avoid: Option<&Arc<Server>>,
) -> Result<Slot, ProxyError> {
    Limiter::acquire(backend, hash, avoid)
        .await
        .map_err(|r| match r {
            Refusal::NoneAvailable => no_server(backend, &backend.servers()),
            Refusal::QueueFull(n) => ProxyError::new(
                Cause::QueueFull,
                format!(
                    "{n} requests already wait for backend {}",
                    backend.name.as_str()
                ),
            ),
            Refusal::WouldTimeout { predicted, timeout } => ProxyError::new(
                Cause::QueueTimeout,
                format!(
                    "backend {} is saturated: a new request would wait about {predicted:?} \
                     for a slot, past the queue timeout of {timeout:?}; answered at once",
                    backend.name.as_str()
                ),
            ),
            Refusal::QueueTimeout(after) => ProxyError::new(
                Cause::QueueTimeout,
                format!(
                    "no free connection slot on backend {} within {after:?}",
                    backend.name.as_str()
                ),
            ),
        })
}

/// Serves waiters after capacity appeared without a slot being freed (a server came
/// back, or DNS added one).
pub fn kick(backend: &Arc<Backend>) {
    Limiter::kick(backend);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use prometheus_client::registry::Registry;

    fn backend(limits: &str) -> Arc<Backend> {
        let yaml = format!(
            "listeners: [{{name: e, bind: '127.0.0.1:0'}}]\nbackends: [{{name: a, servers: ['10.0.0.1:1', '10.0.0.2:1'], limits: {limits}, timeouts: {{queue: 50ms}}}}]"
        );
        let config = sluice_config::parse("t", &yaml).unwrap();
        let rt = crate::compile(
            &config,
            &crate::Registry::new(Metrics::register(&mut Registry::default())),
            None,
            "t",
        )
        .unwrap();
        rt.backends[0].clone()
    }

    #[tokio::test]
    async fn backend_maxconn_caps_the_sum_over_servers_and_hands_slots_over_in_order() {
        let b = backend("{maxconn: 2}");
        let s1 = acquire(&b, None, None).await.unwrap();
        let s2 = acquire(&b, None, None).await.unwrap();
        assert!(
            !Arc::ptr_eq(s1.member(), s2.member()),
            "least_request spreads the two"
        );
        let e = acquire(&b, None, None).await.err().unwrap();
        assert_eq!(e.cause, Cause::QueueTimeout);
        // A waiter gets the slot freed by s1, ahead of anyone arriving later.
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { acquire(&b, None, None).await }
        });
        while b.limiter.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let freed = s1.member().clone();
        drop(s1);
        let got = waiter.await.unwrap().unwrap();
        assert!(Arc::ptr_eq(got.member(), &freed));
        assert_eq!(b.limiter.waiting(), 0);
        drop((s2, got));

        assert!(b.servers().iter().all(|s| s.inflight() == 0));
    }

    #[tokio::test]
    async fn per_server_limit_and_queue_full() {
        let b = backend("{maxconn_per_server: 1, max_queue: 1}");
        let _a = acquire(&b, None, None).await.unwrap();
        let _b = acquire(&b, None, None).await.unwrap();
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { acquire(&b, None, None).await.err().map(|e| e.cause) }
        });
        while b.limiter.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let e = acquire(&b, None, None).await.err().unwrap();
        assert_eq!(e.cause, Cause::QueueFull);
        assert_eq!(waiter.await.unwrap(), Some(Cause::QueueTimeout));
    }
}
