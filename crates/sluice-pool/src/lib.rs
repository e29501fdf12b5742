//! The upstream connection pool: one per process, shared by every worker thread.
//!
//! Connections are filed under a [`PoolKey`] that names everything making two
//! connections non-interchangeable (address, TLS settings, ...). Idle connections are
//! kept LIFO per key, so the hot few stay warm and the rest age out. Each key's list has
//! its own lock, and the servers that use a key hold its list; a list that is empty
//! and held by nobody is forgotten, so the map never grows without bound.
//!
//! Multiplexed connections (HTTP/2) are shared by concurrent requests, a stream each
//! ([`SharedPool`]).
//!
//! Requests take a [`Slot`] on a server first: per-server and per-backend limits and
//! the FIFO queue (`slots`).
//!
//! The pool knows nothing of HTTP or routing: it stores any [`Connection`], and limits
//! any [`Group`] of [`Member`]s.

mod key;
mod pool;
mod shared;
mod slots;

pub use key::PoolKey;
pub use pool::{Connection, IdleList, Policy, Pool, Pooled, Tally};
pub use shared::{Multiplexed, SharedConn, SharedPool, Stream};
pub use slots::{
    Group, Limiter, Limits, Member, QueueObserver, QueueState, Refusal, SharedQueue, Slot,
};
