//! The built-in families: kdb+ process metrics, request instrumentation, and kdbprom's own.
//!
//! Declared by the library at start so every series exists (as 0) from the first push, which is
//! what `rate()` and `absent()` need; q only feeds values through the fast exports.

use crate::aggregate::NativeConfig;
use crate::event::SeriesId;
use crate::registry::{DEFAULT_BUCKETS, Kind, Registry, RegistryError};

/// Handler kinds, in the order the q script numbers them (`http_other` is `.z.pm`: OPTIONS, PUT,
/// PATCH, DELETE).
pub const HANDLERS: [&str; 7] = ["sync", "async", "http_get", "http_post", "websocket", "timer", "http_other"];
/// Connection kinds, in the order the q script numbers them.
pub const CONNECTIONS: [&str; 2] = ["ipc", "websocket"];

/// `.Q.w[]` keys and the gauges they feed. `wmax` is the `-w` limit; `mphy` is the machine's memory.
pub const MEMORY: [(&str, &str, &str); 8] = [
    ("used", "kdb_memory_used_bytes", "Heap bytes in use (.Q.w used)."),
    ("heap", "kdb_memory_heap_bytes", "Heap bytes allocated from the OS (.Q.w heap)."),
    ("peak", "kdb_memory_heap_peak_bytes", "Largest heap so far (.Q.w peak)."),
    ("wmax", "kdb_memory_heap_limit_bytes", "Heap limit set by -w, 0 when none (.Q.w wmax)."),
    ("mmap", "kdb_memory_mapped_bytes", "Mapped bytes (.Q.w mmap)."),
    ("mphy", "kdb_memory_physical_bytes", "Physical memory of the machine (.Q.w mphy)."),
    ("syms", "kdb_symbols", "Interned symbols (.Q.w syms)."),
    ("symw", "kdb_symbol_memory_bytes", "Bytes used by interned symbols (.Q.w symw)."),
];

/// Facts about the q process, read once at `.prom.init`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessInfo {
    /// `.z.K`, e.g. "4.1".
    pub version: String,
    /// `.z.k` as yyyy-mm-dd.
    pub release_date: String,
    /// `.z.o`.
    pub os: String,
    /// `.z.c`.
    pub cores: i64,
    /// `.z.h`.
    pub host: String,
    /// `system "p"`: 0 when not listening, negative in multithreaded input mode.
    pub port: i64,
    /// `system "t"`: the timer period in ms, 0 when off.
    pub timer: i64,
    /// `.z.i`.
    pub pid: i64,
    /// Licence expiry as Unix seconds, when the licence says.
    pub license_expiry: Option<f64>,
    /// When the process started, Unix seconds: from /proc (see [`process_start_time`]) unless
    /// the dictionary says; the time of `.prom.init` where neither can tell.
    pub start_time: f64,
}

impl ProcessInfo {
    /// Reads the dictionary the q script builds (`version`, `release_date`, `os`, `cores`, `host`,
    /// `port`, `timer`, `pid`, `license_expiry`; `start_time` only to override /proc); missing keys
    /// keep their defaults.
    pub fn from_json(v: &serde_json::Value) -> Result<ProcessInfo, String> {
        let serde_json::Value::Object(m) = v else { return Err("process info must be a dictionary".into()) };
        let text = |k: &str| match m.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let num = |k: &str| m.get(k).and_then(serde_json::Value::as_f64);
        let start_time = num("start_time")
            .or_else(process_start_time)
            .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()));
        Ok(ProcessInfo {
            version: text("version"),
            release_date: text("release_date"),
            os: text("os"),
            cores: num("cores").unwrap_or(0.0) as i64,
            host: Some(text("host")).filter(|h| !h.is_empty()).unwrap_or_else(local_host),
            port: num("port").unwrap_or(0.0) as i64,
            timer: num("timer").unwrap_or(0.0) as i64,
            pid: num("pid").map_or_else(|| i64::from(std::process::id()), |p| p as i64),
            license_expiry: num("license_expiry"),
            start_time,
        })
    }

    /// The default `instance`: host:port, or the host alone when q is not listening, so that a
    /// batch job keeps one Pushgateway group and one set of series from run to run (its pid is
    /// new every run). A negative port (multithreaded input mode, `-p -5000`) is the same port.
    pub fn instance(&self) -> String {
        match self.port.unsigned_abs() {
            0 => self.host.clone(),
            p => format!("{}:{p}", self.host),
        }
    }

    /// True when q listens on a port: then q's main loop runs for good, and a descriptor
    /// registered with `sd1` changes nothing. A script that does not listen ends at the end of its
    /// input unless something keeps the loop alive, and an `sd1` descriptor would (q's timer does not).
    pub fn listens(&self) -> bool {
        self.port != 0
    }
}

/// When this process started, as Unix seconds: `starttime` of /proc/self/stat (clock ticks after
/// boot) plus `btime` of /proc/stat (the boot time). None where /proc does not have them.
pub fn process_start_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 2, the command name, is in parentheses and may hold spaces: count from the last ')',
    // after which field 3 (state) is item 0 and field 22 (starttime) item 19.
    let ticks: f64 = stat[stat.rfind(')')? + 1..].split_whitespace().nth(19)?.parse().ok()?;
    let btime: f64 = std::fs::read_to_string("/proc/stat").ok()?.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
    Some(btime + ticks / clock_ticks())
}

