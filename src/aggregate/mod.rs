//! The flusher's aggregation state: one value per series, updated by events, read as a [`Snapshot`].
//!
//! Owned by one thread through `&mut`, so it needs no atomics; memory per series is bounded
//! (a scalar, a fixed bucket array, or a bounded sketch ring) whatever the number of events.

mod histogram;
pub mod native;
mod octaves;
mod summary;

pub use histogram::Histogram;
pub use native::{NativeConfig, NativeHistogram, NativeSnapshot, Spans};
pub use octaves::Octaves;
pub use summary::{ALPHA, MAX_BINS, Summary};

use crate::event::{Batch, Event, Op, SeriesId};
use crate::registry::{FamilyId, Kind, Registry};
use crate::snapshot::{FamilySnapshot, SeriesSnapshot, Snapshot, Value, next_version};
use std::sync::Arc;

#[derive(Debug)]
enum State {
    /// Created in the registry, no state built yet.
    Pending,
    Scalar(f64),
    Histogram(Histogram),
    /// A native histogram, with its classic buckets when the family has both (boxed: rare, and
    /// larger than the other states).
    Native(Box<Native>),
    Summary(Box<Summary>),
    /// A family's overflow series: its state, and the records that went to it. Its own variant,
    /// so counting costs the other series nothing.
    Overflow(Box<Overflow>),
    /// Removed from the registry; its memory is released.
    Gone,
}

// One per series ever made, read at every event. A histogram's bounds and their lookup behind
// one shared pointer would make it 48 bytes, but measured 7 % slower to apply (381-388 against
// 388-419 M events/s on one drain's slice), so the lookup keeps its own pointer here.
const _: () = assert!(std::mem::size_of::<State>() <= 64);

/// The state of a family's overflow series.
#[derive(Debug)]
struct Overflow {
    state: State,
    family: FamilyId,
    /// Events applied, a vector `observe` counting its values.
    records: u64,
}

impl Overflow {
    #[inline(never)]
    fn apply(&mut self, op: Op, v: f64, epoch: u64) {
        self.records += 1;
        apply_event(&mut self.state, op, v, epoch);
    }
}

/// What an event does to a state (the record's one match, shared by every series). The state
/// alone decides: the record path admits only the ops a series' kind takes (its gate), so a
/// scalar gets inc, dec or set and every other state observe.
#[inline(always)]
fn apply_event(st: &mut State, op: Op, v: f64, epoch: u64) {
    match st {
        State::Scalar(x) => {
            *x = match op {
                Op::Inc => *x + v,
                Op::Dec => *x - v,
                Op::Set => v,
                Op::Observe => *x,
            }
        }
        State::Histogram(h) => h.observe(v),
        other => apply_other(other, op, v, epoch),
    }
}

/// [`apply_event`] for the states that call out anyway (native histograms, summaries, overflow
/// series) or do nothing: kept out of line so the common cases keep the value in a register.
#[inline(never)]
fn apply_other(st: &mut State, op: Op, v: f64, epoch: u64) {
    match st {
        State::Native(h) => h.observe(v),
        State::Summary(s) => {
            s.advance(epoch);
            s.observe(v);
        }
        State::Overflow(o) => o.apply(op, v, epoch),
        State::Scalar(_) | State::Histogram(_) => apply_event(st, op, v, epoch),
        State::Pending | State::Gone => {}
    }
}

/// What a vector of observations does to a state.
fn apply_values(st: &mut State, values: &[f64], epoch: u64) {
    match st {
        State::Histogram(h) => values.iter().for_each(|&v| h.observe(v)),
        State::Native(h) => {
            values.iter().for_each(|&v| h.native.observe(v));
            if let Some(c) = &mut h.classic {
                values.iter().for_each(|&v| c.observe(v));
            }
        }
        State::Summary(s) => {
            s.advance(epoch);
            values.iter().for_each(|&v| s.observe(v));
        }
        State::Overflow(o) => {
            o.records += values.len() as u64;
            apply_values(&mut o.state, values, epoch);
        }
        _ => {}
    }
}

/// The state that holds the value: an overflow series' inner state, any other state itself.
fn inner(st: &mut State) -> &mut State {
    match st {
        State::Overflow(o) => &mut o.state,
        st => st,
    }
}

