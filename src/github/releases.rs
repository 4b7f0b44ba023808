//! The release operations, each safe to retry: check access, find or create the draft, upload,
//! publish, and the whole sequence — draft, upload what is missing, compare, publish once.

use std::collections::HashSet;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use futures::StreamExt;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use octocrab::OctoBody;

use super::local::{compare, prepare_plan};
use super::transport::{FileBody, encode, parse_error_body, scrub};
use super::{
    Asset, Failure, FoundRelease, GithubError, Inner, LocalAsset, PublishReport, Release,
    ReleasePlan, RepoJson,
};

impl Inner {
    async fn list_releases_once(&self) -> Result<Vec<Release>, Failure> {
        let path = format!("{}/releases", self.repo_path());
        self.list_once("list releases", &path).await
    }

    async fn list_assets_once(&self, release_id: u64) -> Result<Vec<Asset>, Failure> {
        let path = format!("{}/releases/{release_id}/assets", self.repo_path());
        self.list_once("list release assets", &path).await
    }

    pub(super) async fn check_access(&self) -> Result<(), GithubError> {
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

    pub(super) async fn find_release(&self, tag: &str) -> Result<FoundRelease, GithubError> {
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

    pub(super) async fn create_draft(
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

    pub(super) async fn get_release(&self, release_id: u64) -> Result<Release, GithubError> {
        let action = format!("read release {release_id}");
        let path = format!("{}/releases/{release_id}", self.repo_path());
        self.retrying(&action, |_| async {
            let reply = self.send(Method::GET, &path, None).await?;
            self.json(&action, &reply)
        })
        .await
    }

    pub(super) async fn list_assets(&self, release_id: u64) -> Result<Vec<Asset>, GithubError> {
        self.retrying("list release assets", |_| self.list_assets_once(release_id))
            .await
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

    pub(super) async fn upload_asset(
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

    pub(super) async fn publish(
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

    /// A small text asset's content (link files): the API answers `Accept:
    /// application/octet-stream` with the bytes or a redirect to its storage host, which is
    /// fetched without the token (GitHub's storage refuses it).
    pub(super) async fn download_text(&self, asset: &Asset) -> Result<String, GithubError> {
        let action = format!("download asset {}", asset.name);
        let path = format!("{}/releases/assets/{}", self.repo_path(), asset.id);
        let reply = self
            .retrying(&action, |_| async {
                let mut request = self.request(Method::GET, &path, None)?;
                request.headers_mut().insert(
                    http::header::ACCEPT,
                    http::HeaderValue::from_static("application/octet-stream"),
                );
                self.exchange(&self.api, request, &AtomicU64::new(0), &|_| {})
                    .await
            })
            .await?;
        if reply.status.is_success() {
            return Ok(reply.body);
        }
        if reply.status.is_redirection()
            && let Some(location) = reply
                .headers
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
        {
            return ureq::get(location)
                .call()
                .and_then(|mut r| r.body_mut().read_to_string())
                .map_err(|e| self.bad_response(&action, e.to_string()));
        }
        Err(self.api_error(&action, &reply))
    }

    pub(super) async fn publish_release(
        &self,
        plan: &ReleasePlan,
        progress: &dyn Fn(&str, u64, u64),
    ) -> Result<PublishReport, GithubError> {
        self.publish_release_until(plan, progress, true).await
    }

    /// [`Self::publish_release`], stopping before the last request when `publish` is false:
    /// the draft then holds exactly the plan's assets (in-toto thresholds above 1 publish only
    /// after independent rebuilds agree).
    pub(super) async fn publish_release_until(
        &self,
        plan: &ReleasePlan,
        progress: &dyn Fn(&str, u64, u64),
        publish: bool,
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
        if !publish {
            return Ok(PublishReport {
                release,
                uploaded,
                kept,
                already_published: false,
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
