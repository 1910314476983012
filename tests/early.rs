//! Declarations before `.prom.init`, as KX 1.x scripts and libraries loaded first make them: checked
//! at the call, kept, and applied by init in order; a separate test binary, so that no other test
//! has initialised the shared agent first.

mod common;
use common::host;

#[test]
fn declarations_before_init_are_checked_at_once_and_applied_by_init() {
    let h = host();
    // .prom.counter[`rows_total;"Rows";`table] and .prom.histogram[…;0.1 1], before init
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("early_rows_total"), h.str("Rows."), h.s("table"), h.id()]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("early_seconds"), h.str(""), h.id(), h.floats(&[0.1, 1.0])]);
    // KX 1.x: .prom.newmetric[`early_lag;`gauge;`feed;"Lag"] then .prom.addmetric[`early_lag;enlist`fx;();enlist 5f]
    h.ok("kdbprom_newmetric", &[h.s("early_lag"), h.s("gauge"), h.syms(&["feed"]), h.str("Lag.")]);
    let handle = h.ok("kdbprom_addmetric", &[h.s("early_lag"), h.syms(&["fx"]), h.id(), h.floats(&[5.0])]);
    assert_eq!(h.sym(handle), "early_lag|fx", "the handle a 1.x script keeps for updval");
    // A mistake is a q error at the line that made it, not at init.
    assert_eq!(
        h.err("kdbprom_declare", &[h.s("gauge"), h.s("bad-name"), h.str(""), h.id(), h.id()]),
        "prom: invalid metric name 'bad-name' (must match [a-zA-Z_:][a-zA-Z0-9_:]*)"
    );
    assert_eq!(h.err("kdbprom_inc", &[h.s("early_rows_total"), h.j(1)]), "prom: not initialised: call .prom.init first");
    let file = std::env::temp_dir().join(format!("kdbprom-early-{}.prom", std::process::id()));
    let r = h.ok("kdbprom_init", &[h.dict(&["job", "textfile"], &[h.s("early"), h.str(file.to_str().unwrap())]), h.id()]);
    (h.r0)(r);
    let s = h.ok("kdbprom_series", &[h.s("early_rows_total"), h.syms(&["trade"])]);
    h.ok("kdbprom_inc", &[s, h.j(3)]);
    h.ok("kdbprom_updval", &[h.s("early_lag|fx"), h.s("inc"), h.j(2)]);
    h.ok("kdbprom_observe", &[h.s("early_seconds"), h.f(0.5)]);
    let t = h.ok("kdbprom_text", &[h.id()]);
    let text = h.string(t);
    (h.r0)(t);
    for line in [
        "# HELP early_rows_total Rows.\n",
        "early_rows_total{table=\"trade\"} 3\n",
        "early_lag{feed=\"fx\"} 7\n",
        "early_seconds_bucket{le=\"1.0\"} 1\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // After a stop, declarations wait for the next init again; one that init refuses fails it.
    let st = h.ok("kdbprom_stop", &[h.id()]);
    (h.r0)(st);
    // Checked against what the next agent will hold, not what the last run declared: the counter
    // early_rows_total of the first run may come back as a gauge.
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("early_rows_total"), h.str(""), h.id(), h.id()]);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("early_two"), h.str(""), h.syms(&["a"]), h.id()]);
    h.ok("kdbprom_addmetric", &[h.s("early_two"), h.syms(&["x", "y"]), h.id(), h.id()]);
    let e = h.err("kdbprom_init", &[h.dict(&["job", "textfile"], &[h.s("early"), h.str(file.to_str().unwrap())]), h.id()]);
    assert!(e.starts_with("prom: a declaration made before .prom.init was refused: "), "{e}");
    assert!(e.contains("early_two"), "{e}");
    // Nothing stays kept: the next init starts.
    let r = h.ok("kdbprom_init", &[h.dict(&["job", "textfile"], &[h.s("early"), h.str(file.to_str().unwrap())]), h.id()]);
    (h.r0)(r);
    let st = h.ok("kdbprom_stop", &[h.id()]);
    (h.r0)(st);
    let _ = std::fs::remove_file(file);
}