/// A native histogram series: the sparse buckets, and the classic ones when declared with both.
#[derive(Debug)]
struct Native {
    native: NativeHistogram,
    classic: Option<Histogram>,
}

impl Native {
    #[inline]
    fn observe(&mut self, v: f64) {
        self.native.observe(v);
        if let Some(c) = &mut self.classic {
            c.observe(v);
        }
    }
}

/// Aggregated values of every series of one registry.
#[derive(Debug)]
pub struct Aggregator {
    states: Vec<State>,
    epoch: u64,
    slices: usize,
    applied: u64,
    /// Series removed since the last [`Aggregator::take_ended`], with their last value: each
    /// remote-write target owes them a stale marker.
    ended: Vec<(SeriesId, Value)>,
    /// Every overflow series that has a state, in the order they got it.
    overflow: Vec<SeriesId>,
    /// Records of overflow series since removed, by family.
    overflow_retired: Vec<(FamilyId, u64)>,
    /// What the last snapshot showed of each family. Its series count also sizes the next
    /// snapshot's vectors (grown by doubling, they were half a 10 k-series snapshot's
    /// instructions, in `realloc`).
    shown: Vec<Shown>,
    /// Each series' [`print`] in the last snapshot that had it.
    prints: Vec<u64>,
    /// Scratch of [`Aggregator::snapshot`]: the families whose series or values changed.
    changed: Vec<bool>,
    /// Each classic histogram family's bucket lookup, made with its first series' state.
    octaves: Vec<Option<Option<Arc<Octaves>>>>,
}

/// A family as the last snapshot showed it (see [`FamilySnapshot::version`]).
#[derive(Debug, Default, Clone, Copy)]
struct Shown {
    /// Its version then; 0 before the first snapshot.
    version: u64,
    /// How many series it had.
    series: usize,
}

impl Aggregator {
    /// `slices` is the number of time slices a summary's window spans.
    pub fn new(slices: usize) -> Self {
        Aggregator {
            states: Vec::new(),
            epoch: 0,
            slices,
            applied: 0,
            ended: Vec::new(),
            overflow: Vec::new(),
            overflow_retired: Vec::new(),
            shown: Vec::new(),
            prints: Vec::new(),
            changed: Vec::new(),
            octaves: Vec::new(),
        }
    }

