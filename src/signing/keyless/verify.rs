//! Offline verification of a keyless Sigstore bundle: one reported result per check, failing closed.
//!
//! Every check in [`Check::ALL`] is always reported, in that order. A check that cannot run
//! because something it depends on failed is reported as failed ([`VerifyError::NotChecked`]),
//! never skipped, so "all passed" means every check actually ran and passed.

use sha2::{Digest as _, Sha256};

use super::ExpectedIdentity;
use super::check::{Check, CheckResult, VerifyError};
use crate::digest::hex;
use crate::signing::bundle::{
    Bundle, Content, HashAlgorithm, MEDIA_TYPE, TransparencyLogEntry, VerificationContent,
};
use crate::signing::certificate::{self, Cert, Chain};
use crate::signing::dsse::{Envelope, decode_base64_lenient, pae};
use crate::signing::rekor::{self, Signed};
use crate::signing::sct;
use crate::signing::tlog;
use crate::signing::trusted_root::{TrustedRoot, format_rfc3339};

/// What the bundle is supposed to sign.
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    /// The artifact's bytes, for a `messageSignature` bundle.
    Blob(&'a [u8]),
    /// The DSSE envelope as distributed (e.g. `provenance.intoto.jsonl`); it must be the one in
    /// the bundle. Pass the bundle's own envelope when there is no separate file.
    Envelope(&'a Envelope),
}

/// Verifies a keyless bundle offline against `root` and `expected`; one result per [`Check`].
pub fn verify_bundle(
    bundle: &Bundle,
    artifact: Artifact<'_>,
    root: &TrustedRoot,
    expected: &ExpectedIdentity,
) -> Vec<CheckResult> {
    let mut results = Vec::with_capacity(Check::ALL.len());
    let mut report = |check: Check, outcome: Result<String, VerifyError>| {
        results.push(CheckResult { check, outcome });
    };
    let shape = match shape(bundle, artifact) {
        Ok(shape) => shape,
        Err(why) => return unusable_bundle(why),
    };
    let Shape {
        leaf,
        entry,
        signed,
    } = &shape;
    let at = entry.integrated_time;
    report(
        Check::Bundle,
        Ok(format!(
            "{} entry #{} in log {}",
            entry.kind_version.kind,
            entry.log_index,
            hex(&entry.log_id.key_id.0)
        )),
    );

    let chain = certificate::verify_chain(leaf, &root.certificate_authorities, at)
        .map_err(VerifyError::Chain);
    report(
        Check::CertificateChain,
        chain
            .as_ref()
            .map(|c| describe_ca(root, c))
            .map_err(Clone::clone),
    );
    report(Check::CertificateValidity, validity(leaf, at));
    report(
        Check::Sct,
        match &chain {
            Ok(chain) => {
                sct::verify_embedded_scts(leaf, &chain.issuer, root).map_err(VerifyError::Sct)
            }
            Err(_) => Err(VerifyError::NotChecked(Check::CertificateChain.id())),
        },
    );
    report(Check::Identity, identity(leaf, &expected.identity));
    report(Check::Issuer, issuer(leaf, &expected.issuer));
    report(Check::Signature, signature(leaf, signed));
    report(
        Check::TlogBody,
        rekor::check_body(
            &entry.canonicalized_body.0,
            &entry.kind_version,
            &signed.as_rekor(),
            leaf,
        )
        .map_err(VerifyError::TlogBody),
    );

    let log = log_key(root, entry);
    report(
        Check::SignedEntryTimestamp,
        log.clone().and_then(|(name, key)| {
            tlog::verify_set(entry, &key)
                .map(|()| {
                    format!(
                        "log {name}, index {}, integrated {}",
                        entry.log_index,
                        format_rfc3339(at)
                    )
                })
                .map_err(VerifyError::Set)
        }),
    );
    let proof = entry
        .inclusion_proof
        .as_ref()
        .ok_or_else(|| VerifyError::Inclusion("the entry has no inclusion proof".to_owned()));
    report(
        Check::InclusionProof,
        proof.clone().and_then(|proof| {
            tlog::verify_inclusion(proof, &entry.canonicalized_body.0)
                .map(|()| {
                    format!(
                        "leaf {} of {}, root {}",
                        proof.log_index,
                        proof.tree_size,
                        hex(&proof.root_hash.0)
                    )
                })
                .map_err(VerifyError::Inclusion)
        }),
    );
    report(
        Check::Checkpoint,
        match (&proof, &log) {
            (Ok(proof), Ok((_, key))) => {
                tlog::verify_checkpoint(proof, key, &entry.log_id.key_id.0)
                    .map(|cp| format!("`{}`, size {}", cp.origin, cp.size))
                    .map_err(VerifyError::Checkpoint)
            }
            (Err(_), _) => Err(VerifyError::NotChecked(Check::InclusionProof.id())),
            (_, Err(why)) => Err(why.clone()),
        },
    );
    results
}

/// Like [`verify_bundle`], from the bundle's JSON text: a file that does not parse is reported as
/// a failed `bundle` check with every other check failed as not run.
pub fn verify_bundle_json(
    json: &str,
    artifact: Artifact<'_>,
    root: &TrustedRoot,
    expected: &ExpectedIdentity,
) -> Vec<CheckResult> {
    match Bundle::from_json(json) {
        Ok(bundle) => verify_bundle(&bundle, artifact, root, expected),
        Err(why) => unusable_bundle(VerifyError::Bundle(why.to_string())),
    }
}

/// The results for a bundle that cannot be checked at all (missing, unreadable, or not a
/// bundle): `bundle` fails with `why`, and every other check fails as not run.
pub fn unusable_bundle(why: VerifyError) -> Vec<CheckResult> {
    let mut results = vec![CheckResult {
        check: Check::Bundle,
        outcome: Err(why),
    }];
    results.extend(Check::ALL[1..].iter().map(|&check| CheckResult {
        check,
        outcome: Err(VerifyError::NotChecked(Check::Bundle.id())),
    }));
    results
}

/// What was signed, as the bundle and the caller's artifact say.
enum SignedThing<'a> {
    Blob {
        artifact: &'a [u8],
        digest: [u8; 32],
        signature: Vec<u8>,
        claimed_digest: Option<(HashAlgorithm, &'a [u8])>,
    },
    Dsse {
        bundled: &'a Envelope,
        given: &'a Envelope,
    },
}

impl SignedThing<'_> {
    fn as_rekor(&self) -> Signed<'_> {
        match self {
            SignedThing::Blob {
                digest, signature, ..
            } => Signed::Blob { digest, signature },
            SignedThing::Dsse { bundled, .. } => Signed::Dsse(bundled),
        }
    }
}

