//! Every line of q/kdbprom.q that calls the library, called as that line calls it: the same export,
//! the same argument types (a q literal `0` is a long, `0b` a boolean, `count` a long, `.Q.w[]` a
//! dictionary of longs, `system"p"` cast with `"j"$`), in the order the script makes the calls.
//! Each test names the q line it stands for. The last test reads q/kdbprom.q and fails when an
//! export the script binds (`` .prom.bind[`name;rank] ``), or a call form it uses (`` .prom.x.decl[`histogram;…] ``,
//! `` .prom.x.log[`WARN;…] ``), is not exercised here with that rank and that first argument.

mod common;
use common::{Host, host, lock};
use kdbplus::api::K;
use std::collections::HashMap;

/// `.prom.procinfo[]`: what the script passes as the second argument of init.
fn procinfo(h: &Host, port: i64, timer: i64) -> K {
    // .z.K (float), ssr[string .z.k;".";"-"] (string), .z.o (symbol), "j"$.z.c, .z.h (symbol),
    // "j"$system"p", "j"$system"t", "j"$.z.i, and the licence expiry (a float; 0n without .z.l 1)
    h.dict(
        &["version", "release_date", "os", "cores", "host", "port", "timer", "pid", "license_expiry"],
        &[h.f(4.1), h.str("2024-10-16"), h.s("l64"), h.j(4), h.s("box"), h.j(port), h.j(timer), h.j(77), h.f(f64::NAN)],
    )
}

/// `r:.prom.x.init[cfg;.prom.procinfo[]]`, stopping any earlier agent first; the settings by key.
/// The textfile (the target when none is configured) goes to the temporary directory.
fn init(h: &Host, keys: &[&str], vals: &[K]) -> HashMap<String, K> {
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let file = std::env::temp_dir().join(format!("kdbprom-q-lines-{}.prom", std::process::id()));
    let (mut keys, mut vals) = (keys.to_vec(), vals.to_vec());
    keys.push("textfile");
    vals.push(h.str(file.to_str().unwrap()));
    let r = h.ok("kdbprom_init", &[h.dict(&keys, &vals), procinfo(h, 5010, 0)]);
    h.dict_items(r).into_iter().collect()
}

fn text(h: &Host) -> String {
    let t = h.ok("kdbprom_text", &[h.id()]);
    let s = h.string(t);
    (h.r0)(t);
    s
}

/// `.prom.init` returns the settings the script reads: `instrument` (the groups to wrap: a symbol
/// list, `in` tests it), `serve_metrics`, `interval_ms`, `sampler`.
#[test]
fn init_returns_the_handler_groups_to_wrap() {
    let _g = lock();
    let h = host();
    let all = ["sync", "async", "http", "websocket", "timer", "conn"];
    for (cfg, want) in [
        (h.b(true), all.to_vec()),
        (h.b(false), vec![]),
        (h.syms(&["http", "sync"]), vec!["sync", "http"]),
        (h.s("conn"), vec!["conn"]),
        (h.list(&[]), vec![]),
        (h.syms(&[]), vec![]),
        (h.list(&[h.s("timer"), h.str("async")]), vec!["async", "timer"]),
    ] {
        let s = init(h, &["instrument", "serve_metrics"], &[cfg, h.b(true)]);
        assert_eq!(h.syms_of(s["instrument"]), want);
        assert!(h.boolean(s["serve_metrics"]));
        assert_eq!(h.long(s["interval_ms"]), 10_000);
        assert_eq!(h.sym(s["sampler"]), "none", "no sd1 in this host, and no timer unless asked for");
    }
    // No instrument key: every group.
    let s = init(h, &["job"], &[h.s("j")]);
    assert_eq!(h.syms_of(s["instrument"]), all);
    // Bad values: named errors, and a failed init leaves no agent half-started.
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let kinds = "prom: config key instrument: must be a boolean or a list of handler names (sync, async, http, websocket, timer, conn)";
    for (v, want) in [
        (h.syms(&["sync", "pg"]), "prom: config key instrument: unknown handler pg".to_string()),
        (h.s("x"), "prom: config key instrument: unknown handler x".to_string()),
        (h.list(&[h.s("sync"), h.b(true)]), format!("{kinds}: item 1 is true")),
        (h.list(&[h.s("sync"), h.j(1)]), format!("{kinds}: item 1 is 1")),
        (h.dict(&["sync"], &[h.b(true)]), kinds.to_string()),
        (h.j(1), kinds.to_string()),
        (h.vec::<u8>(1, &[1, 0]), format!("{kinds}: item 0 is true")),
    ] {
        assert_eq!(h.err("kdbprom_init", &[h.dict(&["instrument"], &[v]), procinfo(h, 0, 0)]), want);
    }
    assert_eq!(h.err("kdbprom_text", &[h.id()]), "prom: stopped: call .prom.init again to restart");
    // KDBPROM_INSTRUMENT (init[::]): a boolean or names separated by commas.
    // SAFETY (test): the environment is only touched under the test lock.
    let file = std::env::temp_dir().join(format!("kdbprom-q-lines-{}.prom", std::process::id()));
    unsafe { std::env::set_var("KDBPROM_INSTRUMENT", "timer,sync") };
    unsafe { std::env::set_var("KDBPROM_TEXTFILE", &file) };
    let r = h.call("kdbprom_init", &[h.id(), procinfo(h, 0, 0)]);
    unsafe { std::env::remove_var("KDBPROM_INSTRUMENT") };
    unsafe { std::env::remove_var("KDBPROM_TEXTFILE") };
    let s: HashMap<String, K> = h.dict_items(r.unwrap()).into_iter().collect();
    assert_eq!(h.syms_of(s["instrument"]), ["sync", "timer"]);
}

