//! Concurrency limits and the FIFO queue in front of a backend.
//!
//! A request needs a [`Slot`] on one server before it may use a connection. Without
//! limits a slot is just an in-flight count (used by the balancer). With
//! `maxconn_per_server` or `maxconn`, a request that finds no free slot waits in the
//! backend's queue; a slot freed by a finishing request goes straight to the oldest
//! waiter (no barging), so the origin never sees more than the limit.

use crate::backend::{Backend, Server};
use crate::cause::Cause;
use crate::error::ProxyError;
use parking_lot::Mutex;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

pub struct Limiter {
    per_server: usize,
    total: usize,
    max_queue: usize,
    limited: bool,
    state: Mutex<State>,
    pub queue_depth: Gauge,
    pub queue_time: Histogram,
}

#[derive(Default)]
struct State {
    inflight: usize,
    next_id: u64,
    queue: VecDeque<Waiter>,
}

struct Waiter {
    id: u64,
    hash: Option<u64>,
    tx: oneshot::Sender<Slot>,
}

/// Permission to send one request to `server`. Dropping it frees the slot (and hands
/// it to the oldest waiter, if any).
pub struct Slot {
    pub server: Arc<Server>,
    pub backend: Arc<Backend>,
    armed: bool,
}

impl Limiter {
    pub fn new(
        per_server: usize,
        total: usize,
        max_queue: usize,
        queue_depth: Gauge,
        queue_time: Histogram,
    ) -> Self {
        Self {
            per_server,
            total,
            max_queue,
            limited: per_server > 0 || total > 0,
            state: Mutex::new(State::default()),
            queue_depth,
            queue_time,
        }
    }

    fn has_room(&self, s: &Server) -> bool {
        self.per_server == 0 || s.inflight() < self.per_server
    }
}

fn arm(backend: &Arc<Backend>, server: Arc<Server>) -> Slot {
    server.inflight.fetch_add(1, Ordering::Relaxed);
    server.metrics.inflight.inc();
    Slot {
        server,
        backend: backend.clone(),
        armed: true,
    }
}

fn no_server(backend: &Backend, servers: &[Arc<Server>]) -> ProxyError {
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
    let lim = &backend.limiter;
    let servers = backend.servers();
    let up = |s: &Server| s.available();
    let other = |s: &Server| up(s) && avoid.is_none_or(|a| !std::ptr::eq(a.as_ref(), s));
    if !lim.limited {
        // The common case: one pass, and the error only when nothing was picked.
        let picked = backend
            .pick(&servers, other, hash)
            .or_else(|| avoid.and_then(|_| backend.pick(&servers, up, hash)));
        return picked
            .map(|s| arm(backend, s))
            .ok_or_else(|| no_server(backend, &servers));
    }
    // With limits, "none available" (answer now) differs from "all busy" (queue).
    if !servers.iter().any(|s| up(s)) {
        return Err(no_server(backend, &servers));
    }
    let rx = {
        let mut st = lim.state.lock();
        if st.queue.is_empty() && (lim.total == 0 || st.inflight < lim.total) {
            let free = |s: &Server| lim.has_room(s);
            let picked = backend
                .pick(&servers, |s| other(s) && free(s), hash)
                .or_else(|| backend.pick(&servers, |s| up(s) && free(s), hash));
            if let Some(s) = picked {
                st.inflight += 1;
                return Ok(arm(backend, s));
            }
        }
        if st.queue.len() >= lim.max_queue {
            return Err(ProxyError::new(
                Cause::QueueFull,
                format!(
                    "{} requests already wait for backend {}",
                    st.queue.len(),
                    backend.name.as_str()
                ),
            ));
        }
        let (tx, rx) = oneshot::channel();
        st.next_id += 1;
        let id = st.next_id;
        st.queue.push_back(Waiter { id, hash, tx });
        lim.queue_depth.set(st.queue.len() as i64);
        (id, rx)
    };
    let (id, rx) = rx;
    let queued = Instant::now();
    let timeout = backend.settings.queue_timeout;
    let got = tokio::time::timeout(timeout, rx).await;
    lim.queue_time.observe(
        Instant::now()
            .saturating_duration_since(queued)
            .as_secs_f64(),
    );
    match got {
        Ok(Ok(slot)) => Ok(slot),
        // Timed out (or the limiter went away): leave the queue. A slot sent in the
        // meantime is dropped with the receiver, which frees it for the next waiter.
        _ => {
            let mut st = lim.state.lock();
            if let Some(pos) = st.queue.iter().position(|w| w.id == id) {
                st.queue.remove(pos);
            }
            lim.queue_depth.set(st.queue.len() as i64);
            drop(st);
            Err(queue_timeout(backend, timeout))
        }
    }
}

