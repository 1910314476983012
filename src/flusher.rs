//! The flusher thread: drains the ring into the aggregation state and answers the agent's
//! commands, on a current-thread tokio runtime it owns.
//!
//! It never touches the K API. While the ring has events it drains in bounded slices; when it is
//! empty it sleeps 1 ms, doubling up to 100 ms while nothing arrives, so an idle flusher wakes about
//! ten times a second (each wake-up costs tens of µs of CPU on a VM). It wakes early for a command,
//! for a push that is due, for a finished push round, for a vector batch, and when a producer
//! finds the ring more than half full, so a burst after a quiet spell is not dropped.

use crate::aggregate::Aggregator;
use crate::builtin::Own;
use crate::encode::{remote_write as rw_encode, text};
use crate::push::{Outcome, pushgateway, remote_write, textfile};
use crate::registry::Registry;
use crate::ring::Ring;
use crate::stats::Stats;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Events applied per slice before the flusher looks at its commands again.
const SLICE: usize = 16_384;
/// Sleep after a drain that found events.
const IDLE_MIN: Duration = Duration::from_millis(1);
/// Longest sleep while the ring stays empty.
const IDLE_MAX: Duration = Duration::from_millis(100);

/// What the agent asks of the flusher; each carries the channel for its answer.
pub enum Command {
    /// Drain everything recorded so far, then render the text exposition.
    Text(std_mpsc::Sender<String>),
    /// Drain and push to every target now; answer with each target's outcome.
    Push(std_mpsc::Sender<Vec<Outcome>>),
    /// Drain, push the final state within the exit deadline, then stop the thread.
    Stop(std_mpsc::Sender<Vec<Outcome>>),
}

/// Where pushes go.
pub struct Targets {
    /// Pushgateway.
    pub pushgateway: Option<pushgateway::Target>,
    /// Remote-write receivers.
    pub remote_write: Vec<remote_write::Target>,
    /// Textfile path.
    pub textfile: Option<std::path::PathBuf>,
    /// Labels on every remote-write series: job, instance, static labels.
    pub rw_labels: Vec<(String, String)>,
    /// Push interval.
    pub interval: Duration,
    /// Budget of a push round (retries stop then).
    pub round_deadline: Duration,
    /// Budget of the final push.
    pub exit_deadline: Duration,
    /// DELETE the Pushgateway group after the final push.
    pub delete_on_exit: bool,
}

impl Targets {
    /// Target names, as outcomes and self-metrics carry them.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        v.extend(self.textfile.as_ref().map(|_| "textfile".to_string()));
        v.extend(self.pushgateway.as_ref().map(|_| "pushgateway".to_string()));
        v.extend(self.remote_write.iter().map(|t| t.cfg.name.clone()));
        v
    }

    fn is_empty(&self) -> bool {
        self.pushgateway.is_none() && self.remote_write.is_empty() && self.textfile.is_none()
    }
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
    /// Delivery.
    pub targets: Arc<Targets>,
    /// Called as each push round starts: asks q's main thread for a process sample, which then
    /// rides in the next push (the q boundary wires it to `sd1`; None in plain Rust).
    pub on_round: Option<Hook>,
}

/// A callback the flusher runs on its own thread.
pub type Hook = Arc<dyn Fn() + Send + Sync>;

/// Handle to the running thread.
pub struct Flusher {
    tx: mpsc::UnboundedSender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the `kdbprom-flusher` thread.
    pub fn start(shared: Shared) -> std::io::Result<Flusher> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new().name("kdbprom-flusher".into()).spawn(move || rt.block_on(run(shared, rx)))?;
        Ok(Flusher { tx, thread: Some(thread) })
    }

    /// Sends a command; false if the thread is gone.
    pub fn send(&self, c: Command) -> bool {
        self.tx.send(c).is_ok()
    }

    /// Pushes the final state and stops the thread, waiting at most `timeout`.
    pub fn stop(&mut self, timeout: Duration) -> Option<Vec<Outcome>> {
        let (tx, rx) = std_mpsc::channel();
        let outcomes = if self.send(Command::Stop(tx)) { rx.recv_timeout(timeout).ok() } else { None };
        if outcomes.is_some() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        outcomes
    }
}

