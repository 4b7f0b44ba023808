//! Keyless signing through the real binary: a rehearsal signed by a loopback Sigstore, checked
//! by `xrelease verify`, sigstore-js and sigstore-python; one tamper per keyless check on copies
//! of that release; and the refusals that come before anything is built.

mod gh;
mod install;
mod library;
mod sign_bundle;
mod timestamps;
mod tuf;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::support::sigstore::{
    GITHUB_ISSUER, Options, Sigstore, WORKFLOW_IDENTITY, WORKFLOW_REF, github_claims,
    reference_verify, sigstore_python_verify, unsigned_jwt,
};
use crate::support::{Fixture, Outcome, basic_release, copy_tree};

/// The basic fixture's binaries: each has an SBOM attestation with a bundle beside it.
const BINARIES: [&str; 6] = [
    "app-1.0.0-linux-amd64",
    "app-1.0.0-linux-arm64",
    "app-tool-1.0.0-linux-amd64",
    "app-tool-1.0.0-linux-arm64",
    "other-1.0.0-linux-amd64",
    "other-1.0.0-linux-arm64",
];

// What the sigstore-rust verifier says for each tampering (its error messages, in part).
const NOT_VALID_WHEN_LOGGED: &str = "CertNotValidYet";
const OTHER_ROOT: &str = "No log key valid at integrated time";
const BAD_SET: &str = "SET verification failed";
const BAD_PROOF: &str = "inclusion proof verification failed";
const BAD_CHECKPOINT: &str = "No valid Rekor signature found on checkpoint";
const OTHER_ENTRY: &str = "artifact hash mismatch for hashedrekord entry";
const CHANGED_ARTIFACT: &str = "message digest in bundle does not match artifact hash";
const BAD_SCT: &str = "SCT signature verification failed";

/// Every Sigstore bundle of a keyless release of the basic fixture.
fn bundles() -> Vec<String> {
    let mut names = vec![
        "SHA256SUMS.sigstore.json".to_string(),
        "provenance.sigstore.json".to_string(),
    ];
    names.extend(BINARIES.iter().map(|b| format!("{b}.cdx.sigstore.json")));
    names
}

/// A config outside the fixture's git tree that signs keylessly with `server`; `expect` sets
/// the identity and issuer the gate verifies (else they come from the GitHub environment).
fn keyless_config(
    fixture: &Fixture,
    dir: &Path,
    server: &Sigstore,
    expect: Option<(&str, &str)>,
) -> PathBuf {
    let mut text = format!(
        "[release]\nexclude-bins = [\"app-secret\"]\n\n[sign]\nmode = \"keyless\"\n\
         fulcio-url = \"{}\"\nrekor-url = \"{}\"\ntrusted-root = \"{}\"\n",
        server.fulcio_url,
        server.rekor_url,
        server.trusted_root.display()
    );
    if let Some((identity, issuer)) = expect {
        text.push_str(&format!(
            "identity = \"{identity}\"\nissuer = \"{issuer}\"\n"
        ));
    }
    text.push_str("\n[github]\nrepository = \"fixture/basic\"\n");
    fixture.config_outside(dir, &text)
}

/// One keyless rehearsal of the basic fixture (`SIGSTORE_ID_TOKEN` with GitHub's claims),
/// shared by every test that only reads it or tampers with a copy.
struct KeylessRelease {
    server: Sigstore,
    _config: tempfile::TempDir,
    token: String,
    outcome: Outcome,
    dist: PathBuf,
}

fn keyless_release() -> &'static KeylessRelease {
    static RELEASE: OnceLock<KeylessRelease> = OnceLock::new();
    let release = RELEASE.get_or_init(|| {
        let (fixture, outcome) = basic_release();
        outcome.success();
        let server = Sigstore::start();
        let config_dir = tempfile::tempdir().unwrap();
        let config = keyless_config(
            fixture,
            config_dir.path(),
            &server,
            Some((WORKFLOW_IDENTITY, GITHUB_ISSUER)),
        );
        let token = unsigned_jwt(&github_claims());
        let outcome = fixture
            .xrelease(&[
                "release",
                "v1.0.0",
                "--dry-run",
                "--real-signing",
                "--quiet",
                "--dist",
                "dist/keyless",
            ])
            .env("SIGSTORE_ID_TOKEN", &token)
            .run_with_config(&config);
        KeylessRelease {
            server,
            _config: config_dir,
            token,
            outcome,
            dist: fixture.path("dist/keyless"),
        }
    });
    release.outcome.success();
    release
}

