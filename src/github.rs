//! GitHub Releases client: the only code in xrelease that talks to the network (check access,
//! find or create a draft, upload and verify assets, publish; and, for rehearsals, describe the
//! requests it would send without sending any).

// Safety rules this module enforces, whatever the network does:
// - a release is published only after its assets were listed back from
//   GitHub and match the local files exactly (names, sizes, sha256 digests);
// - nothing is ever deleted, and a published release is never modified;
// - a request whose answer was lost is reconciled by listing before it is
//   sent again, so retries cannot create duplicate drafts or assets;
// - the token only travels to the API host and to the upload host that the
//   API itself named, and never appears in errors or debug output.
//
// HTTP goes through octocrab's raw `execute` with our own serde types:
// octocrab's typed upload buffers the whole file, reports no progress and
// mangles Enterprise upload paths (see `Inner::upload_client`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use octocrab::{OctoBody, Octocrab};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Where GitHub.com's API lives; `GITHUB_API_URL` overrides it (Enterprise: `https://HOST/api/v3`).
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Said by every error after which running the same command again is safe and makes progress.
const RESUME: &str = "re-run the same command: assets already uploaded are kept";
/// GitHub's largest page size; fewer round trips when listing.
const PER_PAGE: u32 = 100;
/// A repository with more releases than this is beyond what we list
/// (it bounds the pagination loop).
const MAX_PAGES: usize = 100;
/// Upload bodies are streamed from disk in chunks of this size.
const UPLOAD_CHUNK: usize = 256 * 1024;

/// A GitHub token. It cannot be displayed, its `Debug` output is `***`, and it is wiped from
/// memory when dropped, so it cannot leak through logs or error messages by accident.
pub struct Token(Secret<String>);

impl Token {
    /// Wraps a token, refusing empty ones and ones that cannot be an HTTP header value.
    pub fn new(secret: impl Into<String>) -> Result<Self, GithubError> {
        let secret = secret.into();
        let trimmed = secret.trim();
        // Only visible ASCII can travel in an Authorization header; anything
        // else is a paste accident (quotes are allowed by HTTP but never in
        // GitHub tokens, so they are rejected too).
        if trimmed.is_empty()
            || !trimmed
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'')
        {
            return Err(GithubError::InvalidToken);
        }
        Ok(Token(Secret::new(trimmed.to_string())))
    }

    /// Reads `GITHUB_TOKEN`.
    pub fn from_env() -> Result<Self, GithubError> {
        match std::env::var("GITHUB_TOKEN") {
            Ok(v) => Self::new(v),
            Err(_) => Err(GithubError::MissingToken),
        }
    }

    fn secret(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `OWNER/NAME` of a GitHub repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repo {
    pub owner: String,
    pub name: String,
}

impl Repo {
    pub fn new(owner: &str, name: &str) -> Result<Self, GithubError> {
        // Restricting to GitHub's own character set means the names can be
        // put in URL paths without encoding.
        let ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if ok(owner) && ok(name) {
            Ok(Repo {
                owner: owner.to_string(),
                name: name.to_string(),
            })
        } else {
            Err(GithubError::InvalidRepo(format!("{owner}/{name}")))
        }
    }
}

impl FromStr for Repo {
    type Err = GithubError;
    fn from_str(s: &str) -> Result<Self, GithubError> {
        match s.trim().split_once('/') {
            Some((owner, name)) => Repo::new(owner, name),
            None => Err(GithubError::InvalidRepo(s.to_string())),
        }
    }
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

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

/// A release as GitHub reports it (the fields xrelease uses).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Release {
    pub id: u64,
    #[serde(rename = "tag_name")]
    pub tag: String,
    pub name: Option<String>,
    pub draft: bool,
    pub prerelease: bool,
    pub html_url: String,
    /// URI template `.../releases/ID/assets{?name,label}` on the upload host.
    pub upload_url: String,
}

/// A release asset as GitHub reports it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Asset {
    pub id: u64,
    pub name: String,
    pub size: u64,
    /// `uploaded` when complete; `starter` marks an interrupted upload.
    pub state: String,
    /// `sha256:<hex>`; absent on GitHub Enterprise versions that predate it.
    pub digest: Option<String>,
    pub browser_download_url: String,
}

/// What exists on GitHub for a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FoundRelease {
    Published(Release),
    Draft(Release),
    Absent,
}

/// One file to attach to the release under `name`.
#[derive(Clone, Debug)]
pub struct PlannedAsset {
    pub name: String,
    pub path: PathBuf,
    /// The sha256 (hex) the file must have, e.g. the verified manifest's: a file that changed
    /// since is refused before anything is sent.
    pub sha256: Option<String>,
}

