//! The upstream connection pool: one per process, shared by every worker thread.
//!
//! Connections are filed under a [`PoolKey`] that names everything making two
//! connections non-interchangeable (address, TLS settings, ...). Idle connections are
//! kept LIFO per key, so the hot few stay warm and the rest age out; a key whose list
//! empties is removed, so the map never grows without bound. The lock is held only
//! for a push or pop, never across an `.await`, and nothing is dropped under it.
//!
//! The pool knows nothing of HTTP or routing: it stores any [`Connection`].

mod key;
mod pool;

pub use key::PoolKey;
pub use pool::{Connection, Policy, Pool, Pooled};
