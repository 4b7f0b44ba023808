//! The keyless library against a loopback Sigstore (@sigstore/mock): signing, offline
//! verification, and one tamper per check on bundles built in memory.

use std::sync::OnceLock;

use crate::support::sigstore::{
    GITHUB_ISSUER, Options, Sigstore, WORKFLOW_IDENTITY, env_from, github_claims, reference_verify,
    sigstore_python_verify, unsigned_jwt,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use xrelease::signing::bundle::{Base64Bytes, Bundle, Content};
use xrelease::signing::certificate::Cert;
use xrelease::signing::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use xrelease::signing::ec::EcKey;
use xrelease::signing::key::PrivateKey;
use xrelease::signing::keyless::{
    Artifact, Check, CheckResult, ExpectedIdentity, KeylessConfig, KeylessError, KeylessSigner,
    TrustSource, all_passed, verify_bundle, verify_bundle_json,
};
use xrelease::signing::oidc::{IdToken, OidcError};
use xrelease::signing::trusted_root::TrustedRoot;

const ARTIFACT: &[u8] = b"0123abcd  app-1.0.0-linux-amd64\n";
const OTHER_ARTIFACT: &[u8] = b"4567ef01  app-1.0.0-linux-arm64\n";
const STATEMENT: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#;

/// One server and one signer for the whole file: what a release does (one key, many artifacts).
struct Signed {
    server: Sigstore,
    root: TrustedRoot,
    blob: Bundle,
    other_blob: Bundle,
    dsse: Bundle,
}

fn config(server: &Sigstore) -> KeylessConfig {
    KeylessConfig {
        fulcio_url: server.fulcio_url.clone(),
        rekor_url: server.rekor_url.clone(),
        trust: TrustSource::File(server.trusted_root.clone()),
        identity: None,
        issuer: None,
    }
}

fn signed() -> &'static Signed {
    static SIGNED: OnceLock<Signed> = OnceLock::new();
    SIGNED.get_or_init(|| {
        let server = Sigstore::start();
        // The token comes from the (fake) GitHub Actions token endpoint, as in CI.
        let signer = KeylessSigner::from_env(&config(&server), &env_from(server.actions_env()))
            .expect("signer");
        let blob = signer.sign_blob(ARTIFACT).expect("sign blob");
        let other_blob = signer.sign_blob(OTHER_ARTIFACT).expect("sign other blob");
        let dsse = signer
            .sign_dsse(IN_TOTO_PAYLOAD_TYPE, STATEMENT)
            .expect("sign dsse");
        let root = TrustedRoot::read(&server.trusted_root).expect("trusted root");
        Signed {
            server,
            root,
            blob,
            other_blob,
            dsse,
        }
    })
}

fn policy() -> ExpectedIdentity {
    ExpectedIdentity {
        identity: WORKFLOW_IDENTITY.to_owned(),
        issuer: GITHUB_ISSUER.to_owned(),
    }
}

fn envelope(bundle: &Bundle) -> &Envelope {
    match &bundle.content {
        Content::DsseEnvelope(envelope) => envelope,
        Content::MessageSignature(_) => panic!("not a DSSE bundle"),
    }
}

fn failed(results: &[CheckResult]) -> Vec<Check> {
    assert_eq!(results.len(), Check::ALL.len(), "every check is reported");
    results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.check)
        .collect()
}

fn verify_blob(
    bundle: &Bundle,
    artifact: &[u8],
    root: &TrustedRoot,
    policy: &ExpectedIdentity,
) -> Vec<CheckResult> {
    let results = verify_bundle(bundle, Artifact::Blob(artifact), root, policy);
    for result in &results {
        eprintln!("{result}");
    }
    results
}

fn entry_mut(bundle: &mut Bundle) -> &mut xrelease::signing::bundle::TransparencyLogEntry {
    &mut bundle.verification_material.tlog_entries[0]
}

// ---- end to end ---------------------------------------------------------------------------

#[test]
fn blob_and_dsse_signed_keylessly_verify_offline() {
    let s = signed();
    let results = verify_blob(&s.blob, ARTIFACT, &s.root, &policy());
    assert!(all_passed(&results), "{results:#?}");
    let results = verify_bundle(
        &s.dsse,
        Artifact::Envelope(envelope(&s.dsse)),
        &s.root,
        &policy(),
    );
    assert!(all_passed(&results), "{results:#?}");
    assert!(results.iter().any(|r| {
        r.to_string()
            .starts_with("[PASS] signature covers the artifact: DSSE")
    }));
}

