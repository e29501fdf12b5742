//! The park lot of one listener setting: the client connections parked between two
//! requests, kept in the order their keep-alive timeouts expire, and the one task (the
//! sweeper) that closes them when they expire or when sluice shuts down.
//!
//! This is what keeps an idle client connection small. Its own task then holds only
//! its socket, its address and its context: with a timer and a shutdown future of
//! its own (232 bytes of futures), tokio's 128-byte-aligned task grew from 256 to 640
//! bytes. Here the timer is the sweeper's, one per lot, and a parked connection's
//! share is a slot of about 50 bytes.

use parking_lot::Mutex;
use slab::Slab;
use std::sync::Arc;
use std::task::{Context, Waker};
use tokio::sync::watch;
use tokio::time::Instant;

/// The end of the deadline list.
const NIL: usize = usize::MAX;

pub struct ParkLot {
    inner: Mutex<Lot>,
    /// Turns true on shutdown: every parked connection closes at once.
    stop: watch::Receiver<bool>,
}

struct Lot {
    slots: Slab<Slot>,
    /// The parked connections not yet closed, earliest deadline first (a doubly linked
    /// list through the slab, so a connection that wakes leaves in O(1)).
    head: usize,
    tail: usize,
    /// A sweeper task is running (it ends when the lot is empty).
    sweeping: bool,
    /// Shut down: no connection parks any more.
    stopped: bool,
}

struct Slot {
    deadline: Instant,
    waker: Option<Waker>,
    prev: usize,
    next: usize,
    /// Timed out or shut down: the connection must close (it is no longer linked).
    closed: bool,
}

/// A parked connection's place in its lot; give it back with [`ParkLot::leave`].
#[derive(Debug)]
pub struct Ticket(usize);

impl ParkLot {
    pub fn new(stop: watch::Receiver<bool>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Lot {
                slots: Slab::new(),
                head: NIL,
                tail: NIL,
                sweeping: false,
                stopped: false,
            }),
            stop,
        })
    }

    /// The shutdown signal the lot's connections are served with.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// Whether sluice is shutting down (a connection that wakes then closes).
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Parks a connection until `deadline`; `None` when shutting down (close it).
    pub fn park(self: &Arc<Self>, deadline: Instant) -> Option<Ticket> {
        let mut lot = self.inner.lock();
        if lot.stopped || self.stopping() {
            return None;
        }
        let key = lot.slots.insert(Slot {
            deadline,
            waker: None,
            prev: NIL,
            next: NIL,
            closed: false,
        });
        lot.link(key);
        if !lot.sweeping {
            lot.sweeping = true;
            tokio::spawn(sweep(self.clone()));
        }
        Some(Ticket(key))
    }

    /// Whether the connection must close now (its keep-alive timeout expired, or
    /// shutdown); if not, the task of `cx` is woken when it must.
    pub fn poll_closed(&self, ticket: &Ticket, cx: &mut Context<'_>) -> bool {
        let mut lot = self.inner.lock();
        let Some(slot) = lot.slots.get_mut(ticket.0) else {
            return true;
        };
        if slot.closed {
            return true;
        }
        match &slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        false
    }

    /// The connection leaves the lot (the client sent again, or it closes).
    pub fn leave(&self, ticket: Ticket) {
        let mut lot = self.inner.lock();
        let closed = lot.slots.get(ticket.0).is_none_or(|s| s.closed);
        if !closed {
            lot.unlink(ticket.0);
        }
        lot.slots.try_remove(ticket.0);
    }

    /// How many connections are parked and not yet told to close.
    #[cfg(test)]
    fn len(&self) -> usize {
        let lot = self.inner.lock();
        lot.slots.iter().filter(|(_, s)| !s.closed).count()
    }
}

impl Lot {
    /// Links `key` by its deadline. Connections park in nearly the order they went
    /// idle, so the walk from the tail is a step or two. One that lands before a
    /// sleeping sweeper's next deadline is closed at that deadline, late by the
    /// difference (how much sooner it went idle than the one it passed: milliseconds).
    fn link(&mut self, key: usize) {
        let deadline = self.slots[key].deadline;
        let mut after = self.tail;
        while after != NIL && self.slots[after].deadline > deadline {
            after = self.slots[after].prev;
        }
        let next = if after == NIL {
            self.head
        } else {
            self.slots[after].next
        };
        self.slots[key].prev = after;
        self.slots[key].next = next;
        match after {
            NIL => self.head = key,
            a => self.slots[a].next = key,
        }
        match next {
            NIL => self.tail = key,
            n => self.slots[n].prev = key,
        }
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = (self.slots[key].prev, self.slots[key].next);
        match prev {
            NIL => self.head = next,
            p => self.slots[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n].prev = prev,
        }
    }

    /// Tells the connection at the head to close.
    fn close_head(&mut self) {
        let key = self.head;
        self.unlink(key);
        let slot = &mut self.slots[key];
        slot.closed = true;
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
    }

    /// Closes what expired by `now`; returns the next deadline, if any is parked.
    fn expire(&mut self, now: Instant) -> Option<Instant> {
        while self.head != NIL {
            let deadline = self.slots[self.head].deadline;
            if deadline > now {
                return Some(deadline);
            }
            self.close_head();
        }
        None
    }

    fn close_all(&mut self) {
        self.stopped = true;
        while self.head != NIL {
            self.close_head();
        }
    }
}

/// Closes the lot's connections as their deadlines pass, and all of them on shutdown;
/// ends when no connection is parked (the next one to park starts another).
async fn sweep(lot: Arc<ParkLot>) {
    let mut stop = lot.stop.clone();
    loop {
        let next = {
            let mut inner = lot.inner.lock();
            // A closed channel (the server is gone) is a shutdown too.
            if *stop.borrow_and_update() || stop.has_changed().is_err() {
                inner.close_all();
                inner.sweeping = false;
                return;
            }
            match inner.expire(Instant::now()) {
                Some(next) => next,
                None => {
                    inner.sweeping = false;
                    return;
                }
            }
        };
        tokio::select! {
            biased;
            _ = stop.changed() => {}
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

#[cfg(test)]
#[path = "park_tests.rs"]
mod tests;
