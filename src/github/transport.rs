//! One request to GitHub: octocrab clients (the token only for hosts the API named), streamed
//! upload bodies, the no-progress timeout, and retries with backoff and jitter.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::{HeaderMap, Method, Request, Uri};
use octocrab::{OctoBody, Octocrab};
use serde::de::DeserializeOwned;

use super::{
    ClientConfig, ErrorBody, Failure, GithubError, Inner, MAX_PAGES, PER_PAGE, Release, Reply,
    RetryPolicy, Token, UPLOAD_CHUNK,
};

pub(super) fn build_octocrab(
    token: &Token,
    api_url: &str,
    upload_base: &str,
    config: &ClientConfig,
) -> Result<Octocrab, GithubError> {
    let invalid = |var: &'static str, url: &str| {
        let url = url.to_string();
        move |e: octocrab::Error| GithubError::InvalidUrl {
            var,
            url,
            reason: e.to_string(),
        }
    };
    Octocrab::builder()
        .personal_token(token.secret().to_string())
        .base_uri(api_url)
        .map_err(invalid("GITHUB_API_URL", api_url))?
        .upload_uri(upload_base)
        .map_err(invalid("GITHUB_UPLOAD_URL", upload_base))?
        // Read/write timeouts are ours (see `Inner::watch`): octocrab's
        // apply per socket read and would also fire on idle pooled
        // connections and during long uploads.
        .set_connect_timeout(Some(config.connect_timeout))
        .add_header(ACCEPT, "application/vnd.github+json".to_string())
        .add_header(
            HeaderName::from_static("x-github-api-version"),
            "2022-11-28".to_string(),
        )
        .build()
        .map_err(|e| GithubError::Setup(scrub(&e.to_string(), token)))
}

/// `scheme://authority` of an absolute URL the token may be sent to:
/// HTTPS, or plain HTTP to this machine only (local test servers).
pub(super) fn origin_of(url: &str) -> Result<String, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let scheme = uri.scheme_str().ok_or("no scheme")?;
    let authority = uri.authority().ok_or("no host")?;
    let loopback = matches!(authority.host(), "127.0.0.1" | "localhost" | "[::1]");
    match scheme {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err("plain http would send the token unencrypted; use https".to_string());
        }
        other => return Err(format!("scheme `{other}` is not https")),
    }
    Ok(format!("{scheme}://{authority}"))
}

/// Percent-encodes one path segment or query value (RFC 3986 unreserved kept).
pub(super) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Removes the token from any text that came from elsewhere (server
/// messages, library errors) before it can reach an error message.
pub(super) fn scrub(text: &str, token: &Token) -> String {
    text.replace(token.secret(), "***")
}

/// An error and its sources on one line, without repeats.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cur = s.source();
    }
    text
}

/// GitHub's `message` and `errors[].code` from an error body.
pub(super) fn parse_error_body(body: &str) -> (String, Vec<String>) {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => {
            let codes = e
                .errors
                .iter()
                .filter_map(|v| {
                    v.get("code").and_then(|c| c.as_str()).map(|c| {
                        match v.get("field").and_then(|f| f.as_str()) {
                            Some(field) => format!("{c} ({field})"),
                            None => c.to_string(),
                        }
                    })
                })
                .collect();
            (e.message.unwrap_or_default(), codes)
        }
        Err(_) => {
            // Proxies answer with HTML; a short excerpt is evidence enough.
            let text: String = body.trim().chars().take(200).collect();
            (text, Vec::new())
        }
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The `rel="next"` target of a `Link` header.
pub(super) fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

/// A random fraction in [0, 1) without a rand dependency: std's hasher keys
/// are randomly seeded per process and differ per call.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Exponential backoff with "equal jitter": half fixed, half random, so
/// concurrent uploads that failed together do not retry in lockstep.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .initial_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let base = exp.min(policy.max_backoff);
    base / 2 + base.mul_f64(random_fraction() / 2.0)
}