#[test]
fn bundles_have_the_v03_keyless_shape_and_survive_json() {
    let s = signed();
    for bundle in [&s.blob, &s.dsse] {
        let json = bundle.to_json().expect("json");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value["mediaType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
        let material = &value["verificationMaterial"];
        assert!(material["certificate"]["rawBytes"].is_string());
        assert!(material.get("x509CertificateChain").is_none());
        let entries = material["tlogEntries"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        let entry = &entries[0];
        for int64 in [
            &entry["logIndex"],
            &entry["integratedTime"],
            &entry["inclusionProof"]["logIndex"],
            &entry["inclusionProof"]["treeSize"],
        ] {
            assert!(
                int64.as_str().is_some_and(|s| s.parse::<i64>().is_ok()),
                "int64 as string: {int64}"
            );
        }
        assert!(entry["logId"]["keyId"].is_string());
        assert!(entry["inclusionPromise"]["signedEntryTimestamp"].is_string());
        assert!(
            !entry["inclusionProof"]["hashes"]
                .as_array()
                .unwrap()
                .is_empty(),
            "a real audit path"
        );
        assert!(
            entry["inclusionProof"]["checkpoint"]["envelope"]
                .as_str()
                .unwrap()
                .contains("\n\n\u{2014} ")
        );
        assert!(entry["canonicalizedBody"].is_string());
        assert_eq!(&Bundle::from_json(&json).expect("parse back"), bundle);
    }
    let kinds: Vec<_> = [&s.blob, &s.dsse]
        .iter()
        .map(|b| {
            b.verification_material.tlog_entries[0]
                .kind_version
                .kind
                .clone()
        })
        .collect();
    assert_eq!(kinds, ["hashedrekord", "dsse"]);
    // Rekor's dsse body is the canonical one, not the proposed envelope.
    let body: serde_json::Value = serde_json::from_slice(
        &s.dsse.verification_material.tlog_entries[0]
            .canonicalized_body
            .0,
    )
    .unwrap();
    assert!(
        body["spec"]["payloadHash"]["value"].is_string()
            && body["spec"].get("proposedContent").is_none()
    );
}

#[test]
fn an_explicit_sigstore_id_token_wins_over_github_actions() {
    let s = signed();
    let vars = vec![
        (
            "SIGSTORE_ID_TOKEN".to_owned(),
            unsigned_jwt(&github_claims()),
        ),
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL".to_owned(),
            "http://127.0.0.1:9/unreachable".to_owned(),
        ),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN".to_owned(), "x".to_owned()),
    ];
    let signer = KeylessSigner::from_env(&config(&s.server), &env_from(vars)).expect("signer");
    assert!(
        signer
            .certificate_pem()
            .starts_with("-----BEGIN CERTIFICATE-----\n")
    );
    let bundle = signer.sign_blob(b"x").expect("sign");
    assert!(all_passed(&verify_blob(&bundle, b"x", &s.root, &policy())));
}

#[test]
fn without_a_token_source_signing_stops_with_the_fix() {
    let err = KeylessSigner::from_env(&KeylessConfig::default(), &|_| None).unwrap_err();
    assert!(
        matches!(err, KeylessError::Oidc(OidcError::NoTokenSource)),
        "{err:?}"
    );
    assert!(err.to_string().contains("SIGSTORE_ID_TOKEN"));
}

#[test]
fn a_refused_token_is_never_echoed() {
    let s = signed();
    let mut claims = github_claims();
    claims["aud"] = "not-sigstore".into();
    let raw = unsigned_jwt(&claims);
    let token = IdToken::parse(raw.clone(), "SIGSTORE_ID_TOKEN").unwrap();
    let err = KeylessSigner::new(&config(&s.server), &token).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("401") && text.contains("audience"), "{text}");
    let payload = raw.split('.').nth(1).unwrap();
    assert!(!text.contains(&raw) && !text.contains(payload), "{text}");
}

