//! Prometheus text exposition format 0.0.4 (not OpenMetrics): what `.prom.text[]`, `/metrics`,
//! the Pushgateway and the textfile collector read.

use super::series_cache::{Run, SeriesCache};
use super::{Sample, Sink, Walker, float, walk, walk_series};
use crate::registry::{Family, FamilyId, OVERFLOW_LABEL};
use crate::snapshot::Snapshot;
use std::borrow::Cow;

/// The Content-Type of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `snap` with `const_labels` appended to every series; ends with a newline.
///
/// ```
/// use kdbprom::registry::{Kind, Limits, Registry};
/// use kdbprom::aggregate::Aggregator;
/// use kdbprom::event::{Event, Op};
/// let reg = Registry::new(Limits::default());
/// reg.declare("rows_total", "Rows \"loaded\"", Kind::Counter, &["table"], &[]).unwrap();
/// let s = reg.series("rows_total", &["a\"b"]).unwrap();
/// let mut agg = Aggregator::new(5);
/// agg.apply(&reg, Event { series: s, op: Op::Inc, value: 3.0 });
/// let text = kdbprom::encode::text::encode(&agg.snapshot(&reg), &[("env".into(), "prod".into())]);
/// assert_eq!(text, "# HELP rows_total Rows \"loaded\"\n# TYPE rows_total counter\nrows_total{table=\"a\\\"b\",env=\"prod\"} 3\n");
/// ```
pub fn encode(snap: &Snapshot<'_>, const_labels: &[(String, String)]) -> String {
    // Room for a line of ~64 bytes a series up front: growing by doubling from a small buffer
    // copies the body again and again (a histogram's many lines still grow it once or twice).
    let series: usize = snap.families.iter().map(|f| f.series.len()).sum();
    let mut w = TextSink { out: String::with_capacity(4096 + 64 * series), const_labels };
    walk(snap, &mut w);
    w.out
}

struct TextSink<'c> {
    out: String,
    const_labels: &'c [(String, String)],
}

impl Sink for TextSink<'_> {
    fn family(&mut self, _: FamilyId, f: &Family) {
        write_header(&mut self.out, f);
    }

    fn sample(&mut self, s: &Sample<'_>) {
        write_prefix(&mut self.out, s, self.const_labels);
        float::write_value(&mut self.out, s.value);
        self.out.push('\n');
    }
}

/// A family's `# HELP` (when it has help) and `# TYPE` lines.
fn write_header(o: &mut String, f: &Family) {
    if !f.help.is_empty() {
        o.push_str("# HELP ");
        o.push_str(&f.name);
        o.push(' ');
        push_escaped(o, &f.help, false);
        o.push('\n');
    }
    o.push_str("# TYPE ");
    o.push_str(&f.name);
    o.push(' ');
    o.push_str(f.kind.as_str());
    o.push('\n');
}

/// A sample's line up to its value: name, suffix, labels, and the space.
fn write_prefix(o: &mut String, s: &Sample<'_>, const_labels: &[(String, String)]) {
    o.push_str(s.name);
    o.push_str(s.suffix);
    let pairs = s.label_names.iter().map(|n| &**n).zip(s.label_values.iter().map(|v| &**v));
    let consts = const_labels.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    let overflow = s.overflow.then_some((OVERFLOW_LABEL, "true"));
    let mut first = true;
    // Empty values mean "no label" in Prometheus; leaving them out keeps text and remote write equal.
    for (n, v) in pairs.chain(overflow).chain(consts).chain(s.extra).filter(|(_, v)| !v.is_empty()) {
        o.push(if first { '{' } else { ',' });
        first = false;
        o.push_str(n);
        o.push_str("=\"");
        push_escaped(o, v, true);
        o.push('"');
    }
    if !first {
        o.push('}');
    }
    o.push(' ');
}

