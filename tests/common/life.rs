//! An agent's life through the exports, as q lives it: `.prom.init` with a q dictionary, pushes and
//! their outcomes, `.prom.stats[]` per target, `.prom.stop[]` (figures + the final outcomes), the
//! text. Every test that lives an agent through the exports reads its figures through it.

use super::{Host, host};
use kdbplus::api::K;
use std::collections::HashMap;

/// One target's outcome of a push (`.prom.push[]` / `pushed` of `.prom.stop[]`).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ok: bool,
    pub status: i64,
    pub message: String,
    pub samples: i64,
    pub attempts: i64,
}

/// One target's figures as `.prom.stats[]` / `.prom.stop[]` give them.
#[derive(Debug, Clone, Default)]
pub struct Tgt {
    pub samples_in: i64,
    pub sent: i64,
    pub failed: HashMap<String, i64>,
    pub retried: i64,
    pub queued: i64,
    pub spooled: i64,
    pub spool_bytes: i64,
    pub last_success: f64,
}

impl Tgt {
    pub fn failed(&self, reason: &str) -> i64 {
        *self.failed.get(reason).unwrap_or_else(|| panic!("no samples_failed.{reason} in {self:?}"))
    }
    pub fn failed_total(&self) -> i64 {
        self.failed.values().sum()
    }
    /// in = sent + failed + queued + spooled.
    pub fn balanced(&self) -> bool {
        self.samples_in == self.sent + self.failed_total() + self.queued + self.spooled
    }
    /// in = sent + failed + queued + spooled.
    pub fn assert_identity(&self) {
        assert_eq!(self.samples_in, self.sent + self.failed_total() + self.queued + self.spooled, "accounting identity: {self:?}");
    }
    /// Every reason but those in `except` is zero.
    pub fn assert_failed_only(&self, except: &[&str]) {
        for (r, n) in &self.failed {
            if !except.contains(&r.as_str()) {
                assert_eq!(*n, 0, "samples_failed.{r}: {self:?}");
            }
        }
    }
}

/// `.prom.stats[]` (or `.prom.stop[]`): the top-level longs, each target, the final outcomes.
#[derive(Debug, Default)]
pub struct Stats {
    pub top: HashMap<String, i64>,
    pub targets: HashMap<String, Tgt>,
    pub pushed: HashMap<String, Outcome>,
}

pub fn outcomes(h: &Host, d: K) -> HashMap<String, Outcome> {
    h.dict_items(d)
        .into_iter()
        .map(|(t, o)| {
            let f: HashMap<String, K> = h.dict_items(o).into_iter().collect();
            let o = Outcome {
                ok: h.boolean(f["ok"]),
                status: h.long(f["status"]),
                message: h.string(f["message"]),
                samples: h.long(f["samples"]),
                attempts: h.long(f["attempts"]),
            };
            (t, o)
        })
        .collect()
}

pub fn parse_stats(h: &Host, d: K) -> Stats {
    let mut st = Stats::default();
    for (k, v) in h.dict_items(d) {
        match k.as_str() {
            "targets" => {
                for (name, td) in h.dict_items(v) {
                    let mut t = Tgt::default();
                    for (f, x) in h.dict_items(td) {
                        match f.as_str() {
                            "samples_failed" => t.failed = h.long_dict(x).into_iter().collect(),
                            "last_success" => t.last_success = h.float(x),
                            "samples_in" => t.samples_in = h.long(x),
                            "samples_sent" => t.sent = h.long(x),
                            "samples_retried" => t.retried = h.long(x),
                            "queue_samples" => t.queued = h.long(x),
                            "spool_samples" => t.spooled = h.long(x),
                            "spool_bytes" => t.spool_bytes = h.long(x),
                            other => panic!("unexpected target field {other}"),
                        }
                    }
                    st.targets.insert(name, t);
                }
            }
            "pushed" => st.pushed = outcomes(h, v),
            _ if h.qtype(v) == -7 => {
                st.top.insert(k, h.long(v));
            }
            _ => {}
        }
    }
    st
}

/// A live agent of the loaded .so (one at a time: hold [`super::lock`]).
pub struct Life {
    pub h: &'static Host,
}