struct Shape<'a> {
    leaf: Cert,
    entry: &'a TransparencyLogEntry,
    signed: SignedThing<'a>,
}

fn shape<'a>(bundle: &'a Bundle, artifact: Artifact<'a>) -> Result<Shape<'a>, VerifyError> {
    let bad = |why: String| Err(VerifyError::Bundle(why));
    if bundle.media_type != MEDIA_TYPE
        && bundle.media_type != crate::signing::bundle::MEDIA_TYPE_LEGACY_SPELLING
    {
        return bad(format!(
            "media type `{}` is not a v0.3 bundle; re-sign to produce one",
            bundle.media_type
        ));
    }
    let leaf = match &bundle.verification_material.content {
        VerificationContent::Certificate(cert) => {
            Cert::from_der(&cert.raw_bytes.0, "bundle's certificate")
                .map_err(|e| VerifyError::Bundle(e.to_string()))?
        }
        VerificationContent::PublicKey(_) => {
            return bad("the bundle is key-signed, not keyless; verify it with `--key`".to_owned());
        }
    };
    let entry = match bundle.verification_material.tlog_entries.as_slice() {
        [entry] => entry,
        entries => {
            return bad(format!(
                "the bundle has {} transparency log entries; a keyless bundle has exactly one",
                entries.len()
            ));
        }
    };
    let signed = match (&bundle.content, artifact) {
        (Content::MessageSignature(sig), Artifact::Blob(artifact)) => SignedThing::Blob {
            artifact,
            digest: Sha256::digest(artifact).into(),
            signature: sig.signature.0.clone(),
            claimed_digest: sig
                .message_digest
                .as_ref()
                .map(|d| (d.algorithm, d.digest.0.as_slice())),
        },
        (Content::DsseEnvelope(bundled), Artifact::Envelope(given)) => {
            SignedThing::Dsse { bundled, given }
        }
        (Content::MessageSignature(_), Artifact::Envelope(_)) => {
            return bad(
                "the bundle signs a blob, but a DSSE envelope was given to check".to_owned(),
            );
        }
        (Content::DsseEnvelope(_), Artifact::Blob(_)) => {
            return bad(
                "the bundle holds a DSSE envelope (an attestation), but a blob was given to check"
                    .to_owned(),
            );
        }
    };
    Ok(Shape {
        leaf,
        entry,
        signed,
    })
}

fn describe_ca(root: &TrustedRoot, chain: &Chain) -> String {
    let uri = root
        .certificate_authorities
        .get(chain.authority)
        .map_or("", |ca| ca.uri.as_str());
    format!("CA #{} ({uri})", chain.authority)
}

