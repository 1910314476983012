//! Compiles proto/ (remote write 1.0 and 2.0, and the Pushgateway's io.prometheus.client metrics)
//! with prost-build fed by protox (no protoc needed), and passes the path of KX's libe.so (the K API
//! host for tests) to the test binaries.

fn main() {
    let fds = protox::compile(["proto/remote.proto", "proto/remote_v2.proto", "proto/metrics.proto"], ["proto"]).expect("proto/ compiles");
    prost_build::Config::new().compile_fds(fds).expect("prost generates the remote-write and client_model types");
    println!("cargo::rerun-if-changed=proto");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let libe = std::env::var("KX_LIBE").unwrap_or_else(|_| format!("{dir}/.kx/libe.so"));
    println!("cargo::rustc-env=KX_LIBE_PATH={libe}");
    println!("cargo::rerun-if-env-changed=KX_LIBE");
    // A test that defines q's `sd1`/`sd0x` (and `k`, q's evaluator) exports them, standing in for q's
    // main loop (a no-op in test binaries that do not define them).
    println!("cargo::rustc-link-arg-tests=-Wl,--export-dynamic-symbol=sd1,--export-dynamic-symbol=sd0x,--export-dynamic-symbol=k");
}
