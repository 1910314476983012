//! The system CA store is what a target trusts: a server whose certificate is signed by a CA that
//! only the "system" store holds (`SSL_CERT_FILE`, as OpenSSL and kdbprom read it) is reached over
//! https without `tls.ca_file`, while a client with only the bundled roots is refused.
//!
//! Its own test binary, so the process-wide store is loaded here first, after `SSL_CERT_FILE` is
//! set. `tests/tls/`: `ca.pem` (a test CA, key discarded) and `server.pem`/`server.key` (localhost
//! and 127.0.0.1, signed by it, valid for 100 years), made with `openssl req -x509 -newkey ec` and
//! `openssl x509 -req -CA ca.pem`.

use kdbprom::agent::Agent;
use kdbprom::builtin::ProcessInfo;
use kdbprom::config::{Auth, Config};
use kdbprom::push::client::{self, Roots};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An https server on 127.0.0.1 answering every request 204; its port and request count.
fn tls_server() -> (u16, Arc<AtomicUsize>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(format!("{dir}/server.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/server.key")).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let n = served.clone();
    std::thread::spawn(move || {
        for tcp in l.incoming() {
            let Ok(tcp) = tcp else { return };
            let (cfg, n) = (cfg.clone(), n.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut r = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                loop {
                    let mut len = 0;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    n.fetch_add(1, Ordering::SeqCst);
                    let w = r.get_mut();
                    if w.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").and_then(|_| w.flush()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, served)
}

#[test]
fn a_ca_in_the_system_store_is_trusted_without_tls_ca_file() {
    // SAFETY (test): set before any thread of this binary reads the environment.
    unsafe {
        std::env::set_var("SSL_CERT_FILE", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/ca.pem"));
        std::env::remove_var("SSL_CERT_DIR");
    }
    assert_eq!(client::system_roots().system_count(), 1, "the system store is the test CA alone");
    let (port, served) = tls_server();
    let url = format!("https://localhost:{port}/api/v1/write");

    // kdbprom with default TLS settings: the push is accepted.
    let cfg = Config::from_json(&serde_json::json!({
        "job": "tls", "exit_deadline_ms": 500,
        "remote_write": {"url": url, "name": "tls", "protocol": "1.0"},
    }))
    .unwrap();
    let a = Agent::start(cfg, &ProcessInfo { host: "h".into(), pid: 1, ..ProcessInfo::default() }).unwrap();
    let o = a.push().unwrap();
    assert!(o[0].ok, "{o:?}");
    assert!(served.load(Ordering::SeqCst) >= 1);
    a.stop().unwrap();

    // The control: a client with only the bundled roots does not trust that server.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _in_rt = rt.enter();
    let bundled = client::build_with(&Auth::default(), 2_000, "t", &Roots::Bundled("test".into())).unwrap();
    let before = served.load(Ordering::SeqCst);
    let e = rt.block_on(bundled.post(&url).body("x").send()).unwrap_err();
    assert!(format!("{e:?}").contains("UnknownIssuer"), "{e:?}");
    assert_eq!(served.load(Ordering::SeqCst), before, "no request got through");
    // And one with the system store does, the same way kdbprom's targets are built.
    let system = client::build(&Auth::default(), 2_000, "t").unwrap();
    assert_eq!(rt.block_on(system.post(&url).body("x").send()).unwrap().status(), 204);
}