/// `.prom.procinfo[]`: the start time is the library's own, from /proc (the script no longer sends
/// one); `"j"$system"p"` is negative in multithreaded input mode and still names the port.
#[test]
fn procinfo_start_time_from_proc_and_negative_port() {
    let _g = lock();
    let h = host();
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let file = std::env::temp_dir().join(format!("kdbprom-q-lines-{}.prom", std::process::id()));
    let r = h.ok("kdbprom_init", &[h.dict(&["job", "textfile"], &[h.s("pi"), h.str(file.to_str().unwrap())]), procinfo(h, -5010, 0)]);
    let s: HashMap<String, K> = h.dict_items(r).into_iter().collect();
    assert_eq!(h.sym(s["instance"]), "box:5010");
    let t = text(h);
    // Computed here independently: field 22 of /proc/self/stat in ticks (100 a second) after btime.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let ticks: f64 = stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(19).unwrap().parse().unwrap();
    let btime: f64 =
        std::fs::read_to_string("/proc/stat").unwrap().lines().find_map(|l| l.strip_prefix("btime ")).unwrap().parse().unwrap();
    let line = t.lines().find(|l| l.starts_with("process_start_time_seconds")).unwrap();
    let got: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((got - (btime + ticks / 100.0)).abs() < 1e-6, "{line} vs {}", btime + ticks / 100.0);
    // No licence expiry (0n): no such series.
    assert!(!t.contains("kdb_license_expiry_timestamp_seconds{"), "{t}");
}

/// `sampler` as the script reads it: `sd1` where q listens (tests/sd1.rs), otherwise `none`, or
/// `timer` when asked for (`sampler:"timer"`; the script then starts `\t`). Nothing else is taken.
#[test]
fn sampler_none_unless_a_timer_is_asked_for() {
    let _g = lock();
    let h = host();
    assert_eq!(h.sym(init(h, &["sampler"], &[h.str("timer")])["sampler"]), "timer");
    assert_eq!(h.sym(init(h, &["sampler"], &[h.s("auto")])["sampler"]), "none");
    assert_eq!(h.sym(init(h, &["job"], &[h.s("j")])["sampler"]), "none");
    let t = text(h);
    assert!(t.contains("\nkdbprom_sample_interval_seconds 0\n"), "not sampled periodically: {t}");
    let _ = h.call("kdbprom_stop", &[h.id()]);
    assert_eq!(
        h.err("kdbprom_init", &[h.dict(&["sampler"], &[h.str("sd1")]), procinfo(h, 0, 0)]),
        r#"prom: config key sampler: must be "auto" or "timer", not 'sd1'"#
    );
    assert_eq!(
        h.err("kdbprom_init", &[h.dict(&["sampler"], &[h.j(1)]), procinfo(h, 0, 0)]),
        "prom: config key sampler must be a string or symbol"
    );
}

