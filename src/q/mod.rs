//! The q boundary: every `extern "C"` export, the process-wide agent, and q errors.
//!
//! This module, `k` (arguments) and `build` (results) hold all of the crate's `unsafe` and all K
//! handling. Each export first borrows each argument it reads as a `k::KRef` (its one `unsafe`
//! line), then runs its whole body under `catch_unwind`, so a panic becomes the q error
//! `'prom: internal error`, never an abort of q. Errors are signalled with `krr` on a per-thread
//! buffer, since exports may run on q's secondary threads at the same time.

mod early;
mod exit;
mod k;
mod reply;
mod sampler;

use crate::agent::{Agent, AgentError};
use crate::aggregate::NativeConfig;
use crate::builtin::ProcessInfo;
use crate::compat::updval_op;
use crate::config::Config;
use crate::event::{Op, SeriesId};
use crate::registry::Kind;
use crate::stats::StatsView;
use k::{KRef, must_be, t};
use kdbplus::api::K;
use kdbplus::api::native::{kb, krr};
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicPtr, Ordering};

/// The agent of this q process; replaced by `.prom.init` after a `.prom.stop[]`.
///
/// Agents are leaked, never freed: a record call on another thread may still hold the old one
/// while a new init replaces it, and a plain acquire load is the cheapest read the hot path can
/// have. A process creates one agent, or a handful if it stops and restarts kdbprom.
static AGENT: AtomicPtr<Session> = AtomicPtr::new(std::ptr::null_mut());

/// One `.prom.init`: the agent, the KX 1.x handles its q scripts use, and the counters of
/// [`crate::builtin::EVENTS`].
struct Session {
    agent: Agent,
    compat: crate::compat::Compat,
    events: [SeriesId; crate::builtin::EVENTS.len()],
    /// Sampled by the `.z.ts` wrapper (sampler `timer`): periodically only while q's timer runs,
    /// which the `timer` key of each sample (`system"t"`) says; a dormant `.z.ts` (`\t 0`) never runs.
    timer: bool,
}

impl std::ops::Deref for Session {
    type Target = Agent;
    fn deref(&self) -> &Agent {
        &self.agent
    }
}

fn current() -> Option<&'static Session> {
    let p = AGENT.load(Ordering::Acquire);
    // SAFETY: non-null pointers stored in AGENT come from Box::leak and are never freed.
    unsafe { p.as_ref() }
}

fn install(agent: Agent, events: [SeriesId; crate::builtin::EVENTS.len()], timer: bool) {
    AGENT.store(Box::leak(Box::new(Session { agent, compat: Default::default(), events, timer })), Ordering::Release);
}

thread_local! {
    /// krr keeps the pointer, not a copy: the text must outlive the export, per thread.
    static ERR: RefCell<[u8; 256]> = const { RefCell::new([0; 256]) };
}

/// Signals `'prom: <msg>` in q.
#[cold]
fn q_error(msg: &str) -> K {
    ERR.with(|b| {
        let mut b = b.borrow_mut();
        let text = format!("prom: {msg}");
        // Cut on a character boundary: q would show half a UTF-8 sequence as a stray byte.
        let text = crate::push::redact::cut_on_char(&text, b.len() - 1);
        let n = text.len();
        b[..n].copy_from_slice(text.as_bytes());
        b[n] = 0;
        // SAFETY: the buffer is NUL-terminated and lives as long as this thread.
        unsafe { krr(b.as_ptr() as *const _) }
    })
}

/// What a panic says to q.
const INTERNAL: &str = "internal error (a kdbprom bug; please report it)";

/// Runs an export body: errors become q errors, panics become `'prom: internal error`.
#[inline]
fn guard(f: impl FnOnce() -> Result<K, String>) -> K {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => q_error(&e),
        Err(_) => q_error(INTERNAL),
    }
}

/// Success with nothing to return: `(K)0` with no error pending is `::` to q, and costs no allocation.
const NOTHING: K = std::ptr::null_mut();

fn err(e: AgentError) -> String {
    e.to_string()
}

#[inline]
fn with_agent<T>(f: impl FnOnce(&'static Session) -> Result<T, String>) -> Result<T, String> {
    f(current().ok_or("not initialised: call .prom.init first")?)
}

/// The running agent, or None before the first init and after a stop (declarations then wait
/// for the next init: [`early`]).
fn running() -> Option<&'static Session> {
    current().filter(|a| !a.is_stopped())
}

