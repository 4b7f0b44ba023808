//! `cargo xtask <args>`: this workspace's door to xrelease (see .cargo/config.toml).
//!
//! Flags, the engine, the report and the exit code all live in the xrelease library, so
//! `cargo xtask release v1.0.0` and `xrelease release v1.0.0` are the same command.
fn main() {
    let args = std::iter::once("cargo xtask".into()).chain(std::env::args_os().skip(1));
    std::process::exit(xrelease::cli::main(args));
}