/// `.prom.sampled`'s ``.prom.x.sample[@[.Q.w;::;()!()],@[{enlist[`timer]!enlist"j"$system"t"};::;()!()];…]``:
/// under sampler `timer`, `kdbprom_sample_interval_seconds` follows `\t`, 0 while it is 0 (a
/// dormant `.z.ts` of the user's, which kdbprom never starts) and `interval_ms` while it runs; a
/// sample without the key (q refused `system"t"`, or `.Q.w[]` failed too) leaves it as it was.
/// Under the other samplers `\t` does not say how q is sampled.
#[test]
fn the_sample_interval_follows_the_timer_under_sampler_timer() {
    let _g = lock();
    let h = host();
    let interval = |h: &Host| text(h).lines().find_map(|l| l.strip_prefix("kdbprom_sample_interval_seconds ")).map(str::to_string);
    // .Q.w[] (a dictionary of longs) joined with `timer, or ()!() joined with it, or either alone
    let sample = |h: &Host, qw: bool, timer: Option<i64>| {
        let (mut keys, mut vals) = if qw { (vec!["used", "heap"], vec![1, 2]) } else { (vec![], vec![]) };
        if let Some(t) = timer {
            keys.push("timer");
            vals.push(t);
        }
        let d = if keys.is_empty() { (h.xd)(h.list(&[]), h.list(&[])) } else { (h.xd)(h.syms(&keys), h.longs(&vals)) };
        assert!(h.ok("kdbprom_sample", &[d, h.longs(&[])]).is_null());
        interval(h).unwrap()
    };
    init(h, &["sampler", "interval_ms"], &[h.str("timer"), h.j(2000)]);
    // .prom.start's sample, after .prom.timer: \t 0 and a .z.ts of the user's, so no timer was started.
    assert_eq!(sample(h, true, Some(0)), "0", "a dormant timer samples nothing periodically");
    assert_eq!(sample(h, true, None), "0", "system\"t\" refused: as it was");
    assert_eq!(sample(h, false, Some(500)), "2", "the user's \\t 500 runs the wrapper: every interval_ms");
    assert_eq!(sample(h, false, None), "2");
    assert_eq!(sample(h, true, Some(0)), "0", "\\t 0 again, read at a .prom.push[]");
    // kdbprom's own timer (no .z.ts of the user's, \t was 0): started before the first sample.
    init(h, &["sampler", "interval_ms"], &[h.str("timer"), h.j(2000)]);
    assert_eq!(sample(h, true, Some(2000)), "2");
    // sampler "auto" and no sd1 (this host has none): sampled only at init, push, stop and exit, whatever \t is.
    init(h, &["sampler", "interval_ms"], &[h.str("auto"), h.j(2000)]);
    assert_eq!(sample(h, true, Some(100)), "0");
}

/// The handler wrappers' calls: `@[.prom.x.b;k;{}]`, `@[.prom.x.e;k;{}]` and `@[.prom.x.fl;k;{}]`
/// with k from `.prom.wk[g;0;…]` … (longs); the connection wrappers' `.[.prom.x.conn;(k;x;o);{}]`
/// (long, the handle as an int, boolean); `.prom.x.ev` from `.z.pw`/`.z.bm`.
#[test]
fn wrapper_calls_for_every_handler() {
    let _g = lock();
    let h = host();
    init(h, &["job"], &[h.s("w")]);
    let handlers = ["sync", "async", "http_get", "http_post", "websocket", "timer", "http_other"];
    for k in 0..7 {
        // a request that succeeds: @[.prom.x.b;k;{}] … @[.prom.x.e;k;{}]
        assert!(h.ok("kdbprom_begin", &[h.j(k)]).is_null());
        assert!(h.ok("kdbprom_end", &[h.j(k)]).is_null());
        // one that fails: @[.prom.x.b;k;{}], then .prom.fail[k] → @[.prom.x.fl;k;{}] and 'e (no end)
        h.ok("kdbprom_begin", &[h.j(k)]);
        h.ok("kdbprom_fail", &[h.j(k)]);
    }
    // .z.po .z.pc (not handle 0) .z.wo .z.wc: .[.prom.x.conn;(k;x;o);{}] with x the handle, an int;
    // the last .z.wc is of a handle whose opening was never seen (one this process opened)
    for (k, x, o) in [(0, 8, true), (0, 8, false), (1, 9, true), (1, 9, false), (1, 10, false)] {
        h.ok("kdbprom_conn", &[h.j(k), h.i(x), h.b(o)]);
    }
    // .z.pw answering 0b, twice; .z.bm once
    h.ok("kdbprom_event", &[h.s("auth_failure")]);
    h.ok("kdbprom_event", &[h.s("auth_failure")]);
    h.ok("kdbprom_event", &[h.s("bad_message")]);
    let t = text(h);
    for name in handlers {
        for line in [
            format!("kdb_requests_total{{handler=\"{name}\"}} 2\n"),
            format!("kdb_request_errors_total{{handler=\"{name}\"}} 1\n"),
            format!("kdb_request_duration_seconds_count{{handler=\"{name}\"}} 2\n"),
        ] {
            assert!(t.contains(&line), "missing {line:?} in\n{t}");
        }
    }
    for line in [
        "kdb_connections_opened_total{kind=\"ipc\"} 1\n",
        "kdb_connections_closed_total{kind=\"ipc\"} 1\n",
        "kdb_connections_opened_total{kind=\"websocket\"} 1\n",
        "kdb_connections_closed_total{kind=\"websocket\"} 1\n",
        "# TYPE kdb_auth_failures_total counter\nkdb_auth_failures_total 2\n",
        "# TYPE kdb_bad_messages_total counter\nkdb_bad_messages_total 1\n",
    ] {
        assert!(t.contains(line), "missing {line:?} in\n{t}");
    }
    // What the wrappers never pass, refused by name (the traps in the script swallow it anyway).
    assert_eq!(h.err("kdbprom_event", &[h.s("login")]), "prom: event: unknown event login (events: auth_failure, bad_message)");
    assert_eq!(h.err("kdbprom_event", &[h.str("auth_failure")]), "prom: event must be a symbol, not a char vector");
    assert_eq!(h.err("kdbprom_end", &[h.j(7)]), "prom: handler index 7 is out of range 0..7");
    // After stop every wrapper call is silent: a handler never fails because kdbprom stopped.
    let st = h.ok("kdbprom_stop", &[h.id()]);
    (h.r0)(st);
    assert!(h.ok("kdbprom_begin", &[h.j(6)]).is_null());
    for (name, args) in [
        ("kdbprom_end", vec![h.j(6)]),
        ("kdbprom_fail", vec![h.j(0)]),
        ("kdbprom_conn", vec![h.j(0), h.i(8), h.b(false)]),
        ("kdbprom_event", vec![h.s("auth_failure")]),
    ] {
        assert!(h.ok(name, &args).is_null(), "{name}");
    }
    // .prom.metrics: text after stop is the error the 503 answer carries.
    assert_eq!(h.err("kdbprom_text", &[h.id()]), "prom: stopped: call .prom.init again to restart");
}

