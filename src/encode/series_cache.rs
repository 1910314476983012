//! What an encoder wrote for each series last time, and whether a snapshot's series is still that one.
//!
//! The text and Pushgateway encoders keep their previous body and, per family and series, where
//! in it each series went and which values it showed ([`SeriesCache`]). Encoding the next snapshot,
//! a series whose family, labels and values are all as they were is copied from the old body; one
//! whose values changed keeps its rendered labels and gets new values; anything else is rendered
//! afresh. Nothing outside the encoder tells it what changed: it compares what the snapshot holds.
//!
//! - A family is known again by its pointer (a hint: where to look) and its content (the proof):
//!   name, help, kind, label names and bounds or quantiles, byte for byte.
//! - A series likewise: its label values' address is the hint, the values themselves (and the
//!   overflow flag) the proof. Series of a family come in creation order, and new ones only at the
//!   end, so matching walks the old list once, skipping removed series (see [`SeriesCache::series`]).
//! - Values are compared as bits (`f64::to_bits`), so `-0`, NaN payloads and all are exact.
//! - The constant labels are compared once per body; when they change, nothing old is used.
//!
//! Memory: two indexes (last body's, and the one being built), each a few words per family and
//! series, one `u64` per value and one `u32` per offset; and the keys (label values and family
//! identities) once each, in an arena that a series found again shares with its old entry and
//! that is compacted when more than half of it is no longer used. Each buffer's capacity follows
//! the largest snapshot seen and shrinks back when a body needs less than a quarter of it.

use crate::registry::Family;
use crate::snapshot::Value;

/// Ends each string of a key: 0xFF never occurs in UTF-8, so two lists of strings have equal keys
/// only when they are equal.
const END: u8 = 0xFF;

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

/// A family's entry: its key in the arena; its series run to the next family's.
#[derive(Debug, Clone, Copy)]
struct Fam {
    hint: usize,
    key: u32,
    key_len: u32,
    series: u32,
}

/// A series' entry: its key in the arena; its values and offsets run to the next series' (or the end).
#[derive(Debug, Clone, Copy)]
struct Series {
    hint: usize,
    key: u32,
    key_len: u32,
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

    fn series_bits(&self, i: usize) -> &[u64] {
        let end = self.series.get(i + 1).map_or(self.bits.len(), |s| s.bits as usize);
        &self.bits[self.series[i].bits as usize..end]
    }

    fn series_marks(&self, i: usize) -> &[u32] {
        let end = self.series.get(i + 1).map_or(self.marks.len(), |s| s.marks as usize);
        &self.marks[self.series[i].marks as usize..end]
    }
}

/// Equal byte strings. Label values are mostly short: up to 16 bytes are compared as two
/// overlapping words (of 1, 2, 4 or 8 bytes) from each end, instead of through a call to `memcmp`.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w4 = |s: &[u8], at: usize| s.get(at..at + 4).map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    let w8 = |s: &[u8], at: usize| s.get(at..at + 8).map(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
    match n {
        0 => true,
        1..4 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..8 => w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4),
        8..=16 => w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8),
        _ => a == b,
    }
}

/// True when `key` is the key of `values` and `overflow` (see [`SeriesCache::series`]).
#[inline]
fn is_key_of(key: &[u8], values: &[Box<str>], overflow: bool) -> bool {
    if key.first() != Some(&u8::from(overflow)) {
        return false;
    }
    let mut at = 1;
    for v in values {
        let v = v.as_bytes();
        let end = at + v.len();
        if key.get(end) != Some(&END) || !same(&key[at..end], v) {
            return false;
        }
        at = end + 1;
    }
    at == key.len()
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
    /// Every key either index refers to (and some neither does, until compacted).
    keys: Vec<u8>,
    /// A family's key, made to compare it.
    fam_key: Vec<u8>,
    /// The constant labels both indexes were made with.
    consts: Vec<(String, String)>,
    /// The next old family to look at.
    next_fam: usize,
    /// The old family of the one being written, its next old series to look at, and its end.
    fam: Option<usize>,
    cursor: usize,
    fam_end: usize,
    /// A series of this family was not among the old ones: every later one is new too.
    exhausted: bool,
}

impl SeriesCache {
    /// Starts a body with `consts` on every series; with other constant labels than last time,
    /// nothing of the last body is used.
    pub fn begin(&mut self, consts: &[(String, String)]) {
        self.new.clear();
        if self.consts != consts {
            self.clear();
            self.consts.clear();
            self.consts.extend_from_slice(consts);
        }
        self.next_fam = 0;
        self.fam = None;
        self.exhausted = true;
    }

    /// Ends the body: what was written becomes the old body's index.
    pub fn finish(&mut self) {
        std::mem::swap(&mut self.old, &mut self.new);
        self.new.clear();
        self.new.shrink_like(&self.old);
        self.compact();
    }

