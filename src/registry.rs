//! Metric families and their labelled series: declared on q's thread, read lock-free by the record
//! path and the flusher.
//!
//! Declaration and series creation take a mutex (they are rare and may allocate). Everything the
//! record path and the flusher read lives in append-only [`boxcar::Vec`]s, so a lookup by
//! [`SeriesId`] is an index, never a lock or a hash.

use crate::event::{Op, SeriesId};
use crate::name::{NameError, check_label, check_metric};
use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;

/// client_golang's default zero threshold for native histograms, 2^-128.
pub const DEFAULT_ZERO_THRESHOLD: f64 = 2.938735877055719e-39;
/// Default cap on a native histogram's populated buckets (positive + negative) before its schema is reduced.
pub const DEFAULT_MAX_BUCKETS: usize = 160;

/// How a native histogram is set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NativeConfig {
    /// Initial schema, -4..=8 (clamped into that range by [`crate::aggregate::NativeHistogram::new`]).
    pub schema: i8,
    /// Observations with `|v| <= zero_threshold` count in the zero bucket.
    pub zero_threshold: f64,
    /// Populated buckets (both signs) allowed before the schema is lowered; 0 means no limit.
    pub max_buckets: usize,
}

impl Default for NativeConfig {
    /// Schema 3 (factor 1.1), 2^-128 zero threshold, 160 buckets: client_golang's usual choice.
    fn default() -> Self {
        NativeConfig { schema: 3, zero_threshold: DEFAULT_ZERO_THRESHOLD, max_buckets: DEFAULT_MAX_BUCKETS }
    }
}

/// Index of a family in the registry.
pub type FamilyId = u32;

/// The four Prometheus metric types kdbprom aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Monotonic total.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Histogram: classic (fixed upper bounds), native (sparse exponential buckets), or both;
    /// see [`Family::params`] and [`Family::native`].
    Histogram,
    /// Quantiles over a sliding window, plus cumulative sum and count.
    Summary,
}

impl Kind {
    /// The name used in `# TYPE` lines and in q.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }

    /// Parses the q symbol naming a type.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            "summary" => Kind::Summary,
            _ => return None,
        })
    }

    /// Whether `op` makes sense for this kind.
    pub fn allows(self, op: Op) -> bool {
        matches!(
            (self, op),
            (Kind::Counter, Op::Inc) | (Kind::Gauge, Op::Inc | Op::Dec | Op::Set) | (Kind::Histogram | Kind::Summary, Op::Observe)
        )
    }
}

/// Default histogram bounds for request durations: 100 µs to 10 s.
pub const DEFAULT_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Default summary quantiles.
pub const DEFAULT_QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// A declared metric family: everything about a metric except its values.
#[derive(Debug)]
pub struct Family {
    /// Metric name as pushed.
    pub name: Box<str>,
    /// HELP text.
    pub help: Box<str>,
    /// Type.
    pub kind: Kind,
    /// Label names, in declaration order.
    pub label_names: Box<[Box<str>]>,
    /// Histogram upper bounds (without +Inf) or summary quantiles; empty otherwise. Empty for a
    /// native-only histogram (one with [`Family::native`] and no classic buckets).
    pub params: Arc<[f64]>,
    /// A histogram's native (sparse, exponential) buckets, when declared native; it then keeps
    /// its classic buckets too when `params` is not empty.
    pub native: Option<NativeConfig>,
}

impl Family {
    /// True for a histogram with classic `le` buckets (classic only, or classic and native).
    pub fn has_classic_buckets(&self) -> bool {
        self.kind == Kind::Histogram && !self.params.is_empty()
    }
}

/// The label that marks a family's overflow series (OpenTelemetry's convention): the one series
/// that takes every new label set past the cardinality limits, with `on_series_limit = "overflow"`.
pub const OVERFLOW_LABEL: &str = "otel_metric_overflow";

/// One labelled series. Read by the record path through [`Registry::slot`].
#[derive(Debug)]
pub struct Slot {
    /// Owning family.
    pub family: FamilyId,
    /// Copied from the family so the record path needs one lookup.
    pub kind: Kind,
    /// Label values, in the family's label-name order. All empty (so no label of the family is
    /// written) for the overflow series.
    pub label_values: Box<[Box<str>]>,
    /// When the series was created (ms since the Unix epoch): remote-write 2.0's start timestamp.
    pub created_ms: i64,
    /// True for the family's overflow series, which the encoders label [`OVERFLOW_LABEL`]`="true"`
    /// and the aggregator counts records of. The record path never reads it.
    pub overflow: bool,
    /// Not counted against `max_series` (see `Count`).
    exempt: bool,
    /// What the record path may do: [`gate::ALIVE`] and one bit per op the kind allows, or 0 once
    /// removed. One byte, so the record path reads one load to check a series, its op and its sign.
    gate: AtomicU8,
}