/// A series id (long, or int or short) or a name (unlabelled metric, or a KX 1.x handle).
#[inline]
fn series_ref(a: &Session, s: KRef, verb: &str) -> Result<SeriesId, String> {
    // The hot path (a long id) builds no error text unless there is an error.
    let j = match s.qtype() {
        v if v == -t::LONG || v == -t::INT || v == -t::SHORT => s.long(format_args!("{verb}: series"))?,
        v if v == -t::SYMBOL => return a.compat.resolve(a, s.symbol(format_args!("{verb}: series"))?).map_err(err),
        _ => return Err(must_be(format_args!("{verb}: series"), "a long or a symbol", s.type_name())),
    };
    SeriesId::try_from(j).map_err(|_| format!("{verb}: unknown series id {j}"))
}

/// `.prom.inc/dec/set/observe[s;v]` and `.prom.updval`: records `v` (a number, a timespan or a
/// vector of them) on series `s`.
///
/// The common case is tried first: a long id and a long or float value on a running agent,
/// checked by one gate load and pushed into this thread's lane. That try runs outside
/// `catch_unwind`, because nothing in it can panic: no indexing that can fail, no arithmetic that
/// can overflow, no allocation, no call that can unwind (`scripts/callgrind.sh` fails if the
/// export's own code calls a panic function). Anything else, and every refusal, goes to
/// [`record_any`] under [`guard`], which reads every form and says what is wrong.
#[inline(always)]
fn record(op: Op, s: KRef, v: KRef) -> K {
    if recorded(op, s, v) { NOTHING } else { record_guarded(op, s, v) }
}

/// The common case of [`record`]: true when it recorded (or counted a drop).
#[inline(always)]
fn recorded(op: Op, s: KRef, v: KRef) -> bool {
    let Some(sid) = s.plain_id() else { return false };
    let Some(x) = v.plain_f64() else { return false };
    current().is_some_and(|a| a.try_record(sid, op, x))
}

/// Everything but the common case of [`record`], under [`guard`].
#[cold]
#[inline(never)]
fn record_guarded(op: Op, s: KRef, v: KRef) -> K {
    guard(|| record_any(op, s, v))
}

/// [`record`] for every form of series and value, and every error.
#[inline(never)]
fn record_any(op: Op, s: KRef, v: KRef) -> Result<K, String> {
    with_agent(|a| {
        let sid = series_ref(a, s, op.verb())?;
        if let Some(x) = v.atom_f64() {
            a.record(sid, op, x).map_err(err)?;
        } else if let Some(xs) = v.vector_f64() {
            a.record_vector(sid, op, &xs).map_err(err)?;
        } else {
            return Err(must_be(format_args!("{}: value", op.verb()), "a number, a timespan or a vector of them", v.type_name()));
        }
        Ok(NOTHING)
    })
}

/// Runs `f` with every signal blocked on this thread, so threads it starts inherit a full mask:
/// q's signals (SIGINT, SIGTERM, its timers) go to q's threads, never to the flusher.
fn without_signals<T>(f: impl FnOnce() -> T) -> T {
    /// Restores the caller's mask on drop, so even a panic in `f` leaves q's thread as it was.
    struct Restore(libc::sigset_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: the saved mask came from a successful pthread_sigmask.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
        }
    }
    let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises `all`; pthread_sigmask reads it and fills `old`.
    let blocked =
        unsafe { libc::sigfillset(all.as_mut_ptr()) == 0 && libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), old.as_mut_ptr()) == 0 };
    // SAFETY: `old` is initialised when `blocked` is true.
    let _restore = blocked.then(|| Restore(unsafe { old.assume_init() }));
    f()
}

fn env() -> std::collections::HashMap<String, String> {
    std::env::vars().filter(|(k, _)| k.starts_with("KDBPROM_")).collect()
}