    /// Moves the keys the index uses to a new arena when they are less than half of it.
    fn compact(&mut self) {
        let live: usize = self.old.fams.iter().map(|f| f.key_len as usize).sum::<usize>()
            + self.old.series.iter().map(|s| s.key_len as usize).sum::<usize>();
        if self.keys.len() <= 2 * live + 4096 {
            return;
        }
        let mut keys = Vec::with_capacity(live + live / 4);
        let mut move_key = |key: &mut u32, len: u32| {
            let at = keys.len() as u32;
            keys.extend_from_slice(&self.keys[*key as usize..(*key + len) as usize]);
            *key = at;
        };
        for f in &mut self.old.fams {
            move_key(&mut f.key, f.key_len);
        }
        for s in &mut self.old.series {
            move_key(&mut s.key, s.key_len);
        }
        self.keys = keys;
    }

    /// Forgets everything (the body the offsets point into is gone).
    pub fn clear(&mut self) {
        self.old.clear();
        self.new.clear();
        self.keys.clear();
    }

    /// Starts family `f`; where the last body had it, exactly so (its place among the last
    /// body's families), if it did.
    pub fn family(&mut self, f: &Family) -> Option<usize> {
        let hint = f as *const Family as usize;
        let k = &mut self.fam_key;
        k.clear();
        k.extend_from_slice(f.name.as_bytes());
        k.push(END);
        k.extend_from_slice(f.help.as_bytes());
        k.push(END);
        k.push(f.kind as u8);
        for n in f.label_names.iter() {
            k.extend_from_slice(n.as_bytes());
            k.push(END);
        }
        k.push(u8::from(f.native.is_some()));
        for p in f.params.iter() {
            k.extend_from_slice(&p.to_bits().to_le_bytes());
        }
        // Families come in declaration order, so the old one is at or after the last one found.
        let (old, keys, mine) = (&self.old, &self.keys, &self.fam_key);
        self.fam = (self.next_fam..old.fams.len()).find(|&i| {
            let o = &old.fams[i];
            o.hint == hint && keys[o.key as usize..(o.key + o.key_len) as usize] == mine[..]
        });
        let (key, key_len) = match self.fam {
            Some(i) => {
                self.next_fam = i + 1;
                self.cursor = old.fams[i].series as usize;
                self.fam_end = old.fam_series_end(i);
                (old.fams[i].key, old.fams[i].key_len)
            }
            None => {
                let at = self.keys.len() as u32;
                self.keys.extend_from_slice(&self.fam_key);
                (at, self.fam_key.len() as u32)
            }
        };
        self.new.fams.push(Fam { hint, key, key_len, series: self.new.series.len() as u32 });
        self.exhausted = self.fam.is_none();
        self.fam
    }