/// The text exposition of successive snapshots, made from the one before: a series whose labels
/// and values are as the last body had them is copied from it (runs of such lines in one copy),
/// one whose values changed keeps its rendered name and labels, anything else is written afresh
/// ([`SeriesCache`] says which). The output is byte for byte [`encode`]'s.
///
/// Memory: the last body and this one, and the cache's index of the last body (a few words per
/// series and a `u64` per sample); shrunk when a body needs much less than an earlier one.
///
/// ```
/// use kdbprom::registry::{Kind, Limits, Registry};
/// use kdbprom::aggregate::Aggregator;
/// use kdbprom::event::{Event, Op};
/// let reg = Registry::new(Limits::default());
/// reg.declare("rows_total", "Rows.", Kind::Counter, &["table"], &[]).unwrap();
/// let s = reg.series("rows_total", &["a"]).unwrap();
/// let mut agg = Aggregator::new(5);
/// let mut enc = kdbprom::encode::text::TextEncoder::default();
/// for v in [3.0, 4.0] {
///     agg.apply(&reg, Event { series: s, op: Op::Inc, value: v });
///     let snap = agg.snapshot(&reg);
///     assert_eq!(enc.encode(&snap, &[]), kdbprom::encode::text::encode(&snap, &[]));
/// }
/// ```
#[derive(Debug, Default)]
pub struct TextEncoder {
    body: String,
    prev: String,
    cache: SeriesCache,
    walker: Walker,
    /// A family's `# HELP` and `# TYPE` lines, made to compare or write them.
    header: String,
    /// Where each family's header starts, in the last body and in this one, in output order.
    fam_starts: Vec<usize>,
    new_fam_starts: Vec<usize>,
}

impl TextEncoder {
    /// Renders `snap` with `const_labels` appended to every series, as [`encode`] does; the body
    /// stays in the encoder until the next call.
    pub fn encode(&mut self, snap: &Snapshot<'_>, const_labels: &[(String, String)]) -> &str {
        std::mem::swap(&mut self.body, &mut self.prev);
        std::mem::swap(&mut self.fam_starts, &mut self.new_fam_starts);
        self.body.clear();
        self.new_fam_starts.clear();
        self.cache.begin(snap.generation, const_labels);
        let TextEncoder { body, prev, cache, walker, header, fam_starts, new_fam_starts } = self;
        let mut sink = CachedSink { out: body, prev, cache, consts: const_labels, pos: 0, old: None, copy: Run::default() };
        for fam in snap.families.iter().filter(|f| !f.series.is_empty()) {
            let f = fam.family;
            let at = sink.len();
            new_fam_starts.push(at);
            // A family showing what it showed in the last body: its lines as they were, whole.
            if let Some(i) = sink.cache.unchanged_family(fam.id, fam.version)
                && let Some(&from) = fam_starts.get(i)
            {
                let to = fam_starts.get(i + 1).copied().unwrap_or(sink.prev.len());
                sink.copy(from, to);
                sink.cache.keep_family(i, at as i64 - from as i64);
                continue;
            }
            header.clear();
            write_header(header, f);
            // A family the last body had: the same header, copied from there.
            match sink.cache.family(fam.id, fam.version).and_then(|i| fam_starts.get(i)) {
                Some(&from) => sink.copy(from, from + header.len()),
                None => {
                    sink.flush();
                    sink.out.push_str(header);
                }
            }
            let extras = walker.spell(f);
            for s in &fam.series {
                let old = sink.cache.series(s.id);
                sink.cache.push_value(&s.value);
                let start = sink.len();
                match old {
                    // Labels and values as last time: its lines as they were.
                    Some(j) if sink.cache.same_values(j) => {
                        let m = sink.cache.old_marks(j);
                        let (from, to) = (m[0] as usize, m[m.len() - 1] as usize);
                        sink.copy(from, to);
                        sink.cache.push_marks_moved(j, from, start);
                    }
                    // Else its lines through the walk; with the old prefixes when it had them.
                    _ => {
                        sink.old = old;
                        sink.pos = 0;
                        sink.cache.push_mark(start);
                        walk_series(f, s, extras, &mut sink);
                    }
                }
            }
        }
        // Nothing changed: the last body is this one, as it is (no copy).
        if sink.copy.is_whole(sink.prev.len()) && sink.out.is_empty() {
            std::mem::swap(&mut self.body, &mut self.prev);
        } else {
            sink.flush();
        }
        self.cache.finish();
        // The old body is needed only while the next one is made from it; keep its allocation
        // unless it is far larger than bodies are now.
        if self.prev.capacity() > 4 * self.body.len() + (1 << 16) {
            self.prev = String::new();
        }
        &self.body
    }