/// The bits of a [`Slot`]'s gate.
pub mod gate {
    use super::{Kind, Op};

    /// The series is live.
    pub const ALIVE: u8 = 1;
    /// Only values ≥ 0 (a counter).
    pub const NON_NEGATIVE: u8 = 1 << 6;

    /// The bit of `op`.
    #[inline(always)]
    pub const fn op(op: Op) -> u8 {
        2 << op as u8
    }

    /// True when a series with gate `g` takes `op` with `v`: live, an op its kind takes, a finite
    /// value, not negative for a counter.
    #[inline(always)]
    pub fn accepts(g: u8, op: Op, v: f64) -> bool {
        let need = ALIVE | self::op(op);
        if g & need != need {
            return false;
        }
        // +0 up to the largest finite double, the usual case, in one compare of the bits.
        v.to_bits() < f64::INFINITY.to_bits() || (v.is_finite() && (v >= 0.0 || g & NON_NEGATIVE == 0))
    }

    /// A live series of `kind`.
    pub fn open(kind: Kind) -> u8 {
        let ops = [Op::Inc, Op::Dec, Op::Set, Op::Observe].into_iter().filter(|&o| kind.allows(o)).fold(0, |g, o| g | op(o));
        ALIVE | ops | if kind == Kind::Counter { NON_NEGATIVE } else { 0 }
    }
}

impl Slot {
    /// False once `.prom.remove` forgot the series.
    pub fn is_alive(&self) -> bool {
        self.gate.load(Ordering::Acquire) & gate::ALIVE != 0
    }

    /// True when `op` with `v` is valid on this series as it is now: live, an op its kind takes, a
    /// finite value, not negative for a counter. The record path's whole check.
    #[inline(always)]
    pub fn accepts(&self, op: Op, v: f64) -> bool {
        gate::accepts(self.gate.load(Ordering::Acquire), op, v)
    }
}

/// Why a declaration or lookup was refused. Each text names the metric.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RegistryError {
    /// Bad metric or label name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A label name the kind or the configuration reserves.
    #[error("{metric}: label '{label}' is reserved ({why})")]
    ReservedLabel {
        /// The family.
        metric: String,
        /// The label name.
        label: String,
        /// Why it is reserved (its kind uses it, it marks the overflow series, or the configuration sets it).
        why: &'static str,
    },
    /// The same label name twice.
    #[error("{metric}: label '{label}' is given twice")]
    DuplicateLabel {
        /// The family.
        metric: String,
        /// The label name.
        label: String,
    },
    /// Declared again with another type, labels or buckets.
    #[error("{name} is already declared as a {kind} with other labels or parameters")]
    Redeclared {
        /// The family.
        name: String,
        /// The kind it was declared with first.
        kind: &'static str,
    },
    /// A histogram/summary's `_bucket`/`_sum`/`_count` collides with another family.
    #[error("{name} clashes with {other}: a histogram or summary owns its _bucket, _sum and _count names")]
    Clash {
        /// The family being declared.
        name: String,
        /// The family it collides with.
        other: String,
    },
    /// Buckets or quantiles not usable.
    #[error("{metric}: {why}")]
    BadParams {
        /// The family.
        metric: String,
        /// What is wrong with them.
        why: String,
    },
    /// No family of that name.
    #[error("unknown metric {0}")]
    UnknownMetric(String),
    /// Label values do not match the declared label names.
    #[error("{metric} has {expected} label(s), {got} value(s) given")]
    LabelCount {
        /// The family.
        metric: String,
        /// Its label names.
        expected: usize,
        /// The values given.
        got: usize,
    },
    /// Cardinality limit reached.
    #[error("{metric}: too many series (limit {limit} {scope})")]
    TooManySeries {
        /// The family.
        metric: String,
        /// The limit reached.
        limit: usize,
        /// `per metric` or `in all`.
        scope: &'static str,
    },
    /// A labelled metric addressed by its bare name.
    #[error("{0} has labels: get a series id with .prom.series first")]
    Labelled(String),
    /// Not a live series id.
    #[error("unknown series id {0}")]
    UnknownSeries(i64),
}