/// Clock ticks per second of /proc's times: `AT_CLKTCK` (17) of this process's auxiliary vector,
/// which is what `sysconf(_SC_CLK_TCK)` returns; USER_HZ (100 on Linux) if it cannot be read.
pub fn clock_ticks() -> f64 {
    auxv(17).map_or(100.0, |v| v as f64)
}

/// The non-zero value of `key` in this process's auxiliary vector (what `getauxval` returns),
/// read from /proc without libc's help.
pub fn auxv(key: usize) -> Option<usize> {
    const W: usize = std::mem::size_of::<usize>();
    let word = |b: &[u8]| usize::from_ne_bytes(b.try_into().unwrap_or([0; W]));
    let auxv = std::fs::read("/proc/self/auxv").ok()?;
    auxv.chunks_exact(2 * W).map(|e| (word(&e[..W]), word(&e[W..]))).find(|&(k, v)| k == key && v > 0).map(|(_, v)| v)
}

/// This machine's name: the default instance when q does not say (`.z.h` normally does), and the
/// owner of spool files.
pub fn local_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

/// The output-queue gauges, read from `.z.W` at each sample: the slow-subscriber signal.
pub const OUTPUT_QUEUES: [(&str, &str); 3] = [
    ("kdb_ipc_output_queue_bytes", "Bytes waiting in the output queues of all handles (sum over .z.W)."),
    ("kdb_ipc_output_queue_max_bytes", "Bytes waiting in the fullest output queue (max over .z.W)."),
    ("kdb_ipc_output_queue_handles", "Handles with bytes waiting in their output queue."),
];

/// Series ids of every built-in, so the exports never look names up.
#[derive(Debug, Clone)]
pub struct Builtins {
    /// `kdb_requests_total{handler}` by handler index.
    pub requests: [SeriesId; HANDLERS.len()],
    /// `kdb_request_errors_total{handler}`.
    pub errors: [SeriesId; HANDLERS.len()],
    /// `kdb_request_duration_seconds{handler}`.
    pub durations: [SeriesId; HANDLERS.len()],
    /// `kdb_connections_opened_total{kind}`.
    pub opened: [SeriesId; 2],
    /// `kdb_connections_closed_total{kind}`.
    pub closed: [SeriesId; 2],
    /// The `.Q.w[]` gauges, in [`MEMORY`] order.
    pub memory: [SeriesId; 8],
    /// `kdb_open_handles`.
    pub handles: SeriesId,
    /// `kdb_ipc_output_queue_bytes`, `kdb_ipc_output_queue_max_bytes`, `kdb_ipc_output_queue_handles`.
    pub output_queues: [SeriesId; 3],
    /// `kdbprom_last_sample_timestamp_seconds`: when a q sample last succeeded.
    pub last_sample: SeriesId,
    /// `kdbprom_sample_interval_seconds`: how often q is sampled, 0 when not periodically.
    pub sample_interval: SeriesId,
    /// Self-metrics, set by the flusher before each snapshot.
    pub own: crate::telemetry::Own,
}

fn each<const N: usize>(reg: &Registry, name: &str, values: [&str; N]) -> Result<[SeriesId; N], RegistryError> {
    let mut out = [0; N];
    for (o, v) in out.iter_mut().zip(values) {
        *o = reg.builtin_series(name, &[v])?;
    }
    Ok(out)
}

