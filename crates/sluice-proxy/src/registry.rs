//! What outlives config generations: the upstream pools, every server's state (by
//! identity), each backend's queue (by name). A generation looks its state up here
//! instead of creating it, so a reload resets no ejection and doubles no limit.

use crate::backend::{Backend, ServerCatalog};
use crate::metrics::Metrics;
use crate::tunnel::Tunnels;
use crate::upstream::Pools;
use parking_lot::Mutex;
use sluice_pool::SharedQueue;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

pub struct Registry {
    pub pools: Pools,
    pub metrics: Metrics,
    pub catalog: Arc<ServerCatalog>,
    pub tunnels: Tunnels,
    queues: Mutex<HashMap<String, Weak<parking_lot::Mutex<sluice_pool::QueueState<Backend>>>>>,
}

impl Registry {
    pub fn new(metrics: Metrics) -> Self {
        let pools = Pools::default();
        Self {
            catalog: Arc::new(ServerCatalog::new(metrics.clone(), pools.h1.clone())),
            pools,
            metrics,
            tunnels: Tunnels::default(),
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// The queue of backend `name`: the one its previous version used, if alive.
    pub fn queue(&self, name: &str) -> SharedQueue<Backend> {
        let mut queues = self.queues.lock();
        if let Some(q) = queues.get(name).and_then(Weak::upgrade) {
            return q;
        }
        queues.retain(|_, w| w.strong_count() > 0);
        let q: SharedQueue<Backend> = Default::default();
        queues.insert(name.to_string(), Arc::downgrade(&q));
        q
    }
}