    /// The body the last [`TextEncoder::encode`] made (empty before the first).
    pub fn body(&self) -> &str {
        &self.body
    }

    /// Bytes held between calls (both bodies and the index), for the memory bound.
    pub fn heap_bytes(&self) -> usize {
        self.body.capacity() + self.prev.capacity() + self.cache.heap_bytes()
    }
}

/// [`TextEncoder`]'s view of a series it writes anew. Offsets kept per series
/// ([`SeriesCache::push_mark`]): where its first line starts, then per sample where its value
/// starts and where its line ends.
struct CachedSink<'a> {
    out: &'a mut String,
    prev: &'a str,
    cache: &'a mut SeriesCache,
    consts: &'a [(String, String)],
    /// The current sample's place in its series.
    pos: usize,
    /// The old series the current one is, if any.
    old: Option<usize>,
    /// A run of the old body still to copy: consecutive unchanged series become one copy.
    copy: Run,
}

impl CachedSink<'_> {
    /// Length of the body with the pending copy.
    fn len(&self) -> usize {
        self.out.len() + self.copy.len()
    }

    fn copy(&mut self, from: usize, to: usize) {
        if let Some(r) = self.copy.add(from, to) {
            self.out.push_str(&self.prev[r]);
        }
    }

    fn flush(&mut self) {
        if let Some(r) = self.copy.take() {
            self.out.push_str(&self.prev[r]);
        }
    }
}

impl Sink for CachedSink<'_> {
    /// Not called: [`TextEncoder::encode`] writes the headers itself.
    fn family(&mut self, _: FamilyId, f: &Family) {
        self.flush();
        write_header(self.out, f);
    }

    fn sample(&mut self, s: &Sample<'_>) {
        // The same family, constant labels, label values and place in the series: the same line
        // up to the value. (A series' samples follow from its family: kind, bounds, quantiles.)
        let i = self.pos;
        let old =
            self.old.map(|j| self.cache.old_marks(j)).filter(|m| 2 * i + 2 < m.len()).map(|m| (m[2 * i] as usize, m[2 * i + 1] as usize));
        let start = self.len();
        let value_at = match old {
            Some((a, v)) => {
                self.copy(a, v);
                self.flush();
                start + (v - a)
            }
            None => {
                self.flush();
                write_prefix(self.out, s, self.consts);
                self.out.len()
            }
        };
        float::write_value(self.out, s.value);
        self.out.push('\n');
        let end = self.len();
        self.cache.push_mark(value_at);
        self.cache.push_mark(end);
        self.pos += 1;
    }
}

/// True when `s` has something to escape as a label value (`quote`) or HELP text.
fn needs_escape(s: &str, quote: bool) -> bool {
    s.bytes().any(|b| b == b'\\' || b == b'\n' || (quote && b == b'"'))
}

/// Appends `s` escaped as a label value (`\`, `"`, newline) or HELP text (`\`, newline).
fn push_escaped(o: &mut String, s: &str, quote: bool) {
    if !needs_escape(s, quote) {
        o.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '"' if quote => o.push_str("\\\""),
            c => o.push(c),
        }
    }
}