#[test]
fn sigstore_js_accepts_our_bundles() {
    let s = signed();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let artifact = write("SHA256SUMS", ARTIFACT);
    let blob = write(
        "SHA256SUMS.sigstore.json",
        s.blob.to_json().unwrap().as_bytes(),
    );
    let dsse = write(
        "provenance.sigstore.json",
        s.dsse.to_json().unwrap().as_bytes(),
    );
    let root = &s.server.trusted_root;
    let ok = reference_verify(
        &blob,
        Some(&artifact),
        root,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
    );
    assert!(
        ok.as_ref().is_ok_and(|out| out.contains(WORKFLOW_IDENTITY)),
        "{ok:?}"
    );
    let ok = reference_verify(&dsse, None, root, WORKFLOW_IDENTITY, GITHUB_ISSUER);
    assert!(ok.is_ok(), "{ok:?}");
    // The reference really checks: the wrong root, identity or bytes make it refuse.
    assert!(
        reference_verify(
            &blob,
            Some(&artifact),
            &s.server.other_trusted_root,
            WORKFLOW_IDENTITY,
            GITHUB_ISSUER
        )
        .is_err()
    );
    assert!(
        reference_verify(
            &blob,
            Some(&artifact),
            root,
            "https://github.com/o/other",
            GITHUB_ISSUER
        )
        .is_err()
    );
    let changed = write("changed", OTHER_ARTIFACT);
    assert!(
        reference_verify(
            &blob,
            Some(&changed),
            root,
            WORKFLOW_IDENTITY,
            GITHUB_ISSUER
        )
        .is_err()
    );
}

#[test]
fn sigstore_python_accepts_our_bundles() {
    let s = signed();
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("SHA256SUMS");
    std::fs::write(&artifact, ARTIFACT).unwrap();
    let blob = dir.path().join("SHA256SUMS.sigstore.json");
    std::fs::write(&blob, s.blob.to_json().unwrap()).unwrap();
    let root = &s.server.trusted_root;
    let ok = sigstore_python_verify(&blob, &artifact, root, WORKFLOW_IDENTITY, GITHUB_ISSUER);
    assert!(ok.is_ok(), "{ok:?}");
    let changed = dir.path().join("changed");
    std::fs::write(&changed, OTHER_ARTIFACT).unwrap();
    assert!(
        sigstore_python_verify(&blob, &changed, root, WORKFLOW_IDENTITY, GITHUB_ISSUER).is_err()
    );
}

// ---- one tamper per check -----------------------------------------------------------------

#[test]
fn wrong_identity_fails_only_identity() {
    let s = signed();
    let policy = ExpectedIdentity {
        identity: "https://github.com/o/r/.github/workflows/release.yml@refs/heads/main".to_owned(),
        ..policy()
    };
    let results = verify_blob(&s.blob, ARTIFACT, &s.root, &policy);
    assert_eq!(failed(&results), [Check::Identity]);
    assert!(
        results[4].to_string().contains(WORKFLOW_IDENTITY),
        "evidence names what was found"
    );
}

#[test]
fn wrong_issuer_fails_only_issuer() {
    let s = signed();
    let policy = ExpectedIdentity {
        issuer: "https://accounts.google.com".to_owned(),
        ..policy()
    };
    assert_eq!(
        failed(&verify_blob(&s.blob, ARTIFACT, &s.root, &policy)),
        [Check::Issuer]
    );
}

#[test]
fn another_trusted_root_fails_everything_it_anchors() {
    let s = signed();
    let other = TrustedRoot::read(&s.server.other_trusted_root).unwrap();
    assert_eq!(
        failed(&verify_blob(&s.blob, ARTIFACT, &other, &policy())),
        [
            Check::CertificateChain,
            Check::Sct,
            Check::SignedEntryTimestamp,
            Check::Checkpoint
        ]
    );
}

#[test]
fn a_certificate_not_yet_valid_when_the_entry_was_logged_fails_validity() {
    // A CA whose clock runs an hour ahead issues certificates valid only from then on: the
    // entry is logged now, outside that window.
    let server = Sigstore::start_with(Options {
        ca_clock_skew_secs: 3600,
        ..Options::default()
    });
    let token = IdToken::parse(unsigned_jwt(&github_claims()), "test").unwrap();
    let signer = KeylessSigner::new(&config(&server), &token).unwrap();
    let bundle = signer.sign_blob(ARTIFACT).unwrap();
    let root = TrustedRoot::read(&server.trusted_root).unwrap();
    let results = verify_blob(&bundle, ARTIFACT, &root, &policy());
    assert_eq!(failed(&results), [Check::CertificateValidity]);
    assert!(
        results[2]
            .to_string()
            .contains("was not logged while the certificate was valid")
    );
}

