//! The flusher thread: drains the ring into the aggregation state and answers the agent's
//! commands, on a current-thread tokio runtime it owns.
//!
//! It never touches the K API. While the ring has events it drains in bounded slices; when it is
//! empty it sleeps until something is due: the next push, the next summary time slice (so an
//! observation lands in the slice it was made in), or the end of a stopping round's grace. It
//! wakes early for a command, for a finished push round, and when a producer rings (a lane more
//! than half full, a vector batch, the shared queue), so a burst after a quiet spell is not
//! dropped. An idle q process's flusher therefore wakes once an interval, not ten times a second.

use crate::aggregate::Aggregator;
use crate::encode::text;
use crate::push::Outcome;
use crate::push::deadline::Deadline;
use crate::push::delivery::Delivery;
use crate::push::pipeline::{Pipeline, Sending};
use crate::push::round::Round;
use crate::registry::Registry;
use crate::ring::Ring;
use crate::stats::Stats;
use crate::telemetry::{self, Own, RingFigures, TargetSeries};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Events applied per slice before the flusher looks at its commands again.
const SLICE: usize = 16_384;
/// Shortest sleep when something is due: a timer that would fire at once.
const IDLE_MIN: Duration = Duration::from_millis(1);
/// Part of the exit deadline kept for writing the spool after the final push gives up.
const SPOOL_RESERVE_MAX: Duration = Duration::from_millis(250);

/// What the agent asks of the flusher; each carries the channel for its answer.
pub enum Command {
    /// Drain everything recorded so far, then render the text exposition.
    Text(std_mpsc::Sender<String>),
    /// Drain and push to every target now; answer with each target's outcome.
    Push(std_mpsc::Sender<Vec<Outcome>>),
    /// Drain, push the final state within the exit deadline, spool what is left, then stop.
    Stop(std_mpsc::Sender<Vec<Outcome>>),
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
    pub delivery: Delivery,
    /// Each target's self-metric series, by slot id.
    pub target_series: Vec<TargetSeries>,
    /// The process collector's series, when `process_metrics` is on.
    pub process: Option<crate::process::Series>,
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
        if outcomes.is_some()
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
        outcomes
    }
}

/// What a round hands back: each pipeline it borrowed, by slot id, with its outcome.
type Returned = Vec<(usize, Box<dyn Pipeline>, Outcome)>;

/// A push round in flight: one task sending to every target at once, and its deadline.
struct InFlight {
    task: tokio::task::JoinHandle<Returned>,
    deadline: Deadline,
}

/// What the flusher is doing besides draining.
enum Phase {
    /// No round in flight.
    Idle,
    /// A round in flight, and the `.prom.push[]` callers waiting for its outcomes.
    Pushing(InFlight, Vec<std_mpsc::Sender<Vec<Outcome>>>),
}

/// A pipeline's send that a panic ends with None instead of taking the pipeline with it: the
/// round still hands the pipeline back, its queue and accounts intact up to the panic.
struct Contained<'a>(Sending<'a>);

impl std::future::Future for Contained<'_> {
    type Output = Option<Outcome>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Outcome>> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(o)) => std::task::Poll::Ready(Some(o)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(None),
        }
    }
}

struct State {
    shared: Shared,
    agg: Aggregator,
    started: Instant,
    /// `.prom.text[]`'s, kept between calls: it writes what did not change as it was.
    text: text::TextEncoder,
    /// Signalled by a round when it ends, so its outcomes are handed over without waiting out a sleep.
    round_done: Arc<tokio::sync::Notify>,
    /// The process collector's `/proc` reader, when `process_metrics` is on.
    proc_reader: Option<crate::process::Reader>,
}

