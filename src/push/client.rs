//! The only place reqwest clients are built: TLS (CA, client certificate, skip-verify), timeouts.

use crate::config::Auth;
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
    let err = |k: &str, why: String| ClientError { key: format!("{key}.{k}"), why };
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(std::time::Duration::from_millis(timeout_ms))
        .connect_timeout(std::time::Duration::from_millis(timeout_ms.min(10_000)))
        .user_agent(concat!("kdbprom/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(2);
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
}
