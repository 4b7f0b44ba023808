//! The keyless library against a loopback Sigstore (@sigstore/mock): signing, offline
//! verification, and one tamper per check on bundles built in memory.

use std::sync::OnceLock;

use super::{
    BAD_CHECKPOINT, BAD_PROOF, BAD_SCT, BAD_SET, CHANGED_ARTIFACT, NOT_VALID_WHEN_LOGGED,
    OTHER_ENTRY, OTHER_ROOT,
};
use crate::support::sigstore::{
    GITHUB_ISSUER, Options, Sigstore, WORKFLOW_IDENTITY, env_from, github_claims, reference_verify,
    sigstore_python_verify, unsigned_jwt,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sigstore_types::{
    Bundle, CheckpointData, DerCertificate, PayloadBytes, Sha256Hash, SignatureContent,
    SignedTimestamp, TransparencyLogEntry, VerificationMaterialContent,
};
use xrelease::signing::dsse::IN_TOTO_PAYLOAD_TYPE;
use xrelease::signing::key::PrivateKey;
use xrelease::signing::keyless::{KeylessConfig, KeylessError, KeylessSigner, TrustSource};
use xrelease::signing::oidc::{IdToken, OidcError};
use xrelease::signing::services::Services;
use xrelease::signing::sigstore::{Root, Signer, Subject, verify};

const ARTIFACT: &[u8] = b"0123abcd  app-1.0.0-linux-amd64\n";
const OTHER_ARTIFACT: &[u8] = b"4567ef01  app-1.0.0-linux-arm64\n";

/// An in-toto statement whose one subject is [`ARTIFACT`]: what binds an envelope to bytes.
fn statement() -> Vec<u8> {
    format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"SHA256SUMS","digest":{{"sha256":"{}"}}}}],"predicateType":"https://example.com/p","predicate":{{}}}}"#,
        xrelease::digest::sha256_bytes(ARTIFACT)
    )
    .into_bytes()
}

/// One server and one signer for the whole file: what a release does (one key, many artifacts).
struct Signed {
    server: Sigstore,
    root: Root,
    blob: Bundle,
    other_blob: Bundle,
    dsse: Bundle,
}

fn config(server: &Sigstore) -> KeylessConfig {
    KeylessConfig {
        services: Services {
            fulcio_url: server.fulcio_url.clone(),
            rekor_url: server.rekor_url.clone(),
            ..Services::default()
        },
        trust: TrustSource::File(server.trusted_root.clone()),
        identity: None,
        issuer: None,
    }
}

/// The signer's bundle, through its JSON and back as `xrelease verify` reads it (v0.3 only).
fn ours(bundle: Bundle) -> Bundle {
    xrelease::signing::keybundle::from_json(&bundle.to_json().unwrap()).expect("a v0.3 bundle")
}

fn read_root(path: &std::path::Path) -> Root {
    Root::from_json(&std::fs::read_to_string(path).unwrap(), "test root").expect("trusted root")
}

fn signed() -> &'static Signed {
    static SIGNED: OnceLock<Signed> = OnceLock::new();
    SIGNED.get_or_init(|| {
        let server = Sigstore::start();
        // The token comes from the (fake) GitHub Actions token endpoint, as in CI.
        let signer = KeylessSigner::from_env(&config(&server), &env_from(server.actions_env()))
            .expect("signer");
        let blob = ours(signer.sign_blob(ARTIFACT).expect("sign blob"));
        let other_blob = ours(signer.sign_blob(OTHER_ARTIFACT).expect("sign other blob"));
        let dsse = ours(
            signer
                .sign_dsse(IN_TOTO_PAYLOAD_TYPE, &statement())
                .expect("sign dsse"),
        );
        let root = read_root(&server.trusted_root);
        Signed {
            server,
            root,
            blob,
            other_blob,
            dsse,
        }
    })
}

fn policy() -> Signer {
    Signer::Identity {
        identity: WORKFLOW_IDENTITY.to_owned(),
        issuer: GITHUB_ISSUER.to_owned(),
    }
}

/// The bundle through the sigstore-rust verifier, as `xrelease verify` runs it.
fn check(bundle: &Bundle, artifact: &[u8], root: &Root, policy: &Signer) -> Result<String, String> {
    verify(
        &bundle.to_json().unwrap(),
        Subject::Bytes(artifact),
        policy,
        root,
    )
    .map(|v| v.to_string())
    .map_err(|e| e.to_string())
}

