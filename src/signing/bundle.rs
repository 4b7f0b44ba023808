//! Sigstore bundle v0.3 JSON (protobuf-specs JSON mapping) for key-signed blobs and DSSE envelopes.
//!
//! Field names follow the proto3 JSON mapping of `sigstore_bundle.proto`,
//! `sigstore_common.proto` and `sigstore_rekor.proto`: lowerCamelCase names,
//! `bytes` as standard base64, `int64` as decimal strings (numbers are accepted
//! on input, as the mapping requires of parsers).
//!
//! Oneofs are Rust enums so that impossible combinations (a public key *and* a
//! certificate) cannot be built. The key-signed case uses
//! [`VerificationContent::PublicKey`] with no tlog entries; the keyless case
//! will add a [`VerificationContent::Certificate`] and a
//! [`TransparencyLogEntry`], whose types are already here.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use super::dsse::{DsseError, Envelope, decode_base64_lenient};
use super::key::{PrivateKey, PublicKey, SignatureError};

/// Media type of the bundles we write.
pub const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Older spelling of the same version, still written by some cosign releases;
/// accepted on read.
pub const MEDIA_TYPE_LEGACY_SPELLING: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";

/// A Sigstore bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// Always [`MEDIA_TYPE`] when written by us.
    pub media_type: String,
    /// What a verifier needs besides the artifact.
    pub verification_material: VerificationMaterial,
    /// The signature itself (proto oneof `content`).
    #[serde(flatten)]
    pub content: Content,
}

/// Proto oneof `Bundle.content`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Content {
    /// A signature over a blob (`cosign sign-blob`).
    MessageSignature(MessageSignature),
    /// A DSSE envelope (attestations). Same JSON shape as the DSSE spec's.
    DsseEnvelope(Envelope),
}

/// `VerificationMaterial`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    /// Proto oneof `content`: how to find the verification key.
    #[serde(flatten)]
    pub content: VerificationContent,
    /// Transparency log entries; written even when empty (key-signed bundles
    /// without Rekor upload), so readers see the choice was deliberate.
    #[serde(default)]
    pub tlog_entries: Vec<TransparencyLogEntry>,
    /// RFC 3161 timestamps, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<TimestampVerificationData>,
}

/// Proto oneof `VerificationMaterial.content`. (`x509CertificateChain` is left
/// out: v0.3 bundles use a single `certificate`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VerificationContent {
    /// The key is delivered out of band; the hint only helps pick it.
    PublicKey(PublicKeyIdentifier),
    /// Keyless: the leaf certificate (Fulcio) that certifies the signing key.
    Certificate(X509Certificate),
}

/// `PublicKeyIdentifier`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyIdentifier {
    /// Unauthenticated hint. We write [`PublicKey::hint`]: standard base64 of
    /// SHA-256 over the SubjectPublicKeyInfo DER, the same value cosign
    /// writes, so the hint identifies the key the same way in both tools.
    #[serde(default)]
    pub hint: String,
}

/// `X509Certificate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509Certificate {
    /// DER of the certificate.
    pub raw_bytes: Base64Bytes,
}

/// `TimestampVerificationData`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimestampVerificationData {
    /// RFC 3161 signed timestamps over the signature.
    #[serde(default)]
    pub rfc3161_timestamps: Vec<Rfc3161SignedTimestamp>,
}

/// `RFC3161SignedTimestamp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rfc3161SignedTimestamp {
    /// DER of the timestamp response.
    pub signed_timestamp: Base64Bytes,
}

