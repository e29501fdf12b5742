//! A backend at run time: its servers (each with a precomputed pool key), its policy
//! and timeouts, and its metric handles.

use crate::metrics::{BackendMetrics, Name};
use sluice_net::Target;
use sluice_pool::{Policy, PoolKey};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub struct Server {
    pub target: Target,
    /// Everything that makes connections to this server non-interchangeable.
    pub key: PoolKey,
    /// `host:port` or `unix:/path`, for logs.
    pub label: Name,
}

pub struct Backend {
    pub name: Name,
    pub servers: Vec<Server>,
    next: AtomicUsize,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub policy: Policy,
    pub metrics: BackendMetrics,
}

impl Backend {
    pub fn new(
        name: Name,
        servers: Vec<Server>,
        connect_timeout: Duration,
        response_timeout: Duration,
        policy: Policy,
        metrics: BackendMetrics,
    ) -> Self {
        Self {
            name,
            servers,
            next: AtomicUsize::new(0),
            connect_timeout,
            response_timeout,
            policy,
            metrics,
        }
    }

    /// Round robin over the servers. (Config validation guarantees at least one.)
    pub fn pick(&self) -> Option<&Server> {
        match self.servers.len() {
            0 => None,
            1 => self.servers.first(),
            n => self
                .servers
                .get(self.next.fetch_add(1, Ordering::Relaxed) % n),
        }
    }
}
