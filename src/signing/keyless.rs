//! Keyless signing with Sigstore: one ephemeral key per release, certified by Fulcio, every signature logged in Rekor.
//!
//! Flow: identity token ([`oidc`](super::oidc)) → fresh P-256 key → one Fulcio certificate for
//! it → per artifact: sign, timestamp at the TSA when one is configured, log in Rekor (v1, or
//! v2 when chosen, see [`super::services`]), wrap in a Sigstore bundle v0.3. The protocol is the
//! sigstore-rust crates' (`sigstore-fulcio`, `-rekor`, `-tsa`, `-crypto`, `-bundle`); this
//! module owns the order and the invariants: the private key never leaves memory and dies with
//! the signer, the token is dropped once the certificate is issued and never printed, the
//! timestamp (private) comes before the log entry (public and permanent), and nothing is signed
//! under an expired certificate. Verification is the crates' too ([`super::sigstore`]).

use sigstore_bundle::BundleV03;
use sigstore_crypto::KeyPair;
use sigstore_fulcio::{FulcioClient, SigningCertificate};
use sigstore_rekor::{
    DsseEntry, HashedRekord, HashedRekordV2, RekorClient, RekorV2Client, RekorV2KeyDetails,
};
use sigstore_tsa::TimestampClient;
use sigstore_types::{
    Bundle, DerCertificate, DsseEnvelope, DsseSignature, KeyId, KindVersion, PayloadBytes,
    Sha256Hash, SignatureBytes, TimestampToken, TransparencyLogEntry,
};

use super::http::{Http, excerpt};
use super::oidc::{self, IdToken, OidcError};
use super::services::{RekorVersion, Services, ServicesError};
pub use super::trust::{ResolvedRoot, RootJson, TrustSource};
use super::trusted_root::TrustedRootError;

pub use super::services::{PUBLIC_GOOD_FULCIO_URL, PUBLIC_GOOD_REKOR_URL};

