//! Keyless (Sigstore) signatures under the release's policy: the bundle over `SHA256SUMS` and
//! each attestation's bundle, verified by the sigstore-rust crates ([`sigstore::verify_parsed`]),
//! one `keyless` line per bundle; and `xrelease verify-bundle`, one artifact against one bundle.
//!
//! The loose files (`SHA256SUMS.sig`, `SHA256SUMS.pem`, `.intoto.jsonl`) are what other tools
//! read, so each must be exactly what its verified bundle holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{Checks, Policy};
use crate::error::Error;
use crate::signing::dsse::Envelope;
use crate::signing::key::decode_signature;
use crate::signing::keyless::TrustSource;
use crate::signing::sigstore::{self, ParsedBundle, Root, Signer, Subject, Verified};

type Files = BTreeMap<String, Option<Vec<u8>>>;

/// The check kind of every line this module reports.
pub const KIND: &str = "keyless";
pub const SUMS_BUNDLE: &str = "SHA256SUMS.sigstore.json";
pub const SUMS_SIGNATURE: &str = "SHA256SUMS.sig";
pub const SUMS_CERTIFICATE: &str = "SHA256SUMS.pem";

fn parts(policy: &Policy) -> (&Root, Signer) {
    match policy {
        Policy::Keyless {
            identity,
            issuer,
            root,
        } => (
            root,
            Signer::Identity {
                identity: identity.clone(),
                issuer: issuer.clone(),
            },
        ),
        Policy::Key(_) => unreachable!("only called under a keyless policy"),
    }
}

fn read_bundle(files: &Files, name: &str) -> Result<ParsedBundle, String> {
    let bytes = files
        .get(name)
        .and_then(|b| b.as_deref())
        .ok_or_else(|| format!("{name} is missing"))?;
    let text = std::str::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8 JSON"))?;
    ParsedBundle::from_json(text).map_err(|e| format!("{name}: {e}"))
}

/// The `keyless` line of one bundle: what verified (identity, times), or why not.
fn report(checks: &mut Checks, bundle_name: &str, result: Result<Verified, String>) -> bool {
    let ok = result.is_ok();
    checks.add(KIND, bundle_name, result.map(|v| v.to_string()));
    ok
}

/// Check 2 under a keyless policy: `SHA256SUMS.sigstore.json` verifies over `SHA256SUMS`, and
/// `SHA256SUMS.sig` / `SHA256SUMS.pem` are that bundle's signature and certificate (what
/// `cosign verify-blob --signature --certificate` would read).
pub(super) fn check_signature(checks: &mut Checks, policy: &Policy, files: &Files) {
    let (root, signer) = parts(policy);
    let sums = files.get(crate::layout::SUMS).and_then(|b| b.as_deref());
    let bundle = read_bundle(files, SUMS_BUNDLE);

    let sig = files.get(SUMS_SIGNATURE).and_then(|b| b.as_deref());
    checks.add(
        "signature",
        SUMS_SIGNATURE,
        match (&bundle, sig) {
            (_, None) => Err(format!("{SUMS_SIGNATURE} is missing")),
            (Err(why), _) => Err(format!("not checked: {why}")),
            (Ok(bundle), Some(sig)) => match bundle.message_signature() {
                Some(bundled) => std::str::from_utf8(sig)
                    .map_err(|_| "the signature is not text (base64 expected)".to_string())
                    .and_then(|text| decode_signature(text.trim()).map_err(|e| e.to_string()))
                    .and_then(|der| {
                        if der == bundled {
                            Ok(format!("the signature in {SUMS_BUNDLE}"))
                        } else {
                            Err(format!("not the signature in {SUMS_BUNDLE}"))
                        }
                    }),
                None => Err(format!("{SUMS_BUNDLE} holds no blob signature")),
            },
        },
    );

    let pem = files.get(SUMS_CERTIFICATE).and_then(|b| b.as_deref());
    checks.add(
        "signature",
        SUMS_CERTIFICATE,
        match (&bundle, pem) {
            (_, None) => Err(format!("{SUMS_CERTIFICATE} is missing")),
            (Err(why), _) => Err(format!("not checked: {why}")),
            (Ok(bundle), Some(pem)) => {
                let der = std::str::from_utf8(pem)
                    .map_err(|_| "not PEM text".to_string())
                    .and_then(sigstore::single_certificate_pem);
                match (bundle.certificate_der(), der) {
                    (_, Err(why)) => Err(why),
                    (Some(cert), Ok(der)) if der == cert => {
                        Ok(format!("the certificate in {SUMS_BUNDLE}"))
                    }
                    _ => Err(format!("not the (single) certificate in {SUMS_BUNDLE}")),
                }
            }
        },
    );

    let result = match (sums, bundle) {
        (None, _) => Err("SHA256SUMS is missing, so its signature cannot be checked".into()),
        (_, Err(why)) => Err(why),
        (Some(sums), Ok(bundle)) => {
            sigstore::verify_parsed(&bundle, Subject::Bytes(sums), &signer, root)
                .map_err(|e| e.to_string())
        }
    };
    report(checks, SUMS_BUNDLE, result);
}

