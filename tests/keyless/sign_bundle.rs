//! `xrelease sign-bundle` as the Sigstore conformance suite drives it, against the loopback
//! Sigstore: its bundles verify with `xrelease verify-bundle` and sigstore-python, carry the
//! TSA's timestamp when the signing config lists one, and bind exactly what was signed.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use super::read_json;
use crate::support::sigstore::{
    GITHUB_ISSUER, Sigstore, WORKFLOW_IDENTITY, github_claims, sigstore_python_verify, unsigned_jwt,
};

fn xrelease(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn sign_bundle(server: &Sigstore, extra: &[&str], input: &Path, bundle: &Path) -> Output {
    let token = unsigned_jwt(&github_claims());
    let mut args = vec![
        "sign-bundle",
        "--identity-token",
        &token,
        "--bundle",
        bundle.to_str().unwrap(),
        "--trusted-root",
        server.trusted_root.to_str().unwrap(),
        "--signing-config",
        server.signing_config.to_str().unwrap(),
    ];
    args.extend(extra);
    args.push(input.to_str().unwrap());
    xrelease(&args)
}

fn verify_bundle(server: &Sigstore, bundle: &Path, artifact: &str) -> Output {
    xrelease(&[
        "verify-bundle",
        "--bundle",
        bundle.to_str().unwrap(),
        "--certificate-identity",
        WORKFLOW_IDENTITY,
        "--certificate-oidc-issuer",
        GITHUB_ISSUER,
        "--trusted-root",
        server.trusted_root.to_str().unwrap(),
        artifact,
    ])
}

#[test]
fn a_signed_file_verifies_with_xrelease_and_sigstore_python() {
    let server = Sigstore::start();
    let dir = tempfile::tempdir().unwrap();
    let (input, bundle) = (dir.path().join("a.txt"), dir.path().join("a.sigstore.json"));
    std::fs::write(&input, b"hello, conformance\n").unwrap();
    let out = sign_bundle(&server, &[], &input, &bundle);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let json = read_json(&bundle);
    assert_eq!(
        json["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    let material = &json["verificationMaterial"];
    assert_eq!(material["tlogEntries"].as_array().unwrap().len(), 1);
    assert_eq!(
        material["timestampVerificationData"]["rfc3161Timestamps"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the signing config lists a TSA"
    );

    let out = verify_bundle(&server, &bundle, input.to_str().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ok = sigstore_python_verify(
        &bundle,
        &input,
        &server.trusted_root,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
    );
    assert!(ok.is_ok(), "{ok:?}");

    // It binds exactly this file.
    let other = dir.path().join("b.txt");
    std::fs::write(&other, b"hello, conformance!\n").unwrap();
    let out = verify_bundle(&server, &bundle, other.to_str().unwrap());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[test]
fn an_in_toto_statement_is_signed_as_dsse_and_binds_its_subject() {
    let server = Sigstore::start();
    let dir = tempfile::tempdir().unwrap();
    let subject = dir.path().join("app.tar.gz");
    std::fs::write(&subject, b"the artifact").unwrap();
    let digest = xrelease::digest::sha256_bytes(b"the artifact");
    let statement = dir.path().join("statement.json");
    let value = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app.tar.gz", "digest": {"sha256": digest}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {}, "runDetails": {}},
    });
    std::fs::write(&statement, value.to_string()).unwrap();
    let bundle = dir.path().join("statement.sigstore.json");
    let out = sign_bundle(&server, &["--in-toto"], &statement, &bundle);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let json = read_json(&bundle);
    let envelope = &json["dsseEnvelope"];
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    let entry: &Value = &json["verificationMaterial"]["tlogEntries"][0];
    assert_eq!(entry["kindVersion"]["kind"], "dsse");

    let out = verify_bundle(&server, &bundle, &format!("sha256:{digest}"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ok = sigstore_python_verify(
        &bundle,
        &subject,
        &server.trusted_root,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
    );
    assert!(ok.is_ok(), "{ok:?}");
    let out = verify_bundle(&server, &bundle, statement.to_str().unwrap());
    assert_eq!(
        out.status.code(),
        Some(3),
        "the statement is not its own subject: {}",
        text(&out)
    );
}

#[test]
fn bad_usage_and_refusals_say_why_and_never_show_the_token() {
    let server = Sigstore::start();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("a.txt");
    std::fs::write(&input, b"x").unwrap();
    let bundle = dir.path().join("a.sigstore.json");

    // The protocol's required flags.
    let out = xrelease(&["sign-bundle", input.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // --in-toto over something that is not a statement: refused before anything is sent.
    let out = sign_bundle(&server, &["--in-toto"], &input, &bundle);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("not an in-toto statement"),
        "{}",
        text(&out)
    );
    assert!(!bundle.exists());

    // A token Fulcio refuses: the failure names Fulcio and the audience, never the token.
    let mut claims = github_claims();
    claims["aud"] = "not-sigstore".into();
    let token = unsigned_jwt(&claims);
    let out = xrelease(&[
        "sign-bundle",
        "--identity-token",
        &token,
        "--bundle",
        bundle.to_str().unwrap(),
        "--signing-config",
        server.signing_config.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("Fulcio") && shown.contains("audience"),
        "{shown}"
    );
    let payload = token.split('.').nth(1).unwrap();
    assert!(!shown.contains(payload), "{shown}");
    assert!(!bundle.exists());
}
