//! The agent: the whole API the q boundary calls, in plain Rust.
//!
//! Record methods run on q's threads: they validate, build a 16-byte event and push it into the
//! ring, with no lock, no allocation (for scalars) and no I/O. Everything else (declarations,
//! text, stop) may lock and wait on the flusher, within a timeout.

use crate::builtin::{self, Builtins, CONNECTIONS, HANDLERS, MEMORY, ProcessInfo};
use crate::config::{Config, ConfigError};
use crate::event::{Batch, Event, Op, SeriesId};
use crate::flusher::{Command, Flusher, Shared};
use crate::push::Outcome;
use crate::push::accounting::Ledger;
use crate::push::delivery::{BuildError, Delivery};
use crate::registry::{FamilyId, Kind, Limits, Registry, RegistryError};
use crate::ring::Ring;
use crate::stats::{Stats, StatsView};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

/// Why a record, a declaration or a command was refused. The text is what q shows after `prom: `.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AgentError {
    /// Declaration, lookup or cardinality problem.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A counter given a negative increment.
    #[error("counter {0} cannot decrease")]
    Decrease(String),
    /// A null, NaN or infinity.
    #[error("{verb} {metric}: value{at} is null or infinite")]
    NotFinite {
        /// The operation (`inc`, `set`, `observe`, ...).
        verb: &'static str,
        /// The metric's name.
        metric: String,
        /// Where in a vector (empty for an atom).
        at: String,
    },
    /// An operation the metric type does not have.
    #[error("{kind} {metric} does not support {verb}")]
    WrongOp {
        /// The metric's type.
        kind: &'static str,
        /// The metric's name.
        metric: String,
        /// The operation asked for.
        verb: &'static str,
    },
    /// `set` given a vector.
    #[error("set {0}: takes one value, not a vector")]
    SetVector(String),
    /// Handler or connection index outside the table.
    #[error("{what} index {index} is out of range 0..{max}")]
    Index {
        /// What was indexed (`handler`, `connection kind`).
        what: &'static str,
        /// The index given.
        index: i64,
        /// The table's length.
        max: usize,
    },
    /// `.prom.stop[]` was called.
    #[error("stopped: call .prom.init again to restart")]
    Stopped,
    /// The flusher thread could not start or did not answer.
    #[error("flusher {0}")]
    Flusher(&'static str),
    /// A target's HTTP client could not be built (TLS files).
    #[error(transparent)]
    Client(#[from] crate::push::client::ClientError),
}

/// What [`Agent::ask`] says when the flusher did not answer in time.
const TIMED_OUT: &str = "did not answer in time";

/// One running kdbprom instance.
pub struct Agent {
    config: Config,
    instance: String,
    registry: Arc<Registry>,
    ring: Arc<Ring>,
    stats: Arc<Stats>,
    builtins: Builtins,
    flusher: Mutex<Option<Flusher>>,
    stopped: AtomicBool,
    /// Handles whose opening was counted.
    handles: crate::handles::Handles,
    /// `.prom.collect`'s last results.
    collectors: crate::collect::Collectors,
    /// The lock of this job and instance in the state directory, released at stop.
    lock: Mutex<Option<crate::state::InstanceLock>>,
    /// Every target's name and accounting, in configuration order.
    ledgers: Vec<(String, Ledger)>,
}

impl Agent {
    /// Declares the built-ins and starts the flusher.
    pub fn start(config: Config, process: &ProcessInfo) -> Result<Agent, AgentError> {
        Agent::start_with(config, process, None)
    }

    /// [`Agent::start`] with a hook the flusher calls as each push round starts (the q boundary
    /// uses it to ask q's main thread for a process sample).
    pub fn start_with(config: Config, process: &ProcessInfo, on_round: Option<crate::flusher::Hook>) -> Result<Agent, AgentError> {
        let mut reserved: std::collections::HashSet<String> = config.labels.keys().cloned().collect();
        reserved.extend(["job".to_string(), "instance".to_string()]);
        if let Some(pg) = &config.pushgateway {
            reserved.extend(pg.grouping.keys().cloned());
        }
        let limits = Limits {
            max_series: config.max_series,
            max_series_per_metric: config.max_series_per_metric,
            on_series_limit: config.on_series_limit,
            reserved_labels: reserved,
        };
        let instance = config.instance.clone().unwrap_or_else(|| process.instance());
        let registry = Arc::new(Registry::new(limits));
        let builtins = builtin::declare_with(&registry, process, config.native_request_histograms)?;
        if config.collect_tables {
            registry.declare(
                "kdb_table_rows",
                "Rows of the root namespace's in-memory tables (collect_tables).",
                Kind::Gauge,
                &["table"],
                &[],
            )?;
        }
        let delivery = Delivery::build(&config, &instance)?;
        let process_series = if config.process_metrics { Some(crate::process::declare(&registry, &crate::process::read())?) } else { None };
        let target_series = delivery.slots.iter().map(|s| crate::telemetry::target(&registry, &s.name)).collect::<Result<Vec<_>, _>>()?;
        let ledgers = delivery.ledgers();
        let ring = Arc::new(Ring::new(config.ring_capacity, config.ring_vector_bytes));
        let stats = Arc::new(Stats::default());
        let slices = config.summary_age_buckets;
        let shared = Shared {
            registry: registry.clone(),
            ring: ring.clone(),
            stats: stats.clone(),
            own: builtins.own.clone(),
            const_labels: config.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            slice: Duration::from_millis(config.summary_max_age_ms / slices as u64),
            slices,
            delivery,
            target_series,
            process: process_series,
            on_round,
        };
        let lock = instance_lock(&config.job, &instance);
        let flusher = Flusher::start(shared).map_err(|_| AgentError::Flusher("thread could not start"))?;
        let agent = Agent {
            config,
            instance,
            registry,
            ring,
            stats,
            builtins,
            flusher: Mutex::new(Some(flusher)),
            stopped: AtomicBool::new(false),
            handles: Default::default(),
            collectors: Default::default(),
            lock: Mutex::new(lock),
            ledgers,
        };
        agent.set_process(process)?;
        Ok(agent)
    }

    fn set_process(&self, p: &ProcessInfo) -> Result<(), AgentError> {
        let info = self.registry.builtin_series("kdb_info", &[&p.version, &p.release_date, &p.os, &p.cores.to_string()])?;
        self.record(info, Op::Set, 1.0)?;
        self.record(self.registry.by_name("process_start_time_seconds")?, Op::Set, p.start_time)?;
        if let Some(t) = p.license_expiry {
            self.record(self.registry.by_name("kdb_license_expiry_timestamp_seconds")?, Op::Set, t)?;
        }
        Ok(())
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The `instance` label (configured, or host:port / the host).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The registry (tests and the compatibility layer).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Declares a family (`.prom.counter` and friends).
    pub fn declare(&self, name: &str, help: &str, kind: Kind, labels: &[&str], params: &[f64]) -> Result<FamilyId, AgentError> {
        Ok(self.registry.declare(name, help, kind, labels, params)?)
    }

    /// The id of a labelled series (`.prom.series`).
    pub fn series(&self, name: &str, values: &[&str]) -> Result<SeriesId, AgentError> {
        Ok(self.registry.series(name, values)?)
    }

    /// The series of an unlabelled family by name.
    pub fn by_name(&self, name: &str) -> Result<SeriesId, AgentError> {
        Ok(self.registry.by_name(name)?)
    }

    /// What `.prom.collect`'s functions returned last.
    pub fn collectors(&self) -> &crate::collect::Collectors {
        &self.collectors
    }

    /// Forgets a series (`.prom.remove`).
    pub fn remove(&self, sid: SeriesId) -> Result<(), AgentError> {
        Ok(self.registry.remove(sid)?)
    }

    /// Records one value if nothing is wrong with it and this thread has its lane, and says
    /// whether it did (true also when the lane was full: the drop is counted, as
    /// [`Agent::record`] does). False records nothing, and [`Agent::record`] then records it or
    /// says why not. The record path's first try: one gate load, one push; panic-free by
    /// construction, as q's thread runs it outside `catch_unwind`.
    #[inline(always)]
    pub fn try_record(&self, sid: SeriesId, op: Op, v: f64) -> bool {
        !self.stopped.load(Ordering::Relaxed)
            && self.registry.accepts(sid, op, v)
            && self.ring.try_push(Event { series: sid, op, value: v }).is_some()
    }

    /// Records one value. `Ok(false)` means the ring was full and the event was dropped (and counted).
    #[inline]
    pub fn record(&self, sid: SeriesId, op: Op, v: f64) -> Result<bool, AgentError> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err(AgentError::Stopped);
        }
        if !self.registry.live_slot(sid)?.accepts(op, v) {
            return Err(self.refuse(sid, op, v, String::new()));
        }
        Ok(self.ring.push(Event { series: sid, op, value: v }))
    }

    /// Records a vector whole: each value for `observe`, the sum for `inc`/`dec`.
    /// Every value is checked before anything is recorded, so a bad value refuses the whole vector.
    pub fn record_vector(&self, sid: SeriesId, op: Op, values: &[f64]) -> Result<bool, AgentError> {
        let slot = self.registry.live_slot(sid)?;
        let metric = || self.registry.family(slot.family).name.to_string();
        if op == Op::Set {
            return Err(AgentError::SetVector(metric()));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite() || (slot.kind == Kind::Counter && *v < 0.0)) {
            return Err(self.refuse(sid, op, values[i], format!(" {i} of the vector")));
        }
        if !slot.kind.allows(op) {
            return Err(self.refuse(sid, op, 0.0, String::new()));
        }
        match op {
            Op::Observe if values.is_empty() => Ok(true),
            Op::Observe => Ok(self.ring.push_batch(Batch { series: sid, values: values.to_vec() })),
            _ => self.record(sid, op, values.iter().sum()),
        }
    }

    #[cold]
    fn refuse(&self, sid: SeriesId, op: Op, v: f64, at: String) -> AgentError {
        let Ok(slot) = self.registry.live_slot(sid) else { return RegistryError::UnknownSeries(sid.into()).into() };
        let metric = self.registry.family(slot.family).name.to_string();
        if !slot.kind.allows(op) {
            AgentError::WrongOp { kind: slot.kind.as_str(), metric, verb: op.verb() }
        } else if !v.is_finite() {
            AgentError::NotFinite { verb: op.verb(), metric, at }
        } else {
            AgentError::Decrease(metric)
        }
    }

    /// Ends a request of `handler` (index into [`HANDLERS`]) that took `secs`: counts it, times
    /// it, and counts an error when `failed`.
    pub fn request(&self, handler: i64, secs: f64, failed: bool) -> Result<(), AgentError> {
        let h = index("handler", handler, HANDLERS.len())?;
        if self.is_stopped() {
            return Ok(());
        }
        for &ev in &self.request_events(h, secs)[..2 + usize::from(failed)] {
            self.ring.push(ev);
        }
        Ok(())
    }

    /// [`Agent::request`]'s common case, as [`Agent::try_record`] is [`Agent::record`]'s: true when
    /// it is done (counted, or nothing to do after a stop); false, having done nothing, when
    /// `handler` is out of range or this thread has no lane yet.
    #[inline(always)]
    pub fn try_request(&self, handler: u32, secs: f64, failed: bool) -> bool {
        let h = handler as usize;
        if h >= HANDLERS.len() {
            return false;
        }
        if self.stopped.load(Ordering::Relaxed) {
            return true;
        }
        self.ring.try_push_all(&self.request_events(h, secs)[..2 + usize::from(failed)]).is_some()
    }

    /// The events of one request: its count, its duration, and its error (sent when it failed).
    #[inline(always)]
    fn request_events(&self, h: usize, secs: f64) -> [Event; 3] {
        let b = &self.builtins;
        let (count, duration, error) = (
            b.requests.get(h).copied().unwrap_or_default(),
            b.durations.get(h).copied().unwrap_or_default(),
            b.errors.get(h).copied().unwrap_or_default(),
        );
        [
            Event { series: count, op: Op::Inc, value: 1.0 },
            Event { series: duration, op: Op::Observe, value: secs.max(0.0) },
            Event { series: error, op: Op::Inc, value: 1.0 },
        ]
    }

    /// Counts a connection on `handle` opened or closed (`kind` indexes [`CONNECTIONS`]). A close
    /// counts only when the opening did: q also reports the closing of handles it opened itself.
    pub fn connection(&self, kind: i64, handle: i64, opened: bool) -> Result<(), AgentError> {
        let k = index("connection kind", kind, CONNECTIONS.len())?;
        let b = &self.builtins;
        let series = if opened {
            self.handles.open(handle);
            b.opened[k]
        } else if self.handles.close(handle) {
            b.closed[k]
        } else {
            return Ok(());
        };
        self.ring.push(Event { series, op: Op::Inc, value: 1.0 });
        Ok(())
    }

    /// Sets the process gauges from `.Q.w[]` (by key, so new keys do not shift anything) and the handle count.
    /// `queued`, when q gave `.z.W`'s bytes per handle, sets the output-queue gauges (sum, largest,
    /// handles with bytes waiting).
    pub fn sample(&self, memory: &[(&str, f64)], handles: f64, queued: Option<&[f64]>) {
        for (i, (key, _, _)) in MEMORY.iter().enumerate() {
            if let Some((_, v)) = memory.iter().find(|(k, v)| k == key && v.is_finite()) {
                self.ring.push(Event { series: self.builtins.memory[i], op: Op::Set, value: *v });
            }
        }
        if handles.is_finite() {
            self.ring.push(Event { series: self.builtins.handles, op: Op::Set, value: handles });
        }
        if let Some(q) = queued {
            let q = || q.iter().copied().filter(|b| b.is_finite() && *b > 0.0);
            let figures = [q().sum::<f64>(), q().fold(0.0, f64::max), q().count() as f64];
            for (series, value) in self.builtins.output_queues.into_iter().zip(figures) {
                self.ring.push(Event { series, op: Op::Set, value });
            }
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.ring.push(Event { series: self.builtins.last_sample, op: Op::Set, value: now });
    }

    /// Says how often q is sampled: every `interval_ms` (`sd1`, or a timer that runs), or 0 when only at
    /// init, push, stop and exit; `kdbprom_sample_interval_seconds`, read by the sample-lag alert.
    pub fn set_sample_interval(&self, periodic: bool) {
        let secs = if periodic { self.config.interval_ms as f64 / 1e3 } else { 0.0 };
        self.ring.push(Event { series: self.builtins.sample_interval, op: Op::Set, value: secs });
    }

    fn ask<T>(&self, make: impl FnOnce(std::sync::mpsc::Sender<T>) -> Command, timeout: Duration) -> Result<T, AgentError> {
        if self.is_stopped() {
            return Err(AgentError::Stopped);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let guard = self.flusher.lock().unwrap_or_else(|p| p.into_inner());
        let sent = guard.as_ref().is_some_and(|f| f.send(make(tx)));
        drop(guard);
        if !sent {
            return Err(AgentError::Flusher("is not running"));
        }
        rx.recv_timeout(timeout).map_err(|_| AgentError::Flusher(TIMED_OUT))
    }

    /// Pushes everything recorded so far to every target now; one outcome per target. q's thread
    /// waits at most `push_timeout_ms`: then every target gets an outcome saying the push is still
    /// in flight (ok false, status 0), as the round answers for all targets at once. The round
    /// goes on in the background and counts in the stats like any other.
    pub fn push(&self) -> Result<Vec<Outcome>, AgentError> {
        let wait = Duration::from_millis(self.config.push_timeout_ms);
        match self.ask(Command::Push, wait) {
            Err(AgentError::Flusher(TIMED_OUT)) => Ok(self.in_flight()),
            r => r,
        }
    }

    /// An outcome per target for a push that has not answered within `push_timeout_ms`.
    fn in_flight(&self) -> Vec<Outcome> {
        let message = format!(
            "still in flight after push_timeout_ms ({} ms): the push goes on in the background; .prom.stats[] counts its result",
            self.config.push_timeout_ms
        );
        self.ledgers.iter().map(|(name, _)| Outcome { message: message.clone(), cause: "in flight".into(), ..Outcome::new(name) }).collect()
    }

    /// The text exposition of everything recorded so far; an error after `push_timeout_ms`
    /// without it (the flusher is busy, e.g. encoding a huge round).
    pub fn text(&self) -> Result<String, AgentError> {
        self.ask(Command::Text, Duration::from_millis(self.config.push_timeout_ms)).map_err(|e| match e {
            AgentError::Flusher(TIMED_OUT) => AgentError::Flusher("did not answer within push_timeout_ms"),
            e => e,
        })
    }

    /// The library's own counters.
    pub fn stats(&self) -> StatsView {
        let applied = Stats::get(&self.stats.applied);
        let dropped = self.ring.dropped();
        let queued = (self.ring.queued() + self.ring.queued_batch_values()) as u64;
        StatsView {
            events_recorded: applied + queued + dropped,
            events_applied: applied,
            events_dropped: dropped,
            ring_depth: queued,
            ring_capacity: self.ring.capacity() as u64,
            series: self.registry.live_series() as u64,
            targets: self.ledgers.iter().map(|(n, l)| (n.clone(), l.get())).collect(),
        }
    }

    /// True once [`Agent::stop`] ran.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Drains what was recorded, pushes the final state within `exit_deadline_ms` and stops the
    /// flusher. Idempotent: a second call returns the stats and no outcomes.
    ///
    /// Whoever comes second (a `.prom.stop[]` racing the exit hook, two threads calling `exit`)
    /// waits for the first to finish, so the process cannot end while the final push is on the
    /// wire; the wait is bounded by the first caller's own (exit_deadline_ms + a margin).
    pub fn stop(&self) -> Result<(StatsView, Vec<Outcome>), AgentError> {
        // Taken before the flag: a second caller that sees `stopped` blocks here until the first
        // has finished its final push and released the flusher.
        let mut guard = self.flusher.lock().unwrap_or_else(|p| p.into_inner());
        if self.stopped.swap(true, Ordering::AcqRel) {
            return Ok((self.stats(), Vec::new()));
        }
        // The round itself is bounded by exit_deadline_ms; the margin covers draining and joining.
        let wait = Duration::from_millis(self.config.exit_deadline_ms) + Duration::from_millis(500);
        let outcomes = guard.as_mut().and_then(|f| f.stop(wait));
        *guard = None;
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
        let outcomes = outcomes.ok_or(AgentError::Flusher("did not stop within exit_deadline_ms"))?;
        Ok((self.stats(), outcomes))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl From<BuildError> for AgentError {
    fn from(e: BuildError) -> AgentError {
        match e {
            BuildError::Client(e) => AgentError::Client(e),
            BuildError::Config(e) => AgentError::Config(e),
        }
    }
}

/// Takes this job and instance's lock in the state directory; warns when another live process
/// holds it, naming the fix.
fn instance_lock(job: &str, instance: &str) -> Option<crate::state::InstanceLock> {
    match crate::state::lock(&crate::state::dir()?, job, instance) {
        crate::state::Locked::Held(l) => Some(l),
        crate::state::Locked::Busy(path) => {
            crate::warn!(
                "another live process pushes as job={job} instance={instance} (it holds {}): the two overwrite each other's Pushgateway group and remote-write series; give each its own instance (config key instance, or KDBPROM_INSTANCE)",
                path.display()
            );
            None
        }
        crate::state::Locked::Unknown => None,
    }
}

fn index(what: &'static str, i: i64, max: usize) -> Result<usize, AgentError> {
    usize::try_from(i).ok().filter(|&i| i < max).ok_or(AgentError::Index { what, index: i, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Agent {
        let p = ProcessInfo { host: "h".into(), pid: 7, version: "4.1".into(), ..ProcessInfo::default() };
        let dir = std::env::temp_dir().join(format!("kdbprom-agent-{}.prom", std::process::id()));
        Agent::start(Config { textfile: Some(dir), ..Config::default() }, &p).unwrap()
    }

    #[test]
    fn bad_values_are_refused_with_the_metric_named() {
        let a = agent();
        a.declare("rows_total", "", Kind::Counter, &[], &[]).unwrap();
        a.declare("lat", "", Kind::Summary, &[], &[]).unwrap();
        let c = a.by_name("rows_total").unwrap();
        let s = a.by_name("lat").unwrap();
        assert_eq!(a.record(c, Op::Inc, -1.0).unwrap_err().to_string(), "counter rows_total cannot decrease");
        assert_eq!(a.record(c, Op::Inc, f64::NAN).unwrap_err().to_string(), "inc rows_total: value is null or infinite");
        assert_eq!(a.record(c, Op::Set, 1.0).unwrap_err().to_string(), "counter rows_total does not support set");
        assert_eq!(
            a.record_vector(s, Op::Observe, &[1.0, f64::INFINITY]).unwrap_err().to_string(),
            "observe lat: value 1 of the vector is null or infinite"
        );
        assert_eq!(a.record_vector(c, Op::Inc, &[1.0, -2.0]).unwrap_err().to_string(), "counter rows_total cannot decrease");
        assert_eq!(a.record(999_999, Op::Inc, 1.0).unwrap_err().to_string(), "unknown series id 999999");
        assert_eq!(a.instance(), "h", "a process that does not listen: the host, stable across runs");
        a.record_vector(c, Op::Inc, &[1.0, 2.0]).unwrap();
        a.record_vector(s, Op::Observe, &[0.5, 1.5]).unwrap();
        let text = a.text().unwrap();
        assert!(text.contains("\nrows_total 3\n"), "{text}");
        assert!(text.contains("\nlat_count 2\n"), "{text}");
        assert!(text.contains("kdb_info{version=\"4.1\",cores=\"0\"} 1\n"), "{text}");
        let (st, _) = a.stop().unwrap();
        assert_eq!(st.events_recorded, st.events_applied + st.events_dropped);
        assert_eq!(a.text().unwrap_err(), AgentError::Stopped);
    }
}