/// `.prom.x.sample[.Q.w[];"j"$sum each value .z.W]`: `.Q.w[]` is
/// `` `used`heap`peak`wmax`mmap`mphy`syms`symw `` mapped to longs (`(system"w"),system"w 0"`: a long
/// vector once joined; a general list where a q build returns mixed types), and the bytes waiting
/// per handle a long vector (a plain count, release 2's form, is still taken).
#[test]
fn sample_takes_q_w_as_q_builds_it() {
    let _g = lock();
    let h = host();
    init(h, &["job"], &[h.s("s")]);
    let keys = ["used", "heap", "peak", "wmax", "mmap", "mphy", "syms", "symw"];
    let qw = (h.xd)(h.syms(&keys), h.longs(&[1, 2, 3, 0, 0, 6, 7, 8]));
    h.ok("kdbprom_sample", &[qw, h.longs(&[0, 1500, 0, 250])]);
    let t = text(h);
    assert!(t.contains("\nkdb_memory_used_bytes 1\n") && t.contains("\nkdb_open_handles 4\n"), "{t}");
    // The slow-subscriber signal: bytes waiting over all handles, in the fullest one, and handles waiting.
    for line in ["kdb_ipc_output_queue_bytes 1750", "kdb_ipc_output_queue_max_bytes 1500", "kdb_ipc_output_queue_handles 2"] {
        assert!(t.contains(&format!("\n{line}\n")), "{line}: {t}");
    }
    // No handle open: `"j"$sum each value .z.W` of an empty .z.W is an empty list.
    let qw = (h.xd)(h.syms(&keys), h.longs(&[1, 2, 3, 0, 0, 6, 7, 8]));
    h.ok("kdbprom_sample", &[qw, h.longs(&[])]);
    let t = text(h);
    assert!(t.contains("\nkdb_open_handles 0\n") && t.contains("\nkdb_ipc_output_queue_bytes 0\n"), "{t}");
    let vals: Vec<K> = [10, 20, 30, 0, 0, 60, 70, 80].iter().map(|&v| h.j(v)).collect();
    h.ok("kdbprom_sample", &[h.dict(&keys, &vals), h.j(0)]);
    let t = text(h);
    assert!(t.contains("\nkdb_memory_heap_bytes 20\n") && t.contains("\nkdb_open_handles 0\n"), "{t}");
    // A key q may add one day is ignored, a missing one keeps its last value.
    h.ok("kdbprom_sample", &[h.dict(&["used", "newkey"], &[h.j(5), h.j(9)]), h.j(1)]);
    let t = text(h);
    assert!(t.contains("\nkdb_memory_used_bytes 5\n") && t.contains("\nkdb_memory_heap_bytes 20\n"), "{t}");
    // A client's .prom.push[] on a secondary thread (-s, -p -N) samples off q's main thread: it is
    // accepted and ignored, so a frozen main loop still shows as a stale sample.
    let stamp = |t: &str| t.lines().find(|l| l.starts_with("kdbprom_last_sample_timestamp_seconds ")).map(str::to_string);
    let before = stamp(&text(h));
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::thread::scope(|s| {
        s.spawn(|| {
            let qw = h.dict(&["used"], &[h.j(999)]);
            assert!(h.ok("kdbprom_sample", &[qw, h.j(77)]).is_null());
        });
    });
    let t = text(h);
    assert!(t.contains("\nkdb_memory_used_bytes 5\n") && !t.contains("\nkdb_open_handles 77\n"), "{t}");
    assert_eq!(stamp(&t), before, "the last sample time is the main thread's");
    // After stop a sample (from the .z.ts wrapper) is silent, as the other wrapper calls are.
    let st = h.ok("kdbprom_stop", &[h.id()]);
    (h.r0)(st);
    let qw = (h.xd)(h.syms(&keys), h.longs(&[1, 2, 3, 0, 0, 6, 7, 8]));
    assert!(h.ok("kdbprom_sample", &[qw, h.j(4)]).is_null());
}

