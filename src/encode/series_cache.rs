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
//! series, one `u64` per value and the label values once; their capacity follows the largest
//! snapshot seen and shrinks back when a body needs less than a quarter of it.

use crate::registry::Family;

/// Ends each string of a key: 0xFF never occurs in UTF-8, so two lists of strings have equal keys
/// only when they are equal.
const END: u8 = 0xFF;

/// One body's families and series, in output order.
#[derive(Debug, Default)]
struct Index {
    fams: Vec<Fam>,
    series: Vec<Series>,
    /// Family and series keys, back to back.
    keys: Vec<u8>,
    /// Each series' values, as bits, back to back.
    bits: Vec<u64>,
    /// Each series' offsets into the body (the format decides which), back to back.
    marks: Vec<u32>,
}

/// A family's entry; its series run to the next family's.
#[derive(Debug, Clone, Copy)]
struct Fam {
    hint: usize,
    key: u32,
    key_len: u32,
    series: u32,
}

/// A series' entry; its values and offsets run to the next series' (or the arena's end).
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
        self.keys.clear();
        self.bits.clear();
        self.marks.clear();
    }

    /// Gives back memory a much larger body needed once.
    fn shrink(&mut self) {
        fn fit<T>(v: &mut Vec<T>) {
            if v.capacity() > 4 * v.len() + 1024 {
                v.shrink_to(2 * v.len());
            }
        }
        fit(&mut self.fams);
        fit(&mut self.series);
        fit(&mut self.keys);
        fit(&mut self.bits);
        fit(&mut self.marks);
    }

    fn fam_key(&self, i: usize) -> &[u8] {
        let f = &self.fams[i];
        &self.keys[f.key as usize..(f.key + f.key_len) as usize]
    }

    fn fam_series(&self, i: usize) -> std::ops::Range<usize> {
        let end = self.fams.get(i + 1).map_or(self.series.len(), |f| f.series as usize);
        self.fams[i].series as usize..end
    }

    fn series_key(&self, i: usize) -> &[u8] {
        let s = &self.series[i];
        &self.keys[s.key as usize..(s.key + s.key_len) as usize]
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

/// The previous body's index and the one being built (see the module doc).
#[derive(Debug, Default)]
pub struct SeriesCache {
    old: Index,
    new: Index,
    /// The constant labels both indexes were made with.
    consts: Vec<(String, String)>,
    /// The next old family to look at.
    next_fam: usize,
    /// The old family of the one being written, and its next old series to look at.
    fam: Option<usize>,
    cursor: usize,
    /// A series of this family was not among the old ones: every later one is new too.
    exhausted: bool,
}

impl SeriesCache {
    /// Starts a body with `consts` on every series; with other constant labels than last time,
    /// nothing of the last body is used.
    pub fn begin(&mut self, consts: &[(String, String)]) {
        self.new.clear();
        if self.consts != consts {
            self.old.clear();
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
        self.new.shrink();
    }

    /// Forgets everything (the body the marks point into is gone).
    pub fn clear(&mut self) {
        self.old.clear();
        self.new.clear();
    }

    /// Starts family `f`; where the last body had it, exactly so (its place among the last
    /// body's families), if it did.
    pub fn family(&mut self, f: &Family) -> Option<usize> {
        let hint = f as *const Family as usize;
        let key = self.new.keys.len() as u32;
        let k = &mut self.new.keys;
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
        let key_len = self.new.keys.len() as u32 - key;
        self.new.fams.push(Fam { hint, key, key_len, series: self.new.series.len() as u32 });
        // Families come in declaration order, so the old one is at or after the last one found.
        let mine = &self.new.keys[key as usize..];
        self.fam = (self.next_fam..self.old.fams.len()).find(|&i| self.old.fams[i].hint == hint && self.old.fam_key(i) == mine);
        if let Some(i) = self.fam {
            self.next_fam = i + 1;
            self.cursor = self.old.fam_series(i).start;
        }
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
        let key = self.new.keys.len();
        self.new.keys.push(u8::from(overflow));
        for v in values {
            self.new.keys.extend_from_slice(v.as_bytes());
            self.new.keys.push(END);
        }
        let n = &mut self.new;
        let key_len = (n.keys.len() - key) as u32;
        n.series.push(Series { hint, key: key as u32, key_len, bits: n.bits.len() as u32, marks: n.marks.len() as u32 });
        if self.exhausted {
            return None;
        }
        let range = self.old.fam_series(self.fam?);
        let found = (self.cursor..range.end).find(|&i| self.old.series[i].hint == hint);
        let Some(i) = found else {
            self.exhausted = true;
            return None;
        };
        self.cursor = i + 1;
        (self.old.series_key(i) == &self.new.keys[key..]).then_some(i)
    }

    /// Appends a value of the current series.
    #[inline]
    pub fn push_bits(&mut self, bits: u64) {
        self.new.bits.push(bits);
    }

    /// Appends an offset of the current series.
    #[inline]
    pub fn push_mark(&mut self, at: usize) {
        self.new.marks.push(at as u32);
    }

    /// The values the current series has so far.
    pub fn bits_so_far(&self) -> &[u64] {
        let start = self.new.series.last().map_or(0, |s| s.bits as usize);
        &self.new.bits[start..]
    }

    /// The current series' offsets so far (to move them, see [`SeriesCache::shift_family_marks`]).
    pub fn marks_so_far(&self) -> &[u32] {
        let start = self.new.series.last().map_or(0, |s| s.marks as usize);
        &self.new.marks[start..]
    }

    /// Adds `by` to every offset of the current family's series (its body moved).
    pub fn shift_family_marks(&mut self, by: i64) {
        let Some(f) = self.new.fams.last() else { return };
        let Some(first) = self.new.series.get(f.series as usize) else { return };
        for m in &mut self.new.marks[first.marks as usize..] {
            *m = (i64::from(*m) + by) as u32;
        }
    }

    /// Old series `i`'s values.
    pub fn old_bits(&self, i: usize) -> &[u64] {
        self.old.series_bits(i)
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
                + x.keys.capacity()
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
            c.push_bits(i as u64);
        }
        c.finish();
        c.begin(&[]);
        assert!(c.family(f).is_some());
        assert_eq!(c.series(values(0), false), Some(0));
        assert_eq!(c.series(values(2), false), Some(2), "b removed");
        assert_eq!(c.series(values(3), true), None, "the overflow flag is part of the key");
        assert_eq!(c.old_bits(2), [2]);
        c.finish();
        // Other constant labels: nothing old is used.
        c.begin(&[("env".into(), "prod".into())]);
        assert!(c.family(f).is_none());
        assert_eq!(c.series(values(0), false), None);
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