/// An attestation envelope under a keyless policy: its bundle `bundle_name` must hold this very
/// envelope and verify. Returns the verified payload.
pub(super) fn verify_envelope(
    checks: &mut Checks,
    policy: &Policy,
    files: &Files,
    bundle_name: &str,
    envelope: &Envelope,
) -> Result<Vec<u8>, String> {
    let (root, signer) = parts(policy);
    let result = read_bundle(files, bundle_name).and_then(|bundle| {
        let payload = same_envelope(&bundle, envelope)?;
        let subject = first_subject(&payload)?;
        sigstore::verify_parsed(&bundle, Subject::Sha256(subject), &signer, root)
            .map_err(|e| e.to_string())
            .map(|verified| (verified, payload))
    });
    match result {
        Ok((verified, payload)) => {
            report(checks, bundle_name, Ok(verified));
            Ok(payload)
        }
        Err(why) => {
            report(checks, bundle_name, Err(why));
            Err(format!(
                "its Sigstore bundle {bundle_name} did not pass the keyless checks"
            ))
        }
    }
}

/// The loose envelope must be the bundle's, byte for byte: payload type, payload, signature.
/// Returns the payload.
fn same_envelope(bundle: &ParsedBundle, envelope: &Envelope) -> Result<Vec<u8>, String> {
    let differs = || "the envelope beside it differs from the one in the bundle".to_string();
    let bundled = bundle
        .envelope()
        .ok_or_else(|| "the bundle holds no DSSE envelope".to_string())?;
    let payload = envelope.payload_bytes().map_err(|e| e.to_string())?;
    let [signature] = envelope.signatures.as_slice() else {
        return Err(differs());
    };
    let signature = STANDARD.decode(&signature.sig).map_err(|_| differs())?;
    if bundled.payload_type != envelope.payload_type
        || bundled.payload != payload.as_slice()
        || bundled.signature != signature.as_slice()
    {
        return Err(differs());
    }
    Ok(payload)
}

/// The SHA-256 of the statement's first subject: what the crates bind the envelope to (the
/// attestation checks then match every subject against the release's files).
fn first_subject(payload: &[u8]) -> Result<[u8; 32], String> {
    let statement: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| format!("the envelope's payload is not an in-toto statement: {e}"))?;
    statement["subject"][0]["digest"]["sha256"]
        .as_str()
        .and_then(
            |hex| match Subject::parse_digest(&format!("sha256:{hex}")) {
                Some(Subject::Sha256(digest)) => Some(digest),
                _ => None,
            },
        )
        .ok_or_else(|| "the statement names no subject with a SHA-256 digest".to_string())
}

/// Who must have signed a single bundle (`xrelease verify-bundle`).
#[derive(Debug, Clone)]
pub enum BundleSigner {
    /// Keyless: this certificate identity from this OIDC issuer.
    Identity { identity: String, issuer: String },
    /// A managed key: the PEM public key in this file.
    Key(PathBuf),
}

/// `xrelease verify-bundle`: one artifact (a path, or `sha256:<hex>`) against one bundle.
///
/// What the caller supplied but cannot be read (a missing file, a key that is not PEM, a
/// trusted root that cannot be fetched) is bad usage (exit 2); everything about the bundle,
/// the artifact and the trust they claim is the verification's to refuse (exit 3).
pub fn verify_artifact(
    artifact: &str,
    bundle: &Path,
    signer: &BundleSigner,
    trust: &TrustSource,
) -> Result<Verified, Error> {
    let signer = match signer {
        BundleSigner::Identity { identity, issuer } => Signer::Identity {
            identity: identity.clone(),
            issuer: issuer.clone(),
        },
        BundleSigner::Key(path) => {
            let pem = std::fs::read_to_string(path).map_err(Error::io("reading the key", path))?;
            Signer::key_from_pem(&pem)
                .map_err(|why| Error::Config(format!("{}: {why}", path.display())))?
        }
    };
    let bytes;
    let subject = if artifact.starts_with("sha256:") {
        Subject::parse_digest(artifact).ok_or_else(|| {
            Error::Config(format!(
                "`{artifact}` is not a SHA-256 digest: write sha256: and 64 hex digits, or give the artifact's path"
            ))
        })?
    } else {
        bytes = std::fs::read(artifact).map_err(Error::io("reading the artifact", artifact))?;
        Subject::Bytes(&bytes)
    };
    let bundle_json = std::fs::read(bundle).map_err(Error::io("reading the bundle", bundle))?;
    let refused = |why: String| Error::Verification(format!("{}: {why}", bundle.display()));
    let bundle_json = String::from_utf8(bundle_json)
        .map_err(|_| refused("not a Sigstore bundle: not UTF-8 text".into()))?;
    // As for `xrelease verify`: a repository that served something that does not verify is a
    // refusal (exit 3); one that cannot be reached, or a missing cache, is bad usage (exit 2).
    let json = trust
        .resolve_json(&crate::signing::process_env)
        .map_err(|e| match &e {
            crate::signing::keyless::KeylessError::Tuf(tuf) if tuf.is_untrusted() => {
                Error::Verification(format!(
                    "the trusted root could not be verified over TUF: {e}"
                ))
            }
            _ => Error::Config(e.to_string()),
        })?;
    let root = Root::from_json(&json.text, &json.source).map_err(|e| refused(e.to_string()))?;
    sigstore::verify(&bundle_json, subject, &signer, &root).map_err(|e| refused(e.to_string()))
}
