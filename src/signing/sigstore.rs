//! The one door to the Sigstore protocol: bundles, trusted roots and their verification go
//! through the official sigstore-rust crates (`sigstore-verify`, `sigstore-trust-root`,
//! `sigstore-types`) here and nowhere else, so the rest of xrelease speaks only of release
//! policy — which file, which identity or key, which root.
//!
//! What the crates check for a bundle: its structure (v0.1–v0.3), the certificate chain to a
//! Fulcio CA of the trusted root and its SCT, the signature over the artifact (message
//! signature or DSSE envelope, whose in-toto subject must name the artifact), every
//! transparency-log entry (Rekor v1 SET and inclusion proof, Rekor v2 Ed25519 checkpoint), RFC
//! 3161 timestamps from a trusted TSA, the certificate's validity at the verified time, and the
//! identity and issuer. Anything else is refused: the crates fail closed, and so does this.

use std::fmt;

use sigstore_trust_root::TrustedRoot;
use sigstore_types::{Artifact, Bundle, DerPublicKey, Sha256Hash, SignatureContent};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, Verifier};

/// A Sigstore trusted root (Fulcio CAs, Rekor logs, CT logs, TSAs), parsed and checked.
#[derive(Clone)]
pub struct Root {
    root: TrustedRoot,
    /// Where it came from, for messages.
    source: String,
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Root")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A trusted root that is not one: the text is not a trusted_root.json the crates accept.
#[derive(Debug, thiserror::Error)]
#[error("{source_name} is not a usable Sigstore trusted root: {detail}")]
pub struct RootError {
    source_name: String,
    detail: String,
}

impl Root {
    /// Parses `json` (a `trusted_root.json`), naming it `source` in errors.
    /// A ClientTrustConfig (`cosign trusted-root create` writes one) is unwrapped first: the
    /// crates read only the bare trusted root.
    pub fn from_json(json: &str, source: &str) -> Result<Self, RootError> {
        let err = |detail: String| RootError {
            source_name: source.to_owned(),
            detail,
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
        let root = match value.get("trustedRoot") {
            Some(inner) => TrustedRoot::from_json(&inner.to_string()),
            None => TrustedRoot::from_json(json),
        }
        .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            root,
            source: source.to_owned(),
        })
    }

    /// Where this root came from (a file, a TUF target).
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Who must have signed.
#[derive(Debug, Clone)]
pub enum Signer {
    /// A Fulcio certificate for exactly this identity (SAN) from exactly this OIDC issuer.
    Identity { identity: String, issuer: String },
    /// A managed key (PEM `PUBLIC KEY`, SubjectPublicKeyInfo DER inside).
    Key(DerPublicKey),
}

impl Signer {
    /// A managed key from its PEM text.
    pub fn key_from_pem(pem: &str) -> Result<Self, String> {
        DerPublicKey::from_pem(pem)
            .map(Signer::Key)
            .map_err(|e| {
                format!(
                    "not a PEM public key ({e}); pass the signer's public key as PEM (-----BEGIN PUBLIC KEY-----)"
                )
            })
    }
}

/// What was signed: the bytes, or only their SHA-256 (the bytes are then not needed, and a
/// DSSE envelope is bound through its in-toto subject digest).
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Bytes(&'a [u8]),
    Sha256([u8; 32]),
}

impl<'a> Subject<'a> {
    /// `sha256:<64 hex>` as the conformance protocol writes a digest.
    pub fn parse_digest(text: &str) -> Option<Subject<'static>> {
        let hex = text.strip_prefix("sha256:")?;
        let hash = Sha256Hash::from_hex(hex).ok()?;
        Some(Subject::Sha256(*hash.as_bytes()))
    }

    fn artifact(self) -> Artifact<'a> {
        match self {
            Subject::Bytes(bytes) => Artifact::from_blob(bytes),
            Subject::Sha256(digest) => Artifact::from(Sha256Hash::new(digest)),
        }
    }
}

/// A bundle that passed every check, with what was learnt from it.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The certificate identity (keyless), for reports.
    pub identity: Option<String>,
    /// The verified signing times (Rekor integrated time, TSA timestamps), RFC 3339.
    pub times: Vec<String>,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.identity {
            Some(identity) => write!(f, "signed by {identity}")?,
            None => write!(f, "signed by the key")?,
        }
        if !self.times.is_empty() {
            write!(f, " at {}", self.times.join(", "))?;
        }
        Ok(())
    }
}

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("not a Sigstore bundle: {0}")]
    Parse(String),
    #[error("{0}")]
    Verify(String),
}

/// A bundle parsed but not yet verified: what it claims, for comparisons with the loose files
/// beside it (`SHA256SUMS.sig`, `.pem`, `.intoto.jsonl`).
pub struct ParsedBundle(Bundle);

