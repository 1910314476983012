//! What an encoder wrote for each series last time, and whether a snapshot's series is still that one.
//!
//! The text and Pushgateway encoders keep their previous body and, per family and series, where
//! in it each series went and which values it showed ([`SeriesCache`]). Encoding the next snapshot,
//! a series whose family, labels and values are all as they were is copied from the old body; one
//! whose values changed keeps its rendered labels and gets new values; anything else is rendered
//! afresh.
//!
//! - A family is known again by its id, a series by its id, within the snapshot's generation:
//!   the registry guarantees that such an id names the same family, label values and overflow
//!   flag for as long as it exists (see [`crate::snapshot::Snapshot`]), so neither is read to be
//!   recognised. Another generation (a registry made again) shares nothing with the last body.
//!   Series of a family come in creation order, and new ones only at the end, so matching walks
//!   the old list once, skipping removed series (see [`SeriesCache::series`]).
//! - A family whose [`crate::snapshot::FamilySnapshot::version`] is the one the last body showed
//!   has the same series and values: its bytes are copied whole and its entries taken over
//!   ([`SeriesCache::keep_family`]), without looking at a series.
//! - Values are compared as bits (`f64::to_bits`), so `-0`, NaN payloads and all are exact.
//! - The constant labels are compared once per body; when they change, nothing old is used.
//!
//! Memory: two indexes (last body's, and the one being built), a few words per family and
//! series, one `u64` per value and one `u32` per offset. Each buffer's capacity follows the
//! largest snapshot seen and shrinks back when a body needs less than a quarter of it.

use crate::event::SeriesId;
use crate::registry::FamilyId;
use crate::snapshot::Value;

/// One body's families and series, in output order.
#[derive(Debug, Default)]
struct Index {
    fams: Vec<Fam>,
    series: Vec<Series>,
    /// Each series' values, as bits, back to back.
    bits: Vec<u64>,
    /// Each series' offsets into the body (the format decides which), back to back.
    marks: Vec<u32>,
}

/// A family's entry; its series run to the next family's.
#[derive(Debug, Clone, Copy)]
struct Fam {
    id: FamilyId,
    /// Its [`crate::snapshot::FamilySnapshot::version`].
    version: u64,
    series: u32,
}

/// A series' entry; its values and offsets run to the next series' (or the end).
#[derive(Debug, Clone, Copy)]
struct Series {
    id: SeriesId,
    bits: u32,
    marks: u32,
}

impl Index {
    fn clear(&mut self) {
        self.fams.clear();
        self.series.clear();
        self.bits.clear();
        self.marks.clear();
    }

    /// Gives back memory a much larger body needed once: each buffer is kept at most four times
    /// (and at least twice) what `like`, the index of the last body, holds.
    fn shrink_like(&mut self, like: &Index) {
        fn fit<T>(v: &mut Vec<T>, len: usize) {
            if v.capacity() > 4 * len + 1024 {
                v.shrink_to(2 * len);
            }
        }
        fit(&mut self.fams, like.fams.len());
        fit(&mut self.series, like.series.len());
        fit(&mut self.bits, like.bits.len());
        fit(&mut self.marks, like.marks.len());
    }

    fn fam_series_end(&self, i: usize) -> usize {
        self.fams.get(i + 1).map_or(self.series.len(), |f| f.series as usize)
    }

    /// Where series `i`'s values and offsets start (`i` may be one past the last series).
    fn series_starts(&self, i: usize) -> (usize, usize) {
        self.series.get(i).map_or((self.bits.len(), self.marks.len()), |s| (s.bits as usize, s.marks as usize))
    }

    fn series_bits(&self, i: usize) -> &[u64] {
        &self.bits[self.series_starts(i).0..self.series_starts(i + 1).0]
    }

    fn series_marks(&self, i: usize) -> &[u32] {
        &self.marks[self.series_starts(i).1..self.series_starts(i + 1).1]
    }
}

/// A run of the last body still to be copied into the new one: consecutive unchanged pieces
/// (series, family headers) become one copy. Both kept encoders write through one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Start of the run in the last body.
    pub from: usize,
    /// End of the run in the last body.
    pub to: usize,
}

impl Run {
    /// Bytes in the run.
    pub fn len(&self) -> usize {
        self.to - self.from
    }

    /// True when the run holds nothing.
    pub fn is_empty(&self) -> bool {
        self.from == self.to
    }

