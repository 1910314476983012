//! The environment rule: `KDBPROM_CONFIG` names the base file and each `KDBPROM_<KEY>` sets its key.

use super::{Config, ConfigError};
use serde_json::{Map, Value};
use std::collections::HashMap;

impl Config {
    /// Configuration for `.prom.init[::]`, by one rule: the file `KDBPROM_CONFIG` names (if set)
    /// is the base, and each other `KDBPROM_<KEY>` variable (`ENV_KEYS`) sets its key over it;
    /// with neither, the defaults. A `KDBPROM_*` variable that is not configuration is refused,
    /// naming it (as an unknown key in a file is), except `KDBPROM_LIB`, the q script's.
    /// The `remote_write` variables set one target: the file's only one, or a new one.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let mut base = match env.get("KDBPROM_CONFIG") {
            Some(path) => Config::read_file(path)?,
            None => Value::Object(Map::new()),
        };
        let mut vars: Vec<(&String, &String)> = env.iter().filter(|(k, _)| is_config_var(k)).collect();
        vars.sort();
        // Key paths (as errors name them) set by a variable, and the variable.
        let mut set: Vec<(String, &str)> = Vec::new();
        for (var, v) in vars {
            let Some((path, kind)) = ENV_KEYS.iter().find(|(p, _)| env_var(p) == *var) else {
                let key = var["KDBPROM_".len()..].to_ascii_lowercase();
                return Err(ConfigError::UnknownKey(format!("{key} (from environment {var})")));
            };
            let key = error_key(path);
            let val = kind.read(v).map_err(|expected| ConfigError::Type { key: format!("{key} (from environment {var})"), expected })?;
            put(&mut base, path, val, var)?;
            set.push((key, var));
        }
        Config::from_json(&base).map_err(|e| {
            let from = |k: &str| set.iter().find(|(key, _)| key == k).map(|(_, var)| format!("{k} (from environment {var})"));
            match e {
                ConfigError::Type { key, expected } => ConfigError::Type { key: from(&key).unwrap_or(key), expected },
                ConfigError::Invalid { key, why } => ConfigError::Invalid { key: from(&key).unwrap_or(key), why },
                // A required key a variable could give: name the variable.
                ConfigError::Missing(key) => match ENV_KEYS.iter().find(|(p, _)| error_key(p) == key) {
                    Some((p, _)) => ConfigError::Missing(format!("{key} (environment {})", env_var(p))),
                    None => ConfigError::Missing(key),
                },
                e => e,
            }
        })
    }

    /// The configuration variables set in `env` (`KDBPROM_CONFIG` and those of `ENV_KEYS`),
    /// sorted: what a dictionary or file given to `.prom.init` leaves unread (the q boundary says
    /// so). Other `KDBPROM_*` names are not configuration there (a script's own, the demo's).
    pub fn ignored_env(env: &HashMap<String, String>) -> Vec<String> {
        let known = |k: &str| k == "KDBPROM_CONFIG" || ENV_KEYS.iter().any(|(p, _)| env_var(p) == k);
        let mut v: Vec<String> = env.keys().filter(|k| known(k)).cloned().collect();
        v.sort();
        v
    }
}

/// How a `KDBPROM_*` variable's text becomes a JSON value.
#[derive(Clone, Copy)]
pub(super) enum EnvKind {
    /// As it is.
    Str,
    /// A whole number.
    Num,
    /// `true`/`false`, `1`/`0`, `yes`/`no` (any case).
    Bool,
    /// A boolean, or handler names separated by commas or spaces (`sync,http`).
    Instrument,
}

impl EnvKind {
    /// The value, or what it should have been (for [`ConfigError::Type`]).
    fn read(self, v: &str) -> Result<Value, &'static str> {
        let boolean = |v: &str| match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Some(true),
            "0" | "false" | "no" => Some(false),
            _ => None,
        };
        match self {
            EnvKind::Str => Ok(Value::String(v.into())),
            EnvKind::Num => v.trim().parse::<u64>().map(Value::from).map_err(|_| "a non-negative whole number"),
            EnvKind::Bool => boolean(v).map(Value::Bool).ok_or("true or false (1/0, yes/no)"),
            EnvKind::Instrument => Ok(match boolean(v) {
                Some(b) => Value::Bool(b),
                None if v.trim().is_empty() => Value::Bool(false),
                None => v.split([',', ' ']).filter(|n| !n.is_empty()).map(|n| Value::String(n.into())).collect(),
            }),
        }
    }
}

