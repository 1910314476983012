//! The process collector: what the kernel says about this q process, read from `/proc` by the
//! flusher at most once a second for push rounds, under client_golang's names so the usual dashboards work.
//!
//! Every figure is read on the flusher thread, never on q's, and a figure `/proc` does not have
//! is left out rather than reported as 0 (a hardened kernel may hide `/proc/self/net/dev`).
//!
//! A push round reuses a reading younger than [`MAX_AGE`]: a Prometheus series has the resolution
//! of its scrape or push interval, and 1 s is finer than any interval used in practice, while
//! `.prom.push[]` in a loop would otherwise read `/proc` hundreds of times a second. `.prom.text[]`
//! (a scrape) and the final round at `.prom.stop[]` read afresh, as client_golang does per scrape.

use crate::aggregate::Aggregator;
use crate::event::SeriesId;
use crate::registry::{Kind, Registry, RegistryError};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// How long a reading serves push rounds before `/proc` is read again.
pub const MAX_AGE: Duration = Duration::from_secs(1);

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

/// Reads this process's figures from `/proc` once (at init; the flusher keeps a [`Reader`]).
pub fn read() -> Figures {
    Reader::new().read()
}

/// Reads `/proc` for the flusher: the three files it reads are kept open and read again from
/// their start (one `pread` and the one that says the end, where opening, sizing, reading and
/// closing took five calls a file), the open descriptors are counted from the size the kernel
/// gives `/proc/self/fd` (Linux ≥ 6.2; older kernels list the directory), and the clock tick and
/// page size are looked up once. About 7 system calls a reading instead of about 50.
///
/// The three kept descriptors are this process's like any other, so `process_open_fds` counts
/// them (and no longer counts the directory handle that listing `/proc/self/fd` held open).
#[derive(Debug)]
pub struct Reader {
    stat: Kept,
    limits: Kept,
    net_dev: Kept,
    ticks_per_second: f64,
    page_bytes: f64,
    buf: Vec<u8>,
    last: Option<(Instant, Figures)>,
}

/// A `/proc` file kept open; opened again at the next reading if it could not be, or failed.
#[derive(Debug)]
struct Kept {
    path: &'static str,
    file: Option<File>,
}

impl Kept {
    fn new(path: &'static str) -> Kept {
        Kept { path, file: File::open(path).ok() }
    }

    /// The whole file, read from its start into `buf` (the kernel renders it afresh at offset 0).
    fn read<'b>(&mut self, buf: &'b mut Vec<u8>) -> Option<&'b str> {
        if self.file.is_none() {
            self.file = File::open(self.path).ok();
        }
        let n = match read_from_start(self.file.as_ref()?, buf) {
            Ok(n) => n,
            Err(_) => {
                self.file = None;
                return None;
            }
        };
        std::str::from_utf8(&buf[..n]).ok()
    }
}

/// Reads `f` from offset 0 to its end into `buf` (grown as needed); the length read. A short
/// read is not the end of a `/proc` file (the kernel hands out a page of records at a time):
/// only a read of nothing is.
fn read_from_start(f: &File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut n = 0;
    loop {
        if n == buf.len() {
            buf.resize((buf.len() * 2).max(4096), 0);
        }
        match f.read_at(&mut buf[n..], n as u64)? {
            0 => return Ok(n),
            k => n += k,
        }
    }
}

/// Open descriptors: the size the kernel gives `/proc/self/fd` (its count of open files since
/// Linux 6.2; 0 before), else the directory listed, less the handle that listing holds.
fn open_fds() -> Option<f64> {
    match std::fs::metadata("/proc/self/fd") {
        Ok(m) if m.len() > 0 => Some(m.len() as f64),
        _ => std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count().saturating_sub(1) as f64),
    }
}

impl Default for Reader {
    fn default() -> Reader {
        Reader::new()
    }
}

impl Reader {
    /// Opens the files; nothing is read yet.
    pub fn new() -> Reader {
        Reader {
            stat: Kept::new("/proc/self/stat"),
            limits: Kept::new("/proc/self/limits"),
            net_dev: Kept::new("/proc/self/net/dev"),
            ticks_per_second: crate::builtin::clock_ticks(),
            page_bytes: page_bytes(),
            buf: Vec::new(),
            last: None,
        }
    }

    /// Reads the figures from `/proc` now.
    pub fn read(&mut self) -> Figures {
        let (tps, page) = (self.ticks_per_second, self.page_bytes);
        let stat = self.stat.read(&mut self.buf).and_then(|s| parse_stat(s, tps, page));
        let max_fds = self.limits.read(&mut self.buf).and_then(parse_max_fds);
        let network = self.net_dev.read(&mut self.buf).and_then(parse_net_dev);
        Figures {
            cpu_seconds: stat.map(|s| s.0),
            resident_bytes: stat.map(|s| s.1),
            virtual_bytes: stat.map(|s| s.2),
            open_fds: open_fds(),
            max_fds,
            network,
        }
    }

