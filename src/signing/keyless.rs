//! Keyless signing with Sigstore: one ephemeral key per release, certified by Fulcio, every signature logged in Rekor.
//!
//! Flow: identity token ([`oidc`](super::oidc)) → fresh P-256 key → Fulcio certificate for it
//! ([`fulcio`](super::fulcio)) → per artifact: sign, upload to Rekor ([`rekor`](super::rekor)),
//! wrap in a Sigstore bundle v0.3. The private key never leaves memory and dies with the signer;
//! the token is dropped once the certificate is issued. Verification is the sigstore-rust
//! crates' ([`super::sigstore`]).

use sha2::{Digest as _, Sha256};

use super::bundle::{
    Base64Bytes, Bundle, Content, HashAlgorithm, HashOutput, MEDIA_TYPE, MessageSignature,
    TransparencyLogEntry, VerificationContent, VerificationMaterial, X509Certificate,
};
use super::certificate::{Cert, to_pem};
use super::dsse::Envelope;
use super::fulcio::{self, FulcioError, IssuedChain};
use super::http::Http;
use super::key::{KeyError, PrivateKey};
use super::oidc::{self, IdToken, OidcError};
use super::rekor::{self, RekorError};
pub use super::trust::{ResolvedRoot, RootJson, TrustSource};
use super::trusted_root::{TrustedRootError, format_rfc3339};

/// The public-good Fulcio.
pub const PUBLIC_GOOD_FULCIO_URL: &str = "https://fulcio.sigstore.dev";
/// The public-good Rekor.
pub const PUBLIC_GOOD_REKOR_URL: &str = "https://rekor.sigstore.dev";
/// The OIDC issuer of GitHub Actions workflow identities.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// The `[sign]` keys keyless mode uses (resolved: defaults applied, empty strings gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeylessConfig {
    /// Fulcio base URL.
    pub fulcio_url: String,
    /// Rekor base URL.
    pub rekor_url: String,
    /// Where the trusted root for verification comes from.
    pub trust: TrustSource,
    /// Expected certificate identity; `None` derives it from the GitHub Actions environment.
    pub identity: Option<String>,
    /// Expected OIDC issuer; `None` derives it from the GitHub Actions environment.
    pub issuer: Option<String>,
}

impl Default for KeylessConfig {
    fn default() -> Self {
        Self {
            fulcio_url: PUBLIC_GOOD_FULCIO_URL.to_owned(),
            rekor_url: PUBLIC_GOOD_REKOR_URL.to_owned(),
            trust: TrustSource::default(),
            identity: None,
            issuer: None,
        }
    }
}

/// Who must have signed: the certificate's SAN and Fulcio's issuer extension, compared exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedIdentity {
    /// A URI SAN (e.g. the workflow URL) or an email SAN.
    pub identity: String,
    /// OIDC issuer URL.
    pub issuer: String,
}

/// Keyless signing failed, or its policy is incomplete.
#[derive(Debug, thiserror::Error)]
pub enum KeylessError {
    /// No token.
    #[error(transparent)]
    Oidc(#[from] OidcError),
    /// Fulcio.
    #[error(transparent)]
    Fulcio(#[from] FulcioError),
    /// Rekor.
    #[error(transparent)]
    Rekor(#[from] RekorError),
    /// Generating the ephemeral key.
    #[error("generating the ephemeral signing key: {0}")]
    Key(#[from] KeyError),
    /// The trusted root could not be fetched or verified over TUF.
    #[error(transparent)]
    Tuf(#[from] crate::tuf::TufError),
    /// The trusted root could not be read.
    #[error(transparent)]
    TrustedRoot(#[from] TrustedRootError),
    /// The trusted root is not one the Sigstore crates accept.
    #[error(transparent)]
    Root(#[from] super::sigstore::RootError),
    /// No identity configured and none derivable.
    #[error(
        "no expected signer identity: set `[sign] identity` (or `--certificate-identity`), e.g. https://github.com/OWNER/REPO/.github/workflows/release.yml@refs/tags/v1.0.0; in GitHub Actions it defaults from GITHUB_WORKFLOW_REF"
    )]
    NoIdentity,
    /// No issuer configured and none derivable.
    #[error(
        "no expected OIDC issuer: set `[sign] issuer` (or `--certificate-oidc-issuer`), e.g. {GITHUB_ACTIONS_ISSUER}; in GitHub Actions it defaults to that"
    )]
    NoIssuer,
    /// The short-lived certificate ran out before everything was signed.
    #[error(
        "the Fulcio certificate expired at {not_after} (they live about 10 minutes); create the keyless signer right before signing, not before the build"
    )]
    CertificateExpired {
        /// notAfter, RFC 3339.
        not_after: String,
    },
    /// Serialising the envelope (cannot happen for these types).
    #[error(
        "cannot serialise the DSSE envelope ({0}); this is a bug in xrelease, please report it"
    )]
    Encode(String),
}

