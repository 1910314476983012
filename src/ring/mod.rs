//! The bounded lock-free ring between q's threads (producers) and the flusher (consumer).
//!
//! Each recording thread writes into a [`Lane`] of its own, a single-producer ring it finds through
//! one thread-local index: a push is a bounds check, a copy and one release store, with no
//! compare-and-swap and no cache line shared with another producer, so q's main thread and its
//! `peach` threads never slow each other down. A lane is taken on a thread's first record (the
//! thread that calls [`Ring::new`] gets one at once, so q's main thread never allocates to record);
//! when the thread ends, a goodbye in its thread-locals marks the lane abandoned, the consumer
//! drains what it left and frees the lane for the next new thread. Past [`MAX_LANES`] lanes, and
//! while a thread's locals are being torn down, events go into one shared bounded queue instead.
//! Whichever way, a full ring drops the event and counts it.
//!
//! Vectors for `observe` go into a separate queue as one [`Batch`], so a vector is applied whole
//! or dropped whole, never in part, however long it is; their memory is capped by a byte budget.
//!
//! Success costs no shared counter: events recorded are derived as applied + queued + dropped.

mod lane;

use crate::event::{Batch, Event};
use crossbeam_queue::ArrayQueue;
pub use lane::{Lane, Pushed, State};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// How many batches may wait at once, whatever their size.
const BATCH_SLOTS: usize = 1024;

/// Lanes at most; more recording threads than this at once share one queue. q's secondary
/// threads (`-s`) are at most the licensed cores, so only a multithreaded-input q (`-p -port`, a
/// thread per connection) with hundreds of connections recording at once gets here.
pub const MAX_LANES: usize = 256;

/// The shared queue's capacity at most: it only carries the overflow of [`MAX_LANES`].
const SHARED_MAX: usize = 1 << 16;

/// Tells one ring from another (an agent restarted by `.prom.init` after `.prom.stop[]` has a new
/// ring): a thread's lane index is good for the ring whose id it carries.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The record path's thread-local: which ring and lane this thread writes into. No destructor,
/// so reaching it is one TLS lookup with no state check, and the lane is a plain reference.
struct Mine {
    ring: Cell<u64>,
    lane: Cell<Option<&'static Lane>>,
}

/// The thread-local that says goodbye: its destructor marks this thread's lane abandoned when the
/// thread ends, and rings its ring's bell so the consumer drains the lane and hands it to the next
/// new thread now rather than at its next push (threads that come and go, as q's connection
/// threads in multithreaded input mode do, then reuse a few lanes instead of making one each).
/// Touched only when a thread takes a lane, never on the record path.
struct Goodbye {
    lane: Cell<Option<&'static Lane>>,
    /// Weak: a ring dropped before the thread ends owes nobody a wake-up.
    bell: Cell<Weak<Bell>>,
}

impl Drop for Goodbye {
    fn drop(&mut self) {
        // Pushes from later destructors of this thread go to the shared queue, not to a lane the
        // consumer may hand to another thread.
        let _ = MINE.try_with(|m| m.ring.set(0));
        if let Some(l) = self.lane.take() {
            l.set_state(State::Abandoned);
            if let Some(b) = self.bell.take().upgrade() {
                b.ring();
            }
        }
    }
}

/// Wakes a sleeping consumer early: one byte on a non-blocking socket (no lock, never blocks),
/// sent once until the consumer has woken ([`Ring::woken`]).
struct Bell {
    tx: Option<std::os::unix::net::UnixDatagram>,
    /// A byte is on its way and the consumer has not yet woken.
    signalled: AtomicBool,
}

impl Bell {
    #[cold]
    fn ring(&self) {
        if !self.signalled.swap(true, Ordering::AcqRel)
            && let Some(w) = &self.tx
        {
            let _ = w.send(&[1]);
        }
    }
}

thread_local! {
    static MINE: Mine = const { Mine { ring: Cell::new(0), lane: Cell::new(None) } };
    static GOODBYE: Goodbye = const { Goodbye { lane: Cell::new(None), bell: Cell::new(Weak::new()) } };
}