/// What a new label set past `max_series` or `max_series_per_metric` gets (`on_series_limit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnSeriesLimit {
    /// The family's overflow series ([`OVERFLOW_LABEL`]`="true"`), created on first need and
    /// exempt from the limits: q never fails because a label value was new.
    #[default]
    Overflow,
    /// [`RegistryError::TooManySeries`], a q error.
    Error,
}

impl OnSeriesLimit {
    /// Parses the configuration's spelling, `"overflow"` or `"error"`.
    pub fn parse(s: &str) -> Option<OnSeriesLimit> {
        match s {
            "overflow" => Some(OnSeriesLimit::Overflow),
            "error" => Some(OnSeriesLimit::Error),
            _ => None,
        }
    }

    /// The configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnSeriesLimit::Overflow => "overflow",
            OnSeriesLimit::Error => "error",
        }
    }
}

/// Cardinality limits and the label names the configuration owns.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Live series over all families.
    pub max_series: usize,
    /// Live series in one family.
    pub max_series_per_metric: usize,
    /// What a new label set past either limit gets.
    pub on_series_limit: OnSeriesLimit,
    /// Labels added to every series by configuration (`job`, `instance`, static labels).
    pub reserved_labels: HashSet<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_series: 100_000,
            max_series_per_metric: 10_000,
            on_series_limit: OnSeriesLimit::Overflow,
            reserved_labels: ["job", "instance"].into_iter().map(String::from).collect(),
        }
    }
}

#[derive(Default)]
struct Inner {
    by_name: HashMap<Box<str>, FamilyId>,
    /// Names a histogram or summary claims besides its own (x_bucket, x_sum, x_count) → owner.
    suffixes: HashMap<String, String>,
    series: Vec<HashMap<Box<[Box<str>]>, SeriesId>>,
    /// Each family's live overflow series, if it has one (not in `series`: its label values are
    /// all empty, which a real label set may be too).
    overflow: Vec<Option<SeriesId>>,
}

/// The set of families and series of one agent.
pub struct Registry {
    /// This registry's [`Registry::generation`].
    generation: u64,
    limits: Limits,
    inner: Mutex<Inner>,
    families: boxcar::Vec<Family>,
    slots: boxcar::Vec<Slot>,
    /// The first ids' gates again, in one flat array: the record path's check is one indexed load.
    /// Ids past it (a process that removed and made more than [`flat_gates`] series) are checked
    /// in their slot.
    gates: Box<[AtomicU8]>,
    /// Bare name → the series of an unlabelled family, for `.prom.inc[`name;1]`.
    unlabelled: ArcSwap<HashMap<Box<str>, SeriesId>>,
    live: AtomicUsize,
    /// Live series the overflow mechanism exempted from `max_series` (overflow series, and the
    /// series of unlabelled families declared past it): counted in `live`, not against the limit.
    exempt: AtomicUsize,
}

/// The next [`Registry::generation`]: process-wide, so a registry made after another was dropped
/// (`.prom.stop[]` then `.prom.init`), whose ids restart at 0, is never taken for it. Starts at 1:
/// 0 is no registry's.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// How many ids get a flat gate: every series the limits allow twice over (room for removing and
/// making them again), and 65,536 for the built-ins and overflow series; 2 bytes per series.
fn flat_gates(l: &Limits) -> usize {
    l.max_series.saturating_mul(2).saturating_add(1 << 16).min(u32::MAX as usize)
}

/// How a series [`Registry::create_series`] makes counts against `max_series`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Count {
    /// Like any series (user series, within the limits, and the built-ins').
    Counted,
    /// Not at all: the overflow mechanism's own (unlabelled families declared past the limit,
    /// `kdbprom_series_overflow_total`), which must not take a user series' room.
    Exempt,
    /// Not at all, and it is a family's overflow series.
    Overflow,
}

impl Registry {
    /// An empty registry with these limits.
    pub fn new(limits: Limits) -> Self {
        // Zeroed by the allocator: pages are touched only as series are made.
        let gates = bytemuck::zeroed_slice_box(flat_gates(&limits));
        Registry {
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            limits,
            inner: Mutex::default(),
            families: boxcar::Vec::new(),
            slots: boxcar::Vec::new(),
            gates,
            unlabelled: ArcSwap::default(),
            live: AtomicUsize::new(0),
            exempt: AtomicUsize::new(0),
        }
    }