/// `.prom.updval[n;f;v]` → `.prom.x.upd[n;.prom.op f;v]`: `.prom.op` maps the four glyphs KX 1.x
/// callers pass (`:` `+` `-` `,`) and passes the symbols `` `set`inc`dec`observe `` through; any
/// other function maps to the null symbol.
#[test]
fn updval_gets_each_glyph_as_a_symbol() {
    let _g = lock();
    let h = host();
    init(h, &["job"], &[h.s("kx")]);
    // .prom.newmetric[m;t;l;h]: symbol, symbol, symbol list or (), string
    h.ok("kdbprom_newmetric", &[h.s("kx_level"), h.s("gauge"), h.syms(&["src"]), h.str("level")]);
    h.ok("kdbprom_newmetric", &[h.s("kx_n_total"), h.s("counter"), h.list(&[]), h.str("n")]);
    h.ok("kdbprom_newmetric", &[h.s("kx_lat_seconds"), h.s("histogram"), h.list(&[]), h.str("lat")]);
    // .prom.addmetric[m;lv;p;s]: symbol, list of strings, params, start value
    let g = h.ok("kdbprom_addmetric", &[h.s("kx_level"), h.list(&[h.str("a")]), h.list(&[]), h.j(0)]);
    assert_eq!(h.sym(g), "kx_level|a");
    (h.r0)(g);
    let n = h.ok("kdbprom_addmetric", &[h.s("kx_n_total"), h.list(&[]), h.list(&[]), h.j(0)]);
    (h.r0)(n);
    let l = h.ok("kdbprom_addmetric", &[h.s("kx_lat_seconds"), h.list(&[]), h.floats(&[0.1, 1.0]), h.list(&[])]);
    (h.r0)(l);
    // `:` → `set, `+` → `inc, `-` → `dec, `,` → `observe
    h.ok("kdbprom_updval", &[h.s("kx_level|a"), h.s("set"), h.j(10)]);
    h.ok("kdbprom_updval", &[h.s("kx_level|a"), h.s("inc"), h.j(5)]);
    h.ok("kdbprom_updval", &[h.s("kx_level|a"), h.s("dec"), h.f(2.5)]);
    h.ok("kdbprom_updval", &[h.s("kx_n_total"), h.s("inc"), h.j(3)]);
    h.ok("kdbprom_updval", &[h.s("kx_lat_seconds"), h.s("observe"), h.floats(&[0.05, 0.5, 5.0])]);
    h.ok("kdbprom_updval", &[h.s("kx_lat_seconds"), h.s("observe"), h.n(200_000_000)]);
    let t = text(h);
    for line in ["kx_level{src=\"a\"} 12.5\n", "\nkx_n_total 3\n", "kx_lat_seconds_bucket{le=\"0.1\"} 1\n", "kx_lat_seconds_count 4\n"] {
        assert!(t.contains(line), "missing {line:?} in\n{t}");
    }
    // KX 1.x's own `after` applied - to a counter: refused, named.
    assert_eq!(h.err("kdbprom_updval", &[h.s("kx_n_total"), h.s("dec"), h.j(1)]), "prom: counter kx_n_total does not support dec");
    // A lambda or another glyph: .prom.op gives the null symbol.
    assert_eq!(h.err("kdbprom_updval", &[h.s("kx_n_total"), h.s(""), h.j(1)]), "prom: updval: func must be one of : + - ,");
}