    /// A new reading taken at `now` if the last one is [`MAX_AGE`] old or older (or there is
    /// none), else None: the last one still stands.
    pub fn due(&mut self, now: Instant) -> Option<Figures> {
        if self.last.is_some_and(|(at, _)| now.saturating_duration_since(at) < MAX_AGE) {
            return None;
        }
        Some(self.fresh(now))
    }

    /// A new reading, taken at `now` whatever the age of the last.
    pub fn fresh(&mut self, now: Instant) -> Figures {
        let f = self.read();
        self.last = Some((now, f));
        f
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
    /// CPU seconds of this process from `/proc/self/stat` opened and read whole: the one-shot
    /// path, independent of a [`super::Reader`]'s kept descriptor.
    fn stat_cpu() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        super::parse_stat(&stat, crate::builtin::clock_ticks(), 4096.0).unwrap().0
    }

    /// Burns `seconds` of this process's CPU, by CPU time (not wall time: the machine may be busy).
    fn burn(seconds: f64) {
        let start = stat_cpu();
        let mut x = 0u64;
        while stat_cpu() - start < seconds {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
    }

    #[test]
    fn this_process_reads_as_a_live_process() {
        let f = super::read();
        let rss = f.resident_bytes.unwrap();
        assert!(rss > 1e6 && f.virtual_bytes.unwrap() >= rss, "{f:?}");
        assert!(f.open_fds.unwrap() >= 3.0 && f.max_fds.unwrap() >= f.open_fds.unwrap(), "{f:?}");
        // Burn some CPU: a later reading moves by at least as much (both are the kernel's counters).
        let before = f.cpu_seconds.unwrap();
        burn(0.2);
        let after = super::read().cpu_seconds.unwrap();
        assert!(after - before >= 0.2, "{before} → {after}");
    }

    #[test]
    fn a_kept_reader_reads_the_files_afresh_and_counts_descriptors() {
        let mut r = super::Reader::new();
        let a = r.read();
        let once = super::Reader::new().read();
        assert_eq!(a.max_fds, once.max_fds);
        assert_eq!(a.network.is_some(), std::fs::read_to_string("/proc/self/net/dev").is_ok());
        let (rss, vsz) = (a.resident_bytes.unwrap(), a.virtual_bytes.unwrap());
        assert!(rss > 1e6 && vsz >= rss, "{a:?}");
        // The kept descriptors give new figures, not the text of their first read.
        let files: Vec<std::fs::File> = (0..64).map(|_| std::fs::File::open("/proc/self/stat").unwrap()).collect();
        burn(0.2);
        let b = r.read();
        assert!(b.cpu_seconds.unwrap() - a.cpu_seconds.unwrap() >= 0.2, "{a:?} → {b:?}");
        assert!(b.open_fds.unwrap() - a.open_fds.unwrap() >= 60.0, "{a:?} → {b:?}");
        drop(files);
        // Counted from the kernel's size of /proc/self/fd, which agrees with a listing (less the
        // listing's own handle) give or take what other test threads open meanwhile.
        let listed = std::fs::read_dir("/proc/self/fd").unwrap().count() as f64 - 1.0;
        assert!((super::open_fds().unwrap() - listed).abs() <= 16.0, "{:?} vs {listed}", super::open_fds());
    }

    #[test]
    fn a_reading_serves_push_rounds_for_max_age_then_is_taken_again() {
        let mut r = super::Reader::new();
        let t0 = std::time::Instant::now();
        let first = r.due(t0).expect("no reading yet: one is taken");
        burn(0.1);
        // Younger than MAX_AGE: the last reading stands, however much changed.
        assert_eq!(r.due(t0 + super::MAX_AGE - std::time::Duration::from_millis(1)), None);
        let second = r.due(t0 + super::MAX_AGE).expect("MAX_AGE old: read again");
        assert!(second.cpu_seconds.unwrap() - first.cpu_seconds.unwrap() >= 0.1, "{first:?} → {second:?}");
        // A fresh reading is taken whatever the age, and starts the next MAX_AGE.
        let t1 = t0 + super::MAX_AGE + std::time::Duration::from_millis(10);
        assert!(r.fresh(t1).cpu_seconds.unwrap() >= second.cpu_seconds.unwrap());
        assert_eq!(r.due(t1 + super::MAX_AGE / 2), None);
    }
}
