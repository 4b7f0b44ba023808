//! Keyless releases whose services come from a signing config v0.2 that lists a timestamp
//! authority: every bundle carries an RFC 3161 timestamp, which xrelease, sigstore-python and
//! sigstore-js accept, and which fails verification when it is damaged or belongs elsewhere.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::{BINARIES, bundles, edit_json, failures, keyless_line, read_json, verify_keyless};
use crate::support::sigstore::{
    GITHUB_ISSUER, Sigstore, WORKFLOW_IDENTITY, github_claims, reference_verify,
    sigstore_python_verify, unsigned_jwt,
};
use crate::support::{Outcome, basic_release, copy_tree};

/// What sigstore-rust says when a timestamp does not verify.
const BAD_TIMESTAMP: &str = "timestamp";

struct Timestamped {
    server: Sigstore,
    _config: tempfile::TempDir,
    outcome: Outcome,
    dist: PathBuf,
}

/// A keyless rehearsal of the basic fixture with `[sign] signing-config` and no URL keys: the
/// services (Fulcio, Rekor v1, the TSA) all come from the config the server wrote.
fn timestamped_release() -> &'static Timestamped {
    static RELEASE: OnceLock<Timestamped> = OnceLock::new();
    let release = RELEASE.get_or_init(|| {
        let (fixture, outcome) = basic_release();
        outcome.success();
        let server = Sigstore::start();
        let config_dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[release]\nexclude-bins = [\"app-secret\"]\n\n[sign]\nmode = \"keyless\"\n\
             signing-config = \"{}\"\ntrusted-root = \"{}\"\nidentity = \"{WORKFLOW_IDENTITY}\"\n\
             issuer = \"{GITHUB_ISSUER}\"\n\n[github]\nrepository = \"fixture/basic\"\n",
            server.signing_config.display(),
            server.trusted_root.display()
        );
        let config = fixture.config_outside(config_dir.path(), &text);
        let outcome = fixture
            .xrelease(&[
                "release",
                "v1.0.0",
                "--dry-run",
                "--real-signing",
                "--quiet",
                "--dist",
                "dist/timestamped",
            ])
            .env("SIGSTORE_ID_TOKEN", &unsigned_jwt(&github_claims()))
            .run_with_config(&config);
        Timestamped {
            server,
            _config: config_dir,
            outcome,
            dist: fixture.path("dist/timestamped"),
        }
    });
    release.outcome.success();
    release
}

fn timestamps(bundle: &Value) -> &Vec<Value> {
    bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        .as_array()
        .expect("rfc3161Timestamps")
}

fn copy() -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("release");
    copy_tree(&timestamped_release().dist, &dir);
    (scratch, dir)
}

#[track_caller]
fn assert_refused(dir: &Path, bundle: &str, why: &str) {
    let release = timestamped_release();
    let (code, report) = verify_keyless(
        dir,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
        &release.server.trusted_root,
    );
    assert_eq!(code, 3, "{:#?}", failures(&report));
    let line = keyless_line(&report, bundle);
    assert!(
        matches!(&line, Err(detail) if detail.to_lowercase().contains(why)),
        "{bundle}: expected a failure saying `{why}`, got {line:?}"
    );
}

#[test]
fn every_bundle_carries_one_timestamp_from_the_configured_tsa_and_verifies() {
    let release = timestamped_release();
    for name in bundles() {
        let bundle = read_json(&release.dist.join(&name));
        assert_eq!(timestamps(&bundle).len(), 1, "{name}");
        let entries = bundle["verificationMaterial"]["tlogEntries"]
            .as_array()
            .unwrap();
        assert_eq!(entries.len(), 1, "{name}: one Rekor entry");
        assert_eq!(
            entries[0]["kindVersion"]["version"], "0.0.1",
            "{name}: Rekor v1 although the config lists a v2 log too"
        );
    }
    let (code, report) = verify_keyless(
        &release.dist,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
        &release.server.trusted_root,
    );
    assert_eq!(code, 0, "{:#?}", failures(&report));
    // The rehearsal says which services it used: those of the signing config.
    let stderr = release.outcome.stderr() + &release.outcome.stdout();
    assert!(
        !stderr.contains("fulcio.sigstore.dev"),
        "the public-good defaults were not used: {stderr}"
    );
}