/// The API lines bound straight to exports, with what q users pass: `.prom.series[name;enlist"x"]`
/// (strings) or `` `x `` (symbols), records by id (long) or name (symbol), `.prom.remove[s]`,
/// `.prom.text[]`, `.prom.stats[]`, `.prom.push[]` and `.prom.stop[]` (each given `::`).
#[test]
fn api_lines_with_q_argument_types() {
    let _g = lock();
    let h = host();
    init(h, &["job"], &[h.s("api")]);
    // .prom.counter[n;h;l] → .prom.x.decl[`counter;n;h;l;::]: l a symbol atom, a list, or ()
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("a_total"), h.str("A."), h.s("table"), h.id()]);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("g"), h.s("G."), h.list(&[]), h.id()]);
    h.ok("kdbprom_declare", &[h.s("summary"), h.s("s_seconds"), h.str(""), h.syms(&["a", "b"]), h.floats(&[0.5])]);
    let s = h.ok("kdbprom_series", &[h.s("a_total"), h.list(&[h.str("trade")])]);
    let id = h.long(s);
    (h.r0)(s);
    let s2 = h.ok("kdbprom_series", &[h.s("a_total"), h.s("quote")]);
    (h.r0)(s2);
    h.ok("kdbprom_inc", &[h.j(id), h.j(2)]);
    h.ok("kdbprom_set", &[h.s("g"), h.i(9)]);
    h.ok("kdbprom_dec", &[h.s("g"), h.floats(&[1.5, 0.5])]);
    let s3 = h.ok("kdbprom_series", &[h.s("s_seconds"), h.syms(&["x", "y"])]);
    h.ok("kdbprom_observe", &[s3, h.vec(16, &[1_000_000i64])]);
    h.ok("kdbprom_remove", &[h.j(id)]);
    let t = text(h);
    assert!(!t.contains("table=\"trade\"") && t.contains("a_total{table=\"quote\"} 0\n") && t.contains("\ng 7\n"), "{t}");
    let st = h.ok("kdbprom_stats", &[h.id()]);
    assert_eq!(h.qtype(st), 99);
    (h.r0)(st);
    let p = h.ok("kdbprom_push", &[h.id()]);
    assert_eq!(h.qtype(p), 99);
    (h.r0)(p);
    let st = h.ok("kdbprom_stop", &[h.id()]);
    assert!(h.dict_items(st).iter().any(|(k, _)| k == "pushed"));
    (h.r0)(st);
}

/// `` .prom.histogram:{[n;h;l;b].prom.x.decl[`histogram;n;h;l;b]} ``: b a float vector (or a long one).
#[test]
fn histogram_line_with_q_argument_types() {
    let _g = lock();
    let h = host();
    init(h, &["job"], &[h.s("hist")]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("h_seconds"), h.str("H."), h.list(&[]), h.floats(&[0.1, 1.0])]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("hl_bytes"), h.str("HL."), h.list(&[]), h.longs(&[10, 100])]);
    h.ok("kdbprom_observe", &[h.s("hl_bytes"), h.j(50)]);
    h.ok("kdbprom_observe", &[h.s("h_seconds"), h.floats(&[0.05, 0.5, 5.0])]);
    let t = text(h);
    for want in
        ["h_seconds_bucket{le=\"0.1\"} 1\n", "h_seconds_bucket{le=\"1.0\"} 2\n", "h_seconds_bucket{le=\"+Inf\"} 3\n", "h_seconds_count 3\n"]
    {
        assert!(t.contains(want), "{want} in {t}");
    }
    assert!(t.contains("hl_bytes_bucket{le=\"10.0\"} 0\nhl_bytes_bucket{le=\"100.0\"} 1\n"), "{t}");
    let _ = h.call("kdbprom_stop", &[h.id()]);
}

/// What kdbprom writes on fd 2 while `f` runs (the .so's own std writes there, not through the
/// test harness's capture).
fn stderr_of(f: impl FnOnce()) -> String {
    use std::io::{Read, Seek};
    let mut tmp = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(std::env::temp_dir().join(format!("kdbprom-q-lines-stderr-{}", std::process::id())))
        .unwrap();
    // SAFETY (test): fd 2 is saved, pointed at the file, and restored; only under the test lock.
    let saved = unsafe { libc::dup(2) };
    unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&tmp), 2) };
    f();
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    let mut out = String::new();
    tmp.seek(std::io::SeekFrom::Start(0)).unwrap();
    tmp.read_to_string(&mut out).unwrap();
    out
}