/// The OIDC issuer of GitHub Actions workflow identities.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Long enough for Fulcio/Rekor under load, short enough that a dead endpoint fails a release
/// in minutes rather than hanging a CI job.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What keyless mode needs (resolved: defaults applied, the signing config consulted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeylessConfig {
    /// Fulcio, Rekor and the TSA.
    pub services: Services,
    /// Where the trusted root for verification comes from.
    pub trust: TrustSource,
    /// Expected certificate identity; `None` derives it from the GitHub Actions environment.
    pub identity: Option<String>,
    /// Expected OIDC issuer; `None` derives it from the GitHub Actions environment.
    pub issuer: Option<String>,
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
    /// The token was not accepted.
    #[error(
        "Fulcio at {url} refused the identity token ({detail}); the token must be fresh, have audience `sigstore`, and come from an issuer this Fulcio trusts"
    )]
    FulcioRefused {
        url: String,
        /// Status and scrubbed answer.
        detail: String,
    },
    /// Fulcio could not be reached, or answered something unusable.
    #[error(
        "requesting a signing certificate from Fulcio at {url}: {detail}; check `[sign] fulcio-url` (or the signing config) points at a Fulcio v2 API"
    )]
    Fulcio { url: String, detail: String },
    /// Rekor refused the entry or could not be reached.
    #[error(
        "logging the {kind} entry in Rekor at {url}: {detail}; check `[sign] rekor-url` and `rekor-version` match the log"
    )]
    Rekor {
        url: String,
        kind: &'static str,
        detail: String,
    },
    /// The timestamp authority failed.
    #[error(
        "requesting an RFC 3161 timestamp from {url}: {detail}; nothing was logged for this signature. Check the signing config's timestamp authority"
    )]
    Tsa { url: String, detail: String },
    /// Generating the ephemeral key or signing with it.
    #[error("the ephemeral signing key: {0}")]
    Key(String),
    /// The services cannot be chosen.
    #[error(transparent)]
    Services(#[from] ServicesError),
    /// The trusted root could not be fetched or verified over TUF.
    #[error(transparent)]
    Tuf(#[from] crate::signing::tuf::TufError),
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
    /// Serialising the envelope or bundle (cannot happen for these types).
    #[error("cannot serialise {0}; this is a bug in xrelease, please report it")]
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
    runtime: tokio::runtime::Runtime,
    services: Services,
    key: KeyPair,
    leaf: DerCertificate,
    /// The leaf's notAfter.
    not_after: jiff::Timestamp,
    identity: Option<String>,
    log: Log,
    tsa: Option<TimestampClient>,
}

enum Log {
    V1(RekorClient),
    V2(RekorV2Client),
}

impl std::fmt::Debug for KeylessSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeylessSigner")
            .field("services", &self.services)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl KeylessSigner {
    /// Finds a token in the environment ([`oidc::acquire`]) and gets a certificate.
    pub fn from_env(
        config: &KeylessConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, KeylessError> {
        let token = oidc::acquire(env, &Http::new())?;
        Self::new(config, &token)
    }

    /// Gets a certificate for a fresh key with `token`; the caller drops the token after this.
    pub fn new(config: &KeylessConfig, token: &IdToken) -> Result<Self, KeylessError> {
        let services = config.services.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KeylessError::Key(format!("cannot start the HTTP runtime: {e}")))?;
        let http = sigstore_fulcio::reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("xrelease/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| KeylessError::Key(format!("cannot build the HTTP client: {e}")))?;
        let key = KeyPair::generate_ecdsa_p256().map_err(|e| KeylessError::Key(e.to_string()))?;
        let (leaf, info) =
            runtime.block_on(certificate(&http, &services.fulcio_url, token, &key))?;
        let rekor_url = services.rekor_url.trim_end_matches('/');
        let rekor = |detail: String| KeylessError::Rekor {
            url: rekor_url.to_owned(),
            kind: "any",
            detail,
        };
        let log = match services.rekor_version {
            RekorVersion::V1 => Log::V1(
                RekorClient::builder(rekor_url)
                    .with_http_client(http.clone())
                    .build()
                    .map_err(|e| rekor(e.to_string()))?,
            ),
            RekorVersion::V2 => Log::V2(
                RekorV2Client::builder(rekor_url)
                    .with_http_client(http.clone())
                    .build()
                    .map_err(|e| rekor(e.to_string()))?,
            ),
        };
        let tsa = match &services.tsa_url {
            Some(url) => Some(
                TimestampClient::builder(url.as_str())
                    .with_http_client(http)
                    .build()
                    .map_err(|e| KeylessError::Tsa {
                        url: url.clone(),
                        detail: e.to_string(),
                    })?,
            ),
            None => None,
        };
        Ok(Self {
            runtime,
            services,
            key,
            leaf,
            not_after: info.not_after,
            identity: info.identity.map(|san| san.as_str().to_owned()),
            log,
            tsa,
        })
    }

    /// The signing certificate as PEM (`SHA256SUMS.pem`), LF line ends as cosign writes it.
    pub fn certificate_pem(&self) -> String {
        super::key::pem_encode("CERTIFICATE", self.leaf.as_bytes())
    }

    /// The services this signer submits to.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Signs `artifact` (ECDSA P-256 over SHA-256), timestamps and logs it as `hashedrekord`,
    /// and returns the bundle. The `.sig` text is the bundle's `messageSignature.signature`.
    pub fn sign_blob(&self, artifact: &[u8]) -> Result<Bundle, KeylessError> {
        self.require_live_certificate()?;
        let digest = sigstore_crypto::sha256(artifact);
        let signature = self.sign(artifact)?;
        let timestamp = self.timestamp(&signature)?;
        let entry = self.log(&digest, &signature, None)?;
        let bundle =
            BundleV03::with_certificate_and_signature(self.leaf.clone(), signature, digest);
        Ok(finish(bundle, entry, timestamp))
    }

    /// Signs `payload` as a DSSE envelope, timestamps and logs it (Rekor v1: a `dsse` entry of
    /// the envelope as signed; v2: a hashedrekord over the SHA-256 of its PAE), and returns the
    /// bundle (whose `dsseEnvelope` is the `.intoto.jsonl` content).
    pub fn sign_dsse(&self, payload_type: &str, payload: &[u8]) -> Result<Bundle, KeylessError> {
        self.require_live_certificate()?;
        let pae = sigstore_types::pae(payload_type, payload);
        let signature = self.sign(&pae)?;
        let envelope = DsseEnvelope::new(
            payload_type,
            PayloadBytes::new(payload.to_vec()),
            DsseSignature::new(signature.clone(), KeyId::default()),
        );
        let timestamp = self.timestamp(&signature)?;
        let entry = self.log(&sigstore_crypto::sha256(&pae), &signature, Some(&envelope))?;
        let bundle = BundleV03::with_certificate_and_dsse(self.leaf.clone(), envelope);
        Ok(finish(bundle, entry, timestamp))
    }

    fn sign(&self, message: &[u8]) -> Result<SignatureBytes, KeylessError> {
        self.key
            .sign(message)
            .map_err(|e| KeylessError::Key(e.to_string()))
    }

    fn timestamp(
        &self,
        signature: &SignatureBytes,
    ) -> Result<Option<TimestampToken>, KeylessError> {
        let Some(tsa) = &self.tsa else {
            return Ok(None);
        };
        self.runtime
            .block_on(tsa.timestamp_signature(signature))
            .map(Some)
            .map_err(|e| KeylessError::Tsa {
                url: self.services.tsa_url.clone().unwrap_or_default(),
                detail: e.to_string(),
            })
    }

    /// Logs a signature over `digest` (a blob's, or a DSSE PAE's when `envelope` is given).
    fn log(
        &self,
        digest: &Sha256Hash,
        signature: &SignatureBytes,
        envelope: Option<&DsseEnvelope>,
    ) -> Result<TransparencyLogEntry, KeylessError> {
        let kind = if envelope.is_some() {
            "dsse"
        } else {
            "hashedrekord"
        };
        let failed = |detail: String| KeylessError::Rekor {
            url: self.services.rekor_url.clone(),
            kind,
            detail,
        };
        match (&self.log, envelope) {
            (Log::V1(rekor), None) => {
                let request = HashedRekord::new(digest, signature, &self.leaf);
                let logged = self.runtime.block_on(rekor.create_entry(request));
                let logged = logged.map_err(|e| failed(rekor_detail(e)))?;
                logged
                    .to_bundle_entry(KindVersion::HashedRekordV001)
                    .map_err(|e| failed(format!("unusable answer: {e}")))
            }
            (Log::V1(rekor), Some(envelope)) => {
                let request =
                    DsseEntry::new(envelope, &self.leaf).map_err(|e| failed(e.to_string()))?;
                let logged = self.runtime.block_on(rekor.create_dsse_entry(request));
                let logged = logged.map_err(|e| failed(rekor_detail(e)))?;
                logged
                    .to_bundle_entry(KindVersion::DsseV001)
                    .map_err(|e| failed(format!("unusable answer: {e}")))
            }
            (Log::V2(rekor), _) => {
                let request = HashedRekordV2::new_with_certificate(
                    digest,
                    signature,
                    &self.leaf,
                    RekorV2KeyDetails::PkixEcdsaP256Sha256,
                );
                self.runtime
                    .block_on(rekor.create_entry(request))
                    .map_err(|e| failed(rekor_detail(e)))
            }
        }
    }

    /// A signature logged after the certificate expired can never verify (the signing time
    /// must fall inside the certificate's validity), so refuse to make one.
    fn require_live_certificate(&self) -> Result<(), KeylessError> {
        if jiff::Timestamp::now() < self.not_after {
            Ok(())
        } else {
            Err(KeylessError::CertificateExpired {
                not_after: self.not_after.to_string(),
            })
        }
    }
}

fn finish(
    bundle: BundleV03,
    entry: TransparencyLogEntry,
    timestamp: Option<TimestampToken>,
) -> Bundle {
    let bundle = bundle.with_tlog_entry(entry);
    match timestamp {
        Some(t) => bundle.with_rfc3161_timestamp(t),
        None => bundle,
    }
    .into_bundle()
}

fn rekor_detail(e: sigstore_rekor::Error) -> String {
    match e {
        sigstore_rekor::Error::Status { status: 409, .. } => {
            "the log already holds this entry (409); sign again to get a fresh signature".to_owned()
        }
        sigstore_rekor::Error::Status { status, message } => {
            format!("answered {status} ({})", excerpt(&message, &[]))
        }
        other => other.to_string(),
    }
}

/// Asks Fulcio for a certificate for `key`. Fulcio must embed the SCT (as the public instance
/// does) and certify exactly our key. Fulcio's answers are scrubbed of the token before they
/// reach an error.
async fn certificate(
    http: &sigstore_fulcio::reqwest::Client,
    url: &str,
    token: &IdToken,
    key: &KeyPair,
) -> Result<(DerCertificate, sigstore_crypto::CertificateInfo), KeylessError> {
    let url = url.trim_end_matches('/');
    let secret = token.token().expose_secret();
    let scrub = |text: String| excerpt(&text, &[secret]);
    let fail = |detail: String| KeylessError::Fulcio {
        url: url.to_owned(),
        detail,
    };
    let client = FulcioClient::builder(url)
        .with_http_client(http.clone())
        .build()
        .map_err(|e| fail(scrub(e.to_string())))?;
    let issued = match client.create_signing_certificate(token.token(), key).await {
        Ok(issued) => issued,
        Err(sigstore_fulcio::Error::Status {
            status: status @ (401 | 403),
            message,
        }) => {
            return Err(KeylessError::FulcioRefused {
                url: url.to_owned(),
                detail: format!("{status}: {}", scrub(message)),
            });
        }
        Err(e) => return Err(fail(scrub(e.to_string()))),
    };
    let leaf = match &issued {
        SigningCertificate::EmbeddedSct { chain } => chain[0].clone(),
        _ => {
            return Err(fail(
                "it returned a detached SCT; xrelease needs a Fulcio that embeds SCTs, as the public instance does"
                    .to_owned(),
            ));
        }
    };
    let info = sigstore_crypto::parse_certificate_info(&leaf)
        .map_err(|e| fail(format!("its certificate does not parse: {e}")))?;
    let ours = key
        .public_key_der()
        .map_err(|e| KeylessError::Key(e.to_string()))?;
    if info.public_key != ours {
        return Err(fail(
            "it returned a certificate for a different public key than the one sent; refusing to sign with it"
                .to_owned(),
        ));
    }
    Ok((leaf, info))
}

/// The envelope of a DSSE bundle as JSON, exactly as the bundle holds it (the `.intoto.jsonl`
/// line).
pub fn envelope_json(bundle: &Bundle) -> Result<String, KeylessError> {
    let sigstore_types::SignatureContent::DsseEnvelope(envelope) = &bundle.content else {
        return Err(KeylessError::Encode(
            "a blob bundle as an envelope".to_owned(),
        ));
    };
    serde_json::to_string(envelope)
        .map_err(|e| KeylessError::Encode(format!("the DSSE envelope ({e})")))
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