#[test]
fn sigstore_python_and_sigstore_js_accept_the_timestamped_bundles() {
    let release = timestamped_release();
    let (dist, root) = (&release.dist, &release.server.trusted_root);
    let binary = dist.join(BINARIES[1]);
    for (bundle, artifact) in [
        ("SHA256SUMS.sigstore.json", dist.join("SHA256SUMS")),
        ("provenance.sigstore.json", binary.clone()),
    ] {
        let ok = sigstore_python_verify(
            &dist.join(bundle),
            &artifact,
            root,
            WORKFLOW_IDENTITY,
            GITHUB_ISSUER,
        );
        assert!(ok.is_ok(), "sigstore-python, {bundle}: {ok:?}");
    }
    let ok = reference_verify(
        &dist.join("SHA256SUMS.sigstore.json"),
        Some(&dist.join("SHA256SUMS")),
        root,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
    );
    assert!(ok.is_ok(), "sigstore-js: {ok:?}");
    let ok = reference_verify(
        &dist.join("provenance.sigstore.json"),
        None,
        root,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
    );
    assert!(ok.is_ok(), "sigstore-js: {ok:?}");
}

#[test]
fn tamper_a_damaged_timestamp() {
    let (_s, dir) = copy();
    edit_json(&dir.join("SHA256SUMS.sigstore.json"), |b| {
        let slot = &mut b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
            [0]["signedTimestamp"];
        let mut der = STANDARD.decode(slot.as_str().unwrap()).unwrap();
        // A byte of the signature at the end of the SignedData.
        let last = der.len() - 3;
        der[last] ^= 0x01;
        *slot = STANDARD.encode(der).into();
    });
    assert_refused(&dir, "SHA256SUMS.sigstore.json", BAD_TIMESTAMP);
}

#[test]
fn tamper_a_genuine_timestamp_over_another_signature() {
    // Really from the trusted TSA, but for the provenance's signature, not this one.
    let (_s, dir) = copy();
    let other = read_json(&dir.join("provenance.sigstore.json"));
    edit_json(&dir.join("SHA256SUMS.sigstore.json"), |b| {
        b["verificationMaterial"]["timestampVerificationData"] =
            other["verificationMaterial"]["timestampVerificationData"].clone();
    });
    assert_refused(&dir, "SHA256SUMS.sigstore.json", BAD_TIMESTAMP);
}

#[test]
fn tamper_a_timestamp_from_an_untrusted_tsa() {
    // The verifier's root is the server's own, except that it trusts another TSA (same names,
    // other keys): everything else holds, the timestamps no longer chain.
    let release = timestamped_release();
    let scratch = tempfile::tempdir().unwrap();
    let mut root = read_json(&release.server.trusted_root);
    root["timestampAuthorities"] =
        read_json(&release.server.other_trusted_root)["timestampAuthorities"].clone();
    let root_path = scratch.path().join("trusted_root.json");
    std::fs::write(&root_path, root.to_string()).unwrap();
    let (code, report) =
        verify_keyless(&release.dist, WORKFLOW_IDENTITY, GITHUB_ISSUER, &root_path);
    assert_eq!(code, 3, "{:#?}", failures(&report));
    let line = keyless_line(&report, "SHA256SUMS.sigstore.json");
    assert!(
        matches!(&line, Err(detail) if detail.to_lowercase().contains(BAD_TIMESTAMP)),
        "{line:?}"
    );
}

// ---- Rekor v2 -------------------------------------------------------------------------------

