//! `xrelease verify` without `--trusted-root`: the trusted root comes from a TUF repository.
//! The repository is made by python-tuf, the reference implementation (tests/support/tuf), and
//! served from 127.0.0.1; its `trusted_root.json` target is the loopback Sigstore's, and its
//! `signing_config.v0.2.json` names the loopback Fulcio and Rekor. Every attack python-tuf's own
//! client refuses, xrelease (through sigstore-tuf) must refuse too, before any release check runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use xrelease::signing::keyless::{KeylessError, TrustSource};

use crate::support::Outcome;
use crate::support::sigstore::{GITHUB_ISSUER, WORKFLOW_IDENTITY};
use crate::support::tuf::TufRepo;

use super::{edit_json, keyless_release};

const SIGNING_CONFIG: &str = "signing_config.v0.2.json";

/// A repository whose `trusted_root.json` is the loopback Sigstore's, with a signing config.
fn repo() -> TufRepo {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), signing_config("loopback")).unwrap();
    TufRepo::init(&keyless_release().server.trusted_root, Some(config.path()))
}

/// A signing config v0.2 naming the loopback Fulcio and Rekor (`operator` tells versions apart).
fn signing_config(operator: &str) -> String {
    let server = &keyless_release().server;
    let service = |url: &str| {
        serde_json::json!([{
            "url": url,
            "majorApiVersion": 1,
            "validFor": {"start": "2020-01-01T00:00:00Z"},
            "operator": operator,
        }])
    };
    serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
        "caUrls": service(&server.fulcio_url),
        "oidcUrls": [],
        "rekorTlogUrls": service(&server.rekor_url),
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaUrls": [],
        "tsaConfig": {"selector": "ANY"},
    })
    .to_string()
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

/// The TUF cache directory of the repository at `url` under XDG_CACHE_HOME `cache`.
fn cache_dir(cache: &Path, url: &str) -> PathBuf {
    let dir = url.replace(':', "%3A").replace('/', "%2F");
    cache.join("xrelease/tuf").join(dir)
}

/// `TrustSource` of the library for `repo`, with `cache` as XDG_CACHE_HOME.
fn library_source(repo: &TufRepo, offline: bool) -> TrustSource {
    TrustSource::new(
        None,
        Some(repo.url.clone()),
        Some(repo.initial_root()),
        offline,
    )
}

/// The environment the library reads: only XDG_CACHE_HOME.
fn cache_env(cache: &Path) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| (name == "XDG_CACHE_HOME").then(|| cache.display().to_string())
}

