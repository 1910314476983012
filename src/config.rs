//! Configuration: one parser for the q dictionary, the JSON file and the `KDBPROM_*` environment.
//!
//! All three become a JSON object first (the q boundary converts dictionaries), so every source
//! gets the same checks and the same errors, each naming the key path (`remote_write[0].url`).
//! Key names mirror Prometheus' `remote_write` block where they overlap. Secrets are read from
//! files or environment variables only, and [`Secret`] never prints its content.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use thiserror::Error;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A key no version of kdbprom knows.
    #[error("unknown config key {0}")]
    UnknownKey(String),
    /// A value of the wrong type.
    #[error("config key {key} must be {expected}")]
    Type { key: String, expected: &'static str },
    /// A value of the right type that is not usable.
    #[error("config key {key}: {why}")]
    Invalid { key: String, why: String },
    /// The JSON file could not be read or parsed.
    #[error("config file {path}: {why}")]
    File { path: String, why: String },
}

/// A credential read from a file or the environment. Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The credential itself, for building a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Basic authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// User name (not secret).
    pub username: String,
    /// Password, from `password_file` or `password_env`.
    pub password: Secret,
}

/// TLS settings of one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// Extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS.
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM) for mTLS.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate (tests only).
    pub insecure_skip_verify: bool,
}

/// How a target authenticates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// Basic auth.
    pub basic: Option<BasicAuth>,
    /// Bearer token, from `bearer_token_file`.
    pub bearer: Option<Secret>,
    /// TLS.
    pub tls: Tls,
}

/// HTTP method for Pushgateway pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushMethod {
    /// Replace the whole group.
    Put,
    /// Replace only the pushed families.
    Post,
}

/// The `pushgateway` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushgateway {
    /// Base URL, e.g. `http://127.0.0.1:9091`.
    pub url: String,
    /// PUT (default) or POST.
    pub method: PushMethod,
    /// Extra grouping labels beyond job and instance.
    pub grouping: BTreeMap<String, String>,
    /// DELETE the group on `.prom.stop[]`.
    pub delete_on_exit: bool,
    /// Credentials and TLS.
    pub auth: Auth,
    /// Per-request timeout.
    pub timeout_ms: u64,
}

/// Remote-write protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `prometheus.WriteRequest`.
    V1,
    /// `io.prometheus.write.v2.Request`.
    V2,
}

/// The `queue` block of a remote-write target.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    /// Samples kept for retry before the oldest are dropped.
    pub capacity: usize,
    /// Batch size.
    pub max_samples_per_send: usize,
    /// First retry delay.
    pub min_backoff_ms: u64,
    /// Retry delay cap.
    pub max_backoff_ms: u64,
    /// Retry 429 answers (honouring Retry-After).
    pub retry_on_http_429: bool,
    /// Drop samples older than this instead of sending them (0 = never).
    pub sample_age_limit_ms: u64,
}

/// One `remote_write` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWrite {
    /// Full write URL.
    pub url: String,
    /// Name used in self-metrics and outcomes (defaults to the URL's host:port).
    pub name: String,
    /// 1.0 (default) or 2.0.
    pub protocol: Protocol,
    /// Extra headers (reserved ones refused).
    pub headers: BTreeMap<String, String>,
    /// Tenant id, sent in `tenant_header`.
    pub tenant: Option<String>,
    /// `X-Scope-OrgID` unless set (Thanos: `THANOS-TENANT`).
    pub tenant_header: String,
    /// Credentials and TLS.
    pub auth: Auth,
    /// Per-attempt timeout.
    pub remote_timeout_ms: u64,
    /// Batching and retries.
    pub queue: Queue,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `job` label / Pushgateway job.
    pub job: String,
    /// `instance` label; None = host:port, or host:pid without a port.
    pub instance: Option<String>,
    /// Static labels on every series.
    pub labels: BTreeMap<String, String>,
    /// Push interval.
    pub interval_ms: u64,
    /// Budget for the final push in `.prom.stop[]`.
    pub exit_deadline_ms: u64,
    /// Scalar events the ring holds.
    pub ring_capacity: usize,
    /// Bytes of queued `observe` vectors.
    pub ring_vector_bytes: usize,
    /// Live series in all.
    pub max_series: usize,
    /// Live series per family.
    pub max_series_per_metric: usize,
    /// Wrap q's handlers.
    pub instrument: bool,
    /// Answer `GET /metrics` from `.z.ph` (KX exporter 1.x behaviour).
    pub serve_metrics: bool,
    /// Sliding window of summaries.
    pub summary_max_age_ms: u64,
    /// Slices the window is cut into.
    pub summary_age_buckets: usize,
    /// Pushgateway target.
    pub pushgateway: Option<Pushgateway>,
    /// Remote-write targets.
    pub remote_write: Vec<RemoteWrite>,
    /// Textfile-collector target (file path).
    pub textfile: Option<PathBuf>,
    /// Spool directory and its size cap.
    pub spool: Option<(PathBuf, u64)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            job: "kdb".into(),
            instance: None,
            labels: BTreeMap::new(),
            interval_ms: 10_000,
            exit_deadline_ms: 2_000,
            ring_capacity: 65_536,
            ring_vector_bytes: 256 << 20,
            max_series: 100_000,
            max_series_per_metric: 10_000,
            instrument: true,
            serve_metrics: false,
            summary_max_age_ms: 600_000,
            summary_age_buckets: 5,
            pushgateway: None,
            remote_write: Vec::new(),
            textfile: None,
            spool: None,
        }
    }
}

