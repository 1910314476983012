//! Tests of the configuration: keys, errors, the environment rule and the disk checks.

use super::env::{ENV_KEYS, env_var};
use super::*;
use serde_json::json;
use std::collections::HashMap;

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
        e(json!({"remote_write": [{"url": "http://a:1/w", "name": "x"}, {"url": "http://b:1/w"}, {"url": "http://c:1/w", "name": "x"}]})),
        "config key remote_write[2].name: 'x' is already used by remote_write[0] (set name to tell them apart)"
    );
    // Defaults: the scheme's port when the URL has none.
    let c =
        Config::from_json(&json!({"remote_write": [{"url": "https://m/api/v1/push"}, {"url": "http://h:9090/a", "name": "b"}]})).unwrap();
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
    let c =
        Config::from_json(&json!({"remote_write": {"url": "http://h:1/w", "stale_markers": false, "protocol": "prometheus.WriteRequest",
        "queue": {"capacity": 100, "max_samples_per_send": 100, "sample_age_limit_ms": 2_592_000_000u64}}}))
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
    assert_eq!(
        e(json!({ "textfile": p })),
        format!("config key textfile: {} is not a directory (a file's name must end in .prom)", p.display())
    );
    assert!(e(json!({ "textfile": "/proc/kdbprom/x.prom" })).starts_with("config key textfile: cannot create directory /proc/kdbprom: "));
    assert_eq!(e(json!({ "labels": { "kdb_job": "x" } })), "config key labels.kdb_job: is reserved: the textfile's copy of job/instance");
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn the_spool_block_is_parsed_without_touching_the_disk() {
    // Creating and probing the directory is `push::delivery`'s, at init (tested there).
    let dir = std::env::temp_dir().join(format!("kdbprom-spool-{}", std::process::id())).join("a/b");
    let c = Config::from_json(&json!({ "spool": { "dir": dir } })).unwrap();
    assert_eq!(c.spool, Some(Spool::at(dir.clone(), 64 << 20)));
    assert!(!dir.parent().unwrap().exists());
    assert_eq!(
        Config::from_json(&json!({"spool": {"dir": "/dev/null/spool"}})).unwrap().spool,
        Some(Spool::at("/dev/null/spool", 64 << 20))
    );
    let e = |v: Value| Config::from_json(&v).unwrap_err().to_string();
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
}

#[test]
fn urls_are_never_echoed_with_credentials() {
    assert_eq!(
        Config::from_json(&json!({"remote_write": {"url": "http://u:secret@h:bad/"}})).unwrap_err().to_string(),
        "config key remote_write[0].url: 'http://<redacted>@h:bad/' is not a URL: invalid port number"
    );
    let e = |url: &str| Config::from_json(&json!({"pushgateway": { "url": url }})).unwrap_err().to_string();
    assert_eq!(e("ftp://u:p@ss@h/"), "config key pushgateway.url: 'ftp://<redacted>@h/' must be an http:// or https:// URL with a host");
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
    let c = Config::from_json(&json!({"pushgateway": {"url": "http://127.0.0.1:1", "basic_auth": {"username": "u", "password_file": f}}}))
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
    let env: HashMap<String, String> =
        [("KDBPROM_JOB", "eod"), ("KDBPROM_INTERVAL_MS", "500"), ("KDBPROM_PUSHGATEWAY_URL", "http://127.0.0.1:9091/"), ("PATH", "/bin")]
            .into_iter()
            .map(|(a, b)| (a.into(), b.into()))
            .collect();
    let c = Config::from_env(&env).unwrap();
    assert_eq!((c.job.as_str(), c.interval_ms), ("eod", 500));
    assert_eq!(c.pushgateway.unwrap().url, "http://127.0.0.1:9091");
    assert!(
        !c.native_request_histograms && Config::from_json(&json!({ "native_request_histograms": true })).unwrap().native_request_histograms
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
        Err("config key pushgateway.proxy_url: 'proxy:3128' must be an http:// or https:// proxy URL with a host (socks is not supported)"
            .into())
    );
    assert_eq!(
        pg(json!({"proxy_url": "not a url"})),
        Err("config key pushgateway.proxy_url: 'not a url' is not a URL: relative URL without a base".into())
    );
    assert_eq!(
        pg(json!({"proxy_url": "http://u:hunter2@proxy:3128"})),
        Err("config key pushgateway.proxy_url: must not carry credentials (for an authenticating proxy use proxy_from_environment)".into())
    );
    assert_eq!(pg(json!({"proxy_url": 3128})), Err("config key pushgateway.proxy_url must be a string or symbol".into()));
    assert_eq!(pg(json!({"proxy_from_environment": "yes"})), Err("config key pushgateway.proxy_from_environment must be a boolean".into()));
    // Per remote-write target too.
    assert_eq!(
        rw_err(json!({"proxy_url": "ftp://p"})),
        "config key remote_write[0].proxy_url: 'ftp://p' must be an http:// or https:// proxy URL with a host (socks is not supported)"
    );
    let c = Config::from_json(&json!({"remote_write": [{"url": "http://a:1/w", "proxy_url": "http://p:3128"}, {"url": "http://b:1/w", "proxy_from_environment": true}]})).unwrap();
    assert_eq!((&c.remote_write[0].auth.proxy, &c.remote_write[1].auth.proxy), (&Proxy::Url("http://p:3128".into()), &Proxy::Environment));
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
    assert!(!dir.exists(), "parsing creates nothing");
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
    let env = env_of(&[("KDBPROM_JOB", "x"), ("KDBPROM_CONFIG", "/f"), ("KDBPROM_LIB", "/l"), ("KDBPROM_DEMO_X", "1"), ("PATH", "/bin")]);
    assert_eq!(Config::ignored_env(&env), ["KDBPROM_CONFIG", "KDBPROM_JOB"]);
}