    /// This registry among all the process ever made: never 0, never another's. Within one
    /// generation a [`SeriesId`] names the same family, label values and overflow flag for as long
    /// as it exists (ids are never reused and a slot never changes), and a [`FamilyId`] the same
    /// [`Family`] (families are never removed or changed), so an encoder may know a series or a
    /// family again by its id and the generation alone (see [`crate::snapshot`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves Inner consistent (every insert is last), so poison is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Declares a family; declaring the identical family again returns the same id.
    ///
    /// `params` are histogram bounds or summary quantiles (empty for the defaults).
    pub fn declare(&self, name: &str, help: &str, kind: Kind, labels: &[&str], params: &[f64]) -> Result<FamilyId, RegistryError> {
        self.declare_with(name, help, kind, labels, params, None)
    }

    /// [`Registry::declare`] with native histogram buckets: with `native` set (histograms only),
    /// `params` are the classic bounds kept beside the native buckets, and empty means none
    /// (native only) instead of the defaults. Declaring the same name again with another native
    /// configuration is [`RegistryError::Redeclared`].
    pub fn declare_with(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[&str],
        params: &[f64],
        native: Option<NativeConfig>,
    ) -> Result<FamilyId, RegistryError> {
        check_metric(name)?;
        let mut seen = HashSet::new();
        for &l in labels {
            check_label(l)?;
            let reserved = match (kind, l) {
                (Kind::Histogram, "le") => Some("histograms use it for bucket bounds"),
                (Kind::Summary, "quantile") => Some("summaries use it for quantiles"),
                (_, OVERFLOW_LABEL) => Some("it marks the series that takes label sets past the cardinality limits"),
                _ if self.limits.reserved_labels.contains(l) => Some("set by configuration for every series"),
                _ => None,
            };
            if let Some(why) = reserved {
                return Err(RegistryError::ReservedLabel { metric: name.into(), label: l.into(), why });
            }
            if !seen.insert(l) {
                return Err(RegistryError::DuplicateLabel { metric: name.into(), label: l.into() });
            }
        }
        if native.is_some() && kind != Kind::Histogram {
            return Err(RegistryError::BadParams { metric: name.into(), why: format!("a {} cannot have native buckets", kind.as_str()) });
        }
        let params = if native.is_some() && params.is_empty() { Arc::from([]) } else { normalise_params(name, kind, params)? };
        let mut inner = self.lock();
        if let Some(&id) = inner.by_name.get(name) {
            let f = &self.families[id as usize];
            let same = f.kind == kind
                && f.label_names.iter().map(|s| &**s).eq(labels.iter().copied())
                && *f.params == *params
                && f.native == native;
            return if same { Ok(id) } else { Err(RegistryError::Redeclared { name: name.into(), kind: f.kind.as_str() }) };
        }
        if let Some(owner) = inner.suffixes.get(name) {
            return Err(RegistryError::Clash { name: name.into(), other: owner.clone() });
        }
        let claimed: Vec<String> = match kind {
            Kind::Histogram => vec![format!("{name}_bucket"), format!("{name}_sum"), format!("{name}_count")],
            Kind::Summary => vec![format!("{name}_sum"), format!("{name}_count")],
            _ => vec![],
        };
        if let Some(c) = claimed.iter().find(|c| inner.by_name.contains_key(c.as_str()) || inner.suffixes.contains_key(c.as_str())) {
            return Err(RegistryError::Clash { name: name.into(), other: c.clone() });
        }
        let label_names = labels.iter().map(|&l| l.into()).collect();
        let family = Family { name: name.into(), help: help.into(), kind, label_names, params, native };
        let id = self.families.push(family) as FamilyId;
        inner.by_name.insert(name.into(), id);
        for c in claimed {
            inner.suffixes.insert(c, name.into());
        }
        inner.series.push(HashMap::new());
        inner.overflow.push(None);
        if labels.is_empty() {
            // The one series of an unlabelled family exists from the start, so it is pushed as 0.
            // It is no new label set: with `overflow`, one declared past max_series is exempt.
            let sid = match self.over_limit(&inner, id) {
                Some(_) if self.limits.on_series_limit == OnSeriesLimit::Overflow => {
                    self.create_series(&mut inner, id, Box::default(), Count::Exempt)?
                }
                Some(e) => return Err(e),
                None => self.create_series(&mut inner, id, Box::default(), Count::Counted)?,
            };
            let mut map = HashMap::clone(&self.unlabelled.load());
            map.insert(name.into(), sid);
            self.unlabelled.store(Arc::new(map));
        }
        Ok(id)
    }