/// Header names a user may not set: the protocol's own and `Authorization` (use an auth block).
const RESERVED_HEADERS: [&str; 16] = [
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "authorization",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "retry-attempt",
    "transfer-encoding",
];

impl Config {
    /// Parses a JSON object (the shape of the q dictionary and of the config file).
    pub fn from_json(v: &Value) -> Result<Config, ConfigError> {
        let mut o = Obj::new(v, "")?;
        let d = Config::default();
        let cfg = Config {
            job: o.opt_str("job")?.unwrap_or(d.job),
            instance: o.opt_str("instance")?,
            labels: o.str_map("labels")?,
            interval_ms: o.num("interval_ms", d.interval_ms, 100, 86_400_000)?,
            exit_deadline_ms: o.num("exit_deadline_ms", d.exit_deadline_ms, 0, 600_000)?,
            ring_capacity: o.num("ring_capacity", d.ring_capacity as u64, 16, 1 << 26)? as usize,
            ring_vector_bytes: o.num("ring_vector_bytes", d.ring_vector_bytes as u64, 0, 1 << 36)? as usize,
            max_series: o.num("max_series", d.max_series as u64, 1, 10_000_000)? as usize,
            max_series_per_metric: o.num("max_series_per_metric", d.max_series_per_metric as u64, 1, 10_000_000)? as usize,
            instrument: o.bool("instrument", d.instrument)?,
            serve_metrics: o.bool("serve_metrics", d.serve_metrics)?,
            summary_max_age_ms: o.num("summary_max_age_ms", d.summary_max_age_ms, 1_000, 86_400_000)?,
            summary_age_buckets: o.num("summary_age_buckets", d.summary_age_buckets as u64, 1, 60)? as usize,
            pushgateway: o.child("pushgateway")?.map(pushgateway).transpose()?,
            remote_write: o.list("remote_write")?.into_iter().map(remote_write).collect::<Result<_, _>>()?,
            textfile: o.opt_str("textfile")?.map(PathBuf::from),
            spool: o.child("spool")?.map(spool).transpose()?,
        };
        o.finish()?;
        if cfg.job.is_empty() {
            return Err(ConfigError::Invalid { key: "job".into(), why: "must not be empty".into() });
        }
        for k in cfg.labels.keys() {
            crate::name::check_label(k).map_err(|e| ConfigError::Invalid { key: format!("labels.{k}"), why: e.to_string() })?;
            if k == "job" || k == "instance" {
                return Err(ConfigError::Invalid { key: format!("labels.{k}"), why: "set it with the job/instance keys".into() });
            }
        }
        Ok(cfg)
    }

    /// Reads a JSON config file.
    pub fn from_file(path: &str) -> Result<Config, ConfigError> {
        let file_err = |why: String| ConfigError::File { path: path.into(), why };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| file_err(e.to_string()))?;
        Config::from_json(&v)
    }

    /// Configuration for `.prom.init[::]`: `KDBPROM_CONFIG` names a JSON file; otherwise the
    /// `KDBPROM_<KEY>` variables for the top-level scalar keys, plus `KDBPROM_PUSHGATEWAY_URL`
    /// and `KDBPROM_REMOTE_WRITE_URL`; otherwise the defaults.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        if let Some(path) = env.get("KDBPROM_CONFIG") {
            return Config::from_file(path);
        }
        let mut o = Map::new();
        for (k, v) in env {
            // KDBPROM_LIB locates the library for the q script; it is not configuration.
            let Some(key) = k.strip_prefix("KDBPROM_").filter(|k| *k != "LIB") else { continue };
            let key = key.to_ascii_lowercase();
            let val = match key.as_str() {
                "pushgateway_url" => serde_json::json!({ "url": v }),
                "remote_write_url" => serde_json::json!([{ "url": v }]),
                "instrument" | "serve_metrics" => Value::Bool(matches!(v.as_str(), "1" | "true" | "yes")),
                _ => v.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::String(v.clone())),
            };
            let key = match key.as_str() {
                "pushgateway_url" => "pushgateway".to_string(),
                "remote_write_url" => "remote_write".to_string(),
                _ => key,
            };
            o.insert(key, val);
        }
        Config::from_json(&Value::Object(o)).map_err(|e| match e {
            ConfigError::UnknownKey(k) => ConfigError::UnknownKey(format!("{k} (from environment KDBPROM_{})", k.to_ascii_uppercase())),
            e => e,
        })
    }
}