/// A TUF failure the CLI would report as untrusted (exit 3), with its message.
#[track_caller]
fn untrusted(err: KeylessError) -> String {
    match &err {
        KeylessError::Tuf(tuf) => assert!(tuf.is_untrusted(), "{err}"),
        other => panic!("not a TUF error: {other}"),
    }
    err.to_string()
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
    let cached = cache_dir(cache.path(), &repo.url);
    let cached_target = cached.join("targets/trusted_root.json");
    assert_eq!(
        std::fs::read(&cached_target).unwrap(),
        std::fs::read(&keyless_release().server.trusted_root).unwrap()
    );
    assert_eq!(
        std::fs::read(cached.join("root.json")).unwrap(),
        std::fs::read(repo.served("2.root.json")).unwrap(),
        "root v2, after the anchor"
    );

    // Again: the root walk starts at the cached v2; the timestamp has not changed, so the
    // verified snapshot, targets and target in the cache are used.
    verifies(&verify_with(&repo, cache.path(), &[]));
    assert_eq!(repo.requests()[6..], ["/3.root.json", "/timestamp.json"]);

    // Offline: nothing is requested, the cache is re-verified and used.
    verifies(&verify_with(&repo, cache.path(), &["--offline"]));
    assert_eq!(repo.requests().len(), 8);

    // Offline with a cached target that was tampered with fails closed.
    let original = std::fs::read(&cached_target).unwrap();
    let mut bytes = original.clone();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    std::fs::write(&cached_target, bytes).unwrap();
    refused(
        &verify_with(&repo, cache.path(), &["--offline"]),
        "trusted_root.json: sha256 mismatch",
    );
    std::fs::write(&cached_target, original).unwrap();
    verifies(&verify_with(&repo, cache.path(), &["--offline"]));

    // And one whose cached timestamp was edited: its signature no longer verifies.
    edit_json(&cached.join("timestamp.json"), |ts| {
        ts["signed"]["version"] = 7.into();
    });
    refused(
        &verify_with(&repo, cache.path(), &["--offline"]),
        "signature threshold not met for role timestamp: 0/1",
    );
    assert_eq!(
        repo.requests().len(),
        8,
        "offline never touches the network"
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
fn offline_refuses_expired_metadata_naming_the_expiry_and_the_fixes() {
    let repo = repo();
    let cache = tempfile::tempdir().unwrap();
    verifies(&verify_with(&repo, cache.path(), &[]));
    // A genuinely signed timestamp that has expired, as a cache left for a while would hold.
    repo.mutate("expire", &["timestamp"]);
    let served = repo.served("timestamp.json");
    let expires = super::read_json(&served)["signed"]["expires"]
        .as_str()
        .unwrap()
        .to_owned();
    let cached = cache_dir(cache.path(), &repo.url).join("timestamp.json");
    std::fs::copy(&served, &cached).unwrap();
    let out = verify_with(&repo, cache.path(), &["--offline"]);
    refused(
        &out,
        &format!(
            "the cached timestamp metadata of {} expired at {expires}",
            repo.url
        ),
    );
    out.stderr_has("Run once without `--offline`")
        .stderr_has("`--trusted-root FILE`");
    // Online, the same repository is refused: that timestamp is what it serves.
    refused(
        &verify_with(&repo, cache.path(), &[]),
        "timestamp metadata expired at",
    );
    // Once the repository is current again, going online refreshes the cache for offline use.
    repo.update_target(&keyless_release().server.trusted_root);
    verifies(&verify_with(&repo, cache.path(), &[]));
    verifies(&verify_with(&repo, cache.path(), &["--offline"]));
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
        ("timestamp", "timestamp metadata expired at"),
        ("snapshot", "snapshot metadata expired at"),
        ("targets", "targets metadata expired at"),
        ("root", "root metadata expired at"),
    ] {
        let repo = repo();
        repo.mutate("expire", &[role]);
        let cache = tempfile::tempdir().unwrap();
        let out = verify_with(&repo, cache.path(), &[]);
        refused(&out, message);
        out.stderr_has("a freeze attack");
    }
}

#[test]
fn tuf_rollbacks_are_refused() {
    for (attack, message) in [
        (
            "rollback-timestamp",
            "rollback detected for timestamp: trusted version 2 > new version 1",
        ),
        (
            "rollback-snapshot",
            "rollback detected for snapshot (via timestamp): trusted version 2 > new version 1",
        ),
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
        // Root v3 is signed by its own (rogue) keys only: 0 of the 2 that root v2 requires.
        (
            "root-not-signed-by-previous",
            "signature threshold not met for role root: 0/2 valid signatures",
        ),
        (
            "timestamp-wrong-key",
            "signature threshold not met for role timestamp: 0/1 valid signatures",
        ),
        (
            "targets-below-threshold",
            "signature threshold not met for role targets: 1/2 valid signatures",
        ),
    ] {
        let repo = repo();
        repo.mutate(attack, &[]);
        let cache = tempfile::tempdir().unwrap();
        let out = verify_with(&repo, cache.path(), &[]);
        refused(&out, message);
        out.stderr_has("the metadata is forged or corrupted");
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
        "signature threshold not met for role timestamp: 0/1 valid signatures",
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
        "signature threshold not met for role root: 0/2 valid signatures",
    );
    assert_eq!(repo.requests(), ["/2.root.json"]);
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
    refused(
        &verify_with(&repo, cache.path(), &[]),
        "trusted_root.json: sha256 mismatch",
    );

    // A snapshot other than the one the timestamp vouches for.
    let repo = self::repo();
    repo.mutate("snapshot-hash-mismatch", &[]);
    let cache = tempfile::tempdir().unwrap();
    refused(
        &verify_with(&repo, cache.path(), &[]),
        "snapshot.json: sha256 mismatch",
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
        "targets.json version 1 does not match snapshot pin 2",
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
    let cached = cache_dir(cache.path(), &repo.url);
    let before = std::fs::read_to_string(cached.join("timestamp.json")).unwrap();
    // The repository publishes a new trusted root, but its download fails (404).
    repo.update_target(&keyless_release().server.other_trusted_root);
    std::fs::remove_file(repo.current_target()).unwrap();
    verify_with(&repo, cache.path(), &[])
        .code(2)
        .stderr_has(&format!("the TUF repository at {} is incomplete", repo.url))
        .stderr_has(".trusted_root.json not found");
    // The new timestamp, snapshot and targets verified, but nothing was cached: offline still
    // has the whole previous state, which verifies this release.
    assert_eq!(
        std::fs::read_to_string(cached.join("timestamp.json")).unwrap(),
        before
    );
    verifies(&verify_with(&repo, cache.path(), &["--offline"]));
}

#[test]
fn a_cache_that_does_not_chain_from_the_anchor_is_never_trusted() {
    // A cache written under repository A's anchor, found where repository B's would be.
    let a = repo();
    let b = self::repo();
    let cache = tempfile::tempdir().unwrap();
    verifies(&verify_with(&a, cache.path(), &[]));
    crate::support::copy_tree(
        &cache_dir(cache.path(), &a.url),
        &cache_dir(cache.path(), &b.url),
    );
    // Offline it is refused: A's root v2 is not signed by B's root keys, so B's root v1
    // stays the trusted one, and A's timestamp is not signed by its keys.
    refused(
        &verify_with(&b, cache.path(), &["--offline"]),
        "signature threshold not met for role timestamp: 0/1 valid signatures",
    );
    // Online it is ignored: B's own chain is walked from B's anchor, and the cache replaced.
    verifies(&verify_with(&b, cache.path(), &[]));
    assert!(b.requests().contains(&"/2.root.json".to_owned()));
    verifies(&verify_with(&b, cache.path(), &["--offline"]));
}

// ---- the signing config: the second target, verified the same way ----------------------------

#[test]
fn the_signing_config_comes_verified_from_the_same_repository() {
    let repo = repo();
    let cache = tempfile::tempdir().unwrap();
    let env = cache_env(cache.path());
    let online = library_source(&repo, false);
    let config = online.resolve_signing_config_json(&env).unwrap().unwrap();
    assert_eq!(config.text, signing_config("loopback"));
    assert_eq!(
        config.source,
        format!("{}/targets/{SIGNING_CONFIG}", repo.url)
    );
    let listed = repo.current_named(SIGNING_CONFIG);
    assert_eq!(
        repo.requests().last().unwrap(),
        &format!("/targets/{}", listed.file_name().unwrap().to_str().unwrap()),
        "fetched by its hash, as the trusted root is"
    );
    // Both targets are cached and re-verified offline.
    let root = online.resolve_json(&env).unwrap();
    assert_eq!(
        root.text,
        std::fs::read_to_string(&keyless_release().server.trusted_root).unwrap()
    );
    let requests = repo.requests().len();
    let offline = library_source(&repo, true);
    let cached = offline.resolve_signing_config_json(&env).unwrap().unwrap();
    assert_eq!(cached.text, config.text);
    assert_eq!(repo.requests().len(), requests);

    // A new version published by the repository is taken.
    let next = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(next.path(), signing_config("next")).unwrap();
    repo.update_named(SIGNING_CONFIG, next.path());
    let config = online.resolve_signing_config_json(&env).unwrap().unwrap();
    assert_eq!(config.text, signing_config("next"));

    // Altered bytes are refused: one bit (the hash), more bytes than listed (the length).
    let served = repo.current_named(SIGNING_CONFIG);
    let original = std::fs::read(&served).unwrap();
    let mut flipped = original.clone();
    flipped[10] ^= 0x01;
    std::fs::write(&served, flipped).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let err = online
        .resolve_signing_config_json(&cache_env(fresh.path()))
        .unwrap_err();
    assert!(
        untrusted(err).contains("signing_config.v0.2.json: sha256 mismatch"),
        "names the target and the check"
    );
    std::fs::write(&served, &original).unwrap();
    repo.mutate("swap-target-bytes", &["--name", SIGNING_CONFIG]);
    let fresh = tempfile::tempdir().unwrap();
    let err = online
        .resolve_signing_config_json(&cache_env(fresh.path()))
        .unwrap_err();
    assert!(untrusted(err).contains(".signing_config.v0.2.json is larger than the"));
    // The trusted root of that repository is still fine: each target stands on its own.
    online.resolve_json(&cache_env(fresh.path())).unwrap();
}

#[test]
fn a_repository_without_a_signing_config_has_none_and_still_a_trusted_root() {
    let repo = TufRepo::init(&keyless_release().server.trusted_root, None);
    let cache = tempfile::tempdir().unwrap();
    let env = cache_env(cache.path());
    let source = library_source(&repo, false);
    assert!(source.resolve_signing_config_json(&env).unwrap().is_none());
    source.resolve_json(&env).unwrap();
    assert!(
        library_source(&repo, true)
            .resolve_signing_config_json(&env)
            .unwrap()
            .is_none()
    );
}