/// `.prom.init[cfg]`; `proc` is the process dictionary the q script builds. Returns the settings
/// the script needs (job, instance, instrument, serve_metrics, interval_ms, sampler):
/// `instrument` is the symbol list of handler groups to wrap, and `sampler` says how process
/// metrics are sampled: `sd1` (q's main loop, woken by the flusher), `timer` (the `.z.ts`
/// wrapper, with `sampler: "timer"`) or `none` (at init, push, stop and exit, and from a `.z.ts`
/// of the user's). `sd1` is registered only when q listens (`port` ≠ 0): a registered descriptor
/// keeps q's main loop alive, so a script that does not listen would no longer end at the end of
/// its input. q's timer does not keep it alive, so a running timer is no reason to register.
///
/// The first init also registers the process-exit hook (`q::exit`): from then on the final push
/// happens when the process exits, whether or not q runs `.z.exit`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_init(cfg: K, proc: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (cfg, proc) = unsafe { (KRef::new(&cfg), KRef::new(&proc)) };
    guard(|| {
        if current().is_some_and(|a| !a.is_stopped()) {
            return Err("already initialised: .prom.init runs once (call .prom.stop[] first to restart)".into());
        }
        // One rule: a dictionary or a file given here is the whole configuration; with `::` the
        // environment is read (Config::from_env). Variables left unread are named, once per init.
        let ignored = || {
            let vars = Config::ignored_env(&env());
            if !vars.is_empty() {
                crate::warn!(".prom.init was given a configuration, so the environment is not read: {} ignored", vars.join(", "));
            }
        };
        let config = if cfg.is_identity() {
            Config::from_env(&env())
        } else if cfg.qtype() == t::DICT || cfg.qtype() == t::TABLE {
            // A table is `enlist` of the dictionary (one row): Config::from_json takes its row.
            let json = cfg.json("config")?;
            ignored();
            Config::from_json(&json)
        } else if cfg.qtype() == t::CHAR || cfg.qtype() == -t::SYMBOL {
            let path = cfg.text("config")?;
            ignored();
            Config::from_file(path.strip_prefix(':').unwrap_or(&path))
        } else {
            return Err(must_be("init: config", "a dictionary, a JSON file path or ::", cfg.type_name()));
        }
        .map_err(|e| e.to_string())?;
        let process = if proc.is_identity() { serde_json::json!({}) } else { proc.json("process")? };
        let process = ProcessInfo::from_json(&process)?;
        // Only a listening q is woken (a registered descriptor would keep a batch script from
        // ending); in multithreaded input mode (negative port) the wake-up only reads.
        let hook = if process.listens() { sampler::register(process.port < 0) } else { None };
        let via = match (&hook, config.sampler) {
            (Some(_), _) => "sd1",
            (None, crate::config::Sampler::Timer) => "timer",
            (None, crate::config::Sampler::Auto) => "none",
        };
        let agent = match without_signals(|| Agent::start_with(config, &process, hook)) {
            Ok(a) => a,
            Err(e) => {
                sampler::deregister();
                return Err(err(e));
            }
        };
        let events = match crate::builtin::declare_events(agent.registry()) {
            Ok(e) => e,
            Err(e) => {
                sampler::deregister();
                return Err(e.to_string());
            }
        };
        agent.set_sample_interval(via != "none");
        *INIT_THREAD.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::thread::current().id());
        exit::register();
        let c = agent.config();
        let instrument = reply::new_symbols(&c.instrument.names());
        // SAFETY: kb only allocates.
        let serve = unsafe { kb(c.serve_metrics.into()) };
        let out = reply::new_dict(vec![
            ("job", reply::new_symbol(&c.job)),
            ("instance", reply::new_symbol(agent.instance())),
            ("instrument", instrument),
            ("serve_metrics", serve),
            ("interval_ms", reply::new_long(c.interval_ms as i64)),
            // How process metrics are sampled: `sd1` (q's main loop, woken by the flusher),
            // `timer` (the .z.ts wrapper, opt-in) or `none` (at init, push, stop and exit only).
            ("sampler", reply::new_symbol(via)),
            // The q script registers the `kdb_table_rows` collector when true.
            // SAFETY: kb only allocates.
            ("collect_tables", unsafe { kb(c.collect_tables.into()) }),
        ]);
        install(agent, events, via == "timer");
        if let Err(e) = early::apply(current().expect("just installed")) {
            let _ = current().map(|a| a.stop());
            sampler::deregister();
            return Err(e);
        }
        Ok(out)
    })
}

/// `.prom.counter/gauge/histogram/summary`: declare a family.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_declare(kind: K, name: K, help: K, labels: K, params: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (kind, name, help, labels, params) =
        unsafe { (KRef::new(&kind), KRef::new(&name), KRef::new(&help), KRef::new(&labels), KRef::new(&params)) };
    guard(|| {
        let kind_s = kind.symbol("declare: type")?;
        let kind = Kind::parse(kind_s).ok_or_else(|| format!("declare: unknown type {kind_s}"))?;
        let name = name.symbol(format_args!("{kind_s}: name"))?;
        let help = if help.is_identity() { "".into() } else { help.text(format_args!("{name}: help"))? };
        let labels = labels.texts(format_args!("{name}: label names"))?;
        let (params, native) = match kind {
            Kind::Histogram => histogram_buckets(params, name)?,
            _ => (floats(params, &format!("{name}: buckets or quantiles"))?, None),
        };
        let Some(a) = running() else {
            let labels = labels.iter().map(|l| l.to_string()).collect();
            early::keep(early::Early::Declare { kind, name: name.into(), help: help.into(), labels, params, native })?;
            return Ok(NOTHING);
        };
        let labels: Vec<&str> = labels.iter().map(|l| l.as_ref()).collect();
        a.registry().declare_with(name, &help, kind, &labels, &params, native).map_err(|e| e.to_string())?;
        Ok(NOTHING)
    })
}

