//! Families a q function sets whole at each sample (`.prom.collect[name;f]`): what each
//! collector returned last, so a series it stops returning is removed (and gets its stale
//! marker) and a counter's running total becomes increments.

use crate::agent::{Agent, AgentError};
use crate::event::{Op, SeriesId};
use crate::registry::Kind;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use thiserror::Error;

/// Why a collector's result changed nothing.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CollectError {
    /// No family of that name was declared.
    #[error("collect {0}: no such family (declare it with .prom.gauge or .prom.counter first)")]
    Unknown(String),
    /// Only gauges and counters are set by collectors.
    #[error("collect {0}: a {1} cannot be collected (gauges and counters only)")]
    Kind(String, &'static str),
    /// A row's label values do not match the family's label names.
    #[error("collect {name}: {got} label value(s) where the family has {want} label(s)")]
    Labels {
        /// The family.
        name: String,
        /// Label values in the row.
        got: usize,
        /// Label names of the family.
        want: usize,
    },
    /// A null or infinite value.
    #[error("collect {0}: a value is null or infinite")]
    NotFinite(String),
    /// One label set twice in one result.
    #[error("collect {0}: label values {1:?} given twice")]
    Twice(String, Vec<String>),
    /// A counter's total went down (counters only grow; a restart is a new process).
    #[error("collect {name}: counter {labels:?} went back from {from} to {to}")]
    WentBack {
        /// The family.
        name: String,
        /// The series' label values.
        labels: Vec<String>,
        /// Its last total.
        from: f64,
        /// The new one.
        to: f64,
    },
    /// The registry or the agent refused (series limits, stopped).
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// One collector's last result: label values → (series, value).
type Last = HashMap<Vec<String>, (SeriesId, f64)>;

/// Every collector's last result, and the causes already logged.
#[derive(Debug, Default)]
pub struct Collectors {
    last: Mutex<HashMap<String, Last>>,
    logged: Mutex<HashSet<(String, String)>>,
}

impl Collectors {
    /// Sets family `name` to `rows` (label values → value), all or nothing: series not in `rows`
    /// that the last result had are removed; a counter is incremented by what its total grew.
    pub fn apply(&self, a: &Agent, name: &str, rows: &[(Vec<String>, f64)]) -> Result<(), CollectError> {
        let reg = a.registry();
        let fid = reg.family_named(name).ok_or_else(|| CollectError::Unknown(name.into()))?;
        let family = reg.family(fid);
        if !matches!(family.kind, Kind::Gauge | Kind::Counter) {
            return Err(CollectError::Kind(name.into(), family.kind.as_str()));
        }
        let counter = family.kind == Kind::Counter;
        let want = family.label_names.len();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let none = Last::new();
        let before = last.get(name).unwrap_or(&none);
        let mut seen = HashSet::new();
        for (labels, v) in rows {
            if labels.len() != want {
                return Err(CollectError::Labels { name: name.into(), got: labels.len(), want });
            }
            if !v.is_finite() || (counter && *v < 0.0) {
                return Err(CollectError::NotFinite(name.into()));
            }
            if !seen.insert(labels) {
                return Err(CollectError::Twice(name.into(), labels.clone()));
            }
            let from = before.get(labels).map_or(0.0, |p| p.1);
            if counter && *v < from {
                return Err(CollectError::WentBack { name: name.into(), labels: labels.clone(), from, to: *v });
            }
        }
        let mut now = HashMap::with_capacity(rows.len());
        for (labels, v) in rows {
            let values: Vec<&str> = labels.iter().map(String::as_str).collect();
            let sid = a.series(name, &values)?;
            if counter {
                let grew = v - before.get(labels).map_or(0.0, |p| p.1);
                if grew > 0.0 {
                    a.record(sid, Op::Inc, grew)?;
                }
            } else {
                a.record(sid, Op::Set, *v)?;
            }
            now.insert(labels.clone(), (sid, *v));
        }
        for (labels, (sid, _)) in before {
            if !now.contains_key(labels) {
                a.remove(*sid)?;
            }
        }
        last.insert(name.into(), now);
        Ok(())
    }

    /// Counts a failed collector run in `kdbprom_collect_errors_total{collector}` and says it on
    /// stderr once per cause; the family keeps its last values.
    pub fn failed(&self, a: &Agent, name: &str, why: &str) -> Result<(), AgentError> {
        let sid = a.registry().builtin_series("kdbprom_collect_errors_total", &[name])?;
        a.record(sid, Op::Inc, 1.0)?;
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.len() < 256 && logged.insert((name.to_string(), why.to_string())) {
            crate::warn!("collector {name} failed: {why}; its family keeps its last values");
        }
        Ok(())
    }
}
