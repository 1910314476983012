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

/// How a target is reached: credentials, TLS and proxy (the keys every target shares).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// Basic auth.
    pub basic: Option<BasicAuth>,
    /// Bearer token, from `bearer_token_file`.
    pub bearer: Option<Secret>,
    /// TLS.
    pub tls: Tls,
    /// Proxy.
    pub proxy: Proxy,
}

/// How a target's requests reach it, as Prometheus' `proxy_url` / `proxy_from_environment` say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Proxy {
    /// Straight to the target; `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` are ignored (the default,
    /// as in Prometheus: a q process must not change route because of its environment).
    #[default]
    Direct,
    /// Through this proxy (`proxy_url`: an http:// or https:// URL without credentials).
    Url(String),
    /// As `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` (or their lower-case forms) say at init
    /// (`proxy_from_environment: true`); credentials in them are used.
    Environment,
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

/// The `spool` block: where a target's undelivered data waits for the next run. On by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    /// Directory, created at init if missing and checked for writability there.
    pub dir: PathBuf,
    /// Size cap of the spool (default 64 MiB, at least 4096).
    pub max_bytes: u64,
    /// Set by the user (an unusable one refuses init) rather than the default place (warned).
    pub explicit: bool,
}

impl Spool {
    /// The default: `$XDG_STATE_HOME/kdbprom`, else `~/.local/state/kdbprom`.
    /// Empty when neither variable is set (then [`Config::from_json`] warns and turns it off).
    pub fn default_dir(max_bytes: u64) -> Spool {
        Spool { dir: crate::state::dir().unwrap_or_default(), max_bytes, explicit: false }
    }

    /// An explicit directory.
    pub fn at(dir: impl Into<PathBuf>, max_bytes: u64) -> Spool {
        Spool { dir: dir.into(), max_bytes, explicit: true }
    }
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
    /// Longest `.prom.push[]` and `.prom.text[]` hold q's thread.
    pub push_timeout_ms: u64,
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
    /// Textfile-collector target: a directory (the file in it is named by job and instance,
    /// [`textfile_path`]) or a path ending in `.prom` (that file).
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
            push_timeout_ms: 5_000,
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
            push_timeout_ms: o.num("push_timeout_ms", d.push_timeout_ms, 100, 300_000)?,
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
            spool: match o.child("spool")? {
                Some(s) => spool(s)?,
                None => Some(Spool::default_dir(DEFAULT_SPOOL_BYTES)),
            },
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
            if k == crate::push::textfile::JOB_LABEL || k == crate::push::textfile::INSTANCE_LABEL {
                return Err(ConfigError::Invalid { key: format!("labels.{k}"), why: "is reserved: the textfile's copy of job/instance".into() });
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
        let mut cfg = cfg;
        if let Some(sp) = &cfg.spool {
            match (crate::push::spool::check_dir(&sp.dir), sp.explicit) {
                (Ok(()), _) => {}
                (Err(e), true) => {
                    let cause = match &e {
                        crate::push::spool::SpoolError::Io { source, .. } => source.to_string(),
                        e => e.to_string(),
                    };
                    return Err(ConfigError::Invalid { key: "spool.dir".into(), why: format!("cannot write to {}: {cause}", sp.dir.display()) });
                }
                // The default place: a process without a usable home still runs, without a spool.
                (Err(e), false) => {
                    let why = if sp.dir.as_os_str().is_empty() { "neither XDG_STATE_HOME nor HOME is set".into() } else { e.to_string() };
                    crate::warn!("no spool: the default spool directory is unusable ({why}); set spool.dir, or spool.dir \"\" to say none");
                    cfg.spool = None;
                }
            }
        }
        Ok(cfg)
    }

    /// Reads a JSON config file.
    pub fn from_file(path: &str) -> Result<Config, ConfigError> {
        Config::from_json(&Config::read_file(path)?)
    }

