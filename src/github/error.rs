//! Everything that can go wrong talking to GitHub, each with its evidence and its fix.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::RESUME;

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