/// The lanes, the shared queue, the batches and the drop counter.
pub struct Ring {
    id: u64,
    lane_capacity: usize,
    /// Lanes are never freed, so a thread holds its own as a plain `&'static` (no reference count,
    /// no lookup): a ring hands the lane of a thread that ended to the next new thread, and lives
    /// as long as its agent, which q's boundary never frees. A ring that is dropped (in tests)
    /// leaves its lanes behind: at most one per thread that recorded into it.
    lanes: Box<[OnceLock<&'static Lane>]>,
    /// Lanes ever made (a prefix of `lanes`).
    made: AtomicUsize,
    /// Lanes drained after their thread ended, for new threads.
    free: ArrayQueue<usize>,
    /// The consumer's turn: [`Ring::drain`] runs one at a time. Never taken by a producer.
    consumer: Mutex<()>,
    /// For threads past [`MAX_LANES`] and threads whose locals are gone.
    shared: ArrayQueue<Event>,
    batches: ArrayQueue<Batch>,
    batch_bytes: AtomicUsize,
    max_batch_bytes: usize,
    dropped: AtomicU64,
    /// Wakes the consumer when a lane fills up or its thread ends.
    bell: Arc<Bell>,
    /// The consumer's end, taken by [`Ring::pressure_socket`].
    wake_rx: Mutex<Option<std::os::unix::net::UnixDatagram>>,
}

impl Ring {
    /// A ring whose lanes hold `capacity` scalar events each, with up to `max_batch_bytes` of
    /// queued vectors; the calling thread's lane is made now.
    pub fn new(capacity: usize, max_batch_bytes: usize) -> Self {
        let capacity = capacity.max(1);
        let (tx, rx) = match std::os::unix::net::UnixDatagram::pair() {
            Ok((tx, rx)) if tx.set_nonblocking(true).is_ok() && rx.set_nonblocking(true).is_ok() => (Some(tx), Some(rx)),
            _ => (None, None),
        };
        let ring = Ring {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            lane_capacity: capacity,
            lanes: (0..MAX_LANES).map(|_| OnceLock::new()).collect(),
            made: AtomicUsize::new(0),
            free: ArrayQueue::new(MAX_LANES),
            consumer: Mutex::new(()),
            shared: ArrayQueue::new(capacity.min(SHARED_MAX)),
            batches: ArrayQueue::new(BATCH_SLOTS),
            batch_bytes: AtomicUsize::new(0),
            max_batch_bytes,
            dropped: AtomicU64::new(0),
            bell: Arc::new(Bell { tx, signalled: AtomicBool::new(false) }),
            wake_rx: Mutex::new(rx),
        };
        ring.join();
        ring
    }

    /// The consumer's end of the wake-up socket: readable when a producer found its lane more
    /// than half full, put something in the shared queue or the batch queue, or ended. The consumer
    /// waits on it while it sleeps (so it may sleep long when q is quiet) and calls
    /// [`Ring::woken`] when it wakes. None once taken, or if the socket could not be made.
    pub fn pressure_socket(&self) -> Option<std::os::unix::net::UnixDatagram> {
        self.wake_rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The consumer woke: the next producer to find a lane over half full sends again.
    pub fn woken(&self) {
        self.bell.signalled.store(false, Ordering::Release);
    }

    /// Tells the consumer to wake, once until it has. A syscall, no lock: producers call it
    /// rarely (a lane crossing half full, a vector, the shared queue).
    #[cold]
    fn signal(&self) {
        self.bell.ring();
    }

    /// This thread's lane in this ring, if it has one.
    #[inline(always)]
    fn mine(&self) -> Option<&'static Lane> {
        MINE.try_with(|m| if m.ring.get() == self.id { m.lane.get() } else { None }).ok()?
    }

    /// One event into `lane`; false when it was full (the drop counted). Wakes the consumer when
    /// the lane passed half full.
    #[inline(always)]
    fn push_into(&self, lane: &Lane, ev: Event) -> bool {
        match lane.push(ev) {
            Pushed::Done => true,
            Pushed::OverHalf => {
                self.signal();
                true
            }
            Pushed::Full => self.full(),
        }
    }

