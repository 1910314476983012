//! The flusher thread: drains the ring into the aggregation state and answers the agent's
//! commands, on a current-thread tokio runtime it owns.
//!
//! It never touches the K API. While the ring has events it drains in bounded slices; when it is
//! empty it sleeps 1 ms, so an idle flusher costs about a thousand wake-ups a second and a busy
//! one keeps a 64 Ki ring from filling below ~60 M events/s.

use crate::aggregate::Aggregator;
use crate::builtin::Own;
use crate::encode::text;
use crate::registry::Registry;
use crate::ring::Ring;
use crate::stats::Stats;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Events applied per slice before the flusher looks at its commands again.
const SLICE: usize = 16_384;

/// What the agent asks of the flusher; each carries the channel for its answer.
pub enum Command {
    /// Drain everything recorded so far, then render the text exposition.
    Text(std_mpsc::Sender<String>),
    /// Drain, then stop the thread.
    Stop(std_mpsc::Sender<()>),
}

/// What the flusher shares with the agent.
pub struct Shared {
    /// Families and series.
    pub registry: Arc<Registry>,
    /// The ring.
    pub ring: Arc<Ring>,
    /// Running totals.
    pub stats: Arc<Stats>,
    /// Self-metric series.
    pub own: Own,
    /// Static labels for the text exposition.
    pub const_labels: Vec<(String, String)>,
    /// Length of a summary time slice.
    pub slice: Duration,
    /// Summary slices per window.
    pub slices: usize,
}

/// Handle to the running thread.
pub struct Flusher {
    tx: mpsc::UnboundedSender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the `kdbprom-flusher` thread.
    pub fn start(shared: Shared) -> std::io::Result<Flusher> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new().name("kdbprom-flusher".into()).spawn(move || rt.block_on(run(shared, rx)))?;
        Ok(Flusher { tx, thread: Some(thread) })
    }

    /// Sends a command; false if the thread is gone.
    pub fn send(&self, c: Command) -> bool {
        self.tx.send(c).is_ok()
    }

    /// Stops the thread and waits for it, at most `timeout`.
    pub fn stop(&mut self, timeout: Duration) -> bool {
        let (tx, rx) = std_mpsc::channel();
        let stopped = self.send(Command::Stop(tx)) && rx.recv_timeout(timeout).is_ok();
        if stopped {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        stopped
    }
}

struct State {
    shared: Shared,
    agg: Aggregator,
    started: Instant,
}

impl State {
    /// Applies everything queued; true if anything was.
    fn drain(&mut self) -> bool {
        let s = &self.shared;
        let epoch = (self.started.elapsed().as_nanos() / s.slice.as_nanos().max(1)) as u64;
        self.agg.set_epoch(epoch);
        let mut any = false;
        loop {
            let reg = &s.registry;
            let agg = &mut self.agg;
            let n = s.ring.drain(SLICE, |ev| agg.apply(reg, ev));
            let mut b = 0;
            while let Some(batch) = s.ring.pop_batch() {
                agg.apply_batch(reg, &batch);
                b += 1;
            }
            any |= n + b > 0;
            if n < SLICE {
                break;
            }
        }
        s.stats.applied.store(self.agg.applied(), std::sync::atomic::Ordering::Relaxed);
        any
    }

    fn update_own(&mut self) {
        let s = &self.shared;
        let reg = &s.registry;
        let dropped = s.ring.dropped();
        let queued = (s.ring.queued() + s.ring.queued_batch_values()) as u64;
        let o = &s.own;
        let vals = [
            (o.recorded, (self.agg.applied() + queued + dropped) as f64),
            (o.dropped, dropped as f64),
            (o.queued, queued as f64),
            (o.series, reg.live_series() as f64),
            (o.pushes_ok, Stats::get(&s.stats.pushes_ok) as f64),
            (o.pushes_failed, Stats::get(&s.stats.pushes_failed) as f64),
            (o.bytes, Stats::get(&s.stats.bytes_sent) as f64),
        ];
        for (sid, v) in vals {
            self.agg.put(reg, sid, v);
        }
    }

    fn text(&mut self) -> String {
        self.drain();
        self.update_own();
        let reg = self.shared.registry.clone();
        let snap = self.agg.snapshot(&reg);
        text::encode(&snap, &self.shared.const_labels)
    }
}

async fn run(shared: Shared, mut rx: mpsc::UnboundedReceiver<Command>) {
    let slices = shared.slices;
    let mut st = State { shared, agg: Aggregator::new(slices), started: Instant::now() };
    loop {
        let busy = st.drain();
        let wait = if busy { Duration::ZERO } else { Duration::from_millis(1) };
        tokio::select! {
            biased;
            cmd = rx.recv() => match cmd {
                Some(Command::Text(reply)) => { let _ = reply.send(st.text()); }
                Some(Command::Stop(reply)) => {
                    st.drain();
                    let _ = reply.send(());
                    return;
                }
                // The agent is gone: nothing left to serve.
                None => return,
            },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
