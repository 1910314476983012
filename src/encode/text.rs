//! Prometheus text exposition format 0.0.4 (not OpenMetrics): what `.prom.text[]`, `/metrics`,
//! the Pushgateway and the textfile collector read.

use super::{Sample, Sink, float, walk};
use crate::registry::{Family, OVERFLOW_LABEL};
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
    let mut w = TextSink { out: String::with_capacity(4096), const_labels };
    walk(snap, &mut w);
    w.out
}

struct TextSink<'c> {
    out: String,
    const_labels: &'c [(String, String)],
}

impl Sink for TextSink<'_> {
    fn family(&mut self, f: &Family) {
        let o = &mut self.out;
        if !f.help.is_empty() {
            o.push_str("# HELP ");
            o.push_str(&f.name);
            o.push(' ');
            o.push_str(&escape(&f.help, false));
            o.push('\n');
        }
        o.push_str("# TYPE ");
        o.push_str(&f.name);
        o.push(' ');
        o.push_str(f.kind.as_str());
        o.push('\n');
    }

    fn sample(&mut self, s: &Sample<'_>) {
        let o = &mut self.out;
        o.push_str(s.name);
        o.push_str(s.suffix);
        let pairs = s.label_names.iter().map(|n| &**n).zip(s.label_values.iter().map(|v| &**v));
        let consts = self.const_labels.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let overflow = s.overflow.then_some((OVERFLOW_LABEL, "true"));
        let mut first = true;
        // Empty values mean "no label" in Prometheus; leaving them out keeps text and remote write equal.
        for (n, v) in pairs.chain(overflow).chain(consts).chain(s.extra).filter(|(_, v)| !v.is_empty()) {
            o.push(if first { '{' } else { ',' });
            first = false;
            o.push_str(n);
            o.push_str("=\"");
            o.push_str(&escape(v, true));
            o.push('"');
        }
        if !first {
            o.push('}');
        }
        o.push(' ');
        float::write_value(o, s.value);
        o.push('\n');
    }
}

/// Escapes a label value (`\`, `"`, newline) or HELP text (`\`, newline); borrows when clean.
pub fn escape(s: &str, quote: bool) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'\\' || b == b'\n' || (quote && b == b'"')) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
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