/// `TransparencyLogEntry` (Rekor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransparencyLogEntry {
    /// Index of the entry in the log.
    #[serde(with = "int64_json")]
    pub log_index: i64,
    /// Which log.
    pub log_id: LogId,
    /// Rekor entry kind and version, e.g. `hashedrekord` / `0.0.1`.
    pub kind_version: KindVersion,
    /// Unix seconds at which the log integrated the entry; absent (0) for Rekor v2, whose
    /// time comes from a TSA.
    #[serde(default, with = "int64_json")]
    pub integrated_time: i64,
    /// Signed entry timestamp (promise of inclusion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_promise: Option<InclusionPromise>,
    /// Merkle inclusion proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_proof: Option<InclusionProof>,
    /// The canonicalised Rekor entry body.
    pub canonicalized_body: Base64Bytes,
}

/// `LogId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogId {
    /// SHA-256 of the log's public key (DER).
    pub key_id: Base64Bytes,
}

/// `KindVersion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindVersion {
    /// Entry kind, e.g. `hashedrekord`, `dsse`.
    pub kind: String,
    /// Entry schema version, e.g. `0.0.1`.
    pub version: String,
}

/// `InclusionPromise`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionPromise {
    /// The log's signature over the entry.
    pub signed_entry_timestamp: Base64Bytes,
}

/// `InclusionProof`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProof {
    /// Index of the entry in the tree the proof is for.
    #[serde(with = "int64_json")]
    pub log_index: i64,
    /// Root hash of that tree.
    pub root_hash: Base64Bytes,
    /// Size of that tree.
    #[serde(with = "int64_json")]
    pub tree_size: i64,
    /// Audit path, leaf to root.
    #[serde(default)]
    pub hashes: Vec<Base64Bytes>,
    /// Signed checkpoint of the tree.
    pub checkpoint: Checkpoint,
}

/// `Checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Signed note text (not base64).
    pub envelope: String,
}

/// `MessageSignature`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSignature {
    /// Digest of the artifact; optional in the proto, always written by us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_digest: Option<HashOutput>,
    /// DER ECDSA signature over the artifact.
    pub signature: Base64Bytes,
}

/// `HashOutput`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashOutput {
    /// Hash function.
    pub algorithm: HashAlgorithm,
    /// Raw digest bytes.
    pub digest: Base64Bytes,
}

/// `HashAlgorithm` (enum names are the JSON values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HashAlgorithm {
    /// SHA-256; the only one we write.
    #[serde(rename = "SHA2_256")]
    Sha2_256,
    /// SHA-384.
    #[serde(rename = "SHA2_384")]
    Sha2_384,
    /// SHA-512.
    #[serde(rename = "SHA2_512")]
    Sha2_512,
    /// SHA3-256.
    #[serde(rename = "SHA3_256")]
    Sha3_256,
    /// SHA3-384.
    #[serde(rename = "SHA3_384")]
    Sha3_384,
}

/// Bytes that travel as base64 in JSON (proto `bytes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Base64Bytes(pub Vec<u8>);

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // The proto3 JSON mapping lets writers pick either alphabet.
        decode_base64_lenient(&text)
            .map(Base64Bytes)
            .map_err(|e| serde::de::Error::custom(format!("not base64: {e}")))
    }
}

/// proto3 JSON `int64`: written as a string (JSON numbers lose precision past
/// 2^53 in many parsers), read from a string or a number.
mod int64_json {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StringOrNumber {
        Text(String),
        Number(i64),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        match StringOrNumber::deserialize(deserializer)? {
            StringOrNumber::Number(n) => Ok(n),
            StringOrNumber::Text(text) => text
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a 64-bit integer"))),
        }
    }
}