    /// Sets the summary time slice (`elapsed / slice_length`); slices that leave the window are cleared.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = self.epoch.max(epoch);
    }

    /// Events and vector values applied so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    #[inline(always)]
    fn state(&mut self, reg: &Registry, sid: SeriesId) -> &mut State {
        let i = sid as usize;
        if i < self.states.len() && !matches!(self.states[i], State::Pending) {
            return &mut self.states[i];
        }
        self.new_state(reg, sid)
    }

    /// [`Aggregator::state`] for a series seen for the first time: its state is built.
    #[cold]
    #[inline(never)]
    fn new_state(&mut self, reg: &Registry, sid: SeriesId) -> &mut State {
        let i = sid as usize;
        if i >= self.states.len() {
            self.states.resize_with(reg.slot_count().max(i + 1), || State::Pending);
        }
        if matches!(self.states[i], State::Pending) {
            self.states[i] = match reg.slot(sid) {
                Some(slot) if slot.is_alive() && slot.overflow => {
                    self.overflow.push(sid);
                    let state = self.fresh(reg, slot.family, slot.kind);
                    State::Overflow(Box::new(Overflow { state, family: slot.family, records: 0 }))
                }
                Some(slot) if slot.is_alive() => self.fresh(reg, slot.family, slot.kind),
                _ => State::Gone,
            };
        }
        &mut self.states[i]
    }

    /// Records that went to each family's overflow series so far (events, a vector `observe`
    /// counting its values), for every family that has had one since this aggregator started;
    /// in family order. Removing an overflow series does not take its records back.
    pub fn overflow_records(&self) -> Vec<(FamilyId, u64)> {
        let mut out = self.overflow_retired.clone();
        for &sid in &self.overflow {
            if let Some(State::Overflow(o)) = self.states.get(sid as usize) {
                out.push((o.family, o.records));
            }
        }
        out.sort_unstable_by_key(|&(f, _)| f);
        out.dedup_by(|b, a| {
            let same = a.0 == b.0;
            if same {
                a.1 += b.1;
            }
            same
        });
        out
    }

    /// Applies one event. Events for removed series are counted and ignored.
    #[inline]
    pub fn apply(&mut self, reg: &Registry, ev: Event) {
        self.applied += 1;
        let epoch = self.epoch;
        apply_event(self.state(reg, ev.series), ev.op, ev.value, epoch);
    }

    /// Applies a whole vector of observations.
    pub fn apply_batch(&mut self, reg: &Registry, b: &Batch) {
        self.applied += b.values.len() as u64;
        let epoch = self.epoch;
        apply_values(self.state(reg, b.series), &b.values, epoch);
    }

    /// Sets a gauge or counter directly (self-metrics and process samples, which bypass the ring).
    pub fn put(&mut self, reg: &Registry, sid: SeriesId, v: f64) {
        if let State::Scalar(x) = inner(self.state(reg, sid)) {
            *x = v;
        }
    }

    /// One observation into a histogram or summary that bypasses the ring (self-metrics): not
    /// counted among the events applied, since it was never recorded.
    pub fn observe(&mut self, reg: &Registry, sid: SeriesId, v: f64) {
        let epoch = self.epoch;
        match inner(self.state(reg, sid)) {
            State::Histogram(h) => h.observe(v),
            State::Native(h) => h.observe(v),
            State::Summary(s) => {
                s.advance(epoch);
                s.observe(v);
            }
            _ => {}
        }
    }

    /// The current value of a counter or gauge (tests and self-metrics).
    pub fn scalar(&mut self, reg: &Registry, sid: SeriesId) -> Option<f64> {
        match inner(self.state(reg, sid)) {
            State::Scalar(x) => Some(*x),
            _ => None,
        }
    }

    /// A new series' state.
    fn fresh(&mut self, reg: &Registry, fid: FamilyId, kind: Kind) -> State {
        match kind {
            Kind::Counter | Kind::Gauge => State::Scalar(0.0),
            Kind::Histogram => {
                let f = reg.family(fid);
                let mut classic = || {
                    let i = fid as usize;
                    if self.octaves.len() <= i {
                        self.octaves.resize(i + 1, None);
                    }
                    let octaves = self.octaves[i].get_or_insert_with(|| Octaves::new(&f.params).map(Arc::new)).clone();
                    Histogram::with_octaves(f.params.clone(), octaves)
                };
                match &f.native {
                    None => State::Histogram(classic()),
                    Some(cfg) => State::Native(Box::new(Native {
                        native: NativeHistogram::new(cfg),
                        classic: f.has_classic_buckets().then(classic),
                    })),
                }
            }
            Kind::Summary => State::Summary(Box::new(Summary::new(self.slices, self.epoch))),
        }
    }

    /// Every live series, with state released for removed ones.
    pub fn snapshot<'r>(&mut self, reg: &'r Registry) -> Snapshot<'r> {
        // Slots first: a slot's family is declared before the slot exists, so every family of
        // these slots is among the families counted next, whatever q declares meanwhile.
        let slots = reg.slot_count();
        let mut families: Vec<FamilySnapshot<'r>> = (0..reg.family_count() as u32)
            .map(|id| FamilySnapshot {
                id,
                family: reg.family(id),
                version: 0,
                series: Vec::with_capacity(self.shown.get(id as usize).map_or(0, |s| s.series + s.series / 8)),
            })
            .collect();
        self.shown.resize(families.len(), Shown::default());
        self.changed.clear();
        self.changed.resize(families.len(), false);
        if self.prints.len() < slots {
            self.prints.resize(slots, 0);
        }
        let epoch = self.epoch;
        for sid in 0..slots {
            let Some(slot) = reg.slot(sid as SeriesId) else { continue };
            let f = slot.family as usize;
            if !slot.is_alive() {
                if let Some(st) = self.states.get_mut(sid).filter(|st| !matches!(st, State::Gone)) {
                    if let Some(last) = value(st, &families[f].family.params, epoch) {
                        self.ended.push((sid as SeriesId, last));
                        // It was in the last snapshot (every series with a state is).
                        self.changed[f] = true;
                    }
                    if let State::Overflow(o) = st {
                        self.overflow_retired.push((o.family, o.records));
                        self.overflow.retain(|&s| s as usize != sid);
                    }
                    *st = State::Gone;
                }
                continue;
            }
            self.state(reg, sid as SeriesId);
            let st = &mut self.states[sid];
            let fam = &mut families[f];
            // Counters and gauges, most series, without the call.
            let value = match &mut *st {
                State::Scalar(x) => Value::Scalar(*x),
                other => match value(other, &fam.family.params, epoch) {
                    Some(v) => v,
                    None => continue,
                },
            };
            match print(st) {
                Some(p) if self.prints[sid] == p => {}
                Some(p) => {
                    self.prints[sid] = p;
                    self.changed[f] = true;
                }
                None => self.changed[f] = true,
            }
            fam.series.push(SeriesSnapshot {
                id: sid as SeriesId,
                label_values: &slot.label_values,
                created_ms: slot.created_ms,
                overflow: slot.overflow,
                value,
            });
        }
        // No series removed and as many as last time: the same series (none was added).
        for ((fam, shown), &changed) in families.iter_mut().zip(&mut self.shown).zip(&self.changed) {
            if changed || fam.series.len() != shown.series || shown.version == 0 {
                *shown = Shown { version: next_version(), series: fam.series.len() };
            }
            fam.version = shown.version;
        }
        Snapshot { generation: reg.generation(), families }
    }

    /// The series removed since the last call, as a snapshot of their last values (families in
    /// declaration order), so a push can end each of them with a stale marker.
    pub fn take_ended<'r>(&mut self, reg: &'r Registry) -> Snapshot<'r> {
        let mut ended = std::mem::take(&mut self.ended);
        ended.sort_by_key(|(sid, _)| reg.slot(*sid).map_or(0, |s| s.family));
        let mut families: Vec<FamilySnapshot<'r>> = Vec::new();
        for (sid, value) in ended {
            let Some(slot) = reg.slot(sid) else { continue };
            if families.last().is_none_or(|f| f.id != slot.family) {
                families.push(FamilySnapshot { id: slot.family, family: reg.family(slot.family), version: 0, series: Vec::new() });
            }
            let s =
                SeriesSnapshot { id: sid, label_values: &slot.label_values, created_ms: slot.created_ms, overflow: slot.overflow, value };
            families.last_mut().expect("pushed above").series.push(s);
        }
        Snapshot { generation: reg.generation(), families }
    }
}