/// Keys a histogram's dictionary may have.
const HISTOGRAM_KEYS: &str = "buckets, factor, zero_threshold, max_buckets";

/// A histogram's `b`: classic bounds (a numeric vector, or `()`/`::` for the defaults), the symbol
/// `` `native `` (native buckets with client_golang's defaults, no classic ones), or a dictionary
/// of `buckets` (classic bounds kept beside the native ones), `factor`, `zero_threshold` and
/// `max_buckets`. Returns the classic bounds (empty: defaults, or none when native) and the
/// native configuration.
fn histogram_buckets(b: KRef, name: &str) -> Result<(Vec<f64>, Option<NativeConfig>), String> {
    let wrong = |got: std::fmt::Arguments| must_be(format_args!("{name}: buckets"), "a numeric vector, (), `native or a dictionary", got);
    if b.qtype() == -t::SYMBOL {
        return match &*b.text(name)? {
            "native" => Ok((vec![], Some(NativeConfig::default()))),
            s => Err(wrong(format_args!("`{s}"))),
        };
    }
    let Some(entries) = b.dict_items(format_args!("{name}: histogram keys"))? else {
        if b.is_identity() || b.vector_f64().is_some() {
            return Ok((floats(b, &format!("{name}: buckets or quantiles"))?, None));
        }
        // A numeric atom could mean one bound, a bucket count or a factor: refused, not guessed.
        let hint = if b.atom_f64().is_some() { " (for one bound, enlist it)" } else { "" };
        return Err(wrong(format_args!("{}{hint}", b.type_name())));
    };
    let (mut buckets, mut factor, mut zero_threshold, mut max_buckets) = (None, None, None, None);
    for (i, (key, v)) in entries.iter().enumerate() {
        if entries[..i].iter().any(|(k, _)| k == key) {
            return Err(format!("{name}: histogram key `{key} is given twice"));
        }
        // Nulls are NaN here: refused with the range check (a factor or zero threshold) below.
        let number = |what: &str| v.number().map(|n| n.0).ok_or_else(|| must_be(format_args!("{name}: {what}"), "a number", v.type_name()));
        match key.as_ref() {
            "buckets" => {
                buckets = Some(match *v {
                    k::Item::Obj(x) if x.is_identity() || x.vector_f64().is_some() => floats(x, &format!("{name}: buckets"))?,
                    _ => return Err(must_be(format_args!("{name}: buckets"), "a numeric vector or ()", v.type_name())),
                })
            }
            "factor" => factor = Some(number("factor")?),
            "zero_threshold" => zero_threshold = Some(number("zero_threshold")?),
            "max_buckets" => {
                let n = match v.number() {
                    Some((n, ty)) if ty == -t::LONG || ty == -t::INT || ty == -t::SHORT => n,
                    _ => return Err(must_be(format_args!("{name}: max_buckets"), "a long", v.type_name())),
                };
                if n.is_nan() {
                    return Err(format!("{name}: native histogram max_buckets must not be null"));
                }
                if !(n >= 1.0 && n.is_finite()) {
                    return Err(format!("{name}: native histogram max_buckets must be at least 1, got {n}"));
                }
                max_buckets = Some(n.min(f64::from(u32::MAX)) as usize);
            }
            k => return Err(format!("{name}: unknown histogram key `{k} (keys: {HISTOGRAM_KEYS})")),
        }
    }
    if buckets.as_ref().is_some_and(Vec::is_empty) && factor.is_none() && zero_threshold.is_none() && max_buckets.is_none() {
        return Err(format!(
            "{name}: the dictionary gives no buckets: `buckets is empty and no native key (factor, zero_threshold, max_buckets) is set; use `native for native buckets alone"
        ));
    }
    let d = NativeConfig::default();
    let cfg = NativeConfig::from_factor(
        factor.unwrap_or(crate::aggregate::native::DEFAULT_FACTOR),
        zero_threshold.unwrap_or(d.zero_threshold),
        max_buckets.unwrap_or(d.max_buckets),
    )
    .map_err(|e| format!("{name}: {e}"))?;
    Ok((buckets.unwrap_or_default(), Some(cfg)))
}

/// Numbers: a numeric vector, one numeric atom, or `()`/`::` for none.
fn floats(x: KRef, what: &str) -> Result<Vec<f64>, String> {
    if x.is_identity() {
        return Ok(vec![]);
    }
    let v = match x.atom_f64() {
        Some(f) => vec![f],
        // `()` is an empty general list: no numbers.
        None => x.vector_f64().ok_or_else(|| must_be(what, "numbers", x.type_name()))?.into_owned(),
    };
    if v.iter().any(|f| f.is_nan()) {
        return Err(format!("{what} must not contain nulls"));
    }
    Ok(v)
}