    /// The id of the series with these label values, created on first use. A new label set past
    /// `max_series` or `max_series_per_metric` gets the family's overflow series (with
    /// `on_series_limit = "overflow"`) or [`RegistryError::TooManySeries`] (with `"error"`).
    pub fn series(&self, name: &str, values: &[&str]) -> Result<SeriesId, RegistryError> {
        let mut inner = self.lock();
        let fid = *inner.by_name.get(name).ok_or_else(|| RegistryError::UnknownMetric(name.into()))?;
        let f = &self.families[fid as usize];
        if values.len() != f.label_names.len() {
            return Err(RegistryError::LabelCount { metric: name.into(), expected: f.label_names.len(), got: values.len() });
        }
        let key: Box<[Box<str>]> = values.iter().map(|&v| v.into()).collect();
        if let Some(&sid) = inner.series[fid as usize].get(&key) {
            return Ok(sid);
        }
        match self.over_limit(&inner, fid) {
            None => self.create_series(&mut inner, fid, key, Count::Counted),
            Some(e) if self.limits.on_series_limit == OnSeriesLimit::Error => Err(e),
            Some(_) => match inner.overflow[fid as usize] {
                Some(sid) => Ok(sid),
                None => {
                    let empty = vec![Box::<str>::default(); f.label_names.len()].into_boxed_slice();
                    let sid = self.create_series(&mut inner, fid, empty, Count::Overflow)?;
                    inner.overflow[fid as usize] = Some(sid);
                    Ok(sid)
                }
            },
        }
    }

    /// The overflow series of the family named `name`, if it has one now.
    pub fn overflow_series(&self, name: &str) -> Option<SeriesId> {
        let inner = self.lock();
        inner.overflow[*inner.by_name.get(name)? as usize]
    }

    /// Like [`Registry::series`] for the library's own families, which the user's limits do not cover.
    pub fn builtin_series(&self, name: &str, values: &[&str]) -> Result<SeriesId, RegistryError> {
        self.builtin(name, values, Count::Counted)
    }

    /// [`Registry::builtin_series`] for a series the overflow mechanism makes while q runs
    /// (`kdbprom_series_overflow_total{metric}`): not counted against `max_series`, so it takes
    /// no user series' room.
    pub fn uncounted_builtin_series(&self, name: &str, values: &[&str]) -> Result<SeriesId, RegistryError> {
        self.builtin(name, values, Count::Exempt)
    }

    fn builtin(&self, name: &str, values: &[&str], count: Count) -> Result<SeriesId, RegistryError> {
        let mut inner = self.lock();
        let fid = *inner.by_name.get(name).ok_or_else(|| RegistryError::UnknownMetric(name.into()))?;
        let key: Box<[Box<str>]> = values.iter().map(|&v| v.into()).collect();
        match inner.series[fid as usize].get(&key) {
            Some(&sid) => Ok(sid),
            None => self.create_series(&mut inner, fid, key, count),
        }
    }

    /// Why a new series of family `fid` would break a limit, if it would.
    fn over_limit(&self, inner: &Inner, fid: FamilyId) -> Option<RegistryError> {
        let metric = || self.families[fid as usize].name.to_string();
        if inner.series[fid as usize].len() >= self.limits.max_series_per_metric {
            return Some(RegistryError::TooManySeries { metric: metric(), limit: self.limits.max_series_per_metric, scope: "per metric" });
        }
        // Both change under the lock only, which the caller holds.
        let counted = self.live.load(Ordering::Relaxed).saturating_sub(self.exempt.load(Ordering::Relaxed));
        if counted >= self.limits.max_series {
            return Some(RegistryError::TooManySeries { metric: metric(), limit: self.limits.max_series, scope: "in all" });
        }
        None
    }