#[test]
fn the_signer_refuses_to_sign_with_an_expired_certificate() {
    // A CA an hour behind issues certificates that expired 50 minutes ago.
    let server = Sigstore::start_with(Options {
        ca_clock_skew_secs: -3600,
        ..Options::default()
    });
    let token = IdToken::parse(unsigned_jwt(&github_claims()), "test").unwrap();
    let signer = KeylessSigner::new(&config(&server), &token).unwrap();
    let err = signer.sign_blob(ARTIFACT).unwrap_err();
    assert!(
        matches!(err, KeylessError::CertificateExpired { .. }),
        "{err:?}"
    );
    assert!(matches!(
        signer.sign_dsse(IN_TOTO_PAYLOAD_TYPE, STATEMENT),
        Err(KeylessError::CertificateExpired { .. })
    ));
}

#[test]
fn a_garbage_set_fails_the_set() {
    let s = signed();
    let mut bundle = s.blob.clone();
    let promise = entry_mut(&mut bundle).inclusion_promise.as_mut().unwrap();
    promise.signed_entry_timestamp = Base64Bytes(PrivateKey::generate().unwrap().sign(b"garbage"));
    assert_eq!(
        failed(&verify_blob(&bundle, ARTIFACT, &s.root, &policy())),
        [Check::SignedEntryTimestamp]
    );
}

#[test]
fn an_altered_inclusion_proof_hash_fails_the_proof() {
    let s = signed();
    let mut bundle = s.blob.clone();
    let proof = entry_mut(&mut bundle).inclusion_proof.as_mut().unwrap();
    proof.hashes[0].0[0] ^= 1;
    assert_eq!(
        failed(&verify_blob(&bundle, ARTIFACT, &s.root, &policy())),
        [Check::InclusionProof]
    );
}

#[test]
fn a_checkpoint_signed_by_another_key_fails_the_checkpoint() {
    let s = signed();
    let mut bundle = s.blob.clone();
    let proof = entry_mut(&mut bundle).inclusion_proof.as_mut().unwrap();
    let envelope = proof.checkpoint.envelope.clone();
    let (text, signature_lines) = envelope.split_once("\n\n").unwrap();
    let text = format!("{text}\n");
    let (name, b64) = signature_lines
        .trim_end()
        .trim_start_matches("\u{2014} ")
        .split_once(' ')
        .unwrap();
    // Keep the log's key hint so the verifier tries (and must reject) this signature.
    let hint = STANDARD.decode(b64).unwrap()[..4].to_vec();
    let forged = [hint, PrivateKey::generate().unwrap().sign(text.as_bytes())].concat();
    proof.checkpoint.envelope = format!("{text}\n\u{2014} {name} {}\n", STANDARD.encode(forged));
    let results = verify_blob(&bundle, ARTIFACT, &s.root, &policy());
    assert_eq!(failed(&results), [Check::Checkpoint]);
    assert!(results[10].to_string().contains("signed by another key"));
}

#[test]
fn a_genuine_rekor_entry_for_another_digest_fails_the_body_check() {
    // The entry is really in the log (SET, proof and checkpoint all hold), just not for this artifact.
    let s = signed();
    let mut bundle = s.blob.clone();
    bundle.verification_material.tlog_entries =
        s.other_blob.verification_material.tlog_entries.clone();
    let results = verify_blob(&bundle, ARTIFACT, &s.root, &policy());
    assert_eq!(failed(&results), [Check::TlogBody]);
    assert!(results[7].to_string().contains("not the artifact's sha256"));
}

#[test]
fn a_changed_artifact_fails_the_signature() {
    let s = signed();
    let results = verify_blob(&s.blob, OTHER_ARTIFACT, &s.root, &policy());
    // The logged digest no longer matches either: both say the bytes are not what was signed.
    assert_eq!(failed(&results), [Check::Signature, Check::TlogBody]);
    assert!(results[6].to_string().contains("changed after signing"));
}