/// `.prom.series[name;labelvalues]` → long id.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_series(name: K, values: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (name, values) = unsafe { (KRef::new(&name), KRef::new(&values)) };
    guard(|| {
        let name = name.symbol("series: name")?;
        let values = values.texts(format_args!("series {name}: label values"))?;
        with_agent(|a| {
            let values: Vec<&str> = values.iter().map(|v| v.as_ref()).collect();
            Ok(reply::new_long(i64::from(a.series(name, &values).map_err(err)?)))
        })
    })
}

/// `.prom.inc[s;v]`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_inc(s: K, v: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (s, v) = unsafe { (KRef::new(&s), KRef::new(&v)) };
    record(Op::Inc, s, v)
}

/// `.prom.dec[s;v]`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_dec(s: K, v: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (s, v) = unsafe { (KRef::new(&s), KRef::new(&v)) };
    record(Op::Dec, s, v)
}

/// `.prom.set[s;v]`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_set(s: K, v: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (s, v) = unsafe { (KRef::new(&s), KRef::new(&v)) };
    record(Op::Set, s, v)
}

/// `.prom.observe[s;v]`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_observe(s: K, v: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (s, v) = unsafe { (KRef::new(&s), KRef::new(&v)) };
    record(Op::Observe, s, v)
}

/// `.prom.remove[s]`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_remove(s: K) -> K {
    // SAFETY: q's argument, valid and unchanged until this call returns (KRef::new).
    let s = unsafe { KRef::new(&s) };
    guard(|| with_agent(|a| a.remove(series_ref(a, s, "remove")?).map_err(err).map(|_| NOTHING)))
}

/// `.prom.text[]` → the text exposition.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_text(_: K) -> K {
    guard(|| with_agent(|a| Ok(reply::new_string(&a.text().map_err(err)?))))
}

/// The stats as (name, long) pairs, for `.prom.stats[]` and `.prom.stop[]`.
fn stats_pairs(a: &Agent) -> Vec<(&'static str, K)> {
    let view = a.stats();
    let mut pairs: Vec<(&str, K)> = view.fields().iter().map(|(n, v)| (*n, reply::new_long(*v as i64))).collect();
    let targets = view
        .targets
        .iter()
        .map(|(name, c)| {
            let (counts, failed, last) = StatsView::target_fields(c);
            let mut d: Vec<(&str, K)> = counts.iter().map(|(n, v)| (*n, reply::new_long(*v as i64))).collect();
            d.insert(2, ("samples_failed", reply::new_dict(failed.iter().map(|(n, v)| (*n, reply::new_long(*v as i64))).collect())));
            d.push(("last_success", reply::new_float(last)));
            (name.as_str(), reply::new_dict(d))
        })
        .collect();
    pairs.push(("targets", reply::new_dict(targets)));
    pairs
}

/// `.prom.stats[]` → the library's own counters.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_stats(_: K) -> K {
    guard(|| with_agent(|a| Ok(reply::new_dict(stats_pairs(a)))))
}

fn outcomes_dict(outcomes: &[crate::push::Outcome]) -> K {
    reply::new_dict(
        outcomes
            .iter()
            .map(|o| {
                // SAFETY: kb only allocates.
                let ok = unsafe { kb(o.ok.into()) };
                let d = reply::new_dict(vec![
                    ("ok", ok),
                    ("status", reply::new_long(i64::from(o.status))),
                    ("message", reply::new_string(&o.message)),
                    ("samples", reply::new_long(o.samples as i64)),
                    ("bytes", reply::new_long(o.bytes as i64)),
                    ("ms", reply::new_float(o.millis)),
                    ("attempts", reply::new_long(i64::from(o.attempts))),
                ]);
                (o.target.as_str(), d)
            })
            .collect(),
    )
}

/// `.prom.push[]`: push everything now; a dictionary of per-target outcomes.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_push(_: K) -> K {
    guard(|| with_agent(|a| Ok(outcomes_dict(&a.push().map_err(err)?))))
}

/// `.prom.stop[]`: final push within the exit deadline, then stop; the stats plus `pushed`, the
/// final push's per-target outcomes.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_stop(_: K) -> K {
    guard(|| {
        with_agent(|a| {
            let stopped = a.stop();
            sampler::deregister();
            let (_, outcomes) = stopped.map_err(err)?;
            let mut pairs = stats_pairs(a);
            pairs.push(("pushed", outcomes_dict(&outcomes)));
            Ok(reply::new_dict(pairs))
        })
    })
}

