//! Configuration: one parser for the q dictionary, the JSON file and the `KDBPROM_*` environment.
//!
//! All three become a JSON object first (the q boundary converts dictionaries), so every source
//! gets the same checks and the same errors, each naming the key path (`remote_write[0].url`).
//! Key names mirror Prometheus' `remote_write` block where they overlap. Secrets are read from
//! files or environment variables only, and [`Secret`] never prints its content.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use thiserror::Error;

mod checks;
mod env;
mod reader;
mod target;
#[cfg(test)]
mod tests;

use reader::Obj;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A key no version of kdbprom knows.
    #[error("unknown config key {0}")]
    UnknownKey(String),
    /// A value of the wrong type.
    #[error("config key {key} must be {expected}")]
    Type {
        /// The key path (`remote_write[0].url`).
        key: String,
        /// What it should have been (`a boolean`).
        expected: &'static str,
    },
    /// A required key that is missing or null.
    #[error("config key {0} is required")]
    Missing(String),
    /// A value of the right type that is not usable.
    #[error("config key {key}: {why}")]
    Invalid {
        /// The key path.
        key: String,
        /// What is wrong with the value (never the value of a secret).
        why: String,
    },
    /// The JSON file could not be read or parsed.
    #[error("config file {path}: {why}")]
    File {
        /// The path as given.
        path: String,
        /// The I/O or JSON error.
        why: String,
    },
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

/// The body format of Pushgateway pushes (`pushgateway.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushgatewayFormat {
    /// Length-delimited `io.prometheus.client.MetricFamily` messages (the default, as client_golang
    /// sends): native histograms go whole.
    #[default]
    Protobuf,
    /// The text exposition 0.0.4: a native histogram shows its classic buckets, or `_sum` and `_count`.
    Text,
}

/// The `Content-Encoding` of Pushgateway pushes (`pushgateway.compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushgatewayCompression {
    /// The body as it is (the default).
    #[default]
    None,
    /// gzip (the Pushgateway takes it from 1.5.0).
    Gzip,
}

/// The `pushgateway` block.
#[derive(Debug, Clone, PartialEq)]
pub struct PushgatewayConfig {
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
    /// Protobuf (default) or text.
    pub format: PushgatewayFormat,
    /// No compression (default) or gzip.
    pub compression: PushgatewayCompression,
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
pub struct QueueConfig {
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
pub struct RemoteWriteConfig {
    /// Full write URL.
    pub url: String,
    /// [`RemoteWriteConfig::url`] parsed, checked at init: the target sends to it without parsing again.
    pub endpoint: reqwest::Url,
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
    pub queue: QueueConfig,
    /// Send Prometheus' stale marker for every series on a clean stop, and for a removed series
    /// at the next push (default true).
    pub stale_markers: bool,
    /// Native histograms whole (default true); false sends what the text exposition shows (classic
    /// buckets, or `_sum` and `_count` only), for a receiver without native histograms (a
    /// Prometheus 2.40–3.7 without `--enable-feature=native-histograms` answers 500 to them).
    pub send_native_histograms: bool,
}

/// The `spool` block: where a target's undelivered data waits for the next run. On by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    /// Directory, created at init if missing and checked for writability there (by
    /// `push::delivery::Delivery::build`, not by parsing).
    pub dir: PathBuf,
    /// Size cap of the spool (default 64 MiB, at least 4096).
    pub max_bytes: u64,
    /// Set by the user (an unusable one refuses init) rather than the default place (warned).
    pub explicit: bool,
}

impl Spool {
    /// The default: `$XDG_STATE_HOME/kdbprom`, else `~/.local/state/kdbprom`.
    /// Empty when neither variable is set (then `.prom.init` warns and runs without a spool).
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
    /// The process collector: `process_cpu_seconds_total`, memory, file descriptors and network
    /// bytes from /proc (default true).
    pub process_metrics: bool,
    /// `kdb_table_rows{table}` for the root namespace's in-memory tables, collected by the q
    /// script at each sample (default false: counting a big splayed table is not free).
    pub collect_tables: bool,
    /// Declare `kdb_request_duration_seconds` as a native histogram (no classic buckets).
    pub native_request_histograms: bool,
    /// Sliding window of summaries.
    pub summary_max_age_ms: u64,
    /// Slices the window is cut into.
    pub summary_age_buckets: usize,
    /// Pushgateway target.
    pub pushgateway: Option<PushgatewayConfig>,
    /// Remote-write targets.
    pub remote_write: Vec<RemoteWriteConfig>,
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
            process_metrics: true,
            collect_tables: false,
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
            process_metrics: o.bool("process_metrics", d.process_metrics)?,
            collect_tables: o.bool("collect_tables", d.collect_tables)?,
            native_request_histograms: o.bool("native_request_histograms", d.native_request_histograms)?,
            summary_max_age_ms: o.num("summary_max_age_ms", d.summary_max_age_ms, 1_000, 86_400_000)?,
            summary_age_buckets: o.num("summary_age_buckets", d.summary_age_buckets as u64, 1, 60)? as usize,
            pushgateway: o.child("pushgateway")?.map(target::pushgateway).transpose()?,
            remote_write: o.list("remote_write")?.into_iter().map(target::remote_write).collect::<Result<_, _>>()?,
            textfile: o.opt_str("textfile")?.map(PathBuf::from).map(|p| checks::textfile(&o, p)).transpose()?,
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
            if TEXTFILE_LABELS.contains(&k.as_str()) {
                return Err(ConfigError::Invalid {
                    key: format!("labels.{k}"),
                    why: "is reserved: the textfile's copy of job/instance".into(),
                });
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
}

/// The labels a textfile's series carry for their process's `job` and `instance` (node_exporter's
/// scrape sets `job` and `instance` itself); reserved, so static labels cannot take them.
pub const TEXTFILE_LABELS: [&str; 2] = ["kdb_job", "kdb_instance"];

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
    let safe = crate::state::file_safe;
    textfile.join(format!("kdbprom_{}_{}.prom", safe(job), safe(instance)))
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
