//! Client settings: API and upload URLs, timeouts, retries; defaults, and the environment
//! variables that override them.

use std::time::Duration;

use super::{DEFAULT_API_URL, GithubError};

/// How hard to retry transient failures (5xx, 429/rate limits, timeouts, connection errors).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per operation, the first one included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time, with jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// No operation keeps retrying past this; a rate-limit wait that would
    /// end later fails at once instead.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(300),
        }
    }
}

/// Client settings; [`ClientConfig::from_env`] reads the standard variables.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// API base, e.g. `https://api.github.com` or `https://HOST/api/v3`.
    pub api_url: String,
    /// Upload base replacing the scheme, host and prefix of each release's
    /// `upload_url` (e.g. `https://HOST/api/uploads`); `None` uses the
    /// `upload_url` GitHub returns, which is right almost everywhere.
    pub upload_url: Option<String>,
    pub connect_timeout: Duration,
    /// A request fails when nothing moved for this long: no response to an
    /// API call, or no upload progress and no response to an upload.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Uploads in flight at once.
    pub upload_concurrency: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            api_url: DEFAULT_API_URL.to_string(),
            upload_url: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            upload_concurrency: 4,
        }
    }
}

/// Attempts per request, the first included (`1` turns retries off).
pub const ATTEMPTS_ENV: &str = "XRELEASE_GITHUB_ATTEMPTS";
/// Seconds without progress after which a request is abandoned (and retried).
pub const TIMEOUT_ENV: &str = "XRELEASE_GITHUB_TIMEOUT";

impl ClientConfig {
    /// Defaults, with `GITHUB_API_URL`, `GITHUB_UPLOAD_URL`, [`ATTEMPTS_ENV`] and
    /// [`TIMEOUT_ENV`] applied when set.
    pub fn from_env() -> Result<Self, GithubError> {
        let mut cfg = ClientConfig::default();
        if let Some(v) = env_nonempty("GITHUB_API_URL") {
            cfg.api_url = v;
        }
        cfg.upload_url = env_nonempty("GITHUB_UPLOAD_URL");
        if let Some(n) = env_number(ATTEMPTS_ENV)? {
            cfg.retry.max_attempts = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(secs) = env_number(TIMEOUT_ENV)? {
            cfg.request_timeout = Duration::from_secs(secs);
        }
        Ok(cfg)
    }
}

/// A positive whole number from the environment, if set.
fn env_number(var: &'static str) -> Result<Option<u64>, GithubError> {
    match env_nonempty(var) {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(GithubError::Setup(format!(
                "{var} is `{v}`; it must be a whole number of at least 1"
            ))),
        },
    }
}

fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}
