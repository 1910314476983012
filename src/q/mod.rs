//! The q boundary: every `extern "C"` export, the process-wide agent, and q errors.
//!
//! This module and [`k`] hold all of the crate's `unsafe` and all K handling. Each export is
//! guarded by `catch_unwind`, so a panic becomes the q error `'prom: internal error`, never an
//! abort of q. Errors are signalled with `krr` on a per-thread buffer, since exports may run on
//! q's secondary threads at the same time.

mod k;
mod sampler;

use crate::agent::{Agent, AgentError};
use crate::aggregate::NativeConfig;
use crate::builtin::ProcessInfo;
use crate::compat::updval_op;
use crate::config::Config;
use crate::event::{Op, SeriesId};
use crate::registry::Kind;
use crate::stats::StatsView;
use k::{atom_f64, is_identity, qtype, t, vector_f64};
use kdbplus::api::K;
use kdbplus::api::native::{kb, krr};
use std::cell::RefCell;
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

fn install(agent: Agent, events: [SeriesId; crate::builtin::EVENTS.len()]) {
    AGENT.store(Box::leak(Box::new(Session { agent, compat: Default::default(), events })), Ordering::Release);
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

/// Runs an export body: errors become q errors, panics become `'prom: internal error`.
#[inline]
fn guard(f: impl FnOnce() -> Result<K, String>) -> K {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => q_error(&e),
        Err(_) => q_error("internal error (a kdbprom bug; please report it)"),
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

/// A series id (long) or a name (unlabelled metric, or a KX 1.x handle).
#[inline]
fn series_ref(a: &Session, s: K, verb: &str) -> Result<SeriesId, String> {
    if qtype(s) == -t::LONG {
        // The hot path: no error text is built unless there is an error.
        let j = k::long(s, "").map_err(|_| format!("{verb}: series must not be null"))?;
        return SeriesId::try_from(j).map_err(|_| format!("{verb}: unknown series id {j}"));
    }
    if qtype(s) == -t::SYMBOL {
        return a.compat.resolve(a, k::symbol(s, verb)?).map_err(err);
    }
    let j = k::long(s, &format!("{verb}: series"))?;
    SeriesId::try_from(j).map_err(|_| format!("{verb}: unknown series id {j}"))
}

#[inline]
fn record(op: Op, s: K, v: K) -> K {
    guard(|| {
        with_agent(|a| {
            let sid = series_ref(a, s, op.verb())?;
            if let Some(x) = atom_f64(v) {
                a.record(sid, op, x).map_err(err)?;
            } else if let Some(xs) = vector_f64(v) {
                a.record_vector(sid, op, &xs).map_err(err)?;
            } else {
                return Err(format!("{}: value must be a number, a timespan or a vector of them, not a {}", op.verb(), k::type_name(v)));
            }
            Ok(NOTHING)
        })
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
/// metrics are sampled: `sd1` (q's main loop, woken by the flusher) or `timer` (the `.z.ts`
/// wrapper). `sd1` is registered only when q listens (`port` ≠ 0): a registered descriptor keeps
/// q's main loop alive, so a script that does not listen would no longer end at the end of its
/// input. q's timer does not keep it alive, so a running timer is no reason to register.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_init(cfg: K, proc: K) -> K {
    guard(|| {
        if current().is_some_and(|a| !a.is_stopped()) {
            return Err("already initialised: .prom.init runs once (call .prom.stop[] first to restart)".into());
        }
        let config = if is_identity(cfg) {
            Config::from_env(&env())
        } else if qtype(cfg) == t::DICT {
            Config::from_json(&k::json(cfg, "config")?)
        } else if matches!(qtype(cfg), t::CHAR) || qtype(cfg) == -t::SYMBOL {
            let path = k::text(cfg, "config")?;
            Config::from_file(path.strip_prefix(':').unwrap_or(&path))
        } else {
            return Err(format!("init: config must be a dictionary, a JSON file path or ::, not a {}", k::type_name(cfg)));
        }
        .map_err(|e| e.to_string())?;
        let process = if is_identity(proc) { serde_json::json!({}) } else { k::json(proc, "process")? };
        let process = ProcessInfo::from_json(&process)?;
        let hook = if process.listens() { sampler::register() } else { None };
        let via = if hook.is_some() { "sd1" } else { "timer" };
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
        let c = agent.config();
        let instrument = k::new_symbols(&c.instrument.names());
        // SAFETY: kb only allocates.
        let serve = unsafe { kb(c.serve_metrics.into()) };
        let out = k::new_dict(vec![
            ("job", k::new_symbol(&c.job)),
            ("instance", k::new_symbol(agent.instance())),
            ("instrument", instrument),
            ("serve_metrics", serve),
            ("interval_ms", k::new_long(c.interval_ms as i64)),
            // How process metrics are sampled: `sd1` (q's main loop, woken by the flusher) or `timer`.
            ("sampler", k::new_symbol(via)),
        ]);
        install(agent, events);
        Ok(out)
    })
}

/// `.prom.counter/gauge/histogram/summary`: declare a family.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_declare(kind: K, name: K, help: K, labels: K, params: K) -> K {
    guard(|| {
        let kind_s = k::symbol(kind, "declare: type")?;
        let kind = Kind::parse(kind_s).ok_or_else(|| format!("declare: unknown type {kind_s}"))?;
        let name = k::symbol(name, &format!("{kind_s}: name"))?;
        let help = k::text(help, &format!("{name}: help")).or_else(|e| if is_identity(help) { Ok(String::new()) } else { Err(e) })?;
        let labels = k::texts(labels, &format!("{name}: label names"))?;
        let (params, native) = match kind {
            Kind::Histogram => histogram_buckets(params, name)?,
            _ => (floats(params, &format!("{name}: buckets or quantiles"))?, None),
        };
        with_agent(|a| {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            a.registry().declare_with(name, &help, kind, &labels, &params, native).map_err(|e| e.to_string())?;
            Ok(NOTHING)
        })
    })
}

/// Keys a histogram's dictionary may have.
const HISTOGRAM_KEYS: &str = "buckets, factor, zero_threshold, max_buckets";

/// A histogram's `b`: classic bounds (a numeric vector, or `()`/`::` for the defaults), the symbol
/// `` `native `` (native buckets with client_golang's defaults, no classic ones), or a dictionary
/// of `buckets` (classic bounds kept beside the native ones), `factor`, `zero_threshold` and
/// `max_buckets`. Returns the classic bounds (empty: defaults, or none when native) and the
/// native configuration.
fn histogram_buckets(b: K, name: &str) -> Result<(Vec<f64>, Option<NativeConfig>), String> {
    let wrong = |what: String| format!("{name}: buckets must be a numeric vector, (), `native or a dictionary, not {what}");
    if qtype(b) == -t::SYMBOL {
        let s = k::text(b, name)?;
        return match s.as_str() {
            "native" => Ok((vec![], Some(NativeConfig::default()))),
            _ => Err(wrong(format!("`{s}"))),
        };
    }
    let Some(entries) = k::dict_items(b, &format!("{name}: histogram keys"))? else {
        if is_identity(b) || vector_f64(b).is_some() {
            return Ok((floats(b, &format!("{name}: buckets or quantiles"))?, None));
        }
        // A numeric atom could mean one bound, a bucket count or a factor: refused, not guessed.
        let hint = if atom_f64(b).is_some() { " (for one bound, enlist it)" } else { "" };
        return Err(wrong(format!("a {}{hint}", k::type_name(b))));
    };
    let (mut buckets, mut factor, mut zero_threshold, mut max_buckets) = (None, None, None, None);
    for (i, (key, v)) in entries.iter().enumerate() {
        if entries[..i].iter().any(|(k, _)| k == key) {
            return Err(format!("{name}: histogram key `{key} is given twice"));
        }
        // Nulls are NaN here: refused with the range check (a factor or zero threshold) below.
        let number =
            |what: &str| v.number().map(|n| n.0).ok_or_else(|| format!("{name}: {what} must be a number, not a {}", v.type_name()));
        match key.as_str() {
            "buckets" => {
                buckets = Some(match *v {
                    k::Item::Obj(x) if is_identity(x) || vector_f64(x).is_some() => floats(x, &format!("{name}: buckets"))?,
                    _ => return Err(format!("{name}: buckets must be a numeric vector or (), not a {}", v.type_name())),
                })
            }
            "factor" => factor = Some(number("factor")?),
            "zero_threshold" => zero_threshold = Some(number("zero_threshold")?),
            "max_buckets" => {
                let n = match v.number() {
                    Some((n, ty)) if ty == -t::LONG || ty == -t::INT || ty == -t::SHORT => n,
                    _ => return Err(format!("{name}: max_buckets must be a long, not a {}", v.type_name())),
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

fn floats(x: K, what: &str) -> Result<Vec<f64>, String> {
    if is_identity(x) || (qtype(x) == t::LIST && k::texts(x, what).is_ok_and(|v| v.is_empty())) {
        return Ok(vec![]);
    }
    let v = match atom_f64(x) {
        Some(f) => vec![f],
        None => vector_f64(x).ok_or_else(|| format!("{what} must be numbers, not a {}", k::type_name(x)))?.into_owned(),
    };
    if v.iter().any(|f| f.is_nan()) {
        return Err(format!("{what} must not contain nulls"));
    }
    Ok(v)
}

/// `.prom.series[name;labelvalues]` → long id.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_series(name: K, values: K) -> K {
    guard(|| {
        let name = k::symbol(name, "series: name")?;
        let values = k::texts(values, &format!("series {name}: label values"))?;
        with_agent(|a| {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            Ok(k::new_long(i64::from(a.series(name, &values).map_err(err)?)))
        })
    })
}

/// `.prom.inc[s;v]`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_inc(s: K, v: K) -> K {
    record(Op::Inc, s, v)
}

/// `.prom.dec[s;v]`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_dec(s: K, v: K) -> K {
    record(Op::Dec, s, v)
}

/// `.prom.set[s;v]`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_set(s: K, v: K) -> K {
    record(Op::Set, s, v)
}

/// `.prom.observe[s;v]`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_observe(s: K, v: K) -> K {
    record(Op::Observe, s, v)
}

/// `.prom.remove[s]`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_remove(s: K) -> K {
    guard(|| with_agent(|a| a.remove(series_ref(a, s, "remove")?).map_err(err).map(|_| NOTHING)))
}

/// `.prom.text[]` → the text exposition.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_text(_: K) -> K {
    guard(|| with_agent(|a| Ok(k::new_string(&a.text().map_err(err)?))))
}

/// The stats as (name, long) pairs, for `.prom.stats[]` and `.prom.stop[]`.
fn stats_pairs(a: &Agent) -> Vec<(&'static str, K)> {
    let view = a.stats();
    let mut pairs: Vec<(&str, K)> = view.fields().iter().map(|(n, v)| (*n, k::new_long(*v as i64))).collect();
    let targets = view
        .targets
        .iter()
        .map(|(name, c)| {
            let (counts, failed, last) = StatsView::target_fields(c);
            let mut d: Vec<(&str, K)> = counts.iter().map(|(n, v)| (*n, k::new_long(*v as i64))).collect();
            d.insert(2, ("samples_failed", k::new_dict(failed.iter().map(|(n, v)| (*n, k::new_long(*v as i64))).collect())));
            d.push(("last_success", k::new_float(last)));
            (name.as_str(), k::new_dict(d))
        })
        .collect();
    pairs.push(("targets", k::new_dict(targets)));
    pairs
}

/// `.prom.stats[]` → the library's own counters.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_stats(_: K) -> K {
    guard(|| with_agent(|a| Ok(k::new_dict(stats_pairs(a)))))
}