fn queue_timeout(backend: &Backend, after: Duration) -> ProxyError {
    ProxyError::new(
        Cause::QueueTimeout,
        format!(
            "no free connection slot on backend {} within {after:?}",
            backend.name.as_str()
        ),
    )
}

/// Hands free slots to waiters, oldest first, while there are any. Called with the
/// state locked; creates slots without dropping any under the lock.
fn dispatch(backend: &Arc<Backend>, st: &mut State) {
    let lim = &backend.limiter;
    let servers = backend.servers();
    while let Some(w) = st.queue.front() {
        if w.tx.is_closed() {
            st.queue.pop_front();
            continue;
        }
        if lim.total > 0 && st.inflight >= lim.total {
            break;
        }
        let Some(server) = backend.pick(&servers, |s| s.available() && lim.has_room(s), w.hash)
        else {
            break;
        };
        let Some(w) = st.queue.pop_front() else { break };
        st.inflight += 1;
        if let Err(mut slot) = w.tx.send(arm(backend, server)) {
            // The waiter gave up just now: undo by hand (dropping would re-lock).
            slot.armed = false;
            slot.server.inflight.fetch_sub(1, Ordering::Relaxed);
            slot.server.metrics.inflight.dec();
            st.inflight -= 1;
        }
    }
    lim.queue_depth.set(st.queue.len() as i64);
}

/// Serves waiters after capacity appeared without a slot being freed (a server came
/// back, or DNS added one).
pub fn kick(backend: &Arc<Backend>) {
    if backend.limiter.limited {
        let mut st = backend.limiter.state.lock();
        dispatch(backend, &mut st);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.armed = false;
        self.server.inflight.fetch_sub(1, Ordering::Relaxed);
        self.server.metrics.inflight.dec();
        let lim = &self.backend.limiter;
        if lim.limited {
            let mut st = lim.state.lock();
            st.inflight = st.inflight.saturating_sub(1);
            dispatch(&self.backend, &mut st);
        }
    }
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
        let rt =
            crate::compile(&config, &Metrics::register(&mut Registry::default()), "t").unwrap();
        rt.backends[0].clone()
    }

    #[tokio::test]
    async fn backend_maxconn_caps_the_sum_over_servers_and_hands_slots_over_in_order() {
        let b = backend("{maxconn: 2}");
        let s1 = acquire(&b, None, None).await.unwrap();
        let s2 = acquire(&b, None, None).await.unwrap();
        assert!(
            !Arc::ptr_eq(&s1.server, &s2.server),
            "least_request spreads the two"
        );
        let e = acquire(&b, None, None).await.err().unwrap();
        assert_eq!(e.cause, Cause::QueueTimeout);
        // A waiter gets the slot freed by s1, ahead of anyone arriving later.
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { acquire(&b, None, None).await }
        });
        while b.limiter.queue_depth.get() == 0 {
            tokio::task::yield_now().await;
        }
        let freed = s1.server.clone();
        drop(s1);
        let got = waiter.await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&got.server, &freed));
        assert_eq!(b.limiter.queue_depth.get(), 0);
        drop((s2, got));
        assert_eq!(b.limiter.state.lock().inflight, 0);
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
        while b.limiter.queue_depth.get() == 0 {
            tokio::task::yield_now().await;
        }
        let e = acquire(&b, None, None).await.err().unwrap();
        assert_eq!(e.cause, Cause::QueueFull);
        assert_eq!(waiter.await.unwrap(), Some(Cause::QueueTimeout));
    }
}
