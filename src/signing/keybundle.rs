//! Key-signed Sigstore bundles: v0.3, `verificationMaterial.publicKey` (the key's hint), no
//! transparency-log entries, as `cosign sign-blob --key` writes them.
//!
//! The bundle itself is sigstore-rust's: [`sigstore_types::Bundle`] is the JSON model (parsing
//! and writing), [`sigstore_bundle::BundleV03`] builds it. What stays here is what the crates
//! leave to a caller holding a cosign [`PublicKey`] rather than a trusted root: reading only
//! v0.3 bundles, and checking one against the key (ECDSA P-256; a message signature over the
//! artifact and its SHA-256, a DSSE envelope over its PAE).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use sigstore_bundle::{BundleV03, VerificationMaterialV03};
use sigstore_types::{
    Bundle, DsseEnvelope, DsseSignature, HashAlgorithm, KeyId, MediaType, MessageDigest,
    MessageSignature, PayloadBytes, SignatureBytes, SignatureContent, VerificationMaterialContent,
};

use super::dsse::{DsseError, Envelope, EnvelopeSignature};
use super::key::{PrivateKey, PublicKey, SignatureError};

/// Media type of the bundles we write (and the only version we read).
pub const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// A key-signed bundle could not be read, written or verified.
#[derive(Debug, thiserror::Error)]
pub enum KeyBundleError {
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
    /// A certificate-signed bundle checked against a key.
    #[error(
        "the bundle is certificate-signed (keyless), not signed with a key; verify it under a keyless policy (an identity and issuer), or with `cosign verify-blob`"
    )]
    NotKeySigned,
    /// Digest algorithm we do not verify.
    #[error("the bundle's message digest uses {algorithm}; only SHA2_256 is supported")]
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

fn key_signed(content: SignatureContent, key: &PublicKey) -> Bundle {
    BundleV03::new(
        VerificationMaterialV03::PublicKey { hint: key.hint() },
        content,
    )
    .into_bundle()
}

/// A key-signed bundle for a blob signature (`signature_der` over `artifact`, e.g. from
/// [`PrivateKey::sign`]), with the artifact's SHA-256 as `messageDigest`.
pub fn for_blob(artifact: &[u8], signature_der: &[u8], key: &PublicKey) -> Bundle {
    let digest = MessageDigest::new(
        HashAlgorithm::Sha2256,
        Sha256::digest(artifact).to_vec().into(),
    );
    let signature = MessageSignature::new(SignatureBytes::from_bytes(signature_der))
        .with_message_digest(digest);
    key_signed(SignatureContent::MessageSignature(signature), key)
}

/// Signs `artifact` with `key` and wraps the signature in a bundle.
pub fn sign_blob(artifact: &[u8], key: &PrivateKey) -> Bundle {
    for_blob(artifact, &key.sign(artifact), &key.public_key())
}

/// Signs `payload` as a DSSE envelope (one signature over the PAE, no key id, as cosign) and
/// wraps it in a bundle. [`envelope`] gives the same envelope in its `.intoto.jsonl` form.
pub fn sign_dsse(payload_type: &str, payload: &[u8], key: &PrivateKey) -> Bundle {
    let pae = sigstore_types::pae(payload_type, payload);
    let signature = DsseSignature::new(SignatureBytes::new(key.sign(&pae)), KeyId::default());
    let envelope = DsseEnvelope::new(payload_type, PayloadBytes::from_bytes(payload), signature);
    key_signed(SignatureContent::DsseEnvelope(envelope), &key.public_key())
}

/// Compact JSON, as cosign writes `.sigstore.json` files.
pub fn to_json(bundle: &Bundle) -> Result<String, KeyBundleError> {
    bundle.to_json().map_err(|e| KeyBundleError::Encode {
        detail: e.to_string(),
    })
}