/// A bundle could not be read or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not JSON, or not the bundle schema.
    #[error("the bundle is not valid Sigstore bundle JSON ({detail}); pass a .sigstore.json file")]
    NotBundleJson {
        /// Parser message.
        detail: String,
    },
    /// Another bundle version.
    #[error(
        "unsupported bundle media type `{found}`; xrelease reads v0.3 bundles (`{MEDIA_TYPE}`), re-sign to produce one"
    )]
    UnsupportedMediaType {
        /// The media type in the file.
        found: String,
    },
    /// The bundle carries the other kind of content.
    #[error("the bundle holds a {found} but a {expected} was expected; {hint}")]
    WrongContent {
        /// What the operation needs.
        expected: &'static str,
        /// What the bundle has.
        found: &'static str,
        /// How to proceed.
        hint: &'static str,
    },
    /// Keyless bundles cannot be checked with a key yet.
    #[error(
        "the bundle is certificate-signed (keyless); xrelease can only verify key-signed bundles so far, verify it with `cosign verify-blob`"
    )]
    NotKeySigned,
    /// Digest algorithm we do not verify.
    #[error("the bundle's message digest uses {algorithm:?}; only SHA2_256 is supported")]
    UnsupportedDigest {
        /// The algorithm in the bundle.
        algorithm: HashAlgorithm,
    },
    /// Artifact digest differs from the signed one.
    #[error(
        "the artifact's SHA-256 differs from the digest in the bundle: the artifact changed after signing, or this bundle belongs to another file"
    )]
    DigestMismatch,
    /// The blob signature failed.
    #[error("bundle signature: {0}")]
    Signature(#[from] SignatureError),
    /// The DSSE envelope failed.
    #[error("bundle DSSE envelope: {0}")]
    Dsse(#[from] DsseError),
    /// Serialising failed (should not happen for these types).
    #[error(
        "cannot write the bundle as JSON ({detail}); this is a bug in xrelease, please report it"
    )]
    Encode {
        /// Serializer message.
        detail: String,
    },
}

impl Bundle {
    /// Builds a key-signed bundle for a blob signature (`signature_der` over
    /// `artifact`, e.g. from [`PrivateKey::sign`]).
    pub fn for_blob(artifact: &[u8], signature_der: &[u8], key: &PublicKey) -> Self {
        Self {
            media_type: MEDIA_TYPE.to_owned(),
            verification_material: Self::key_material(key),
            content: Content::MessageSignature(MessageSignature {
                message_digest: Some(HashOutput {
                    algorithm: HashAlgorithm::Sha2_256,
                    digest: Base64Bytes(Sha256::digest(artifact).to_vec()),
                }),
                signature: Base64Bytes(signature_der.to_vec()),
            }),
        }
    }

    /// Signs `artifact` with `key` and wraps the signature in a bundle.
    pub fn sign_blob(artifact: &[u8], key: &PrivateKey) -> Self {
        Self::for_blob(artifact, &key.sign(artifact), &key.public_key())
    }

    /// Builds a key-signed bundle around a signed DSSE envelope.
    pub fn for_dsse(envelope: Envelope, key: &PublicKey) -> Self {
        Self {
            media_type: MEDIA_TYPE.to_owned(),
            verification_material: Self::key_material(key),
            content: Content::DsseEnvelope(envelope),
        }
    }

    fn key_material(key: &PublicKey) -> VerificationMaterial {
        VerificationMaterial {
            content: VerificationContent::PublicKey(PublicKeyIdentifier { hint: key.hint() }),
            tlog_entries: Vec::new(),
            timestamp_verification_data: None,
        }
    }

    /// Compact JSON, as cosign writes `.sigstore.json` files.
    pub fn to_json(&self) -> Result<String, BundleError> {
        serde_json::to_string(self).map_err(|e| BundleError::Encode {
            detail: e.to_string(),
        })
    }

    /// Parses a bundle and checks it is v0.3.
    pub fn from_json(text: &str) -> Result<Self, BundleError> {
        let bundle: Self = serde_json::from_str(text).map_err(|e| BundleError::NotBundleJson {
            detail: e.to_string(),
        })?;
        if bundle.media_type != MEDIA_TYPE && bundle.media_type != MEDIA_TYPE_LEGACY_SPELLING {
            return Err(BundleError::UnsupportedMediaType {
                found: bundle.media_type,
            });
        }
        Ok(bundle)
    }

