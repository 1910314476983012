//! kdbprom's own `kdbprom_*` metrics: declared once, updated by the flusher from typed figures.
//!
//! Nothing here looks a series up by name after start: each target carries its
//! [`TargetSeries`], and the `publish_*` functions write the ring's, every target's and the
//! overflow figures into the aggregation state just before a snapshot, so every push carries the
//! accounting as of then. The one series made later, `kdbprom_series_overflow_total{metric}`, is
//! created when its family first overflows and remembered in [`Own::overflow`].

use crate::aggregate::Aggregator;
use crate::event::SeriesId;
use crate::push::Outcome;
use crate::push::accounting::{Counts, Reason};
use crate::registry::{FamilyId, Kind, Registry, RegistryError};
use std::sync::{Arc, Mutex};

/// `kdbprom_series_overflow_total`: records that went to a family's overflow series.
pub const SERIES_OVERFLOW: &str = "kdbprom_series_overflow_total";

/// Bounds of `kdbprom_push_duration_seconds`: 1 ms to 30 s.
pub const PUSH_BUCKETS: [f64; 11] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// Series of the process-wide self-metrics.
#[derive(Debug, Clone)]
pub struct Own {
    /// `kdbprom_events_recorded_total`.
    pub recorded: SeriesId,
    /// `kdbprom_events_dropped_total`.
    pub dropped: SeriesId,
    /// `kdbprom_queue_length`.
    pub queued: SeriesId,
    /// `kdbprom_series`.
    pub series: SeriesId,
    /// `kdbprom_series_overflow_total{metric}`, by family, made as each first overflows.
    pub overflow: OverflowSeries,
}

/// The `kdbprom_series_overflow_total{metric}` series made so far (shared by clones; only the
/// flusher uses it).
#[derive(Debug, Clone, Default)]
pub struct OverflowSeries(Arc<Mutex<Vec<(FamilyId, SeriesId)>>>);

impl OverflowSeries {
    /// The series counting family `fid`'s overflow records, created on first need.
    fn get(&self, reg: &Registry, fid: FamilyId) -> Result<SeriesId, RegistryError> {
        let mut made = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&(_, sid)) = made.iter().find(|(f, _)| *f == fid) {
            return Ok(sid);
        }
        let sid = reg.uncounted_builtin_series(SERIES_OVERFLOW, &[&reg.family(fid).name])?;
        made.push((fid, sid));
        Ok(sid)
    }
}

/// The self-metric series of one delivery target.
#[derive(Debug, Clone)]
pub struct TargetSeries {
    /// `kdbprom_pushes_total{target,outcome="ok"}`.
    pub ok: SeriesId,
    /// `kdbprom_pushes_total{target,outcome="failed"}`.
    pub failed: SeriesId,
    /// `kdbprom_push_bytes_total{target}`.
    pub bytes: SeriesId,
    /// `kdbprom_push_duration_seconds{target}`.
    pub duration: SeriesId,
    /// `kdbprom_samples_in_total{target}`.
    pub samples_in: SeriesId,
    /// `kdbprom_samples_sent_total{target}`.
    pub samples_sent: SeriesId,
    /// `kdbprom_samples_failed_total{target,reason}`, in [`Reason::ALL`] order.
    pub samples_failed: [SeriesId; 8],
    /// `kdbprom_samples_retried_total{target}`.
    pub samples_retried: SeriesId,
    /// `kdbprom_queue_samples{target}`.
    pub queue_samples: SeriesId,
    /// `kdbprom_spool_samples{target}`.
    pub spool_samples: SeriesId,
    /// `kdbprom_spool_bytes{target}`.
    pub spool_bytes: SeriesId,
    /// `kdbprom_last_success_timestamp_seconds{target}`.
    pub last_success: SeriesId,
}

/// (name, help, kind, labels) of every per-target family.
const TARGET_FAMILIES: [(&str, &str, Kind, &[&str]); 11] = [
    ("kdbprom_pushes_total", "Pushes by target and outcome.", Kind::Counter, &["target", "outcome"]),
    ("kdbprom_push_bytes_total", "Body bytes accepted by the target.", Kind::Counter, &["target"]),
    ("kdbprom_samples_in_total", "Samples taken into the target's pipeline.", Kind::Counter, &["target"]),
    ("kdbprom_samples_sent_total", "Samples the target accepted.", Kind::Counter, &["target"]),
    ("kdbprom_samples_failed_total", "Samples given up, by target and reason.", Kind::Counter, &["target", "reason"]),
    ("kdbprom_samples_retried_total", "Samples sent again after a failed attempt.", Kind::Counter, &["target"]),
    ("kdbprom_queue_samples", "Samples waiting in the target's queue.", Kind::Gauge, &["target"]),
    ("kdbprom_spool_samples", "Samples this run wrote to the spool for the target.", Kind::Gauge, &["target"]),
    ("kdbprom_spool_bytes", "Bytes of the spool files this run wrote for the target.", Kind::Gauge, &["target"]),
    ("kdbprom_last_success_timestamp_seconds", "When the target last accepted a request (Unix seconds).", Kind::Gauge, &["target"]),
    ("kdbprom_push_duration_seconds", "Wall time of a push, retries included, by target.", Kind::Histogram, &["target"]),
];

