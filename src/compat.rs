//! KX exporter 1.x compatibility: `.prom.newmetric`, `.prom.addmetric`, `.prom.updval`.
//!
//! 1.x declares a family without buckets (`newmetric`) and gives buckets or quantiles per
//! instance (`addmetric`); we declare the real family at its first `addmetric` and refuse later
//! instances with other parameters, since one family has one set of bounds. `addmetric` returns
//! the 1.x handle `` `metric|labelvalue|… ``, which `updval` accepts as well as a series id.

use crate::agent::{Agent, AgentError};
use crate::event::{Op, SeriesId};
use crate::registry::{Kind, RegistryError};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
struct Pending {
    kind: Kind,
    labels: Vec<String>,
    help: String,
}

/// The 1.x families awaiting their first instance, and the handles handed out.
#[derive(Default)]
pub struct Compat {
    pending: Mutex<HashMap<String, Pending>>,
    /// Read on every `updval`, so lock-free.
    handles: ArcSwap<HashMap<String, SeriesId>>,
}

impl Compat {
    /// `.prom.newmetric[metric;type;labelnames;help]`.
    pub fn newmetric(&self, agent: &Agent, metric: &str, kind: Kind, labels: &[&str], help: &str) -> Result<(), AgentError> {
        crate::name::check_metric(metric).map_err(RegistryError::from)?;
        if matches!(kind, Kind::Counter | Kind::Gauge) {
            agent.declare(metric, help, kind, labels, &[])?;
            return Ok(());
        }
        let p = Pending { kind, labels: labels.iter().map(|s| s.to_string()).collect(), help: help.into() };
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(metric.into(), p);
        Ok(())
    }

    /// `.prom.addmetric[metric;labelvals;params;startval]`: returns the 1.x handle.
    pub fn addmetric(&self, agent: &Agent, metric: &str, values: &[&str], params: &[f64], start: &[f64]) -> Result<String, AgentError> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(metric);
        if let Some(p) = &pending {
            let labels: Vec<&str> = p.labels.iter().map(String::as_str).collect();
            if let Err(e) = agent.declare(metric, &p.help, p.kind, &labels, params) {
                // Put it back so a corrected addmetric can still declare it.
                self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(metric.into(), p.clone());
                return Err(e);
            }
        } else if let Some(fid) = agent.registry().family_named(metric) {
            let f = agent.registry().family(fid);
            if matches!(f.kind, Kind::Histogram | Kind::Summary) && !params.is_empty() {
                // Redeclaring with these params fails unless they equal the family's.
                let labels: Vec<&str> = f.label_names.iter().map(|s| &**s).collect();
                agent.declare(metric, &f.help, f.kind, &labels, params)?;
            }
        }
        let sid = agent.series(metric, values)?;
        let kind = agent.registry().live_slot(sid).map_err(AgentError::from)?.kind;
        match (kind, start) {
            (_, []) => {}
            (Kind::Counter, s) => {
                agent.record_vector(sid, Op::Inc, s)?;
            }
            (Kind::Gauge, [v]) => {
                agent.record(sid, Op::Set, *v)?;
            }
            (Kind::Gauge, _) => return Err(AgentError::SetVector(metric.into())),
            (_, s) => {
                agent.record_vector(sid, Op::Observe, s)?;
            }
        }
        let handle = handle(metric, values);
        let mut map = HashMap::clone(&self.handles.load());
        map.insert(handle.clone(), sid);
        self.handles.store(Arc::new(map));
        Ok(handle)
    }

    /// Resolves a 1.x handle, or a bare unlabelled metric name, to its series.
    pub fn resolve(&self, agent: &Agent, handle: &str) -> Result<SeriesId, AgentError> {
        match self.handles.load().get(handle) {
            Some(&sid) => Ok(sid),
            None => agent.by_name(handle),
        }
    }
}

/// The 1.x handle `addmetric` returns for `metric` and its label values: `metric|v1|v2…`.
pub fn handle(metric: &str, values: &[&str]) -> String {
    std::iter::once(metric).chain(values.iter().copied()).collect::<Vec<_>>().join("|")
}

/// The `updval` function argument, as the q script names it: `:` set, `+` inc, `-` dec, `,` observe.
pub fn updval_op(func: &str) -> Option<Op> {
    Some(match func {
        "set" => Op::Set,
        "inc" => Op::Inc,
        "dec" => Op::Dec,
        "observe" => Op::Observe,
        _ => return None,
    })
}
