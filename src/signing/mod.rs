//! Signing: one `Signer` (key or keyless is an enum, chosen once at the composition root) and the
//! verification `Policy` derived from the same choice.
//!
//! Formats live in the submodules: cosign-compatible keys, DSSE envelopes, Sigstore bundles;
//! keyless signing (Fulcio, Rekor, OIDC tokens) and its offline verification. Only `http.rs`
//! talks to the network; verification (`keyless::verify_bundle`, `tlog`, `certificate`, `sct`)
//! is offline and pure.

mod asn1;
pub mod bundle;
pub mod certificate;
pub mod dsse;
pub mod ec;
pub mod fulcio;
pub mod http;
pub mod key;
pub mod keyless;
pub mod oidc;
pub mod rekor;
pub mod sct;
pub mod tlog;
pub mod trusted_root;

use std::path::Path;

use crate::error::{Error, Result};
use crate::secret::{COSIGN_PASSWORD_ENV, Password};
use crate::verify::Policy;
use bundle::Bundle;
use dsse::Envelope;
use key::{PrivateKey, PublicKey};

/// A signature over a blob, in the forms the release directory holds.
pub struct BlobSignature {
    /// ASN.1 DER ECDSA signature (the `.sig` file holds its base64).
    pub der: Vec<u8>,
    pub bundle: Bundle,
    /// Keyless only: the signing certificate, PEM.
    pub certificate_pem: Option<String>,
}

pub enum Signer {
    /// A cosign key: the configured one (`[sign] mode = "key"`), or a throwaway key made for a
    /// rehearsal, whose public half is written as `cosign.pub` so the verify pass can check it.
    Key { key: PrivateKey, throwaway: bool },
}

impl Signer {
    /// A fresh key that exists only for this run (dry runs without `--real-signing`).
    pub fn throwaway() -> Result<Signer> {
        let key = PrivateKey::generate()
            .map_err(|e| Error::Sign(format!("cannot generate a throwaway key: {e}")))?;
        Ok(Signer::Key {
            key,
            throwaway: true,
        })
    }

    /// The configured cosign key, unlocked with `COSIGN_PASSWORD` (or a prompt on a terminal).
    pub fn from_key_file(path: &Path) -> Result<Signer> {
        if !path.is_file() {
            return Err(Error::Preflight(format!(
                "signing key {} not found: create one with `xrelease keygen` (or `cosign generate-key-pair`), \
                 or set `[sign] key` in release.toml",
                path.display()
            )));
        }
        let password = password(false)?;
        let key = PrivateKey::read_encrypted(path, &password)
            .map_err(|e| Error::Preflight(e.to_string()))?;
        Ok(Signer::Key {
            key,
            throwaway: false,
        })
    }

    /// The policy the release gate verifies with: the same key or identity that signs.
    pub fn policy(&self) -> Policy {
        match self {
            Signer::Key { key, .. } => Policy::Key(key.public_key()),
        }
    }

    /// Keyless signatures come with a certificate and a transparency-log entry per signature.
    pub fn is_keyless(&self) -> bool {
        false
    }

    pub fn public_key(&self) -> Option<PublicKey> {
        match self {
            Signer::Key { key, .. } => Some(key.public_key()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Signer::Key {
                key,
                throwaway: true,
            } => format!(
                "a throwaway key ({}) for this rehearsal",
                key.public_key().hint()
            ),
            Signer::Key {
                key,
                throwaway: false,
            } => format!("key {}", key.public_key().hint()),
        }
    }

    pub fn sign_blob(&mut self, bytes: &[u8]) -> Result<BlobSignature> {
        match self {
            Signer::Key { key, .. } => {
                let der = key.sign(bytes);
                let bundle = Bundle::for_blob(bytes, &der, &key.public_key());
                Ok(BlobSignature {
                    der,
                    bundle,
                    certificate_pem: None,
                })
            }
        }
    }

    /// Signs `payload` as a DSSE envelope (signature over the PAE encoding).
    pub fn sign_dsse(&mut self, payload_type: &str, payload: &[u8]) -> Result<(Envelope, Bundle)> {
        match self {
            Signer::Key { key, .. } => {
                let envelope = Envelope::sign(payload_type, payload, key, "");
                let bundle = Bundle::for_dsse(envelope.clone(), &key.public_key());
                Ok((envelope, bundle))
            }
        }
    }
}

/// The key password: `COSIGN_PASSWORD`, else asked on the terminal without echo (twice when
/// `confirm`), else a clear error. The password itself never reaches a message.
pub fn password(confirm: bool) -> Result<Password> {
    if let Some(p) =
        Password::from_env(COSIGN_PASSWORD_ENV).map_err(|e| Error::Preflight(e.to_string()))?
    {
        return Ok(p);
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(Error::Preflight(format!(
            "no key password: set {COSIGN_PASSWORD_ENV} (no terminal to ask on)"
        )));
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Password::new)
            .map_err(|e| Error::Preflight(format!("cannot read the password: {e}")))
    };
    let first = ask("Password for the cosign key: ")?;
    if confirm {
        let second = ask("Again: ")?;
        if first.expose() != second.expose() {
            return Err(Error::Preflight(
                "the two passwords differ; nothing was written".into(),
            ));
        }
    }
    Ok(first)
}