/// Streams a file as an upload body, counting bytes handed to the connection.
pub(super) struct FileBody {
    pub(super) file: File,
    pub(super) remaining: u64,
    pub(super) sent: Arc<AtomicU64>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        // A blocking read of one chunk from a local file is short enough to
        // do inline; it keeps the body free of extra threads and channels.
        let want = self.remaining.min(UPLOAD_CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        let n = match self.file.read(&mut buf) {
            Ok(0) => {
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file became shorter while it was being uploaded",
                ))));
            }
            Ok(n) => n,
            Err(e) => return Poll::Ready(Some(Err(e))),
        };
        buf.truncate(n);
        self.remaining -= n as u64;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

impl Inner {
    pub(super) fn repo_path(&self) -> String {
        format!("/repos/{}/{}", self.repo.owner, self.repo.name)
    }

    fn failure_detail(&self, reply: &Reply) -> String {
        let (message, _) = parse_error_body(&reply.body);
        scrub(
            &format!("HTTP {}: {message}", reply.status.as_u16()),
            &self.token,
        )
    }

    /// Maps a final (non-retryable) error answer to the error that names it.
    pub(super) fn api_error(&self, action: &str, reply: &Reply) -> GithubError {
        let (message, codes) = parse_error_body(&reply.body);
        let message = scrub(&message, &self.token);
        let action = action.to_string();
        match reply.status.as_u16() {
            401 => GithubError::BadCredentials { action, message },
            403 => GithubError::Forbidden { action, message },
            status => GithubError::Api {
                action,
                status,
                message,
                codes,
            },
        }
    }

    pub(super) fn bad_response(&self, action: &str, detail: String) -> GithubError {
        GithubError::BadResponse {
            action: action.to_string(),
            api_url: self.config.api_url.clone(),
            detail: scrub(&detail, &self.token),
        }
    }

    /// Decodes a 2xx JSON answer; anything else is final.
    pub(super) fn json<T: DeserializeOwned>(
        &self,
        action: &str,
        reply: &Reply,
    ) -> Result<T, Failure> {
        if !reply.status.is_success() {
            return Err(Failure::Fatal(self.api_error(action, reply)));
        }
        serde_json::from_str(&reply.body).map_err(|e| {
            Failure::Fatal(self.bad_response(
                action,
                format!(
                    "HTTP {} with a body that is not {}: {e}",
                    reply.status,
                    std::any::type_name::<T>()
                ),
            ))
        })
    }

