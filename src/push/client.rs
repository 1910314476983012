//! The only place reqwest clients are built: TLS (the system's CA store, an extra CA, a client
//! certificate, skip-verify), proxy, timeouts.
//!
//! Trust is what an operator's other tools trust: the system CA store (found as OpenSSL finds it:
//! `SSL_CERT_FILE`, `SSL_CERT_DIR`, else the distribution's bundle), loaded once per process, plus
//! `tls.ca_file`. Only when the system store has no usable certificate are reqwest's bundled
//! Mozilla roots used, said once on stderr. Proxies as Prometheus does it: none unless `proxy_url`
//! names one or `proxy_from_environment` is true (reqwest would otherwise follow `HTTP_PROXY`).

use crate::config::{Auth, Proxy};
use std::sync::OnceLock;
use thiserror::Error;

/// A client could not be built from the configuration; the text names the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("config key {key}: {why}")]
pub struct ClientError {
    /// Key path, e.g. `remote_write[0].tls.ca_file`.
    pub key: String,
    /// What is wrong (never file contents).
    pub why: String,
}

/// Builds the client of one target; `key` is its config path for error texts.
pub fn build(auth: &Auth, timeout_ms: u64, key: &str) -> Result<reqwest::Client, ClientError> {
    build_with(auth, timeout_ms, key, system_roots())
}

/// [`build`] trusting `roots` (tests give their own).
pub fn build_with(auth: &Auth, timeout_ms: u64, key: &str, roots: &Roots) -> Result<reqwest::Client, ClientError> {
    let err = |k: &str, why: String| ClientError { key: format!("{key}.{k}"), why };
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(std::time::Duration::from_millis(timeout_ms))
        .connect_timeout(std::time::Duration::from_millis(timeout_ms.min(10_000)))
        .user_agent(concat!("kdbprom/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(2);
    if let Roots::System(certs) = roots {
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c.clone());
        }
    }
    b = match &auth.proxy {
        // reqwest follows HTTP_PROXY/HTTPS_PROXY unless told not to.
        Proxy::Direct => b.no_proxy(),
        Proxy::Url(u) => b.proxy(reqwest::Proxy::all(u.as_str()).map_err(|e| err("proxy_url", e.to_string()))?),
        Proxy::Environment => b,
    };
    let tls = &auth.tls;
    if let Some(ca) = &tls.ca_file {
        let pem = std::fs::read(ca).map_err(|e| err("tls.ca_file", format!("cannot read {}: {e}", ca.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| err("tls.ca_file", format!("{} is not PEM certificates: {e}", ca.display())))?;
        // An empty bundle parses fine and would only fail at the first TLS handshake.
        if certs.is_empty() {
            return Err(err("tls.ca_file", format!("{} holds no PEM certificate", ca.display())));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let (Some(cert), Some(keyf)) = (&tls.cert_file, &tls.key_file) {
        let mut pem = std::fs::read(cert).map_err(|e| err("tls.cert_file", format!("cannot read {}: {e}", cert.display())))?;
        pem.extend(std::fs::read(keyf).map_err(|e| err("tls.key_file", format!("cannot read {}: {e}", keyf.display())))?);
        let id =
            reqwest::Identity::from_pem(&pem).map_err(|_| err("tls.cert_file", "certificate and key do not form a PEM identity".into()))?;
        b = b.identity(id);
    }
    if tls.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| err("tls", e.to_string()))
}

/// The roots a client trusts besides `tls.ca_file`.
#[derive(Debug, Clone)]
pub enum Roots {
    /// The system store's certificates that rustls can use as trust anchors.
    System(Vec<reqwest::Certificate>),
    /// reqwest's bundled Mozilla roots (webpki-roots), and why the system store was not used.
    Bundled(String),
}

impl Roots {
    /// From what was loaded from the system store: the certificates rustls can take as trust
    /// anchors (stores often hold a few it cannot parse; they are skipped, as reqwest does, so
    /// one bad file does not cost every other root) or, with none, the bundled roots and why.
    pub fn from_loaded(loaded: rustls_native_certs::CertificateResult) -> Roots {
        let mut probe = rustls::RootCertStore::empty();
        let usable: Vec<reqwest::Certificate> = loaded
            .certs
            .iter()
            .filter(|c| probe.add(rustls::pki_types::CertificateDer::from(c.as_ref())).is_ok())
            .filter_map(|c| reqwest::Certificate::from_der(c).ok())
            .collect();
        if !usable.is_empty() {
            return Roots::System(usable);
        }
        let why = match (loaded.certs.len(), loaded.errors.first()) {
            (0, None) => "the system store has no certificate".to_string(),
            (0, Some(e)) => e.to_string(),
            (n, _) => format!("none of the system store's {n} certificates is usable"),
        };
        Roots::Bundled(why)
    }

    /// How many system roots (0 for the bundled ones).
    pub fn system_count(&self) -> usize {
        match self {
            Roots::System(c) => c.len(),
            Roots::Bundled(_) => 0,
        }
    }
}

/// The system store, loaded once per process: reading and parsing it takes milliseconds, and every
/// target's client trusts it. Falling back to the bundled roots is said once on stderr.
pub fn system_roots() -> &'static Roots {
    static ROOTS: OnceLock<Roots> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let r = Roots::from_loaded(rustls_native_certs::load_native_certs());
        if let Roots::Bundled(why) = &r {
            crate::warn!("no usable system CA certificates ({why}); trusting the bundled Mozilla roots instead");
        }
        r
    })
}