    /// Creates a series; the caller has checked the limits. An overflow series (its label values
    /// all empty) is kept out of the family's label-set map.
    fn create_series(&self, inner: &mut Inner, fid: FamilyId, key: Box<[Box<str>]>, count: Count) -> Result<SeriesId, RegistryError> {
        let f = &self.families[fid as usize];
        let overflow = count == Count::Overflow;
        let created_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let exempt = count != Count::Counted;
        let slot = Slot {
            family: fid,
            kind: f.kind,
            label_values: key.clone(),
            created_ms,
            overflow,
            exempt,
            gate: AtomicU8::new(gate::open(f.kind)),
        };
        let gate = slot.gate.load(Ordering::Relaxed);
        let sid = u32::try_from(self.slots.push(slot)).map_err(|_| RegistryError::TooManySeries {
            metric: f.name.to_string(),
            limit: u32::MAX as usize,
            scope: "ids ever created",
        })?;
        if let Some(g) = self.gates.get(sid as usize) {
            g.store(gate, Ordering::Release);
        }
        if !overflow {
            inner.series[fid as usize].insert(key, sid);
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        if exempt {
            self.exempt.fetch_add(1, Ordering::Relaxed);
        }
        Ok(sid)
    }

    /// Forgets a labelled series: it stops being pushed and its id stops working.
    pub fn remove(&self, sid: SeriesId) -> Result<(), RegistryError> {
        let mut inner = self.lock();
        let slot = self.live_slot(sid)?;
        let f = &self.families[slot.family as usize];
        if f.label_names.is_empty() {
            return Err(RegistryError::BadParams { metric: f.name.to_string(), why: "an unlabelled metric cannot be removed".into() });
        }
        if slot.overflow {
            // The next label set past the limits starts a new overflow series.
            inner.overflow[slot.family as usize] = None;
        } else {
            inner.series[slot.family as usize].remove(&slot.label_values);
        }
        if slot.exempt {
            self.exempt.fetch_sub(1, Ordering::Relaxed);
        }
        slot.gate.store(0, Ordering::Release);
        if let Some(g) = self.gates.get(sid as usize) {
            g.store(0, Ordering::Release);
        }
        self.live.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }

    /// The live series `sid`; the record path's only registry access.
    #[inline]
    pub fn live_slot(&self, sid: SeriesId) -> Result<&Slot, RegistryError> {
        match self.slots.get(sid as usize) {
            Some(s) if s.is_alive() => Ok(s),
            _ => Err(RegistryError::UnknownSeries(i64::from(sid))),
        }
    }

    /// True when `op` with `v` may be recorded on `sid` ([`Slot::accepts`]); false for an unknown id.
    #[inline(always)]
    pub fn accepts(&self, sid: SeriesId, op: Op, v: f64) -> bool {
        match self.gates.get(sid as usize) {
            Some(g) => gate::accepts(g.load(Ordering::Acquire), op, v),
            None => self.slots.get(sid as usize).is_some_and(|s| s.accepts(op, v)),
        }
    }

    /// Any series ever created, live or removed (the flusher needs removed ones to drop their state).
    pub fn slot(&self, sid: SeriesId) -> Option<&Slot> {
        self.slots.get(sid as usize)
    }

    /// The series of an unlabelled family, by bare name, without locking.
    pub fn by_name(&self, name: &str) -> Result<SeriesId, RegistryError> {
        if let Some(&sid) = self.unlabelled.load().get(name) {
            return Ok(sid);
        }
        match self.lock().by_name.contains_key(name) {
            true => Err(RegistryError::Labelled(name.into())),
            false => Err(RegistryError::UnknownMetric(name.into())),
        }
    }

    /// The family `fid`.
    pub fn family(&self, fid: FamilyId) -> &Family {
        &self.families[fid as usize]
    }

    /// The family named `name`, if declared.
    pub fn family_named(&self, name: &str) -> Option<FamilyId> {
        self.lock().by_name.get(name).copied()
    }

    /// Number of series ids ever handed out (live or removed).
    pub fn slot_count(&self) -> usize {
        self.slots.count()
    }

    /// Number of families.
    pub fn family_count(&self) -> usize {
        self.families.count()
    }

    /// Live series.
    pub fn live_series(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

fn normalise_params(metric: &str, kind: Kind, given: &[f64]) -> Result<Arc<[f64]>, RegistryError> {
    let bad = |why: String| RegistryError::BadParams { metric: metric.into(), why };
    let mut v: Vec<f64> = match kind {
        Kind::Counter | Kind::Gauge if given.is_empty() => return Ok(Arc::from([])),
        Kind::Counter | Kind::Gauge => return Err(bad(format!("a {} takes no buckets or quantiles", kind.as_str()))),
        Kind::Histogram if given.is_empty() => DEFAULT_BUCKETS.to_vec(),
        Kind::Summary if given.is_empty() => DEFAULT_QUANTILES.to_vec(),
        _ => given.to_vec(),
    };
    if kind == Kind::Histogram {
        // +Inf is implied; accept it from users who spell it out.
        v.retain(|b| *b != f64::INFINITY);
        if v.iter().any(|b| !b.is_finite()) {
            return Err(bad("bucket bounds must be finite numbers".into()));
        }
    } else if v.iter().any(|q| !(0.0..=1.0).contains(q)) {
        return Err(bad("quantiles must lie in [0, 1]".into()));
    }
    v.sort_by(f64::total_cmp);
    v.dedup();
    Ok(v.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> Registry {
        Registry::new(Limits { max_series: 5, max_series_per_metric: 3, ..Limits::default() })
    }

    #[test]
    fn series_ids_are_stable_and_limited() {
        let r = Registry::new(Limits { on_series_limit: OnSeriesLimit::Error, ..reg().limits });
        r.declare("rows_total", "rows", Kind::Counter, &["table"], &[]).unwrap();
        let a = r.series("rows_total", &["trade"]).unwrap();
        assert_eq!(r.series("rows_total", &["trade"]).unwrap(), a);
        r.series("rows_total", &["quote"]).unwrap();
        r.series("rows_total", &["x"]).unwrap();
        let e = r.series("rows_total", &["y"]).unwrap_err();
        assert_eq!(e.to_string(), "rows_total: too many series (limit 3 per metric)");
        r.remove(a).unwrap();
        assert!(r.live_slot(a).is_err());
        assert_ne!(r.series("rows_total", &["trade"]).unwrap(), a, "ids are never reused");
    }

    #[test]
    fn label_sets_past_the_limits_share_the_family_overflow_series() {
        let r = reg(); // 5 in all, 3 per metric, overflow
        r.declare("rows_total", "", Kind::Counter, &["table", "src"], &[]).unwrap();
        let a: Vec<SeriesId> = ["a", "b", "c"].iter().map(|t| r.series("rows_total", &[t, "x"]).unwrap()).collect();
        assert_eq!(r.overflow_series("rows_total"), None, "made on first need");
        let o = r.series("rows_total", &["d", "x"]).unwrap();
        let slot = r.live_slot(o).unwrap();
        assert!(slot.overflow && slot.label_values.iter().all(|v| v.is_empty()) && slot.label_values.len() == 2);
        assert_eq!((slot.kind, r.overflow_series("rows_total")), (Kind::Counter, Some(o)));
        assert_eq!(r.series("rows_total", &["e", "y"]).unwrap(), o, "every new label set past the limit");
        assert_eq!(r.series("rows_total", &["a", "x"]).unwrap(), a[0], "a known label set keeps its series");
        assert!(a.iter().all(|&s| !r.live_slot(s).unwrap().overflow));
        // The overflow series is exempt from max_series: 3 of 5 counted, so g gets 2 real series.
        assert_eq!(r.live_series(), 4);
        r.declare("g", "", Kind::Gauge, &["k"], &[]).unwrap();
        let empty = r.series("g", &[""]).unwrap();
        assert!(!r.live_slot(empty).unwrap().overflow, "a label set of empty values is a real one");
        r.series("g", &["x"]).unwrap();
        let go = r.series("g", &["y"]).unwrap();
        assert!(r.live_slot(go).unwrap().overflow && go != o, "one overflow series per family, past max_series too");
        // An unlabelled family declared past max_series has no label set to fold: it is exempt.
        r.declare("u", "", Kind::Gauge, &[], &[]).unwrap();
        assert!(!r.live_slot(r.by_name("u").unwrap()).unwrap().overflow);
        assert_eq!(r.live_series(), 8);
        // Removing the overflow series leaves the real series alone and frees no room...
        r.remove(go).unwrap();
        assert_eq!((r.overflow_series("g"), r.series("g", &[""]).unwrap()), (None, empty));
        let go2 = r.series("g", &["z"]).unwrap();
        assert!(r.live_slot(go2).unwrap().overflow && go2 != go, "a new overflow series");
        // ...removing a real one does.
        r.remove(a[1]).unwrap();
        let f = r.series("g", &["f"]).unwrap();
        assert!(!r.live_slot(f).unwrap().overflow);
        assert_eq!(r.series("rows_total", &["d", "x"]).unwrap(), o, "room in the family, none in all");
    }

    #[test]
    fn on_series_limit_error_keeps_the_q_error() {
        let r =
            Registry::new(Limits { max_series: 4, max_series_per_metric: 3, on_series_limit: OnSeriesLimit::Error, ..Limits::default() });
        r.declare("rows_total", "", Kind::Counter, &["table"], &[]).unwrap();
        for t in ["a", "b", "c"] {
            r.series("rows_total", &[t]).unwrap();
        }
        let e = r.series("rows_total", &["d"]).unwrap_err();
        assert_eq!(e.to_string(), "rows_total: too many series (limit 3 per metric)");
        r.declare("g", "", Kind::Gauge, &["k"], &[]).unwrap();
        r.series("g", &["x"]).unwrap();
        assert_eq!(r.series("g", &["y"]).unwrap_err().to_string(), "g: too many series (limit 4 in all)");
        assert_eq!(r.declare("u", "", Kind::Gauge, &[], &[]).unwrap_err().to_string(), "u: too many series (limit 4 in all)");
        assert_eq!(r.overflow_series("rows_total"), None);
        // Built-in series are exempt in both modes.
        r.builtin_series("g", &["builtin"]).unwrap();
        assert_eq!(OnSeriesLimit::parse("error").map(OnSeriesLimit::as_str), Some("error"));
    }

    #[test]
    fn declaration_rules() {
        let r = reg();
        let h = r.declare("lat_seconds", "", Kind::Histogram, &[], &[1.0, 0.5, f64::INFINITY]).unwrap();
        assert_eq!(&*r.family(h).params, &[0.5, 1.0]);
        assert_eq!(r.declare("lat_seconds", "", Kind::Histogram, &[], &[0.5, 1.0]).unwrap(), h);
        assert!(matches!(r.declare("lat_seconds", "", Kind::Gauge, &[], &[]), Err(RegistryError::Redeclared { .. })));
        assert!(matches!(r.declare("lat_seconds_count", "", Kind::Gauge, &[], &[]), Err(RegistryError::Clash { .. })));
        assert!(matches!(r.declare("h2", "", Kind::Histogram, &["le"], &[]), Err(RegistryError::ReservedLabel { .. })));
        assert!(matches!(r.declare("s2", "", Kind::Summary, &["job"], &[]), Err(RegistryError::ReservedLabel { .. })));
        assert!(matches!(r.declare("g", "", Kind::Gauge, &["a", "a"], &[]), Err(RegistryError::DuplicateLabel { .. })));
        assert_eq!(
            r.declare("g", "", Kind::Gauge, &["otel_metric_overflow"], &[]).unwrap_err().to_string(),
            "g: label 'otel_metric_overflow' is reserved (it marks the series that takes label sets past the cardinality limits)"
        );
        assert!(r.declare("q", "", Kind::Summary, &[], &[1.5]).is_err());
        assert_eq!(r.by_name("lat_seconds").unwrap(), 0);
        r.declare("lab", "", Kind::Gauge, &["a"], &[]).unwrap();
        assert_eq!(r.by_name("lab").unwrap_err().to_string(), "lab has labels: get a series id with .prom.series first");
        assert_eq!(r.by_name("nope").unwrap_err().to_string(), "unknown metric nope");
    }

    #[test]
    fn native_declarations() {
        let r = reg();
        let cfg = NativeConfig::default();
        let n = r.declare_with("n_seconds", "", Kind::Histogram, &[], &[], Some(cfg)).unwrap();
        let f = r.family(n);
        assert_eq!((f.params.len(), f.native, f.has_classic_buckets()), (0, Some(cfg), false), "native only: no classic bounds");
        assert_eq!(r.declare_with("n_seconds", "", Kind::Histogram, &[], &[], Some(cfg)).unwrap(), n);
        let other = NativeConfig { max_buckets: 20, ..cfg };
        let redeclared = |e: Result<FamilyId, RegistryError>| matches!(e, Err(RegistryError::Redeclared { .. }));
        assert!(redeclared(r.declare_with("n_seconds", "", Kind::Histogram, &[], &[], Some(other))));
        assert!(redeclared(r.declare("n_seconds", "", Kind::Histogram, &[], &[])), "classic vs native");
        assert!(redeclared(r.declare_with("n_seconds", "", Kind::Histogram, &[], &[1.0], Some(cfg))), "native vs both");
        let both = r.declare_with("b_seconds", "", Kind::Histogram, &[], &[2.0, 1.0], Some(cfg)).unwrap();
        assert_eq!((&*r.family(both).params, r.family(both).has_classic_buckets()), (&[1.0, 2.0][..], true));
        assert!(redeclared(r.declare("b_seconds", "", Kind::Histogram, &[], &[1.0, 2.0])));
        let c = r.declare("c_seconds", "", Kind::Histogram, &[], &[]).unwrap();
        assert_eq!((r.family(c).params.len(), r.family(c).native), (DEFAULT_BUCKETS.len(), None));
        let e = r.declare_with("s", "", Kind::Summary, &[], &[], Some(cfg)).unwrap_err();
        assert_eq!(e.to_string(), "s: a summary cannot have native buckets");
        assert!(matches!(r.declare("n_seconds_count", "", Kind::Gauge, &[], &[]), Err(RegistryError::Clash { .. })));
    }
}