impl PlannedAsset {
    /// The asset is named after the file.
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Self, GithubError> {
        let path = path.into();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                GithubError::InvalidPlan(format!(
                    "{} has no UTF-8 file name to use as the asset name",
                    path.display()
                ))
            })?
            .to_string();
        Ok(PlannedAsset {
            name,
            path,
            sha256: None,
        })
    }
}

/// Everything `publish_release` needs.
#[derive(Clone, Debug)]
pub struct ReleasePlan {
    pub tag: String,
    pub name: String,
    pub body: String,
    pub prerelease: bool,
    pub assets: Vec<PlannedAsset>,
}

/// What `publish_release` did.
#[derive(Clone, Debug)]
pub struct PublishReport {
    /// The published release.
    pub release: Release,
    /// Assets uploaded by this run.
    pub uploaded: Vec<String>,
    /// Assets found on the draft with the right content and kept.
    pub kept: Vec<String>,
    /// The release was already published with exactly these assets (a
    /// previous run published it but did not see the answer); nothing changed.
    pub already_published: bool,
}

/// Everything that can go wrong talking to GitHub, each with the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GithubError {
    #[error(
        "GITHUB_TOKEN is not set: export a token that can write releases (fine-grained: `Contents: write`; in GitHub Actions: `permissions: contents: write` and `GITHUB_TOKEN: ${{{{ secrets.GITHUB_TOKEN }}}}`)"
    )]
    MissingToken,
    #[error(
        "GITHUB_TOKEN is empty or contains spaces, quotes or control characters: set it to the token alone, without quotes or a trailing newline"
    )]
    InvalidToken,
    #[error(
        "{var} `{url}` is not a usable URL ({reason}): use e.g. https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise"
    )]
    InvalidUrl {
        var: &'static str,
        url: String,
        reason: String,
    },
    #[error("`{0}` is not a repository: expected OWNER/NAME, e.g. rust-lang/cargo")]
    InvalidRepo(String),
    #[error("invalid release plan: {0}")]
    InvalidPlan(String),
    #[error(
        "{} changed after it was verified (sha256 {expected} expected, {actual} on disk): nothing was sent for it; run the release again", path.display()
    )]
    Changed {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot read {}: {source}: check that the build produced it", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "GitHub rejected the token while trying to {action} (HTTP 401: {message}): check that GITHUB_TOKEN is current and not revoked"
    )]
    BadCredentials { action: String, message: String },
    #[error(
        "repository {repo} was not found (HTTP 404: {message}): check OWNER/NAME and that the token can see it (GitHub answers 404 to tokens without access to a private repository)"
    )]
    RepoNotFound { repo: String, message: String },
    #[error(
        "the token can read {repo} but cannot push to it, so it cannot create releases: grant `Contents: write` (in GitHub Actions: `permissions: contents: write`)"
    )]
    NoPushAccess { repo: String },
    #[error(
        "GitHub refused to {action} (HTTP 403: {message}): the token lacks permission; grant `Contents: write` on the repository, and authorize the token for SAML SSO if the organization requires it"
    )]
    Forbidden { action: String, message: String },
    #[error("GitHub refused to {action} (HTTP {status}: {message}{}); {RESUME}", codes_suffix(.codes))]
    Api {
        action: String,
        status: u16,
        message: String,
        codes: Vec<String>,
    },
    #[error(
        "release {tag} is already published on {repo} ({url}) and its assets differ from this build: releases are immutable: cut a new tag"
    )]
    AlreadyPublished {
        repo: String,
        tag: String,
        url: String,
    },
    #[error(
        "{} draft releases exist for tag {tag} on {repo} (ids {}): keep one and delete the others in the GitHub web UI, then re-run", ids.len(), join(ids)
    )]
    SeveralDrafts {
        repo: String,
        tag: String,
        ids: Vec<u64>,
    },
    #[error(
        "draft release {tag} ({url}) holds assets that do not match this build: {}; xrelease never deletes assets: delete these from the draft (or cut a new tag), then re-run", problems.join("; ")
    )]
    AssetsDiffer {
        tag: String,
        url: String,
        problems: Vec<String>,
    },
    #[error(
        "asset {name} was uploaded to draft {url} but GitHub's copy does not match the local file ({detail}): was the file changed during the upload? delete the asset from the draft and re-run"
    )]
    UploadMismatch {
        name: String,
        url: String,
        detail: String,
    },
    #[error(
        "refusing to publish {tag}: after uploading, the draft's assets do not match this build: {}; nothing was published: re-run the same command", problems.join("; ")
    )]
    VerificationFailed { tag: String, problems: Vec<String> },
    #[error(
        "GitHub kept failing to {action}: gave up after {attempts} attempt(s) in {:.1}s; last error: {last}; {RESUME}", elapsed.as_secs_f64()
    )]
    GaveUp {
        action: String,
        attempts: u32,
        elapsed: Duration,
        last: String,
    },
    #[error(
        "GitHub's rate limit blocks {action} for about {}s more ({message}): wait, then {RESUME}", wait.as_secs()
    )]
    RateLimited {
        action: String,
        wait: Duration,
        message: String,
    },
    #[error(
        "unexpected answer from GitHub to {action}: {detail}: check that {api_url} is a GitHub API URL; then {RESUME}"
    )]
    BadResponse {
        action: String,
        api_url: String,
        detail: String,
    },
    #[error(
        "refusing the upload URL GitHub returned ({url}): {reason}; set GITHUB_UPLOAD_URL to your uploads endpoint (e.g. https://HOST/api/uploads)"
    )]
    BadUploadUrl { url: String, reason: String },
    #[error("there are more than {max} pages of {what}: xrelease cannot scan them all")]
    TooManyPages { what: String, max: usize },
    #[error("could not set up the GitHub client: {0}")]
    Setup(String),
}

