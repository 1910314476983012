//! Passes the path of KX's libe.so (the K API host for tests) to the test binaries.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let libe = std::env::var("KX_LIBE").unwrap_or_else(|_| format!("{dir}/.kx/libe.so"));
    println!("cargo::rustc-env=KX_LIBE_PATH={libe}");
    println!("cargo::rerun-if-env-changed=KX_LIBE");
}
