//! The aggregated state at one instant, as plain data: the only input of the encoders.

mod native;

pub use native::{NativeSnapshot, Spans};

use crate::event::SeriesId;
use crate::registry::{Family, FamilyId};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every live series of every family, families in declaration order, series in creation order.
///
/// The identity contract, which the kept encoders rely on to know a family or series again
/// without reading it: within one [`Snapshot::generation`], a [`FamilySnapshot::id`] names the
/// same family (name, help, kind, label names, parameters) and a [`SeriesSnapshot::id`] the same
/// family, label values and overflow flag, in every snapshot that has them. A registry gives
/// this ([`crate::registry::Registry::generation`]); anything else that makes snapshots must
/// give ids as consistently, or take a generation of its own.
#[derive(Debug)]
pub struct Snapshot<'r> {
    /// The registry the ids below are of: never 0, never another registry's.
    pub generation: u64,
    /// One entry per declared family.
    pub families: Vec<FamilySnapshot<'r>>,
}

/// One family and its series.
#[derive(Debug)]
pub struct FamilySnapshot<'r> {
    /// The family's id in its registry: within the snapshot's generation, always this family.
    pub id: FamilyId,
    /// Name, help, kind, label names.
    pub family: &'r Family,
    /// What the family shows, as a number: two snapshots of one generation whose family has the
    /// same version, other than 0, show the same series with the same values, so an encoder that
    /// kept its bytes of the first may use them for the second whole. Versions come from one
    /// process-wide counter ([`next_version`]), so no two contents ever share one; 0 promises
    /// nothing (a snapshot made otherwise than by [`crate::aggregate::Aggregator::snapshot`]).
    pub version: u64,
    /// Live series.
    pub series: Vec<SeriesSnapshot<'r>>,
}

/// One series' label values and value.
#[derive(Debug)]
pub struct SeriesSnapshot<'r> {
    /// The series' id in its registry: within the snapshot's generation, always this family,
    /// these label values and this overflow flag (ids are never reused).
    pub id: SeriesId,
    /// Values in the order of the family's label names.
    pub label_values: &'r [Box<str>],
    /// When the series was created (ms since the Unix epoch).
    pub created_ms: i64,
    /// The family's overflow series: its label values are all empty, and the encoders label it
    /// [`crate::registry::OVERFLOW_LABEL`]`="true"`.
    pub overflow: bool,
    /// The aggregated value.
    pub value: Value,
}

/// An aggregated value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Counter or gauge.
    Scalar(f64),
    /// Histogram: classic buckets, native buckets, or both.
    Histogram {
        /// Upper bounds without +Inf; empty for a native-only histogram.
        bounds: Arc<[f64]>,
        /// Cumulative counts, one per bound then +Inf; empty (no `+Inf` either) for a native-only
        /// histogram.
        cumulative: Vec<u64>,
        /// Sum of observations.
        sum: f64,
        /// Count of observations.
        count: u64,
        /// The native (sparse) buckets, for a histogram declared native. Boxed: inline, they made
        /// every series' snapshot, counters included, 224 bytes instead of 96 (written and read
        /// once a push per series: 18 % of a 10 k-counter text push's instructions).
        native: Option<Box<NativeSnapshot>>,
    },
    /// Summary.
    Summary {
        /// (quantile, value) pairs in increasing quantile order; NaN when the window is empty.
        quantiles: Vec<(f64, f64)>,
        /// Sum of observations.
        sum: f64,
        /// Count of observations.
        count: u64,
    },
}

/// A family version never handed out before (see [`FamilySnapshot::version`]); never 0.
pub fn next_version() -> u64 {
    static VERSIONS: AtomicU64 = AtomicU64::new(1);
    VERSIONS.fetch_add(1, Ordering::Relaxed)
}

// Every series of every push is one of these: kept small, so a snapshot is a short copy.
const _: () = assert!(std::mem::size_of::<SeriesSnapshot<'static>>() <= 96);

impl Snapshot<'_> {
    /// True when no family has a series.
    pub fn is_empty(&self) -> bool {
        self.families.iter().all(|f| f.series.is_empty())
    }

    /// Number of samples the snapshot expands to (buckets, quantiles, sums and counts included),
    /// as remote write counts them: a native histogram is one sample (its classic buckets, sum
    /// and count, when it has them, count as well).
    pub fn sample_count(&self) -> usize {
        self.families
            .iter()
            .flat_map(|f| &f.series)
            .map(|s| match &s.value {
                Value::Scalar(_) => 1,
                Value::Histogram { cumulative, native, .. } => {
                    (if cumulative.is_empty() { 0 } else { cumulative.len() + 2 }) + usize::from(native.is_some())
                }
                Value::Summary { quantiles, .. } => quantiles.len() + 2,
            })
            .sum()
    }
}
