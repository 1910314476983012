//! The process collector: what the kernel says about this q process, read from `/proc` by the
//! flusher before each round, under client_golang's names so the usual dashboards work.
//!
//! Every figure is read on the flusher thread, never on q's, and a figure `/proc` does not have
//! is left out rather than reported as 0 (a hardened kernel may hide `/proc/self/net/dev`).

use crate::aggregate::Aggregator;
use crate::event::SeriesId;
use crate::registry::{Kind, Registry, RegistryError};

/// One reading of the process's figures; None where `/proc` did not say.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub resident_bytes: Option<f64>,
    /// Virtual memory size, bytes.
    pub virtual_bytes: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<f64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<f64>,
    /// Bytes received and sent over every network interface of the process's namespace.
    pub network: Option<(f64, f64)>,
}

/// CPU seconds, resident and virtual bytes from the text of `/proc/self/stat`.
///
/// ```
/// let stat = "42 (q (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 99 1048576 100 18446744073709551615";
/// let (cpu, rss, vsz) = kdbprom::process::parse_stat(stat, 100.0, 4096.0).unwrap();
/// assert_eq!((cpu, rss, vsz), (3.0, 409600.0, 1048576.0));
/// ```
pub fn parse_stat(stat: &str, ticks_per_second: f64, page_bytes: f64) -> Option<(f64, f64, f64)> {
    // Field 2 (the command) is in parentheses and may hold spaces and ')': count from the last
    // ')', after which field 3 is item 0: utime (14) is item 11, stime (15) item 12, vsize (23)
    // item 20, rss (24, pages) item 21.
    let f: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let num = |i: usize| f.get(i)?.parse::<f64>().ok();
    Some(((num(11)? + num(12)?) / ticks_per_second, num(21)? * page_bytes, num(20)?))
}

/// The soft limit of "Max open files" in the text of `/proc/self/limits` (None for "unlimited").
///
/// ```
/// let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n";
/// assert_eq!(kdbprom::process::parse_max_fds(limits), Some(1024.0));
/// ```
pub fn parse_max_fds(limits: &str) -> Option<f64> {
    limits.lines().find_map(|l| l.strip_prefix("Max open files"))?.split_whitespace().next()?.parse().ok()
}

/// Bytes received and transmitted, summed over every interface, from `/proc/self/net/dev`.
///
/// ```
/// let dev = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 2000 9 0 0 0 0 0 0 30 2 0 0 0 0 0 0\n";
/// assert_eq!(kdbprom::process::parse_net_dev(dev), Some((2100.0, 130.0)));
/// ```
pub fn parse_net_dev(dev: &str) -> Option<(f64, f64)> {
    let mut total = None;
    for l in dev.lines().skip(2) {
        let Some((_, rest)) = l.split_once(':') else { continue };
        let f: Vec<f64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if f.len() >= 9 {
            let (rx, tx) = total.unwrap_or((0.0, 0.0));
            total = Some((rx + f[0], tx + f[8]));
        }
    }
    total
}

/// Reads this process's figures from `/proc`.
pub fn read() -> Figures {
    let text = |p: &str| std::fs::read_to_string(p).ok();
    let stat = text("/proc/self/stat").and_then(|s| parse_stat(&s, crate::builtin::clock_ticks(), page_bytes()));
    Figures {
        cpu_seconds: stat.map(|s| s.0),
        resident_bytes: stat.map(|s| s.1),
        virtual_bytes: stat.map(|s| s.2),
        open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64),
        max_fds: text("/proc/self/limits").and_then(|l| parse_max_fds(&l)),
        network: text("/proc/self/net/dev").and_then(|d| parse_net_dev(&d)),
    }
}

/// The page size, from the auxiliary vector (`AT_PAGESZ`, 6); 4096 if it cannot be read.
fn page_bytes() -> f64 {
    crate::builtin::auxv(6).map_or(4096.0, |v| v as f64)
}

/// The collector's series: one per figure `/proc` gave at init (an unreadable one is never
/// exported, rather than exported as 0).
#[derive(Debug, Clone, Default)]
pub struct Series([Option<SeriesId>; 7]);

/// The families, client_golang's names and helps.
const FAMILIES: [(&str, &str, Kind); 7] = [
    ("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", Kind::Counter),
    ("process_resident_memory_bytes", "Resident memory size in bytes.", Kind::Gauge),
    ("process_virtual_memory_bytes", "Virtual memory size in bytes.", Kind::Gauge),
    ("process_open_fds", "Number of open file descriptors.", Kind::Gauge),
    ("process_max_fds", "Maximum number of open file descriptors.", Kind::Gauge),
    ("process_network_receive_bytes_total", "Number of bytes received by the process over the network.", Kind::Counter),
    ("process_network_transmit_bytes_total", "Number of bytes sent by the process over the network.", Kind::Counter),
];

impl Figures {
    /// The figures in [`FAMILIES`] order.
    fn values(&self) -> [Option<f64>; 7] {
        let (rx, tx) = (self.network.map(|n| n.0), self.network.map(|n| n.1));
        [self.cpu_seconds, self.resident_bytes, self.virtual_bytes, self.open_fds, self.max_fds, rx, tx]
    }
}

/// Declares the families in `reg`, and a series for each figure `first` (a reading at init) has.
pub fn declare(reg: &Registry, first: &Figures) -> Result<Series, RegistryError> {
    let mut ids = [None; 7];
    for ((id, (name, help, kind)), v) in ids.iter_mut().zip(FAMILIES).zip(first.values()) {
        reg.declare(name, help, kind, &[], &[])?;
        if v.is_some() {
            *id = Some(reg.builtin_series(name, &[])?);
        }
    }
    Ok(Series(ids))
}

/// Writes a reading into the aggregation state; a figure `/proc` did not give this time keeps its
/// last value.
pub fn publish(agg: &mut Aggregator, reg: &Registry, s: &Series, f: &Figures) {
    for (sid, v) in s.0.iter().zip(f.values()) {
        if let (Some(sid), Some(v)) = (sid, v) {
            agg.put(reg, *sid, v);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_reads_as_a_live_process() {
        let f = super::read();
        let rss = f.resident_bytes.unwrap();
        assert!(rss > 1e6 && f.virtual_bytes.unwrap() >= rss, "{f:?}");
        assert!(f.open_fds.unwrap() >= 3.0 && f.max_fds.unwrap() >= f.open_fds.unwrap(), "{f:?}");
        // Burn some CPU: the reading must move by about as much.
        let before = f.cpu_seconds.unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = super::read().cpu_seconds.unwrap();
        assert!(after - before >= 0.2, "{before} → {after}");
    }
}
