//! One recording thread's lane: a bounded single-producer, single-consumer ring of events.
//!
//! Written in safe Rust: each slot is two `AtomicU64` words (the event packed), written with
//! relaxed stores and published by a release store of `tail`, read after an acquire load of
//! `tail` and released by a release store of `head`: the classic SPSC handshake. On x86-64 and
//! AArch64 relaxed atomic loads and stores are plain moves, so a push costs what a copy costs.
//! Nothing here can be undefined behaviour; a second producer (which [`super::Ring`] never lets
//! happen) could only lose or mix up events.

use crate::event::{Event, Op};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

/// Where a lane is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// A thread writes into it.
    Live,
    /// Its thread ended (or moved to another ring): the consumer drains it, then frees it.
    Abandoned,
    /// Drained and waiting for another thread.
    Free,
}

/// What became of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// In the lane.
    Done,
    /// In the lane, which is now over half full: time to wake the consumer.
    OverHalf,
    /// Not: the lane is full.
    Full,
}

/// A lane: `capacity` events at most.
pub struct Lane {
    /// Two words a slot (the event packed); zeroed by the allocator, so a lane's memory is only
    /// touched as events fill it.
    slots: Box<[AtomicU64]>,
    mask: usize,
    capacity: usize,
    /// A push looks at the fill level when `tail & look == 0`: every quarter of the lane, at least
    /// every 1024 pushes.
    look: usize,
    /// Next slot to write; written by the producer only.
    tail: CachePadded<AtomicUsize>,
    /// The producer's last reading of `head`, so a push reads the consumer's line only when the
    /// lane looks full. Touched by the producer only.
    seen_head: AtomicUsize,
    /// Next slot to read; written by the consumer only.
    head: CachePadded<AtomicUsize>,
    state: AtomicU8,
}