    /// Reads a JSON config file into its JSON value.
    fn read_file(path: &str) -> Result<Value, ConfigError> {
        let file_err = |why: String| ConfigError::File { path: path.into(), why };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| file_err(e.to_string()))
    }

    /// Configuration for `.prom.init[::]`, by one rule: the file `KDBPROM_CONFIG` names (if set)
    /// is the base, and each other `KDBPROM_<KEY>` variable ([`ENV_KEYS`]) sets its key over it;
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

    /// The configuration variables set in `env` (`KDBPROM_CONFIG` and those of [`ENV_KEYS`]),
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
enum EnvKind {
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
const ENV_KEYS: &[(&str, EnvKind)] = &[
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
    ("native_request_histograms", EnvKind::Bool),
    ("summary_max_age_ms", EnvKind::Num),
    ("summary_age_buckets", EnvKind::Num),
    ("textfile", EnvKind::Str),
    ("sampler", EnvKind::Str),
    ("spool.dir", EnvKind::Str),
    ("spool.max_bytes", EnvKind::Num),
    ("pushgateway.url", EnvKind::Str),
    ("pushgateway.method", EnvKind::Str),
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
];

/// The variable of an [`ENV_KEYS`] path: `remote_write.tenant` → `KDBPROM_REMOTE_WRITE_TENANT`.
fn env_var(path: &str) -> String {
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

/// [`one_object`], for changing it.
fn one_object_mut(v: &mut Value) -> &mut Value {
    if matches!(v, Value::Array(a) if a.len() == 1 && a[0].is_object()) {
        return &mut v[0];
    }
    v
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

/// The file a textfile target writes: `textfile` itself when it ends in `.prom`, else
/// `kdbprom_<job>_<instance>.prom` in that directory, so two processes on one host never share a
/// file (bytes outside `[A-Za-z0-9_.-]` become `_`).
///
/// ```
/// use std::path::Path;
/// use kdbprom::config::textfile_path;
/// assert_eq!(textfile_path(Path::new("/var/lib/node_exporter"), "eod", "box:5010"), Path::new("/var/lib/node_exporter/kdbprom_eod_box_5010.prom"));
/// assert_eq!(textfile_path(Path::new("/tmp/mine.prom"), "eod", "box"), Path::new("/tmp/mine.prom"));
/// ```
pub fn textfile_path(textfile: &std::path::Path, job: &str, instance: &str) -> PathBuf {
    if textfile.extension().is_some_and(|e| e == "prom") {
        return textfile.to_path_buf();
    }
    let safe = |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect::<String>();
    textfile.join(format!("kdbprom_{}_{}.prom", safe(job), safe(instance)))
}

/// The textfile is replaced by a rename at every push: an existing path that is not a regular
/// file (a device such as /dev/null, a directory) would be replaced or fail, so it is refused.
/// file is refused, and so is a directory (or a `.prom` file's directory) that cannot be written.
fn textfile(o: &Obj<'_>, p: PathBuf) -> Result<PathBuf, ConfigError> {
    let file = p.extension().is_some_and(|e| e == "prom");
    let dir = if file { p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new(".")) } else { &p };
    match std::fs::metadata(&p) {
        Ok(m) if file && !m.is_file() => return Err(o.invalid("textfile", &format!("{} exists and is not a regular file", p.display()))),
        Ok(m) if !file && !m.is_dir() => {
            return Err(o.invalid("textfile", &format!("{} is not a directory (a file's name must end in .prom)", p.display())));
        }
        _ => {}
    }
    crate::push::spool::check_dir(dir).map_err(|e| {
        let why = match &e {
            crate::push::spool::SpoolError::Io { op, path, source } => format!("cannot {op} {}: {source}", path.display()),
            e => e.to_string(),
        };
        o.invalid("textfile", &why)
    })?;
    Ok(p)
}

/// Default `spool.max_bytes`: 64 MiB.
const DEFAULT_SPOOL_BYTES: u64 = 64 << 20;

/// The `spool` block: `dir` "" turns the spool off; without `dir`, the state directory.
fn spool(mut o: Obj<'_>) -> Result<Option<Spool>, ConfigError> {
    let dir = o.opt_str("dir")?;
    let max_bytes = o.num("max_bytes", DEFAULT_SPOOL_BYTES, 4096, u64::MAX)?;
    o.finish()?;
    Ok(match dir.as_deref() {
        Some("") => None,
        Some(d) => Some(Spool::at(d, max_bytes)),
        None => Some(Spool::default_dir(max_bytes)),
    })
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
    let proxy = proxy(o)?;
    Ok(Auth { basic, bearer, tls, proxy })
}

/// `proxy_url` or `proxy_from_environment`, as Prometheus has them (which also refuses both).
/// Only the schemes the HTTP client is built with are taken (reqwest without its `socks`
/// feature: http and https), so a proxy that could only fail at the first push fails init.
fn proxy(o: &mut Obj<'_>) -> Result<Proxy, ConfigError> {
    let from_env = o.bool("proxy_from_environment", false)?;
    let Some(s) = o.opt_str("proxy_url")? else { return Ok(if from_env { Proxy::Environment } else { Proxy::Direct }) };
    if from_env {
        return Err(o.invalid("proxy_from_environment", "cannot be combined with proxy_url: set one of them"));
    }
    let shown = hide_userinfo(&s);
    let u = reqwest::Url::parse(&s).map_err(|e| o.invalid("proxy_url", &format!("'{shown}' is not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(
            o.invalid("proxy_url", &format!("'{shown}' must be an http:// or https:// proxy URL with a host (socks is not supported)"))
        );
    }
    // Inline credentials would be a secret in the configuration, which kdbprom never takes.
    if !u.username().is_empty() || u.password().is_some() {
        return Err(o.invalid("proxy_url", "must not carry credentials (for an authenticating proxy use proxy_from_environment)"));
    }
    Ok(Proxy::Url(s))
}

fn secret(o: &mut Obj<'_>, file_key: &str, env_key: &str) -> Result<Option<Secret>, ConfigError> {
    if o.has(file_key) && o.has(env_key) {
        return Err(o.invalid(env_key, &format!("cannot be combined with {file_key}: give one of them")));
    }
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

/// The object where one is expected: `v` itself, or the one object of a one-element array. A q
/// user's `enlist` of a dictionary is a one-row table, which reaches here as an array of one
/// object (and a dictionary inside it as a one-row table column, an object per row).
fn one_object(v: &Value) -> &Value {
    match v {
        Value::Array(a) if a.len() == 1 && a[0].is_object() => &a[0],
        v => v,
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
        if let Some(p) = &p
            && !p.is_file()
        {
            return Err(self.invalid(k, &format!("{} is not a readable file", p.display())));
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
        let Value::Object(m) = one_object(v) else { return Err(ConfigError::Type { key, expected: "a dictionary of strings" }) };
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
        assert_eq!(
            rw_err(json!({"bearer_token_file": "/x", "bearer_token_env": "X"})),
            "config key remote_write[0].bearer_token_env: cannot be combined with bearer_token_file: give one of them"
        );
        assert_eq!(
            rw_err(json!({"basic_auth": {"username": "u", "password_file": "/x", "password_env": "X"}})),
            "config key remote_write[0].basic_auth.password_env: cannot be combined with password_file: give one of them"
        );
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
            "config key textfile: /dev/null is not a directory (a file's name must end in .prom)"
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
    fn a_textfile_is_a_directory_or_a_prom_file_that_can_be_written() {
        let base = std::env::temp_dir().join(format!("kdbprom-textfile-{}", std::process::id()));
        let dir = base.join("collector");
        let c = Config::from_json(&json!({ "textfile": dir })).unwrap();
        assert!(dir.is_dir(), "created at init, where node_exporter will read it");
        assert_eq!(textfile_path(c.textfile.as_deref().unwrap(), "eod", "h:1"), dir.join("kdbprom_eod_h_1.prom"));
        let e = |v: Value| Config::from_json(&v).unwrap_err().to_string();
        std::fs::create_dir_all(base.join("x.prom")).unwrap();
        let p = base.join("x.prom");
        assert_eq!(e(json!({ "textfile": p })), format!("config key textfile: {} exists and is not a regular file", p.display()));
        std::fs::write(base.join("plain"), "").unwrap();
        let p = base.join("plain");
        assert_eq!(e(json!({ "textfile": p })), format!("config key textfile: {} is not a directory (a file's name must end in .prom)", p.display()));
        assert!(e(json!({ "textfile": "/proc/kdbprom/x.prom" })).starts_with("config key textfile: cannot create directory /proc/kdbprom: "));
        assert_eq!(
            e(json!({ "labels": { "kdb_job": "x" } })),
            "config key labels.kdb_job: is reserved: the textfile's copy of job/instance"
        );
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn spool_dir_is_created_and_probed() {
        let dir = std::env::temp_dir().join(format!("kdbprom-spool-{}", std::process::id())).join("a/b");
        let c = Config::from_json(&json!({ "spool": { "dir": dir } })).unwrap();
        assert_eq!(c.spool, Some(Spool::at(dir.clone(), 64 << 20)));
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
        // On by default, in the state directory; a size alone keeps that place; "" turns it off.
        let default = crate::state::dir().unwrap();
        let on = |v: Value| Config::from_json(&v).unwrap().spool;
        assert_eq!(on(json!({})), Some(Spool { dir: default.clone(), max_bytes: 64 << 20, explicit: false }));
        assert_eq!(on(json!({"spool": {"max_bytes": 4096}})), Some(Spool { dir: default.clone(), max_bytes: 4096, explicit: false }));
        assert_eq!(on(json!({"spool": {"dir": ""}})), None);
        assert_eq!(on(json!({"spool": {"dir": "", "max_bytes": 4096}})), None);
        assert!(default.is_dir(), "the default directory is created at init");
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
        assert_eq!(env("sync,nope"), Err("config key instrument (from environment KDBPROM_INSTRUMENT): unknown handler nope".into()));
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

    #[test]
    fn a_one_row_table_is_a_dictionary_and_a_dictionary_is_a_list_of_one() {
        // q's `enlist` of a dictionary is a one-row table: an array of one object, wherever a
        // dictionary is expected (the top level, pushgateway, labels, headers, tls, queue, ...).
        let c = Config::from_json(&json!([{
            "job": "eod",
            "labels": [{"desk": "rates"}],
            "pushgateway": [{"url": "http://pg:9091", "grouping": [{"region": "ldn"}], "tls": [{"insecure_skip_verify": true}]}],
            "remote_write": [{"url": "http://m:9009/api/v1/push", "headers": [{"X-A": "b"}], "queue": [{"capacity": 4000}]}],
        }]))
        .unwrap();
        assert_eq!((c.job.as_str(), c.labels["desk"].as_str()), ("eod", "rates"));
        let pg = c.pushgateway.unwrap();
        assert_eq!((pg.grouping["region"].as_str(), pg.auth.tls.insecure_skip_verify), ("ldn", true));
        assert_eq!((c.remote_write[0].headers["X-A"].as_str(), c.remote_write[0].queue.capacity), ("b", 4000));
        // A list of targets whose items are one-row tables (`(enlist d1; enlist d2)` in q).
        let c = Config::from_json(&json!({"remote_write": [[{"url": "http://a:1/w"}], [{"url": "http://b:1/w"}]]})).unwrap();
        assert_eq!(c.remote_write.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["a:1", "b:1"]);
        // Where one dictionary is expected, a table of several rows is refused, naming the key.
        let e = |v: Value| Config::from_json(&v).unwrap_err().to_string();
        assert_eq!(
            e(json!({"pushgateway": [{"url": "http://a:1"}, {"url": "http://b:1"}]})),
            "config key pushgateway: must be one dictionary, not a table of 2 rows (or a list of 2 dictionaries)"
        );
        assert_eq!(e(json!({"labels": [{"a": "x"}, {"a": "y"}]})), "config key labels must be a dictionary of strings");
        assert_eq!(
            e(json!({"remote_write": [{"url": "http://a:1/w", "tls": []}]})),
            "config key remote_write[0].tls must be an object / dictionary"
        );
        assert_eq!(e(json!({"remote_write": 1})), "config key remote_write must be a list of dictionaries");
    }

    #[test]
    fn push_timeout_ms_is_bounded() {
        let t = |v: Value| Config::from_json(&json!({ "push_timeout_ms": v })).map(|c| c.push_timeout_ms).map_err(|e| e.to_string());
        assert_eq!(Config::default().push_timeout_ms, 5_000);
        assert_eq!(t(json!(null)), Ok(5_000), "a q null is the default");
        assert_eq!(t(json!(100)), Ok(100));
        assert_eq!(t(json!(300_000)), Ok(300_000));
        assert_eq!(t(json!(99)), Err("config key push_timeout_ms: 99 is outside 100..300000".into()));
        assert_eq!(t(json!(300_001)), Err("config key push_timeout_ms: 300001 is outside 100..300000".into()));
        assert_eq!(t(json!("5s")), Err("config key push_timeout_ms must be a non-negative whole number".into()));
        assert_eq!(t(json!(1.5)), Err("config key push_timeout_ms must be a non-negative whole number".into()));
    }

    #[test]
    fn proxies_are_a_url_or_the_environment_never_both() {
        let pg = |extra: Value| {
            let mut t = json!({"url": "http://pg:9091"});
            t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            Config::from_json(&json!({ "pushgateway": t })).map(|c| c.pushgateway.unwrap().auth.proxy).map_err(|e| e.to_string())
        };
        assert_eq!(pg(json!({})), Ok(Proxy::Direct), "environment proxies are ignored by default");
        assert_eq!(pg(json!({"proxy_from_environment": false})), Ok(Proxy::Direct));
        assert_eq!(pg(json!({"proxy_from_environment": true})), Ok(Proxy::Environment));
        assert_eq!(pg(json!({"proxy_url": "http://proxy:3128"})), Ok(Proxy::Url("http://proxy:3128".into())));
        assert_eq!(pg(json!({"proxy_url": "https://proxy:3129/"})), Ok(Proxy::Url("https://proxy:3129/".into())));
        assert_eq!(
            pg(json!({"proxy_url": "http://proxy:3128", "proxy_from_environment": true})),
            Err("config key pushgateway.proxy_from_environment: cannot be combined with proxy_url: set one of them".into())
        );
        assert_eq!(
            pg(json!({"proxy_url": "socks5://proxy:1080"})),
            Err("config key pushgateway.proxy_url: 'socks5://proxy:1080' must be an http:// or https:// proxy URL with a host (socks is not supported)"
                .into())
        );
        assert_eq!(
            pg(json!({"proxy_url": "proxy:3128"})),
            Err("config key pushgateway.proxy_url: 'proxy:3128' must be an http:// or https:// proxy URL with a host (socks is not supported)".into())
        );
        assert_eq!(
            pg(json!({"proxy_url": "not a url"})),
            Err("config key pushgateway.proxy_url: 'not a url' is not a URL: relative URL without a base".into())
        );
        assert_eq!(
            pg(json!({"proxy_url": "http://u:hunter2@proxy:3128"})),
            Err("config key pushgateway.proxy_url: must not carry credentials (for an authenticating proxy use proxy_from_environment)"
                .into())
        );
        assert_eq!(pg(json!({"proxy_url": 3128})), Err("config key pushgateway.proxy_url must be a string or symbol".into()));
        assert_eq!(
            pg(json!({"proxy_from_environment": "yes"})),
            Err("config key pushgateway.proxy_from_environment must be a boolean".into())
        );
        // Per remote-write target too.
        assert_eq!(
            rw_err(json!({"proxy_url": "ftp://p"})),
            "config key remote_write[0].proxy_url: 'ftp://p' must be an http:// or https:// proxy URL with a host (socks is not supported)"
        );
        let c = Config::from_json(&json!({"remote_write": [{"url": "http://a:1/w", "proxy_url": "http://p:3128"}, {"url": "http://b:1/w", "proxy_from_environment": true}]})).unwrap();
        assert_eq!(
            (&c.remote_write[0].auth.proxy, &c.remote_write[1].auth.proxy),
            (&Proxy::Url("http://p:3128".into()), &Proxy::Environment)
        );
    }

    fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn the_environment_sets_a_mimir_target() {
        let dir = std::env::temp_dir().join(format!("kdbprom-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let c = Config::from_env(&env_of(&[
            ("KDBPROM_REMOTE_WRITE_URL", "https://mimir:443/api/v1/push"),
            ("KDBPROM_REMOTE_WRITE_TENANT", "desk-a"),
            ("KDBPROM_REMOTE_WRITE_BASIC_AUTH_USERNAME", "kdb"),
            ("KDBPROM_REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE", pw.to_str().unwrap()),
            ("KDBPROM_REMOTE_WRITE_PROXY_URL", "http://proxy:3128"),
            ("KDBPROM_PUSH_TIMEOUT_MS", "2500"),
            ("KDBPROM_LIB", "/opt/kdbprom/libkdbprom.so"),
        ]))
        .unwrap();
        let rw = &c.remote_write[0];
        assert_eq!((rw.url.as_str(), rw.tenant.as_deref(), c.push_timeout_ms), ("https://mimir:443/api/v1/push", Some("desk-a"), 2_500));
        let basic = rw.auth.basic.as_ref().unwrap();
        assert_eq!((basic.username.as_str(), basic.password.expose()), ("kdb", "s3cret"));
        assert_eq!(rw.auth.proxy, Proxy::Url("http://proxy:3128".into()));
        let tok = dir.join("token");
        std::fs::write(&tok, "t0k\n").unwrap();
        let c = Config::from_env(&env_of(&[
            ("KDBPROM_REMOTE_WRITE_URL", "https://mimir/api/v1/push"),
            ("KDBPROM_REMOTE_WRITE_BEARER_TOKEN_FILE", tok.to_str().unwrap()),
            ("KDBPROM_REMOTE_WRITE_PROXY_FROM_ENVIRONMENT", "TRUE"),
        ]))
        .unwrap();
        assert_eq!(c.remote_write[0].auth.bearer.as_ref().unwrap().expose(), "t0k");
        assert_eq!(c.remote_write[0].auth.proxy, Proxy::Environment);
        std::fs::remove_dir_all(&dir).unwrap();
        // Every variable's name is its key path: the list and the rule agree.
        for (path, _) in ENV_KEYS {
            assert!(env_var(path).chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{path}");
        }
        assert_eq!(env_var("remote_write.basic_auth.password_file"), "KDBPROM_REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE");
    }

    #[test]
    fn the_config_file_is_the_base_and_each_variable_overrides_its_key() {
        let dir = std::env::temp_dir().join(format!("kdbprom-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("cfg.json");
        std::fs::write(
            &f,
            r#"{"job":"fromfile","interval_ms":2000,"labels":{"dc":"ldn"},"pushgateway":{"url":"http://pg:9091","grouping":{"desk":"a"}},
                "remote_write":{"url":"http://m:9009/api/v1/push","tenant":"file-tenant","queue":{"capacity":9000}}}"#,
        )
        .unwrap();
        let file = f.to_str().unwrap();
        // The file alone.
        let c = Config::from_env(&env_of(&[("KDBPROM_CONFIG", file)])).unwrap();
        assert_eq!((c.job.as_str(), c.interval_ms, c.remote_write[0].tenant.as_deref()), ("fromfile", 2_000, Some("file-tenant")));
        // Each variable overrides its key; the file's other keys stay (today's silent "file wins" is gone).
        let c = Config::from_env(&env_of(&[
            ("KDBPROM_CONFIG", file),
            ("KDBPROM_JOB", "fromenv"),
            ("KDBPROM_REMOTE_WRITE_TENANT", "env-tenant"),
            ("KDBPROM_PUSHGATEWAY_URL", "http://pg2:9091"),
        ]))
        .unwrap();
        assert_eq!((c.job.as_str(), c.interval_ms, c.labels["dc"].as_str()), ("fromenv", 2_000, "ldn"));
        let rw = &c.remote_write[0];
        assert_eq!((rw.url.as_str(), rw.tenant.as_deref(), rw.queue.capacity), ("http://m:9009/api/v1/push", Some("env-tenant"), 9_000));
        let pg = c.pushgateway.unwrap();
        assert_eq!((pg.url.as_str(), pg.grouping["desk"].as_str()), ("http://pg2:9091", "a"));
        // The remote_write variables set one target: with two in the file they are refused.
        std::fs::write(&f, r#"{"remote_write":[{"url":"http://a:1/w"},{"url":"http://b:1/w"}]}"#).unwrap();
        assert_eq!(
            Config::from_env(&env_of(&[("KDBPROM_CONFIG", file), ("KDBPROM_REMOTE_WRITE_TENANT", "t")])).unwrap_err().to_string(),
            "config key remote_write: KDBPROM_REMOTE_WRITE_TENANT sets one target, and the KDBPROM_CONFIG file has 2: set it in the file"
        );
        assert_eq!(Config::from_env(&env_of(&[("KDBPROM_CONFIG", file)])).unwrap().remote_write.len(), 2);
        std::fs::write(&f, r#"{"pushgateway":"http://pg:9091"}"#).unwrap();
        assert_eq!(
            Config::from_env(&env_of(&[("KDBPROM_CONFIG", file), ("KDBPROM_PUSHGATEWAY_TIMEOUT_MS", "100")])).unwrap_err().to_string(),
            "config key pushgateway: is not a dictionary in the KDBPROM_CONFIG file, so KDBPROM_PUSHGATEWAY_TIMEOUT_MS cannot set a key in it"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            Config::from_env(&env_of(&[("KDBPROM_CONFIG", "/nonexistent/k.json")]))
                .unwrap_err()
                .to_string()
                .starts_with("config file /nonexistent/k.json: No such file")
        );
    }

    #[test]
    fn the_environment_sets_the_sampler_and_the_spool() {
        let dir = std::env::temp_dir().join(format!("kdbprom-env-spool-{}", std::process::id()));
        let c = Config::from_env(&env_of(&[
            ("KDBPROM_SAMPLER", "timer"),
            ("KDBPROM_SPOOL_DIR", dir.to_str().unwrap()),
            ("KDBPROM_SPOOL_MAX_BYTES", "8192"),
        ]))
        .unwrap();
        assert_eq!(c.sampler, Sampler::Timer);
        assert_eq!(c.spool, Some(Spool::at(dir.clone(), 8192)));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            Config::from_env(&env_of(&[("KDBPROM_SAMPLER", "sd1")])).unwrap_err().to_string(),
            r#"config key sampler (from environment KDBPROM_SAMPLER): must be "auto" or "timer", not 'sd1'"#
        );
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let e = |pairs: &[(&str, &str)]| Config::from_env(&env_of(pairs)).unwrap_err().to_string();
        assert_eq!(
            e(&[("KDBPROM_REMOTE_WRITE_PASSWORD_FILE", "/x")]),
            "unknown config key remote_write_password_file (from environment KDBPROM_REMOTE_WRITE_PASSWORD_FILE)"
        );
        assert_eq!(e(&[("KDBPROM_LABELS", "a=b")]), "unknown config key labels (from environment KDBPROM_LABELS)");
        assert_eq!(
            e(&[("KDBPROM_INTERVAL_MS", "10s")]),
            "config key interval_ms (from environment KDBPROM_INTERVAL_MS) must be a non-negative whole number"
        );
        assert_eq!(
            e(&[("KDBPROM_INTERVAL_MS", "5")]),
            "config key interval_ms (from environment KDBPROM_INTERVAL_MS): 5 is outside 100..86400000"
        );
        assert_eq!(
            e(&[("KDBPROM_SERVE_METRICS", "on")]),
            "config key serve_metrics (from environment KDBPROM_SERVE_METRICS) must be true or false (1/0, yes/no)"
        );
        assert_eq!(
            e(&[("KDBPROM_REMOTE_WRITE_TENANT", "t")]),
            "config key remote_write[0].url (environment KDBPROM_REMOTE_WRITE_URL) is required"
        );
        assert_eq!(
            e(&[("KDBPROM_REMOTE_WRITE_URL", "http://m/w"), ("KDBPROM_REMOTE_WRITE_PROXY_URL", "socks5://p:1080")]),
            "config key remote_write[0].proxy_url (from environment KDBPROM_REMOTE_WRITE_PROXY_URL): 'socks5://p:1080' must be an http:// or https:// proxy URL with a host (socks is not supported)"
        );
        let secret = e(&[
            ("KDBPROM_REMOTE_WRITE_URL", "http://m/w"),
            ("KDBPROM_REMOTE_WRITE_BASIC_AUTH_USERNAME", "u"),
            ("KDBPROM_REMOTE_WRITE_BASIC_AUTH_PASSWORD_ENV", "KDBPROM_TEST_UNSET_PW"),
        ]);
        assert_eq!(
            secret,
            "config key remote_write[0].basic_auth.password_env (from environment KDBPROM_REMOTE_WRITE_BASIC_AUTH_PASSWORD_ENV): environment variable KDBPROM_TEST_UNSET_PW is not set"
        );
        // What a dictionary given to .prom.init leaves unread.
        let env =
            env_of(&[("KDBPROM_JOB", "x"), ("KDBPROM_CONFIG", "/f"), ("KDBPROM_LIB", "/l"), ("KDBPROM_DEMO_X", "1"), ("PATH", "/bin")]);
        assert_eq!(Config::ignored_env(&env), ["KDBPROM_CONFIG", "KDBPROM_JOB"]);
    }
}
