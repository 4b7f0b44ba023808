//! The `xrelease` binary: the same door as a workspace's `cargo xtask`.
fn main() {
    std::process::exit(xrelease::cli::main(std::env::args_os()));
}
