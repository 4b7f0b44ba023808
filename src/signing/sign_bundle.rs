//! `xrelease sign-bundle`: one file signed into one Sigstore bundle, as the Sigstore
//! conformance suite drives a client. The same keyless signer as a release (one fresh key, one
//! Fulcio certificate, a Rekor entry, a TSA timestamp when the signing config lists a TSA).

use std::path::PathBuf;

use super::dsse::IN_TOTO_PAYLOAD_TYPE;
use super::keyless::{KeylessConfig, KeylessError, KeylessSigner, TrustSource};
use super::oidc::IdToken;
use super::services::{self, Choice, RekorVersion};
use crate::error::{Error, Result};

/// What the protocol's flags ask for.
pub struct Request {
    /// The OIDC identity token (`--identity-token`); never printed.
    pub token: String,
    /// The file to sign.
    pub input: PathBuf,
    /// Where the bundle goes (`--bundle`).
    pub bundle: PathBuf,
    /// `--trusted-root`: a private instance's root; without `--signing-config` the public-good
    /// services are used, as with a release.
    pub trusted_root: Option<PathBuf>,
    /// `--signing-config`.
    pub signing_config: Option<PathBuf>,
    /// `--in-toto`: the file is an in-toto statement, signed as a DSSE envelope.
    pub in_toto: bool,
}

/// Signs `request.input` and writes the bundle; returns a line for the user.
pub fn run(request: Request, env: super::Env<'_>) -> Result<String> {
    let sign = |e: KeylessError| Error::Sign(e.to_string());
    let bytes = std::fs::read(&request.input).map_err(Error::io("cannot read", &request.input))?;
    // A statement that is not one is refused before Fulcio or Rekor hear of it.
    if request.in_toto {
        serde_json::from_slice::<sigstore_types::Statement>(&bytes).map_err(|e| {
            Error::Config(format!(
                "{} is not an in-toto statement ({e}); --in-toto signs a Statement v1 JSON document",
                request.input.display()
            ))
        })?;
    }
    let token = IdToken::parse(request.token, "--identity-token")
        .map_err(|e| Error::Config(e.to_string()))?;
    let trust = TrustSource::new(request.trusted_root, None, None, false);
    let mut choice = Choice {
        signing_config: request.signing_config,
        ..Choice::default()
    };
    let config = services::load(&choice, &trust, env).map_err(sign)?;
    if let Some((config, _)) = &config {
        // The protocol has no version flag: the config decides. Rekor v1 when it lists one
        // (a release's default too), else its v2 log.
        if config.rekor_url(Some(1)).is_none() && config.rekor_url(Some(2)).is_some() {
            choice.rekor_version = Some(RekorVersion::V2);
        }
    }
    let chosen = services::select(config.as_ref().map(|(c, n)| (c, n.as_str())), &choice)
        .map_err(|e| sign(e.into()))?;
    let keyless = KeylessConfig {
        services: chosen,
        trust,
        identity: None,
        issuer: None,
    };
    let signer = KeylessSigner::new(&keyless, &token).map_err(sign)?;
    drop(token);
    let bundle = if request.in_toto {
        signer.sign_dsse(IN_TOTO_PAYLOAD_TYPE, &bytes)
    } else {
        signer.sign_blob(&bytes)
    }
    .map_err(sign)?;
    let json = bundle
        .to_json()
        .map_err(|e| sign(KeylessError::Encode(format!("the bundle ({e})"))))?;
    std::fs::write(&request.bundle, json).map_err(Error::io("cannot write", &request.bundle))?;
    Ok(format!(
        "signed {} into {} ({})",
        request.input.display(),
        request.bundle.display(),
        signer.services()
    ))
}
