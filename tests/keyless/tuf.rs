//! `xrelease verify` without `--trusted-root`: the trusted root comes from a TUF repository.
//! The repository is made by python-tuf, the reference implementation (tests/support/tuf), and
//! served from 127.0.0.1; its `trusted_root.json` target is the loopback Sigstore's. Every
//! attack python-tuf's own client refuses, ours must refuse too, before any release check runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::support::Outcome;
use crate::support::sigstore::{GITHUB_ISSUER, WORKFLOW_IDENTITY};
use crate::support::tuf::TufRepo;

use super::{edit_json, keyless_release, read_json};

/// A repository whose `trusted_root.json` is the loopback Sigstore's.
fn repo() -> TufRepo {
    TufRepo::init(&keyless_release().server.trusted_root)
}

/// `xrelease verify` of the keyless release against `repo`, with `cache` as XDG_CACHE_HOME.
fn verify_with(repo: &TufRepo, cache: &Path, extra: &[&str]) -> Outcome {
    let anchor = repo.initial_root();
    let mut args = vec![
        "--tuf-url",
        &repo.url,
        "--tuf-root",
        anchor.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    verify_keyless_with(cache, &args)
}

/// `xrelease verify` of the keyless release under its identity, with `args` for the trust.
fn verify_keyless_with(cache: &Path, args: &[&str]) -> Outcome {
    let output = Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .arg("verify")
        .arg(&keyless_release().dist)
        .args(["--certificate-identity", WORKFLOW_IDENTITY])
        .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .unwrap();
    Outcome { output }
}

/// The TUF cache file of the repository at `url` under XDG_CACHE_HOME `cache`.
fn cache_file(cache: &Path, url: &str) -> PathBuf {
    let dir = url.replace(':', "%3A").replace('/', "%2F");
    cache.join("xrelease/tuf").join(dir).join("trusted.json")
}

/// The release verifies, so the trusted root was the loopback Sigstore's.
#[track_caller]
fn verifies(outcome: &Outcome) {
    outcome.success().stdout_has("checks passed");
    assert!(!outcome.stdout().contains("[FAIL]"), "{}", outcome.stdout());
}

/// Refused as untrusted metadata (exit 3) with `message`, and no release check ran.
#[track_caller]
fn refused(outcome: &Outcome, message: &str) {
    outcome
        .code(3)
        .stderr_has("the trusted root could not be verified over TUF")
        .stderr_has(message);
    assert!(!outcome.stdout().contains("[PASS]"), "{}", outcome.stdout());
}

#[test]
fn the_trusted_root_is_fetched_over_tuf_cached_and_used_offline() {
    let repo = repo();
    let cache = tempfile::tempdir().unwrap();
    verifies(&verify_with(&repo, cache.path(), &[]));
    let target = repo.current_target();
    let target_path = format!("/targets/{}", target.file_name().unwrap().to_str().unwrap());
    assert_eq!(
        repo.requests(),
        [
            "/2.root.json",
            "/3.root.json",
            "/timestamp.json",
            "/1.snapshot.json",
            "/1.targets.json",
            target_path.as_str()
        ],
        "the root chain from the anchor (v1), then each role once, then the target by its hash"
    );
    let cached = cache_file(cache.path(), &repo.url);
    let state = read_json(&cached);
    assert_eq!(
        STANDARD.decode(state["target"].as_str().unwrap()).unwrap(),
        std::fs::read(&keyless_release().server.trusted_root).unwrap()
    );
    assert_eq!(
        state["roots"].as_array().unwrap().len(),
        1,
        "root v2, after the anchor"
    );

    // Again: the metadata is refreshed, the unchanged target comes from the cache.
    verifies(&verify_with(&repo, cache.path(), &[]));
    assert_eq!(
        repo.requests()[6..],
        [
            "/3.root.json",
            "/timestamp.json",
            "/1.snapshot.json",
            "/1.targets.json"
        ],
        "the root walk starts at the cached v2"
    );

    // Offline: nothing is requested, the cache is re-verified and used.
    verifies(&verify_with(&repo, cache.path(), &["--offline"]));
    assert_eq!(repo.requests().len(), 10);

    // Offline with a cache that was tampered with fails closed.
    edit_json(&cached, |state| {
        let mut bytes = STANDARD.decode(state["target"].as_str().unwrap()).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        state["target"] = STANDARD.encode(bytes).into();
    });
    refused(
        &verify_with(&repo, cache.path(), &["--offline"]),
        "has sha256",
    );
}

#[test]
fn offline_without_a_cache_or_without_the_network_fails_closed() {
    let repo = repo();
    let cache = tempfile::tempdir().unwrap();
    verify_with(&repo, cache.path(), &["--offline"])
        .code(2)
        .stderr_has("no trusted root cached for http://127.0.0.1")
        .stderr_has("without `--offline`");
    assert!(repo.requests().is_empty());

    // A repository that does not answer: exit 2, naming the URL and the ways out.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let anchor = repo.initial_root();
    let anchor = anchor.to_str().unwrap();
    verify_keyless_with(
        cache.path(),
        &["--tuf-url", &dead_url, "--tuf-root", anchor],
    )
    .code(2)
    .stderr_has(&format!(
        "cannot reach the TUF repository: GET {dead_url}/2.root.json"
    ))
    .stderr_has("pass `--offline`");

    // The public-good repository is the default, and its anchor is built in.
    verify_keyless_with(cache.path(), &["--offline"])
        .code(2)
        .stderr_has("no trusted root cached for https://tuf-repo-cdn.sigstore.dev");
}

#[test]
fn offline_reports_expired_metadata_and_verifies_anyway() {
    let repo = repo();
    let cache = tempfile::tempdir().unwrap();
    verifies(&verify_with(&repo, cache.path(), &[]));
    // A genuinely signed timestamp that has expired, as a cache left for a while would hold.
    repo.mutate("expire", &["timestamp"]);
    let served = std::fs::read(repo.served("timestamp.json")).unwrap();
    edit_json(&cache_file(cache.path(), &repo.url), |state| {
        state["timestamp"] = STANDARD.encode(served).into();
    });
    let out = verify_with(&repo, cache.path(), &["--offline"]);
    verifies(&out);
    out.stderr_has("note: the cached timestamp.json of http://127.0.0.1")
        .stderr_has("expired at")
        .stderr_has("verifying with it anyway (--offline)");
    // Online, the same repository is refused: that timestamp is what it serves.
    refused(
        &verify_with(&repo, cache.path(), &[]),
        "timestamp.json expired at",
    );
}

#[test]
fn a_new_trusted_root_published_by_the_repository_is_taken() {
    let repo = repo();
    let cache = tempfile::tempdir().unwrap();
    verifies(&verify_with(&repo, cache.path(), &[]));
    // The repository now vouches for another Sigstore instance's root: our release no longer
    // chains to it, which shows the new target was fetched and used.
    repo.update_target(&keyless_release().server.other_trusted_root);
    let out = verify_with(&repo, cache.path(), &[]);
    out.code(3).stdout_has("[FAIL]");
    assert!(repo.requests().contains(&"/2.targets.json".to_owned()));
}

// ---- one attack per check, each refused -------------------------------------------------------

#[test]
fn tuf_expired_roles_are_refused() {
    for (role, message) in [
        ("timestamp", "/timestamp.json expired at"),
        ("snapshot", "/2.snapshot.json expired at"),
        ("targets", "/2.targets.json expired at"),
        ("root", "root.json expired at"),
    ] {
        let repo = repo();
        repo.mutate("expire", &[role]);
        let cache = tempfile::tempdir().unwrap();
        refused(&verify_with(&repo, cache.path(), &[]), message);
    }
}

#[test]
fn tuf_rollbacks_are_refused() {
    for (attack, message) in [
        (
            "rollback-timestamp",
            "/timestamp.json: version 1 is older than version 2",
        ),
        ("rollback-snapshot", "the snapshot version in http"),
    ] {
        let repo = repo();
        let cache = tempfile::tempdir().unwrap();
        repo.update_target(&keyless_release().server.trusted_root);
        verifies(&verify_with(&repo, cache.path(), &[]));
        repo.mutate(attack, &[]);
        let out = verify_with(&repo, cache.path(), &[]);
        refused(&out, message);
        out.stderr_has("a rollback attack");
    }
}

#[test]
fn tuf_signatures_below_threshold_are_refused() {
    for (attack, message) in [
        (
            "root-not-signed-by-previous",
            "/3.root.json (by the previous root's keys): 0 valid signature(s) from the root role's keys, 2 required",
        ),
        (
            "timestamp-wrong-key",
            "/timestamp.json: 0 valid signature(s) from the timestamp role's keys, 1 required",
        ),
        (
            "targets-below-threshold",
            "/2.targets.json: 1 valid signature(s) from the targets role's keys, 2 required",
        ),
    ] {
        let repo = repo();
        repo.mutate(attack, &[]);
        let cache = tempfile::tempdir().unwrap();
        refused(&verify_with(&repo, cache.path(), &[]), message);
    }
}

#[test]
fn tuf_an_edited_metadata_byte_breaks_its_signature() {
    let repo = repo();
    let timestamp = repo.served("timestamp.json");
    let text = std::fs::read_to_string(&timestamp).unwrap();
    // Push expiry out by a year: still valid JSON and a plausible document, but not the one
    // that was signed.
    let edited = text.replacen("\"expires\":\"20", "\"expires\":\"21", 1);
    assert_ne!(edited, text, "timestamp.json has an expires field");
    std::fs::write(&timestamp, edited).unwrap();
    let cache = tempfile::tempdir().unwrap();
    refused(
        &verify_with(&repo, cache.path(), &[]),
        "/timestamp.json: 0 valid signature(s) from the timestamp role's keys",
    );
}

#[test]
fn tuf_another_repositorys_anchor_is_refused() {
    let repo = repo();
    let other = self::repo();
    let cache = tempfile::tempdir().unwrap();
    let anchor = other.initial_root();
    let args = [
        "--tuf-url",
        &repo.url,
        "--tuf-root",
        anchor.to_str().unwrap(),
    ];
    refused(
        &verify_keyless_with(cache.path(), &args),
        "/2.root.json (by the previous root's keys): 0 valid signature(s)",
    );
}

#[test]
fn tuf_a_changed_target_or_snapshot_is_refused() {
    // Longer than listed: the download stops at the listed length.
    let repo = repo();
    repo.mutate("swap-target-bytes", &[]);
    let cache = tempfile::tempdir().unwrap();
    refused(
        &verify_with(&repo, cache.path(), &[]),
        ".trusted_root.json is larger than the",
    );

    // Same length, one bit different: only the hash can tell.
    let repo = self::repo();
    let target = repo.current_target();
    let mut bytes = std::fs::read(&target).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    std::fs::write(&target, bytes).unwrap();
    let cache = tempfile::tempdir().unwrap();
    refused(&verify_with(&repo, cache.path(), &[]), "has sha256");

    // A snapshot other than the one the timestamp vouches for.
    let repo = self::repo();
    repo.mutate("snapshot-hash-mismatch", &[]);
    let cache = tempfile::tempdir().unwrap();
    refused(
        &verify_with(&repo, cache.path(), &[]),
        "/2.snapshot.json has sha256",
    );
}

#[test]
fn tuf_mixed_versions_and_endless_data_are_refused() {
    // targets.json version 1 served where the snapshot lists version 2.
    let repo = repo();
    repo.update_target(&keyless_release().server.trusted_root);
    std::fs::copy(repo.served("1.targets.json"), repo.served("2.targets.json")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    refused(
        &verify_with(&repo, cache.path(), &[]),
        "/2.targets.json has version 1, but 2 was expected",
    );

    // A timestamp.json far larger than any real one.
    let repo = self::repo();
    let mut big = std::fs::read(repo.served("timestamp.json")).unwrap();
    big.resize(64 * 1024, b' ');
    std::fs::write(repo.served("timestamp.json"), big).unwrap();
    let cache = tempfile::tempdir().unwrap();
    refused(
        &verify_with(&repo, cache.path(), &[]),
        "is larger than the 16384 bytes allowed",
    );
}

#[test]
fn the_release_gate_gets_its_trusted_root_over_tuf() {
    let (fixture, outcome) = crate::support::basic_release();
    outcome.success();
    let release = keyless_release();
    let repo = repo();
    let dir = tempfile::tempdir().unwrap();
    let config = super::keyless_config(
        fixture,
        dir.path(),
        &release.server,
        Some((WORKFLOW_IDENTITY, GITHUB_ISSUER)),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let trusted_root_line = text
        .lines()
        .find(|l| l.starts_with("trusted-root"))
        .unwrap()
        .to_owned();
    let tuf = format!(
        "tuf-url = \"{}\"\ntuf-root = \"{}\"",
        repo.url,
        repo.initial_root().display()
    );
    std::fs::write(&config, text.replace(&trusted_root_line, &tuf)).unwrap();
    let cache = tempfile::tempdir().unwrap();
    fixture
        .xrelease(&[
            "release",
            "v1.0.0",
            "--dry-run",
            "--real-signing",
            "--quiet",
            "--dist",
            "dist/keyless-tuf",
        ])
        .env("SIGSTORE_ID_TOKEN", &release.token)
        .env("XDG_CACHE_HOME", cache.path().to_str().unwrap())
        .run_with_config(&config)
        .success();
    assert!(
        repo.requests().contains(&"/timestamp.json".to_owned()),
        "{:?}",
        repo.requests()
    );
    // And `[sign]` cannot name both sources.
    let both = format!("{}\n", std::fs::read_to_string(&config).unwrap())
        .replace(&tuf, &format!("{tuf}\n{trusted_root_line}"));
    std::fs::write(&config, both).unwrap();
    fixture
        .xrelease(&["release", "v1.0.0", "--dry-run", "--real-signing"])
        .env("SIGSTORE_ID_TOKEN", &release.token)
        .run_with_config(&config)
        .code(2)
        .stderr_has("set `trusted-root`, or `tuf-url`/`tuf-root`, not both");
}

#[test]
fn an_interrupted_update_leaves_the_last_complete_state_for_offline_use() {
    let repo = repo();
    let cache = tempfile::tempdir().unwrap();
    verifies(&verify_with(&repo, cache.path(), &[]));
    // The repository publishes a new trusted root, but its download fails (404).
    repo.update_target(&keyless_release().server.other_trusted_root);
    std::fs::remove_file(repo.current_target()).unwrap();
    verify_with(&repo, cache.path(), &[])
        .code(2)
        .stderr_has("trusted_root.json answered HTTP 404");
    // Offline still has the whole previous state, which verifies this release.
    verifies(&verify_with(&repo, cache.path(), &["--offline"]));
}

#[test]
fn a_cache_that_does_not_chain_from_the_anchor_is_never_trusted() {
    // A cache written under repository A's anchor, found where repository B's would be.
    let a = repo();
    let b = self::repo();
    let cache = tempfile::tempdir().unwrap();
    verifies(&verify_with(&a, cache.path(), &[]));
    let planted = cache_file(cache.path(), &b.url);
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::copy(cache_file(cache.path(), &a.url), &planted).unwrap();
    // Offline it is refused: A's root v2 is not signed by B's root keys.
    refused(
        &verify_with(&b, cache.path(), &["--offline"]),
        "/2.root.json (by the previous root's keys): 0 valid signature(s)",
    );
    // Online it is ignored: B's own chain is walked from B's anchor, and the cache replaced.
    verifies(&verify_with(&b, cache.path(), &[]));
    assert!(b.requests().contains(&"/2.root.json".to_owned()));
    verifies(&verify_with(&b, cache.path(), &["--offline"]));
}