/// Escapes a label value (`\`, `"`, newline) or HELP text (`\`, newline); borrows when clean.
pub fn escape(s: &str, quote: bool) -> Cow<'_, str> {
    if !needs_escape(s, quote) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    push_escaped(&mut out, s, quote);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use crate::encode::remote_write::tests::native_registry;

    #[test]
    fn overflow_series_have_only_the_overflow_label_besides_the_constant_ones() {
        let (reg, mut agg) = crate::encode::remote_write::tests::overflow_registry();
        let text = super::encode(&agg.snapshot(&reg), &[("env".into(), "prod".into())]);
        assert_eq!(
            text,
            "# HELP rows_total Rows.\n# TYPE rows_total counter\n\
             rows_total{table=\"a\",env=\"prod\"} 1\n\
             rows_total{otel_metric_overflow=\"true\",env=\"prod\"} 5\n\
             # TYPE lat_seconds histogram\n\
             lat_seconds_bucket{path=\"/q\",Zone=\"eu\",env=\"prod\",le=\"0.5\"} 0\n\
             lat_seconds_bucket{path=\"/q\",Zone=\"eu\",env=\"prod\",le=\"+Inf\"} 1\n\
             lat_seconds_sum{path=\"/q\",Zone=\"eu\",env=\"prod\"} 0.7\n\
             lat_seconds_count{path=\"/q\",Zone=\"eu\",env=\"prod\"} 1\n\
             lat_seconds_bucket{otel_metric_overflow=\"true\",env=\"prod\",le=\"0.5\"} 1\n\
             lat_seconds_bucket{otel_metric_overflow=\"true\",env=\"prod\",le=\"+Inf\"} 1\n\
             lat_seconds_sum{otel_metric_overflow=\"true\",env=\"prod\"} 0.2\n\
             lat_seconds_count{otel_metric_overflow=\"true\",env=\"prod\"} 1\n\
             # TYPE n_seconds histogram\n\
             n_seconds_sum{path=\"/q\",env=\"prod\"} 1\n\
             n_seconds_count{path=\"/q\",env=\"prod\"} 1\n\
             n_seconds_sum{otel_metric_overflow=\"true\",env=\"prod\"} 6\n\
             n_seconds_count{otel_metric_overflow=\"true\",env=\"prod\"} 2\n"
        );
    }

    #[test]
    fn native_histograms_degrade_to_classic_buckets_or_sum_and_count() {
        let (reg, mut agg, want) = native_registry();
        let text = super::encode(&agg.snapshot(&reg), &[]);
        let mut sum = String::new();
        crate::encode::float::write_value(&mut sum, want.sum());
        assert_eq!(
            text,
            format!(
                "# HELP n_seconds Native.\n# TYPE n_seconds histogram\nn_seconds_sum{{path=\"/q\"}} {sum}\nn_seconds_count{{path=\"/q\"}} 12\n\
                 # HELP b_seconds Both.\n# TYPE b_seconds histogram\nb_seconds_bucket{{le=\"0.001\"}} 5\nb_seconds_bucket{{le=\"1.0\"}} 10\n\
                 b_seconds_bucket{{le=\"+Inf\"}} 12\nb_seconds_sum {sum}\nb_seconds_count 12\n"
            )
        );
    }
}

#[cfg(test)]
mod cached {
    use super::{TextEncoder, encode};
    use crate::encode::series_cache::tests::scenario;

    #[test]
    fn a_kept_encoder_writes_what_a_fresh_one_does_through_every_kind_of_change() {
        for seed in [1, 2, 3, 0x5eed] {
            let mut enc = TextEncoder::default();
            let mut rounds = 0;
            scenario(seed, 120, |snap, consts| {
                assert_eq!(enc.encode(snap, consts), encode(snap, consts), "seed {seed}, round {rounds}");
                rounds += 1;
            });
        }
        let mut enc = TextEncoder::default();
        crate::encode::series_cache::tests::first_family_goes(|snap| assert_eq!(enc.encode(snap, &[]), encode(snap, &[])));
    }

    #[test]
    fn what_a_kept_encoder_holds_follows_the_bodies_down() {
        let mut enc = TextEncoder::default();
        let mut big = 0;
        crate::encode::series_cache::tests::big_then_small(20_000, |snap, round| {
            assert_eq!(enc.encode(snap, &[]), encode(snap, &[]));
            match round {
                0 => big = enc.heap_bytes(),
                3 => assert!(enc.heap_bytes() < big / 20, "{} of {big} bytes still held", enc.heap_bytes()),
                _ => {}
            }
        });
        assert!(big > 20_000 * 40, "{big}");
    }
}
