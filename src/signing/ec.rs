//! ECDSA verification keys of the curves Sigstore uses (P-256 and P-384), from SubjectPublicKeyInfo DER.

use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::pkcs8::DecodePublicKey as _;
use sha2::{Digest as _, Sha256, Sha384};

/// The hash an ECDSA signature was computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
}

impl HashAlg {
    /// Digest of `message` with this hash.
    pub fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => Sha256::digest(message).to_vec(),
            HashAlg::Sha384 => Sha384::digest(message).to_vec(),
        }
    }
}

/// A public key that can check ECDSA signatures.
#[derive(Clone, PartialEq, Eq)]
pub enum EcKey {
    /// NIST P-256 (Rekor, CT logs, our ephemeral signing keys).
    P256(p256::ecdsa::VerifyingKey),
    /// NIST P-384 (the public-good Fulcio CA).
    P384(p384::ecdsa::VerifyingKey),
}

/// A key that is not an ECDSA key on a curve we verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the public key is not an ECDSA P-256 or P-384 key ({detail}); xrelease verifies Sigstore material signed with those curves only (RSA and Ed25519 instances are not supported)"
)]
pub struct UnsupportedKey {
    /// What the decoders said.
    pub detail: String,
}

impl EcKey {
    /// Parses a SubjectPublicKeyInfo (the DER of a `PUBLIC KEY` PEM block).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, UnsupportedKey> {
        match p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            Ok(key) => Ok(EcKey::P256(key)),
            Err(p256_err) => p384::ecdsa::VerifyingKey::from_public_key_der(der)
                .map(EcKey::P384)
                .map_err(|p384_err| UnsupportedKey {
                    detail: format!("as P-256: {p256_err}; as P-384: {p384_err}"),
                }),
        }
    }

    /// The hash Sigstore pairs with this curve (`PKIX_ECDSA_P256_SHA_256`, `..._P384_SHA_384`).
    pub fn natural_hash(&self) -> HashAlg {
        match self {
            EcKey::P256(_) => HashAlg::Sha256,
            EcKey::P384(_) => HashAlg::Sha384,
        }
    }

    /// Checks a DER ECDSA signature over `message` hashed with `hash`. Any malformed input is
    /// simply "does not verify": callers report the situation, not the parser's complaint.
    pub fn verify(&self, hash: HashAlg, message: &[u8], signature_der: &[u8]) -> bool {
        self.verify_prehash(&hash.digest(message), signature_der)
    }

    /// Like [`EcKey::verify`] given the digest. A digest longer than the curve (SHA-384 on P-256,
    /// as X.509 allows) is truncated to its leftmost bits, as ECDSA specifies.
    pub fn verify_prehash(&self, digest: &[u8], signature_der: &[u8]) -> bool {
        match self {
            EcKey::P256(key) => p256::ecdsa::Signature::from_der(signature_der)
                .is_ok_and(|sig| key.verify_prehash(digest, &sig).is_ok()),
            EcKey::P384(key) => p384::ecdsa::Signature::from_der(signature_der)
                .is_ok_and(|sig| key.verify_prehash(digest, &sig).is_ok()),
        }
    }
}

impl std::fmt::Debug for EcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EcKey::P256(_) => "EcKey(P-256)",
            EcKey::P384(_) => "EcKey(P-384)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::key::PrivateKey;

    #[test]
    fn p256_sha256_and_sha384_prehash() {
        let key = PrivateKey::generate().expect("key");
        let public = EcKey::from_spki_der(&key.public_key().to_spki_der()).expect("parse");
        assert_eq!(public.natural_hash(), HashAlg::Sha256);
        let sig = key.sign(b"message");
        assert!(public.verify(HashAlg::Sha256, b"message", &sig));
        assert!(!public.verify(HashAlg::Sha256, b"messagE", &sig));
        assert!(!public.verify(HashAlg::Sha384, b"message", &sig));
        assert!(!public.verify(HashAlg::Sha256, b"message", b"\x30\x00"));
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(EcKey::from_spki_der(b"not a key").is_err());
    }
}