/// Start times of the requests a thread is inside, innermost last. `begin` pushes and `end`/`fail`
/// pop, so the q wrapper keeps no start token of its own (no per-call list or projection).
///
/// A request whose handler signalled under `\e 1` never reaches `end`: its entry stays below
/// the ones pushed after it, which still pair up. When full, the top entry is overwritten, so
/// calls that do not nest keep pairing correctly however many entries leaked.
struct Starts {
    at: [Cell<u64>; 32],
    depth: Cell<usize>,
}

thread_local! {
    // Cells, not a RefCell, and no destructor: reaching it is one TLS look-up and nothing can fail.
    static STARTS: Starts = const { Starts { at: [const { Cell::new(0) }; 32], depth: Cell::new(0) } };
}

/// Nanoseconds on the system's monotonic clock (the same for every agent, so a request that
/// spans a `.prom.init` is timed right). Called directly rather than through `Instant::now`,
/// whose error path panics: `begin` and `end` run outside `catch_unwind` when nothing can fail.
#[inline(always)]
fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given, which lives on this stack; with
    // CLOCK_MONOTONIC on Linux it cannot fail (the zeroed timespec would time the request as 0).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

/// Handler wrappers: a request of handler `h` begins. Never signals (the wrapper calls it without
/// a trap); `h` is read by `end`/`fail`, and taken here so the wrapper passes no `::`. Nothing in
/// it can panic (a clock read and two cells), so it runs without `catch_unwind`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_begin(_h: K) -> K {
    let now = mono_ns();
    let _ = STARTS.try_with(|s| {
        let i = s.depth.get().min(s.at.len() - 1);
        if let Some(at) = s.at.get(i) {
            at.set(now);
        }
        s.depth.set(i + 1);
    });
    NOTHING
}

/// The start of the innermost open request on this thread; `now` when there is none (a wrapper
/// made before this library was loaded again), which times it as 0.
#[inline(always)]
fn popped_start(now: u64) -> u64 {
    STARTS
        .try_with(|s| match s.depth.get() {
            0 => now,
            d => {
                s.depth.set(d - 1);
                s.at.get(d - 1).map_or(now, Cell::get)
            }
        })
        .unwrap_or(now)
}

/// `end`/`fail`: the common case (a long handler index, this thread's lane in place) outside
/// `catch_unwind`, as [`record`] does; the rest under [`guard`].
#[inline(always)]
fn request(h: KRef, failed: bool) -> K {
    let now = mono_ns();
    let secs = now.saturating_sub(popped_start(now)) as f64 * 1e-9;
    // Instrumentation never fails a user's request because kdbprom is not running.
    let Some(a) = current() else { return NOTHING };
    if let Some(h) = h.plain_id()
        && a.try_request(h, secs, failed)
    {
        return NOTHING;
    }
    request_guarded(h, secs, failed)
}

/// Everything but the common case of [`request`], under [`guard`].
#[cold]
#[inline(never)]
fn request_guarded(h: KRef, secs: f64, failed: bool) -> K {
    guard(|| {
        let h = h.long("handler")?;
        if let Some(a) = current() {
            a.request(h, secs, failed).map_err(err)?;
        }
        Ok(NOTHING)
    })
}

/// Handler wrappers: the request of handler `h` (an index into the handler table) ended normally.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_end(h: K) -> K {
    // SAFETY: q's argument, valid and unchanged until this call returns (KRef::new).
    let h = unsafe { KRef::new(&h) };
    request(h, false)
}

/// Handler wrappers: the user's handler `h` signalled an error.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_fail(h: K) -> K {
    // SAFETY: q's argument, valid and unchanged until this call returns (KRef::new).
    let h = unsafe { KRef::new(&h) };
    request(h, true)
}

/// `.z.po/.z.pc/.z.wo/.z.wc` wrappers: kind 0 ipc, 1 websocket; the handle; opened or closed.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_conn(kind: K, handle: K, opened: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (kind, handle, opened) = unsafe { (KRef::new(&kind), KRef::new(&handle), KRef::new(&opened)) };
    guard(|| {
        let kind = kind.long("connection kind")?;
        let handle = handle.long("handle")?;
        let opened = opened.boolean("opened")?;
        if let Some(a) = current() {
            a.connection(kind, handle, opened).map_err(err)?;
        }
        Ok(NOTHING)
    })
}