fn outcomes_dict(outcomes: &[crate::push::Outcome]) -> K {
    k::new_dict(
        outcomes
            .iter()
            .map(|o| {
                // SAFETY: kb only allocates.
                let ok = unsafe { kb(o.ok.into()) };
                let d = k::new_dict(vec![
                    ("ok", ok),
                    ("status", k::new_long(i64::from(o.status))),
                    ("message", k::new_string(&o.message)),
                    ("samples", k::new_long(o.samples as i64)),
                    ("bytes", k::new_long(o.bytes as i64)),
                    ("ms", k::new_float(o.millis)),
                    ("attempts", k::new_long(i64::from(o.attempts))),
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
            Ok(k::new_dict(pairs))
        })
    })
}

/// Handler wrappers: a start token from the agent's monotonic clock (0 before init).
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_begin(_: K) -> K {
    guard(|| Ok(k::new_long(current().map_or(0, |a| a.now_ns()))))
}

fn request(h: K, t0: K, failed: bool) -> K {
    guard(|| {
        let h = k::long(h, "handler")?;
        let t0 = k::long(t0, "start token")?;
        // Instrumentation never fails a user's request because kdbprom is not running.
        if let Some(a) = current() {
            a.request(h, t0, failed).map_err(err)?;
        }
        Ok(NOTHING)
    })
}

/// Handler wrappers: the request ended normally.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_end(h: K, t0: K) -> K {
    request(h, t0, false)
}

