//! The installer stage: `install.sh`, the release's verifying installer, filled in from the
//! template `src/install.sh.in` with this release's repository, tag, builds and signing policy.
//! It runs before the checksums stage, so `SHA256SUMS` lists it and the signature covers it.
//!
//! Every value lands in the script either inside single quotes or in a quoted here-document,
//! so nothing a release is named can become shell code; a value that could is refused here.

use std::path::Path;

use crate::error::{Error, Result};
use crate::layout;
use crate::manifest::{Kind, Manifest};
use crate::verify::Policy;

/// The template, a shell script in its own right (`shellcheck -s sh` reads it as it is).
pub const TEMPLATE: &str = include_str!("../install.sh.in");

/// Writes `install.sh` for the release `manifest` describes, signed under `policy`, published
/// in `repository` (`""` when unknown: the script then needs `XRELEASE_INSTALL_BASE_URL`).
pub fn run(dist: &Path, manifest: &mut Manifest, repository: &str, policy: &Policy) -> Result<()> {
    let text = render(manifest, repository, policy).map_err(|why| {
        Error::Config(format!(
            "cannot write {}: {why}",
            dist.join(layout::INSTALLER).display()
        ))
    })?;
    manifest.write_file(
        dist,
        layout::INSTALLER,
        Kind::Installer,
        None,
        text.as_bytes(),
    )
}

/// The script's text. Pure.
pub fn render(manifest: &Manifest, repository: &str, policy: &Policy) -> Result<String, String> {
    let (signing, identity, issuer, public_key) = match policy {
        Policy::Key(key) => ("key", "", "", key.to_pem()),
        Policy::Keyless {
            identity, issuer, ..
        } => ("keyless", identity.as_str(), issuer.as_str(), String::new()),
    };
    let mut assets = Vec::new();
    for binary in manifest.binaries() {
        let (Some(bin), Some(target)) = (&binary.bin, &binary.target) else {
            return Err(format!(
                "the manifest gives {} no bin or target",
                binary.name
            ));
        };
        // A POSIX shell script installs on Linux and macOS only.
        if !(target.contains("-linux-") || target.ends_with("-apple-darwin")) {
            continue;
        }
        let floor = manifest
            .glibc
            .get(&binary.name)
            .map_or("-".to_string(), |g| g.to_string());
        for (what, value) in [
            ("bin", bin),
            ("target", target),
            ("file name", &binary.name),
        ] {
            if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c == '/') {
                return Err(format!(
                    "the {what} `{value}` has a space or a slash: the installer lists builds by plain names"
                ));
            }
        }
        assets.push(format!("{bin} {target} {floor} {}", binary.name));
    }
    assets.sort();
    let mut text = TEMPLATE.to_string();
    for (name, value) in [
        ("REPO", repository),
        ("TAG", &manifest.tag),
        ("VERSION", &manifest.version),
        ("SIGNING", signing),
        ("IDENTITY", identity),
        ("ISSUER", issuer),
    ] {
        if value.chars().any(|c| c == '\'' || c.is_control()) {
            return Err(format!(
                "{name} `{value}` holds a quote or a control character, which the script cannot carry"
            ));
        }
        text = text.replace(&format!("@{name}@"), value);
    }
    text = text.replace("@ASSETS@", &assets.join("\n"));
    text = text.replace("@PUBLIC_KEY@", public_key.trim_end());
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Artifact, Source};

    fn binary(bin: &str, target: &str, name: &str) -> Artifact {
        Artifact {
            name: name.into(),
            kind: Kind::Binary,
            bin: Some(bin.into()),
            package: Some(bin.into()),
            target: Some(target.into()),
            platform: None,
            describes: None,
            sha256: "00".repeat(32),
            size: 1,
        }
    }

    fn manifest(artifacts: Vec<Artifact>) -> Manifest {
        Manifest {
            schema_version: crate::manifest::SCHEMA_VERSION,
            tag: "v1.2.3".into(),
            version: "1.2.3".into(),
            prerelease: false,
            source: Source {
                repository: None,
                commit: "0".repeat(40),
                commit_time: 0,
            },
            toolchains: Default::default(),
            artifacts,
            builds: vec![],
            timings: Default::default(),
            glibc: [(
                "app-1.2.3-linux-amd64".to_string(),
                crate::config::GlibcVersion::parse("2.34").unwrap(),
            )]
            .into(),
            images: vec![],
        }
    }

    #[test]
    fn the_release_values_are_filled_in() {
        let key = crate::signing::key::PrivateKey::generate().unwrap();
        let m = manifest(vec![
            binary("app", "x86_64-unknown-linux-gnu", "app-1.2.3-linux-amd64"),
            binary(
                "app",
                "x86_64-unknown-linux-musl",
                "app-1.2.3-linux-amd64-musl",
            ),
            binary(
                "app",
                "x86_64-pc-windows-msvc",
                "app-1.2.3-windows-amd64.exe",
            ),
        ]);
        let text = render(&m, "o/r", &Policy::Key(key.public_key())).unwrap();
        for placeholder in ["@REPO@", "@TAG@", "@ASSETS@", "@PUBLIC_KEY@", "@IDENTITY@"] {
            assert!(
                !text.contains(placeholder),
                "{placeholder} is left:\n{text}"
            );
        }
        for line in [
            "REPO='o/r'",
            "TAG='v1.2.3'",
            "VERSION='1.2.3'",
            "SIGNING='key'",
            "app x86_64-unknown-linux-gnu 2.34 app-1.2.3-linux-amd64\n",
            "app x86_64-unknown-linux-musl - app-1.2.3-linux-amd64-musl\n",
        ] {
            assert!(text.contains(line), "{line}:\n{text}");
        }
        assert!(text.contains(key.public_key().to_pem().trim_end()));
        assert!(
            !text.contains("windows"),
            "no windows build in a sh installer"
        );
    }

    #[test]
    fn values_that_could_become_shell_code_are_refused() {
        let key = crate::signing::key::PrivateKey::generate().unwrap();
        let policy = Policy::Key(key.public_key());
        let m = manifest(vec![binary("app", "x86_64-unknown-linux-gnu", "a b")]);
        assert!(render(&m, "o/r", &policy).unwrap_err().contains("a space"));
        let m = manifest(vec![]);
        let err = render(&m, "o/r'; rm -rf ~; '", &policy).unwrap_err();
        assert!(err.contains("quote"), "{err}");
    }
}
