//! GitHub client (Releases, the attestation store): the only code in xrelease that talks to the network (check access,
//! find or create a draft, upload and verify assets, publish; and, for rehearsals, describe the
//! requests it would send without sending any).
//!
//! `mod.rs` holds the public types and the synchronous [`GitHub`] client; `transport.rs` sends
//! one request (octocrab, timeouts, retries); `releases.rs` holds the release operations;
//! `local.rs` checks the local files and describes a publish without sending it;
//! `attestations.rs` stores attestation bundles for `gh attestation verify`.

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

mod attestations;
mod config;
mod error;
mod fetch;
mod local;
mod releases;
mod transport;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use octocrab::Octocrab;
use serde::Deserialize;

use crate::secret::Secret;

pub use attestations::{AttestationUpload, Stored, rehearse_attestations};
pub use config::{ATTEMPTS_ENV, ClientConfig, RetryPolicy, TIMEOUT_ENV};
pub use error::GithubError;
pub use fetch::fetch_release_assets;
pub use local::{PlannedRequest, rehearse};

use local::prepare_local;
use transport::{build_octocrab, origin_of};

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

    /// Everything [`GitHub::publish_release`] does except the last step: the verified draft
    /// is left for `xrelease publish` (in-toto thresholds above 1).
    pub fn stage_draft(
        &self,
        plan: &ReleasePlan,
        progress: &dyn Fn(&str, u64, u64),
    ) -> Result<PublishReport, GithubError> {
        self.rt
            .block_on(self.inner.publish_release_until(plan, progress, false))
    }

    /// The content of a small text asset (a link file) of a release, drafts included.
    pub fn download_text(&self, asset: &Asset) -> Result<String, GithubError> {
        self.rt.block_on(self.inner.download_text(asset))
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