    /// The record path's push: None when this thread has no lane in this ring yet (then
    /// [`Ring::push`], which makes one); else whether the event went in (false: full, counted).
    /// Panic-free by construction, like [`Lane::push`]: q's thread runs it outside
    /// `catch_unwind`.
    #[inline(always)]
    pub fn try_push(&self, ev: Event) -> Option<bool> {
        Some(self.push_into(self.mine()?, ev))
    }

    /// [`Ring::try_push`] for several events, with one look-up of this thread's lane: None (and
    /// nothing pushed) when it has none; each event that does not fit is dropped and counted.
    #[inline(always)]
    pub fn try_push_all(&self, evs: &[Event]) -> Option<()> {
        let lane = self.mine()?;
        for &ev in evs {
            self.push_into(lane, ev);
        }
        Some(())
    }

    /// Offers one event; false (and counted) when the lane is full. Never blocks; allocates only
    /// for a thread's first event.
    #[inline]
    pub fn push(&self, ev: Event) -> bool {
        if let Some(pushed) = self.try_push(ev) {
            return pushed;
        }
        match self.join() {
            Some(_) => self.try_push(ev).unwrap_or_else(|| self.push_shared(ev)),
            None => self.push_shared(ev),
        }
    }

    #[cold]
    fn full(&self) -> bool {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Gives this thread a lane of this ring (a freed one, or a new one while there are fewer
    /// than [`MAX_LANES`]); its previous lane, in this ring or an earlier one, is abandoned.
    #[cold]
    fn join(&self) -> Option<usize> {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.made.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_LANES).then_some(n + 1)).ok()?;
                self.lanes[i].get_or_init(|| Box::leak(Box::new(Lane::new(self.lane_capacity))));
                i
            }
        };
        let lane: &'static Lane = self.lanes[i].get()?;
        lane.set_state(State::Live);
        let kept = GOODBYE.try_with(|g| {
            if let Some(old) = g.lane.replace(Some(lane)) {
                old.set_state(State::Abandoned);
                if let Some(b) = g.bell.take().upgrade() {
                    b.ring();
                }
            }
            g.bell.set(Arc::downgrade(&self.bell));
        });
        if kept.is_err() || MINE.try_with(|m| (m.ring.set(self.id), m.lane.set(Some(lane)))).is_err() {
            // This thread is ending: give the lane straight back.
            lane.set_state(State::Abandoned);
            self.signal();
            return None;
        }
        Some(i)
    }

    /// The way in for a thread with no lane.
    #[cold]
    fn push_shared(&self, ev: Event) -> bool {
        if self.shared.push(ev).is_ok() {
            self.signal();
            return true;
        }
        self.full()
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
            self.signal();
            return true;
        }
        if reserved {
            self.batch_bytes.fetch_sub(bytes, Ordering::AcqRel);
        }
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        false
    }

    /// The lanes made so far.
    fn made(&self) -> impl Iterator<Item = &'static Lane> {
        self.lanes[..self.made.load(Ordering::Acquire)].iter().filter_map(|l| l.get().copied())
    }

    /// Pops up to `max` scalar events into `f`, lane by lane; returns how many. A lane whose
    /// thread has ended is freed once empty.
    pub fn drain(&self, max: usize, mut f: impl FnMut(Event)) -> usize {
        let _turn = self.consumer.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        while n < max {
            let Some(ev) = self.shared.pop() else { break };
            f(ev);
            n += 1;
        }
        for (i, l) in self.made().enumerate() {
            // The state is read before the lane: once abandoned, empty stays empty.
            let abandoned = l.state() == State::Abandoned;
            n += l.drain(max - n, &mut f);
            if abandoned && l.is_empty() {
                l.set_state(State::Free);
                let _ = self.free.push(i);
            }
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

    /// Scalar events waiting, in every lane and the shared queue.
    pub fn queued(&self) -> usize {
        self.made().map(|l| l.len()).sum::<usize>() + self.shared.len()
    }

    /// Vector values waiting.
    pub fn queued_batch_values(&self) -> usize {
        self.batch_bytes.load(Ordering::Acquire) / size_of::<f64>()
    }

    /// Scalar events one lane holds (`ring_capacity`).
    pub fn capacity(&self) -> usize {
        self.lane_capacity
    }

    /// Lanes a thread writes into now.
    pub fn lanes_live(&self) -> usize {
        self.made().filter(|l| l.state() == State::Live).count()
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

    #[test]
    fn each_thread_has_its_own_lane_and_an_ended_threads_events_are_kept() {
        let r = Ring::new(4, 0);
        let ev = |s| Event { series: s, op: Op::Inc, value: 1.0 };
        assert!(r.push(ev(0)));
        std::thread::scope(|s| {
            for t in 1..=3 {
                let r = &r;
                s.spawn(move || assert!((0..4).all(|_| r.push(ev(t))), "a lane of 4 for each thread"));
            }
        });
        // The three threads have ended; their lanes still hold their events.
        assert_eq!(r.queued(), 13);
        let mut seen = [0; 4];
        assert_eq!(r.drain(usize::MAX, |e| seen[e.series as usize] += 1), 13);
        assert_eq!(seen, [1, 4, 4, 4]);
        // A scoped thread's locals (its goodbye) may be torn down just after the scope has joined it.
        let t = std::time::Instant::now();
        while r.lanes_live() > 1 && t.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(1));
            r.drain(usize::MAX, |_| ());
        }
        assert_eq!(r.lanes_live(), 1, "ended threads' lanes are given back");
        assert_eq!(r.free.len(), 3, "and freed once drained");
        assert_eq!(r.dropped(), 0);
    }

    #[test]
    fn a_new_ring_gives_the_thread_a_new_lane() {
        let ev = Event { series: 1, op: Op::Inc, value: 1.0 };
        let old = Ring::new(2, 0);
        assert!(old.push(ev));
        let new = Ring::new(2, 0);
        assert!(new.push(ev) && new.push(ev));
        assert_eq!(new.drain(usize::MAX, |_| ()), 2);
        assert_eq!(old.drain(usize::MAX, |_| ()), 1, "the old ring's lane keeps what was pushed");
        assert_eq!(old.lanes_live(), 0, "and is freed: its producer moved on");
    }

    #[test]
    fn drain_stops_at_max_and_resumes() {
        let r = Ring::new(8, 0);
        for i in 0..6 {
            assert!(r.push(Event { series: i, op: Op::Inc, value: 1.0 }));
        }
        let mut got = Vec::new();
        assert_eq!(r.drain(4, |e| got.push(e.series)), 4);
        assert_eq!(r.queued(), 2);
        assert_eq!(r.drain(4, |e| got.push(e.series)), 2);
        assert_eq!(got, [0, 1, 2, 3, 4, 5], "one thread's events stay in order");
    }

    #[test]
    fn a_thread_that_ends_rings_the_bell_so_its_lane_comes_back_at_once() {
        let r = std::sync::Arc::new(Ring::new(1 << 10, 0));
        let bell = r.pressure_socket().expect("a socketpair");
        let mut buf = [0u8; 8];
        assert!(bell.recv(&mut buf).is_err(), "nothing rang yet");
        // A joined (not scoped) thread: `join` returns once the thread is gone, its thread-local
        // destructors included; a scope may end before they have run.
        let record = |series| {
            let r = r.clone();
            std::thread::spawn(move || assert!(r.push(Event { series, op: Op::Inc, value: 1.0 }))).join().unwrap();
        };
        record(1);
        assert_eq!(bell.recv(&mut buf).ok(), Some(1), "the thread's end rang");
        r.woken();
        assert_eq!(r.drain(usize::MAX, |_| ()), 1);
        assert_eq!(r.free.len(), 1, "drained and free for the next thread");
        record(2);
        assert_eq!(r.made.load(Ordering::Relaxed), 2, "the second thread reused the first one's lane");
    }
}