/// The identity a GitHub Actions workflow run gets from Fulcio:
/// `https://github.com/OWNER/REPO/.github/workflows/WORKFLOW@REF`, from `GITHUB_WORKFLOW_REF`
/// (the top-level workflow; a release run from a reusable workflow is certified with that
/// reusable workflow's ref instead, so set `identity` explicitly in that case).
pub fn github_workflow_identity(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let workflow_ref = env("GITHUB_WORKFLOW_REF").filter(|r| !r.is_empty())?;
    let server = env("GITHUB_SERVER_URL").filter(|s| !s.is_empty());
    let server = server
        .as_deref()
        .unwrap_or("https://github.com")
        .trim_end_matches('/');
    Some(format!("{server}/{workflow_ref}"))
}

impl KeylessConfig {
    /// The trusted root the release gate verifies against (see [`TrustSource::resolve`]).
    pub fn trusted_root(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ResolvedRoot, KeylessError> {
        self.trust.resolve(env)
    }

    /// The verification policy: configured values, else GitHub Actions defaults.
    pub fn expected_identity(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ExpectedIdentity, KeylessError> {
        let in_actions = env("GITHUB_ACTIONS").as_deref() == Some("true");
        let identity = self
            .identity
            .clone()
            .or_else(|| github_workflow_identity(env))
            .ok_or(KeylessError::NoIdentity)?;
        let issuer = self
            .issuer
            .clone()
            .or_else(|| in_actions.then(|| GITHUB_ACTIONS_ISSUER.to_owned()))
            .ok_or(KeylessError::NoIssuer)?;
        Ok(ExpectedIdentity { identity, issuer })
    }
}

/// Signs blobs and DSSE envelopes under one Fulcio certificate.
pub struct KeylessSigner {
    http: Http,
    rekor_url: String,
    key: PrivateKey,
    issued: IssuedChain,
}

impl std::fmt::Debug for KeylessSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeylessSigner")
            .field("rekor_url", &self.rekor_url)
            .field("identity", &self.issued.leaf.san_identities())
            .finish_non_exhaustive()
    }
}

