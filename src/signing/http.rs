//! Blocking HTTP (ureq over rustls) for the GitHub Actions token endpoint and the TUF repository; Fulcio, Rekor and the TSA are reached through the sigstore-rust crates' own clients.
//!
//! Secrets (identity tokens, the Actions request token) only ever travel in request headers or
//! bodies; nothing here formats a header or a request body into an error. Response text that goes
//! into an error is cut short and scrubbed of any secret the caller names.

use std::time::Duration;

/// Long enough for Fulcio/Rekor under load, short enough that a dead endpoint fails a release
/// in minutes rather than hanging a CI job.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How much of an error response to show: enough for the service's message.
const EXCERPT: usize = 300;
/// Responses we accept at all: certificate chains and log entries are a few KiB.
const MAX_BODY: u64 = 4 * 1024 * 1024;

/// A response: status and body text.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body, as text.
    pub body: String,
}

/// A response whose body is bytes.
#[derive(Debug)]
pub struct BytesResponse {
    /// HTTP status code.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

/// Why [`Http::get_bytes`] has no response.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    /// No response.
    #[error(transparent)]
    Transport(TransportError),
    /// The body was longer than allowed.
    #[error("the response is longer than allowed")]
    TooLarge,
}

/// A request did not get a response.
#[derive(Debug, thiserror::Error)]
#[error("{method} {url} failed: {detail}; check the URL and that this machine can reach it")]
pub struct TransportError {
    /// GET or POST.
    pub method: &'static str,
    /// The URL (never holds secrets: tokens travel in headers).
    pub url: String,
    /// What the client said.
    pub detail: String,
}

/// A blocking HTTP client with fixed timeouts; cheap to clone.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    /// A client with xrelease's timeouts and user agent. Status codes are returned, not raised,
    /// so each caller can say what a 401 from *its* service means.
    pub fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            // A redirect must never carry a token to another host (ureq's default; pinned here).
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
            .user_agent(concat!("xrelease/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            agent: config.into(),
        }
    }

    /// GETs `url` with an optional raw `Authorization` header value.
    pub fn get(&self, url: &str, authorization: Option<&str>) -> Result<Response, TransportError> {
        let mut request = self.agent.get(url).header("Accept", "application/json");
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        Self::finish("GET", url, request.call())
    }

    /// GETs `url` as bytes, refusing a body longer than `limit` (TUF metadata and targets,
    /// whose sizes are bounded by what the repository signed).
    pub fn get_bytes(&self, url: &str, limit: u64) -> Result<BytesResponse, GetError> {
        let fail = |detail: String| {
            GetError::Transport(TransportError {
                method: "GET",
                url: url.to_owned(),
                detail,
            })
        };
        let mut response = self
            .agent
            .get(url)
            .call()
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let read = std::io::Read::read_to_end(
            &mut std::io::Read::take(response.body_mut().as_reader(), limit + 1),
            &mut body,
        );
        read.map_err(|e| fail(format!("reading the response: {e}")))?;
        if body.len() as u64 > limit {
            return Err(GetError::TooLarge);
        }
        Ok(BytesResponse { status, body })
    }

    fn finish(
        method: &'static str,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Response, TransportError> {
        let fail = |detail: String| TransportError {
            method,
            url: url.to_owned(),
            detail,
        };
        let mut response = result.map_err(|e| fail(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| fail(format!("reading the response: {e}")))?;
        Ok(Response { status, body })
    }
}

/// The start of `text`, with every `secret` (and every dot-separated JWT part of one, since a
/// service may echo a single segment) replaced by `***`, for quoting in an error.
pub fn excerpt(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "***");
        for part in secret.split('.').filter(|p| p.len() >= 8) {
            out = out.replace(part, "***");
        }
    }
    let trimmed = out.trim();
    match trimmed.char_indices().nth(EXCERPT) {
        Some((cut, _)) => format!("{}...", &trimmed[..cut]),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_hide_secrets_and_stay_short() {
        let jwt = "aaaaaaaaaa.bbbbbbbbbbbb.cccccccccc";
        let shown = excerpt(&format!("bad token {jwt}; payload bbbbbbbbbbbb"), &[jwt]);
        assert_eq!(shown, "bad token ***; payload ***");
        assert_eq!(excerpt(&"x".repeat(1000), &[]).len(), EXCERPT + 3);
        assert_eq!(excerpt("  ok \n", &[""]), "ok");
    }
}