/// A DSSE envelope's parts as a bundle holds it (one signature).
pub struct EnvelopeParts<'a> {
    pub payload_type: &'a str,
    pub payload: &'a [u8],
    pub signature: &'a [u8],
}

impl ParsedBundle {
    pub fn from_json(json: &str) -> Result<Self, Refused> {
        Bundle::from_json(json)
            .map(ParsedBundle)
            .map_err(|e| Refused::Parse(e.to_string()))
    }

    /// The signature of a message-signature bundle.
    pub fn message_signature(&self) -> Option<&[u8]> {
        match &self.0.content {
            SignatureContent::MessageSignature(m) => Some(m.signature.as_bytes()),
            _ => None,
        }
    }

    /// The envelope of a DSSE bundle.
    pub fn envelope(&self) -> Option<EnvelopeParts<'_>> {
        match &self.0.content {
            SignatureContent::DsseEnvelope(e) => Some(EnvelopeParts {
                payload_type: &e.payload_type,
                payload: e.payload.as_bytes(),
                signature: e.signature.sig.as_bytes(),
            }),
            _ => None,
        }
    }

    /// The signing certificate (DER), if the bundle carries one.
    pub fn certificate_der(&self) -> Option<&[u8]> {
        self.0.signing_certificate().map(|c| c.as_bytes())
    }
}

/// The DER of the one certificate in PEM text (`SHA256SUMS.pem`); more than one is refused.
pub fn single_certificate_pem(text: &str) -> Result<Vec<u8>, String> {
    match text.matches("-----BEGIN CERTIFICATE-----").count() {
        1 => sigstore_types::DerCertificate::from_pem(text)
            .map(|c| c.as_bytes().to_vec())
            .map_err(|e| format!("not a PEM certificate ({e})")),
        0 => Err("no `CERTIFICATE` PEM block".to_owned()),
        n => Err(format!("{n} certificates where one is expected")),
    }
}

/// Verifies `bundle_json` over `subject`, signed as `signer`, against `root`.
pub fn verify(
    bundle_json: &str,
    subject: Subject<'_>,
    signer: &Signer,
    root: &Root,
) -> Result<Verified, Refused> {
    verify_parsed(
        &ParsedBundle::from_json(bundle_json)?,
        subject,
        signer,
        root,
    )
}

/// [`verify`] for a bundle already parsed.
pub fn verify_parsed(
    bundle: &ParsedBundle,
    subject: Subject<'_>,
    signer: &Signer,
    root: &Root,
) -> Result<Verified, Refused> {
    let bundle = &bundle.0;
    let verifier = Verifier::new(&root.root).map_err(|e| {
        Refused::Verify(format!("the trusted root {} is unusable: {e}", root.source))
    })?;
    let result = match signer {
        Signer::Identity { identity, issuer } => verifier.verify(
            subject.artifact(),
            bundle,
            &VerificationPolicy::new(identity.as_str(), issuer.as_str()),
        ),
        Signer::Key(key) => verifier.verify(
            subject.artifact(),
            bundle,
            &PublicKeyVerificationPolicy::new(key.clone()),
        ),
    }
    .map_err(|e| Refused::Verify(e.to_string()))?;
    let mut times: Vec<String> = result
        .integrated_time()
        .into_iter()
        .chain(result.verified_timestamps().iter().copied())
        .map(|t| t.to_string())
        .collect();
    times.dedup();
    Ok(Verified {
        identity: result.identity().map(|san| san.as_str().to_owned()),
        times,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str =
        include_str!("../../tests/fixtures/sigstore-conformance/production_trusted_root.json");

    #[test]
    fn a_root_bare_or_in_a_client_trust_config() {
        assert!(Root::from_json(ROOT, "root.json").is_ok());
        let wrapped = format!(
            r#"{{"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json", "trustedRoot": {ROOT}, "signingConfig": {{}}}}"#
        );
        assert!(Root::from_json(&wrapped, "config.json").is_ok());
        let err = Root::from_json("{not json", "broken.json").unwrap_err();
        assert!(err.to_string().starts_with("broken.json is not a usable"));
    }

    #[test]
    fn digests_are_sha256_and_64_hex() {
        let hex = "a".repeat(64);
        assert!(matches!(
            Subject::parse_digest(&format!("sha256:{hex}")),
            Some(Subject::Sha256(d)) if d == [0xaa; 32]
        ));
        for bad in [
            hex.clone(),
            format!("sha512:{hex}"),
            "sha256:abc".into(),
            format!("sha256:{}", "g".repeat(64)),
        ] {
            assert!(Subject::parse_digest(&bad).is_none(), "{bad}");
        }
    }
}
