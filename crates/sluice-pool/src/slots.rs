//! Concurrency limits and the FIFO queue in front of a group of servers.
//!
//! A request needs a [`Slot`] on one member (server) before it may use a connection.
//! Without limits a slot is just an in-flight count (used by the balancer). With a
//! per-member or a group limit, a request that finds no free slot waits in the group's
//! queue; a slot freed by a finishing request goes straight to the oldest waiter (no
//! barging), so the origin never sees more than the limit.
//!
//! The queue state lives behind an `Arc` of its own so that successive versions of a
//! group (config generations) can share it: a reload neither empties the queue nor
//! resets the count of requests in flight, so it never doubles the limit.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// One server requests take slots on.
pub trait Member: Send + Sync + 'static {
    /// Requests in flight on it (queued requests not included); the limiter keeps it.
    fn inflight(&self) -> &AtomicUsize;
    /// Takes new requests (not down, not ejected, not removed).
    fn available(&self) -> bool;
    /// The in-flight count changed by `delta` (for a metric).
    fn inflight_changed(&self, _delta: i64) {}
}

/// The servers one limiter guards, and how one is chosen.
pub trait Group: Send + Sync + Sized + 'static {
    type Member: Member;
    fn limiter(&self) -> &Limiter<Self>;
    fn members(&self) -> Arc<[Arc<Self::Member>]>;
    /// Chooses among `members` those `usable` (balancing); `hash` for consistent hashing.
    fn pick(
        &self,
        members: &[Arc<Self::Member>],
        usable: &dyn Fn(&Self::Member) -> bool,
        hash: Option<u64>,
    ) -> Option<Arc<Self::Member>>;
}

/// Sees the queue (for metrics).
pub trait QueueObserver: Send + Sync + 'static {
    fn depth(&self, waiting: usize);
    fn waited(&self, time: Duration);
}

/// Why no slot was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No member is available at all (answer at once; queueing would not help).
    NoneAvailable,
    /// The queue already holds `max_queue` waiters.
    QueueFull(usize),
    /// Waited this long without a free slot.
    QueueTimeout(Duration),
    /// Would wait about `predicted` (from the queue ahead and how long slots have been
    /// held lately), past the queue timeout: refused at once rather than after it.
    WouldTimeout {
        predicted: Duration,
        timeout: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests in flight per member (0 = unlimited).
    pub per_member: usize,
    /// Requests in flight over the whole group (0 = unlimited).
    pub total: usize,
    pub max_queue: usize,
    pub queue_timeout: Duration,
}

/// The queue and in-flight total, shareable between versions of a group.
pub struct QueueState<G: Group> {
    inflight: usize,
    next_id: u64,
    queue: VecDeque<Waiter<G>>,
    /// Moving average of how long a slot is held, in microseconds (0 = none seen yet).
    hold_us: u64,
}

impl<G: Group> Default for QueueState<G> {
    fn default() -> Self {
        Self {
            inflight: 0,
            next_id: 0,
            queue: VecDeque::new(),
            hold_us: 0,
        }
    }
}

impl<G: Group> QueueState<G> {
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    pub fn inflight(&self) -> usize {
        self.inflight
    }

    /// The recent average time a slot is held (zero before the first is freed).
    pub fn mean_hold(&self) -> Duration {
        Duration::from_micros(self.hold_us)
    }

    /// Weight 1/8 for the newest sample, as TCP's smoothed RTT: it follows a backend
    /// that slows down within a few dozen requests and ignores a single outlier.
    fn held(&mut self, time: Duration) {
        let us = u64::try_from(time.as_micros()).unwrap_or(u64::MAX);
        self.hold_us = if self.hold_us == 0 {
            us.max(1)
        } else {
            (self.hold_us.saturating_mul(7).saturating_add(us) / 8).max(1)
        };
    }
}

struct Waiter<G: Group> {
    id: u64,
    hash: Option<u64>,
    tx: oneshot::Sender<Slot<G>>,
}

pub type SharedQueue<G> = Arc<Mutex<QueueState<G>>>;

pub struct Limiter<G: Group> {
    limits: Limits,
    limited: bool,
    state: SharedQueue<G>,
    observer: Arc<dyn QueueObserver>,
}

/// Permission to send one request to a member. Dropping it frees the slot (and hands
/// it to the oldest waiter, if any).
pub struct Slot<G: Group> {
    member: Arc<G::Member>,
    group: Arc<G>,
    armed: bool,
    /// When a limited slot was given (for the hold-time average); unlimited slots skip
    /// the clock.
    since: Option<Instant>,
}

impl<G: Group> Slot<G> {
    pub fn member(&self) -> &Arc<G::Member> {
        &self.member
    }

    pub fn group(&self) -> &Arc<G> {
        &self.group
    }
}

fn arm<G: Group>(group: &Arc<G>, member: Arc<G::Member>) -> Slot<G> {
    member.inflight().fetch_add(1, Ordering::Relaxed);
    member.inflight_changed(1);
    Slot {
        member,
        group: group.clone(),
        armed: true,
        since: group.limiter().limited.then(Instant::now),
    }
}

