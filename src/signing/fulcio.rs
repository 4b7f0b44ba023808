//! Fulcio v2 client: trade an identity token and a proof of possession for a short-lived signing certificate.
//!
//! `POST {fulcio}/api/v2/signingCert` with the token both in `Authorization: Bearer` and in the
//! body (real Fulcio reads either; some deployments only one), the PEM public key, and a
//! signature over the token's principal name proving we hold the private key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

use super::certificate::{Cert, CertificateError, pem_blocks};
use super::http::{Http, TransportError, excerpt};
use super::key::PrivateKey;
use super::oidc::IdToken;
use crate::secret::Secret;

/// Fulcio refused or answered something unusable.
#[derive(Debug, thiserror::Error)]
pub enum FulcioError {
    /// No answer.
    #[error("requesting a signing certificate from Fulcio: {0}")]
    Transport(#[from] TransportError),
    /// The token was not accepted.
    #[error(
        "Fulcio at {url} refused the identity token ({status}: {body}); the token must be fresh, have audience `sigstore`, and come from an issuer this Fulcio trusts"
    )]
    Unauthorized {
        /// Fulcio base URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Scrubbed excerpt of the answer.
        body: String,
    },
    /// Any other non-success status.
    #[error(
        "Fulcio at {url} answered {status} ({body}); check `[sign] fulcio-url` points at a Fulcio v2 API"
    )]
    Status {
        /// Fulcio base URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Scrubbed excerpt of the answer.
        body: String,
    },
    /// A success without a usable chain.
    #[error(
        "Fulcio at {url} answered without a certificate chain with an embedded SCT ({detail}); xrelease needs a Fulcio that embeds SCTs, as the public instance does"
    )]
    Unusable {
        /// Fulcio base URL.
        url: String,
        /// What was missing.
        detail: String,
    },
    /// The chain did not parse.
    #[error("Fulcio's certificate chain: {0}")]
    Certificate(#[from] CertificateError),
    /// The certificate is not for our key.
    #[error(
        "Fulcio at {url} returned a certificate for a different public key than the one sent; refusing to sign with it"
    )]
    WrongKey {
        /// Fulcio base URL.
        url: String,
    },
}

/// The certificate Fulcio issued, leaf first.
#[derive(Debug, Clone)]
pub struct IssuedChain {
    /// The signing certificate.
    pub leaf: Cert,
    /// Intermediates and root as Fulcio sent them (informational: verifiers use the trusted root).
    pub chain: Vec<Cert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigningCertificate {
    signed_certificate_embedded_sct: Option<ChainHolder>,
    signed_certificate_detached_sct: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChainHolder {
    chain: PemChain,
}

#[derive(Deserialize)]
struct PemChain {
    certificates: Vec<String>,
}

/// Requests a certificate for `key`'s public half from the Fulcio at `base_url`.
pub fn request_certificate(
    http: &Http,
    base_url: &str,
    token: &IdToken,
    key: &PrivateKey,
) -> Result<IssuedChain, FulcioError> {
    let base_url = base_url.trim_end_matches('/');
    let public = key.public_key();
    // The body holds the token: keep it in a Secret so it is wiped when sent.
    let body = Secret::new(
        json!({
            "credentials": {"oidcIdentityToken": token.expose()},
            "publicKeyRequest": {
                "publicKey": {"algorithm": "ECDSA", "content": public.to_pem()},
                "proofOfPossession": STANDARD.encode(key.sign(token.challenge().as_bytes())),
            },
        })
        .to_string(),
    );
    let url = format!("{base_url}/api/v2/signingCert");
    let response = http.post_json(&url, body.expose(), Some(token.expose()))?;
    let shown = || excerpt(&response.body, &[token.expose()]);
    match response.status {
        200 | 201 => {}
        401 | 403 => {
            return Err(FulcioError::Unauthorized {
                url: base_url.to_owned(),
                status: response.status,
                body: shown(),
            });
        }
        status => {
            return Err(FulcioError::Status {
                url: base_url.to_owned(),
                status,
                body: shown(),
            });
        }
    }
    let unusable = |detail: String| FulcioError::Unusable {
        url: base_url.to_owned(),
        detail,
    };
    let parsed: SigningCertificate =
        serde_json::from_str(&response.body).map_err(|e| unusable(e.to_string()))?;
    let pems = match (
        parsed.signed_certificate_embedded_sct,
        parsed.signed_certificate_detached_sct,
    ) {
        (Some(holder), _) => holder.chain.certificates,
        (None, Some(_)) => return Err(unusable("it returned a detached SCT".to_owned())),
        (None, None) => return Err(unusable("no signedCertificateEmbeddedSct".to_owned())),
    };
    let mut certs = Vec::new();
    for pem in &pems {
        for der in pem_blocks(pem, "CERTIFICATE", "Fulcio response")? {
            certs.push(Cert::from_der(&der, "Fulcio certificate")?);
        }
    }
    if certs.is_empty() {
        return Err(unusable("the chain is empty".to_owned()));
    }
    let leaf = certs.remove(0);
    if leaf.spki_der() != public.to_spki_der() {
        return Err(FulcioError::WrongKey {
            url: base_url.to_owned(),
        });
    }
    Ok(IssuedChain { leaf, chain: certs })
}