fn pushgateway(mut o: Obj<'_>) -> Result<Pushgateway, ConfigError> {
    let url = o.url("url")?;
    let method = match o.opt_str("method")?.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("PUT") => PushMethod::Put,
        Some("POST") => PushMethod::Post,
        Some(_) => return Err(o.invalid("method", "must be PUT or POST")),
    };
    let grouping = o.str_map("grouping")?;
    for k in grouping.keys() {
        crate::name::check_label(k).map_err(|e| o.invalid(&format!("grouping.{k}"), &e.to_string()))?;
        if k == "job" {
            return Err(o.invalid("grouping.job", "the job comes from the job key"));
        }
    }
    let p = Pushgateway {
        url,
        method,
        grouping,
        delete_on_exit: o.bool("delete_on_exit", false)?,
        auth: auth(&mut o)?,
        timeout_ms: o.num("timeout_ms", 5_000, 1, 600_000)?,
    };
    o.finish()?;
    Ok(p)
}

fn remote_write(mut o: Obj<'_>) -> Result<RemoteWrite, ConfigError> {
    let url = o.url("url")?;
    let protocol = match o.opt_str("protocol")?.as_deref() {
        None | Some("1.0") | Some("prometheus.WriteRequest") => Protocol::V1,
        Some("2.0") | Some("io.prometheus.write.v2.Request") => Protocol::V2,
        Some(_) => return Err(o.invalid("protocol", "must be 1.0 or 2.0")),
    };
    let headers = o.str_map("headers")?;
    if let Some(h) = headers.keys().find(|h| RESERVED_HEADERS.contains(&h.to_ascii_lowercase().as_str())) {
        return Err(o.invalid(&format!("headers.{h}"), "is set by kdbprom itself (use basic_auth or bearer_token_file for Authorization)"));
    }
    let default_name = reqwest::Url::parse(&url).ok().and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)));
    let name = o.opt_str("name")?.or(default_name).unwrap_or_else(|| url.clone());
    let mut q = o.child("queue")?;
    let queue = match q.as_mut() {
        None => Queue {
            capacity: 10_000,
            max_samples_per_send: 2_000,
            min_backoff_ms: 30,
            max_backoff_ms: 5_000,
            retry_on_http_429: true,
            sample_age_limit_ms: 3_600_000,
        },
        Some(q) => Queue {
            capacity: q.num("capacity", 10_000, 1, 10_000_000)? as usize,
            max_samples_per_send: q.num("max_samples_per_send", 2_000, 1, 1_000_000)? as usize,
            min_backoff_ms: q.num("min_backoff_ms", 30, 1, 3_600_000)?,
            max_backoff_ms: q.num("max_backoff_ms", 5_000, 1, 3_600_000)?,
            retry_on_http_429: q.bool("retry_on_http_429", true)?,
            sample_age_limit_ms: q.num("sample_age_limit_ms", 3_600_000, 0, u64::MAX)?,
        },
    };
    if let Some(q) = q {
        q.finish()?;
    }
    if queue.min_backoff_ms > queue.max_backoff_ms {
        return Err(o.invalid("queue.min_backoff_ms", "must not exceed queue.max_backoff_ms"));
    }
    let rw = RemoteWrite {
        url,
        name,
        protocol,
        headers,
        tenant: o.opt_str("tenant")?,
        tenant_header: o.opt_str("tenant_header")?.unwrap_or_else(|| "X-Scope-OrgID".into()),
        auth: auth(&mut o)?,
        remote_timeout_ms: o.num("remote_timeout_ms", 30_000, 1, 600_000)?,
        queue,
    };
    o.finish()?;
    Ok(rw)
}

