//! A simulated q batch job, with no q: KX's libe.so hosts the real libkdbprom.so, and this program
//! makes the calls `q job.q` makes through q/kdbprom.q (init, declare, record, a few requests, stop),
//! then prints what kdbprom aggregated.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let h = common::host();
    let procinfo = h.dict(
        &["version", "release_date", "os", "cores", "host", "port", "pid"],
        &[h.f(4.1), h.str("2024-10-16"), h.s("l64"), h.j(2), h.s("demo-host"), h.j(0), h.j(i64::from(std::process::id()))],
    );
    // Targets come from the environment (scripts/demo.sh starts local receivers); with none, a textfile.
    let mut keys = vec!["job", "labels", "exit_deadline_ms"];
    let mut vals = vec![h.s("eod_load"), h.dict(&["desk"], &[h.s("rates")]), h.j(2_000)];
    if let Ok(url) = std::env::var("KDBPROM_DEMO_PUSHGATEWAY") {
        keys.push("pushgateway");
        vals.push(h.dict(&["url"], &[h.str(&url)]));
    }
    if let Ok(url) = std::env::var("KDBPROM_DEMO_REMOTE_WRITE") {
        keys.push("remote_write");
        vals.push(h.dict(&["url", "name"], &[h.str(&url), h.s("prometheus")]));
    }
    let cfg = h.dict(&keys, &vals);
    let settings = h.ok("kdbprom_init", &[cfg, procinfo]);
    for (k, v) in h.dict_items(settings) {
        if h.qtype(v) == -11 {
            println!("init: {k} = {}", h.sym(v));
        }
    }
    // .prom.counter / .prom.histogram / .prom.summary / .prom.gauge
    h.ok(
        "kdbprom_declare",
        &[h.s("counter"), h.s("eod_rows_loaded_total"), h.str("Rows loaded by the end-of-day job."), h.syms(&["table"]), h.id()],
    );
    h.ok(
        "kdbprom_declare",
        &[
            h.s("histogram"),
            h.s("eod_file_load_seconds"),
            h.str("Time to load one file."),
            h.syms(&["table"]),
            h.floats(&[0.01, 0.1, 1.0, 10.0]),
        ],
    );
    h.ok("kdbprom_declare", &[h.s("summary"), h.s("eod_row_bytes"), h.str("Bytes per row."), h.id(), h.id()]);
    h.ok(
        "kdbprom_declare",
        &[h.s("gauge"), h.s("eod_last_success_timestamp_seconds"), h.str("When the job last finished."), h.id(), h.id()],
    );
    for (table, rows, secs) in [("trade", 1_250_000i64, [0.8, 1.9, 0.4]), ("quote", 9_800_000, [3.2, 2.7, 4.1])] {
        let sid = h.ok("kdbprom_series", &[h.s("eod_rows_loaded_total"), h.str(table)]);
        h.ok("kdbprom_inc", &[(h.r1)(sid), h.j(rows)]);
        let lat = h.ok("kdbprom_series", &[h.s("eod_file_load_seconds"), h.str(table)]);
        h.ok("kdbprom_observe", &[(h.r1)(lat), h.floats(&secs)]);
        (h.r0)(sid);
        (h.r0)(lat);
    }
    let sizes: Vec<f64> = (0..100_000).map(|i| 40.0 + f64::from(i % 61)).collect();
    h.ok("kdbprom_observe", &[h.s("eod_row_bytes"), h.floats(&sizes)]);
    // two sync requests through the .z.pg wrapper, one of which signals
    for failed in [false, true] {
        h.ok("kdbprom_begin", &[h.j(0)]);
        h.ok(if failed { "kdbprom_fail" } else { "kdbprom_end" }, &[h.j(0)]);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    h.ok("kdbprom_set", &[h.s("eod_last_success_timestamp_seconds"), h.f(now)]);
    let text = h.ok("kdbprom_text", &[h.id()]);
    let text = h.string(text);
    println!("--- what kdbprom aggregated (text exposition 0.0.4), user metrics and requests ---");
    for line in text.lines().filter(|l| l.contains("eod_") || l.contains("kdb_request")) {
        if !line.contains("_bucket{") || line.contains("le=\"+Inf\"") || line.contains("eod_") {
            println!("{line}");
        }
    }
    let st = h.ok("kdbprom_stop", &[h.id()]);
    println!("--- .prom.stop[]: final push, then the library's own counters ---");
    for (k, v) in h.dict_items(st) {
        if h.qtype(v) == -7 {
            println!("{k:>16} {}", h.long(v));
        } else if k == "targets" {
            for (target, o) in h.dict_items(v) {
                let f: std::collections::HashMap<String, kdbplus::api::K> = h.dict_items(o).into_iter().collect();
                let failed: i64 = h.dict_items(f["samples_failed"]).into_iter().map(|(_, n)| h.long(n)).sum();
                println!(
                    "  accounted for {target}: samples in={} sent={} failed={failed} queued={} spooled={}",
                    h.long(f["samples_in"]),
                    h.long(f["samples_sent"]),
                    h.long(f["queue_samples"]),
                    h.long(f["spool_samples"])
                );
            }
        } else {
            for (target, o) in h.dict_items(v) {
                let f: std::collections::HashMap<String, kdbplus::api::K> = h.dict_items(o).into_iter().collect();
                println!(
                    "  pushed to {target}: ok={} status={} samples={} bytes={} {:.1} ms {}",
                    h.boolean(f["ok"]),
                    h.long(f["status"]),
                    h.long(f["samples"]),
                    h.long(f["bytes"]),
                    h.float(f["ms"]),
                    h.string(f["message"])
                );
            }
        }
    }
}