/// `` .prom.x.log[`WARN;".prom.on_poll failed: ",r] ``, `` .prom.x.log[`ERROR;"final push failed: ",x] ``,
/// `` .prom.x.log[`INFO;…] ``: one line each on stderr in the library's format (UTC time,
/// `kdbprom`, the level, the text); any other level is refused by name. Works with no agent.
#[test]
fn log_lines_as_the_script_writes_them() {
    let _g = lock();
    let h = host();
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let out = stderr_of(|| {
        for (level, text) in [("WARN", ".prom.on_poll failed: type"), ("ERROR", "final push failed: timeout"), ("INFO", ".z.ts changed")] {
            assert!(h.ok("kdbprom_log", &[h.s(level), h.str(text)]).is_null());
        }
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (line, want) in lines.iter().zip([
        " kdbprom WARN .prom.on_poll failed: type",
        " kdbprom ERROR final push failed: timeout",
        " kdbprom INFO .z.ts changed",
    ]) {
        let (time, rest) = line.split_at(24);
        assert_eq!(rest, want, "{line}");
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T' && humantime::parse_rfc3339(time).is_ok(), "UTC time first: {line}");
    }
    assert_eq!(h.err("kdbprom_log", &[h.s("DEBUG"), h.str("x")]), "prom: log: level must be one of `ERROR`WARN`INFO, not `DEBUG");
}

/// `.prom.run1[n;f]` → `.prom.x.collect[n;f[]]`, trapped into `.prom.x.collectfail[n;error]`: a
/// number sets an unlabelled gauge, a dictionary one label, a keyed table several; a series the
/// function stops returning is removed; a counter's total becomes increments; a bad result or a
/// signal changes nothing and is counted in `kdbprom_collect_errors_total{collector}`.
#[test]
fn collectors_as_the_script_runs_them() {
    let _g = lock();
    let h = host();
    // collect_tables: init says so (the script then registers `kdb_table_rows`), and declares it.
    let settings = init(h, &["job", "collect_tables"], &[h.s("c"), h.b(true)]);
    assert!(h.boolean(settings["collect_tables"]), "init tells the script to collect the tables");
    // t!count each value each t:tables[]except .Q.pt
    h.ok("kdbprom_collect", &[h.s("kdb_table_rows"), h.qdict(&["trade", "quote"], &[h.j(100), h.j(7)])]);
    let t = text(h);
    assert!(t.lines().any(|l| l == "kdb_table_rows{table=\"trade\"} 100") && t.contains("kdb_table_rows{table=\"quote\"} 7"), "{t}");
    let decl = |kind: &str, name: &str, labels: &[&str]| {
        let l = if labels.is_empty() { h.id() } else { h.syms(labels) };
        h.ok("kdbprom_declare", &[h.s(kind), h.s(name), h.str("c"), l, h.id()]);
    };
    decl("gauge", "tp_log_bytes", &[]);
    decl("gauge", "tp_subs", &["table"]);
    decl("gauge", "rdb_lag", &["table", "host"]);
    decl("counter", "tp_rows_total", &["table"]);
    let collect = |name: &str, r: K| h.call("kdbprom_collect", &[h.s(name), r]);
    let has = |t: &str, line: &str| t.lines().any(|l| l == line);

    // hcount .u.L: a number.
    collect("tp_log_bytes", h.j(4096)).unwrap();
    // count each .u.w: `trade`quote!3 5.
    collect("tp_subs", h.qdict(&["trade", "quote"], &[h.j(3), h.j(5)])).unwrap();
    // ([table:`trade`quote; host:`h1`h2] lag:0.5 1.5): a keyed table.
    let keys = h.qdict(&["table", "host"], &[h.syms(&["trade", "quote"]), h.syms(&["h1", "h2"])]);
    let vals = h.qdict(&["lag"], &[h.floats(&[0.5, 1.5])]);
    collect("rdb_lag", (h.xd)((h.xt)(keys), (h.xt)(vals))).unwrap();
    collect("tp_rows_total", h.qdict(&["trade"], &[h.j(10)])).unwrap();
    let t = text(h);
    for line in [
        "tp_log_bytes 4096",
        "tp_subs{table=\"trade\"} 3",
        "tp_subs{table=\"quote\"} 5",
        "rdb_lag{table=\"trade\",host=\"h1\"} 0.5",
        "rdb_lag{table=\"quote\",host=\"h2\"} 1.5",
        "tp_rows_total{table=\"trade\"} 10",
    ] {
        assert!(has(&t, line), "{line}:\n{t}");
    }

    // The quote subscriber went away: its series goes; the counter's total grew by 5.
    collect("tp_subs", h.qdict(&["trade"], &[h.j(4)])).unwrap();
    collect("tp_rows_total", h.qdict(&["trade"], &[h.j(15)])).unwrap();
    let t = text(h);
    assert!(has(&t, "tp_subs{table=\"trade\"} 4") && !t.contains("tp_subs{table=\"quote\"}"), "{t}");
    assert!(has(&t, "tp_rows_total{table=\"trade\"} 15"), "{t}");

    // Refused results change nothing; the script hands each error to collectfail, which counts it.
    let bad = [
        ("tp_subs", h.str("three"), "prom: collect tp_subs must be a number, a dictionary or a keyed table, not a char vector"),
        ("tp_subs", h.qdict(&["trade"], &[h.f(f64::NAN)]), "prom: collect tp_subs: a value is null or infinite"),
        ("tp_rows_total", h.qdict(&["trade"], &[h.j(12)]), "prom: collect tp_rows_total: counter [\"trade\"] went back from 15 to 12"),
        ("rdb_lag", h.qdict(&["trade"], &[h.j(1)]), "prom: collect rdb_lag: 1 label value(s) where the family has 2 label(s)"),
        ("nosuch", h.j(1), "prom: collect nosuch: no such family (declare it with .prom.gauge or .prom.counter first)"),
    ];
    let n = bad.len();
    for (name, r, want) in bad {
        let e = collect(name, r).unwrap_err();
        assert_eq!(e, want);
        assert!(h.ok("kdbprom_collectfail", &[h.s(name), h.str(&e)]).is_null());
    }
    // A function that signals: the trap's handler gets q's error text.
    assert!(h.ok("kdbprom_collectfail", &[h.s("tp_subs"), h.str("type")]).is_null());
    let t = text(h);
    assert!(has(&t, "tp_subs{table=\"trade\"} 4") && has(&t, "tp_rows_total{table=\"trade\"} 15"), "unchanged: {t}");
    let errors: f64 = t
        .lines()
        .filter(|l| l.starts_with("kdbprom_collect_errors_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(errors, (n + 1) as f64, "{t}");
    assert!(has(&t, "kdbprom_collect_errors_total{collector=\"tp_subs\"} 3"), "{t}");
}

/// The exports the script binds, as (export, rank) from its `` .prom.bind[`name;rank] `` lines,
/// and its call forms, as (export, rank, first symbol) from each `` .prom.x.<alias>[`sym;… `` call.
/// (export, rank), and (export, rank, first symbol).
type Bindings = (Vec<(String, usize)>, Vec<(String, usize, String)>);

fn script_bindings() -> Bindings {
    let q = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/q/kdbprom.q")).unwrap();
    let mut binds = Vec::new();
    let mut alias: HashMap<String, (String, usize)> = HashMap::new();
    for line in q.lines().filter(|l| !l.starts_with('/')) {
        let Some((lhs, rest)) = line.split_once(":.prom.bind[`") else { continue };
        let (name, rank) = rest.split_once(']').unwrap().0.split_once(';').unwrap_or_else(|| panic!("rank in {line}"));
        let b = (format!("kdbprom_{name}"), rank.parse::<usize>().unwrap_or_else(|_| panic!("rank in {line}")));
        alias.insert(lhs.to_string(), b.clone());
        binds.push(b);
    }
    let mut forms = Vec::new();
    for (a, (export, rank)) in &alias {
        for (i, _) in q.match_indices(&format!("{a}[`")) {
            let sym: String = q[i + a.len() + 2..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            forms.push((export.clone(), *rank, sym));
        }
    }
    forms.sort();
    forms.dedup();
    (binds, forms)
}

/// Every export the script binds is called here with the rank it is bound with, and every call
/// form with a literal first symbol is called with that symbol: a new binding (or a new
/// `` .prom.x.log[`DEBUG;…] ``) with no test here fails this. Runs the tests above itself, so the
/// calls it checks are this file's, whatever order the harness picks.
#[test]
fn every_binding_and_call_form_of_the_script_is_exercised() {
    let (binds, forms) = script_bindings();
    assert!(binds.len() >= 22 && binds.contains(&("kdbprom_log".to_string(), 2)), "parsed the bindings: {binds:?}");
    assert!(forms.contains(&("kdbprom_declare".to_string(), 5, "histogram".to_string())), "parsed the call forms: {forms:?}");
    init_returns_the_handler_groups_to_wrap();
    procinfo_start_time_from_proc_and_negative_port();
    sampler_none_unless_a_timer_is_asked_for();
    wrapper_calls_for_every_handler();
    sample_takes_q_w_as_q_builds_it();
    updval_gets_each_glyph_as_a_symbol();
    api_lines_with_q_argument_types();
    histogram_line_with_q_argument_types();
    log_lines_as_the_script_writes_them();
    collectors_as_the_script_runs_them();
    let calls = common::calls();
    let called = |e: &str, r: usize| calls.iter().any(|c| c.export == e && c.rank == r);
    let missing: Vec<_> = binds.iter().filter(|(e, r)| !called(e, *r)).collect();
    assert!(missing.is_empty(), "bound by q/kdbprom.q but not exercised by tests/q_lines.rs: {missing:?}");
    let missing: Vec<_> =
        forms.iter().filter(|(e, r, s)| !calls.iter().any(|c| &c.export == e && c.rank == *r && c.first.as_deref() == Some(s))).collect();
    assert!(missing.is_empty(), "call forms of q/kdbprom.q not exercised by tests/q_lines.rs: {missing:?}");
}
