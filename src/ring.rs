//! The bounded lock-free ring between q's threads (producers) and the flusher (consumer).
//!
//! Scalars go into an [`ArrayQueue<Event>`] of `Copy` 16-byte events: a push is a slot claim and a
//! copy, and a full ring drops the event and counts it. Vectors for `observe` go into a second
//! queue as one [`Batch`], so a vector is applied whole or dropped whole, never in part, however
//! long it is; their memory is capped by a byte budget.
//!
//! Success costs no shared counter: events recorded are derived as applied + queued + dropped, so
//! the producers' only shared write on the hot path is the queue's own.

use crate::event::{Batch, Event};
use crossbeam_queue::ArrayQueue;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

thread_local! {
    /// Pushes by this thread, to look at the fill level only now and then.
    static PUSHES: Cell<u32> = const { Cell::new(0) };
}

/// How many batches may wait at once, whatever their size.
const BATCH_SLOTS: usize = 1024;

/// The ring and its drop counters.
pub struct Ring {
    events: ArrayQueue<Event>,
    batches: ArrayQueue<Batch>,
    batch_bytes: AtomicUsize,
    max_batch_bytes: usize,
    dropped: AtomicU64,
    /// Wakes a sleeping consumer early when the ring fills up.
    wake: tokio::sync::Notify,
}

impl Ring {
    /// A ring for `capacity` scalar events and up to `max_batch_bytes` of queued vectors.
    pub fn new(capacity: usize, max_batch_bytes: usize) -> Self {
        Ring {
            events: ArrayQueue::new(capacity.max(1)),
            batches: ArrayQueue::new(BATCH_SLOTS),
            batch_bytes: AtomicUsize::new(0),
            max_batch_bytes,
            dropped: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Resolves when a producer found the ring more than half full (the consumer selects on it
    /// while it sleeps, so it may sleep long when q is quiet).
    pub async fn pressure(&self) {
        self.wake.notified().await;
    }

    /// Every 1024th push of a thread looks at the fill level: a thread-local count, no shared write.
    #[inline]
    fn check_pressure(&self) {
        let n = PUSHES.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n
        });
        if n.is_multiple_of(1024) && self.events.len() > self.events.capacity() / 2 {
            self.wake.notify_one();
        }
    }

    /// Offers one event; false (and counted) when the ring is full. Never blocks, never allocates.
    #[inline]
    pub fn push(&self, ev: Event) -> bool {
        self.check_pressure();
        match self.events.push(ev) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Offers a whole vector; false (and every value counted as dropped) when there is no room.
    pub fn push_batch(&self, batch: Batch) -> bool {
        let n = batch.values.len();
        let bytes = n * size_of::<f64>();
        let reserved = self
            .batch_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| (b + bytes <= self.max_batch_bytes).then_some(b + bytes))
            .is_ok();
        if reserved && self.batches.push(batch).is_ok() {
            self.wake.notify_one();
            return true;
        }
        if reserved {
            self.batch_bytes.fetch_sub(bytes, Ordering::AcqRel);
        }
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        false
    }

    /// Pops up to `max` scalar events into `f`; returns how many.
    pub fn drain(&self, max: usize, mut f: impl FnMut(Event)) -> usize {
        let mut n = 0;
        while n < max {
            let Some(ev) = self.events.pop() else { break };
            f(ev);
            n += 1;
        }
        n
    }

    /// Pops one vector batch, releasing its share of the byte budget.
    pub fn pop_batch(&self) -> Option<Batch> {
        let b = self.batches.pop()?;
        self.batch_bytes.fetch_sub(b.values.len() * size_of::<f64>(), Ordering::AcqRel);
        Some(b)
    }

    /// Events (scalars plus vector values) refused because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Scalar events waiting.
    pub fn queued(&self) -> usize {
        self.events.len()
    }

    /// Vector values waiting.
    pub fn queued_batch_values(&self) -> usize {
        self.batch_bytes.load(Ordering::Acquire) / size_of::<f64>()
    }

    /// Scalar capacity.
    pub fn capacity(&self) -> usize {
        self.events.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Op;

    #[test]
    fn full_ring_drops_and_counts() {
        let r = Ring::new(2, 16);
        let ev = Event { series: 0, op: Op::Inc, value: 1.0 };
        assert!(r.push(ev) && r.push(ev));
        assert!(!r.push(ev));
        assert_eq!(r.dropped(), 1);
        assert!(r.push_batch(Batch { series: 0, values: vec![1.0, 2.0] }));
        assert!(!r.push_batch(Batch { series: 0, values: vec![1.0] }), "byte budget of 16 is spent");
        assert_eq!(r.dropped(), 2);
        assert_eq!(r.queued_batch_values(), 2);
        assert_eq!(r.drain(10, |_| ()), 2);
        assert_eq!(r.pop_batch().unwrap().values, vec![1.0, 2.0]);
        assert_eq!(r.queued_batch_values(), 0);
    }
}