/// `xrelease verify DIR --json` with `args`, outside any workspace and with an empty cache.
fn verify(dir: &Path, args: &[&str]) -> (i32, Value, Outcome) {
    let cache = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .arg("verify")
        .arg(dir)
        .args(args)
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap();
    let outcome = Outcome { output };
    let report = serde_json::from_str(&outcome.stdout()).unwrap_or(Value::Null);
    (outcome.output.status.code().unwrap(), report, outcome)
}

/// `--certificate-identity ID --certificate-oidc-issuer URL --trusted-root ROOT --json`.
fn verify_keyless(dir: &Path, identity: &str, issuer: &str, root: &Path) -> (i32, Value) {
    let (code, report, outcome) = verify(
        dir,
        &[
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            issuer,
            "--trusted-root",
            root.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(report.is_object(), "no JSON report: {}", outcome.stderr());
    (code, report)
}

/// The failed checks of a report, as `check subject: detail`.
fn failures(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| format!("{} {}: {}", c["check"], c["subject"], c["detail"]).replace('"', ""))
        .collect()
}

/// The `keyless` line of `bundle` (exactly one): `Ok(detail)` when it passed, `Err(why)` not.
fn keyless_line(report: &Value, bundle: &str) -> Result<String, String> {
    let lines: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "keyless" && c["subject"] == bundle)
        .collect();
    assert_eq!(lines.len(), 1, "{bundle}: one keyless line");
    let detail = lines[0]["detail"].as_str().unwrap().to_string();
    if lines[0]["passed"] == true {
        Ok(detail)
    } else {
        Err(detail)
    }
}

/// A copy of the keyless release to tamper with.
fn keyless_copy() -> (tempfile::TempDir, PathBuf) {
    let release = keyless_release();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("release");
    copy_tree(&release.dist, &dir);
    (scratch, dir)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Edits a JSON file (a bundle, the TUF cache) in place.
fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut bundle = read_json(path);
    edit(&mut bundle);
    std::fs::write(path, serde_json::to_string_pretty(&bundle).unwrap()).unwrap();
}

/// Verifies a tampered copy under the good policy: it must fail (exit 3), and the keyless line
/// of `bundle` must fail, saying `why`.
#[track_caller]
fn assert_keyless_fails(dir: &Path, bundle: &str, why: &str) -> Value {
    let release = keyless_release();
    let (code, report) = verify_keyless(
        dir,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
        &release.server.trusted_root,
    );
    assert_eq!(code, 3, "{:#?}", failures(&report));
    assert_eq!(report["ok"], false);
    let line = keyless_line(&report, bundle);
    assert!(
        matches!(&line, Err(detail) if detail.contains(why)),
        "{bundle}: expected a failure saying `{why}`, got {line:?}"
    );
    report
}

// ---- the keyless rehearsal ------------------------------------------------------------------