    /// Verifies a key-signed blob bundle against `artifact`.
    pub fn verify_blob(&self, artifact: &[u8], key: &PublicKey) -> Result<(), BundleError> {
        self.require_key_signed()?;
        let signature = match &self.content {
            Content::MessageSignature(signature) => signature,
            Content::DsseEnvelope(_) => {
                return Err(BundleError::WrongContent {
                    expected: "message signature",
                    found: "DSSE envelope",
                    hint: "it is an attestation, verify it as one",
                });
            }
        };
        if let Some(digest) = &signature.message_digest {
            if digest.algorithm != HashAlgorithm::Sha2_256 {
                return Err(BundleError::UnsupportedDigest {
                    algorithm: digest.algorithm,
                });
            }
            // Checked separately from the signature so that a changed artifact
            // gets the clearer message.
            if digest.digest.0 != Sha256::digest(artifact).as_slice() {
                return Err(BundleError::DigestMismatch);
            }
        }
        key.verify(artifact, &signature.signature.0)?;
        Ok(())
    }

    /// Verifies a key-signed DSSE bundle and returns the payload bytes.
    pub fn verify_dsse(&self, key: &PublicKey) -> Result<Vec<u8>, BundleError> {
        self.require_key_signed()?;
        match &self.content {
            Content::DsseEnvelope(envelope) => Ok(envelope.verify(key)?),
            Content::MessageSignature(_) => Err(BundleError::WrongContent {
                expected: "DSSE envelope",
                found: "message signature",
                hint: "it signs a blob, verify it against the artifact file",
            }),
        }
    }