fn codes_suffix(codes: &[String]) -> String {
    if codes.is_empty() {
        String::new()
    } else {
        format!("; error codes: {}", codes.join(", "))
    }
}

fn join(ids: &[u64]) -> String {
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The synchronous client. Each call runs to completion on a private
/// current-thread tokio runtime, so it must not be called from inside
/// another async runtime.
pub struct GitHub {
    inner: Inner,
    // Declared last so it is dropped after the octocrab clients whose
    // background tasks live on it.
    rt: tokio::runtime::Runtime,
}

impl fmt::Debug for GitHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHub")
            .field("repo", &self.inner.repo)
            .field("api_url", &self.inner.config.api_url)
            .field("token", &self.inner.token)
            .finish_non_exhaustive()
    }
}

struct Inner {
    repo: Repo,
    token: Token,
    config: ClientConfig,
    api: Octocrab,
    api_origin: String,
    /// One octocrab per upload host: octocrab only attaches the token to the
    /// hosts it was built with, so each host the API names gets its own.
    uploads: Mutex<HashMap<String, Octocrab>>,
}

/// One HTTP exchange that completed, whatever its status.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// Why an attempt did not succeed.
enum Failure {
    /// Worth another attempt; `wait` is GitHub's own instruction (rate limits).
    Retry {
        detail: String,
        wait: Option<Duration>,
        rate_limited: bool,
    },
    Fatal(GithubError),
}