    /// Adds `from..to` of the last body. When it does not follow on from the run, the run so far
    /// is returned, to be written first, and a new one starts at `from`.
    pub fn add(&mut self, from: usize, to: usize) -> Option<std::ops::Range<usize>> {
        let before = if self.to != from {
            let r = self.take();
            self.from = from;
            r
        } else {
            None
        };
        self.to = to;
        before
    }

    /// The run, to be written now (None when empty); the run is left empty.
    pub fn take(&mut self) -> Option<std::ops::Range<usize>> {
        let r = self.from..self.to;
        *self = Run::default();
        (!r.is_empty()).then_some(r)
    }

    /// True when the run is the whole of a last body `len` bytes long.
    pub fn is_whole(&self, len: usize) -> bool {
        self.from == 0 && self.to == len
    }
}

/// The previous body's index and the one being built (see the module doc).
#[derive(Debug, Default)]
pub struct SeriesCache {
    old: Index,
    new: Index,
    /// The generation and constant labels both indexes were made with.
    generation: u64,
    consts: Vec<(String, String)>,
    /// The next old family to look at.
    next_fam: usize,
    /// The next old series of the family being written to look at, and the family's end.
    cursor: usize,
    fam_end: usize,
    /// A series of this family was not among the old ones: every later one is new too.
    exhausted: bool,
}

impl SeriesCache {
    /// Starts a body of a snapshot of `generation` with `consts` on every series; with another
    /// generation or other constant labels than last time, nothing of the last body is used.
    pub fn begin(&mut self, generation: u64, consts: &[(String, String)]) {
        self.new.clear();
        if self.generation != generation || self.consts != consts {
            self.clear();
            self.generation = generation;
            self.consts.clear();
            self.consts.extend_from_slice(consts);
        }
        self.next_fam = 0;
        self.exhausted = true;
    }

    /// Ends the body: what was written becomes the old body's index.
    pub fn finish(&mut self) {
        std::mem::swap(&mut self.old, &mut self.new);
        self.new.clear();
        self.new.shrink_like(&self.old);
    }

    /// Forgets everything (the body the offsets point into is gone).
    pub fn clear(&mut self) {
        self.old.clear();
        self.new.clear();
    }

    /// Where the last body had family `id`, if it did (its place among the last body's families).
    fn find(&self, id: FamilyId) -> Option<usize> {
        // Families come in declaration order, so the old one is at or after the last one found.
        let old = &self.old;
        (self.next_fam..old.fams.len()).find(|&i| old.fams[i].id == id)
    }

    /// Starts family `id` at `version`; where the last body had it (its place among the last
    /// body's families), if it did.
    pub fn family(&mut self, id: FamilyId, version: u64) -> Option<usize> {
        let found = self.find(id);
        if let Some(i) = found {
            self.next_fam = i + 1;
            self.cursor = self.old.fams[i].series as usize;
            self.fam_end = self.old.fam_series_end(i);
        }
        self.new.fams.push(Fam { id, version, series: self.new.series.len() as u32 });
        self.exhausted = found.is_none();
        found
    }

    /// Where the last body had family `id` when it showed it at `version`, other than 0: the
    /// same series with the same values (see [`crate::snapshot::FamilySnapshot::version`]), so
    /// its bytes can be copied whole ([`SeriesCache::keep_family`]).
    pub fn unchanged_family(&self, id: FamilyId, version: u64) -> Option<usize> {
        self.find(id).filter(|&i| version != 0 && self.old.fams[i].version == version)
    }

    /// Enters old family `i` and its series as they were, their offsets moved `by` bytes: the
    /// caller copied the family's bytes. A few words per series, where comparing each series'
    /// values and copying it alone cost a few hundred instructions.
    pub fn keep_family(&mut self, i: usize, by: i64) {
        let (old, new) = (&self.old, &mut self.new);
        self.next_fam = i + 1;
        self.exhausted = true;
        let f = old.fams[i];
        new.fams.push(Fam { series: new.series.len() as u32, ..f });
        let (s0, s1) = (f.series as usize, old.fam_series_end(i));
        let ((b0, m0), (b1, m1)) = (old.series_starts(s0), old.series_starts(s1));
        let (db, dm) = (new.bits.len() as i64 - b0 as i64, new.marks.len() as i64 - m0 as i64);
        new.series.extend(old.series[s0..s1].iter().map(|s| Series {
            id: s.id,
            bits: (i64::from(s.bits) + db) as u32,
            marks: (i64::from(s.marks) + dm) as u32,
        }));
        new.bits.extend_from_slice(&old.bits[b0..b1]);
        new.marks.extend(old.marks[m0..m1].iter().map(|&m| (i64::from(m) + by) as u32));
    }