    /// Runs `fut` until it finishes or nothing has moved for
    /// `request_timeout` (movement = `activity` growing, i.e. upload bytes
    /// going out). Reports progress on the way.
    async fn watch<T>(
        &self,
        fut: impl Future<Output = T>,
        activity: &AtomicU64,
        progress: &dyn Fn(u64),
    ) -> Option<T> {
        let mut fut = std::pin::pin!(fut);
        let limit = self.config.request_timeout;
        let tick = (limit / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
        let mut seen = activity.load(Ordering::Relaxed);
        let mut last_move = Instant::now();
        loop {
            match tokio::time::timeout(tick, fut.as_mut()).await {
                Ok(out) => {
                    progress(activity.load(Ordering::Relaxed));
                    return Some(out);
                }
                Err(_) => {
                    let now = activity.load(Ordering::Relaxed);
                    if now != seen {
                        seen = now;
                        last_move = Instant::now();
                        progress(now);
                    } else if last_move.elapsed() >= limit {
                        return None;
                    }
                }
            }
        }
    }

    /// Sends one request and reads the whole answer. Transport failures,
    /// timeouts, 5xx and rate limits come back as `Failure::Retry`; every
    /// other status is returned for the caller to judge.
    pub(super) async fn exchange(
        &self,
        crab: &Octocrab,
        request: Request<OctoBody>,
        activity: &AtomicU64,
        progress: &dyn Fn(u64),
    ) -> Result<Reply, Failure> {
        let round_trip = async {
            let response = crab.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = crab.body_to_string(response).await?;
            Ok::<_, octocrab::Error>(Reply {
                status,
                headers,
                body,
            })
        };
        let reply = match self.watch(round_trip, activity, progress).await {
            None => {
                return Err(Failure::Retry {
                    detail: format!(
                        "no progress for {:.1}s (timeout)",
                        self.config.request_timeout.as_secs_f64()
                    ),
                    wait: None,
                    rate_limited: false,
                });
            }
            Some(Err(e)) => {
                return Err(Failure::Retry {
                    detail: scrub(&error_chain(&e), &self.token),
                    wait: None,
                    rate_limited: false,
                });
            }
            Some(Ok(reply)) => reply,
        };
        let status = reply.status.as_u16();
        let remaining = header_u64(&reply.headers, "x-ratelimit-remaining");
        let retry_after = header_u64(&reply.headers, "retry-after").map(Duration::from_secs);
        // GitHub signals rate limits with 429, or with 403 plus either
        // `x-ratelimit-remaining: 0` (primary) or `retry-after` (secondary).
        let rate_limited =
            status == 429 || (status == 403 && (remaining == Some(0) || retry_after.is_some()));
        if rate_limited {
            let until_reset = (remaining == Some(0))
                .then(|| header_u64(&reply.headers, "x-ratelimit-reset"))
                .flatten()
                .map(|reset| {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    // +1s: the reset time has one-second resolution.
                    Duration::from_secs(reset + 1).saturating_sub(now)
                });
            return Err(Failure::Retry {
                detail: self.failure_detail(&reply),
                wait: retry_after.or(until_reset),
                rate_limited: true,
            });
        }
        if reply.status.is_server_error() {
            return Err(Failure::Retry {
                detail: self.failure_detail(&reply),
                wait: None,
                rate_limited: false,
            });
        }
        Ok(reply)
    }

    /// Runs attempts of one operation until success, a final error, or the
    /// retry budget is spent. `op` gets the attempt number (1-based) so
    /// non-idempotent operations can reconcile before sending again.
    pub(super) async fn retrying<T, F, Fut>(
        &self,
        action: &str,
        mut op: F,
    ) -> Result<T, GithubError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let policy = &self.config.retry;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (detail, wait, rate_limited) = match op(attempt).await {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry {
                    detail,
                    wait,
                    rate_limited,
                }) => (detail, wait, rate_limited),
            };
            let delay = wait.unwrap_or_else(|| backoff(policy, attempt));
            let elapsed = started.elapsed();
            if rate_limited && elapsed + delay > policy.max_elapsed {
                return Err(GithubError::RateLimited {
                    action: action.to_string(),
                    wait: delay,
                    message: detail,
                });
            }
            if attempt >= policy.max_attempts || elapsed + delay > policy.max_elapsed {
                return Err(GithubError::GaveUp {
                    action: action.to_string(),
                    attempts: attempt,
                    elapsed,
                    last: detail,
                });
            }
            tokio::time::sleep(delay).await;
        }
    }

    pub(super) fn request(
        &self,
        method: Method,
        uri: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<Request<OctoBody>, Failure> {
        let builder = Request::builder().method(method).uri(uri);
        let built = match json {
            Some(v) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(OctoBody::from(v.to_string())),
            None => builder.header(CONTENT_LENGTH, "0").body(OctoBody::empty()),
        };
        built.map_err(|e| Failure::Fatal(GithubError::Setup(format!("cannot build request: {e}"))))
    }

    /// One API request, no retries; `uri` is a path below the API base or a
    /// full URL on the API origin (pagination links).
    pub(super) async fn send(
        &self,
        method: Method,
        uri: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<Reply, Failure> {
        let request = self.request(method, uri, json)?;
        self.exchange(&self.api, request, &AtomicU64::new(0), &|_| {})
            .await
    }

    /// Every item of a paginated list, in one attempt (a failure restarts
    /// the listing: pages may shift while we read them anyway).
    pub(super) async fn list_once<T: DeserializeOwned>(
        &self,
        action: &str,
        path: &str,
    ) -> Result<Vec<T>, Failure> {
        let mut uri = format!("{path}?per_page={PER_PAGE}");
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let reply = self.send(Method::GET, &uri, None).await?;
            let page: Vec<T> = self.json(action, &reply)?;
            items.extend(page);
            match next_link(&reply.headers) {
                None => return Ok(items),
                Some(next) => {
                    // Only follow links on the API origin: the token goes with them.
                    if !next.starts_with(&format!("{}/", self.api_origin)) {
                        return Err(Failure::Fatal(self.bad_response(
                            action,
                            format!("pagination link {next} leaves {}", self.api_origin),
                        )));
                    }
                    uri = next;
                }
            }
        }
        Err(Failure::Fatal(GithubError::TooManyPages {
            what: action.to_string(),
            max: MAX_PAGES,
        }))
    }

    /// Full upload URL for `name`, refusing URLs that would expose the token.
    pub(super) fn upload_target(
        &self,
        release: &Release,
        name: &str,
    ) -> Result<String, GithubError> {
        let template = release.upload_url.split('{').next().unwrap_or_default();
        let bad = |reason: &str| GithubError::BadUploadUrl {
            url: release.upload_url.clone(),
            reason: reason.to_string(),
        };
        let base = match &self.config.upload_url {
            Some(over) => {
                let at = template
                    .find("/repos/")
                    .ok_or_else(|| bad("it has no /repos/ path to keep"))?;
                format!("{}{}", over.trim_end_matches('/'), &template[at..])
            }
            None => template.to_string(),
        };
        let origin = origin_of(&base).map_err(|e| bad(&e))?;
        // Never downgrade: an HTTPS API must not hand the token to plain HTTP.
        if self.api_origin.starts_with("https://") && !origin.starts_with("https://") {
            return Err(bad("it is not HTTPS while the API is"));
        }
        Ok(format!("{base}?name={}", encode(name)))
    }

    /// The octocrab instance that attaches the token for `url`'s host.
    pub(super) fn upload_client(&self, url: &str) -> Result<Octocrab, GithubError> {
        let origin = origin_of(url).map_err(|reason| GithubError::BadUploadUrl {
            url: url.to_string(),
            reason,
        })?;
        let mut clients = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&origin) {
            return Ok(c.clone());
        }
        // The upload host is also the base: octocrab prefixes the base URI's
        // path to every request path, even absolute ones on another host, so
        // an Enterprise base of `/api/v3` would turn `/api/uploads/...` into
        // `/api/v3/api/uploads/...`.
        let crab = build_octocrab(&self.token, &origin, &origin, &self.config)?;
        clients.insert(origin, crab.clone());
        Ok(crab)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::Repo;

    #[test]
    fn token_debug_is_masked() {
        let t = Token::new("ghp_secret123").unwrap();
        assert_eq!(format!("{t:?}"), "***");
        assert!(Token::new("  ").is_err());
        assert!(Token::new("a b").is_err());
    }

    #[test]
    fn token_only_travels_encrypted_except_to_loopback() {
        assert_eq!(
            origin_of("https://ghe.example/api/v3").unwrap(),
            "https://ghe.example"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080/x").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(origin_of("http://ghe.example/api/v3").is_err());
        assert!(origin_of("ftp://ghe.example").is_err());
        assert!(origin_of("api.github.com").is_err());
    }

    #[test]
    fn scrub_removes_the_token() {
        let t = Token::new("ghp_abc123").unwrap();
        assert_eq!(
            scrub("Bearer ghp_abc123 rejected", &t),
            "Bearer *** rejected"
        );
    }

    #[test]
    fn next_link_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            "<https://api.github.com/x?page=2>; rel=\"next\", <https://api.github.com/x?page=5>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/x?page=2")
        );
        h.insert(
            "link",
            "<https://a/x?page=1>; rel=\"prev\"".parse().unwrap(),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn encoding_and_repo_parsing() {
        assert_eq!(encode("v1.0.0+build/x y"), "v1.0.0%2Bbuild%2Fx%20y");
        assert_eq!("o/r".parse::<Repo>().unwrap().to_string(), "o/r");
        assert!("o".parse::<Repo>().is_err());
        assert!("o/r/x".parse::<Repo>().is_err());
    }

    #[test]
    fn backoff_stays_within_bounds() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            max_elapsed: Duration::from_secs(10),
        };
        for attempt in 1..12 {
            let d = backoff(&p, attempt);
            assert!(d <= Duration::from_millis(400), "{d:?}");
            assert!(d >= Duration::from_millis(50), "{d:?}");
        }
    }

    #[test]
    fn error_body_codes() {
        let (m, c) = parse_error_body(
            r#"{"message":"Validation Failed","errors":[{"resource":"Release","code":"already_exists","field":"tag_name"}]}"#,
        );
        assert_eq!(m, "Validation Failed");
        assert_eq!(c, vec!["already_exists (tag_name)".to_string()]);
        let (m, c) = parse_error_body("<html>502</html>");
        assert_eq!(m, "<html>502</html>");
        assert!(c.is_empty());
    }
}
