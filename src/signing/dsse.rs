//! DSSE v1 envelopes: pre-authentication encoding, signing and verifying with cosign keys.
//!
//! Spec: <https://github.com/secure-systems-lab/dsse/blob/master/protocol.md>.
//! The signature covers `PAE(payloadType, payload)`, never the JSON, so the
//! envelope can be re-serialised freely without breaking signatures.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use serde::{Deserialize, Serialize};

use super::key::{PrivateKey, PublicKey, SignatureError};

/// Payload type of in-toto statements (SLSA provenance, SBOM attestations).
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope in its JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Base64 of the payload bytes.
    pub payload: String,
    /// Media type of the payload; signed along with it.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// One entry per signer.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Unauthenticated hint naming the key; may be empty (cosign leaves it
    /// empty). Missing in JSON reads as empty, as the protobuf mapping omits
    /// empty strings.
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the DER ECDSA signature over the PAE bytes.
    pub sig: String,
}

/// An envelope could not be verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    /// The envelope carries no signatures.
    #[error("the DSSE envelope has no signatures; it was never signed, sign it again")]
    Unsigned,
    /// The payload field is not base64.
    #[error("the DSSE envelope payload is not base64 ({detail}); the envelope is damaged")]
    PayloadNotBase64 {
        /// Decoder message.
        detail: String,
    },
    /// No signature in the envelope verifies with the key. Carries the reason
    /// for the first signature, which is the only one in the common case.
    #[error(
        "no signature in the DSSE envelope verifies with this public key: {first}; check the payload was not modified and that you passed the signer's public key"
    )]
    NoValidSignature {
        /// Why the first signature failed.
        first: SignatureError,
    },
}

/// Accepts both alphabets, with or without padding: DSSE allows standard or
/// URL-safe base64, and the protobuf JSON mapping accepts either too.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    general_purpose::NO_PAD.with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes base64 in either alphabet (see [`LENIENT_STANDARD`]).
pub(crate) fn decode_base64_lenient(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    LENIENT_STANDARD
        .decode(text)
        .or_else(|standard_err| LENIENT_URL_SAFE.decode(text).map_err(|_| standard_err))
}

/// DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII
/// decimal bytes. Length-prefixing makes the type/body split unambiguous.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let body_len = payload.len().to_string();
    let mut out = Vec::with_capacity(
        "DSSEv1".len() + 4 + type_len.len() + payload_type.len() + body_len.len() + payload.len(),
    );
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(type_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Signs `payload` with `key`. `keyid` is stored as an unauthenticated
    /// hint; pass `""` to match cosign, or [`PublicKey::hint`].
    pub fn sign(payload_type: &str, payload: &[u8], key: &PrivateKey, keyid: &str) -> Self {
        let signature = key.sign(&pae(payload_type, payload));
        Self {
            payload: STANDARD.encode(payload),
            payload_type: payload_type.to_owned(),
            signatures: vec![EnvelopeSignature {
                keyid: keyid.to_owned(),
                sig: STANDARD.encode(signature),
            }],
        }
    }

    /// The decoded payload, unverified. Use [`Envelope::verify`] before
    /// trusting it.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, DsseError> {
        decode_base64_lenient(&self.payload).map_err(|e| DsseError::PayloadNotBase64 {
            detail: e.to_string(),
        })
    }

    /// Verifies that at least one signature was made by `key` over the PAE of
    /// this payload type and payload, and returns the payload bytes.
    pub fn verify(&self, key: &PublicKey) -> Result<Vec<u8>, DsseError> {
        let payload = self.payload_bytes()?;
        let message = pae(&self.payload_type, &payload);
        let mut first_failure = None;
        for signature in &self.signatures {
            let outcome =
                decode_signature_field(&signature.sig).and_then(|der| key.verify(&message, &der));
            match outcome {
                Ok(()) => return Ok(payload),
                Err(err) => {
                    first_failure.get_or_insert(err);
                }
            }
        }
        match first_failure {
            Some(first) => Err(DsseError::NoValidSignature { first }),
            None => Err(DsseError::Unsigned),
        }
    }
}