fn spool(mut o: Obj<'_>) -> Result<(PathBuf, u64), ConfigError> {
    let dir = o.opt_str("dir")?.ok_or_else(|| o.invalid("dir", "is required"))?;
    let max = o.num("max_bytes", 64 << 20, 0, u64::MAX)?;
    o.finish()?;
    Ok((dir.into(), max))
}

fn auth(o: &mut Obj<'_>) -> Result<Auth, ConfigError> {
    let basic = match o.child("basic_auth")? {
        None => None,
        Some(mut b) => {
            if b.has("password") {
                return Err(b.invalid("password", "secrets are not accepted inline: use password_file or password_env"));
            }
            let username = b.opt_str("username")?.ok_or_else(|| b.invalid("username", "is required"))?;
            let password = secret(&mut b, "password_file", "password_env")?
                .ok_or_else(|| b.invalid("password_file", "or password_env is required"))?;
            b.finish()?;
            Some(BasicAuth { username, password })
        }
    };
    if o.has("bearer_token") {
        return Err(o.invalid("bearer_token", "secrets are not accepted inline: use bearer_token_file"));
    }
    let bearer = secret(o, "bearer_token_file", "bearer_token_env")?;
    if basic.is_some() && bearer.is_some() {
        return Err(o.invalid("bearer_token_file", "cannot be combined with basic_auth"));
    }
    let tls = match o.child("tls")? {
        None => Tls::default(),
        Some(mut t) => {
            let tls = Tls {
                ca_file: t.path("ca_file")?,
                cert_file: t.path("cert_file")?,
                key_file: t.path("key_file")?,
                insecure_skip_verify: t.bool("insecure_skip_verify", false)?,
            };
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return Err(t.invalid("cert_file", "and key_file go together"));
            }
            t.finish()?;
            tls
        }
    };
    Ok(Auth { basic, bearer, tls })
}

fn secret(o: &mut Obj<'_>, file_key: &str, env_key: &str) -> Result<Option<Secret>, ConfigError> {
    if let Some(path) = o.opt_str(file_key)? {
        // The error names the file, never its content.
        let s = std::fs::read_to_string(&path).map_err(|e| o.invalid(file_key, &format!("cannot read {path}: {e}")))?;
        return Ok(Some(Secret(s.trim_end_matches(['\n', '\r']).to_string())));
    }
    if let Some(var) = o.opt_str(env_key)? {
        let s = std::env::var(&var).map_err(|_| o.invalid(env_key, &format!("environment variable {var} is not set")))?;
        return Ok(Some(Secret(s)));
    }
    Ok(None)
}

