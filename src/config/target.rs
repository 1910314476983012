//! One target's block: `pushgateway`, each `remote_write` entry, and the auth, TLS and proxy keys they share.

use super::checks::secret;
use super::reader::{Obj, hide_userinfo};
use super::{
    Auth, BasicAuth, ConfigError, Protocol, Proxy, PushMethod, PushgatewayCompression, PushgatewayConfig, PushgatewayFormat, QueueConfig,
    RemoteWriteConfig, Tls,
};
use serde_json::{Map, Value};

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

/// The `pushgateway` block.
pub(super) fn pushgateway(mut o: Obj<'_>) -> Result<PushgatewayConfig, ConfigError> {
    let url = o.url("url")?;
    let method = match o.opt_str("method")?.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("PUT") => PushMethod::Put,
        Some("POST") => PushMethod::Post,
        Some(_) => return Err(o.invalid("method", "must be PUT or POST")),
    };
    let format = match o.opt_str("format")?.as_deref() {
        None | Some("protobuf") => PushgatewayFormat::Protobuf,
        Some("text") => PushgatewayFormat::Text,
        Some(x) => return Err(o.invalid("format", &format!(r#"must be "protobuf" or "text", not '{x}'"#))),
    };
    let compression = match o.opt_str("compression")?.as_deref() {
        None | Some("none") => PushgatewayCompression::None,
        Some("gzip") => PushgatewayCompression::Gzip,
        Some(x) => return Err(o.invalid("compression", &format!(r#"must be "none" or "gzip", not '{x}'"#))),
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
    let p = PushgatewayConfig {
        url,
        method,
        grouping,
        delete_on_exit: o.bool("delete_on_exit", false)?,
        auth: auth(&mut o)?,
        timeout_ms: o.num("timeout_ms", 5_000, 1, 600_000)?,
        format,
        compression,
    };
    o.finish()?;
    Ok(p)
}

/// One `remote_write` entry.
pub(super) fn remote_write(mut o: Obj<'_>) -> Result<RemoteWriteConfig, ConfigError> {
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
    // Parsed once here (the string without its trailing '/'), and requests go to this very value.
    let endpoint = reqwest::Url::parse(&url).map_err(|e| o.invalid("url", &format!("is not a URL without its trailing '/': {e}")))?;
    let default_name = endpoint.host_str().and_then(|h| Some(format!("{h}:{}", endpoint.port_or_known_default()?)));
    let name = o.opt_str("name")?.or(default_name).unwrap_or_else(|| url.clone());
    check_target_name(&name).map_err(|why| o.invalid("name", &why))?;
    // A missing queue block reads as an empty one, so the defaults live in one place.
    let empty = Value::Object(Map::new());
    let mut q = match o.child("queue")? {
        Some(q) => q,
        None => Obj::new(&empty, &o.key("queue"))?,
    };
    let queue = QueueConfig {
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
    let rw = RemoteWriteConfig {
        url,
        endpoint,
        name,
        protocol,
        headers,
        tenant,
        tenant_header,
        auth: auth(&mut o)?,
        remote_timeout_ms: o.num("remote_timeout_ms", 30_000, 1, 600_000)?,
        queue,
        stale_markers: o.bool("stale_markers", true)?,
        send_native_histograms: o.bool("send_native_histograms", true)?,
    };
    o.finish()?;
    Ok(rw)
}

/// A header kdbprom sets itself ([`RESERVED_HEADERS`]), in any case.
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

/// The credentials, TLS and proxy keys of a target's block.
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
