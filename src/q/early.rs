//! Declarations made before `.prom.init`, checked at once and applied when the agent starts.
//!
//! KX exporter 1.x scripts declare their metrics (`newmetric`, `addmetric`) before they start the
//! exporter, and q scripts commonly declare in a library loaded before the one that calls
//! `.prom.init`. Each such call is checked as far as it can be without an agent (names, labels,
//! buckets, against a scratch registry with default limits), so a mistake is still a q error at
//! the line that made it; it is then kept, in order, and replayed into the agent that `.prom.init`
//! starts. Records still need an agent: only declarations wait.

use crate::aggregate::NativeConfig;
use crate::registry::{Kind, Limits, Registry};
use std::sync::Mutex;

/// One call kept for the next init.
#[derive(Debug, Clone)]
pub enum Early {
    /// `.prom.counter/gauge/histogram/summary`.
    Declare { kind: Kind, name: String, help: String, labels: Vec<String>, params: Vec<f64>, native: Option<NativeConfig> },
    /// KX 1.x `.prom.newmetric`.
    NewMetric { metric: String, kind: Kind, labels: Vec<String>, help: String },
    /// KX 1.x `.prom.addmetric`.
    AddMetric { metric: String, values: Vec<String>, params: Vec<f64>, start: Vec<f64> },
}

static KEPT: Mutex<Vec<Early>> = Mutex::new(Vec::new());
/// Where declarations are checked before there is an agent; a fresh one after each init, as the
/// next agent's registry will be (a family redeclared after a stop is checked against that, not
/// against what the last run declared).
static SCRATCH: Mutex<Option<Registry>> = Mutex::new(None);

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Checks `e` and keeps it for the next init.
pub fn keep(e: Early) -> Result<(), String> {
    match &e {
        Early::Declare { kind, name, help, labels, params, native } => {
            let mut scratch = SCRATCH.lock().unwrap_or_else(|p| p.into_inner());
            let scratch = scratch.get_or_insert_with(|| Registry::new(Limits::default()));
            scratch.declare_with(name, help, *kind, &strs(labels), params, *native).map_err(|e| e.to_string())?;
        }
        Early::NewMetric { metric, labels, .. } => {
            crate::name::check_metric(metric).map_err(|e| e.to_string())?;
            for l in labels {
                crate::name::check_label(l).map_err(|e| format!("newmetric {metric}: {e}"))?;
            }
        }
        Early::AddMetric { .. } => {}
    }
    KEPT.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    Ok(())
}

/// Applies every kept call to the session just started, in the order they were made; the first
/// refusal is the error of the init. Either way nothing stays kept: a refused declaration must
/// not fail every later init, and the error names it to be made again.
pub fn apply(s: &super::Session) -> Result<(), String> {
    let kept = std::mem::take(&mut *KEPT.lock().unwrap_or_else(|p| p.into_inner()));
    SCRATCH.lock().unwrap_or_else(|p| p.into_inner()).take();
    for e in &kept {
        let r = match e {
            Early::Declare { kind, name, help, labels, params, native } => {
                s.registry().declare_with(name, help, *kind, &strs(labels), params, *native).map(drop).map_err(|e| e.to_string())
            }
            Early::NewMetric { metric, kind, labels, help } => {
                s.compat.newmetric(s, metric, *kind, &strs(labels), help).map_err(|e| e.to_string())
            }
            Early::AddMetric { metric, values, params, start } => {
                s.compat.addmetric(s, metric, &strs(values), params, start).map(drop).map_err(|e| e.to_string())
            }
        };
        r.map_err(|why| format!("a declaration made before .prom.init was refused: {why}"))?;
    }
    Ok(())
}
