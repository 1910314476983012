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
    /// A required key that is missing or null.
    #[error("config key {0} is required")]
    Missing(String),
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
    /// `prometheus.WriteRequest` only.
    V1,
    /// `io.prometheus.write.v2.Request` only: a receiver that cannot take it fails.
    V2,
    /// 2.0 first; 1.0 for the target's lifetime after a 415, a 400 or a 2xx without written counts.
    Auto,
}

/// The `queue` block of a remote-write target.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    /// Samples kept for retry before the oldest are dropped (default 500 000).
    pub capacity: usize,
    /// Batch size (at most `capacity`).
    pub max_samples_per_send: usize,
    /// First retry delay.
    pub min_backoff_ms: u64,
    /// Retry delay cap.
    pub max_backoff_ms: u64,
    /// Retry 429 answers (honouring Retry-After).
    pub retry_on_http_429: bool,
    /// Drop samples older than this instead of sending them (0 = never, the default; at most 30 days).
    pub sample_age_limit_ms: u64,
}

/// One `remote_write` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWrite {
    /// Full write URL.
    pub url: String,
    /// Name used in self-metrics, outcomes and spool files (defaults to the URL's host:port);
    /// unique among targets, printable, without `/`, at most 128 bytes.
    pub name: String,
    /// Wire protocol (1.0 only for now).
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
    /// Send Prometheus' stale marker for every series on a clean stop, and for a removed series
    /// at the next push (default true).
    pub stale_markers: bool,
}

/// The `spool` block: where a target's undelivered data waits for the next run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    /// Directory, created at init if missing and checked for writability there.
    pub dir: PathBuf,
    /// Size cap of the spool (default 64 MiB, at least 4096).
    pub max_bytes: u64,
}

/// The `instrument` key: which groups of q's handlers the q script wraps. `true` is every group,
/// `false` none; a list names groups (`sync`, `async`, `http`, `websocket`, `timer`, `conn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instrument(u8);