/// Parses a bundle and checks it is v0.3 (either spelling of its media type).
pub fn from_json(text: &str) -> Result<Bundle, KeyBundleError> {
    // The crates read every bundle version (a missing media type as v0.1) and name an unknown
    // one only in a parser message: the declared media type is looked at first, alone.
    #[derive(Deserialize)]
    struct Declared {
        #[serde(rename = "mediaType")]
        media_type: String,
    }
    let not_json = |e: &dyn std::fmt::Display| KeyBundleError::NotBundleJson {
        detail: e.to_string(),
    };
    let declared: Declared = serde_json::from_str(text).map_err(|e| not_json(&e))?;
    if declared.media_type.parse::<MediaType>().ok() != Some(MediaType::Bundle0_3) {
        return Err(KeyBundleError::UnsupportedMediaType {
            found: declared.media_type,
        });
    }
    Bundle::from_json(text).map_err(|e| not_json(&e))
}

fn require_key_signed(bundle: &Bundle) -> Result<(), KeyBundleError> {
    match bundle.verification_material.content {
        VerificationMaterialContent::PublicKey(_) => Ok(()),
        _ => Err(KeyBundleError::NotKeySigned),
    }
}

/// Verifies a key-signed blob bundle against `artifact`: the digest, when the bundle carries
/// one, must be the artifact's SHA-256, and the signature must verify over the artifact.
pub fn verify_blob(
    bundle: &Bundle,
    artifact: &[u8],
    key: &PublicKey,
) -> Result<(), KeyBundleError> {
    require_key_signed(bundle)?;
    let signature = match &bundle.content {
        SignatureContent::MessageSignature(signature) => signature,
        _ => {
            return Err(KeyBundleError::WrongContent {
                expected: "message signature",
                found: "DSSE envelope",
                hint: "it is an attestation, verify it as one",
            });
        }
    };
    if let Some(digest) = &signature.message_digest {
        if digest.algorithm != HashAlgorithm::Sha2256 {
            return Err(KeyBundleError::UnsupportedDigest {
                algorithm: digest.algorithm,
            });
        }
        // Checked apart from the signature so that a changed artifact gets the clearer message.
        if digest.digest.as_bytes() != Sha256::digest(artifact).as_slice() {
            return Err(KeyBundleError::DigestMismatch);
        }
    }
    key.verify(artifact, signature.signature.as_bytes())?;
    Ok(())
}

/// Verifies a key-signed DSSE bundle (its one signature, over the PAE of the payload type and
/// payload) and returns the payload bytes.
pub fn verify_dsse(bundle: &Bundle, key: &PublicKey) -> Result<Vec<u8>, KeyBundleError> {
    require_key_signed(bundle)?;
    let SignatureContent::DsseEnvelope(envelope) = &bundle.content else {
        return Err(KeyBundleError::WrongContent {
            expected: "DSSE envelope",
            found: "message signature",
            hint: "it signs a blob, verify it against the artifact file",
        });
    };
    key.verify(&envelope.pae(), envelope.signature.sig.as_bytes())
        .map_err(|first| DsseError::NoValidSignature { first })?;
    Ok(envelope.payload.as_bytes().to_vec())
}

/// The bundle's DSSE envelope in its `.intoto.jsonl` form (standard base64, the key id as
/// the bundle has it), or `None` for a blob bundle.
pub fn envelope(bundle: &Bundle) -> Option<Envelope> {
    let SignatureContent::DsseEnvelope(envelope) = &bundle.content else {
        return None;
    };
    Some(Envelope {
        payload: STANDARD.encode(envelope.payload.as_bytes()),
        payload_type: envelope.payload_type.clone(),
        signatures: vec![EnvelopeSignature {
            keyid: envelope.signature.keyid.as_str().to_owned(),
            sig: STANDARD.encode(envelope.signature.sig.as_bytes()),
        }],
    })
}

