//! install.sh on a keyless release: it verifies with the first of xrelease, cosign and gh on
//! PATH (here xrelease, then gh), for the identity the release was signed as, and refuses
//! without one unless `--insecure`.

use std::path::{Path, PathBuf};

use super::{keyless_copy, keyless_release};
use crate::install::{Tools, install_with, shellcheck};
use crate::support::files_server::FilesServer;

const AMD64: &str = "app-1.0.0-linux-amd64";

/// The loopback Sigstore's trusted root as one JSON line (gh reads no other form).
fn one_line_root(dir: &Path) -> PathBuf {
    let root: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&keyless_release().server.trusted_root).unwrap(),
    )
    .unwrap();
    let path = dir.join("trusted_root.jsonl");
    std::fs::write(&path, format!("{root}\n")).unwrap();
    path
}

/// gh's own binary (PATH may hold a version manager's shim that needs more than PATH).
fn gh_binary() -> PathBuf {
    let gh = std::process::Command::new("sh")
        .args(["-c", "pyenv which gh 2>/dev/null || command -v gh"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8_lossy(&gh.stdout).trim())
}

fn sh() -> Vec<String> {
    vec!["sh".to_string()]
}

#[test]
fn install_sh_verifies_a_keyless_release_with_xrelease_from_path() {
    let (scratch, dir) = keyless_copy();
    let text = std::fs::read_to_string(dir.join("install.sh")).unwrap();
    assert!(text.contains("SIGNING='keyless'"));
    assert!(text.contains(&format!(
        "IDENTITY='{}'",
        crate::support::sigstore::WORKFLOW_IDENTITY
    )));
    let (clean, report) = shellcheck(&dir.join("install.sh"));
    assert!(clean, "{report}");

    let root = one_line_root(scratch.path());
    let root = root.to_str().unwrap();
    let env = [("XRELEASE_INSTALL_TRUSTED_ROOT", root)];
    let server = FilesServer::start(&dir);
    let script = dir.join("install.sh");
    // xrelease comes first when gh is there too.
    let tools = Tools::without(&[]);
    tools.link("xrelease", Path::new(env!("CARGO_BIN_EXE_xrelease")));
    tools.link("gh", &gh_binary());
    let run = install_with(&sh(), &script, &server.url, &tools, &[], &env);
    run.installed(&dir, AMD64);
    assert!(
        run.stderr().contains(
            "verified app-1.0.0-linux-amd64, SHA256SUMS, its signature, provenance and SBOM with xrelease"
        ),
        "{}",
        run.stderr()
    );
    // It took the binary's metadata only.
    let mut fetched = server.requests();
    fetched.sort();
    fetched.dedup();
    assert_eq!(
        fetched,
        [
            "/SHA256SUMS",
            "/SHA256SUMS.pem",
            "/SHA256SUMS.sig",
            "/SHA256SUMS.sigstore.json",
            "/app-1.0.0-linux-amd64",
            "/app-1.0.0-linux-amd64.cdx.intoto.jsonl",
            "/app-1.0.0-linux-amd64.cdx.json",
            "/app-1.0.0-linux-amd64.cdx.sigstore.json",
            "/provenance.intoto.jsonl",
            "/provenance.sigstore.json",
        ]
    );

    // No verifier on PATH: refused, naming what to install; --insecure installs, saying so.
    let bare = Tools::without(&[]);
    install_with(&sh(), &script, &server.url, &bare, &[], &env)
        .refused(1, "install xrelease, cosign or gh");
    let insecure = install_with(&sh(), &script, &server.url, &bare, &["--insecure"], &env);
    insecure.installed(&dir, AMD64);
    assert!(insecure.stderr().contains("WARNING: --insecure"));

    // Another identity's root: the signature does not verify.
    let other = crate::support::sigstore::Sigstore::start();
    install_with(
        &sh(),
        &script,
        &server.url,
        &tools,
        &[],
        &[(
            "XRELEASE_INSTALL_TRUSTED_ROOT",
            other.trusted_root.to_str().unwrap(),
        )],
    )
    .refused(3, "xrelease verify failed for app-1.0.0-linux-amd64");

    // A changed binary with its line recomputed: xrelease refuses it.
    crate::flip_byte(&dir.join(AMD64), 5000);
    crate::recompute_sums(&dir);
    install_with(&sh(), &script, &server.url, &tools, &[], &env)
        .refused(3, "xrelease verify failed for app-1.0.0-linux-amd64");
}

#[test]
fn install_sh_verifies_a_keyless_release_with_gh_when_there_is_no_xrelease() {
    let (scratch, dir) = keyless_copy();
    let root = one_line_root(scratch.path());
    let gh_config = tempfile::tempdir().unwrap();
    // gh offline (`--bundle`): its development host, and a proxy where nothing listens.
    let env = [
        ("XRELEASE_INSTALL_TRUSTED_ROOT", root.to_str().unwrap()),
        ("GH_CONFIG_DIR", gh_config.path().to_str().unwrap()),
        ("GH_NO_UPDATE_NOTIFIER", "1"),
        ("GH_PROMPT_DISABLED", "1"),
        ("GH_HOST", "github.localhost"),
        ("GH_TOKEN", "ghp_installer_TOKEN_0"),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
    ];
    let server = FilesServer::start(&dir);
    // The loopback Fulcio certifies the claims of repository o/r, while the fixture's release
    // names fixture/basic: the installer run here is that of the same release in o/r (gh
    // checks the certificate's source repository against `--repo`).
    let script = scratch.path().join("install.sh");
    let text = std::fs::read_to_string(dir.join("install.sh")).unwrap();
    assert!(text.contains("REPO='fixture/basic'"));
    std::fs::write(&script, text.replace("REPO='fixture/basic'", "REPO='o/r'")).unwrap();
    let tools = Tools::without(&[]);
    tools.link("gh", &gh_binary());
    let run = install_with(&sh(), &script, &server.url, &tools, &[], &env);
    run.installed(&dir, AMD64);
    assert!(
        run.stderr()
            .contains("verified the provenance of app-1.0.0-linux-amd64 with gh"),
        "{}",
        run.stderr()
    );
    // A changed binary with its line recomputed: its provenance no longer matches.
    crate::flip_byte(&dir.join(AMD64), 5000);
    crate::recompute_sums(&dir);
    install_with(&sh(), &script, &server.url, &tools, &[], &env)
        .refused(3, "gh attestation verify failed for app-1.0.0-linux-amd64");
}
