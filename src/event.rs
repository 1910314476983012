//! What the record path puts in the ring: a small `Copy` event, and a vector batch for `observe`.

/// Index of one labelled series in the registry. Never reused while the agent lives.
pub type SeriesId = u32;

/// The operation an event applies to its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    /// Add to a counter or gauge (`.prom.inc`).
    Inc,
    /// Subtract from a gauge (`.prom.dec`).
    Dec,
    /// Replace a gauge's value (`.prom.set`).
    Set,
    /// One observation into a histogram or summary (`.prom.observe`).
    Observe,
}

impl Op {
    /// The q API verb for the operation, for error messages.
    pub fn verb(self) -> &'static str {
        match self {
            Op::Inc => "inc",
            Op::Dec => "dec",
            Op::Set => "set",
            Op::Observe => "observe",
        }
    }
}

/// One scalar record: 16 bytes, no heap, so the ring push is a copy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// Target series.
    pub series: SeriesId,
    /// What to do.
    pub op: Op,
    /// Finite value, already converted to seconds for timespans.
    pub value: f64,
}

const _: () = assert!(std::mem::size_of::<Event>() == 16);

/// A whole vector of observations for one series, recorded or dropped as a unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Target series (a histogram or summary).
    pub series: SeriesId,
    /// Finite observations.
    pub values: Vec<f64>,
}