/// A keyless rehearsal with `rekor-version = 2`: the config's v2 log (Ed25519 checkpoints,
/// hashedrekord 0.0.2 for blobs and for DSSE envelopes), times from the TSA only.
fn rekor_v2_release() -> &'static Timestamped {
    static RELEASE: OnceLock<Timestamped> = OnceLock::new();
    let release = RELEASE.get_or_init(|| {
        let (fixture, outcome) = basic_release();
        outcome.success();
        let server = Sigstore::start();
        let config_dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[release]\nexclude-bins = [\"app-secret\"]\n\n[sign]\nmode = \"keyless\"\n\
             signing-config = \"{}\"\nrekor-version = 2\ntrusted-root = \"{}\"\n\
             identity = \"{WORKFLOW_IDENTITY}\"\nissuer = \"{GITHUB_ISSUER}\"\n\n\
             [github]\nrepository = \"fixture/basic\"\n",
            server.signing_config.display(),
            server.trusted_root.display()
        );
        let config = fixture.config_outside(config_dir.path(), &text);
        let outcome = fixture
            .xrelease(&[
                "release",
                "v1.0.0",
                "--dry-run",
                "--real-signing",
                "--quiet",
                "--dist",
                "dist/rekor-v2",
            ])
            .env("SIGSTORE_ID_TOKEN", &unsigned_jwt(&github_claims()))
            .run_with_config(&config);
        Timestamped {
            server,
            _config: config_dir,
            outcome,
            dist: fixture.path("dist/rekor-v2"),
        }
    });
    release.outcome.success();
    release
}

#[test]
fn a_rekor_v2_release_verifies() {
    let release = rekor_v2_release();
    for name in bundles() {
        let bundle = read_json(&release.dist.join(&name));
        let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
        assert_eq!(entry["kindVersion"]["kind"], "hashedrekord", "{name}");
        assert_eq!(entry["kindVersion"]["version"], "0.0.2", "{name}");
        assert!(entry.get("inclusionPromise").is_none(), "{name}");
        assert_eq!(timestamps(&bundle).len(), 1, "{name}");
    }
    let (code, report) = verify_keyless(
        &release.dist,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
        &release.server.trusted_root,
    );
    assert_eq!(code, 0, "{:#?}", failures(&report));
    let (dist, root) = (&release.dist, &release.server.trusted_root);
    let ok = sigstore_python_verify(
        &dist.join("SHA256SUMS.sigstore.json"),
        &dist.join("SHA256SUMS"),
        root,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
    );
    assert!(ok.is_ok(), "sigstore-python: {ok:?}");
    let ok = reference_verify(
        &dist.join("SHA256SUMS.sigstore.json"),
        Some(&dist.join("SHA256SUMS")),
        root,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
    );
    assert!(ok.is_ok(), "sigstore-js: {ok:?}");
}

#[test]
fn tamper_a_rekor_v2_bundle_without_its_timestamp() {
    // Rekor v2 entries carry no signed time: without the TSA's there is nothing to check the
    // certificate's validity against.
    let release = rekor_v2_release();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("release");
    copy_tree(&release.dist, &dir);
    edit_json(&dir.join("SHA256SUMS.sigstore.json"), |b| {
        b["verificationMaterial"]
            .as_object_mut()
            .unwrap()
            .remove("timestampVerificationData");
    });
    let (code, report) = verify_keyless(
        &dir,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
        &release.server.trusted_root,
    );
    assert_eq!(code, 3, "{:#?}", failures(&report));
    assert!(keyless_line(&report, "SHA256SUMS.sigstore.json").is_err());
}

#[test]
fn tamper_a_rekor_v2_checkpoint_signed_by_another_key() {
    // The v2 log key of another root (same names and URLs): the checkpoint no longer verifies.
    let release = rekor_v2_release();
    let scratch = tempfile::tempdir().unwrap();
    let mut root = read_json(&release.server.trusted_root);
    let other = read_json(&release.server.other_trusted_root);
    root["tlogs"][1] = other["tlogs"][1].clone();
    let root_path = scratch.path().join("trusted_root.json");
    std::fs::write(&root_path, root.to_string()).unwrap();
    let (code, report) =
        verify_keyless(&release.dist, WORKFLOW_IDENTITY, GITHUB_ISSUER, &root_path);
    assert_eq!(code, 3, "{:#?}", failures(&report));
    let line = keyless_line(&report, "SHA256SUMS.sigstore.json");
    assert!(
        matches!(&line, Err(detail) if detail.contains("checkpoint")),
        "{line:?}"
    );
}