impl KeylessSigner {
    /// Finds a token in the environment ([`oidc::acquire`]) and gets a certificate.
    pub fn from_env(
        config: &KeylessConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, KeylessError> {
        let http = Http::new();
        let token = oidc::acquire(env, &http)?;
        Self::with_http(config, &token, http)
    }

    /// Gets a certificate for a fresh key with `token`.
    pub fn new(config: &KeylessConfig, token: &IdToken) -> Result<Self, KeylessError> {
        Self::with_http(config, token, Http::new())
    }

    fn with_http(
        config: &KeylessConfig,
        token: &IdToken,
        http: Http,
    ) -> Result<Self, KeylessError> {
        let key = PrivateKey::generate()?;
        let issued = fulcio::request_certificate(&http, &config.fulcio_url, token, &key)?;
        Ok(Self {
            http,
            rekor_url: config.rekor_url.clone(),
            key,
            issued,
        })
    }

    /// The signing certificate.
    pub fn certificate(&self) -> &Cert {
        &self.issued.leaf
    }

    /// The signing certificate as PEM (`SHA256SUMS.pem`).
    pub fn certificate_pem(&self) -> String {
        to_pem("CERTIFICATE", self.issued.leaf.der())
    }

    /// Signs `artifact` (ECDSA P-256 over SHA-256), logs it as `hashedrekord`, returns the bundle.
    /// The `.sig` text is the bundle's `messageSignature.signature`.
    pub fn sign_blob(&self, artifact: &[u8]) -> Result<Bundle, KeylessError> {
        self.require_live_certificate()?;
        let digest = Sha256::digest(artifact);
        let signature = self.key.sign(artifact);
        let entry = rekor::hashedrekord_entry(&digest, &signature, &self.issued.leaf);
        let logged = rekor::upload(&self.http, &self.rekor_url, &entry)?;
        let content = Content::MessageSignature(MessageSignature {
            message_digest: Some(HashOutput {
                algorithm: HashAlgorithm::Sha2_256,
                digest: Base64Bytes(digest.to_vec()),
            }),
            signature: Base64Bytes(signature),
        });
        Ok(self.bundle(content, logged))
    }

    /// Signs `payload` as a DSSE envelope, logs the envelope exactly as signed as `dsse`, and
    /// returns the bundle (whose `dsseEnvelope` is the `.intoto.jsonl` content).
    pub fn sign_dsse(&self, payload_type: &str, payload: &[u8]) -> Result<Bundle, KeylessError> {
        self.require_live_certificate()?;
        let envelope = Envelope::sign(payload_type, payload, &self.key, "");
        let envelope_json =
            serde_json::to_string(&envelope).map_err(|e| KeylessError::Encode(e.to_string()))?;
        let entry = rekor::dsse_entry(&envelope_json, &self.issued.leaf);
        let logged = rekor::upload(&self.http, &self.rekor_url, &entry)?;
        Ok(self.bundle(Content::DsseEnvelope(envelope), logged))
    }

    /// A signature logged after the certificate expired can never verify (the integrated time
    /// must fall inside the certificate's validity), so refuse to make one.
    fn require_live_certificate(&self) -> Result<(), KeylessError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let (_, not_after) = self.issued.leaf.validity();
        if now < not_after {
            Ok(())
        } else {
            Err(KeylessError::CertificateExpired {
                not_after: format_rfc3339(not_after),
            })
        }
    }

    fn bundle(&self, content: Content, logged: TransparencyLogEntry) -> Bundle {
        Bundle {
            media_type: MEDIA_TYPE.to_owned(),
            verification_material: VerificationMaterial {
                content: VerificationContent::Certificate(X509Certificate {
                    raw_bytes: Base64Bytes(self.issued.leaf.der().to_vec()),
                }),
                tlog_entries: vec![logged],
                timestamp_verification_data: None,
            },
            content,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn identity_defaults_from_github_actions() {
        let vars = [
            ("GITHUB_ACTIONS", "true"),
            (
                "GITHUB_WORKFLOW_REF",
                "o/r/.github/workflows/release.yml@refs/tags/v1.0.0",
            ),
        ];
        let expected = KeylessConfig::default()
            .expected_identity(&env(&vars))
            .unwrap();
        assert_eq!(
            expected.identity,
            "https://github.com/o/r/.github/workflows/release.yml@refs/tags/v1.0.0"
        );
        assert_eq!(expected.issuer, GITHUB_ACTIONS_ISSUER);

        let configured = KeylessConfig {
            identity: Some("me@example.com".to_owned()),
            issuer: Some("https://accounts.example.com".to_owned()),
            ..KeylessConfig::default()
        };
        let expected = configured.expected_identity(&env(&vars)).unwrap();
        assert_eq!(
            (expected.identity.as_str(), expected.issuer.as_str()),
            ("me@example.com", "https://accounts.example.com")
        );
    }

    #[test]
    fn identity_outside_actions_must_be_configured() {
        let cfg = KeylessConfig::default();
        assert!(matches!(
            cfg.expected_identity(&env(&[])),
            Err(KeylessError::NoIdentity)
        ));
        let only_identity = KeylessConfig {
            identity: Some("x".to_owned()),
            ..KeylessConfig::default()
        };
        assert!(matches!(
            only_identity.expected_identity(&env(&[])),
            Err(KeylessError::NoIssuer)
        ));
    }
}