/// The snapshot value of a series' state; None when it has none (never recorded, or gone).
fn value(st: &mut State, params: &[f64], epoch: u64) -> Option<Value> {
    Some(match st {
        State::Scalar(x) => Value::Scalar(*x),
        State::Histogram(h) => {
            Value::Histogram { bounds: h.bounds().clone(), cumulative: h.cumulative(), sum: h.sum(), count: h.count(), native: None }
        }
        State::Native(h) => {
            let native = Some(Box::new(h.native.snapshot()));
            match &h.classic {
                Some(c) => {
                    Value::Histogram { bounds: c.bounds().clone(), cumulative: c.cumulative(), sum: c.sum(), count: c.count(), native }
                }
                None => {
                    Value::Histogram { bounds: Arc::from([]), cumulative: Vec::new(), sum: h.native.sum(), count: h.native.count(), native }
                }
            }
        }
        State::Summary(s) => {
            s.advance(epoch);
            Value::Summary { quantiles: s.quantiles(params), sum: s.sum(), count: s.count() }
        }
        State::Overflow(o) => return value(&mut o.state, params, epoch),
        State::Pending | State::Gone => return None,
    })
}

/// A number that changes whenever the series' value does: a scalar's bits; a histogram's count,
/// since every observation adds one to it and nothing else changes a histogram. None for a
/// summary, whose window moves on with no event.
#[inline]
fn print(st: &State) -> Option<u64> {
    match st {
        State::Scalar(x) => Some(x.to_bits()),
        State::Histogram(h) => Some(h.count()),
        State::Native(h) => Some(h.native.count()),
        State::Overflow(o) => print(&o.state),
        State::Summary(_) | State::Pending | State::Gone => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Limits;

    #[test]
    fn a_family_keeps_its_version_exactly_while_it_shows_the_same() {
        let reg = Registry::new(Limits::default());
        reg.declare("g", "", Kind::Gauge, &["a"], &[]).unwrap();
        reg.declare("h", "", Kind::Histogram, &[], &[1.0]).unwrap();
        reg.declare("s", "", Kind::Summary, &[], &[0.5]).unwrap();
        let mut agg = Aggregator::new(5);
        let (x, h) = (reg.series("g", &["x"]).unwrap(), reg.by_name("h").unwrap());
        let versions = |agg: &mut Aggregator| -> [u64; 3] {
            let snap = agg.snapshot(&reg);
            std::array::from_fn(|f| snap.families[f].version)
        };
        let v0 = versions(&mut agg);
        assert!(v0.iter().all(|&v| v != 0), "{v0:?}");
        let v1 = versions(&mut agg);
        assert_eq!(v1[..2], v0[..2], "nothing happened");
        assert_ne!(v1[2], v0[2], "a summary's window moves on by itself");
        agg.apply(&reg, Event { series: x, op: Op::Set, value: 0.0 });
        assert_eq!(versions(&mut agg)[0], v0[0], "set to the value it had");
        agg.apply(&reg, Event { series: x, op: Op::Set, value: -0.0 });
        let v2 = versions(&mut agg);
        assert_ne!(v2[0], v0[0], "-0 is another value");
        assert_eq!(v2[1], v0[1]);
        agg.apply(&reg, Event { series: h, op: Op::Observe, value: f64::INFINITY });
        assert_ne!(versions(&mut agg)[1], v0[1], "an observation");
        // One series removed and another made: as many series as before, not the same ones.
        let v3 = versions(&mut agg);
        reg.remove(x).unwrap();
        reg.series("g", &["y"]).unwrap();
        let v4 = versions(&mut agg);
        assert_ne!(v4[0], v3[0]);
        assert_eq!(versions(&mut agg)[0], v4[0]);
        assert!(agg.take_ended(&reg).families.iter().all(|f| f.version == 0), "ended series promise nothing");
    }

    #[test]
    fn events_become_values() {
        let reg = Registry::new(Limits::default());
        reg.declare("c_total", "", Kind::Counter, &[], &[]).unwrap();
        reg.declare("g", "", Kind::Gauge, &["a"], &[]).unwrap();
        reg.declare("h", "", Kind::Histogram, &[], &[1.0]).unwrap();
        let g = reg.series("g", &["x"]).unwrap();
        let mut agg = Aggregator::new(5);
        agg.apply(&reg, Event { series: 0, op: Op::Inc, value: 2.0 });
        agg.apply(&reg, Event { series: g, op: Op::Set, value: 5.0 });
        agg.apply(&reg, Event { series: g, op: Op::Dec, value: 1.5 });
        agg.apply_batch(&reg, &Batch { series: reg.by_name("h").unwrap(), values: vec![0.5, 3.0] });
        let snap = agg.snapshot(&reg);
        assert_eq!(snap.families[0].series[0].value, Value::Scalar(2.0));
        assert_eq!(snap.families[1].series[0].value, Value::Scalar(3.5));
        assert!(matches!(&snap.families[2].series[0].value, Value::Histogram { cumulative, count: 2, .. } if cumulative == &[1, 2]));
        assert_eq!(agg.applied(), 5);
        reg.remove(g).unwrap();
        assert!(agg.snapshot(&reg).families[1].series.is_empty());
        let ended = agg.take_ended(&reg);
        assert_eq!(ended.families.len(), 1);
        assert_eq!((&*ended.families[0].family.name, &ended.families[0].series[0].value), ("g", &Value::Scalar(3.5)));
        assert!(agg.take_ended(&reg).families.is_empty(), "each removal ends once");
    }

    #[test]
    fn overflow_series_count_their_records() {
        let reg = Registry::new(Limits { max_series_per_metric: 1, ..Limits::default() });
        reg.declare("c_total", "", Kind::Counter, &["a"], &[]).unwrap();
        reg.declare("h", "", Kind::Histogram, &["a"], &[1.0]).unwrap();
        let c = reg.series("c_total", &["x"]).unwrap();
        let co = reg.series("c_total", &["y"]).unwrap();
        reg.series("h", &["x"]).unwrap();
        let ho = reg.series("h", &["y"]).unwrap();
        let mut agg = Aggregator::new(1);
        agg.apply(&reg, Event { series: c, op: Op::Inc, value: 1.0 });
        assert_eq!(agg.overflow_records(), [], "nothing went to an overflow series yet");
        for v in [2.0, 3.0] {
            agg.apply(&reg, Event { series: co, op: Op::Inc, value: v });
        }
        agg.apply_batch(&reg, &Batch { series: ho, values: vec![0.5, 2.0, 3.0] });
        agg.apply(&reg, Event { series: ho, op: Op::Observe, value: 0.1 });
        agg.put(&reg, co, 10.0); // not a record
        assert_eq!(agg.scalar(&reg, co), Some(10.0));
        agg.put(&reg, co, 5.0);
        let (cf, hf) = (reg.family_named("c_total").unwrap(), reg.family_named("h").unwrap());
        assert_eq!(agg.overflow_records(), [(cf, 2), (hf, 4)]);
        assert_eq!(agg.applied(), 7);
        let snap = agg.snapshot(&reg);
        let c_series: Vec<_> = snap.families[cf as usize].series.iter().map(|s| (s.overflow, s.value.clone())).collect();
        assert_eq!(c_series, [(false, Value::Scalar(1.0)), (true, Value::Scalar(5.0))]);
        let h = &snap.families[hf as usize].series[1];
        assert!(h.overflow && h.label_values == [Box::<str>::default()]);
        assert!(matches!(&h.value, Value::Histogram { cumulative, count: 4, .. } if cumulative == &[2, 4]));
        // Removed, its records still count; a new overflow series adds to them.
        reg.remove(co).unwrap();
        agg.snapshot(&reg);
        assert_eq!(agg.take_ended(&reg).families[0].series[0].value, Value::Scalar(5.0));
        let co2 = reg.series("c_total", &["z"]).unwrap();
        agg.apply(&reg, Event { series: co2, op: Op::Inc, value: 1.0 });
        agg.apply(&reg, Event { series: co, op: Op::Inc, value: 1.0 }); // removed: ignored
        assert_eq!(agg.overflow_records(), [(cf, 3), (hf, 4)]);
    }

    #[test]
    fn native_histograms_alone_and_with_classic_buckets() {
        let reg = Registry::new(Limits::default());
        let cfg = NativeConfig::default();
        reg.declare_with("n", "", Kind::Histogram, &["a"], &[], Some(cfg)).unwrap();
        reg.declare_with("b", "", Kind::Histogram, &[], &[1.0], Some(cfg)).unwrap();
        let n = reg.series("n", &["x"]).unwrap();
        let b = reg.by_name("b").unwrap();
        let values = [0.0, -2.5, 0.5, 1.0, 1.1, 3.0];
        let mut agg = Aggregator::new(1);
        let mut want = NativeHistogram::new(&cfg);
        for &v in &values[..2] {
            agg.apply(&reg, Event { series: n, op: Op::Observe, value: v });
            agg.observe(&reg, b, v);
        }
        agg.apply_batch(&reg, &Batch { series: n, values: values[2..].to_vec() });
        agg.apply_batch(&reg, &Batch { series: b, values: values[2..].to_vec() });
        values.iter().for_each(|&v| want.observe(v));
        let snap = agg.snapshot(&reg);
        assert_eq!(snap.sample_count(), 1 + (2 + 2 + 1), "a native histogram is one sample, beside b's classic buckets");
        let Value::Histogram { bounds, cumulative, sum, count, native } = &snap.families[0].series[0].value else { panic!() };
        assert_eq!((bounds.len(), cumulative.len(), *sum, *count), (0, 0, want.sum(), 6));
        assert_eq!(native.as_deref(), Some(&want.snapshot()));
        let Value::Histogram { cumulative, count, native, .. } = &snap.families[1].series[0].value else { panic!() };
        assert_eq!((cumulative.as_slice(), *count), (&[4, 6][..], 6));
        assert_eq!(native.as_deref(), Some(&want.snapshot()));
        reg.remove(n).unwrap();
        agg.snapshot(&reg);
        let ended = agg.take_ended(&reg);
        assert!(matches!(&ended.families[0].series[0].value, Value::Histogram { native: Some(s), .. } if s.count == 6));
    }
}