#[test]
fn a_changed_envelope_fails_the_signature() {
    let s = signed();
    let mut bundle = s.dsse.clone();
    if let Content::DsseEnvelope(envelope) = &mut bundle.content {
        envelope.payload =
            STANDARD.encode(br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{}]}"#);
    }
    let results = verify_bundle(
        &bundle,
        Artifact::Envelope(envelope(&bundle)),
        &s.root,
        &policy(),
    );
    assert_eq!(failed(&results), [Check::Signature, Check::TlogBody]);
    // A separately distributed envelope must be the bundle's own.
    let results = verify_bundle(
        &s.dsse,
        Artifact::Envelope(envelope(&bundle)),
        &s.root,
        &policy(),
    );
    assert_eq!(failed(&results), [Check::Signature]);
}

#[test]
fn a_key_signed_or_mismatched_bundle_fails_every_check() {
    let s = signed();
    let key = PrivateKey::generate().unwrap();
    let key_signed = Bundle::sign_blob(ARTIFACT, &key);
    let results = verify_blob(&key_signed, ARTIFACT, &s.root, &policy());
    assert_eq!(failed(&results), Check::ALL, "fail closed: nothing passes");
    assert!(!all_passed(&results) && !all_passed(&[]));
    let results = verify_bundle(
        &s.blob,
        Artifact::Envelope(envelope(&s.dsse)),
        &s.root,
        &policy(),
    );
    assert_eq!(failed(&results), Check::ALL);
    let results = verify_bundle_json("{not json", Artifact::Blob(ARTIFACT), &s.root, &policy());
    assert_eq!(failed(&results), Check::ALL);
    let json = s.blob.to_json().unwrap();
    assert!(all_passed(&verify_bundle_json(
        &json,
        Artifact::Blob(ARTIFACT),
        &s.root,
        &policy()
    )));
}

#[test]
fn a_forged_certificate_fails_chain_sct_and_log_body() {
    // Same key and identity, one byte of the serial number changed: no CA or CT log signed this.
    let s = signed();
    let mut bundle = s.blob.clone();
    let xrelease::signing::bundle::VerificationContent::Certificate(cert) =
        &mut bundle.verification_material.content
    else {
        panic!("keyless bundle")
    };
    let der = &mut cert.raw_bytes.0;
    let serial = [0x02, 0x04, 0x11, 0x18, 0x20, 0x04]; // INTEGER 0x11182004, the mock CA's serial
    let at = der
        .windows(serial.len())
        .position(|w| w == serial)
        .expect("serial in DER");
    der[at + serial.len() - 1] ^= 1;
    assert_eq!(
        failed(&verify_blob(&bundle, ARTIFACT, &s.root, &policy())),
        [Check::CertificateChain, Check::Sct, Check::TlogBody]
    );
}

#[test]
fn an_sct_from_another_ct_log_key_fails_only_the_sct() {
    // The trusted root lists the CT log under its id but with another key: the chain still holds,
    // the SCT must not.
    let s = signed();
    let other = TrustedRoot::read(&s.server.other_trusted_root).unwrap();
    let mut root = s.root.clone();
    root.ctlogs[0].public_key = other.ctlogs[0].public_key.clone();
    let results = verify_blob(&s.blob, ARTIFACT, &root, &policy());
    assert_eq!(failed(&results), [Check::Sct]);
    assert!(
        results[3]
            .to_string()
            .contains("does not verify over the precertificate")
    );
}

#[test]
fn the_public_good_trusted_root_parses() {
    // The copy sigstore-python ships (tests/requirements.txt): what a user would cache for
    // `xrelease verify` without --trusted-root.
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, sigstore; print(os.path.dirname(sigstore.__file__))",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sigstore-python is missing; run scripts/setup.sh"
    );
    let path = std::path::Path::new(String::from_utf8(out.stdout).unwrap().trim())
        .join("_store/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/trusted_root.json");
    let root = TrustedRoot::read(&path).unwrap();
    let rekor = root
        .tlogs
        .iter()
        .find(|log| log.base_url == "https://rekor.sigstore.dev")
        .expect("Rekor v1 is listed");
    assert!(matches!(rekor.key().unwrap(), EcKey::P256(_)));
    assert_eq!(root.tlog(&rekor.log_id.key_id.0), Some(rekor));
    assert!(root.ctlogs.iter().any(|log| log.key().is_ok()));
    assert!(!root.certificate_authorities.is_empty());
    for ca in &root.certificate_authorities {
        for der in &ca.cert_chain.certificates {
            let cert = Cert::from_der(&der.raw_bytes.0, "public-good CA").unwrap();
            assert!(matches!(cert.public_key().unwrap(), EcKey::P384(_)));
        }
    }
}
