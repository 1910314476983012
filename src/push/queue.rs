//! A target's bounded, ordered queue of encoded requests: sent oldest first, so a receiver that
//! comes back gets every round in time order and its series have no gap.
//!
//! Requests are held encoded (snappy protobuf), a few bytes per sample, so the default capacity of
//! 500 000 samples stays within a few MB. Over capacity, or over the age limit, the oldest
//! requests leave first; the caller accounts for them with the count each call returns.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;

/// One encoded request and what it carries.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The body exactly as it goes on the wire; cloning it per attempt copies no bytes.
    pub body: Bytes,
    /// Samples in it.
    pub samples: u64,
    /// Timestamp of its newest sample (ms), for the age limit and the spool.
    pub ts_ms: i64,
    /// The spool file it was replayed from, removed once every request of that file has left.
    pub origin: Option<Arc<super::replay::Origin>>,
    /// The body is a remote-write 2.0 request (else 1.0, or text for the Pushgateway).
    pub v2: bool,
}

/// Requests in the order they were made.
#[derive(Debug, Default)]
pub struct Queue {
    items: VecDeque<Queued>,
    samples: u64,
    bytes: u64,
    capacity: u64,
}

impl Queue {
    /// A queue holding at most `capacity` samples.
    pub fn new(capacity: u64) -> Queue {
        Queue { capacity, ..Queue::default() }
    }

    /// Appends `r`, then drops the oldest requests while over capacity (never `r` itself, which
    /// is at most `max_samples_per_send` ≤ capacity). Returns the samples dropped.
    ///
    /// ```
    /// use kdbprom::push::queue::{Queue, Queued};
    /// let req = |n| Queued { body: bytes::Bytes::from_static(b"x"), samples: n, ts_ms: 0, origin: None, v2: false };
    /// let mut q = Queue::new(10);
    /// assert_eq!(q.push(req(6)), 0);
    /// assert_eq!(q.push(req(6)), 6);
    /// assert_eq!((q.len(), q.samples()), (1, 6));
    /// ```
    pub fn push(&mut self, r: Queued) -> u64 {
        self.samples += r.samples;
        self.bytes += r.body.len() as u64;
        self.items.push_back(r);
        let mut dropped = 0;
        while self.samples > self.capacity && self.items.len() > 1 {
            dropped += self.pop().map_or(0, |r| r.samples);
        }
        dropped
    }

    /// Puts replayed requests (oldest first) ahead of everything queued; nothing is evicted, since
    /// what was spooled was bounded by the spool's own cap.
    pub fn push_front_all(&mut self, rs: Vec<Queued>) {
        for r in rs.into_iter().rev() {
            self.samples += r.samples;
            self.bytes += r.body.len() as u64;
            self.items.push_front(r);
        }
    }

    /// Drops requests whose newest sample is older than `limit_ms` at `now_ms` (0: no limit).
    /// Returns the samples dropped.
    pub fn expire(&mut self, now_ms: i64, limit_ms: u64) -> u64 {
        if limit_ms == 0 {
            return 0;
        }
        let mut dropped = 0;
        while self.items.front().is_some_and(|r| now_ms.saturating_sub(r.ts_ms) > limit_ms as i64) {
            dropped += self.pop().map_or(0, |r| r.samples);
        }
        dropped
    }

    /// The oldest request.
    pub fn front(&self) -> Option<&Queued> {
        self.items.front()
    }

    /// Replaces the oldest request's body (the same samples in another protocol).
    pub fn rewrite_front(&mut self, body: bytes::Bytes, v2: bool) {
        if let Some(r) = self.items.front_mut() {
            self.bytes = self.bytes - r.body.len() as u64 + body.len() as u64;
            (r.body, r.v2) = (body, v2);
        }
    }

    /// Removes the oldest request.
    pub fn pop(&mut self) -> Option<Queued> {
        let r = self.items.pop_front()?;
        self.samples -= r.samples;
        self.bytes -= r.body.len() as u64;
        Some(r)
    }

    /// Takes every request, oldest first.
    pub fn take_all(&mut self) -> Vec<Queued> {
        self.samples = 0;
        self.bytes = 0;
        self.items.drain(..).collect()
    }

    /// Requests queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Samples queued.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Body bytes queued.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(id: u8, samples: u64, ts_ms: i64) -> Queued {
        Queued { body: Bytes::from(vec![id]), samples, ts_ms, origin: None, v2: false }
    }

    #[test]
    fn expiry_drops_the_oldest_only() {
        let mut q = Queue::new(100);
        q.push(req(0, 3, 1_000));
        q.push(req(1, 4, 5_000));
        assert_eq!(q.expire(6_000, 0), 0);
        assert_eq!(q.expire(6_000, 2_000), 3);
        assert_eq!(q.front().unwrap().body[0], 1);
        q.push_front_all(vec![req(7, 1, 0), req(8, 1, 0)]);
        let ids: Vec<u8> = q.take_all().iter().map(|r| r.body[0]).collect();
        assert_eq!(ids, [7, 8, 1]);
        assert_eq!((q.samples(), q.bytes()), (0, 0));
    }

    proptest! {
        /// Requests leave in the order they entered, and pushed = left + dropped + queued.
        #[test]
        fn fifo_and_bounded(sizes in proptest::collection::vec(1u64..50, 1..200), cap in 50u64..500, pops in proptest::collection::vec(any::<bool>(), 200)) {
            let mut q = Queue::new(cap);
            let (mut pushed, mut dropped, mut popped) = (0u64, 0u64, 0u64);
            let mut last_seen: Option<u64> = None;
            for (i, (n, pop)) in sizes.iter().zip(pops.iter().cycle()).enumerate() {
                pushed += n;
                dropped += q.push(Queued { body: Bytes::from((i as u64).to_le_bytes().to_vec()), samples: *n, ts_ms: i as i64, origin: None, v2: false });
                prop_assert!(q.samples() <= cap);
                if *pop && let Some(r) = q.pop() {
                    let id = u64::from_le_bytes(r.body[..].try_into().unwrap());
                    prop_assert!(last_seen.is_none_or(|l| id > l));
                    last_seen = Some(id);
                    popped += r.samples;
                }
            }
            prop_assert_eq!(pushed, popped + dropped + q.samples());
        }
    }
}