impl<G: Group> Limiter<G> {
    pub fn new(limits: Limits, state: SharedQueue<G>, observer: Arc<dyn QueueObserver>) -> Self {
        Self {
            limited: limits.per_member > 0 || limits.total > 0,
            limits,
            state,
            observer,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Waiting requests right now.
    pub fn waiting(&self) -> usize {
        self.state.lock().waiting()
    }

    fn has_room(&self, m: &G::Member) -> bool {
        self.limits.per_member == 0 || m.inflight().load(Ordering::Relaxed) < self.limits.per_member
    }

    /// How long a request joining the queue now would wait: the waiters ahead of it
    /// plus itself, each needing a slot to be freed, and the slots freeing at
    /// `capacity / mean hold` per unit of time. `None` before any slot was freed.
    fn predicted_wait(&self, st: &QueueState<G>, members: &[Arc<G::Member>]) -> Option<Duration> {
        if st.hold_us == 0 {
            return None;
        }
        let up = members.iter().filter(|m| m.available()).count();
        let per_member = match self.limits.per_member {
            0 => usize::MAX,
            n => n.saturating_mul(up),
        };
        let capacity = match self.limits.total {
            0 => per_member,
            n => n.min(per_member),
        };
        let ahead = u64::try_from(st.queue.len())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let capacity = u64::try_from(capacity.max(1)).unwrap_or(u64::MAX);
        Some(Duration::from_micros(
            st.hold_us.saturating_mul(ahead) / capacity,
        ))
    }

    /// Gets a slot on a member of `group`, waiting in its queue when all are busy.
    /// `avoid` is a member a previous attempt failed on (used only if nothing else is).
    pub async fn acquire(
        group: &Arc<G>,
        hash: Option<u64>,
        avoid: Option<&Arc<G::Member>>,
    ) -> Result<Slot<G>, Refusal> {
        let lim = group.limiter();
        let members = group.members();
        let up = |s: &G::Member| s.available();
        let other = |s: &G::Member| up(s) && avoid.is_none_or(|a| !std::ptr::eq(a.as_ref(), s));
        if !lim.limited {
            // The common case: one pass, and the error only when nothing was picked.
            let picked = group
                .pick(&members, &other, hash)
                .or_else(|| avoid.and_then(|_| group.pick(&members, &up, hash)));
            return picked.map(|s| arm(group, s)).ok_or(Refusal::NoneAvailable);
        }
        // With limits, "none available" (answer now) differs from "all busy" (queue).
        if !members.iter().any(|s| up(s)) {
            return Err(Refusal::NoneAvailable);
        }
        let (id, rx) = {
            let mut st = lim.state.lock();
            if st.queue.is_empty() && (lim.limits.total == 0 || st.inflight < lim.limits.total) {
                let free = |s: &G::Member| lim.has_room(s);
                let picked = group
                    .pick(&members, &|s| other(s) && free(s), hash)
                    .or_else(|| group.pick(&members, &|s| up(s) && free(s), hash));
                if let Some(s) = picked {
                    st.inflight += 1;
                    return Ok(arm(group, s));
                }
            }
            if st.queue.len() >= lim.limits.max_queue {
                return Err(Refusal::QueueFull(st.queue.len()));
            }
            let timeout = lim.limits.queue_timeout;
            if let Some(predicted) = lim.predicted_wait(&st, &members) {
                if predicted > timeout {
                    return Err(Refusal::WouldTimeout { predicted, timeout });
                }
            }
            let (tx, rx) = oneshot::channel();
            st.next_id += 1;
            let id = st.next_id;
            st.queue.push_back(Waiter { id, hash, tx });
            lim.observer.depth(st.queue.len());
            (id, rx)
        };
        let queued = Instant::now();
        let timeout = lim.limits.queue_timeout;
        let got = tokio::time::timeout(timeout, rx).await;
        lim.observer
            .waited(Instant::now().saturating_duration_since(queued));
        match got {
            Ok(Ok(slot)) => Ok(slot),
            // Timed out (or the limiter went away): leave the queue. A slot sent in the
            // meantime is dropped with the receiver, which frees it for the next waiter.
            _ => {
                let mut st = lim.state.lock();
                if let Some(pos) = st.queue.iter().position(|w| w.id == id) {
                    st.queue.remove(pos);
                }
                lim.observer.depth(st.queue.len());
                drop(st);
                Err(Refusal::QueueTimeout(timeout))
            }
        }
    }

    /// Serves waiters after capacity appeared without a slot being freed (a server came
    /// back, or DNS added one).
    pub fn kick(group: &Arc<G>) {
        let lim = group.limiter();
        if lim.limited {
            let mut st = lim.state.lock();
            dispatch(group, &mut st);
        }
    }
}

/// Hands free slots to waiters, oldest first, while there are any. Called with the
/// state locked; creates slots without dropping any under the lock.
fn dispatch<G: Group>(group: &Arc<G>, st: &mut QueueState<G>) {
    let lim = group.limiter();
    let members = group.members();
    while let Some(w) = st.queue.front() {
        if w.tx.is_closed() {
            st.queue.pop_front();
            continue;
        }
        if lim.limits.total > 0 && st.inflight >= lim.limits.total {
            break;
        }
        let free = |s: &G::Member| s.available() && lim.has_room(s);
        let Some(member) = group.pick(&members, &free, w.hash) else {
            break;
        };
        let Some(w) = st.queue.pop_front() else { break };
        st.inflight += 1;
        if let Err(mut slot) = w.tx.send(arm(group, member)) {
            // The waiter gave up just now: undo by hand (dropping would re-lock).
            slot.armed = false;
            slot.member.inflight().fetch_sub(1, Ordering::Relaxed);
            slot.member.inflight_changed(-1);
            st.inflight -= 1;
        }
    }
    lim.observer.depth(st.queue.len());
}

impl<G: Group> Drop for Slot<G> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.armed = false;
        self.member.inflight().fetch_sub(1, Ordering::Relaxed);
        self.member.inflight_changed(-1);
        let lim = self.group.limiter();
        if lim.limited {
            let held = self
                .since
                .map(|t| Instant::now().saturating_duration_since(t));
            let mut st = lim.state.lock();
            if let Some(held) = held {
                st.held(held);
            }
            st.inflight = st.inflight.saturating_sub(1);
            dispatch(&self.group, &mut st);
        }
    }
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