/// The bundle must be refused, saying `why`.
#[track_caller]
fn assert_refused(bundle: &Bundle, artifact: &[u8], root: &Root, policy: &Signer, why: &str) {
    let result = check(bundle, artifact, root, policy);
    assert!(
        matches!(&result, Err(e) if e.contains(why)),
        "expected a refusal saying `{why}`, got {result:?}"
    );
}

fn entry_mut(bundle: &mut Bundle) -> &mut TransparencyLogEntry {
    &mut bundle.verification_material.tlog_entries[0]
}

// ---- end to end ---------------------------------------------------------------------------

#[test]
fn blob_and_dsse_signed_keylessly_verify_offline() {
    let s = signed();
    let ok = check(&s.blob, ARTIFACT, &s.root, &policy());
    assert!(
        ok.as_ref().is_ok_and(|v| v.contains(WORKFLOW_IDENTITY)),
        "{ok:?}"
    );
    let ok = check(&s.dsse, ARTIFACT, &s.root, &policy());
    assert!(ok.is_ok(), "{ok:?}");
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
        .map(|b| b.verification_material.tlog_entries[0].kind_version.kind())
        .collect();
    assert_eq!(kinds, ["hashedrekord", "dsse"]);
    // Rekor's dsse body is the canonical one, not the proposed envelope.
    let body: serde_json::Value = serde_json::from_slice(
        s.dsse.verification_material.tlog_entries[0]
            .canonicalized_body
            .as_bytes(),
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
    let bundle = ours(signer.sign_blob(b"x").expect("sign"));
    assert!(check(&bundle, b"x", &s.root, &policy()).is_ok());
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
fn wrong_identity_is_refused_naming_what_was_found() {
    let s = signed();
    let policy = Signer::Identity {
        identity: "https://github.com/o/r/.github/workflows/release.yml@refs/heads/main".to_owned(),
        issuer: GITHUB_ISSUER.to_owned(),
    };
    assert_refused(&s.blob, ARTIFACT, &s.root, &policy, "identity mismatch");
    assert_refused(&s.blob, ARTIFACT, &s.root, &policy, WORKFLOW_IDENTITY);
}

#[test]
fn wrong_issuer_is_refused() {
    let s = signed();
    let policy = Signer::Identity {
        identity: WORKFLOW_IDENTITY.to_owned(),
        issuer: "https://accounts.google.com".to_owned(),
    };
    assert_refused(&s.blob, ARTIFACT, &s.root, &policy, "issuer mismatch");
}

#[test]
fn another_trusted_root_is_refused() {
    let s = signed();
    let other = read_root(&s.server.other_trusted_root);
    assert_refused(&s.blob, ARTIFACT, &other, &policy(), OTHER_ROOT);
}

#[test]
fn a_certificate_not_yet_valid_when_the_entry_was_logged_is_refused() {
    // A CA whose clock runs an hour ahead issues certificates valid only from then on: the
    // entry is logged now, outside that window.
    let server = Sigstore::start_with(Options {
        ca_clock_skew_secs: 3600,
        ..Options::default()
    });
    let token = IdToken::parse(unsigned_jwt(&github_claims()), "test").unwrap();
    let signer = KeylessSigner::new(&config(&server), &token).unwrap();
    let bundle = ours(signer.sign_blob(ARTIFACT).unwrap());
    let root = read_root(&server.trusted_root);
    assert_refused(&bundle, ARTIFACT, &root, &policy(), NOT_VALID_WHEN_LOGGED);
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
        signer.sign_dsse(IN_TOTO_PAYLOAD_TYPE, &statement()),
        Err(KeylessError::CertificateExpired { .. })
    ));
}

#[test]
fn a_garbage_set_is_refused() {
    let s = signed();
    let mut bundle = s.blob.clone();
    let promise = entry_mut(&mut bundle).inclusion_promise.as_mut().unwrap();
    promise.signed_entry_timestamp =
        SignedTimestamp::new(PrivateKey::generate().unwrap().sign(b"garbage"));
    assert_refused(&bundle, ARTIFACT, &s.root, &policy(), BAD_SET);
}

