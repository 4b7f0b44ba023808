//! OIDC identity tokens for Fulcio: from `SIGSTORE_ID_TOKEN`, or from GitHub Actions' token endpoint. No browser flow.
//!
//! A token is a bearer credential: it lives in [`IdToken`] (sigstore-oidc's `IdentityToken`),
//! which has no `Display` and whose `Debug` shows only the issuer and subject. Errors name
//! variables and URLs, never values.
//!
//! The GitHub Actions request is ours, not sigstore-oidc's ambient detection: that reads the
//! process environment only (xrelease reads an injectable one, which the tests and the dry-run
//! rehearsal use), demands `GITHUB_ACTIONS=true`, and also picks up other CI systems' tokens,
//! where xrelease wants exactly the two documented sources and errors that name them.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use sigstore_oidc::IdentityToken;

use super::http::{Http, TransportError, excerpt};
use crate::secret::Secret;

/// Explicit token, as cosign and the other Sigstore clients read it.
pub const SIGSTORE_ID_TOKEN: &str = "SIGSTORE_ID_TOKEN";
/// GitHub Actions: the endpoint that mints a token (present with `permissions: id-token: write`).
pub const ACTIONS_ID_TOKEN_REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// GitHub Actions: the bearer credential for that endpoint.
pub const ACTIONS_ID_TOKEN_REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// The audience Fulcio accepts.
pub const SIGSTORE_AUDIENCE: &str = "sigstore";

/// An identity token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Nowhere to get a token from.
    #[error(
        "keyless signing needs an OIDC identity token, and none is available: set {SIGSTORE_ID_TOKEN}, or run in GitHub Actions with `permissions: id-token: write` (which provides {ACTIONS_ID_TOKEN_REQUEST_URL} and {ACTIONS_ID_TOKEN_REQUEST_TOKEN}); or sign with a key (`[sign] mode = \"key\"`)"
    )]
    NoTokenSource,
    /// Half of the GitHub pair is set.
    #[error(
        "{ACTIONS_ID_TOKEN_REQUEST_URL} is set but {ACTIONS_ID_TOKEN_REQUEST_TOKEN} is not; give the job `permissions: id-token: write`"
    )]
    NoRequestToken,
    /// The token endpoint could not be reached.
    #[error("requesting an identity token from GitHub Actions: {0}")]
    Transport(#[from] TransportError),
    /// The token endpoint refused.
    #[error(
        "GitHub Actions' token endpoint answered {status} ({body}); check the job has `permissions: id-token: write` and the request token has not expired"
    )]
    Refused {
        /// HTTP status.
        status: u16,
        /// Scrubbed excerpt of the answer.
        body: String,
    },
    /// The token endpoint's answer has no token.
    #[error("GitHub Actions' token endpoint answered without a `value` field ({detail})")]
    NoValue {
        /// Parser message.
        detail: String,
    },
    /// Not a JWT with the claims Fulcio needs.
    #[error(
        "the identity token from {source_name} is not a usable JWT: {reason}; pass an OIDC ID token (three base64url parts) with `iss` and `sub` claims"
    )]
    Malformed {
        /// Where the token came from (a variable name or "GitHub Actions").
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// Expired before we used it.
    #[error(
        "the identity token from {source_name} expired {seconds_ago} s ago; request a fresh one right before signing"
    )]
    Expired {
        /// Where the token came from.
        source_name: String,
        /// How long ago.
        seconds_ago: i64,
    },
}

/// An OIDC identity token: sigstore-oidc's, whose `Debug` shows nothing of it, plus where it
/// came from (for messages). Its claims are read unverified (Fulcio verifies the token) only to
/// fail early on an expired one.
pub struct IdToken {
    token: IdentityToken,
}

impl std::fmt::Debug for IdToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IdToken(iss={}, sub={})",
            self.token.issuer(),
            self.token.subject()
        )
    }
}

impl IdToken {
    /// Parses a JWT's claims (without verifying its signature) and refuses an expired token.
    /// `source_name` says where it came from, for errors, which never quote the token.
    pub fn parse(raw: String, source_name: &str) -> Result<Self, OidcError> {
        let raw = Secret::new(raw.trim().to_owned());
        let token = IdentityToken::from_jwt(raw.expose()).map_err(|_| OidcError::Malformed {
            source_name: source_name.to_owned(),
            reason: "it is not three dot-separated base64url parts whose payload is JSON with `iss`, `sub` and `exp` claims".to_owned(),
        })?;
        let seconds_ago = now() - token.expiration().as_second();
        if seconds_ago > 0 {
            return Err(OidcError::Expired {
                source_name: source_name.to_owned(),
                seconds_ago,
            });
        }
        Ok(Self { token })
    }

    /// The token, for Fulcio only.
    pub fn token(&self) -> &IdentityToken {
        &self.token
    }

