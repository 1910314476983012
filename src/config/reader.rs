//! The reader of a JSON object (a q dictionary arrives as one): typed getters that track the key path and the keys used.

use super::{ConfigError, Instrument};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `s` with anything that may be userinfo replaced, for echoing a URL in an error: everything
/// between `://` (or the start) and the last `@`. Broader than a URL parser's view on purpose:
/// the URL being echoed is one the parser refused, so its parts cannot be trusted.
pub(super) fn hide_userinfo(s: &str) -> String {
    let start = s.find("://").map_or(0, |i| i + 3);
    match s[start..].rfind('@') {
        Some(at) => format!("{}<redacted>{}", &s[..start], &s[start + at..]),
        None => s.to_string(),
    }
}

/// The object where one is expected: `v` itself, or the one object of a one-element array. A q
/// user's `enlist` of a dictionary is a one-row table, which reaches here as an array of one
/// object (and a dictionary inside it as a one-row table column, an object per row).
pub(super) fn one_object(v: &Value) -> &Value {
    match v {
        Value::Array(a) if a.len() == 1 && a[0].is_object() => &a[0],
        v => v,
    }
}

/// A JSON object being read: tracks its key path and which keys were used.
pub(super) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    used: Vec<&'a str>,
}

impl<'a> Obj<'a> {
    pub(super) fn new(v: &'a Value, path: &str) -> Result<Self, ConfigError> {
        let key = || if path.is_empty() { "(top level)".to_string() } else { path.to_string() };
        match one_object(v) {
            Value::Object(map) => Ok(Obj { map, path: path.into(), used: Vec::new() }),
            Value::Array(rows) if !rows.is_empty() && rows.iter().all(Value::is_object) => Err(ConfigError::Invalid {
                key: key(),
                why: format!("must be one dictionary, not a table of {} rows (or a list of {} dictionaries)", rows.len(), rows.len()),
            }),
            _ => Err(ConfigError::Type { key: key(), expected: "an object / dictionary" }),
        }
    }

    pub(super) fn key(&self, k: &str) -> String {
        if self.path.is_empty() { k.into() } else { format!("{}.{k}", self.path) }
    }

    pub(super) fn invalid(&self, k: &str, why: &str) -> ConfigError {
        ConfigError::Invalid { key: self.key(k), why: why.into() }
    }

    pub(super) fn missing(&self, k: &str) -> ConfigError {
        ConfigError::Missing(self.key(k))
    }

    pub(super) fn has(&self, k: &str) -> bool {
        self.map.contains_key(k)
    }

    pub(super) fn get(&mut self, k: &str) -> Option<&'a Value> {
        let (key, v) = self.map.get_key_value(k)?;
        self.used.push(key);
        // An explicit null means "default", as a q user passing (::) would expect.
        (!v.is_null()).then_some(v)
    }

    pub(super) fn opt_str(&mut self, k: &str) -> Result<Option<String>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ConfigError::Type { key: self.key(k), expected: "a string or symbol" }),
        }
    }

    pub(super) fn path(&mut self, k: &str) -> Result<Option<PathBuf>, ConfigError> {
        let p = self.opt_str(k)?.map(PathBuf::from);
        if let Some(p) = &p
            && !p.is_file()
        {
            return Err(self.invalid(k, &format!("{} is not a readable file", p.display())));
        }
        Ok(p)
    }

    pub(super) fn url(&mut self, k: &str) -> Result<String, ConfigError> {
        let s = self.opt_str(k)?.ok_or_else(|| self.missing(k))?;
        let shown = hide_userinfo(&s);
        let u = reqwest::Url::parse(&s).map_err(|e| self.invalid(k, &format!("'{shown}' is not a URL: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(self.invalid(k, &format!("'{shown}' must be an http:// or https:// URL with a host")));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(self.invalid(k, "must not carry credentials: use basic_auth"));
        }
        Ok(s.trim_end_matches('/').to_string())
    }

    pub(super) fn num(&mut self, k: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let n = match self.get(k) {
            None => return Ok(default),
            Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)),
            Some(_) => None,
        };
        let n = n.ok_or_else(|| ConfigError::Type { key: self.key(k), expected: "a non-negative whole number" })?;
        if !(min..=max).contains(&n) {
            return Err(self.invalid(k, &format!("{n} is outside {min}..{max}")));
        }
        Ok(n)
    }

    pub(super) fn bool(&mut self, k: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(k) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ConfigError::Type { key: self.key(k), expected: "a boolean" }),
        }
    }

    pub(super) fn instrument(&mut self, k: &str, default: Instrument) -> Result<Instrument, ConfigError> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => Instrument::from_json(v).map_err(|why| self.invalid(k, &why)),
        }
    }

    pub(super) fn str_map(&mut self, k: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let Some(v) = self.get(k) else { return Ok(BTreeMap::new()) };
        let key = self.key(k);
        let Value::Object(m) = one_object(v) else { return Err(ConfigError::Type { key, expected: "a dictionary of strings" }) };
        m.iter()
            .map(|(n, v)| match v {
                Value::String(s) => Ok((n.clone(), s.clone())),
                _ => Err(ConfigError::Type { key: format!("{key}.{n}"), expected: "a string or symbol" }),
            })
            .collect()
    }

    pub(super) fn child(&mut self, k: &str) -> Result<Option<Obj<'a>>, ConfigError> {
        let key = self.key(k);
        self.get(k).map(|v| Obj::new(v, &key)).transpose()
    }

    pub(super) fn list(&mut self, k: &str) -> Result<Vec<Obj<'a>>, ConfigError> {
        let key = self.key(k);
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a.iter().enumerate().map(|(i, v)| Obj::new(v, &format!("{key}[{i}]"))).collect(),
            // One dictionary is taken as a list of one, as q users will write it.
            Some(v @ Value::Object(_)) => Ok(vec![Obj::new(v, &format!("{key}[0]"))?]),
            Some(_) => Err(ConfigError::Type { key, expected: "a list of dictionaries" }),
        }
    }

    pub(super) fn finish(self) -> Result<(), ConfigError> {
        match self.map.keys().find(|k| !self.used.contains(&k.as_str())) {
            Some(k) => Err(ConfigError::UnknownKey(self.key(k))),
            None => Ok(()),
        }
    }
}