/// Process sample on q's main thread: `.Q.w[]` and the open handle count. Under sampler `timer`, a
/// `timer` key besides `.Q.w[]`'s (`system"t"`) sets `kdbprom_sample_interval_seconds`: `interval_ms`
/// while q's timer runs, 0 while it is off (a dormant `.z.ts` of the user's, which kdbprom never starts).
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_sample(qw: K, handles: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (qw, handles) = unsafe { (KRef::new(&qw), KRef::new(&handles)) };
    guard(|| {
        let serde_json::Value::Object(m) = qw.json("sample: .Q.w[]")? else {
            return Err(must_be("sample: .Q.w[]", "a dictionary", qw.type_name()));
        };
        let mem: Vec<(&str, f64)> = m.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_f64()?))).collect();
        // `system"t"`, joined to `.Q.w[]` by the script where q lets it read it.
        let timer = m.get("timer").and_then(|v| v.as_f64());
        // `count .z.W` (a number), or `sum each value .z.W`: bytes waiting per handle.
        let (handles, queued) = match handles.atom_f64() {
            Some(n) => (n, None),
            None if handles.qtype() >= 0 => {
                let q = floats(handles, "sample: .z.W bytes")
                    .map_err(|_| must_be("sample: handles", "a number or numbers", handles.type_name()))?;
                (q.len() as f64, Some(q))
            }
            None => return Err(must_be("sample: handles", "a number", handles.type_name())),
        };
        with_agent(|a| {
            // Only q's main thread (where .prom.init ran) can see a frozen main loop: a sample
            // taken by a client's .prom.push[] on a secondary thread (-s, -p -N) must not stamp
            // kdbprom_last_sample_timestamp_seconds while the main loop is stuck.
            if *INIT_THREAD.lock().unwrap_or_else(|p| p.into_inner()) == Some(std::thread::current().id()) {
                a.sample(&mem, handles, queued.as_deref());
                if let Some(t) = timer.filter(|_| a.timer) {
                    a.set_sample_interval(t > 0.0);
                }
            }
            Ok(NOTHING)
        })
    })
}

/// The thread `.prom.init` ran on: q's main thread.
static INIT_THREAD: std::sync::Mutex<Option<std::thread::ThreadId>> = std::sync::Mutex::new(None);

/// KX 1.x `.prom.newmetric[metric;type;labelnames;help]`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_newmetric(metric: K, kind: K, labels: K, help: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (metric, kind, labels, help) = unsafe { (KRef::new(&metric), KRef::new(&kind), KRef::new(&labels), KRef::new(&help)) };
    guard(|| {
        let metric = metric.symbol("newmetric: metric")?;
        let kind_s = kind.symbol("newmetric: type")?;
        let kind = Kind::parse(kind_s).ok_or_else(|| format!("newmetric {metric}: unknown type {kind_s}"))?;
        let labels = labels.texts(format_args!("newmetric {metric}: label names"))?;
        let help = help.text(format_args!("newmetric {metric}: help"))?;
        let Some(a) = running() else {
            let labels = labels.iter().map(|l| l.to_string()).collect();
            early::keep(early::Early::NewMetric { metric: metric.into(), kind, labels, help: help.into() })?;
            return Ok(NOTHING);
        };
        let labels: Vec<&str> = labels.iter().map(|l| l.as_ref()).collect();
        a.compat.newmetric(a, metric, kind, &labels, &help).map_err(err)?;
        Ok(NOTHING)
    })
}

/// KX 1.x `.prom.addmetric[metric;labelvals;params;startval]` → the handle symbol.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_addmetric(metric: K, values: K, params: K, start: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (metric, values, params, start) = unsafe { (KRef::new(&metric), KRef::new(&values), KRef::new(&params), KRef::new(&start)) };
    guard(|| {
        let metric = metric.symbol("addmetric: metric")?;
        let values = values.texts(format_args!("addmetric {metric}: label values"))?;
        let params = floats(params, &format!("addmetric {metric}: params"))?;
        let start = floats(start, &format!("addmetric {metric}: startval"))?;
        let values: Vec<&str> = values.iter().map(|v| v.as_ref()).collect();
        let Some(a) = running() else {
            let handle = crate::compat::handle(metric, &values);
            let values = values.iter().map(|v| v.to_string()).collect();
            early::keep(early::Early::AddMetric { metric: metric.into(), values, params, start })?;
            return Ok(reply::new_symbol(&handle));
        };
        Ok(reply::new_symbol(&a.compat.addmetric(a, metric, &values, &params, &start).map_err(err)?))
    })
}

/// KX 1.x `.prom.updval[name;func;val]`, with func already mapped by the q script to
/// `` `set`inc`dec`observe `` (from `:` `+` `-` `,`; anything else to the null symbol).
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_updval(name: K, func: K, v: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (name, func, v) = unsafe { (KRef::new(&name), KRef::new(&func), KRef::new(&v)) };
    guard(|| {
        let op = func.symbol("updval: func").ok().and_then(updval_op).ok_or("updval: func must be one of : + - ,")?;
        record_any(op, name, v)
    })
}