/// Handler wrappers: the user's handler signalled an error.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_fail(h: K, t0: K) -> K {
    request(h, t0, true)
}

/// `.z.po/.z.pc/.z.wo/.z.wc` wrappers: kind 0 ipc, 1 websocket.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_conn(kind: K, opened: K) -> K {
    guard(|| {
        let kind = k::long(kind, "connection kind")?;
        let opened = k::boolean(opened, "opened")?;
        if let Some(a) = current() {
            a.connection(kind, opened).map_err(err)?;
        }
        Ok(NOTHING)
    })
}

/// Process sample on q's main thread: `.Q.w[]` and the open handle count.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_sample(qw: K, handles: K) -> K {
    guard(|| {
        let serde_json::Value::Object(m) = k::json(qw, "sample: .Q.w[]")? else {
            return Err(format!("sample: .Q.w[] must be a dictionary, not a {}", k::type_name(qw)));
        };
        let mem: Vec<(&str, f64)> = m.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_f64()?))).collect();
        let handles = atom_f64(handles).ok_or_else(|| format!("sample: handles must be a number, not a {}", k::type_name(handles)))?;
        with_agent(|a| {
            a.sample(&mem, handles);
            Ok(NOTHING)
        })
    })
}

/// KX 1.x `.prom.newmetric[metric;type;labelnames;help]`.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_newmetric(metric: K, kind: K, labels: K, help: K) -> K {
    guard(|| {
        let metric = k::symbol(metric, "newmetric: metric")?;
        let kind_s = k::symbol(kind, "newmetric: type")?;
        let kind = Kind::parse(kind_s).ok_or_else(|| format!("newmetric {metric}: unknown type {kind_s}"))?;
        let labels = k::texts(labels, &format!("newmetric {metric}: label names"))?;
        let help = k::text(help, &format!("newmetric {metric}: help"))?;
        with_agent(|a| {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            a.compat.newmetric(a, metric, kind, &labels, &help).map_err(err)?;
            Ok(NOTHING)
        })
    })
}