    /// The token's `iss` claim (unverified).
    pub fn issuer(&self) -> &str {
        self.token.issuer()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Where a token will come from, checked before anything is built and without a network call:
/// an explicit `SIGSTORE_ID_TOKEN` must parse and be unexpired now; GitHub Actions' pair must be
/// complete (its token is requested only when signing, so it is fresh then). Returns a
/// description of the source.
pub fn check_source(env: &dyn Fn(&str) -> Option<String>) -> Result<&'static str, OidcError> {
    if let Some(token) = env(SIGSTORE_ID_TOKEN).filter(|t| !t.trim().is_empty()) {
        IdToken::parse(token, SIGSTORE_ID_TOKEN)?;
        return Ok(SIGSTORE_ID_TOKEN);
    }
    if env(ACTIONS_ID_TOKEN_REQUEST_URL).is_some_and(|u| !u.is_empty()) {
        return match env(ACTIONS_ID_TOKEN_REQUEST_TOKEN).filter(|t| !t.is_empty()) {
            Some(_) => Ok("GitHub Actions' token endpoint"),
            None => Err(OidcError::NoRequestToken),
        };
    }
    Err(OidcError::NoTokenSource)
}

/// Finds a token: `SIGSTORE_ID_TOKEN` first (explicit beats ambient), else GitHub Actions.
/// `env` reads a variable (`|name| std::env::var(name).ok()` in production).
pub fn acquire(env: &dyn Fn(&str) -> Option<String>, http: &Http) -> Result<IdToken, OidcError> {
    if let Some(token) = env(SIGSTORE_ID_TOKEN).filter(|t| !t.trim().is_empty()) {
        return IdToken::parse(token, SIGSTORE_ID_TOKEN);
    }
    let Some(url) = env(ACTIONS_ID_TOKEN_REQUEST_URL).filter(|u| !u.is_empty()) else {
        return Err(OidcError::NoTokenSource);
    };
    let request_token = Secret::new(
        env(ACTIONS_ID_TOKEN_REQUEST_TOKEN)
            .filter(|t| !t.is_empty())
            .ok_or(OidcError::NoRequestToken)?,
    );
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}audience={SIGSTORE_AUDIENCE}");
    let authorization = Secret::new(format!("bearer {}", request_token.expose()));
    let response = http.get(&url, Some(authorization.expose()))?;
    if response.status != 200 {
        return Err(OidcError::Refused {
            status: response.status,
            body: excerpt(&response.body, &[request_token.expose()]),
        });
    }
    #[derive(Deserialize)]
    struct Answer {
        value: String,
    }
    // The body holds the token: parse errors must not quote it.
    let answer: Answer = serde_json::from_str(&response.body).map_err(|e| OidcError::NoValue {
        detail: format!("JSON error at line {} column {}", e.line(), e.column()),
    })?;
    IdToken::parse(answer.value, "GitHub Actions")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn jwt(claims: serde_json::Value) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn parses_claims() {
        let t = IdToken::parse(
            jwt(serde_json::json!({"iss": "i", "sub": "s", "exp": now() + 60})),
            "X",
        )
        .unwrap();
        assert_eq!(t.issuer(), "i");
        let no_expiry = jwt(serde_json::json!({"iss": "i", "sub": "s"}));
        assert!(matches!(
            IdToken::parse(no_expiry, "X"),
            Err(OidcError::Malformed { .. })
        ));
    }

    #[test]
    fn errors_and_debug_never_show_the_token() {
        let secret_claims = serde_json::json!({"iss": "i", "sub": "s", "exp": 1, "x": "TOPSECRET"});
        let token = jwt(secret_claims);
        let err = IdToken::parse(token.clone(), "SIGSTORE_ID_TOKEN").unwrap_err();
        assert!(matches!(err, OidcError::Expired { .. }));
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains(&token) && !text.contains("TOPSECRET"),
            "{text}"
        );

        let garbage = "not-a-jwt-TOPSECRET".to_owned();
        let err = IdToken::parse(garbage, "SIGSTORE_ID_TOKEN").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("TOPSECRET"));

        let ok = IdToken::parse(
            jwt(serde_json::json!({"iss": "i", "sub": "s", "exp": now() + 60, "k": "TOPSECRET"})),
            "X",
        )
        .unwrap();
        assert_eq!(format!("{ok:?}"), "IdToken(iss=i, sub=s)");
    }

    #[test]
    fn the_source_is_checked_without_a_network_call() {
        let vars = |pairs: Vec<(&'static str, String)>| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            }
        };
        assert!(matches!(
            check_source(&vars(vec![])),
            Err(OidcError::NoTokenSource)
        ));
        let fresh = jwt(serde_json::json!({"iss": "i", "sub": "s", "exp": now() + 60}));
        assert_eq!(
            check_source(&vars(vec![(SIGSTORE_ID_TOKEN, fresh)])).unwrap(),
            SIGSTORE_ID_TOKEN
        );
        let stale = jwt(serde_json::json!({"iss": "i", "sub": "s", "exp": 1}));
        assert!(matches!(
            check_source(&vars(vec![(SIGSTORE_ID_TOKEN, stale)])),
            Err(OidcError::Expired { .. })
        ));
        let url = (
            ACTIONS_ID_TOKEN_REQUEST_URL,
            "http://127.0.0.1:9/t".to_owned(),
        );
        assert!(matches!(
            check_source(&vars(vec![url.clone()])),
            Err(OidcError::NoRequestToken)
        ));
        let pair = vec![url, (ACTIONS_ID_TOKEN_REQUEST_TOKEN, "x".to_owned())];
        assert!(check_source(&vars(pair)).is_ok());
    }

    #[test]
    fn no_source_is_a_clear_error() {
        let http = Http::new();
        let err = acquire(&|_| None, &http).unwrap_err();
        assert!(matches!(err, OidcError::NoTokenSource));
        assert!(err.to_string().contains("id-token: write"));
        let half = |name: &str| {
            (name == ACTIONS_ID_TOKEN_REQUEST_URL).then(|| "http://127.0.0.1:9/x".to_owned())
        };
        assert!(matches!(
            acquire(&half, &http),
            Err(OidcError::NoRequestToken)
        ));
    }
}
