//! Signing: one `Signer` (key or keyless is an enum, chosen once at the composition root) and the
//! verification `Policy` derived from the same choice.
//!
//! Formats live in the submodules: cosign-compatible keys, DSSE envelopes, key-signed Sigstore
//! bundles (sigstore-rust's bundle type, checked against a cosign key). The Sigstore protocol is the sigstore-rust crates': keyless signing (Fulcio, Rekor,
//! TSA) in `keyless.rs` with the services chosen in `services.rs`, verification and trusted
//! roots in `sigstore.rs`.

pub mod dsse;
pub mod http;
pub mod key;
pub mod keybundle;
pub mod keyless;
pub mod oidc;
pub mod services;
pub mod sign_bundle;
pub mod sigstore;
pub mod trust;
pub mod trusted_root;
pub mod tuf;

use std::path::Path;

use crate::error::{Error, Result};
use crate::secret::{COSIGN_PASSWORD_ENV, Password};
use key::{PrivateKey, PublicKey};
use keyless::{ExpectedIdentity, KeylessConfig, KeylessSigner};

/// Reads an environment variable; the process environment in production, a list in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for [`Env`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A signature over a blob, in the forms the release directory holds.
pub struct BlobSignature {
    /// ASN.1 DER ECDSA signature (the `.sig` file holds its base64).
    pub der: Vec<u8>,
    /// The Sigstore bundle, JSON (`.sigstore.json`).
    pub bundle: String,
    /// Keyless only: the signing certificate, PEM.
    pub certificate_pem: Option<String>,
}

pub enum Signer {
    /// A cosign key: the configured one (`[sign] mode = "key"`), or a throwaway key made for a
    /// rehearsal, whose public half is written as `cosign.pub` so the verify pass can check it.
    Key { key: PrivateKey, throwaway: bool },
    /// Sigstore keyless (`[sign] mode = "keyless"`): one ephemeral key per release, certified
    /// by Fulcio, every signature logged in Rekor.
    Keyless(Box<Keyless>),
}

/// A keyless signer whose certificate does not exist yet. Fulcio certificates live about ten
/// minutes and every signature becomes a public log entry, so the certificate is requested at
/// the first signature — after the build, SBOMs and checksums succeeded — never before.
pub struct Keyless {
    config: KeylessConfig,
    pub(crate) expected: ExpectedIdentity,
    pub(crate) root: sigstore::Root,
    signer: Option<KeylessSigner>,
}

impl Keyless {
    /// The Fulcio certificate, requested with an identity token on first use.
    fn signer(&mut self) -> Result<&KeylessSigner> {
        if self.signer.is_none() {
            let signer = KeylessSigner::from_env(&self.config, &process_env)
                .map_err(|e| Error::Sign(e.to_string()))?;
            self.signer = Some(signer);
        }
        Ok(self.signer.as_ref().expect("just set"))
    }
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

    /// The configured keyless signer (`[sign] mode = "keyless"`), with the policy its release
    /// gate will verify under: identity and issuer from `[sign]`, else from the GitHub Actions
    /// environment; the configured trusted root, else the one a TUF repository publishes
    /// (Sigstore's by default), fetched and verified now so a release never builds for nothing.
    /// The services come from the signing config (see [`services`]), read now too.
    /// Nothing is sent to Fulcio, Rekor or a TSA yet (see [`Keyless`]).
    pub fn keyless(sign: &crate::config::Sign, env: Env<'_>) -> Result<Signer> {
        let preflight = |e: keyless::KeylessError| Error::Preflight(e.to_string());
        let trust = keyless::TrustSource::new(
            sign.trusted_root.clone(),
            sign.tuf_url.clone(),
            sign.tuf_root.clone(),
            false,
        );
        let signing_config = services::load(&sign.services, &trust, env).map_err(preflight)?;
        let chosen = services::select(
            signing_config.as_ref().map(|(c, name)| (c, name.as_str())),
            &sign.services,
        )
        .map_err(|e| preflight(e.into()))?;
        let config = KeylessConfig {
            services: chosen,
            trust,
            identity: sign.identity.clone(),
            issuer: sign.issuer.clone(),
        };
        let expected = config.expected_identity(env).map_err(preflight)?;
        let root = config.trusted_root(env).map_err(preflight)?.root;
        Ok(Signer::Keyless(Box::new(Keyless {
            config,
            expected,
            root,
            signer: None,
        })))
    }

    /// What can be checked before anything is built: a keyless signer has a source for its
    /// identity token (without fetching one: a token requested now could expire during the build).
    pub fn preflight(&self, env: Env<'_>) -> Result<()> {
        match self {
            Signer::Key { .. } => Ok(()),
            Signer::Keyless(_) => oidc::check_source(env)
                .map(|_| ())
                .map_err(|e| Error::Preflight(e.to_string())),
        }
    }

    /// Keyless signatures come with a certificate and a transparency-log entry per signature.
    pub fn is_keyless(&self) -> bool {
        matches!(self, Signer::Keyless(_))
    }

    pub fn public_key(&self) -> Option<PublicKey> {
        match self {
            Signer::Key { key, .. } => Some(key.public_key()),
            Signer::Keyless(_) => None,
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
            Signer::Keyless(k) => format!(
                "keyless Sigstore ({}) as {} ({})",
                k.config.services, k.expected.identity, k.expected.issuer
            ),
        }
    }

    pub fn sign_blob(&mut self, bytes: &[u8]) -> Result<BlobSignature> {
        match self {
            Signer::Key { key, .. } => {
                let der = key.sign(bytes);
                let bundle =
                    keybundle::to_json(&keybundle::for_blob(bytes, &der, &key.public_key()))
                        .map_err(|e| Error::Sign(e.to_string()))?;
                Ok(BlobSignature {
                    der,
                    bundle,
                    certificate_pem: None,
                })
            }
            Signer::Keyless(k) => {
                let signer = k.signer()?;
                let bundle = signer.sign_blob(bytes).map_err(sign_error)?;
                let sigstore_types::SignatureContent::MessageSignature(signature) = &bundle.content
                else {
                    unreachable!("a blob is signed as a message signature")
                };
                Ok(BlobSignature {
                    der: signature.signature.as_bytes().to_vec(),
                    certificate_pem: Some(signer.certificate_pem()),
                    bundle: bundle.to_json().map_err(|e| Error::Sign(e.to_string()))?,
                })
            }
        }
    }

    /// Signs `payload` as a DSSE envelope (signature over the PAE encoding); returns the
    /// envelope's JSON (one `.intoto.jsonl` line) and its Sigstore bundle's JSON.
    pub fn sign_dsse(&mut self, payload_type: &str, payload: &[u8]) -> Result<(String, String)> {
        match self {
            Signer::Key { key, .. } => {
                let bundle = keybundle::sign_dsse(payload_type, payload, key);
                let envelope = keybundle::envelope(&bundle).expect("a DSSE bundle");
                let json = serde_json::to_string(&envelope).expect("plain data");
                let bundle = keybundle::to_json(&bundle).map_err(|e| Error::Sign(e.to_string()))?;
                Ok((json, bundle))
            }
            Signer::Keyless(k) => {
                let bundle = k
                    .signer()?
                    .sign_dsse(payload_type, payload)
                    .map_err(sign_error)?;
                let envelope = keyless::envelope_json(&bundle).map_err(sign_error)?;
                let json = bundle.to_json().map_err(|e| Error::Sign(e.to_string()))?;
                Ok((envelope, json))
            }
        }
    }
}

fn sign_error(e: keyless::KeylessError) -> Error {
    Error::Sign(e.to_string())
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