    /// Starts a series of the current family: its label values (and whether it is the overflow
    /// series). Returns the old series it is, when the last body had it with these very labels.
    ///
    /// Old series are looked for from the one after the last found: a removed series is skipped,
    /// and the first series not found ends the looking for this family, since every later series
    /// was made after it and so after every old one (a snapshot lists series in creation order).
    /// The address of the label values only says where to look; the values are compared.
    pub fn series(&mut self, values: &[Box<str>], overflow: bool) -> Option<usize> {
        let hint = values.as_ptr() as usize;
        let mut found = None;
        if !self.exhausted {
            match (self.cursor..self.fam_end).find(|&i| self.old.series[i].hint == hint) {
                Some(i) => {
                    self.cursor = i + 1;
                    let o = &self.old.series[i];
                    let key = &self.keys[o.key as usize..(o.key + o.key_len) as usize];
                    found = is_key_of(key, values, overflow).then_some(i);
                }
                None => self.exhausted = true,
            }
        }
        let (key, key_len) = match found {
            // The same key: the new entry shares the old one's.
            Some(i) => (self.old.series[i].key, self.old.series[i].key_len),
            None => {
                let at = self.keys.len();
                self.keys.push(u8::from(overflow));
                for v in values {
                    self.keys.extend_from_slice(v.as_bytes());
                    self.keys.push(END);
                }
                (at as u32, (self.keys.len() - at) as u32)
            }
        };
        let n = &mut self.new;
        n.series.push(Series { hint, key, key_len, bits: n.bits.len() as u32, marks: n.marks.len() as u32 });
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
        one(&self.old) + one(&self.new) + self.keys.capacity() + self.fam_key.capacity()
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
    /// is checked twice, and once the registry is dropped and made again with other label values.
    pub(crate) fn scenario(seed: u64, steps: usize, mut check: impl FnMut(&Snapshot<'_>, &[(String, String)])) {
        let mut rng = Rng(seed | 1);
        for life in 0..2 {
            let reg = Registry::new(Limits { max_series_per_metric: 6, ..Limits::default() });
            for f in 0..7 {
                declare(&reg, f);
            }
            let mut agg = Aggregator::new(1);
            let mut live: Vec<SeriesId> = vec![reg.by_name("u").unwrap(), reg.by_name("b_seconds").unwrap()];
            let mut consts: Vec<(String, String)> = Vec::new();
            for step in 0..steps {
                if step == steps / 2 && life == 0 {
                    declare(&reg, 7);
                }
                for _ in 0..rng.below(6) {
                    match rng.below(10) {
                        0..=2 => {
                            let names = ["c_total", "g", "h_seconds", "s_bytes", "n_seconds", "late_total"];
                            let name = names[rng.below(if step >= steps / 2 && life == 0 { 6 } else { 5 })];
                            let n = if name == "c_total" { 2 } else { 1 };
                            let mut vals: Vec<&str> = (0..n).map(|_| LABELS[rng.below(LABELS.len())]).collect();
                            // Another life, other label values at the same places.
                            let other;
                            if life == 1 {
                                other = format!("{}z", vals[0]);
                                vals[0] = &other;
                            }
                            if let Ok(s) = reg.series(name, &vals) {
                                live.push(s);
                            }
                        }
                        3 if live.len() > 2 => {
                            let s = live.swap_remove(2 + rng.below(live.len() - 2));
                            let _ = reg.remove(s);
                        }
                        4 => consts = CONSTS[rng.below(3)].iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
                        _ => {
                            let s = live[rng.below(live.len())];
                            let v = VALUES[rng.below(VALUES.len())];
                            for op in [Op::Inc, Op::Set, Op::Observe] {
                                let v = if op == Op::Inc { v.abs() } else { v };
                                if reg.accepts(s, op, v) {
                                    agg.apply(&reg, Event { series: s, op, value: v });
                                }
                            }
                        }
                    }
                }
                let snap = agg.snapshot(&reg);
                check(&snap, &consts);
                if step % 7 == 0 {
                    check(&snap, &consts);
                }
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
        let reg = Registry::new(Limits::default());
        reg.declare("c_total", "", Kind::Counter, &["a"], &[]).unwrap();
        let f = reg.family(reg.family_named("c_total").unwrap());
        let sids: Vec<SeriesId> = ["a", "b", "c", "d"].iter().map(|v| reg.series("c_total", &[v]).unwrap()).collect();
        let values = |i: usize| &reg.slot(sids[i]).unwrap().label_values[..];
        let mut c = super::SeriesCache::default();
        c.begin(&[]);
        assert!(c.family(f).is_none());
        for i in 0..4 {
            assert_eq!(c.series(values(i), false), None);
            c.push_value(&crate::snapshot::Value::Scalar(i as f64));
        }
        c.finish();
        c.begin(&[]);
        assert!(c.family(f).is_some());
        assert_eq!(c.series(values(0), false), Some(0));
        assert_eq!(c.series(values(2), false), Some(2), "b removed");
        c.push_value(&crate::snapshot::Value::Scalar(2.0));
        assert!(c.same_values(2));
        assert_eq!(c.series(values(3), true), None, "the overflow flag is part of the key");
        c.finish();
        // Other constant labels: nothing old is used.
        c.begin(&[("env".into(), "prod".into())]);
        assert!(c.family(f).is_none());
        assert_eq!(c.series(values(0), false), None);
    }

    #[test]
    fn short_strings_compare_equal_only_when_equal() {
        let words =
            ["", "a", "b", "ab", "ba", "abc", "abd", "xbc", "abcd", "abce", "abcdefg", "abcdefh", "bbcdefg", "abcdefgh", "abcdefgi"];
        let more =
            ["abcdefghijklmnop", "abcdefghijklmnoq", "bbcdefghijklmnop", "abcdefghXjklmnop", "abcdefghijklmnopq", "abcdefghijklmnopr"];
        for a in words.iter().chain(&more) {
            for b in words.iter().chain(&more) {
                assert_eq!(super::same(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
            }
        }
    }

    #[test]
    fn the_same_address_with_other_content_is_not_the_same_family_or_series() {
        // What a registry dropped and another made at the same addresses would look like.
        let mut f = crate::registry::Family {
            name: "c_total".into(),
            help: "".into(),
            kind: Kind::Counter,
            label_names: vec!["a".into()].into(),
            params: std::sync::Arc::new([]),
            native: None,
        };
        let mut values: Vec<Box<str>> = vec!["x".into()];
        let mut c = super::SeriesCache::default();
        for round in 0..4 {
            c.begin(&[]);
            let known = c.family(&f).is_some();
            let found = c.series(&values, false);
            c.finish();
            match round {
                0 => assert_eq!((known, found), (false, None)),
                1 => {
                    assert_eq!((known, found), (true, Some(0)));
                    values[0] = "y".into();
                }
                2 => {
                    assert_eq!((known, found), (true, None), "same address, other label value");
                    f.help = "Now with help.".into();
                }
                _ => assert_eq!((known, found), (false, None), "same address, other help"),
            }
        }
    }
}