fn validity(leaf: &Cert, at: i64) -> Result<String, VerifyError> {
    let (not_before, not_after) = leaf.validity();
    let (nb, na, it) = (
        format_rfc3339(not_before),
        format_rfc3339(not_after),
        format_rfc3339(at),
    );
    if leaf.valid_at(at) {
        Ok(format!("logged at {it}, within {nb} .. {na}"))
    } else {
        Err(VerifyError::NotValidAtIntegratedTime {
            not_before: nb,
            not_after: na,
            integrated: it,
        })
    }
}

fn identity(leaf: &Cert, expected: &str) -> Result<String, VerifyError> {
    let found = leaf.san_identities();
    if found.iter().any(|san| san == expected) {
        Ok(expected.to_owned())
    } else {
        Err(VerifyError::Identity {
            expected: expected.to_owned(),
            found,
        })
    }
}

fn issuer(leaf: &Cert, expected: &str) -> Result<String, VerifyError> {
    let mismatch = |found: String| VerifyError::Issuer {
        expected: expected.to_owned(),
        found,
    };
    match leaf.oidc_issuer() {
        Ok(Some(found)) if found == expected => Ok(found),
        Ok(Some(found)) => Err(mismatch(format!("`{found}`"))),
        Ok(None) => Err(mismatch("missing (no Fulcio issuer extension)".to_owned())),
        Err(why) => Err(mismatch(why)),
    }
}

fn signature(leaf: &Cert, signed: &SignedThing<'_>) -> Result<String, VerifyError> {
    let fail = |why: String| Err(VerifyError::Signature(why));
    let key = leaf
        .public_key()
        .map_err(|e| VerifyError::Signature(e.to_string()))?;
    match signed {
        SignedThing::Blob {
            artifact,
            digest,
            signature,
            claimed_digest,
        } => {
            if let Some((algorithm, claimed)) = claimed_digest {
                if *algorithm != HashAlgorithm::Sha2_256 {
                    return fail(format!(
                        "the bundle's digest uses {algorithm:?}; only SHA2_256 is supported"
                    ));
                }
                if claimed != digest {
                    return fail(format!(
                        "the artifact's sha256 is {} but the bundle signed {}: the artifact changed after signing, or the bundle belongs to another file",
                        hex(digest),
                        hex(claimed)
                    ));
                }
            }
            if key.verify(key.natural_hash(), artifact, signature) {
                Ok(format!("sha256:{}", hex(digest)))
            } else {
                fail("the signature does not verify over the artifact with the certificate's key: the artifact changed after signing, or the bundle belongs to another file".to_owned())
            }
        }
        SignedThing::Dsse { bundled, given } => {
            if bundled != given {
                return fail("the envelope given differs from the one in the bundle; check you paired the right .intoto.jsonl and .sigstore.json".to_owned());
            }
            let [only] = bundled.signatures.as_slice() else {
                return fail(format!(
                    "the envelope has {} signatures; a keyless bundle's has exactly one",
                    bundled.signatures.len()
                ));
            };
            let payload = bundled
                .payload_bytes()
                .map_err(|e| VerifyError::Signature(e.to_string()))?;
            let sig = decode_base64_lenient(&only.sig).map_err(|e| {
                VerifyError::Signature(format!("the envelope signature is not base64 ({e})"))
            })?;
            if key.verify(
                key.natural_hash(),
                &pae(&bundled.payload_type, &payload),
                &sig,
            ) {
                Ok(format!(
                    "DSSE {} payload sha256:{}",
                    bundled.payload_type,
                    hex(&Sha256::digest(&payload))
                ))
            } else {
                fail("the DSSE signature does not verify over the envelope's payload and type: the envelope was altered after signing".to_owned())
            }
        }
    }
}

/// The trusted log an entry names, with its key, if it was in use at the integrated time.
fn log_key(
    root: &TrustedRoot,
    entry: &TransparencyLogEntry,
) -> Result<(String, crate::signing::ec::EcKey), VerifyError> {
    let key_id = &entry.log_id.key_id.0;
    let log = root.tlog(key_id).ok_or_else(|| {
        VerifyError::Log(format!(
            "the entry names transparency log {}, which the trusted root does not list; pass the trusted root of the instance that logged it",
            hex(key_id)
        ))
    })?;
    if !log.valid_at(entry.integrated_time) {
        return Err(VerifyError::Log(format!(
            "log {} was not in use at the entry's integrated time {}",
            log.base_url,
            format_rfc3339(entry.integrated_time)
        )));
    }
    let key = log.key().map_err(|e| VerifyError::Log(e.to_string()))?;
    Ok((log.base_url.clone(), key))
}