/// A JSON object being read: tracks its key path and which keys were used.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    used: Vec<&'a str>,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: &str) -> Result<Self, ConfigError> {
        match v {
            Value::Object(map) => Ok(Obj { map, path: path.into(), used: Vec::new() }),
            _ => Err(ConfigError::Type {
                key: if path.is_empty() { "(top level)".into() } else { path.into() },
                expected: "an object / dictionary",
            }),
        }
    }

    fn key(&self, k: &str) -> String {
        if self.path.is_empty() { k.into() } else { format!("{}.{k}", self.path) }
    }

    fn invalid(&self, k: &str, why: &str) -> ConfigError {
        ConfigError::Invalid { key: self.key(k), why: why.into() }
    }

    fn has(&self, k: &str) -> bool {
        self.map.contains_key(k)
    }

    fn get(&mut self, k: &str) -> Option<&'a Value> {
        let (key, v) = self.map.get_key_value(k)?;
        self.used.push(key);
        // An explicit null means "default", as a q user passing (::) would expect.
        (!v.is_null()).then_some(v)
    }

    fn opt_str(&mut self, k: &str) -> Result<Option<String>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ConfigError::Type { key: self.key(k), expected: "a string or symbol" }),
        }
    }

    fn path(&mut self, k: &str) -> Result<Option<PathBuf>, ConfigError> {
        let p = self.opt_str(k)?.map(PathBuf::from);
        if let Some(p) = &p {
            if !p.is_file() {
                return Err(self.invalid(k, &format!("{} is not a readable file", p.display())));
            }
        }
        Ok(p)
    }

    fn url(&mut self, k: &str) -> Result<String, ConfigError> {
        let s = self.opt_str(k)?.ok_or_else(|| self.invalid(k, "is required"))?;
        let u = reqwest::Url::parse(&s).map_err(|e| self.invalid(k, &format!("'{s}' is not a URL: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(self.invalid(k, &format!("'{s}' must be an http:// or https:// URL with a host")));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(self.invalid(k, "must not carry credentials: use basic_auth"));
        }
        Ok(s.trim_end_matches('/').to_string())
    }

    fn num(&mut self, k: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
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

    fn bool(&mut self, k: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(k) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ConfigError::Type { key: self.key(k), expected: "a boolean" }),
        }
    }

    fn str_map(&mut self, k: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let Some(v) = self.get(k) else { return Ok(BTreeMap::new()) };
        let key = self.key(k);
        let Value::Object(m) = v else { return Err(ConfigError::Type { key, expected: "a dictionary of strings" }) };
        m.iter()
            .map(|(n, v)| match v {
                Value::String(s) => Ok((n.clone(), s.clone())),
                _ => Err(ConfigError::Type { key: format!("{key}.{n}"), expected: "a string or symbol" }),
            })
            .collect()
    }

    fn child(&mut self, k: &str) -> Result<Option<Obj<'a>>, ConfigError> {
        let key = self.key(k);
        self.get(k).map(|v| Obj::new(v, &key)).transpose()
    }

    fn list(&mut self, k: &str) -> Result<Vec<Obj<'a>>, ConfigError> {
        let key = self.key(k);
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a.iter().enumerate().map(|(i, v)| Obj::new(v, &format!("{key}[{i}]"))).collect(),
            // One dictionary is taken as a list of one, as q users will write it.
            Some(v @ Value::Object(_)) => Ok(vec![Obj::new(v, &format!("{key}[0]"))?]),
            Some(_) => Err(ConfigError::Type { key, expected: "a list of dictionaries" }),
        }
    }

    fn finish(self) -> Result<(), ConfigError> {
        match self.map.keys().find(|k| !self.used.contains(&k.as_str())) {
            Some(k) => Err(ConfigError::UnknownKey(self.key(k))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_key() {
        let e = |v: Value| Config::from_json(&v).unwrap_err().to_string();
        assert_eq!(e(json!({"intervall_ms": 5})), "unknown config key intervall_ms");
        assert_eq!(e(json!({"interval_ms": "x"})), "config key interval_ms must be a non-negative whole number");
        assert_eq!(e(json!({"interval_ms": 5})), "config key interval_ms: 5 is outside 100..86400000");
        assert_eq!(
            e(json!({"remote_write": [{"url": "ftp://x"}]})),
            "config key remote_write[0].url: 'ftp://x' must be an http:// or https:// URL with a host"
        );
        assert_eq!(
            e(json!({"remote_write": {"url": "http://a:1/w", "queue": {"capacty": 1}}})),
            "unknown config key remote_write[0].queue.capacty"
        );
        assert_eq!(
            e(json!({"pushgateway": {"url": "http://a:1", "basic_auth": {"username": "u", "password": "hunter2"}}})),
            "config key pushgateway.basic_auth.password: secrets are not accepted inline: use password_file or password_env"
        );
        assert!(!e(json!({"pushgateway": {"url": "http://a:1", "bearer_token_file": "/nonexistent"}})).contains("hunter2"));
        assert_eq!(e(json!({"labels": {"job": "x"}})), "config key labels.job: set it with the job/instance keys");
    }

    #[test]
    fn secrets_never_print() {
        let dir = std::env::temp_dir().join(format!("kdbprom-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        let c =
            Config::from_json(&json!({"pushgateway": {"url": "http://127.0.0.1:1", "basic_auth": {"username": "u", "password_file": f}}}))
                .unwrap();
        let pg = c.pushgateway.unwrap();
        assert_eq!(pg.auth.basic.as_ref().unwrap().password.expose(), "s3cret");
        assert!(!format!("{pg:?}").contains("s3cret"));
    }

    #[test]
    fn env_and_defaults() {
        let env: HashMap<String, String> = [
            ("KDBPROM_JOB", "eod"),
            ("KDBPROM_INTERVAL_MS", "500"),
            ("KDBPROM_PUSHGATEWAY_URL", "http://127.0.0.1:9091/"),
            ("PATH", "/bin"),
        ]
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect();
        let c = Config::from_env(&env).unwrap();
        assert_eq!((c.job.as_str(), c.interval_ms), ("eod", 500));
        assert_eq!(c.pushgateway.unwrap().url, "http://127.0.0.1:9091");
        let bad: HashMap<String, String> = [("KDBPROM_NOPE".to_string(), "1".to_string())].into();
        assert_eq!(Config::from_env(&bad).unwrap_err().to_string(), "unknown config key nope (from environment KDBPROM_NOPE)");
    }
}