/// Adds the target's credentials to a request.
pub fn authorise(req: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
    match (&auth.basic, &auth.bearer) {
        (Some(b), _) => req.basic_auth(&b.username, Some(b.password.expose())),
        (None, Some(t)) => req.bearer_auth(t.expose()),
        (None, None) => req,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tls;

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let f = std::env::temp_dir().join(format!("kdbprom-ca-{}.pem", std::process::id()));
        std::fs::write(&f, "not a certificate\n").unwrap();
        let auth = Auth { tls: Tls { ca_file: Some(f.clone()), ..Tls::default() }, ..Auth::default() };
        let e = build(&auth, 1_000, "pushgateway").unwrap_err();
        std::fs::remove_file(&f).unwrap();
        assert_eq!(e.to_string(), format!("config key pushgateway.tls.ca_file: {} holds no PEM certificate", f.display()));
    }

    #[test]
    fn the_system_store_is_trusted_and_the_bundled_roots_are_the_fallback() {
        // This machine's store (Debian's ca-certificates): its roots, not the bundled ones.
        let system = Roots::from_loaded(rustls_native_certs::load_native_certs());
        assert!(system.system_count() > 50, "{system:?}");
        assert_eq!(system_roots().system_count(), system.system_count(), "the process-wide copy is the same store");
        // A store with nothing in it, or nothing usable, or that cannot be read: the bundled roots, and why.
        let empty = rustls_native_certs::CertificateResult::default();
        assert!(matches!(Roots::from_loaded(empty), Roots::Bundled(w) if w == "the system store has no certificate"));
        let mut junk = rustls_native_certs::CertificateResult::default();
        junk.certs.push(rustls::pki_types::CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]));
        assert!(matches!(Roots::from_loaded(junk), Roots::Bundled(w) if w == "none of the system store's 1 certificates is usable"));
        let missing = rustls_native_certs::load_certs_from_paths(Some(std::path::Path::new("/nonexistent/ca.pem")), None);
        assert!(matches!(Roots::from_loaded(missing), Roots::Bundled(w) if w.contains("/nonexistent/ca.pem")));
        // One bad certificate among good ones costs only itself.
        let mut mixed = rustls_native_certs::load_native_certs();
        let good = mixed.certs.len();
        mixed.certs.push(rustls::pki_types::CertificateDer::from(vec![0x30, 0x00]));
        assert!(Roots::from_loaded(mixed).system_count() >= good.min(system.system_count()));
        // Both kinds build a client.
        assert!(build_with(&Auth::default(), 1_000, "t", &system).is_ok());
        assert!(build_with(&Auth::default(), 1_000, "t", &Roots::Bundled("test".into())).is_ok());
    }
}