struct State {
    shared: Shared,
    agg: Aggregator,
    started: Instant,
    encoder: rw_encode::Encoder,
    last_ts: Vec<i64>,
    /// Signalled by a round when it ends, so its outcomes are handed over without waiting out a sleep.
    round_done: Arc<tokio::sync::Notify>,
    /// Pushes ok, pushes failed and bytes, per target (the order of `own.targets`).
    per_target: Vec<[u64; 3]>,
    /// The failure last logged per target, so each cause is logged once, not every interval.
    logged: Vec<Option<String>>,
}

type Round = tokio::task::JoinHandle<Vec<Outcome>>;

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
        ];
        for (sid, v) in vals {
            self.agg.put(reg, sid, v);
        }
        for (t, [ok, failed, bytes]) in o.targets.iter().zip(&self.per_target) {
            for (sid, v) in [(t.ok, ok), (t.failed, failed), (t.bytes, bytes)] {
                self.agg.put(reg, sid, *v as f64);
            }
        }
    }

    /// Encodes the current state for every target and starts sending it; the textfile is written here.
    fn start_round(&mut self, deadline: Instant) -> Round {
        if let Some(hook) = &self.shared.on_round {
            hook();
        }
        self.drain();
        self.update_own();
        let reg = self.shared.registry.clone();
        let targets = self.shared.targets.clone();
        let snap = self.agg.snapshot(&reg);
        let samples = snap.sample_count() as u64;
        let mut done = Vec::new();
        let text = (targets.pushgateway.is_some() || targets.textfile.is_some()).then(|| text::encode(&snap, &self.shared.const_labels));
        if let (Some(path), Some(t)) = (&targets.textfile, &text) {
            done.push(textfile::write(path, t, samples));
        }
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        self.last_ts.resize(targets.remote_write.len(), 0);
        let bodies: Vec<Vec<rw_encode::Request>> = targets
            .remote_write
            .iter()
            .zip(self.last_ts.iter_mut())
            .map(|(t, last)| {
                let ts = remote_write::next_ts(last, now_ms);
                self.encoder.encode(&snap, &targets.rw_labels, ts, t.cfg.queue.max_samples_per_send)
            })
            .collect();
        let text = Arc::new(text.unwrap_or_default());
        let round_done = self.round_done.clone();
        tokio::spawn(async move {
            // Every target at once: a slow or dead receiver must not use up the others' deadline.
            let mut set = tokio::task::JoinSet::new();
            if targets.pushgateway.is_some() {
                let (t, text) = (targets.clone(), text.clone());
                set.spawn(async move { (0, t.pushgateway.as_ref().expect("checked").push(&text, samples, deadline).await) });
            }
            for (i, b) in bodies.into_iter().enumerate() {
                let t = targets.clone();
                set.spawn(async move { (i + 1, t.remote_write[i].push(&b, deadline).await) });
            }
            let mut sent: Vec<(usize, Outcome)> = set.join_all().await;
            sent.sort_by_key(|(i, _)| *i);
            done.extend(sent.into_iter().map(|(_, o)| o));
            round_done.notify_one();
            done
        })
    }

    fn account(&mut self, outcomes: &[Outcome]) {
        let st = self.shared.stats.clone();
        self.per_target.resize(self.shared.own.targets.len(), [0; 3]);
        for o in outcomes {
            Stats::add(if o.ok { &st.pushes_ok } else { &st.pushes_failed }, 1);
            Stats::add(&st.bytes_sent, o.bytes);
            Stats::add(&st.samples_sent, o.samples);
            if let Some(i) = self.shared.own.targets.iter().position(|t| t.name == o.target) {
                let c = &mut self.per_target[i];
                c[if o.ok { 0 } else { 1 }] += 1;
                c[2] += o.bytes;
                self.agg.observe(&self.shared.registry, self.shared.own.targets[i].duration, o.millis / 1e3);
                self.log(i, o);
            }
        }
    }

    /// Writes a failure to stderr (q's console or log) once per change of cause, and a recovery once.
    fn log(&mut self, i: usize, o: &Outcome) {
        self.logged.resize(self.shared.own.targets.len(), None);
        let cause = (!o.ok).then(|| if o.status > 0 { format!("HTTP {}: {}", o.status, o.message) } else { o.message.clone() });
        if cause == self.logged[i] {
            return;
        }
        match &cause {
            Some(c) => eprintln!("kdbprom: push to {} failed: {c}", o.target),
            None => eprintln!("kdbprom: push to {} succeeds again", o.target),
        }
        self.logged[i] = cause;
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
    let targets = shared.targets.clone();
    let mut st = State {
        shared,
        agg: Aggregator::new(slices),
        started: Instant::now(),
        encoder: rw_encode::Encoder::default(),
        last_ts: Vec::new(),
        round_done: Arc::default(),
        per_target: Vec::new(),
        logged: Vec::new(),
    };
    let round_done = st.round_done.clone();
    let ring = st.shared.ring.clone();
    // The first push goes out at once, not one interval after init.
    let mut next_push = Instant::now();
    let mut round: Option<(Round, Vec<std_mpsc::Sender<Vec<Outcome>>>)> = None;
    let mut waiting: Vec<std_mpsc::Sender<Vec<Outcome>>> = Vec::new();
    let mut stopping: Option<std_mpsc::Sender<Vec<Outcome>>> = None;
    let mut idle = IDLE_MIN;
    loop {
        // A bug here must not end delivery for the life of the q process: contain it and go on.
        let busy = contained(|| st.drain()).unwrap_or(false);
        if round.as_ref().is_some_and(|(r, _)| r.is_finished()) {
            let (r, replies) = round.take().expect("checked above");
            let outcomes = r.await.unwrap_or_default();
            st.account(&outcomes);
            for reply in replies {
                let _ = reply.send(outcomes.clone());
            }
        }
        if stopping.is_some() {
            // The final push supersedes a round still retrying a slow or dead receiver: a batch
            // job must exit within exit_deadline_ms, not after the interval round's deadline.
            if let Some((r, replies)) = round.take() {
                r.abort();
                let aborted: Vec<Outcome> = targets
                    .names()
                    .iter()
                    .map(|t| Outcome { message: "superseded by the final push of .prom.stop[]".into(), ..Outcome::new(t) })
                    .collect();
                for reply in replies {
                    let _ = reply.send(aborted.clone());
                }
            }
        }
        if round.is_none() {
            if let Some(reply) = stopping.take() {
                let deadline = Instant::now() + targets.exit_deadline;
                let mut outcomes = match contained(|| (!targets.is_empty()).then(|| st.start_round(deadline))).flatten() {
                    Some(r) => r.await.unwrap_or_default(),
                    None => Vec::new(),
                };
                if let (true, Some(pg)) = (targets.delete_on_exit, &targets.pushgateway) {
                    outcomes.push(pg.delete(deadline).await);
                }
                st.account(&outcomes);
                for r in waiting.drain(..) {
                    let _ = r.send(outcomes.clone());
                }
                let _ = reply.send(outcomes);
                return;
            }
            let due = !targets.is_empty() && Instant::now() >= next_push;
            if due || !waiting.is_empty() {
                if due {
                    // Absolute deadlines: the schedule does not drift by the time a push takes.
                    next_push += targets.interval;
                    if next_push < Instant::now() {
                        next_push = Instant::now() + targets.interval;
                    }
                }
                let replies = std::mem::take(&mut waiting);
                match contained(|| st.start_round(Instant::now() + targets.round_deadline)) {
                    Some(r) => round = Some((r, replies)),
                    None => replies.into_iter().for_each(|r| drop(r.send(Vec::new()))),
                }
            }
        }
        idle = if busy { IDLE_MIN } else { (idle * 2).min(IDLE_MAX) };
        let sleep = if busy { Duration::ZERO } else { idle.min(next_push.saturating_duration_since(Instant::now()).max(IDLE_MIN)) };
        tokio::select! {
            biased;
            cmd = rx.recv() => match cmd {
                Some(Command::Text(reply)) => { if let Some(t) = contained(|| st.text()) { let _ = reply.send(t); } }
                Some(Command::Push(reply)) => waiting.push(reply),
                Some(Command::Stop(reply)) => stopping = Some(reply),
                // The agent is gone: nothing left to serve.
                None => return,
            },
            _ = tokio::time::sleep(sleep) => {}
            _ = round_done.notified() => {}
            _ = ring.pressure() => {}
        }
    }
}

/// Runs `f`, turning a panic into None (the default hook has already printed it).
fn contained<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}