/// KX 1.x `.prom.addmetric[metric;labelvals;params;startval]` → the handle symbol.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_addmetric(metric: K, values: K, params: K, start: K) -> K {
    guard(|| {
        let metric = k::symbol(metric, "addmetric: metric")?;
        let values = k::texts(values, &format!("addmetric {metric}: label values"))?;
        let params = floats(params, &format!("addmetric {metric}: params"))?;
        let start = floats(start, &format!("addmetric {metric}: startval"))?;
        with_agent(|a| {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            Ok(k::new_symbol(&a.compat.addmetric(a, metric, &values, &params, &start).map_err(err)?))
        })
    })
}

/// KX 1.x `.prom.updval[name;func;val]`, with func already mapped by the q script to
/// `` `set`inc`dec`observe `` (from `:` `+` `-` `,`).
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_updval(name: K, func: K, v: K) -> K {
    let op = match k::symbol(func, "updval: func").ok().and_then(updval_op) {
        Some(op) => op,
        None => return guard(|| Err("updval: func must be one of : + - ,".into())),
    };
    record(op, name, v)
}

/// `.z.pw` and `.z.bm` wrappers: counts one event, by name (`` `auth_failure ``,
/// `` `bad_message ``: [`crate::builtin::EVENTS`]). Silent before init and after stop, as the
/// request wrappers are.
#[unsafe(no_mangle)]
pub extern "C" fn kdbprom_event(name: K) -> K {
    guard(|| {
        let name = k::symbol(name, "event")?;
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