#[test]
fn an_altered_inclusion_proof_hash_is_refused() {
    let s = signed();
    let mut bundle = s.blob.clone();
    let proof = entry_mut(&mut bundle).inclusion_proof.as_mut().unwrap();
    let mut hash = *proof.hashes[0].as_bytes();
    hash[0] ^= 1;
    proof.hashes[0] = Sha256Hash::new(hash);
    assert_refused(&bundle, ARTIFACT, &s.root, &policy(), BAD_PROOF);
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let s = signed();
    let mut bundle = s.blob.clone();
    let proof = entry_mut(&mut bundle).inclusion_proof.as_mut().unwrap();
    let envelope = proof.checkpoint.envelope().to_owned();
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
    proof.checkpoint = CheckpointData::new(format!(
        "{text}\n\u{2014} {name} {}\n",
        STANDARD.encode(forged)
    ))
    .expect("a well-formed checkpoint");
    assert_refused(&bundle, ARTIFACT, &s.root, &policy(), BAD_CHECKPOINT);
}

#[test]
fn a_genuine_rekor_entry_for_another_digest_is_refused() {
    // The entry is really in the log (SET, proof and checkpoint all hold), just not for this artifact.
    let s = signed();
    let mut bundle = s.blob.clone();
    bundle.verification_material.tlog_entries =
        s.other_blob.verification_material.tlog_entries.clone();
    assert_refused(&bundle, ARTIFACT, &s.root, &policy(), OTHER_ENTRY);
}

#[test]
fn a_changed_artifact_is_refused() {
    let s = signed();
    assert_refused(
        &s.blob,
        OTHER_ARTIFACT,
        &s.root,
        &policy(),
        CHANGED_ARTIFACT,
    );
    // By digest too, and a DSSE bundle through its statement's subject.
    let result = verify(
        &s.blob.to_json().unwrap(),
        Subject::Sha256([7; 32]),
        &policy(),
        &s.root,
    );
    assert!(result.is_err(), "{result:?}");
    assert_refused(&s.dsse, OTHER_ARTIFACT, &s.root, &policy(), "subject");
}

#[test]
fn a_changed_envelope_is_refused() {
    let s = signed();
    let mut bundle = s.dsse.clone();
    if let SignatureContent::DsseEnvelope(envelope) = &mut bundle.content {
        let mut changed = statement();
        changed.extend_from_slice(b" ");
        envelope.payload = PayloadBytes::new(changed);
    }
    let result = check(&bundle, ARTIFACT, &s.root, &policy());
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn a_key_signed_or_malformed_bundle_is_refused() {
    let s = signed();
    let key = PrivateKey::generate().unwrap();
    let key_signed = xrelease::signing::keybundle::sign_blob(ARTIFACT, &key);
    assert!(check(&key_signed, ARTIFACT, &s.root, &policy()).is_err());
    let result = verify("{not json", Subject::Bytes(ARTIFACT), &policy(), &s.root);
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn a_forged_certificate_is_refused() {
    // Same key and identity, one byte of the serial number changed: no CA or CT log signed this.
    let s = signed();
    let mut bundle = s.blob.clone();
    let VerificationMaterialContent::Certificate(cert) = &mut bundle.verification_material.content
    else {
        panic!("keyless bundle")
    };
    let mut der = cert.raw_bytes.as_bytes().to_vec();
    let serial = [0x02, 0x04, 0x11, 0x18, 0x20, 0x04]; // INTEGER 0x11182004, the mock CA's serial
    let at = der
        .windows(serial.len())
        .position(|w| w == serial)
        .expect("serial in DER");
    der[at + serial.len() - 1] ^= 1;
    cert.raw_bytes = DerCertificate::new(der);
    assert!(check(&bundle, ARTIFACT, &s.root, &policy()).is_err());
}

#[test]
fn an_sct_from_another_ct_log_key_is_refused() {
    // The trusted root lists the CT log under its id but with another key: the chain still holds,
    // the SCT must not.
    let s = signed();
    let read = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let other = read(&s.server.other_trusted_root);
    let mut root = read(&s.server.trusted_root);
    root["ctlogs"][0]["publicKey"] = other["ctlogs"][0]["publicKey"].clone();
    let root = Root::from_json(&root.to_string(), "edited root").unwrap();
    assert_refused(&s.blob, ARTIFACT, &root, &policy(), BAD_SCT);
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
    let root = Root::from_json(&std::fs::read_to_string(&path).unwrap(), "public good");
    assert!(root.is_ok(), "{root:?}");
}