/// Declares every built-in family in `reg` and returns their series ids (the targets' own
/// series come from [`crate::telemetry::target`]). `kdb_request_duration_seconds` is a native
/// histogram (client_golang's defaults: schema 3, zero threshold 2^-128, at most 160 buckets, no
/// classic buckets) when `native_requests` (the `native_request_histograms` setting) is true,
/// classic otherwise.
pub fn declare_with(reg: &Registry, p: &ProcessInfo, native_requests: bool) -> Result<Builtins, RegistryError> {
    use Kind::*;
    reg.declare("kdb_info", "kdb+ version, release date, OS and cores; value 1.", Gauge, &["version", "release_date", "os", "cores"], &[])?;
    reg.builtin_series("kdb_info", &[&p.version, &p.release_date, &p.os, &p.cores.to_string()])?;
    reg.declare("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.", Gauge, &[], &[])?;
    if p.license_expiry.is_some() {
        reg.declare("kdb_license_expiry_timestamp_seconds", "Licence expiry date (.z.l) as Unix seconds.", Gauge, &[], &[])?;
    }
    let mut memory = [0; 8];
    for (m, (_, name, help)) in memory.iter_mut().zip(MEMORY) {
        reg.declare(name, help, Gauge, &[], &[])?;
        *m = reg.by_name(name)?;
    }
    reg.declare("kdb_open_handles", "Open handles (count .z.W).", Gauge, &[], &[])?;
    let mut output_queues = [0; 3];
    for (o, (name, help)) in output_queues.iter_mut().zip(OUTPUT_QUEUES) {
        reg.declare(name, help, Gauge, &[], &[])?;
        *o = reg.by_name(name)?;
    }
    reg.declare("kdb_connections_opened_total", "Connections opened (.z.po, .z.wo).", Counter, &["kind"], &[])?;
    reg.declare("kdb_connections_closed_total", "Connections closed (.z.pc, .z.wc).", Counter, &["kind"], &[])?;
    reg.declare("kdb_requests_total", "Requests handled, by handler.", Counter, &["handler"], &[])?;
    reg.declare("kdb_request_errors_total", "Requests whose handler signalled an error.", Counter, &["handler"], &[])?;
    let (help, labels) = ("Time spent in the handler.", &["handler"]);
    if native_requests {
        reg.declare_with("kdb_request_duration_seconds", help, Histogram, labels, &[], Some(NativeConfig::default()))?;
    } else {
        reg.declare("kdb_request_duration_seconds", help, Histogram, labels, &DEFAULT_BUCKETS)?;
    }
    reg.declare(
        "kdbprom_last_sample_timestamp_seconds",
        "When q's process figures (.Q.w, .z.W) were last sampled, Unix seconds; 0 = never.",
        Gauge,
        &[],
        &[],
    )?;
    reg.declare(
        "kdbprom_sample_interval_seconds",
        "How often q is sampled (sd1 or timer); 0 when only at init, push, stop and exit.",
        Gauge,
        &[],
        &[],
    )?;
    reg.declare(
        "kdbprom_collect_errors_total",
        "Runs of a .prom.collect function that failed or returned what cannot set its family.",
        Counter,
        &["collector"],
        &[],
    )?;
    let own = crate::telemetry::declare(reg)?;
    Ok(Builtins {
        requests: each(reg, "kdb_requests_total", HANDLERS)?,
        errors: each(reg, "kdb_request_errors_total", HANDLERS)?,
        durations: each(reg, "kdb_request_duration_seconds", HANDLERS)?,
        opened: each(reg, "kdb_connections_opened_total", CONNECTIONS)?,
        closed: each(reg, "kdb_connections_closed_total", CONNECTIONS)?,
        memory,
        handles: reg.by_name("kdb_open_handles")?,
        output_queues,
        last_sample: reg.by_name("kdbprom_last_sample_timestamp_seconds")?,
        sample_interval: reg.by_name("kdbprom_sample_interval_seconds")?,
        own,
    })
}

/// Counters the q script feeds from handlers that are not requests, by the name the `event`
/// export takes: a login `.z.pw` refused, a malformed IPC message `.z.bm` saw. Each handler is
/// wrapped only where the user defined it (q has no other hook for either).
pub const EVENTS: [(&str, &str, &str); 2] = [
    ("auth_failure", "kdb_auth_failures_total", "Logins refused by .z.pw (counted where .z.pw is defined)."),
    ("bad_message", "kdb_bad_messages_total", "Malformed IPC messages (.z.bm; counted where .z.bm is defined)."),
];

/// Declares the [`EVENTS`] counters; their series ids in that order.
pub fn declare_events(reg: &Registry) -> Result<[SeriesId; EVENTS.len()], RegistryError> {
    let mut out = [0; EVENTS.len()];
    for (o, (_, name, help)) in out.iter_mut().zip(EVENTS) {
        reg.declare(name, help, Kind::Counter, &[], &[])?;
        *o = reg.by_name(name)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Limits;

    #[test]
    fn request_durations_classic_or_native() {
        let classic = Registry::new(Limits::default());
        declare_with(&classic, &ProcessInfo::default(), false).unwrap();
        let f = classic.family(classic.family_named("kdb_request_duration_seconds").unwrap());
        assert_eq!((&*f.params, f.native), (&DEFAULT_BUCKETS[..], None));
        let native = Registry::new(Limits::default());
        let b = declare_with(&native, &ProcessInfo::default(), true).unwrap();
        let f = native.family(native.family_named("kdb_request_duration_seconds").unwrap());
        assert_eq!((f.params.len(), f.native), (0, Some(NativeConfig::default())));
        assert_eq!(native.slot(b.durations[0]).unwrap().family, native.family_named("kdb_request_duration_seconds").unwrap());
    }

    #[test]
    fn start_time_comes_from_proc_and_the_port_may_be_negative() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let t = process_start_time().expect("Linux /proc");
        // This test process started a moment ago (btime is whole seconds, ticks are 10 ms).
        assert!(t <= now + 1.0 && t > now - 3600.0, "{t} vs now {now}");
        let p = ProcessInfo::from_json(&serde_json::json!({"host": "h", "port": -5000, "pid": 7})).unwrap();
        assert_eq!((p.start_time, p.instance(), p.listens()), (t, "h:5000".to_string(), true));
        let p = ProcessInfo::from_json(&serde_json::json!({"host": "h", "port": 0, "timer": 100, "pid": 7, "start_time": 5})).unwrap();
        assert_eq!((p.start_time, p.instance(), p.listens(), p.timer), (5.0, "h".to_string(), false, 100));
    }
}