    fn require_key_signed(&self) -> Result<(), BundleError> {
        match self.verification_material.content {
            VerificationContent::PublicKey(_) => Ok(()),
            VerificationContent::Certificate(_) => Err(BundleError::NotKeySigned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blob_bundle_json_shape() {
        let key = PrivateKey::generate().expect("generate");
        let bundle = Bundle::sign_blob(b"hello", &key);
        let value: serde_json::Value =
            serde_json::from_str(&bundle.to_json().expect("json")).expect("parse");
        assert_eq!(value["mediaType"], MEDIA_TYPE);
        assert_eq!(
            value["verificationMaterial"]["publicKey"]["hint"],
            key.public_key().hint()
        );
        assert_eq!(value["verificationMaterial"]["tlogEntries"], json!([]));
        let signature = &value["messageSignature"];
        assert_eq!(signature["messageDigest"]["algorithm"], "SHA2_256");
        // SHA-256("hello") in standard base64.
        assert_eq!(
            signature["messageDigest"]["digest"],
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
        assert!(signature["signature"].is_string());
        assert!(value.get("dsseEnvelope").is_none());
        assert!(
            value["verificationMaterial"]
                .get("timestampVerificationData")
                .is_none()
        );

        let back = Bundle::from_json(&bundle.to_json().expect("json")).expect("read back");
        assert_eq!(back, bundle);
        back.verify_blob(b"hello", &key.public_key())
            .expect("verify");
        assert!(matches!(
            back.verify_blob(b"hellO", &key.public_key()),
            Err(BundleError::DigestMismatch)
        ));
    }

    #[test]
    fn signature_is_checked_not_just_the_digest() {
        let key = PrivateKey::generate().expect("generate");
        let mut bundle = Bundle::sign_blob(b"hello", &key);
        let stranger = PrivateKey::generate().expect("generate");
        if let Content::MessageSignature(signature) = &mut bundle.content {
            signature.signature = Base64Bytes(stranger.sign(b"hello"));
        }
        assert!(matches!(
            bundle.verify_blob(b"hello", &key.public_key()),
            Err(BundleError::Signature(SignatureError::DoesNotVerify))
        ));
    }

    #[test]
    fn dsse_bundle_json_shape_and_verify() {
        let key = PrivateKey::generate().expect("generate");
        let envelope = Envelope::sign("application/vnd.in-toto+json", b"{}", &key, "");
        let bundle = Bundle::for_dsse(envelope, &key.public_key());
        let value: serde_json::Value =
            serde_json::from_str(&bundle.to_json().expect("json")).expect("parse");
        let dsse = &value["dsseEnvelope"];
        assert_eq!(dsse["payload"], "e30=");
        assert_eq!(dsse["payloadType"], "application/vnd.in-toto+json");
        assert!(dsse["signatures"][0]["sig"].is_string());
        assert_eq!(dsse["signatures"][0]["keyid"], "");
        assert!(value.get("messageSignature").is_none());
        assert_eq!(
            bundle.verify_dsse(&key.public_key()).expect("verify"),
            b"{}"
        );
        assert!(matches!(
            bundle.verify_blob(b"{}", &key.public_key()),
            Err(BundleError::WrongContent { .. })
        ));
    }

    #[test]
    fn keyless_bundle_with_tlog_entry_parses_and_round_trips() {
        // Shape of a public-good keyless bundle; values are placeholders.
        let text = json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": "MIIB"},
                "tlogEntries": [{
                    "logIndex": "123456789",
                    "logId": {"keyId": "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="},
                    "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                    "integratedTime": 1700000000,
                    "inclusionPromise": {"signedEntryTimestamp": "MEUCIQ=="},
                    "inclusionProof": {
                        "logIndex": "7000000",
                        "rootHash": "AAAA",
                        "treeSize": "7000001",
                        "hashes": ["AAAA", "BBBB"],
                        "checkpoint": {"envelope": "rekor.sigstore.dev - 123\n7000001\nAAAA\n"}
                    },
                    "canonicalizedBody": "e30="
                }]
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": "AAAA"},
                "signature": "MEUC"
            }
        })
        .to_string();
        let bundle = Bundle::from_json(&text).expect("parse");
        let entry = &bundle.verification_material.tlog_entries[0];
        assert_eq!(entry.log_index, 123_456_789);
        assert_eq!(entry.integrated_time, 1_700_000_000);
        assert_eq!(entry.kind_version.kind, "hashedrekord");
        let proof = entry.inclusion_proof.as_ref().expect("proof");
        assert_eq!((proof.log_index, proof.tree_size), (7_000_000, 7_000_001));
        assert_eq!(proof.hashes.len(), 2);
        assert!(matches!(
            bundle.verification_material.content,
            VerificationContent::Certificate(_)
        ));

        // int64 fields come back out as strings, per the proto3 JSON mapping.
        let out: serde_json::Value =
            serde_json::from_str(&bundle.to_json().expect("json")).expect("parse");
        let entry = &out["verificationMaterial"]["tlogEntries"][0];
        assert_eq!(entry["integratedTime"], "1700000000");
        assert_eq!(entry["logIndex"], "123456789");
        assert_eq!(entry["inclusionProof"]["treeSize"], "7000001");
        assert_eq!(
            entry["logId"]["keyId"],
            "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="
        );
        assert_eq!(
            out["verificationMaterial"]["certificate"]["rawBytes"],
            "MIIB"
        );

        let key = PrivateKey::generate().expect("generate").public_key();
        assert!(matches!(
            bundle.verify_blob(b"x", &key),
            Err(BundleError::NotKeySigned)
        ));
    }

    #[test]
    fn media_types() {
        let key = PrivateKey::generate().expect("generate");
        let json = Bundle::sign_blob(b"a", &key).to_json().expect("json");
        let legacy = json.replace(MEDIA_TYPE, MEDIA_TYPE_LEGACY_SPELLING);
        Bundle::from_json(&legacy).expect("legacy spelling of v0.3 accepted");
        let old = json.replace(
            MEDIA_TYPE,
            "application/vnd.dev.sigstore.bundle+json;version=0.1",
        );
        assert!(matches!(
            Bundle::from_json(&old),
            Err(BundleError::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            Bundle::from_json("{"),
            Err(BundleError::NotBundleJson { .. })
        ));
    }
}