impl Instrument {
    /// The group names, in bit order: `sync` (.z.pg), `async` (.z.ps), `http` (.z.ph, .z.pp, .z.pm),
    /// `websocket` (.z.ws), `timer` (.z.ts), `conn` (.z.po, .z.pc, .z.wo, .z.wc, .z.pw, .z.bm).
    pub const GROUPS: [&'static str; 6] = ["sync", "async", "http", "websocket", "timer", "conn"];
    /// Every group.
    pub const ALL: Instrument = Instrument((1 << Self::GROUPS.len()) - 1);
    /// No group.
    pub const NONE: Instrument = Instrument(0);

    /// True when `group` is on.
    pub fn has(self, group: &str) -> bool {
        Self::GROUPS.iter().position(|g| *g == group).is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// The groups that are on, in [`Instrument::GROUPS`] order.
    pub fn names(self) -> Vec<&'static str> {
        Self::GROUPS.iter().enumerate().filter(|(i, _)| self.0 & (1 << i) != 0).map(|(_, g)| *g).collect()
    }

    /// From a boolean, one name, or a list of names (JSON, as q's values arrive).
    fn from_json(v: &Value) -> Result<Instrument, String> {
        let kinds = || format!("must be a boolean or a list of handler names ({})", Self::GROUPS.join(", "));
        let one = |s: &str| Self::GROUPS.iter().position(|g| *g == s).map(|i| 1u8 << i).ok_or_else(|| format!("unknown handler {s}"));
        match v {
            Value::Bool(true) => Ok(Self::ALL),
            Value::Bool(false) => Ok(Self::NONE),
            Value::String(s) => one(s).map(Instrument),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .try_fold(0, |bits, (i, v)| match v {
                    Value::String(s) => one(s).map(|b| bits | b),
                    _ => Err(format!("{}: item {i} is {v}", kinds())),
                })
                .map(Instrument),
            _ => Err(kinds()),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `job` label / Pushgateway job.
    pub job: String,
    /// `instance` label; None = host:port, or the host without a port.
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
    /// What a new label set past either limit gets: the family's overflow series, or a q error.
    pub on_series_limit: crate::registry::OnSeriesLimit,
    /// Which of q's handlers the q script wraps.
    pub instrument: Instrument,
    /// Answer `GET /metrics` from `.z.ph` (KX exporter 1.x behaviour).
    pub serve_metrics: bool,
    /// Declare `kdb_request_duration_seconds` as a native histogram (no classic buckets).
    pub native_request_histograms: bool,
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
    pub spool: Option<Spool>,
    /// How process metrics are sampled when q does not listen (with `sd1` unavailable).
    pub sampler: Sampler,
}

/// The `sampler` key: how q's process metrics are sampled where q's main loop cannot be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sampler {
    /// `sd1` when q listens; otherwise at init, push, stop and exit, and from the user's own
    /// `.z.ts` when it runs (at most once per interval). Never starts a timer.
    #[default]
    Auto,
    /// Opt-in: starts `\t interval_ms` when q has no timer and no `.z.ts` (the q script does it).
    Timer,
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
            on_series_limit: crate::registry::OnSeriesLimit::Overflow,
            instrument: Instrument::ALL,
            serve_metrics: false,
            native_request_histograms: false,
            summary_max_age_ms: 600_000,
            summary_age_buckets: 5,
            pushgateway: None,
            remote_write: Vec::new(),
            textfile: None,
            spool: None,
            sampler: Sampler::Auto,
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
            on_series_limit: match o.opt_str("on_series_limit")? {
                None => d.on_series_limit,
                Some(s) => crate::registry::OnSeriesLimit::parse(&s)
                    .ok_or_else(|| o.invalid("on_series_limit", &format!(r#"must be "overflow" or "error", not '{s}'"#)))?,
            },
            instrument: o.instrument("instrument", d.instrument)?,
            serve_metrics: o.bool("serve_metrics", d.serve_metrics)?,
            native_request_histograms: o.bool("native_request_histograms", d.native_request_histograms)?,
            summary_max_age_ms: o.num("summary_max_age_ms", d.summary_max_age_ms, 1_000, 86_400_000)?,
            summary_age_buckets: o.num("summary_age_buckets", d.summary_age_buckets as u64, 1, 60)? as usize,
            pushgateway: o.child("pushgateway")?.map(pushgateway).transpose()?,
            remote_write: o.list("remote_write")?.into_iter().map(remote_write).collect::<Result<_, _>>()?,
            textfile: o.opt_str("textfile")?.map(PathBuf::from).map(|p| textfile(&o, p)).transpose()?,
            spool: o.child("spool")?.map(spool).transpose()?,
            sampler: match o.opt_str("sampler")?.as_deref() {
                None | Some("auto") => Sampler::Auto,
                Some("timer") => Sampler::Timer,
                Some(s) => return Err(o.invalid("sampler", &format!(r#"must be "auto" or "timer", not '{s}'"#))),
            },
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
        // Names key self-metrics, outcomes and spool files: a clash would merge two targets' figures.
        for (i, rw) in cfg.remote_write.iter().enumerate() {
            if let Some(j) = cfg.remote_write[..i].iter().position(|o| o.name == rw.name) {
                return Err(ConfigError::Invalid {
                    key: format!("remote_write[{i}].name"),
                    why: format!("'{}' is already used by remote_write[{j}] (set name to tell them apart)", rw.name),
                });
            }
        }
        // Last, so that a refused config leaves no directory behind.
        if let Some(sp) = &cfg.spool {
            crate::push::spool::check_dir(&sp.dir).map_err(|e| {
                let cause = match &e {
                    crate::push::spool::SpoolError::Io { source, .. } => source.to_string(),
                    e => e.to_string(),
                };
                ConfigError::Invalid { key: "spool.dir".into(), why: format!("cannot write to {}: {cause}", sp.dir.display()) }
            })?;
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
                "serve_metrics" | "native_request_histograms" => Value::Bool(matches!(v.as_str(), "1" | "true" | "yes")),
                // A boolean, or handler names separated by commas or spaces (`sync,http`).
                "instrument" => match v.as_str() {
                    "1" | "true" | "yes" => Value::Bool(true),
                    "0" | "false" | "no" | "" => Value::Bool(false),
                    names => names.split([',', ' ']).filter(|n| !n.is_empty()).map(|n| Value::String(n.into())).collect(),
                },
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
        // The Pushgateway would take it in place of the configured instance, silently.
        if k == "instance" {
            return Err(o.invalid("grouping.instance", "the instance comes from the instance key"));
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
        None | Some("auto") => Protocol::Auto,
        Some("1.0" | "prometheus.WriteRequest") => Protocol::V1,
        Some("2.0" | "io.prometheus.write.v2.Request") => Protocol::V2,
        Some(_) => return Err(o.invalid("protocol", r#"must be "1.0", "2.0" or "auto""#)),
    };
    // Header names and values are checked here: a bad one would fail every push, retried in vain.
    // Values are never echoed, as they may hold a credential.
    let headers = o.str_map("headers")?;
    for (h, v) in &headers {
        let key = format!("headers.{h}");
        if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return Err(o.invalid(&key, "is not a valid HTTP header name"));
        }
        if is_reserved(h) {
            return Err(o.invalid(&key, "is set by kdbprom itself (use basic_auth or bearer_token_file for Authorization)"));
        }
        if reqwest::header::HeaderValue::from_str(v).is_err() {
            return Err(o.invalid(&key, "is not a valid HTTP header value"));
        }
    }
    let tenant_header = o.opt_str("tenant_header")?.unwrap_or_else(|| "X-Scope-OrgID".into());
    if reqwest::header::HeaderName::from_bytes(tenant_header.as_bytes()).is_err() {
        return Err(o.invalid("tenant_header", &format!("'{tenant_header}' is not a valid HTTP header name")));
    }
    if is_reserved(&tenant_header) {
        return Err(o.invalid("tenant_header", &format!("'{tenant_header}' is set by kdbprom itself")));
    }
    let tenant = o.opt_str("tenant")?;
    if tenant.as_deref().is_some_and(|t| reqwest::header::HeaderValue::from_str(t).is_err()) {
        return Err(o.invalid("tenant", "is not a valid HTTP header value"));
    }
    let default_name = reqwest::Url::parse(&url).ok().and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)));
    let name = o.opt_str("name")?.or(default_name).unwrap_or_else(|| url.clone());
    check_target_name(&name).map_err(|why| o.invalid("name", &why))?;
    // A missing queue block reads as an empty one, so the defaults live in one place.
    let empty = Value::Object(Map::new());
    let mut q = match o.child("queue")? {
        Some(q) => q,
        None => Obj::new(&empty, &o.key("queue"))?,
    };
    let queue = Queue {
        capacity: q.num("capacity", 500_000, 1, 10_000_000)? as usize,
        max_samples_per_send: q.num("max_samples_per_send", 2_000, 1, 1_000_000)? as usize,
        min_backoff_ms: q.num("min_backoff_ms", 30, 1, 3_600_000)?,
        max_backoff_ms: q.num("max_backoff_ms", 5_000, 1, 3_600_000)?,
        retry_on_http_429: q.bool("retry_on_http_429", true)?,
        sample_age_limit_ms: q.num("sample_age_limit_ms", 0, 0, 30 * 86_400_000)?,
    };
    if queue.max_samples_per_send > queue.capacity {
        return Err(q.invalid("max_samples_per_send", &format!("must not exceed queue.capacity ({})", queue.capacity)));
    }
    if queue.min_backoff_ms > queue.max_backoff_ms {
        return Err(q.invalid("min_backoff_ms", "must not exceed queue.max_backoff_ms"));
    }
    q.finish()?;
    let rw = RemoteWrite {
        url,
        name,
        protocol,
        headers,
        tenant,
        tenant_header,
        auth: auth(&mut o)?,
        remote_timeout_ms: o.num("remote_timeout_ms", 30_000, 1, 600_000)?,
        queue,
        stale_markers: o.bool("stale_markers", true)?,
    };
    o.finish()?;
    Ok(rw)
}

fn is_reserved(header: &str) -> bool {
    RESERVED_HEADERS.contains(&header.to_ascii_lowercase().as_str())
}

/// A target name becomes a label value and part of spool file names.
fn check_target_name(n: &str) -> Result<(), String> {
    if n.is_empty() {
        return Err("must not be empty".into());
    }
    if n.len() > 128 {
        return Err("must be at most 128 bytes".into());
    }
    if n.chars().any(|c| c.is_control() || c == '/') {
        return Err("must be printable characters without '/'".into());
    }
    if matches!(n, "pushgateway" | "textfile") {
        return Err(format!("'{n}' is reserved for the {n} target"));
    }
    Ok(())
}

/// The textfile is replaced by a rename at every push: an existing path that is not a regular
/// file (a device such as /dev/null, a directory) would be replaced or fail, so it is refused.
fn textfile(o: &Obj<'_>, p: PathBuf) -> Result<PathBuf, ConfigError> {
    match std::fs::symlink_metadata(&p) {
        Ok(m) if !m.is_file() => Err(o.invalid("textfile", &format!("{} exists and is not a regular file", p.display()))),
        _ => Ok(p),
    }
}

fn spool(mut o: Obj<'_>) -> Result<Spool, ConfigError> {
    let dir = o.opt_str("dir")?.ok_or_else(|| o.missing("dir"))?;
    if dir.is_empty() {
        return Err(o.invalid("dir", "must not be empty"));
    }
    let max_bytes = o.num("max_bytes", 64 << 20, 4096, u64::MAX)?;
    o.finish()?;
    Ok(Spool { dir: dir.into(), max_bytes })
}

fn auth(o: &mut Obj<'_>) -> Result<Auth, ConfigError> {
    let basic = match o.child("basic_auth")? {
        None => None,
        Some(mut b) => {
            if b.has("password") {
                return Err(b.invalid("password", "secrets are not accepted inline: use password_file or password_env"));
            }
            let username = b.opt_str("username")?.ok_or_else(|| b.missing("username"))?;
            let password = secret(&mut b, "password_file", "password_env")?.ok_or_else(|| b.missing("password_file or password_env"))?;
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

/// `s` with anything that may be userinfo replaced, for echoing a URL in an error: everything
/// between `://` (or the start) and the last `@`. Broader than a URL parser's view on purpose:
/// the URL being echoed is one the parser refused, so its parts cannot be trusted.
fn hide_userinfo(s: &str) -> String {
    let start = s.find("://").map_or(0, |i| i + 3);
    match s[start..].rfind('@') {
        Some(at) => format!("{}<redacted>{}", &s[..start], &s[start + at..]),
        None => s.to_string(),
    }
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

    fn missing(&self, k: &str) -> ConfigError {
        ConfigError::Missing(self.key(k))
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

    fn instrument(&mut self, k: &str, default: Instrument) -> Result<Instrument, ConfigError> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => Instrument::from_json(v).map_err(|why| self.invalid(k, &why)),
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

    /// The error text of a config with one remote-write target made of `url` and `extra`.
    fn rw_err(extra: Value) -> String {
        let mut t = json!({"url": "http://h:9090/api/v1/write"});
        t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Config::from_json(&json!({ "remote_write": [t] })).unwrap_err().to_string()
    }

    #[test]
    fn push_time_failures_are_refused_at_init() {
        assert_eq!(rw_err(json!({"headers": {"X Bad": "v"}})), "config key remote_write[0].headers.X Bad: is not a valid HTTP header name");
        assert_eq!(
            rw_err(json!({"headers": {"X-Ok": "line1\nhunter2"}})),
            "config key remote_write[0].headers.X-Ok: is not a valid HTTP header value"
        );
        assert_eq!(
            rw_err(json!({"headers": {"content-TYPE": "x"}})),
            "config key remote_write[0].headers.content-TYPE: is set by kdbprom itself (use basic_auth or bearer_token_file for Authorization)"
        );
        assert_eq!(
            rw_err(json!({"tenant_header": "Content-Encoding"})),
            "config key remote_write[0].tenant_header: 'Content-Encoding' is set by kdbprom itself"
        );
        assert_eq!(
            rw_err(json!({"tenant_header": "X Org"})),
            "config key remote_write[0].tenant_header: 'X Org' is not a valid HTTP header name"
        );
        assert_eq!(rw_err(json!({"tenant": "a\r\nb"})), "config key remote_write[0].tenant: is not a valid HTTP header value");
        let e = |v: Value| Config::from_json(&v).unwrap_err().to_string();
        assert_eq!(
            e(json!({"pushgateway": {"url": "http://h:9091", "grouping": {"instance": "x"}}})),
            "config key pushgateway.grouping.instance: the instance comes from the instance key"
        );
        let ok = Config::from_json(&json!({"remote_write": {"url": "http://h:1/w", "tenant": "t1", "headers": {"X-A": "b c"}}})).unwrap();
        assert_eq!(ok.remote_write[0].tenant_header, "X-Scope-OrgID");
    }

    #[test]
    fn remote_write_names_are_unique_and_usable() {
        let e = |v: Value| Config::from_json(&v).unwrap_err().to_string();
        assert_eq!(
            e(json!({"remote_write": [{"url": "http://h:9090/a"}, {"url": "http://h:9090/b"}]})),
            "config key remote_write[1].name: 'h:9090' is already used by remote_write[0] (set name to tell them apart)"
        );
        assert_eq!(
            e(
                json!({"remote_write": [{"url": "http://a:1/w", "name": "x"}, {"url": "http://b:1/w"}, {"url": "http://c:1/w", "name": "x"}]})
            ),
            "config key remote_write[2].name: 'x' is already used by remote_write[0] (set name to tell them apart)"
        );
        // Defaults: the scheme's port when the URL has none.
        let c = Config::from_json(&json!({"remote_write": [{"url": "https://m/api/v1/push"}, {"url": "http://h:9090/a", "name": "b"}]}))
            .unwrap();
        let names: Vec<&str> = c.remote_write.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["m:443", "b"]);
        let name_err = |n: &str| rw_err(json!({ "name": n }));
        assert_eq!(name_err("pushgateway"), "config key remote_write[0].name: 'pushgateway' is reserved for the pushgateway target");
        assert_eq!(name_err("textfile"), "config key remote_write[0].name: 'textfile' is reserved for the textfile target");
        assert_eq!(
            Config::from_json(&json!({"textfile": "/dev/null"})).unwrap_err().to_string(),
            "config key textfile: /dev/null exists and is not a regular file"
        );
        assert_eq!(name_err(""), "config key remote_write[0].name: must not be empty");
        assert_eq!(name_err(&"n".repeat(129)), "config key remote_write[0].name: must be at most 128 bytes");
        assert_eq!(name_err("a/b"), "config key remote_write[0].name: must be printable characters without '/'");
        assert_eq!(name_err("a\tb"), "config key remote_write[0].name: must be printable characters without '/'");
        assert!(Config::from_json(&json!({"remote_write": {"url": "http://h:1/w", "name": "prod eu-1 é"}})).is_ok());
    }

    #[test]
    fn queue_protocol_and_stale_markers() {
        let c = Config::from_json(&json!({"remote_write": {"url": "http://h:1/w"}})).unwrap();
        let rw = &c.remote_write[0];
        assert_eq!((rw.queue.capacity, rw.queue.max_samples_per_send, rw.queue.sample_age_limit_ms), (500_000, 2_000, 0));
        assert_eq!((rw.protocol, rw.stale_markers), (Protocol::Auto, true));
        let c = Config::from_json(
            &json!({"remote_write": {"url": "http://h:1/w", "stale_markers": false, "protocol": "prometheus.WriteRequest",
            "queue": {"capacity": 100, "max_samples_per_send": 100, "sample_age_limit_ms": 2_592_000_000u64}}}),
        )
        .unwrap();
        let rw = &c.remote_write[0];
        assert_eq!((rw.queue.capacity, rw.queue.sample_age_limit_ms, rw.stale_markers), (100, 2_592_000_000, false));
        assert_eq!(
            rw_err(json!({"queue": {"capacity": 100}})),
            "config key remote_write[0].queue.max_samples_per_send: must not exceed queue.capacity (100)"
        );
        assert_eq!(
            rw_err(json!({"queue": {"sample_age_limit_ms": 2_592_000_001u64}})),
            "config key remote_write[0].queue.sample_age_limit_ms: 2592000001 is outside 0..2592000000"
        );
        assert_eq!(
            rw_err(json!({"queue": {"min_backoff_ms": 10, "max_backoff_ms": 5}})),
            "config key remote_write[0].queue.min_backoff_ms: must not exceed queue.max_backoff_ms"
        );
        for (p, want) in
            [("2.0", Protocol::V2), ("io.prometheus.write.v2.Request", Protocol::V2), ("auto", Protocol::Auto), ("1.0", Protocol::V1)]
        {
            let c = Config::from_json(&json!({"remote_write": {"url": "http://h:1/w", "protocol": p}})).unwrap();
            assert_eq!(c.remote_write[0].protocol, want, "{p}");
        }
        assert_eq!(rw_err(json!({"protocol": "1"})), r#"config key remote_write[0].protocol: must be "1.0", "2.0" or "auto""#);
        assert_eq!(rw_err(json!({"stale_markers": 1})), "config key remote_write[0].stale_markers must be a boolean");
    }

    #[test]
    fn spool_dir_is_created_and_probed() {
        let dir = std::env::temp_dir().join(format!("kdbprom-spool-{}", std::process::id())).join("a/b");
        let c = Config::from_json(&json!({ "spool": { "dir": dir } })).unwrap();
        assert_eq!(c.spool, Some(Spool { dir: dir.clone(), max_bytes: 64 << 20 }));
        assert!(dir.is_dir());
        // The probe file is gone again.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(dir.parent().unwrap().parent().unwrap()).unwrap();
        let e = |v: Value| Config::from_json(&v).unwrap_err().to_string();
        assert_eq!(
            e(json!({"spool": {"dir": "/dev/null/spool"}})),
            "config key spool.dir: cannot write to /dev/null/spool: Not a directory (os error 20)"
        );
        assert_eq!(
            e(json!({"spool": {"dir": "/tmp", "max_bytes": 100}})),
            "config key spool.max_bytes: 100 is outside 4096..18446744073709551615"
        );
        assert_eq!(e(json!({"spool": {"max_bytes": 4096}})), "config key spool.dir is required");
        assert_eq!(e(json!({"spool": {"dir": ""}})), "config key spool.dir: must not be empty");
        // A refused config creates nothing.
        let never = std::env::temp_dir().join(format!("kdbprom-spool-never-{}", std::process::id()));
        assert!(Config::from_json(&json!({"spool": {"dir": never}, "jobb": 1})).is_err());
        assert!(!never.exists());
    }

    #[test]
    fn urls_are_never_echoed_with_credentials() {
        assert_eq!(
            Config::from_json(&json!({"remote_write": {"url": "http://u:secret@h:bad/"}})).unwrap_err().to_string(),
            "config key remote_write[0].url: 'http://<redacted>@h:bad/' is not a URL: invalid port number"
        );
        let e = |url: &str| Config::from_json(&json!({"pushgateway": { "url": url }})).unwrap_err().to_string();
        assert_eq!(
            e("ftp://u:p@ss@h/"),
            "config key pushgateway.url: 'ftp://<redacted>@h/' must be an http:// or https:// URL with a host"
        );
        assert_eq!(e("u:secret@h"), "config key pushgateway.url: '<redacted>@h' must be an http:// or https:// URL with a host");
        assert_eq!(e("http://u:pa/ss@h/"), "config key pushgateway.url: 'http://<redacted>@h/' is not a URL: invalid port number");
        assert_eq!(e("http://u:secret@h:1"), "config key pushgateway.url: must not carry credentials: use basic_auth");
        // A null where a value is required is "missing", named.
        assert_eq!(
            Config::from_json(&json!({"remote_write": [{"url": null}]})).unwrap_err().to_string(),
            "config key remote_write[0].url is required"
        );
        assert_eq!(
            Config::from_json(&json!({"pushgateway": {"url": "http://h:1", "basic_auth": {"username": "u"}}})).unwrap_err().to_string(),
            "config key pushgateway.basic_auth.password_file or password_env is required"
        );
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
    fn instrument_is_a_boolean_or_a_list_of_handler_groups() {
        let i = |v: Value| Config::from_json(&json!({ "instrument": v })).map(|c| c.instrument.names()).map_err(|e| e.to_string());
        let all = Instrument::GROUPS.to_vec();
        assert_eq!(Config::default().instrument.names(), all);
        assert_eq!(i(json!(true)), Ok(all));
        assert_eq!(i(json!(false)), Ok(vec![]));
        assert_eq!(i(json!(null)), Ok(Instrument::GROUPS.to_vec()), "a q null is the default");
        assert_eq!(i(json!([])), Ok(vec![]), "`symbol$() wraps nothing");
        assert_eq!(i(json!("http")), Ok(vec!["http"]), "one symbol");
        assert_eq!(i(json!(["timer", "sync", "sync"])), Ok(vec!["sync", "timer"]));
        assert!(Config::from_json(&json!({"instrument": ["conn"]})).unwrap().instrument.has("conn"));
        assert!(!Config::from_json(&json!({"instrument": ["conn"]})).unwrap().instrument.has("sync"));
        assert_eq!(i(json!(["sync", "x"])), Err("config key instrument: unknown handler x".into()));
        assert_eq!(i(json!("pg")), Err("config key instrument: unknown handler pg".into()));
        let kinds = "config key instrument: must be a boolean or a list of handler names (sync, async, http, websocket, timer, conn)";
        assert_eq!(i(json!(["sync", true])), Err(format!("{kinds}: item 1 is true")));
        assert_eq!(i(json!({"sync": true})), Err(kinds.into()));
        assert_eq!(i(json!(1)), Err(kinds.into()));
        let env = |v: &str| {
            let e: HashMap<String, String> = [("KDBPROM_INSTRUMENT".to_string(), v.to_string())].into();
            Config::from_env(&e).map(|c| c.instrument.names()).map_err(|e| e.to_string())
        };
        assert_eq!(env("1"), Ok(Instrument::GROUPS.to_vec()));
        assert_eq!(env("false"), Ok(vec![]));
        assert_eq!(env("sync, http"), Ok(vec!["sync", "http"]));
        assert_eq!(env("sync,nope"), Err("config key instrument: unknown handler nope".into()));
    }

    #[test]
    fn on_series_limit_is_overflow_or_error() {
        use crate::registry::OnSeriesLimit;
        let l = |v: Value| Config::from_json(&json!({ "on_series_limit": v })).map(|c| c.on_series_limit).map_err(|e| e.to_string());
        assert_eq!(Config::default().on_series_limit, OnSeriesLimit::Overflow);
        assert_eq!(l(json!(null)), Ok(OnSeriesLimit::Overflow), "a q null is the default");
        assert_eq!(l(json!("overflow")), Ok(OnSeriesLimit::Overflow));
        assert_eq!(l(json!("error")), Ok(OnSeriesLimit::Error));
        assert_eq!(l(json!("drop")), Err(r#"config key on_series_limit: must be "overflow" or "error", not 'drop'"#.into()));
        assert_eq!(l(json!("Error")), Err(r#"config key on_series_limit: must be "overflow" or "error", not 'Error'"#.into()));
        assert_eq!(l(json!(true)), Err("config key on_series_limit must be a string or symbol".into()));
        assert_eq!(l(json!(["error"])), Err("config key on_series_limit must be a string or symbol".into()));
        let env: HashMap<String, String> = [("KDBPROM_ON_SERIES_LIMIT".to_string(), "error".to_string())].into();
        assert_eq!(Config::from_env(&env).unwrap().on_series_limit, OnSeriesLimit::Error);
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
        assert!(
            !c.native_request_histograms
                && Config::from_json(&json!({ "native_request_histograms": true })).unwrap().native_request_histograms
        );
        let bad: HashMap<String, String> = [("KDBPROM_NOPE".to_string(), "1".to_string())].into();
        assert_eq!(Config::from_env(&bad).unwrap_err().to_string(), "unknown config key nope (from environment KDBPROM_NOPE)");
    }
}