/// Declares the self-metric families and returns the process-wide series.
pub fn declare(reg: &Registry) -> Result<Own, RegistryError> {
    reg.declare("kdbprom_events_recorded_total", "Events offered to kdbprom's ring.", Kind::Counter, &[], &[])?;
    reg.declare("kdbprom_events_dropped_total", "Events dropped because the ring was full.", Kind::Counter, &[], &[])?;
    reg.declare("kdbprom_queue_length", "Events waiting in the ring.", Kind::Gauge, &[], &[])?;
    reg.declare("kdbprom_series", "Live series.", Kind::Gauge, &[], &[])?;
    let help = "Records (events; an observe vector counts its values) that went to the metric's overflow series \
                (otel_metric_overflow=\"true\") because a new label set was past max_series or max_series_per_metric.";
    reg.declare(SERIES_OVERFLOW, help, Kind::Counter, &["metric"], &[])?;
    for (name, help, kind, labels) in TARGET_FAMILIES {
        let params: &[f64] = if kind == Kind::Histogram { &PUSH_BUCKETS } else { &[] };
        reg.declare(name, help, kind, labels, params)?;
    }
    Ok(Own {
        recorded: reg.by_name("kdbprom_events_recorded_total")?,
        dropped: reg.by_name("kdbprom_events_dropped_total")?,
        queued: reg.by_name("kdbprom_queue_length")?,
        series: reg.by_name("kdbprom_series")?,
        overflow: OverflowSeries::default(),
    })
}

/// Creates the series of target `t` (after [`declare`]).
pub fn target(reg: &Registry, t: &str) -> Result<TargetSeries, RegistryError> {
    let one = |name: &str| reg.builtin_series(name, &[t]);
    let mut samples_failed = [0; 8];
    for (s, r) in samples_failed.iter_mut().zip(Reason::ALL) {
        *s = reg.builtin_series("kdbprom_samples_failed_total", &[t, r.as_str()])?;
    }
    Ok(TargetSeries {
        ok: reg.builtin_series("kdbprom_pushes_total", &[t, "ok"])?,
        failed: reg.builtin_series("kdbprom_pushes_total", &[t, "failed"])?,
        bytes: one("kdbprom_push_bytes_total")?,
        duration: one("kdbprom_push_duration_seconds")?,
        samples_in: one("kdbprom_samples_in_total")?,
        samples_sent: one("kdbprom_samples_sent_total")?,
        samples_failed,
        samples_retried: one("kdbprom_samples_retried_total")?,
        queue_samples: one("kdbprom_queue_samples")?,
        spool_samples: one("kdbprom_spool_samples")?,
        spool_bytes: one("kdbprom_spool_bytes")?,
        last_success: one("kdbprom_last_success_timestamp_seconds")?,
    })
}

/// The ring's figures at one instant.
#[derive(Debug, Clone, Copy)]
pub struct RingFigures {
    /// Events applied + queued + dropped.
    pub recorded: u64,
    /// Events dropped because the ring was full.
    pub dropped: u64,
    /// Events waiting.
    pub queued: u64,
    /// Live series.
    pub series: u64,
}

/// Writes the ring's figures into the aggregation state.
pub fn publish_ring(agg: &mut Aggregator, reg: &Registry, own: &Own, r: RingFigures) {
    for (sid, v) in [(own.recorded, r.recorded), (own.dropped, r.dropped), (own.queued, r.queued), (own.series, r.series)] {
        agg.put(reg, sid, v as f64);
    }
}

/// Writes the records that went to each family's overflow series (the aggregator counts them as
/// it applies events) into `kdbprom_series_overflow_total{metric}`, making a family's series the
/// first time it has one.
pub fn publish_overflow(agg: &mut Aggregator, reg: &Registry, own: &Own) {
    for (fid, n) in agg.overflow_records() {
        // Creating a built-in series fails only when 2^32 ids were handed out: then it goes uncounted.
        if let Ok(sid) = own.overflow.get(reg, fid) {
            agg.put(reg, sid, n as f64);
        }
    }
}

/// Writes one target's accounting into the aggregation state.
pub fn publish_target(agg: &mut Aggregator, reg: &Registry, s: &TargetSeries, c: &Counts) {
    let scalars = [
        (s.ok, c.pushes_ok as f64),
        (s.failed, c.pushes_failed as f64),
        (s.bytes, c.bytes_sent as f64),
        (s.samples_in, c.samples_in as f64),
        (s.samples_sent, c.sent as f64),
        (s.samples_retried, c.retried as f64),
        (s.queue_samples, c.queued as f64),
        (s.spool_samples, c.spooled as f64),
        (s.spool_bytes, c.spool_bytes as f64),
        (s.last_success, c.last_success),
    ];
    for (sid, v) in scalars {
        agg.put(reg, sid, v);
    }
    for (sid, r) in s.samples_failed.iter().zip(Reason::ALL) {
        agg.put(reg, *sid, c.failed(r) as f64);
    }
}

/// Observes how long a push took.
pub fn push_done(agg: &mut Aggregator, reg: &Registry, s: &TargetSeries, o: &Outcome) {
    agg.observe(reg, s.duration, o.millis / 1e3);
}