    /// Starts series `id` of the current family. Returns the old series it is, when the last
    /// body had it.
    ///
    /// Old series are looked for from the one after the last found: a removed series is skipped,
    /// and the first series not found ends the looking for this family, since every later series
    /// was made after it and so after every old one (a snapshot lists series in creation order).
    pub fn series(&mut self, id: SeriesId) -> Option<usize> {
        let mut found = None;
        if !self.exhausted {
            match (self.cursor..self.fam_end).find(|&i| self.old.series[i].id == id) {
                Some(i) => {
                    self.cursor = i + 1;
                    found = Some(i);
                }
                None => self.exhausted = true,
            }
        }
        let n = &mut self.new;
        n.series.push(Series { id, bits: n.bits.len() as u32, marks: n.marks.len() as u32 });
        found
    }

    /// Appends every number `v` shows, as bits, to the current series; for a native histogram
    /// its schema, zero bucket, spans and deltas too (list lengths first, so two lists cannot
    /// run into each other).
    pub fn push_value(&mut self, v: &Value) {
        let b = &mut self.new.bits;
        match v {
            Value::Scalar(x) => b.push(x.to_bits()),
            Value::Histogram { cumulative, sum, count, native, .. } => {
                b.push(cumulative.len() as u64);
                b.extend_from_slice(cumulative);
                b.push(sum.to_bits());
                b.push(*count);
                if let Some(n) = native {
                    b.push(u64::from(n.schema as u8));
                    b.push(n.zero_threshold.to_bits());
                    b.push(n.zero_count);
                    b.push(n.count);
                    b.push(n.sum.to_bits());
                    for side in [&n.negative, &n.positive] {
                        b.push(side.spans.len() as u64);
                        b.extend(side.spans.iter().map(|&(o, l)| u64::from(o as u32) << 32 | u64::from(l)));
                        b.push(side.deltas.len() as u64);
                        b.extend(side.deltas.iter().map(|&d| d as u64));
                    }
                }
            }
            Value::Summary { quantiles, sum, count } => {
                b.push(quantiles.len() as u64);
                b.extend(quantiles.iter().flat_map(|(q, v)| [q.to_bits(), v.to_bits()]));
                b.push(sum.to_bits());
                b.push(*count);
            }
        }
    }

    /// True when the current series' values are old series `i`'s.
    #[inline]
    pub fn same_values(&self, i: usize) -> bool {
        let start = self.new.series.last().map_or(0, |s| s.bits as usize);
        let (old, new) = (self.old.series_bits(i), &self.new.bits[start..]);
        old.len() == new.len() && old.iter().zip(new).all(|(a, b)| a == b)
    }

    /// Appends an offset of the current series.
    #[inline]
    pub fn push_mark(&mut self, at: usize) {
        self.new.marks.push(at as u32);
    }

    /// Appends old series `i`'s offsets, moved as its bytes were: from `from` in the old body to
    /// `to` in the new one.
    pub fn push_marks_moved(&mut self, i: usize, from: usize, to: usize) {
        let m = self.old.series_marks(i);
        self.new.marks.extend(m.iter().map(|&x| (x as usize - from + to) as u32));
    }

    /// Adds `by` to every offset of the current family's series (its body moved).
    pub fn shift_family_marks(&mut self, by: i64) {
        let Some(f) = self.new.fams.last() else { return };
        let Some(first) = self.new.series.get(f.series as usize) else { return };
        for m in &mut self.new.marks[first.marks as usize..] {
            *m = (i64::from(*m) + by) as u32;
        }
    }

    /// Old series `i`'s offsets into the old body.
    pub fn old_marks(&self, i: usize) -> &[u32] {
        self.old.series_marks(i)
    }

