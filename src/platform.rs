//! Target triples xrelease knows, and the platform name each one gets in artifact names.

/// (triple, platform, executable suffix). The platform names are part of the file-name contract.
const KNOWN: &[(&str, &str, &str)] = &[
    ("x86_64-unknown-linux-gnu", "linux-amd64", ""),
    ("aarch64-unknown-linux-gnu", "linux-arm64", ""),
    ("x86_64-unknown-linux-musl", "linux-amd64-musl", ""),
    ("aarch64-unknown-linux-musl", "linux-arm64-musl", ""),
    ("armv7-unknown-linux-gnueabihf", "linux-armv7", ""),
    ("riscv64gc-unknown-linux-gnu", "linux-riscv64", ""),
    ("i686-unknown-linux-gnu", "linux-386", ""),
    ("x86_64-apple-darwin", "darwin-amd64", ""),
    ("aarch64-apple-darwin", "darwin-arm64", ""),
    ("x86_64-pc-windows-msvc", "windows-amd64", ".exe"),
    ("aarch64-pc-windows-msvc", "windows-arm64", ".exe"),
    ("x86_64-pc-windows-gnu", "windows-amd64-gnu", ".exe"),
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub triple: String,
    pub platform: String,
    pub exe_suffix: &'static str,
}

impl Target {
    pub fn new(triple: &str) -> Option<Target> {
        KNOWN
            .iter()
            .find(|(t, _, _)| *t == triple)
            .map(|(t, platform, suffix)| Target {
                triple: (*t).to_string(),
                platform: (*platform).to_string(),
                exe_suffix: suffix,
            })
    }

    /// The cargo environment-variable form of the triple (`CARGO_TARGET_<THIS>_LINKER`).
    pub fn env_key(&self) -> String {
        self.triple.to_uppercase().replace(['-', '.'], "_")
    }

    pub fn arch(&self) -> &str {
        self.triple.split('-').next().unwrap_or(&self.triple)
    }
}

/// Whether this machine runs the target's binaries without an emulator: its own triple, and
/// the static musl build of its own architecture.
pub fn runs_natively(triple: &str) -> bool {
    let host = host_triple();
    triple == host
        || (host.contains("-linux-")
            && triple.ends_with("-linux-musl")
            && triple.split('-').next() == host.split('-').next())
}

/// The GitHub Actions runner that builds a target natively by default.
pub fn default_ci_runner(triple: &str) -> &'static str {
    match triple {
        t if t.starts_with("aarch64-") && t.contains("-linux-") => "ubuntu-24.04-arm",
        "x86_64-apple-darwin" => "macos-13",
        t if t.ends_with("-apple-darwin") => "macos-14",
        t if t.ends_with("-windows-msvc") => "windows-2022",
        _ => "ubuntu-24.04",
    }
}

pub fn known_triples() -> impl Iterator<Item = &'static str> {
    KNOWN.iter().map(|(t, _, _)| *t)
}

/// The triple of the machine running xrelease (what a plain `cargo build` produces).
pub fn host_triple() -> &'static str {
    env!("XRELEASE_HOST")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_names_follow_the_design() {
        let name = |t: &str| Target::new(t).unwrap().platform;
        assert_eq!(name("x86_64-unknown-linux-gnu"), "linux-amd64");
        assert_eq!(name("aarch64-unknown-linux-gnu"), "linux-arm64");
        assert_eq!(name("aarch64-apple-darwin"), "darwin-arm64");
        assert_eq!(name("x86_64-apple-darwin"), "darwin-amd64");
        assert_eq!(name("x86_64-pc-windows-msvc"), "windows-amd64");
        assert_eq!(name("x86_64-unknown-linux-musl"), "linux-amd64-musl");
        assert_eq!(
            Target::new("x86_64-pc-windows-msvc").unwrap().exe_suffix,
            ".exe"
        );
        assert!(Target::new("x86_64-unknown-linux-gnux").is_none());
    }

    #[test]
    fn the_hosts_own_musl_build_runs_natively() {
        let arch = host_triple().split('-').next().unwrap();
        assert!(runs_natively(host_triple()));
        if host_triple().contains("-linux-") {
            assert!(runs_natively(&format!("{arch}-unknown-linux-musl")));
        }
        assert!(!runs_natively("riscv64gc-unknown-linux-gnu"));
    }

    #[test]
    fn env_key_is_cargos_spelling() {
        let t = Target::new("aarch64-unknown-linux-gnu").unwrap();
        assert_eq!(t.env_key(), "AARCH64_UNKNOWN_LINUX_GNU");
    }
}