/// `.z.pw` and `.z.bm` wrappers: counts one event, by name (`` `auth_failure ``,
/// `` `bad_message ``: [`crate::builtin::EVENTS`]). Silent before init and after stop, as the
/// request wrappers are.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_event(name: K) -> K {
    // SAFETY: q's argument, valid and unchanged until this call returns (KRef::new).
    let name = unsafe { KRef::new(&name) };
    guard(|| {
        let name = name.symbol("event")?;
        let i = crate::builtin::EVENTS.iter().position(|(n, _, _)| *n == name).ok_or_else(|| {
            let names: Vec<&str> = crate::builtin::EVENTS.iter().map(|e| e.0).collect();
            format!("event: unknown event {name} (events: {})", names.join(", "))
        })?;
        if let Some(a) = current().filter(|a| !a.is_stopped()) {
            a.record(a.events[i], Op::Inc, 1.0).map_err(err)?;
        }
        Ok(NOTHING)
    })
}

/// The q script's stderr lines, in the library's one format: `` .prom.x.log[`WARN;"text"] ``
/// (levels `` `ERROR`WARN`INFO ``).
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_log(level: K, msg: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (level, msg) = unsafe { (KRef::new(&level), KRef::new(&msg)) };
    guard(|| {
        let level = match level.symbol("log: level")? {
            "ERROR" => crate::log::Level::Error,
            "WARN" => crate::log::Level::Warn,
            "INFO" => crate::log::Level::Info,
            l => return Err(format!("log: level must be one of `ERROR`WARN`INFO, not `{l}")),
        };
        crate::log::write(level, format_args!("{}", msg.text("log: message")?));
        Ok(NOTHING)
    })
}

/// A collector's result as rows (label values → value): a number (an unlabelled family), a
/// dictionary label value → number (one label), or a keyed table, its key columns the label
/// values and its one value column the numbers.
fn collected(r: KRef, name: &str) -> Result<Vec<(Vec<String>, f64)>, String> {
    let what = format!("collect {name}");
    if let Some(v) = r.atom_f64() {
        return Ok(vec![(vec![], v)]);
    }
    let Some((keys, values)) = r.dict() else {
        return Err(must_be(&what, "a number, a dictionary or a keyed table", r.type_name()));
    };
    let numbers =
        |v: KRef| v.vector_f64().map(|c| c.into_owned()).ok_or_else(|| must_be(format!("{what}: values"), "numbers", v.type_name()));
    let (labels, nums): (Vec<Vec<String>>, Vec<f64>) = match (keys.table(), values.table()) {
        (Some((_, kcols)), Some((_, vcols))) => {
            let vcols = vcols.objects().unwrap_or_default();
            let [vcol] = vcols else { return Err(format!("{what}: a keyed table needs one value column, not {}", vcols.len())) };
            let kcols = kcols.objects().unwrap_or_default();
            let cols: Vec<Vec<String>> = kcols
                .iter()
                .map(|c| c.texts(format_args!("{what}: label values")).map(|v| v.iter().map(|s| s.to_string()).collect()))
                .collect::<Result<_, _>>()?;
            let nums = numbers(*vcol)?;
            let rows = (0..nums.len()).map(|i| cols.iter().map(|c| c.get(i).cloned().unwrap_or_default()).collect()).collect();
            (rows, nums)
        }
        _ => {
            let labels = keys.texts(format_args!("{what}: label values"))?.iter().map(|s| vec![s.to_string()]).collect();
            (labels, numbers(values)?)
        }
    };
    if labels.len() != nums.len() {
        return Err(format!("{what}: {} label set(s) for {} value(s)", labels.len(), nums.len()));
    }
    Ok(labels.into_iter().zip(nums).collect())
}

/// `.prom.x.collect[name;f[]]`: a collector's result sets the whole family `name` (called by the
/// q script at each sample, trapped; an error here is counted through `collectfail`).
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_collect(name: K, result: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (name, result) = unsafe { (KRef::new(&name), KRef::new(&result)) };
    guard(|| {
        let name = name.symbol("collect: name")?;
        let rows = collected(result, name)?;
        with_agent(|a| a.collectors().apply(a, name, &rows).map(|()| NOTHING).map_err(|e| e.to_string()))
    })
}

/// `.prom.x.collectfail[name;error]`: a collector's function signalled or its result was refused.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_collectfail(name: K, why: K) -> K {
    // SAFETY: q's arguments, valid and unchanged until this call returns (KRef::new).
    let (name, why) = unsafe { (KRef::new(&name), KRef::new(&why)) };
    guard(|| {
        let name = name.symbol("collectfail: name")?;
        let why = why.text("collectfail: error")?;
        with_agent(|a| a.collectors().failed(a, name, &why).map(|()| NOTHING).map_err(err))
    })
}