    /// Bytes held, for tests and the memory bound.
    pub fn heap_bytes(&self) -> usize {
        let one = |x: &Index| {
            x.fams.capacity() * size_of::<Fam>()
                + x.series.capacity() * size_of::<Series>()
                + x.bits.capacity() * 8
                + x.marks.capacity() * 4
        };
        one(&self.old) + one(&self.new)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::aggregate::{Aggregator, NativeConfig};
    use crate::event::{Event, Op, SeriesId};
    use crate::registry::{Kind, Limits, Registry};
    use crate::snapshot::Snapshot;

    /// A small deterministic generator (xorshift64).
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    const VALUES: [f64; 12] = [1.0, 2.0, 0.5, 0.1, -0.0, 1e-7, 3.5e9, 1e21, f64::NAN, f64::INFINITY, 123456.0, 7.25];
    const LABELS: [&str; 9] = ["a", "b", "", "x\"y", "back\\slash", "new\nline", "/var/tmp", "ü", "a-much-longer-label-value-0123456789"];
    const CONSTS: [&[(&str, &str)]; 3] = [&[], &[("env", "prod")], &[("env", "pr\"od"), ("zone", "")]];

    fn declare(reg: &Registry, i: usize) {
        let native = Some(NativeConfig::default());
        let r = match i {
            0 => reg.declare("c_total", "Counts.", Kind::Counter, &["a", "b"], &[]),
            1 => reg.declare("g", "A \\ gauge\nwith two lines.", Kind::Gauge, &["x"], &[]),
            2 => reg.declare("u", "", Kind::Gauge, &[], &[]),
            3 => reg.declare("h_seconds", "Classic.", Kind::Histogram, &["p"], &[0.1, 1.0, 10.0]),
            4 => reg.declare("s_bytes", "Summary.", Kind::Summary, &["q"], &[0.5, 0.9]),
            5 => reg.declare_with("n_seconds", "Native.", Kind::Histogram, &["p"], &[], native),
            6 => reg.declare_with("b_seconds", "Both.", Kind::Histogram, &[], &[0.001, 1.0], native),
            _ => reg.declare("late_total", "Declared late.", Kind::Counter, &["k"], &[]),
        };
        r.unwrap();
    }

    /// Drives a registry through `steps` rounds of random changes (new series, removed series,
    /// new values, a family declared late, overflow series, other constant labels) and calls
    /// `check` with each round's snapshot and constant labels; every few rounds the same state
    /// is checked twice. A second registry goes through the same changes with other label values
    /// (so the same ids name other series there, as in a registry made again after `.prom.stop[]`)
    /// and every few rounds its snapshot is checked between two of the first one's.
    pub(crate) fn scenario(seed: u64, steps: usize, mut check: impl FnMut(&Snapshot<'_>, &[(String, String)])) {
        let mut rng = Rng(seed | 1);
        let regs = [0, 1].map(|_| Registry::new(Limits { max_series_per_metric: 6, ..Limits::default() }));
        for reg in &regs {
            for f in 0..7 {
                declare(reg, f);
            }
        }
        let mut aggs = [Aggregator::new(1), Aggregator::new(1)];
        let both = |f: &dyn Fn(&Registry) -> Option<SeriesId>| {
            let ids = regs.each_ref().map(f);
            assert_eq!(ids[0], ids[1], "the same changes give the same ids");
            ids[0]
        };
        let mut live: Vec<SeriesId> = vec![both(&|r| r.by_name("u").ok()).unwrap(), both(&|r| r.by_name("b_seconds").ok()).unwrap()];
        let mut consts: Vec<(String, String)> = Vec::new();
        for step in 0..steps {
            if step == steps / 2 {
                regs.iter().for_each(|r| declare(r, 7));
            }
            for _ in 0..rng.below(6) {
                match rng.below(10) {
                    0..=2 => {
                        let names = ["c_total", "g", "h_seconds", "s_bytes", "n_seconds", "late_total"];
                        let name = names[rng.below(if step >= steps / 2 { 6 } else { 5 })];
                        let n = if name == "c_total" { 2 } else { 1 };
                        let vals: Vec<&str> = (0..n).map(|_| LABELS[rng.below(LABELS.len())]).collect();
                        let made = both(&|r| {
                            // The second registry: other label values at the same places.
                            let other = format!("{}z", vals[0]);
                            let mut vals = vals.clone();
                            if std::ptr::eq(r, &regs[1]) {
                                vals[0] = &other;
                            }
                            r.series(name, &vals).ok()
                        });
                        live.extend(made);
                    }
                    3 if live.len() > 2 => {
                        let s = live.swap_remove(2 + rng.below(live.len() - 2));
                        regs.iter().for_each(|r| _ = r.remove(s)); // a duplicate in `live` is gone already
                    }
                    4 => consts = CONSTS[rng.below(3)].iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
                    _ => {
                        let s = live[rng.below(live.len())];
                        let v = VALUES[rng.below(VALUES.len())];
                        for op in [Op::Inc, Op::Set, Op::Observe] {
                            let v = if op == Op::Inc { v.abs() } else { v };
                            for (reg, agg) in regs.iter().zip(&mut aggs) {
                                if reg.accepts(s, op, v) {
                                    agg.apply(reg, Event { series: s, op, value: v });
                                }
                            }
                        }
                    }
                }
            }
            let snap = aggs[0].snapshot(&regs[0]);
            check(&snap, &consts);
            if step % 7 == 0 {
                check(&snap, &consts);
            }
            if step % 5 == 4 {
                check(&aggs[1].snapshot(&regs[1]), &consts);
                check(&aggs[0].snapshot(&regs[0]), &consts);
            }
        }
    }

    /// Two families; the first one's only series is removed, nothing else changes: the new body
    /// is the end of the old one. `check` is called before and after.
    pub(crate) fn first_family_goes(mut check: impl FnMut(&Snapshot<'_>)) {
        let reg = Registry::new(Limits::default());
        reg.declare("a_total", "", Kind::Counter, &["k"], &[]).unwrap();
        reg.declare("b", "", Kind::Gauge, &[], &[]).unwrap();
        let mut agg = Aggregator::new(1);
        let a = reg.series("a_total", &["x"]).unwrap();
        agg.apply(&reg, Event { series: a, op: Op::Inc, value: 1.0 });
        agg.apply(&reg, Event { series: reg.by_name("b").unwrap(), op: Op::Set, value: 2.0 });
        check(&agg.snapshot(&reg));
        reg.remove(a).unwrap();
        check(&agg.snapshot(&reg));
    }

    /// A snapshot of `n` counters `big_total{k}` (values 1), through `check`; then all but one
    /// removed and `check` called three times more: for a test that memory follows the bodies.
    pub(crate) fn big_then_small(n: usize, mut check: impl FnMut(&Snapshot<'_>, usize)) {
        let reg = Registry::new(Limits { max_series: 2 * n, max_series_per_metric: 2 * n, ..Limits::default() });
        reg.declare("big_total", "", Kind::Counter, &["k"], &[]).unwrap();
        let mut agg = Aggregator::new(1);
        let sids: Vec<SeriesId> = (0..n).map(|i| reg.series("big_total", &[&format!("series-number-{i}")]).unwrap()).collect();
        for &s in &sids {
            agg.apply(&reg, Event { series: s, op: Op::Inc, value: 1.0 });
        }
        check(&agg.snapshot(&reg), 0);
        for &s in &sids[1..] {
            reg.remove(s).unwrap();
        }
        for round in 1..4 {
            check(&agg.snapshot(&reg), round);
        }
    }

    #[test]
    fn series_are_found_again_skipping_removed_ones_and_new_ones_are_not() {
        let mut c = super::SeriesCache::default();
        c.begin(1, &[]);
        assert!(c.family(0, 0).is_none());
        for id in 0..4 {
            assert_eq!(c.series(id), None);
            c.push_value(&crate::snapshot::Value::Scalar(f64::from(id)));
        }
        c.finish();
        c.begin(1, &[]);
        assert!(c.family(0, 0).is_some());
        assert_eq!(c.series(0), Some(0));
        assert_eq!(c.series(2), Some(2), "1 removed");
        c.push_value(&crate::snapshot::Value::Scalar(2.0));
        assert!(c.same_values(2));
        assert_eq!(c.series(4), None, "made since");
        assert_eq!(c.series(3), None, "not looked for after a new one");
        c.finish();
        // Other constant labels: nothing old is used.
        c.begin(1, &[("env".into(), "prod".into())]);
        assert!(c.family(0, 0).is_none());
        assert_eq!(c.series(0), None);
    }

    #[test]
    fn the_same_ids_in_another_generation_are_not_the_same_family_or_series() {
        // What a registry dropped and another made would look like: ids restart at 0.
        let mut c = super::SeriesCache::default();
        for (round, generation) in [1, 1, 2, 2, 1].into_iter().enumerate() {
            c.begin(generation, &[]);
            let known = c.family(0, 0).is_some();
            let found = c.series(0);
            c.push_value(&crate::snapshot::Value::Scalar(1.0));
            c.finish();
            let again = matches!(round, 1 | 3);
            assert_eq!((known, found.is_some()), (again, again), "round {round}");
        }
    }
}