fn decode_signature_field(text: &str) -> Result<Vec<u8>, SignatureError> {
    if text.is_empty() {
        return Err(SignatureError::Empty);
    }
    decode_base64_lenient(text).map_err(|e| SignatureError::NotBase64 {
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_example() {
        // Test vector from the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn pae_handles_empty_fields_and_multidigit_lengths() {
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
        let body = vec![b'x'; 1234];
        let out = pae("t", &body);
        assert!(out.starts_with(b"DSSEv1 1 t 1234 xxx"));
        assert_eq!(out.len(), "DSSEv1 1 t 1234 ".len() + 1234);
    }

    #[test]
    fn json_field_names_follow_the_spec() {
        let envelope = Envelope {
            payload: "aGk=".to_owned(),
            payload_type: "text/plain".to_owned(),
            signatures: vec![EnvelopeSignature {
                keyid: "k".to_owned(),
                sig: "c2ln".to_owned(),
            }],
        };
        let json = serde_json::to_value(&envelope).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({
                "payload": "aGk=",
                "payloadType": "text/plain",
                "signatures": [{"keyid": "k", "sig": "c2ln"}]
            })
        );
        let no_keyid: Envelope = serde_json::from_str(
            r#"{"payload":"aGk=","payloadType":"text/plain","signatures":[{"sig":"c2ln"}]}"#,
        )
        .expect("parse");
        assert_eq!(no_keyid.signatures[0].keyid, "");
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let key = PrivateKey::generate().expect("generate");
        let public = key.public_key();
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &key, "");
        assert_eq!(envelope.verify(&public).expect("verify"), b"{\"a\":1}");

        let mut changed_payload = envelope.clone();
        changed_payload.payload = STANDARD.encode(b"{\"a\":2}");
        assert!(matches!(
            changed_payload.verify(&public),
            Err(DsseError::NoValidSignature {
                first: SignatureError::DoesNotVerify
            })
        ));

        // The type is signed too: relabelling a payload must break it.
        let mut changed_type = envelope.clone();
        changed_type.payload_type = "text/plain".to_owned();
        assert!(changed_type.verify(&public).is_err());

        let mut unsigned = envelope.clone();
        unsigned.signatures.clear();
        assert_eq!(unsigned.verify(&public), Err(DsseError::Unsigned));

        let mut bad_payload = envelope.clone();
        bad_payload.payload = "%%%".to_owned();
        assert!(matches!(
            bad_payload.verify(&public),
            Err(DsseError::PayloadNotBase64 { .. })
        ));

        let mut bad_sig = envelope.clone();
        bad_sig.signatures[0].sig = "***".to_owned();
        assert!(matches!(
            bad_sig.verify(&public),
            Err(DsseError::NoValidSignature {
                first: SignatureError::NotBase64 { .. }
            })
        ));
    }

    #[test]
    fn url_safe_unpadded_fields_are_accepted() {
        let key = PrivateKey::generate().expect("generate");
        let payload = [0xfbu8, 0xff, 0xfe, 0x01];
        let mut envelope = Envelope::sign("application/octet-stream", &payload, &key, "");
        let sig = STANDARD.decode(&envelope.signatures[0].sig).expect("b64");
        envelope.payload = general_purpose::URL_SAFE_NO_PAD.encode(payload);
        envelope.signatures[0].sig = general_purpose::URL_SAFE_NO_PAD.encode(sig);
        assert_eq!(envelope.verify(&key.public_key()).expect("verify"), payload);
    }

    #[test]
    fn any_matching_signature_is_enough() {
        let signer = PrivateKey::generate().expect("generate");
        let stranger = PrivateKey::generate().expect("generate");
        let mut envelope = Envelope::sign("t", b"body", &stranger, "stranger");
        let ours = Envelope::sign("t", b"body", &signer, "ours");
        envelope.signatures.extend(ours.signatures);
        assert_eq!(
            envelope.verify(&signer.public_key()).expect("verify"),
            b"body"
        );
    }
}