impl State {
    /// When the summary time slice after `now` starts.
    fn next_slice(&self, now: Instant) -> Instant {
        let slice = self.shared.slice.max(Duration::from_millis(1));
        let n = now.saturating_duration_since(self.started).as_nanos() / slice.as_nanos() + 1;
        self.started + slice * u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Applies everything queued; true if anything was.
    fn drain(&mut self) -> bool {
        let s = &self.shared;
        let epoch = (self.started.elapsed().as_nanos() / s.slice.as_nanos().max(1)) as u64;
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
        // What was waiting was recorded before now, so it went into the slice in force at the last
        // drain; the new slice starts after it. The flusher wakes at every slice's end, so an
        // observation lands in its own slice, give or take that wake-up's lateness.
        self.agg.set_epoch(epoch);
        s.stats.applied.store(self.agg.applied(), std::sync::atomic::Ordering::Relaxed);
        any
    }

    /// Writes the ring's, the overflow series' and every idle target's figures into the self-metrics,
    /// and the process collector's: read afresh when `fresh` (a scrape, the final round), else only
    /// once its last reading is [`crate::process::MAX_AGE`] old (the aggregation state keeps it till then).
    fn publish(&mut self, fresh: bool) {
        let s = &self.shared;
        let reg = &s.registry;
        let dropped = s.ring.dropped();
        let queued = (s.ring.queued() + s.ring.queued_batch_values()) as u64;
        let ring = RingFigures { recorded: self.agg.applied() + queued + dropped, dropped, queued, series: reg.live_series() as u64 };
        telemetry::publish_ring(&mut self.agg, reg, &s.own, ring);
        telemetry::publish_overflow(&mut self.agg, reg, &s.own);
        if let (Some(p), Some(r)) = (&s.process, &mut self.proc_reader) {
            let now = Instant::now();
            if let Some(f) = if fresh { Some(r.fresh(now)) } else { r.due(now) } {
                crate::process::publish(&mut self.agg, reg, p, &f);
            }
        }
        for slot in &s.delivery.slots {
            telemetry::publish_target(&mut self.agg, reg, &s.target_series[slot.id], &slot.ledger.get());
        }
    }

    /// Encodes the current state into every pipeline, then lends them to a task that sends
    /// them all at once until `deadline`.
    fn start_round(&mut self, deadline: Instant, last: bool) -> InFlight {
        if let Some(hook) = &self.shared.on_round {
            hook();
        }
        self.drain();
        self.publish(last);
        let reg = self.shared.registry.clone();
        let snap = self.agg.snapshot(&reg);
        let ended = self.agg.take_ended(&reg);
        let d = &mut self.shared.delivery;
        let round = Round::new(&snap, &ended, &d.rw_labels, &self.shared.const_labels, d.clock.unix_ms(), last);
        let mut lent = Vec::new();
        for slot in &mut d.slots {
            // Between rounds every slot holds its pipeline: a round always hands them back.
            if let Some(mut p) = slot.take() {
                p.offer(&round);
                lent.push((slot.id, p));
            }
        }
        let deadline = Deadline::at(deadline);
        let round_done = self.round_done.clone();
        let dl = deadline.clone();
        let task = tokio::spawn(async move {
            // Every target at once: a slow or dead receiver must not use up the others' deadline.
            let mut set = tokio::task::JoinSet::new();
            for (id, mut p) in lent {
                let dl = dl.clone();
                set.spawn(async move {
                    let o = Contained(p.send(&dl, last)).await;
                    (id, p, o)
                });
            }
            let mut back = Vec::new();
            while let Some(r) = set.join_next().await {
                match r {
                    Ok((id, p, o)) => {
                        let o = o.unwrap_or_else(|| Outcome {
                            message: "the push panicked (a bug: please report it)".into(),
                            ..Outcome::new("")
                        });
                        back.push((id, p, o));
                    }
                    // Only a panic outside the pipeline's own send can lose it; the default hook printed it.
                    Err(_) => crate::error!("a push task ended without handing its pipeline back; that target stops delivering"),
                }
            }
            back.sort_by_key(|(id, _, _)| *id);
            round_done.notify_one();
            back
        });
        InFlight { task, deadline }
    }

    /// Puts a finished round's pipelines back in their slots; their outcomes, named, in slot order.
    fn give_back(&mut self, returned: Returned) -> Vec<(usize, Outcome)> {
        let slots = &mut self.shared.delivery.slots;
        returned
            .into_iter()
            .map(|(id, p, mut o)| {
                slots[id].put_back(p);
                if o.target.is_empty() {
                    o.target = slots[id].name.clone();
                }
                (id, o)
            })
            .collect()
    }

    /// Counts finished pushes per target and logs changes of cause.
    fn account(&mut self, outcomes: &[(usize, Outcome)]) {
        let reg = self.shared.registry.clone();
        for (id, o) in outcomes {
            self.shared.delivery.slots[*id].finish(o);
            telemetry::push_done(&mut self.agg, &reg, &self.shared.target_series[*id], o);
        }
    }

    /// The final round: push within the exit deadline less the spool's reserve, spool what is
    /// left, let each pipeline say goodbye (the Pushgateway's DELETE), and close the accounts.
    async fn final_round(&mut self, exit: Instant) -> Vec<Outcome> {
        let d = &self.shared.delivery;
        if d.slots.is_empty() {
            return Vec::new();
        }
        let reserve = if d.spool.is_some() { (d.exit_deadline / 4).min(SPOOL_RESERVE_MAX) } else { Duration::ZERO };
        let Some(round) = contained(|| self.start_round(exit - reserve, true)) else { return Vec::new() };
        let returned = round.task.await.unwrap_or_default();
        let mut outcomes = self.give_back(returned);
        let d = &mut self.shared.delivery;
        let mut budget = d.spool.as_ref().map_or(0, |(_, max)| *max);
        let to = d.spool.as_ref().map(|(to, _)| to);
        let exit = Deadline::at(exit);
        let mut goodbyes = Vec::new();
        for (id, o) in &mut outcomes {
            let name = d.slots[*id].name.clone();
            let Some(p) = d.slots[*id].pipeline() else { continue };
            if let Some(note) = p.spool(to, &mut budget) {
                o.message = if o.message.is_empty() { note } else { format!("{}; {note}", o.message) };
            }
            if let Some(bye) = p.on_exit(o, &exit) {
                let mut bye = bye.await;
                bye.target = name;
                goodbyes.push((*id, bye));
            }
        }
        outcomes.extend(goodbyes);
        self.account(&outcomes);
        outcomes.into_iter().map(|(_, o)| o).collect()
    }

    fn text(&mut self) -> String {
        self.drain();
        self.publish(true);
        let reg = self.shared.registry.clone();
        let snap = self.agg.snapshot(&reg);
        self.text.encode(&snap, &self.shared.const_labels).to_owned()
    }
}

async fn run(shared: Shared, mut rx: mpsc::UnboundedReceiver<Command>) {
    let slices = shared.slices;
    let proc_reader = shared.process.is_some().then(crate::process::Reader::new);
    let mut st = State {
        shared,
        agg: Aggregator::new(slices),
        started: Instant::now(),
        text: text::TextEncoder::default(),
        round_done: Arc::default(),
        proc_reader,
    };
    let round_done = st.round_done.clone();
    let ring = st.shared.ring.clone();
    let pressure = ring.pressure_socket().and_then(|s| tokio::net::UnixDatagram::from_std(s).ok());
    let (interval, round_deadline) = (st.shared.delivery.interval, st.shared.delivery.round_deadline);
    let any_target = !st.shared.delivery.slots.is_empty();
    // The first push goes out at once, not one interval after init.
    let mut next_push = Instant::now();
    let mut phase = Phase::Idle;
    let mut waiting: Vec<std_mpsc::Sender<Vec<Outcome>>> = Vec::new();
    // `.prom.stop[]`'s reply, and when it was asked: the exit deadline runs from then.
    let mut stopping: Option<(std_mpsc::Sender<Vec<Outcome>>, Instant)> = None;
    let exit_deadline = st.shared.delivery.exit_deadline;
    loop {
        // A bug here must not end delivery for the life of the q process: contain it and go on.
        let busy = contained(|| st.drain()).unwrap_or(false);
        if let Phase::Pushing(r, _) = &phase {
            // A round in flight when stop comes gets a quarter of the exit deadline to finish (a
            // batch job that stops at once after init must not lose its healthy first push):
            // its deadline is brought forward, and every wait in it ends then.
            if let Some((_, at)) = &stopping {
                r.deadline.lower(*at + exit_deadline / 4);
            }
            if r.task.is_finished() {
                let Phase::Pushing(r, replies) = std::mem::replace(&mut phase, Phase::Idle) else { unreachable!() };
                let returned = r.task.await.unwrap_or_default();
                let outcomes = st.give_back(returned);
                st.account(&outcomes);
                let outcomes: Vec<Outcome> = outcomes.into_iter().map(|(_, o)| o).collect();
                for reply in replies {
                    let _ = reply.send(outcomes.clone());
                }
            }
        }
        if matches!(phase, Phase::Idle) {
            if let Some((reply, asked)) = stopping.take() {
                let outcomes = st.final_round(asked + exit_deadline).await;
                for r in waiting.drain(..) {
                    let _ = r.send(outcomes.clone());
                }
                let _ = reply.send(outcomes);
                return;
            }
            let due = any_target && Instant::now() >= next_push;
            if due || !waiting.is_empty() {
                if due {
                    // Absolute deadlines: the schedule does not drift by the time a push takes.
                    next_push += interval;
                    if next_push < Instant::now() {
                        next_push = Instant::now() + interval;
                    }
                }
                let replies = std::mem::take(&mut waiting);
                match contained(|| st.start_round(Instant::now() + round_deadline, false)) {
                    Some(r) => phase = Phase::Pushing(r, replies),
                    None => replies.into_iter().for_each(|r| drop(r.send(Vec::new()))),
                }
            }
        }
        // Until the next thing due: a summary slice, a push, the end of a stopping round's grace.
        let now = Instant::now();
        let mut wake = st.next_slice(now);
        if any_target {
            wake = wake.min(next_push);
        }
        if let Some((_, asked)) = &stopping {
            wake = wake.min(*asked + exit_deadline / 4);
        }
        let sleep = if busy { Duration::ZERO } else { wake.saturating_duration_since(now).max(IDLE_MIN) };
        tokio::select! {
            biased;
            cmd = rx.recv() => match cmd {
                Some(Command::Text(reply)) => { if let Some(t) = contained(|| st.text()) { let _ = reply.send(t); } }
                Some(Command::Push(reply)) => waiting.push(reply),
                Some(Command::Stop(reply)) => stopping = Some((reply, Instant::now())),
                // The agent is gone: nothing left to serve.
                None => return,
            },
            _ = tokio::time::sleep(sleep) => {}
            _ = round_done.notified() => {}
            _ = pressed(pressure.as_ref()) => ring.woken(),
        }
    }
}

/// Resolves when a producer rang (a lane past half full, a vector, the shared queue, a thread's end), having read
/// what it sent; never without the socket.
async fn pressed(sock: Option<&tokio::net::UnixDatagram>) {
    match sock {
        Some(s) => {
            let mut buf = [0u8; 64];
            let _ = s.recv(&mut buf).await;
        }
        None => std::future::pending().await,
    }
}

/// Runs `f`, turning a panic into None (the default hook has already printed it).
fn contained<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}
