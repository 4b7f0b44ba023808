//! Records the host triple so xrelease knows which target needs no cross toolchain.
fn main() {
    let host = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=XRELEASE_HOST={host}");
}