impl From<GithubError> for Failure {
    fn from(e: GithubError) -> Self {
        Failure::Fatal(e)
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RepoJson {
    permissions: Option<Permissions>,
}

#[derive(Deserialize)]
struct Permissions {
    #[serde(default)]
    push: bool,
}

/// A local file ready to upload: its digest is computed once, up front.
struct LocalAsset {
    name: String,
    path: PathBuf,
    size: u64,
    digest: String,
}

impl GitHub {
    /// Builds a client for `repo`; nothing is sent until an operation is called.
    pub fn new(token: Token, repo: Repo, config: ClientConfig) -> Result<Self, GithubError> {
        let api_url = config.api_url.trim_end_matches('/').to_string();
        let api_origin = origin_of(&api_url).map_err(|reason| GithubError::InvalidUrl {
            var: "GITHUB_API_URL",
            url: api_url.clone(),
            reason,
        })?;
        if let Some(u) = &config.upload_url {
            origin_of(u).map_err(|reason| GithubError::InvalidUrl {
                var: "GITHUB_UPLOAD_URL",
                url: u.clone(),
                reason,
            })?;
        }
        if config.upload_concurrency == 0 || config.retry.max_attempts == 0 {
            return Err(GithubError::Setup(
                "upload_concurrency and retry.max_attempts must be at least 1".into(),
            ));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| GithubError::Setup(format!("cannot start the async runtime: {e}")))?;
        // octocrab spawns its request buffer on the current runtime.
        let api = {
            let _guard = rt.enter();
            build_octocrab(&token, &api_url, &api_url, &config)?
        };
        let config = ClientConfig { api_url, ..config };
        Ok(GitHub {
            inner: Inner {
                repo,
                token,
                config,
                api,
                api_origin,
                uploads: Mutex::new(HashMap::new()),
            },
            rt,
        })
    }

    /// `GITHUB_TOKEN`, `GITHUB_API_URL` and `GITHUB_UPLOAD_URL` from the environment.
    pub fn from_env(repo: Repo) -> Result<Self, GithubError> {
        Self::new(Token::from_env()?, repo, ClientConfig::from_env()?)
    }

    pub fn repo(&self) -> &Repo {
        &self.inner.repo
    }

    /// Fails unless the token reaches the repository and may push to it.
    pub fn check_access(&self) -> Result<(), GithubError> {
        self.rt.block_on(self.inner.check_access())
    }

    /// The published release for `tag`, else its single draft, else `Absent`.
    /// Several drafts for the tag are an error listing them.
    pub fn find_release(&self, tag: &str) -> Result<FoundRelease, GithubError> {
        self.rt.block_on(self.inner.find_release(tag))
    }

    /// Creates a draft. If the answer is lost, a retry adopts the draft that
    /// the lost request created instead of creating a second one.
    pub fn create_draft(
        &self,
        tag: &str,
        name: &str,
        body: &str,
        prerelease: bool,
    ) -> Result<Release, GithubError> {
        self.rt
            .block_on(self.inner.create_draft(tag, name, body, prerelease))
    }

    /// A release by id (drafts included, given push access).
    pub fn get_release(&self, release_id: u64) -> Result<Release, GithubError> {
        self.rt.block_on(self.inner.get_release(release_id))
    }

    pub fn list_assets(&self, release_id: u64) -> Result<Vec<Asset>, GithubError> {
        self.rt.block_on(self.inner.list_assets(release_id))
    }

    /// Uploads `path` as asset `name` of `release` (which carries the upload
    /// URL). `progress(sent, total)` is called as bytes go out; it restarts
    /// from 0 if the upload is retried. An asset already there with the same
    /// size and digest counts as uploaded; one with other content is an error.
    pub fn upload_asset(
        &self,
        release: &Release,
        name: &str,
        path: &Path,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Asset, GithubError> {
        let local = prepare_local(name, path, None)?;
        self.rt.block_on(
            self.inner
                .upload_asset(release, &local, &|s, t| progress(s, t)),
        )
    }

    /// Publishes a draft (`draft: false`), setting `prerelease`.
    pub fn publish(&self, release_id: u64, prerelease: bool) -> Result<Release, GithubError> {
        self.rt
            .block_on(self.inner.publish(release_id, prerelease, None, None))
    }

    /// The whole safe sequence: find or create the draft, upload what is
    /// missing, verify the complete asset set, publish once. Safe to re-run
    /// after any failure. `progress(asset, sent, total)` reports uploads.
    pub fn publish_release(
        &self,
        plan: &ReleasePlan,
        progress: &dyn Fn(&str, u64, u64),
    ) -> Result<PublishReport, GithubError> {
        self.rt.block_on(self.inner.publish_release(plan, progress))
    }
}

fn build_octocrab(
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
fn origin_of(url: &str) -> Result<String, String> {
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
fn encode(s: &str) -> String {
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
fn scrub(text: &str, token: &Token) -> String {
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
fn parse_error_body(body: &str) -> (String, Vec<String>) {
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
fn next_link(headers: &HeaderMap) -> Option<String> {
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

fn is_asset_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+')
}

/// Hashes the file and checks its name would survive GitHub unchanged.
fn prepare_local(
    name: &str,
    path: &Path,
    expected: Option<&str>,
) -> Result<LocalAsset, GithubError> {
    // GitHub silently renames assets with other characters, which would make
    // the uploaded asset impossible to match with the local file.
    if name.is_empty()
        || name.starts_with('.')
        || name.ends_with('.')
        || !name.chars().all(is_asset_name_char)
    {
        return Err(GithubError::InvalidPlan(format!(
            "asset name `{name}` would be renamed by GitHub: use only letters, digits and . - _ + (not starting or ending with .)"
        )));
    }
    let read_err = |source| GithubError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(expected) = expected {
        if !expected.eq_ignore_ascii_case(&digest) {
            return Err(GithubError::Changed {
                path: path.to_path_buf(),
                expected: expected.to_string(),
                actual: digest,
            });
        }
    }
    Ok(LocalAsset {
        name: name.to_string(),
        path: path.to_path_buf(),
        size,
        digest: format!("sha256:{digest}"),
    })
}

/// Everything local is checked before the first request, so a bad plan never leaves a
/// half-made draft behind (and a rehearsal finds the same problems a real run would).
fn prepare_plan(plan: &ReleasePlan) -> Result<Vec<LocalAsset>, GithubError> {
    if plan.tag.trim().is_empty() {
        return Err(GithubError::InvalidPlan("the tag is empty".into()));
    }
    let mut seen = HashSet::new();
    for a in &plan.assets {
        // GitHub's name check is not reliably case-sensitive.
        if !seen.insert(a.name.to_ascii_lowercase()) {
            return Err(GithubError::InvalidPlan(format!(
                "asset name {} appears twice (names are compared ignoring case)",
                a.name
            )));
        }
    }
    plan.assets
        .iter()
        .map(|a| prepare_local(&a.name, &a.path, a.sha256.as_deref()))
        .collect()
}

/// One request a publish would send, as a rehearsal records it (`publish-plan.json`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlannedRequest {
    pub method: &'static str,
    /// `{release_id}` stands for the id GitHub gives the draft.
    pub url: String,
    pub purpose: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Uploads: the bytes sent and their digest (`sha256:<hex>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// The requests [`GitHub::publish_release`] sends for `plan` when nothing exists yet for the
/// tag and nothing fails, in order — without sending any, and without a token. The plan is
/// checked exactly as a real publish checks it. `repo` is `None` when it is not known
/// (the URLs then say `{owner}/{repo}`).
pub fn rehearse(
    repo: Option<&Repo>,
    config: &ClientConfig,
    plan: &ReleasePlan,
) -> Result<Vec<PlannedRequest>, GithubError> {
    let locals = prepare_plan(plan)?;
    let api = config.api_url.trim_end_matches('/');
    let repo_path = match repo {
        Some(r) => format!("{api}/repos/{}/{}", r.owner, r.name),
        None => format!("{api}/repos/{{owner}}/{{repo}}"),
    };
    // The real upload URL is the one GitHub returns with the draft; this is where it is on
    // github.com and on Enterprise servers.
    let upload_base = match &config.upload_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None if api == DEFAULT_API_URL => "https://uploads.github.com".to_string(),
        None => match api.strip_suffix("/api/v3") {
            Some(host) => format!("{host}/api/uploads"),
            None => "{upload host of the draft's upload_url}".to_string(),
        },
    };
    let upload_path = upload_base.clone() + &repo_path[api.len()..];
    let request = |method, url: String, purpose: &str| PlannedRequest {
        method,
        url,
        purpose: purpose.to_string(),
        body: None,
        size: None,
        digest: None,
    };
    let mut requests = vec![
        request(
            "GET",
            repo_path.clone(),
            "check that the token reaches the repository and may push to it",
        ),
        request(
            "GET",
            format!("{repo_path}/releases/tags/{}", encode(&plan.tag)),
            "refuse a published release for the tag",
        ),
        request(
            "GET",
            format!("{repo_path}/releases?per_page={PER_PAGE}"),
            "find a draft left by an earlier attempt, to resume it",
        ),
        PlannedRequest {
            body: Some(serde_json::json!({
                "tag_name": plan.tag,
                "name": plan.name,
                "body": plan.body,
                "draft": true,
                "prerelease": plan.prerelease,
            })),
            ..request(
                "POST",
                format!("{repo_path}/releases"),
                "create the release as a draft",
            )
        },
    ];
    for local in &locals {
        requests.push(PlannedRequest {
            size: Some(local.size),
            digest: Some(local.digest.clone()),
            ..request(
                "POST",
                format!(
                    "{upload_path}/releases/{{release_id}}/assets?name={}",
                    encode(&local.name)
                ),
                &format!("upload {}", local.name),
            )
        });
    }
    requests.push(request(
        "GET",
        format!("{repo_path}/releases/{{release_id}}/assets?per_page={PER_PAGE}"),
        "list the draft's assets and compare names, sizes and digests with the release",
    ));
    requests.push(PlannedRequest {
        body: Some(serde_json::json!({
            "draft": false,
            "prerelease": plan.prerelease,
            "name": plan.name,
            "body": plan.body,
        })),
        ..request(
            "PATCH",
            format!("{repo_path}/releases/{{release_id}}"),
            "publish: the release becomes visible, once",
        )
    });
    Ok(requests)
}

/// How a remote asset compares with the local file of the same name.
fn compare(remote: &Asset, local: &LocalAsset) -> Result<(), String> {
    if remote.state != "uploaded" {
        return Err(format!(
            "{}: incomplete upload on GitHub (state `{}`)",
            remote.name, remote.state
        ));
    }
    if remote.size != local.size {
        return Err(format!(
            "{}: {} bytes on GitHub, {} bytes locally",
            remote.name, remote.size, local.size
        ));
    }
    match &remote.digest {
        Some(d) if d.eq_ignore_ascii_case(&local.digest) => Ok(()),
        Some(d) => Err(format!(
            "{}: {d} on GitHub, {} locally",
            remote.name, local.digest
        )),
        None => Err(format!(
            "{}: GitHub reports no digest, so its content cannot be verified",
            remote.name
        )),
    }
}

/// Streams a file as an upload body, counting bytes handed to the connection.
struct FileBody {
    file: File,
    remaining: u64,
    sent: Arc<AtomicU64>,
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
    fn repo_path(&self) -> String {
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
    fn api_error(&self, action: &str, reply: &Reply) -> GithubError {
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

    fn bad_response(&self, action: &str, detail: String) -> GithubError {
        GithubError::BadResponse {
            action: action.to_string(),
            api_url: self.config.api_url.clone(),
            detail: scrub(&detail, &self.token),
        }
    }

    /// Decodes a 2xx JSON answer; anything else is final.
    fn json<T: DeserializeOwned>(&self, action: &str, reply: &Reply) -> Result<T, Failure> {
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
    async fn exchange(
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
    async fn retrying<T, F, Fut>(&self, action: &str, mut op: F) -> Result<T, GithubError>
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

    fn request(
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
    async fn send(
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
    async fn list_once<T: DeserializeOwned>(
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

    async fn list_releases_once(&self) -> Result<Vec<Release>, Failure> {
        let path = format!("{}/releases", self.repo_path());
        self.list_once("list releases", &path).await
    }

    async fn list_assets_once(&self, release_id: u64) -> Result<Vec<Asset>, Failure> {
        let path = format!("{}/releases/{release_id}/assets", self.repo_path());
        self.list_once("list release assets", &path).await
    }

    async fn check_access(&self) -> Result<(), GithubError> {
        let action = format!("read repository {}", self.repo);
        let repo: RepoJson = self
            .retrying(&action, |_| async {
                let reply = self.send(Method::GET, &self.repo_path(), None).await?;
                if reply.status == StatusCode::NOT_FOUND {
                    let (message, _) = parse_error_body(&reply.body);
                    return Err(Failure::Fatal(GithubError::RepoNotFound {
                        repo: self.repo.to_string(),
                        message: scrub(&message, &self.token),
                    }));
                }
                self.json(&action, &reply)
            })
            .await?;
        // Tokens of GitHub Apps (Actions' GITHUB_TOKEN) get no `permissions`
        // here; then only the first write can tell, and it fails clearly.
        match repo.permissions {
            Some(p) if !p.push => Err(GithubError::NoPushAccess {
                repo: self.repo.to_string(),
            }),
            _ => Ok(()),
        }
    }

    async fn find_release(&self, tag: &str) -> Result<FoundRelease, GithubError> {
        let action = format!("look up release {tag}");
        let path = format!("{}/releases/tags/{}", self.repo_path(), encode(tag));
        let published: Option<Release> = self
            .retrying(&action, |_| async {
                let reply = self.send(Method::GET, &path, None).await?;
                if reply.status == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                self.json(&action, &reply).map(Some)
            })
            .await?;
        if let Some(r) = published {
            return Ok(FoundRelease::Published(r));
        }
        // Drafts have no tag yet as far as GitHub's tag lookup is concerned:
        // only the full listing (push access required) shows them.
        let releases = self
            .retrying("list releases", |_| self.list_releases_once())
            .await?;
        self.classify(tag, releases)
    }

    fn classify(&self, tag: &str, releases: Vec<Release>) -> Result<FoundRelease, GithubError> {
        let mut matching: Vec<Release> = releases.into_iter().filter(|r| r.tag == tag).collect();
        if let Some(p) = matching.iter().find(|r| !r.draft) {
            return Ok(FoundRelease::Published(p.clone()));
        }
        match matching.len() {
            0 => Ok(FoundRelease::Absent),
            1 => Ok(FoundRelease::Draft(matching.remove(0))),
            _ => Err(GithubError::SeveralDrafts {
                repo: self.repo.to_string(),
                tag: tag.to_string(),
                ids: matching.iter().map(|r| r.id).collect(),
            }),
        }
    }

    async fn create_draft(
        &self,
        tag: &str,
        name: &str,
        body: &str,
        prerelease: bool,
    ) -> Result<Release, GithubError> {
        let action = format!("create draft release {tag}");
        let payload = serde_json::json!({
            "tag_name": tag,
            "name": name,
            "body": body,
            "draft": true,
            "prerelease": prerelease,
        });
        let path = format!("{}/releases", self.repo_path());
        self.retrying(&action, |attempt| {
            let (action, payload, path) = (&action, &payload, &path);
            async move {
                if attempt > 1 {
                    // The previous POST may have created the draft even though
                    // its answer never arrived: adopt it rather than add a twin.
                    let releases = self.list_releases_once().await?;
                    match self.classify(tag, releases)? {
                        FoundRelease::Draft(r) => return Ok(r),
                        FoundRelease::Published(r) => {
                            return Err(Failure::Fatal(GithubError::AlreadyPublished {
                                repo: self.repo.to_string(),
                                tag: tag.to_string(),
                                url: r.html_url,
                            }));
                        }
                        FoundRelease::Absent => {}
                    }
                }
                let reply = self.send(Method::POST, path, Some(payload)).await?;
                let release: Release = self.json(action, &reply)?;
                if !release.draft {
                    return Err(Failure::Fatal(self.bad_response(
                        action,
                        format!(
                            "GitHub created release {} as published, not as a draft",
                            release.id
                        ),
                    )));
                }
                Ok(release)
            }
        })
        .await
    }

    async fn get_release(&self, release_id: u64) -> Result<Release, GithubError> {
        let action = format!("read release {release_id}");
        let path = format!("{}/releases/{release_id}", self.repo_path());
        self.retrying(&action, |_| async {
            let reply = self.send(Method::GET, &path, None).await?;
            self.json(&action, &reply)
        })
        .await
    }

    async fn list_assets(&self, release_id: u64) -> Result<Vec<Asset>, GithubError> {
        self.retrying("list release assets", |_| self.list_assets_once(release_id))
            .await
    }

    /// Full upload URL for `name`, refusing URLs that would expose the token.
    fn upload_target(&self, release: &Release, name: &str) -> Result<String, GithubError> {
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
    fn upload_client(&self, url: &str) -> Result<Octocrab, GithubError> {
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

    /// An asset already on the release under `local.name`, if it is the
    /// same content; another content under that name is final.
    fn reconcile(
        &self,
        release: &Release,
        remote: Asset,
        local: &LocalAsset,
    ) -> Result<Asset, Failure> {
        match compare(&remote, local) {
            Ok(()) => Ok(remote),
            Err(problem) => Err(Failure::Fatal(GithubError::AssetsDiffer {
                tag: release.tag.clone(),
                url: release.html_url.clone(),
                problems: vec![problem],
            })),
        }
    }

    async fn upload_asset(
        &self,
        release: &Release,
        local: &LocalAsset,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Asset, GithubError> {
        let url = self.upload_target(release, &local.name)?;
        let crab = self.upload_client(&url)?;
        let action = format!("upload {} to release {}", local.name, release.tag);
        self.retrying(&action, |attempt| {
            let (url, crab, action) = (&url, &crab, &action);
            async move {
                if attempt > 1 {
                    // The last attempt may have stored the asset and lost the
                    // answer: sending again would fail or duplicate it.
                    let assets = self.list_assets_once(release.id).await?;
                    if let Some(a) = assets.into_iter().find(|a| a.name == local.name) {
                        return self.reconcile(release, a, local);
                    }
                }
                let file = File::open(&local.path).map_err(|source| GithubError::ReadFile {
                    path: local.path.clone(),
                    source,
                })?;
                let sent = Arc::new(AtomicU64::new(0));
                let body = FileBody {
                    file,
                    remaining: local.size,
                    sent: sent.clone(),
                };
                let request = Request::builder()
                    .method(Method::POST)
                    .uri(url.as_str())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, local.size)
                    .body(OctoBody::new(body))
                    .map_err(|e| GithubError::Setup(format!("cannot build upload request: {e}")))?;
                let size = local.size;
                let reply = self
                    .exchange(crab, request, &sent, &|s| progress(s.min(size), size))
                    .await?;
                if reply.status == StatusCode::UNPROCESSABLE_ENTITY
                    && parse_error_body(&reply.body)
                        .1
                        .iter()
                        .any(|c| c.starts_with("already_exists"))
                {
                    let assets = self.list_assets_once(release.id).await?;
                    if let Some(a) = assets.into_iter().find(|a| a.name == local.name) {
                        return self.reconcile(release, a, local);
                    }
                }
                let asset: Asset = self.json(action, &reply)?;
                // GitHub hashes what it received: a mismatch means the bytes
                // changed on the way or on disk.
                let digest_ok = asset
                    .digest
                    .as_deref()
                    .is_none_or(|d| d.eq_ignore_ascii_case(&local.digest));
                if asset.name != local.name || asset.size != local.size || !digest_ok {
                    return Err(Failure::Fatal(GithubError::UploadMismatch {
                        name: local.name.clone(),
                        url: release.html_url.clone(),
                        detail: format!(
                            "GitHub stored `{}` with {} bytes and {}; local {} bytes and {}",
                            asset.name,
                            asset.size,
                            asset.digest.as_deref().unwrap_or("no digest"),
                            local.size,
                            local.digest
                        ),
                    }));
                }
                Ok(asset)
            }
        })
        .await
    }

    async fn publish(
        &self,
        release_id: u64,
        prerelease: bool,
        name: Option<&str>,
        body: Option<&str>,
    ) -> Result<Release, GithubError> {
        let action = format!("publish release {release_id}");
        let mut payload = serde_json::json!({"draft": false, "prerelease": prerelease});
        if let Some(n) = name {
            payload["name"] = n.into();
        }
        if let Some(b) = body {
            payload["body"] = b.into();
        }
        let path = format!("{}/releases/{release_id}", self.repo_path());
        self.retrying(&action, |attempt| {
            let (action, payload, path) = (&action, &payload, &path);
            async move {
                if attempt > 1 {
                    // A lost answer may hide a successful publish.
                    let reply = self.send(Method::GET, path, None).await?;
                    let current: Release = self.json(action, &reply)?;
                    if !current.draft {
                        return Ok(current);
                    }
                }
                let reply = self.send(Method::PATCH, path, Some(payload)).await?;
                let release: Release = self.json(action, &reply)?;
                if release.draft {
                    return Err(Failure::Fatal(
                        self.bad_response(
                            action,
                            "GitHub answered the publish request but the release is still a draft"
                                .into(),
                        ),
                    ));
                }
                Ok(release)
            }
        })
        .await
    }

    /// Exact comparison of the remote asset set with the local one.
    /// `fresh` are assets this run uploaded and GitHub confirmed; they are
    /// accepted without a digest on servers that report none.
    fn verify(remote: &[Asset], locals: &[LocalAsset], fresh: &HashSet<String>) -> Vec<String> {
        let mut problems = Vec::new();
        for local in locals {
            match remote.iter().find(|a| a.name == local.name) {
                None => problems.push(format!("{}: missing on GitHub", local.name)),
                Some(a) => {
                    let unverifiable_but_ours = a.digest.is_none()
                        && fresh.contains(&a.name)
                        && a.size == local.size
                        && a.state == "uploaded";
                    // No let-chains: xrelease's MSRV is 1.85.
                    match compare(a, local) {
                        Err(p) if !unverifiable_but_ours => problems.push(p),
                        _ => {}
                    }
                }
            }
        }
        for a in remote {
            if !locals.iter().any(|l| l.name == a.name) {
                problems.push(format!("{}: on GitHub but not part of this build", a.name));
            }
        }
        problems
    }

    async fn publish_release(
        &self,
        plan: &ReleasePlan,
        progress: &dyn Fn(&str, u64, u64),
    ) -> Result<PublishReport, GithubError> {
        let locals = prepare_plan(plan)?;

        self.check_access().await?;
        let (release, remote) = match self.find_release(&plan.tag).await? {
            FoundRelease::Published(r) => {
                let remote = self.list_assets(r.id).await?;
                // A previous run may have published and lost the answer: if
                // the release is exactly this build, the work is done.
                if Self::verify(&remote, &locals, &HashSet::new()).is_empty() {
                    return Ok(PublishReport {
                        release: r,
                        uploaded: Vec::new(),
                        kept: locals.iter().map(|l| l.name.clone()).collect(),
                        already_published: true,
                    });
                }
                return Err(GithubError::AlreadyPublished {
                    repo: self.repo.to_string(),
                    tag: plan.tag.clone(),
                    url: r.html_url,
                });
            }
            FoundRelease::Draft(r) => {
                let remote = self.list_assets(r.id).await?;
                (r, remote)
            }
            FoundRelease::Absent => {
                let r = self
                    .create_draft(&plan.tag, &plan.name, &plan.body, plan.prerelease)
                    .await?;
                // A draft we just made has no assets; unless a lost answer
                // made us adopt an older twin, listing would be a wasted call.
                (r, Vec::new())
            }
        };

        let mut kept = Vec::new();
        let mut missing = Vec::new();
        let mut problems = Vec::new();
        for local in &locals {
            match remote.iter().find(|a| a.name == local.name) {
                None => missing.push(local),
                Some(a) => match compare(a, local) {
                    Ok(()) => kept.push(local.name.clone()),
                    Err(p) => problems.push(p),
                },
            }
        }
        for a in &remote {
            if !locals.iter().any(|l| l.name == a.name) {
                problems.push(format!(
                    "{}: on the draft but not part of this build",
                    a.name
                ));
            }
        }
        if !problems.is_empty() {
            return Err(GithubError::AssetsDiffer {
                tag: release.tag.clone(),
                url: release.html_url.clone(),
                problems,
            });
        }

        // Once one upload fails no new ones start, but those in flight finish:
        // cancelling mid-body can leave a half-uploaded asset on GitHub.
        let failed = std::cell::Cell::new(false);
        let results: Vec<Option<Result<Asset, GithubError>>> =
            futures::stream::iter(missing.iter().map(|local| {
                let (failed, release) = (&failed, &release);
                async move {
                    if failed.get() {
                        return None;
                    }
                    let name = local.name.as_str();
                    let r = self
                        .upload_asset(release, local, &|s, t| progress(name, s, t))
                        .await;
                    if r.is_err() {
                        failed.set(true);
                    }
                    Some(r)
                }
            }))
            .buffer_unordered(self.config.upload_concurrency)
            .collect()
            .await;
        let mut uploaded = Vec::new();
        for r in results.into_iter().flatten() {
            uploaded.push(r?.name);
        }
        uploaded.sort();

        let remote = self.list_assets(release.id).await?;
        let fresh: HashSet<String> = uploaded.iter().cloned().collect();
        let problems = Self::verify(&remote, &locals, &fresh);
        if !problems.is_empty() {
            return Err(GithubError::VerificationFailed {
                tag: plan.tag.clone(),
                problems,
            });
        }
        let release = self
            .publish(
                release.id,
                plan.prerelease,
                Some(&plan.name),
                Some(&plan.body),
            )
            .await?;
        Ok(PublishReport {
            release,
            uploaded,
            kept,
            already_published: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