/// The keys the environment can set, as dotted paths (`remote_write` is its one target); the
/// variable is `KDBPROM_` and the path in upper case with `_` for `.` ([`env_var`]):
/// `remote_write.basic_auth.password_file` is `KDBPROM_REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE`.
/// Every scalar key but those of `labels`, `headers` and `grouping` (whose names are free): a new
/// key gets its line here, or `.prom.init[::]` refuses its variable as unknown.
pub(super) const ENV_KEYS: &[(&str, EnvKind)] = &[
    ("job", EnvKind::Str),
    ("instance", EnvKind::Str),
    ("interval_ms", EnvKind::Num),
    ("exit_deadline_ms", EnvKind::Num),
    ("push_timeout_ms", EnvKind::Num),
    ("ring_capacity", EnvKind::Num),
    ("ring_vector_bytes", EnvKind::Num),
    ("max_series", EnvKind::Num),
    ("max_series_per_metric", EnvKind::Num),
    ("on_series_limit", EnvKind::Str),
    ("instrument", EnvKind::Instrument),
    ("serve_metrics", EnvKind::Bool),
    ("process_metrics", EnvKind::Bool),
    ("collect_tables", EnvKind::Bool),
    ("native_request_histograms", EnvKind::Bool),
    ("summary_max_age_ms", EnvKind::Num),
    ("summary_age_buckets", EnvKind::Num),
    ("textfile", EnvKind::Str),
    ("sampler", EnvKind::Str),
    ("spool.dir", EnvKind::Str),
    ("spool.max_bytes", EnvKind::Num),
    ("pushgateway.url", EnvKind::Str),
    ("pushgateway.method", EnvKind::Str),
    ("pushgateway.format", EnvKind::Str),
    ("pushgateway.compression", EnvKind::Str),
    ("pushgateway.timeout_ms", EnvKind::Num),
    ("pushgateway.basic_auth.username", EnvKind::Str),
    ("pushgateway.basic_auth.password_file", EnvKind::Str),
    ("pushgateway.basic_auth.password_env", EnvKind::Str),
    ("pushgateway.bearer_token_file", EnvKind::Str),
    ("pushgateway.bearer_token_env", EnvKind::Str),
    ("pushgateway.tls.ca_file", EnvKind::Str),
    ("pushgateway.proxy_url", EnvKind::Str),
    ("pushgateway.proxy_from_environment", EnvKind::Bool),
    ("remote_write.url", EnvKind::Str),
    ("remote_write.name", EnvKind::Str),
    ("remote_write.protocol", EnvKind::Str),
    ("remote_write.tenant", EnvKind::Str),
    ("remote_write.tenant_header", EnvKind::Str),
    ("remote_write.remote_timeout_ms", EnvKind::Num),
    ("remote_write.basic_auth.username", EnvKind::Str),
    ("remote_write.basic_auth.password_file", EnvKind::Str),
    ("remote_write.basic_auth.password_env", EnvKind::Str),
    ("remote_write.bearer_token_file", EnvKind::Str),
    ("remote_write.bearer_token_env", EnvKind::Str),
    ("remote_write.tls.ca_file", EnvKind::Str),
    ("remote_write.proxy_url", EnvKind::Str),
    ("remote_write.proxy_from_environment", EnvKind::Bool),
    ("remote_write.send_native_histograms", EnvKind::Bool),
];

/// The variable of an [`ENV_KEYS`] path: `remote_write.tenant` → `KDBPROM_REMOTE_WRITE_TENANT`.
pub(super) fn env_var(path: &str) -> String {
    format!("KDBPROM_{}", path.replace('.', "_").to_ascii_uppercase())
}

/// An [`ENV_KEYS`] path as errors name the key: the one remote-write target is `remote_write[0]`.
fn error_key(path: &str) -> String {
    match path.strip_prefix("remote_write.") {
        Some(rest) => format!("remote_write[0].{rest}"),
        None => path.to_string(),
    }
}

/// A `KDBPROM_*` variable that is configuration: all but `KDBPROM_CONFIG` (the base file) and
/// `KDBPROM_LIB` (where the q script finds the library).
fn is_config_var(k: &str) -> bool {
    k.starts_with("KDBPROM_") && k != "KDBPROM_CONFIG" && k != "KDBPROM_LIB"
}

/// Sets `path` (an [`ENV_KEYS`] path) to `val` in `base`, making the dictionaries on the way;
/// `remote_write` is the base's only target, or a new one.
fn put(base: &mut Value, path: &str, val: Value, var: &str) -> Result<(), ConfigError> {
    let not_dict = |key: &str| ConfigError::Invalid {
        key: if key.is_empty() { "(top level)".into() } else { key.into() },
        why: format!("is not a dictionary in the KDBPROM_CONFIG file, so {var} cannot set a key in it"),
    };
    let segs: Vec<&str> = path.split('.').collect();
    let Some((last, parents)) = segs.split_last() else { return Ok(()) };
    let mut node = base;
    let mut key = String::new();
    for seg in parents {
        let Value::Object(m) = one_object_mut(node) else { return Err(not_dict(&key)) };
        key = if key.is_empty() { seg.to_string() } else { format!("{key}.{seg}") };
        let child = m.entry(*seg).or_insert(Value::Null);
        if key != "remote_write" {
            if child.is_null() {
                *child = Value::Object(Map::new());
            }
            node = child;
            continue;
        }
        // One dictionary is a list of one target (as Config::from_json reads it); null is none.
        match child {
            Value::Null => *child = Value::Array(vec![]),
            Value::Object(_) => *child = Value::Array(vec![child.take()]),
            _ => {}
        }
        let Value::Array(targets) = child else { return Err(not_dict(&key)) };
        if targets.len() > 1 {
            let why = format!("{var} sets one target, and the KDBPROM_CONFIG file has {}: set it in the file", targets.len());
            return Err(ConfigError::Invalid { key, why });
        }
        if targets.is_empty() {
            targets.push(Value::Object(Map::new()));
        }
        key = "remote_write[0]".into();
        node = &mut targets[0];
    }
    let Value::Object(m) = one_object_mut(node) else { return Err(not_dict(&key)) };
    m.insert(last.to_string(), val);
    Ok(())
}

/// [`one_object`](super::reader::one_object), for changing it.
fn one_object_mut(v: &mut Value) -> &mut Value {
    if matches!(v, Value::Array(a) if a.len() == 1 && a[0].is_object()) {
        return &mut v[0];
    }
    v
}