impl Life {
    /// `.prom.init` with `job`, `instance` and `extra` keys (a q dictionary of the given values);
    /// stops a previous agent first.
    pub fn init(job: &str, instance: &str, extra: &[(&str, K)]) -> Life {
        let h = host();
        let mut keys = vec!["job", "instance"];
        let mut vals = vec![h.s(job), h.s(instance)];
        for (k, v) in extra {
            keys.push(k);
            vals.push(*v);
        }
        Life::init_with(&keys, &vals)
    }

    /// `.prom.init` with the dictionary of `keys` and `vals` as given (no instance added); stops a
    /// previous agent first.
    pub fn init_with(keys: &[&str], vals: &[K]) -> Life {
        let h = host();
        Life::init_as(h.dict(keys, vals), h.id())
    }

    /// `.prom.init[cfg;process]` as the q script calls it: any configuration (a dictionary, a
    /// file path, `::`) and the process dictionary (or `::`); stops a previous agent first.
    pub fn init_as(cfg: K, process: K) -> Life {
        let h = host();
        let _ = h.call("kdbprom_stop", &[h.id()]);
        let r = h.ok("kdbprom_init", &[cfg, process]);
        (h.r0)(r);
        Life { h }
    }

    /// `.prom.init` as it fails: the error text.
    pub fn init_err(job: &str, extra: &[(&str, K)]) -> String {
        let h = host();
        let _ = h.call("kdbprom_stop", &[h.id()]);
        let mut keys = vec!["job"];
        let mut vals = vec![h.s(job)];
        for (k, v) in extra {
            keys.push(k);
            vals.push(*v);
        }
        h.err("kdbprom_init", &[h.dict(&keys, &vals), h.id()])
    }

    pub fn push(&self) -> HashMap<String, Outcome> {
        let d = self.h.ok("kdbprom_push", &[self.h.id()]);
        let o = outcomes(self.h, d);
        (self.h.r0)(d);
        o
    }

    pub fn stats(&self) -> Stats {
        let d = self.h.ok("kdbprom_stats", &[self.h.id()]);
        let st = parse_stats(self.h, d);
        (self.h.r0)(d);
        st
    }

    pub fn target(&self, name: &str) -> Tgt {
        self.stats().targets.remove(name).unwrap_or_else(|| panic!("no target {name}"))
    }

    /// `.prom.stop[]`: the final figures plus the final push's outcomes.
    pub fn stop(&self) -> Stats {
        let d = self.h.ok("kdbprom_stop", &[self.h.id()]);
        let st = parse_stats(self.h, d);
        (self.h.r0)(d);
        st
    }

    pub fn text(&self) -> String {
        let t = self.h.ok("kdbprom_text", &[self.h.id()]);
        let s = self.h.string(t);
        (self.h.r0)(t);
        s
    }

    /// `.prom.x.decl[kind;name;help;labels;params]` (labels a symbol list, params floats or `::`).
    pub fn declare(&self, kind: &str, name: &str, labels: &[&str], params: Option<&[f64]>) {
        let h = self.h;
        let l = if labels.is_empty() { h.id() } else { h.syms(labels) };
        let p = params.map_or_else(|| h.id(), |p| h.floats(p));
        h.ok("kdbprom_declare", &[h.s(kind), h.s(name), h.str("A test metric."), l, p]);
    }

    pub fn gauge(&self, name: &str) {
        self.declare("gauge", name, &[], None);
    }

    /// A series id of `name` with these label values.
    pub fn series(&self, name: &str, values: &[&str]) -> i64 {
        let k = self.h.ok("kdbprom_series", &[self.h.s(name), self.h.syms(values)]);
        let id = self.h.long(k);
        (self.h.r0)(k);
        id
    }

    pub fn set(&self, name: &str, v: f64) {
        self.h.ok("kdbprom_set", &[self.h.s(name), self.h.f(v)]);
    }

    pub fn set_id(&self, id: i64, v: f64) {
        self.h.ok("kdbprom_set", &[self.h.j(id), self.h.f(v)]);
    }

    pub fn observe(&self, name: &str, v: f64) {
        self.h.ok("kdbprom_observe", &[self.h.s(name), self.h.f(v)]);
    }
}

/// The sample lines of a text exposition (not comments, not blank).
pub fn sample_lines(text: &str) -> usize {
    text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count()
}

/// Polls `f` every 10 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + timeout;
    while !f() {
        assert!(std::time::Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