impl Lane {
    /// A live lane for `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let len = capacity.next_power_of_two();
        Lane {
            slots: bytemuck::zeroed_slice_box(2 * len),
            mask: len - 1,
            capacity,
            look: (capacity / 4).clamp(1, 1024).next_power_of_two() - 1,
            tail: CachePadded::new(AtomicUsize::new(0)),
            seen_head: AtomicUsize::new(0),
            head: CachePadded::new(AtomicUsize::new(0)),
            state: AtomicU8::new(State::Live as u8),
        }
    }

    /// Producer: appends `ev`. Panic-free by construction (no indexing that can fail, wrapping
    /// arithmetic only, no call): it runs on the record path outside `catch_unwind`.
    #[inline(always)]
    pub fn push(&self, ev: Event) -> Pushed {
        let t = self.tail.load(Ordering::Relaxed);
        if t.wrapping_sub(self.seen_head.load(Ordering::Relaxed)) >= self.capacity {
            let h = self.head.load(Ordering::Acquire);
            self.seen_head.store(h, Ordering::Relaxed);
            if t.wrapping_sub(h) >= self.capacity {
                return Pushed::Full;
            }
        }
        let i = (t & self.mask) * 2;
        let Some([a, b]) = self.slots.get(i..i + 2).and_then(|s| <&[AtomicU64; 2]>::try_from(s).ok()) else { return Pushed::Full };
        a.store(u64::from(ev.series) | (ev.op as u64) << 32, Ordering::Relaxed);
        b.store(ev.value.to_bits(), Ordering::Relaxed);
        let t = t.wrapping_add(1);
        self.tail.store(t, Ordering::Release);
        // The fill level is looked at every `look`-th slot, by the tail itself.
        if t & self.look == 0 && t.wrapping_sub(self.head.load(Ordering::Acquire)) > self.capacity / 2 {
            return Pushed::OverHalf;
        }
        Pushed::Done
    }

    /// Consumer: hands up to `max` events to `f`, oldest first; returns how many.
    pub fn drain(&self, max: usize, mut f: impl FnMut(Event)) -> usize {
        let h = self.head.load(Ordering::Relaxed);
        let n = self.tail.load(Ordering::Acquire).wrapping_sub(h).min(max);
        for i in 0..n {
            let j = (h.wrapping_add(i) & self.mask) * 2;
            let (a, b) = (self.slots[j].load(Ordering::Relaxed), self.slots[j + 1].load(Ordering::Relaxed));
            let op = match a >> 32 {
                0 => Op::Inc,
                1 => Op::Dec,
                2 => Op::Set,
                _ => Op::Observe,
            };
            f(Event { series: a as u32, op, value: f64::from_bits(b) });
        }
        self.head.store(h.wrapping_add(n), Ordering::Release);
        n
    }

    /// Events waiting (exact when neither end moves, else a value the lane held in between).
    pub fn len(&self) -> usize {
        let h = self.head.load(Ordering::Acquire);
        self.tail.load(Ordering::Acquire).wrapping_sub(h)
    }

    /// True when no event waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lane's state.
    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            0 => State::Live,
            1 => State::Abandoned,
            _ => State::Free,
        }
    }

    /// Moves the lane to `s`: Abandoned by its producer's goodbye, Free by the consumer, Live by
    /// the thread that takes it (which then starts from where the last one stopped).
    pub fn set_state(&self, s: State) {
        if s == State::Live {
            self.seen_head.store(self.head.load(Ordering::Acquire), Ordering::Relaxed);
        }
        self.state.store(s as u8, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: u32, op: Op, v: f64) -> Event {
        Event { series: s, op, value: v }
    }

    #[test]
    fn holds_capacity_events_and_keeps_order_across_the_wrap() {
        let l = Lane::new(3);
        let mut got = Vec::new();
        for round in 0..5u32 {
            for i in 0..3 {
                assert_ne!(l.push(ev(round * 3 + i, Op::Set, f64::from(i) - 0.5)), Pushed::Full);
            }
            assert_eq!(l.push(ev(99, Op::Inc, 1.0)), Pushed::Full, "a fourth event does not fit");
            assert_eq!(l.len(), 3);
            l.drain(usize::MAX, |e| got.push(e));
        }
        assert_eq!(got.len(), 15);
        assert!(got.iter().enumerate().all(|(i, e)| e.series == i as u32 && e.op == Op::Set));
        assert_eq!(got[4].value, 0.5);
    }

    #[test]
    fn every_op_and_value_survives_the_packing() {
        let l = Lane::new(8);
        let sent = [ev(u32::MAX, Op::Inc, f64::MAX), ev(0, Op::Dec, -0.0), ev(7, Op::Set, 1e-300), ev(1, Op::Observe, -3.25)];
        for e in sent {
            l.push(e);
        }
        let mut got = Vec::new();
        assert_eq!(l.drain(2, |e| got.push(e)), 2);
        assert_eq!(l.drain(9, |e| got.push(e)), 2);
        assert_eq!(got.len(), 4);
        for (g, s) in got.iter().zip(sent) {
            assert_eq!((g.series, g.op, g.value.to_bits()), (s.series, s.op, s.value.to_bits()));
        }
    }

    #[test]
    fn says_when_over_half_full() {
        let l = Lane::new(4);
        // A lane of 4 looks at every push (a quarter of it).
        let wakes: Vec<bool> = (0..4).map(|i| l.push(ev(i, Op::Inc, 1.0)) == Pushed::OverHalf).collect();
        assert_eq!(wakes, [false, false, true, true]);
        assert_eq!(l.push(ev(4, Op::Inc, 1.0)), Pushed::Full);
    }

    #[test]
    fn one_producer_one_consumer_lose_nothing() {
        let l = Lane::new(64);
        let n = 200_000u32;
        let mut sum = 0u64;
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut i = 0;
                while i < n {
                    if l.push(ev(i, Op::Inc, 1.0)) != Pushed::Full {
                        i += 1;
                    }
                }
            });
            let mut next = 0u32;
            while next < n {
                l.drain(usize::MAX, |e| {
                    assert_eq!(e.series, next, "in order, none lost, none twice");
                    next += 1;
                    sum += u64::from(e.series);
                });
            }
        });
        assert_eq!(sum, u64::from(n) * u64::from(n - 1) / 2);
    }
}