#[test]
fn a_keyless_rehearsal_signs_sha256sums_and_every_attestation_and_verifies() {
    let release = keyless_release();
    let dist = &release.dist;
    for name in [
        "SHA256SUMS.sig",
        "SHA256SUMS.pem",
        "SHA256SUMS.sigstore.json",
        "provenance.intoto.jsonl",
        "provenance.sigstore.json",
    ] {
        assert!(dist.join(name).is_file(), "{name}");
    }
    for binary in BINARIES {
        assert!(dist.join(format!("{binary}.cdx.intoto.jsonl")).is_file());
        assert!(dist.join(format!("{binary}.cdx.sigstore.json")).is_file());
    }
    assert!(!dist.join("cosign.pub").exists(), "no key in keyless mode");

    let (code, report) = verify_keyless(
        dist,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
        &release.server.trusted_root,
    );
    assert_eq!((code, failures(&report)), (0, vec![]));
    let keyless = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "keyless")
        .count();
    assert_eq!(keyless, bundles().len(), "one keyless line per bundle");
    for bundle in bundles() {
        let line = keyless_line(&report, &bundle).unwrap();
        assert!(line.contains(WORKFLOW_IDENTITY), "{bundle}: {line}");
    }

    // The human form: one line per bundle.
    let out = Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .arg("verify")
        .arg(dist)
        .args(["--certificate-identity", WORKFLOW_IDENTITY])
        .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
        .arg("--trusted-root")
        .arg(&release.server.trusted_root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for bundle in ["SHA256SUMS.sigstore.json", "provenance.sigstore.json"] {
        let line = format!("[PASS] keyless    {bundle}: signed by {WORKFLOW_IDENTITY}");
        assert!(text.contains(&line), "{line} in\n{text}");
    }

    // The manifest records the certificate and every bundle.
    let manifest = read_json(&dist.join("manifest.json"));
    let kinds: BTreeSet<(String, String)> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().into(),
                a["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(kinds.contains(&("SHA256SUMS.pem".into(), "certificate".into())));
    for bundle in bundles() {
        assert!(
            kinds.contains(&(bundle.clone(), "bundle".into())),
            "{bundle}"
        );
    }

    // The token is a credential: it is in no output and no file.
    let secret = release.token.split('.').nth(1).unwrap();
    assert!(!release.outcome.stdout().contains(secret));
    assert!(!release.outcome.stderr().contains(secret));
    for entry in std::fs::read_dir(dist).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
}

#[test]
fn bundles_are_v03_with_one_certificate_and_one_complete_log_entry() {
    let release = keyless_release();
    let dist = &release.dist;
    let pem = std::fs::read_to_string(dist.join("SHA256SUMS.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut indexes = BTreeSet::new();
    for name in bundles() {
        let bundle = read_json(&dist.join(&name));
        assert_eq!(
            bundle["mediaType"], "application/vnd.dev.sigstore.bundle.v0.3+json",
            "{name}"
        );
        let material = &bundle["verificationMaterial"];
        // One ephemeral key per release: every bundle carries the same single leaf certificate.
        assert_eq!(material["certificate"]["rawBytes"], body.as_str(), "{name}");
        assert!(material.get("x509CertificateChain").is_none(), "{name}");
        let entries = material["tlogEntries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{name}");
        let entry = &entries[0];
        let kind = if name == "SHA256SUMS.sigstore.json" {
            "hashedrekord"
        } else {
            "dsse"
        };
        assert_eq!(entry["kindVersion"]["kind"], kind, "{name}");
        assert!(entry["logIndex"].is_string(), "{name}");
        indexes.insert(entry["logIndex"].as_str().unwrap().to_string());
        assert!(entry["inclusionPromise"]["signedEntryTimestamp"].is_string());
        let proof = &entry["inclusionProof"];
        assert!(proof["logIndex"].is_string() && proof["treeSize"].is_string());
        assert!(proof["rootHash"].is_string());
        assert!(!proof["hashes"].as_array().unwrap().is_empty(), "{name}");
        assert!(proof["checkpoint"]["envelope"].is_string());
        // An attestation's bundle holds exactly the envelope of the file beside it.
        if let Some(stem) = name
            .strip_suffix(".sigstore.json")
            .filter(|_| kind == "dsse")
        {
            let text = std::fs::read_to_string(dist.join(format!("{stem}.intoto.jsonl"))).unwrap();
            assert_eq!(text.lines().count(), 1);
            let envelope: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(bundle["dsseEnvelope"], envelope, "{name}");
        }
    }
    assert_eq!(
        indexes.len(),
        bundles().len(),
        "one log entry per signature"
    );
    // `.sig` is the bundle's signature.
    let sums_bundle = read_json(&dist.join("SHA256SUMS.sigstore.json"));
    assert_eq!(
        std::fs::read_to_string(dist.join("SHA256SUMS.sig"))
            .unwrap()
            .trim(),
        sums_bundle["messageSignature"]["signature"]
            .as_str()
            .unwrap()
    );
}

#[test]
fn openssl_verifies_the_signature_with_the_certificates_key() {
    let release = keyless_release();
    let scratch = tempfile::tempdir().unwrap();
    let public = scratch.path().join("public.pem");
    let out = Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(release.dist.join("SHA256SUMS.pem"))
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&public, &out.stdout).unwrap();
    let sig = STANDARD
        .decode(
            std::fs::read_to_string(release.dist.join("SHA256SUMS.sig"))
                .unwrap()
                .trim(),
        )
        .unwrap();
    let sig_path = scratch.path().join("sig.der");
    std::fs::write(&sig_path, sig).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(&sig_path)
        .arg(release.dist.join("SHA256SUMS"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");
}

#[test]
fn sigstore_js_accepts_every_bundle_of_the_release() {
    let release = keyless_release();
    let (dist, root) = (&release.dist, &release.server.trusted_root);
    let sums = reference_verify(
        &dist.join("SHA256SUMS.sigstore.json"),
        Some(&dist.join("SHA256SUMS")),
        root,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
    );
    assert!(sums.is_ok(), "{sums:?}");
    for bundle in &bundles()[1..] {
        let ok = reference_verify(
            &dist.join(bundle),
            None,
            root,
            WORKFLOW_IDENTITY,
            GITHUB_ISSUER,
        );
        assert!(ok.is_ok(), "{bundle}: {ok:?}");
    }
    let other = reference_verify(
        &dist.join("provenance.sigstore.json"),
        None,
        &release.server.other_trusted_root,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
    );
    assert!(other.is_err(), "sigstore-js really checks the root");
}

#[test]
fn sigstore_python_accepts_the_signature_and_the_attestations() {
    let release = keyless_release();
    let (dist, root) = (&release.dist, &release.server.trusted_root);
    let binary = dist.join(BINARIES[1]);
    for (bundle, artifact) in [
        ("SHA256SUMS.sigstore.json", dist.join("SHA256SUMS")),
        ("provenance.sigstore.json", binary.clone()),
        ("app-1.0.0-linux-arm64.cdx.sigstore.json", binary.clone()),
    ] {
        let ok = sigstore_python_verify(
            &dist.join(bundle),
            &artifact,
            root,
            WORKFLOW_IDENTITY,
            GITHUB_ISSUER,
        );
        assert!(ok.is_ok(), "{bundle}: {ok:?}");
    }
    // An SBOM attestation binds its own binary, not another one.
    let wrong = sigstore_python_verify(
        &dist.join("app-1.0.0-linux-arm64.cdx.sigstore.json"),
        &dist.join(BINARIES[0]),
        root,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
    );
    assert!(wrong.is_err(), "{wrong:?}");
}

#[test]
fn github_actions_token_endpoint_and_identity_defaults() {
    // In GitHub Actions: the token comes from the Actions endpoint (audience `sigstore`), and
    // the gate's identity and issuer default from GITHUB_WORKFLOW_REF.
    let (fixture, outcome) = basic_release();
    outcome.success();
    let server = Sigstore::start();
    let dir = tempfile::tempdir().unwrap();
    let config = keyless_config(fixture, dir.path(), &server, None);
    let mut run = fixture.xrelease(&[
        "release",
        "v1.0.0",
        "--dry-run",
        "--real-signing",
        "--quiet",
        "--dist",
        "dist/keyless-actions",
    ]);
    for (key, value) in server.actions_env() {
        run = run.env(&key, &value);
    }
    let release = run.run_with_config(&config);
    release.success();
    let dist = fixture.path("dist/keyless-actions");
    let (code, report) = verify_keyless(
        &dist,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
        &server.trusted_root,
    );
    assert_eq!((code, failures(&report)), (0, vec![]));
    // The request token is a credential too.
    assert!(!release.stdout().contains(&server.token_request_token));
    assert!(!release.stderr().contains(&server.token_request_token));
    // The provenance names the workflow that signed.
    let line = std::fs::read_to_string(dist.join("provenance.intoto.jsonl")).unwrap();
    let envelope: Value = serde_json::from_str(&line).unwrap();
    let statement: Value = serde_json::from_slice(
        &STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        statement["predicate"]["runDetails"]["builder"]["id"],
        format!("https://github.com/{WORKFLOW_REF}")
    );
}

#[test]
fn a_certificate_not_valid_when_logged_stops_the_release_at_the_gate() {
    // A CA whose clock runs an hour ahead issues certificates valid only from then on; the log
    // integrates the entries now. The release gate refuses it, and so does `xrelease verify`.
    let (fixture, outcome) = basic_release();
    outcome.success();
    let server = Sigstore::start_with(Options {
        ca_clock_skew_secs: 3600,
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = keyless_config(
        fixture,
        dir.path(),
        &server,
        Some((WORKFLOW_IDENTITY, GITHUB_ISSUER)),
    );
    fixture
        .xrelease(&[
            "release",
            "v1.0.0",
            "--dry-run",
            "--real-signing",
            "--quiet",
            "--dist",
            "dist/keyless-early",
        ])
        .env("SIGSTORE_ID_TOKEN", &unsigned_jwt(&github_claims()))
        .run_with_config(&config)
        .code(3)
        .stderr_has("SHA256SUMS.sigstore.json: ")
        .stderr_has(NOT_VALID_WHEN_LOGGED);
    let dist = fixture.path("dist/keyless-early");
    let (code, report) = verify_keyless(
        &dist,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
        &server.trusted_root,
    );
    assert_eq!(code, 3);
    for bundle in bundles() {
        let line = keyless_line(&report, &bundle);
        assert!(
            matches!(&line, Err(why) if why.contains(NOT_VALID_WHEN_LOGGED)),
            "{bundle}: {line:?}"
        );
    }
}

// ---- refused before anything is built ---------------------------------------------------------

#[test]
fn no_token_source_stops_the_release_before_building() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let server = Sigstore::start();
    let dir = tempfile::tempdir().unwrap();
    let config = keyless_config(
        fixture,
        dir.path(),
        &server,
        Some((WORKFLOW_IDENTITY, GITHUB_ISSUER)),
    );
    let args = [
        "release",
        "v1.0.0",
        "--dry-run",
        "--real-signing",
        "--dist",
        "dist/keyless-refused",
    ];
    fixture
        .xrelease(&args)
        .run_with_config(&config)
        .code(2)
        .stderr_has("keyless signing needs an OIDC identity token")
        .stderr_has("SIGSTORE_ID_TOKEN")
        .stderr_has("id-token: write");
    fixture
        .xrelease(&args)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &server.token_request_url)
        .run_with_config(&config)
        .code(2)
        .stderr_has(
            "ACTIONS_ID_TOKEN_REQUEST_URL is set but ACTIONS_ID_TOKEN_REQUEST_TOKEN is not",
        );
    let mut expired = github_claims();
    expired["exp"] = 1.into();
    fixture
        .xrelease(&args)
        .env("SIGSTORE_ID_TOKEN", &unsigned_jwt(&expired))
        .run_with_config(&config)
        .code(2)
        .stderr_has("the identity token from SIGSTORE_ID_TOKEN expired");
    assert!(
        !fixture.path("dist/keyless-refused").exists(),
        "nothing was built"
    );

    // A plain rehearsal still signs with a throwaway key, token or not: the basic fixture's
    // release.toml has no `[sign]`, so its mode is the default, keyless.
    let plain = fixture.path("dist/v1.0.0");
    assert!(plain.join("cosign.pub").is_file() && !plain.join("SHA256SUMS.pem").exists());
}

#[test]
fn the_gate_needs_an_identity_and_a_trusted_root_before_building() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let server = Sigstore::start();
    let dir = tempfile::tempdir().unwrap();
    let token = unsigned_jwt(&github_claims());
    let args = [
        "release",
        "v1.0.0",
        "--dry-run",
        "--real-signing",
        "--dist",
        "dist/keyless-no-policy",
    ];
    // Outside GitHub Actions there is no identity to default to.
    let config = keyless_config(fixture, dir.path(), &server, None);
    fixture
        .xrelease(&args)
        .env("SIGSTORE_ID_TOKEN", &token)
        .run_with_config(&config)
        .code(2)
        .stderr_has("no expected signer identity: set `[sign] identity`");
    // No trusted root file: it comes over TUF, in preflight, so a repository that does not
    // answer stops the release before anything is built.
    let text = std::fs::read_to_string(&config).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let anchor =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tuf/sigstore-14.root.json");
    let text = text
        .lines()
        .filter(|l| !l.starts_with("trusted-root"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(
        &config,
        text.replace(
            "[github]",
            &format!(
                "identity = \"{WORKFLOW_IDENTITY}\"\nissuer = \"{GITHUB_ISSUER}\"\ntuf-url = \"{dead_url}\"\ntuf-root = \"{}\"\n\n[github]",
                anchor.display()
            ),
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    fixture
        .xrelease(&args)
        .env("SIGSTORE_ID_TOKEN", &token)
        .env("XDG_CACHE_HOME", cache.path().to_str().unwrap())
        .run_with_config(&config)
        .code(2)
        .stderr_has(&format!(
            "cannot reach the TUF repository: GET {dead_url}/15.root.json"
        ));
    assert!(!fixture.path("dist/keyless-no-policy").exists());
}

#[test]
fn nothing_reaches_the_log_unless_the_local_checks_pass() {
    // A stale binary left in the release directory would fail the gate after signing: the sign
    // stage finds it first, before a certificate is requested or an entry logged.
    let release = keyless_release();
    let (_s, dir) = keyless_copy();
    std::fs::write(dir.join("stale-0.9.0-linux-amd64"), b"old build").unwrap();
    let signature = std::fs::read(dir.join("SHA256SUMS.sig")).unwrap();
    let mut manifest: xrelease::manifest::Manifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let sign = xrelease::config::Sign {
        mode: xrelease::config::SignMode::Keyless,
        key: PathBuf::from("unused.key"),
        services: xrelease::signing::services::Choice {
            fulcio_url: Some(release.server.fulcio_url.clone()),
            rekor_url: Some(release.server.rekor_url.clone()),
            ..Default::default()
        },
        trusted_root: Some(release.server.trusted_root.clone()),
        tuf_url: None,
        tuf_root: None,
        identity: Some(WORKFLOW_IDENTITY.into()),
        issuer: Some(GITHUB_ISSUER.into()),
    };
    let mut signer = xrelease::signing::Signer::keyless(&sign, &|_| None).unwrap();
    let err = xrelease::stage::sign::run(&dir, &mut manifest, &mut signer).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), 3, "{text}");
    assert!(
        text.contains("not listed in SHA256SUMS: stale-0.9.0-linux-amd64"),
        "{text}"
    );
    assert!(
        text.contains("nothing was signed or sent to the transparency log"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(dir.join("SHA256SUMS.sig")).unwrap(),
        signature
    );
}

// ---- xrelease verify: flags and the trusted root -----------------------------------------------

#[test]
fn verify_takes_a_key_or_an_identity_not_both() {
    let release = keyless_release();
    let root = release.server.trusted_root.to_str().unwrap();
    for args in [
        vec![],
        vec!["--certificate-identity", WORKFLOW_IDENTITY],
        vec!["--certificate-oidc-issuer", GITHUB_ISSUER],
        vec!["--trusted-root", root],
        vec![
            "--key",
            "cosign.pub",
            "--certificate-identity",
            WORKFLOW_IDENTITY,
            "--certificate-oidc-issuer",
            GITHUB_ISSUER,
        ],
    ] {
        let (code, _, out) = verify(&release.dist, &args);
        assert_eq!(code, 2, "{args:?}: {}", out.stderr());
    }
    // A key-signed release is not a keyless one: its bundles carry no certificate.
    let (fixture, outcome) = basic_release();
    outcome.success();
    let (code, report) = verify_keyless(
        &fixture.path("dist/v1.0.0"),
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
        &release.server.trusted_root,
    );
    assert_eq!(code, 3);
    for bundle in ["SHA256SUMS.sigstore.json", "provenance.sigstore.json"] {
        assert!(keyless_line(&report, bundle).is_err(), "{bundle}");
    }
}

// ---- one tamper per check, through `xrelease verify --json` -----------------------------------

#[test]
fn tamper_wrong_identity() {
    let release = keyless_release();
    let (code, report) = verify_keyless(
        &release.dist,
        "https://github.com/o/r/.github/workflows/release.yml@refs/heads/main",
        GITHUB_ISSUER,
        &release.server.trusted_root,
    );
    assert_eq!(code, 3);
    for bundle in bundles() {
        let line = keyless_line(&report, &bundle);
        assert!(
            matches!(&line, Err(why) if why.contains("identity mismatch") && why.contains(WORKFLOW_IDENTITY)),
            "{bundle}: the failure names the identity found: {line:?}"
        );
    }
}

#[test]
fn tamper_wrong_issuer() {
    let release = keyless_release();
    let (code, report) = verify_keyless(
        &release.dist,
        WORKFLOW_IDENTITY,
        "https://accounts.google.com",
        &release.server.trusted_root,
    );
    assert_eq!(code, 3);
    for bundle in bundles() {
        let line = keyless_line(&report, &bundle);
        assert!(
            matches!(&line, Err(why) if why.contains("issuer mismatch") && why.contains(GITHUB_ISSUER)),
            "{bundle}: {line:?}"
        );
    }
}

#[test]
fn tamper_another_trusted_root() {
    let release = keyless_release();
    let (code, report) = verify_keyless(
        &release.dist,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
        &release.server.other_trusted_root,
    );
    assert_eq!(code, 3);
    for bundle in bundles() {
        let line = keyless_line(&report, &bundle);
        assert!(
            matches!(&line, Err(why) if why.contains(OTHER_ROOT)),
            "{bundle}: {line:?}"
        );
    }
}

#[test]
fn tamper_a_garbage_signed_entry_timestamp() {
    let (_s, dir) = keyless_copy();
    let garbage = xrelease::signing::key::PrivateKey::generate()
        .unwrap()
        .sign(b"garbage");
    edit_json(&dir.join("SHA256SUMS.sigstore.json"), |b| {
        b["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]["signedEntryTimestamp"] =
            STANDARD.encode(garbage).into();
    });
    assert_keyless_fails(&dir, "SHA256SUMS.sigstore.json", BAD_SET);
}

#[test]
fn tamper_an_inclusion_proof_hash() {
    let (_s, dir) = keyless_copy();
    edit_json(&dir.join("provenance.sigstore.json"), |b| {
        let hash = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][0];
        let mut bytes = STANDARD.decode(hash.as_str().unwrap()).unwrap();
        bytes[0] ^= 1;
        *hash = STANDARD.encode(bytes).into();
    });
    let report = assert_keyless_fails(&dir, "provenance.sigstore.json", BAD_PROOF);
    // The statement of an envelope that did not verify is not trusted either.
    assert!(
        failures(&report)
            .iter()
            .any(|f| f.starts_with("attestation provenance.intoto.jsonl")),
        "{:#?}",
        failures(&report)
    );
}

#[test]
fn tamper_a_checkpoint_signed_by_another_key() {
    let (_s, dir) = keyless_copy();
    edit_json(&dir.join("SHA256SUMS.sigstore.json"), |b| {
        let envelope = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
            ["envelope"];
        let text = envelope.as_str().unwrap().to_string();
        let (note, signatures) = text.split_once("\n\n").unwrap();
        let note = format!("{note}\n");
        let (name, b64) = signatures
            .trim_end()
            .trim_start_matches("\u{2014} ")
            .split_once(' ')
            .unwrap();
        // Keep the log's key hint so the verifier tries (and must reject) this signature.
        let hint = STANDARD.decode(b64).unwrap()[..4].to_vec();
        let forged = xrelease::signing::key::PrivateKey::generate()
            .unwrap()
            .sign(note.as_bytes());
        *envelope = format!(
            "{note}\n\u{2014} {name} {}\n",
            STANDARD.encode([hint, forged].concat())
        )
        .into();
    });
    assert_keyless_fails(&dir, "SHA256SUMS.sigstore.json", BAD_CHECKPOINT);
}

#[test]
fn tamper_a_genuine_log_entry_for_another_digest() {
    // Really in the same log (its SET, proof and checkpoint hold), just not for SHA256SUMS.
    let release = keyless_release();
    let (_s, dir) = keyless_copy();
    let config = xrelease::signing::keyless::KeylessConfig {
        services: xrelease::signing::services::Services {
            fulcio_url: release.server.fulcio_url.clone(),
            rekor_url: release.server.rekor_url.clone(),
            ..Default::default()
        },
        trust: xrelease::signing::keyless::TrustSource::File(release.server.trusted_root.clone()),
        identity: None,
        issuer: None,
    };
    let token =
        xrelease::signing::oidc::IdToken::parse(unsigned_jwt(&github_claims()), "test").unwrap();
    let other = xrelease::signing::keyless::KeylessSigner::new(&config, &token)
        .unwrap()
        .sign_blob(b"other bytes\n")
        .unwrap();
    let other: Value = serde_json::from_str(&other.to_json().unwrap()).unwrap();
    edit_json(&dir.join("SHA256SUMS.sigstore.json"), |b| {
        b["verificationMaterial"]["tlogEntries"] =
            other["verificationMaterial"]["tlogEntries"].clone();
    });
    assert_keyless_fails(&dir, "SHA256SUMS.sigstore.json", OTHER_ENTRY);
}

#[test]
fn tamper_the_signed_artifact_changed() {
    // An attacker swaps a binary and rewrites SHA256SUMS to match: every line checks out, but
    // SHA256SUMS is no longer what was signed and logged.
    let (_s, dir) = keyless_copy();
    std::fs::copy(dir.join(BINARIES[0]), dir.join(BINARIES[1])).unwrap();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let rewritten: String = sums
        .lines()
        .map(|line| {
            let name = &line[66..];
            let bytes = std::fs::read(dir.join(name)).unwrap();
            format!("{}  {name}\n", xrelease::digest::sha256_bytes(&bytes))
        })
        .collect();
    std::fs::write(dir.join("SHA256SUMS"), rewritten).unwrap();
    let report = assert_keyless_fails(&dir, "SHA256SUMS.sigstore.json", CHANGED_ARTIFACT);
    assert!(
        failures(&report)
            .iter()
            .all(|f| !f.starts_with("checksum ")),
        "the sums themselves match the files"
    );
}

#[test]
fn tamper_an_attestation_envelope_differs_from_its_bundle() {
    // The loose `.intoto.jsonl` is what most tools read: it must be the bundle's envelope.
    let (_s, dir) = keyless_copy();
    let path = dir.join("provenance.intoto.jsonl");
    let mut envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    envelope["payload"] = STANDARD
        .encode(br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#)
        .into();
    std::fs::write(&path, format!("{envelope}\n")).unwrap();
    assert_keyless_fails(
        &dir,
        "provenance.sigstore.json",
        "differs from the one in the bundle",
    );
}

#[test]
fn tamper_the_loose_signature_or_certificate_differs_from_the_bundle() {
    let (_s, dir) = keyless_copy();
    let other = xrelease::signing::key::PrivateKey::generate().unwrap();
    std::fs::write(
        dir.join("SHA256SUMS.sig"),
        other.sign_base64(&std::fs::read(dir.join("SHA256SUMS")).unwrap()),
    )
    .unwrap();
    let (code, report) = verify_keyless(
        &dir,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
        &keyless_release().server.trusted_root,
    );
    assert_eq!(code, 3);
    assert_eq!(
        failures(&report),
        ["signature SHA256SUMS.sig: not the signature in SHA256SUMS.sigstore.json"]
    );

    let (_s, dir) = keyless_copy();
    std::fs::write(dir.join("SHA256SUMS.pem"), other.public_key().to_pem()).unwrap();
    let (code, report) = verify_keyless(
        &dir,
        WORKFLOW_IDENTITY,
        GITHUB_ISSUER,
        &keyless_release().server.trusted_root,
    );
    assert_eq!(code, 3);
    assert_eq!(failures(&report).len(), 1, "{:#?}", failures(&report));
    assert!(failures(&report)[0].starts_with("signature SHA256SUMS.pem: "));
}