/// Whether the bundle holds exactly `envelope`: the same payload type, payload, and single
/// signature (bytes and key id), whatever base64 alphabet either side was written in.
pub fn holds_envelope(bundle: &Bundle, envelope: &Envelope) -> bool {
    let SignatureContent::DsseEnvelope(bundled) = &bundle.content else {
        return false;
    };
    let [signature] = envelope.signatures.as_slice() else {
        return false;
    };
    let decode = |text: &str| super::dsse::decode_base64_lenient(text).ok();
    bundled.payload_type == envelope.payload_type
        && decode(&envelope.payload).as_deref() == Some(bundled.payload.as_bytes())
        && decode(&signature.sig).as_deref() == Some(bundled.signature.sig.as_bytes())
        && bundled.signature.keyid.as_str() == signature.keyid
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn to_value(bundle: &Bundle) -> Value {
        serde_json::from_str(&to_json(bundle).expect("json")).expect("parse")
    }

    fn from_value(value: &Value) -> Result<Bundle, KeyBundleError> {
        from_json(&value.to_string())
    }

    #[test]
    fn blob_bundle_json_shape() {
        let key = PrivateKey::generate().expect("generate");
        let bundle = sign_blob(b"hello", &key);
        let value = to_value(&bundle);
        assert_eq!(value["mediaType"], MEDIA_TYPE);
        assert_eq!(
            value["verificationMaterial"]["publicKey"]["hint"],
            key.public_key().hint()
        );
        assert_eq!(value["verificationMaterial"]["tlogEntries"], json!([]));
        assert!(value["verificationMaterial"].get("certificate").is_none());
        // sigstore-types writes the (empty) timestamp data of every bundle, as for keyless ones.
        assert_eq!(
            value["verificationMaterial"]["timestampVerificationData"],
            json!({})
        );
        let signature = &value["messageSignature"];
        assert_eq!(signature["messageDigest"]["algorithm"], "SHA2_256");
        // SHA-256("hello") in standard base64.
        assert_eq!(
            signature["messageDigest"]["digest"],
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
        assert!(signature["signature"].is_string());
        assert!(value.get("dsseEnvelope").is_none());

        let back = from_json(&to_json(&bundle).expect("json")).expect("read back");
        assert_eq!(back, bundle);
        verify_blob(&back, b"hello", &key.public_key()).expect("verify");
    }

    #[test]
    fn a_changed_artifact_is_refused_by_its_digest() {
        let key = PrivateKey::generate().expect("generate");
        let bundle = sign_blob(b"hello", &key);
        assert!(matches!(
            verify_blob(&bundle, b"hellO", &key.public_key()),
            Err(KeyBundleError::DigestMismatch)
        ));
        // The digest alone changed (the signature still covers the artifact): refused too.
        let mut value = to_value(&bundle);
        value["messageSignature"]["messageDigest"]["digest"] =
            STANDARD.encode(Sha256::digest(b"other")).into();
        let tampered = from_value(&value).expect("parse");
        assert!(matches!(
            verify_blob(&tampered, b"hello", &key.public_key()),
            Err(KeyBundleError::DigestMismatch)
        ));
    }

    #[test]
    fn a_digest_in_another_algorithm_is_refused() {
        let key = PrivateKey::generate().expect("generate");
        let mut value = to_value(&sign_blob(b"hello", &key));
        value["messageSignature"]["messageDigest"] = json!({
            "algorithm": "SHA2_512",
            "digest": STANDARD.encode([0u8; 64]),
        });
        let tampered = from_value(&value).expect("parse");
        let err = verify_blob(&tampered, b"hello", &key.public_key()).unwrap_err();
        assert!(
            matches!(
                err,
                KeyBundleError::UnsupportedDigest {
                    algorithm: HashAlgorithm::Sha2512
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("SHA2_512"), "{err}");
    }

    #[test]
    fn signature_is_checked_not_just_the_digest() {
        let key = PrivateKey::generate().expect("generate");
        let stranger = PrivateKey::generate().expect("generate");
        let mut value = to_value(&sign_blob(b"hello", &key));
        value["messageSignature"]["signature"] = STANDARD.encode(stranger.sign(b"hello")).into();
        let tampered = from_value(&value).expect("parse");
        assert!(matches!(
            verify_blob(&tampered, b"hello", &key.public_key()),
            Err(KeyBundleError::Signature(SignatureError::DoesNotVerify))
        ));
        // Signed with another key: its own hint, and refused under ours.
        let theirs = sign_blob(b"hello", &stranger);
        assert!(matches!(
            verify_blob(&theirs, b"hello", &key.public_key()),
            Err(KeyBundleError::Signature(SignatureError::DoesNotVerify))
        ));
        // The hint is only a lookup aid: claiming our key's hint changes nothing.
        let mut value_theirs = to_value(&theirs);
        value_theirs["verificationMaterial"]["publicKey"]["hint"] = key.public_key().hint().into();
        let forged_hint = from_value(&value_theirs).expect("parse");
        assert!(matches!(
            verify_blob(&forged_hint, b"hello", &key.public_key()),
            Err(KeyBundleError::Signature(SignatureError::DoesNotVerify))
        ));
        value["messageSignature"]["signature"] = "".into();
        let empty = from_value(&value).expect("parse");
        assert!(matches!(
            verify_blob(&empty, b"hello", &key.public_key()),
            Err(KeyBundleError::Signature(SignatureError::Empty))
        ));
    }

    #[test]
    fn dsse_bundle_json_shape_and_verify() {
        let key = PrivateKey::generate().expect("generate");
        let bundle = sign_dsse("application/vnd.in-toto+json", b"{}", &key);
        let value = to_value(&bundle);
        assert_eq!(value["mediaType"], MEDIA_TYPE);
        assert_eq!(
            value["verificationMaterial"]["publicKey"]["hint"],
            key.public_key().hint()
        );
        assert_eq!(value["verificationMaterial"]["tlogEntries"], json!([]));
        let dsse = &value["dsseEnvelope"];
        assert_eq!(dsse["payload"], "e30=");
        assert_eq!(dsse["payloadType"], "application/vnd.in-toto+json");
        assert_eq!(dsse["signatures"].as_array().map(Vec::len), Some(1));
        assert!(dsse["signatures"][0]["sig"].is_string());
        // No key id, as cosign: the bundle's hint names the key (protobuf JSON omits the empty one).
        assert!(dsse["signatures"][0].get("keyid").is_none());
        assert!(value.get("messageSignature").is_none());
        assert_eq!(
            verify_dsse(&bundle, &key.public_key()).expect("verify"),
            b"{}"
        );
        assert!(matches!(
            verify_blob(&bundle, b"{}", &key.public_key()),
            Err(KeyBundleError::WrongContent { .. })
        ));
        let blob = sign_blob(b"{}", &key);
        assert!(matches!(
            verify_dsse(&blob, &key.public_key()),
            Err(KeyBundleError::WrongContent { .. })
        ));

        // The loose envelope is the bundle's, and verifies on its own as before.
        let loose = envelope(&bundle).expect("an envelope");
        assert_eq!(loose.verify(&key.public_key()).expect("verify"), b"{}");
        assert_eq!(loose.signatures[0].keyid, "");
        assert!(holds_envelope(&bundle, &loose));
        assert!(envelope(&blob).is_none());
        assert!(!holds_envelope(&blob, &loose));
    }

    #[test]
    fn each_part_of_a_dsse_bundle_is_signed() {
        let key = PrivateKey::generate().expect("generate");
        let bundle = sign_dsse("application/vnd.in-toto+json", b"{\"a\":1}", &key);
        let value = to_value(&bundle);
        let refused = |edit: &dyn Fn(&mut Value)| {
            let mut value = value.clone();
            edit(&mut value);
            let tampered = from_value(&value).expect("parse");
            verify_dsse(&tampered, &key.public_key()).unwrap_err()
        };
        let payload =
            refused(&|v| v["dsseEnvelope"]["payload"] = STANDARD.encode(b"{\"a\":2}").into());
        assert!(
            matches!(
                payload,
                KeyBundleError::Dsse(DsseError::NoValidSignature {
                    first: SignatureError::DoesNotVerify
                })
            ),
            "{payload:?}"
        );
        refused(&|v| v["dsseEnvelope"]["payloadType"] = "text/plain".into());
        let stranger = PrivateKey::generate().expect("generate");
        let sig = STANDARD.encode(stranger.sign(&sigstore_types::pae(
            "application/vnd.in-toto+json",
            b"{\"a\":1}",
        )));
        refused(&|v| v["dsseEnvelope"]["signatures"][0]["sig"] = sig.clone().into());

        // A loose envelope that differs in any part is not the bundle's.
        let loose = envelope(&bundle).expect("an envelope");
        let mut other = loose.clone();
        other.payload = STANDARD.encode(b"{\"a\":2}");
        assert!(!holds_envelope(&bundle, &other));
        let mut other = loose.clone();
        other.payload_type = "text/plain".into();
        assert!(!holds_envelope(&bundle, &other));
        let mut other = loose.clone();
        other.signatures[0].sig = sig.clone();
        assert!(!holds_envelope(&bundle, &other));
        let mut other = loose.clone();
        other.signatures[0].keyid = "k".into();
        assert!(!holds_envelope(&bundle, &other));
        let mut other = loose.clone();
        other.signatures.push(loose.signatures[0].clone());
        assert!(!holds_envelope(&bundle, &other));
        // The alphabet is not part of the envelope.
        let mut other = loose.clone();
        other.signatures[0].sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(STANDARD.decode(&loose.signatures[0].sig).expect("b64"));
        assert!(holds_envelope(&bundle, &other));
    }

    #[test]
    fn a_dsse_envelope_holds_exactly_one_signature() {
        let key = PrivateKey::generate().expect("generate");
        let mut value = to_value(&sign_dsse("t", b"body", &key));
        let one = value["dsseEnvelope"]["signatures"][0].clone();
        value["dsseEnvelope"]["signatures"] = json!([one.clone(), one]);
        assert!(matches!(
            from_value(&value),
            Err(KeyBundleError::NotBundleJson { .. })
        ));
        value["dsseEnvelope"]["signatures"] = json!([]);
        assert!(matches!(
            from_value(&value),
            Err(KeyBundleError::NotBundleJson { .. })
        ));
    }

    #[test]
    fn a_certificate_signed_bundle_is_not_checked_with_a_key() {
        // A keyless bundle's shape; the certificate is a placeholder: it is refused before
        // anything reads it.
        let key = PrivateKey::generate().expect("generate");
        let mut value = to_value(&sign_blob(b"x", &key));
        value["verificationMaterial"] = json!({
            "certificate": {"rawBytes": "MIIB"},
            "tlogEntries": [],
        });
        let keyless = from_value(&value).expect("parse");
        assert!(matches!(
            verify_blob(&keyless, b"x", &key.public_key()),
            Err(KeyBundleError::NotKeySigned)
        ));
        let mut value = to_value(&sign_dsse("t", b"body", &key));
        value["verificationMaterial"] = json!({
            "x509CertificateChain": {"certificates": [{"rawBytes": "MIIB"}]},
        });
        let keyless = from_value(&value).expect("parse");
        assert!(matches!(
            verify_dsse(&keyless, &key.public_key()),
            Err(KeyBundleError::NotKeySigned)
        ));
    }

    #[test]
    fn media_types() {
        let key = PrivateKey::generate().expect("generate");
        let json = to_json(&sign_blob(b"a", &key)).expect("json");
        let legacy = json.replace(
            MEDIA_TYPE,
            "application/vnd.dev.sigstore.bundle+json;version=0.3",
        );
        let read = from_json(&legacy).expect("legacy spelling of v0.3 accepted");
        verify_blob(&read, b"a", &key.public_key()).expect("verify");
        for other in [
            "application/vnd.dev.sigstore.bundle+json;version=0.1",
            "application/vnd.dev.sigstore.bundle+json;version=0.2",
            "application/vnd.dev.sigstore.bundle.v0.4+json",
            "text/plain",
        ] {
            let err = from_json(&json.replace(MEDIA_TYPE, other)).unwrap_err();
            assert!(
                matches!(&err, KeyBundleError::UnsupportedMediaType { found } if found == other),
                "{other}: {err:?}"
            );
        }
        let mut value: Value = serde_json::from_str(&json).expect("parse");
        value.as_object_mut().expect("object").remove("mediaType");
        assert!(matches!(
            from_value(&value),
            Err(KeyBundleError::NotBundleJson { .. })
        ));
        assert!(matches!(
            from_json("{"),
            Err(KeyBundleError::NotBundleJson { .. })
        ));
        let mut value: Value = serde_json::from_str(&json).expect("parse");
        value["messageSignature"]["signature"] = "%%%".into();
        assert!(matches!(
            from_value(&value),
            Err(KeyBundleError::NotBundleJson { .. })
        ));
    }
}
