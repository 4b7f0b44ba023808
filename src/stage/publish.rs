//! The publish stage: a verified release becomes a GitHub Release — draft, upload, compare,
//! publish once — or, in a rehearsal, a record of the requests that would make it
//! (`dist/<tag>/publish-plan.json`). Everything up to that last step is the same code for both.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::github::{
    self, AttestationUpload, ClientConfig, FoundRelease, GitHub, GithubError, PlannedAsset,
    ReleasePlan, Repo, Stored, Token,
};
use crate::layout;
use crate::manifest::Manifest;
use crate::notes::{self, Notes, Row};
use crate::stage::verify::Verified;
use crate::ui::human_size;
use crate::verify::Policy;

/// What a rehearsal writes instead of publishing.
pub const PLAN_FILE: &str = layout::PUBLISH_PLAN;

/// Where the release goes: chosen once, by the composition root.
pub enum Publisher {
    /// Real runs: GitHub Releases. Preflight connects (token, repository, access) and keeps
    /// the client for the publish stage.
    GitHub {
        config: ClientConfig,
        client: Option<Box<GitHub>>,
        /// The tag's release is already published (a re-run of a finished release): its
        /// assets, compared with this run's files once they exist.
        published: Option<(github::Release, Vec<github::Asset>)>,
    },
    /// Rehearsals: no network call at all; the requests are written to `publish-plan.json`.
    Record { config: ClientConfig },
}

/// What publishing did, or would have done.
#[derive(Debug)]
pub enum Published {
    Release {
        url: String,
        uploaded: usize,
        kept: usize,
        /// An earlier attempt had published it, answer lost; nothing changed.
        already: bool,
    },
    /// in-toto threshold above 1: complete and verified, left as a draft for rebuilds.
    Draft { url: String, uploaded: usize },
    Recorded {
        plan_file: PathBuf,
        repository: Option<String>,
        files: usize,
        bytes: u64,
        requests: usize,
    },
}

impl Publisher {
    /// `GITHUB_API_URL`, `GITHUB_UPLOAD_URL` and the retry settings come from the environment
    /// (and are checked) in both modes; only a real run reads the token.
    pub fn github() -> Result<Publisher> {
        Ok(Publisher::GitHub {
            config: ClientConfig::from_env().map_err(|e| Error::Config(e.to_string()))?,
            client: None,
            published: None,
        })
    }

    pub fn record() -> Result<Publisher> {
        Ok(Publisher::Record {
            config: ClientConfig::from_env().map_err(|e| Error::Config(e.to_string()))?,
        })
    }

    /// Preflight's GitHub checks (real runs only): a token, a repository it can push to, and
    /// no published release for the tag. Nothing is created.
    pub fn preflight(&mut self, ctx: &Context) -> Result<()> {
        let Publisher::GitHub {
            config,
            client,
            published,
        } = self
        else {
            return Ok(());
        };
        let token = Token::from_env().map_err(preflight_error)?;
        let repo: Repo = ctx
            .repository()
            .ok_or_else(|| {
                Error::Preflight(
                    "cannot tell which GitHub repository to publish to: set `[github] repository = \
                     \"OWNER/REPO\"` in release.toml or GITHUB_REPOSITORY, or add a GitHub `origin` remote"
                        .into(),
                )
            })?
            .parse()
            .map_err(preflight_error)?;
        let gh = GitHub::new(token, repo.clone(), config.clone()).map_err(preflight_error)?;
        gh.check_access().map_err(preflight_error)?;
        let tag = ctx.tag.to_string();
        match gh.find_release(&tag).map_err(preflight_error)? {
            // A release xrelease published has SHA256SUMS: it may be this very release, re-run
            // (CI's "re-run all jobs"); that is decided once this run's checksums exist.
            FoundRelease::Published(r) if has_checksums(&gh, &r) => {
                let assets = gh.list_assets(r.id).map_err(preflight_error)?;
                ctx.ui.info(format!(
                    "GitHub: {repo}: release {tag} is already published ({}); it is compared with this build \
                     before anything is signed",
                    r.html_url
                ));
                *published = Some((r, assets));
            }
            FoundRelease::Published(r) => {
                return Err(Error::Preflight(format!(
                    "release {tag} is already published on {repo} ({}): releases are immutable: cut a new tag \
                     (if an earlier run of this release published it, there is nothing left to do)",
                    r.html_url
                )));
            }
            FoundRelease::Draft(r) => ctx.ui.info(format!(
                "GitHub: {repo}: draft release {tag} from an earlier attempt ({}) will be resumed",
                r.html_url
            )),
            FoundRelease::Absent => ctx.ui.info(format!(
                "GitHub: {repo}: push access, no release for {tag} yet"
            )),
        }
        *client = Some(Box::new(gh));
        Ok(())
    }
}

fn has_checksums(gh: &GitHub, release: &github::Release) -> bool {
    gh.list_assets(release.id)
        .is_ok_and(|a| a.iter().any(|a| a.name == crate::stage::checksums::FILE))
}

/// A re-run of a release that is already published: `Some` when the published release holds
/// exactly this run's binaries, SBOMs and `SHA256SUMS` (same names, same SHA-256 digests — the
/// builds are reproducible), so there is nothing to do; an error naming what differs otherwise
/// (releases are immutable), or when GitHub gives no digests to compare.
pub fn already_published(publisher: &Publisher, manifest: &Manifest) -> Result<Option<Published>> {
    let Publisher::GitHub {
        published: Some((release, assets)),
        ..
    } = publisher
    else {
        return Ok(None);
    };
    use crate::manifest::Kind;
    let mut differ = Vec::new();
    for a in manifest.artifacts.iter().filter(|a| {
        matches!(
            a.kind,
            Kind::Binary | Kind::Sbom | Kind::Installer | Kind::Checksums
        )
    }) {
        let theirs = assets.iter().find(|x| x.name == a.name);
        match theirs.and_then(|x| x.digest.as_deref()) {
            Some(digest) if digest == format!("sha256:{}", a.sha256) => {}
            Some(digest) => differ.push(format!(
                "{}: {digest} published, sha256:{} built",
                a.name, a.sha256
            )),
            None if theirs.is_some() => {
                differ.push(format!("{}: GitHub gives no digest to compare", a.name))
            }
            None => differ.push(format!("{}: not in the published release", a.name)),
        }
    }
    if !differ.is_empty() {
        return Err(Error::Preflight(format!(
            "release {} is already published ({}) and differs from this build:\n  {}\n\
             releases are immutable: cut a new tag",
            manifest.tag,
            release.html_url,
            differ.join("\n  ")
        )));
    }
    Ok(Some(Published::Release {
        url: release.html_url.clone(),
        uploaded: 0,
        kept: assets.len(),
        already: true,
    }))
}

/// Publishes the verified release in `dist/<tag>/` (or records how it would).
pub fn run(
    ctx: &Context,
    verified: &Verified,
    policy: &Policy,
    publisher: &Publisher,
) -> Result<Published> {
    let dist = verified.dist();
    // The manifest stays in `dist/<tag>/` (a re-run resumes from it) but is not published:
    // nothing signs it, and the release layout ships only what is signed or attested. Its
    // wall-clock timings are dropped so a resumed run sees the same file.
    let mut manifest = verified.manifest().clone();
    manifest.timings.clear();
    manifest.write(dist)?;
    let assets = assets(dist, &manifest)?;
    let repository = match publisher {
        Publisher::GitHub {
            client: Some(gh), ..
        } => Some(gh.repo().to_string()),
        _ => ctx.repository(),
    };
    let body = notes(ctx, &manifest, &assets, policy, repository.as_deref())?;
    let title = match &repository {
        Some(r) => format!("{} {}", r.rsplit('/').next().unwrap_or(r), manifest.tag),
        None => manifest.tag.clone(),
    };
    let plan = ReleasePlan {
        tag: manifest.tag.clone(),
        name: title,
        body,
        prerelease: manifest.prerelease,
        assets: assets
            .iter()
            .map(|a| PlannedAsset {
                name: a.name.clone(),
                path: dist.join(&a.name),
                sha256: Some(a.sha256.clone()),
            })
            .collect(),
    };
    let bytes = assets.iter().map(|a| a.size).sum();
    let attestations = attestation_uploads(dist, &manifest, policy)?;
    match publisher {
        Publisher::GitHub {
            client: Some(gh), ..
        } => {
            store_attestations(ctx, gh, &attestations)?;
            upload(ctx, gh, &plan, bytes)
        }
        Publisher::GitHub { client: None, .. } => Err(Error::Publish(
            "GitHub was not checked in preflight, so nothing is published".into(),
        )),
        Publisher::Record { config } => {
            let repo = repository.as_deref().and_then(|r| r.parse::<Repo>().ok());
            let mut requests = github::rehearse_attestations(repo.as_ref(), config, &attestations);
            requests.extend(
                github::rehearse(repo.as_ref(), config, &plan)
                    .map_err(|e| Error::Publish(e.to_string()))?,
            );
            let record = serde_json::json!({
                "note": "a rehearsal: the requests a real run would send to GitHub when no release exists \
                         for the tag yet (keyless: first each attestation bundle to the attestation store); \
                         {release_id} is the id GitHub gives the draft",
                "api_url": config.api_url,
                "repository": repository,
                "tag": plan.tag,
                "prerelease": plan.prerelease,
                "requests": requests,
            });
            let path = dist.join(PLAN_FILE);
            let text = serde_json::to_string_pretty(&record).expect("plain data") + "\n";
            std::fs::write(&path, text).map_err(Error::io("cannot write", &path))?;
            Ok(Published::Recorded {
                plan_file: path,
                repository,
                files: plan.assets.len(),
                bytes,
                requests: requests.len(),
            })
        }
    }
}

/// Every file of `dist/<tag>/` (xrelease's manifest and the rehearsal's record aside), each with the digest the
/// verified manifest gives it; a file the manifest does not know is refused, not published.
fn assets(dist: &Path, manifest: &Manifest) -> Result<Vec<Row>> {
    let mut assets = Vec::new();
    let entries = std::fs::read_dir(dist).map_err(Error::io("cannot read", dist))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("cannot read", dist))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // xrelease's own records: never published (see `layout::MANIFEST`).
        if name == PLAN_FILE || name == layout::MANIFEST {
            continue;
        }
        // The images' OCI layouts go to their registry (verified by the gate with the rest).
        if name == crate::image::OCI_DIR && path.is_dir() {
            continue;
        }
        if !path.is_file() {
            return Err(Error::Publish(format!(
                "{} is not a file: a release directory holds only the release's files; move it away",
                path.display()
            )));
        }
        match manifest.artifact(&name) {
            Some(a) => assets
                .push(Row::new(&a.name, a.size, &a.sha256).with_glibc(manifest.glibc.get(&a.name))),
            None => {
                return Err(Error::Publish(format!(
                    "{} is not part of the verified release (the manifest does not list it): it would be \
                     published unverified; move it out of {}",
                    path.display(),
                    dist.display()
                )));
            }
        }
    }
    assets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(assets)
}

/// The release body: the configured template (or the built-in one), the changelog section,
/// the files and the commands that verify them.
fn notes(
    ctx: &Context,
    manifest: &Manifest,
    assets: &[Row],
    policy: &Policy,
    repository: Option<&str>,
) -> Result<String> {
    let path = &ctx.config.notes_template;
    let template = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && path.ends_with(notes::DEFAULT_TEMPLATE_PATH) =>
        {
            notes::BUILTIN_TEMPLATE.to_string()
        }
        Err(e) => {
            return Err(Error::Config(format!(
                "release.toml: `release.notes-template`: cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let changelog_path = ctx.workspace.root.join("CHANGELOG.md");
    let changelog = match std::fs::read_to_string(&changelog_path) {
        Ok(text) => notes::changelog_section(&text, &manifest.version),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("cannot read", &changelog_path)(e)),
    };
    let notes = Notes {
        tag: manifest.tag.clone(),
        version: manifest.version.clone(),
        repository: repository.map(str::to_string),
        prerelease: manifest.prerelease,
        changelog,
        artifacts: assets.to_vec(),
        verify_commands: notes::verify_commands(policy, repository, &manifest.tag)
            .into_iter()
            .chain(crate::intoto::notes_commands(manifest)) // issue 13: in-toto
            .collect(),
        public_key: match policy {
            Policy::Key(_) => Some("cosign.pub".into()),
            Policy::Keyless { .. } => None,
        },
        install: manifest.artifact(layout::INSTALLER).map(|_| {
            notes::Install::new(
                repository,
                &manifest.tag,
                manifest.binaries().filter_map(|b| b.bin.clone()).collect(),
            )
        }),
    };
    notes
        .render(&template)
        .map_err(|why| Error::Config(format!("notes template {}: {why}", path.display())))
}

/// Keyless releases: every attestation bundle the layout defines, for GitHub's attestation
/// store (`gh attestation verify` checks a Fulcio certificate, so key-signed bundles are not
/// stored). Each is listed by the digest of its first subject.
fn attestation_uploads(
    dist: &Path,
    manifest: &Manifest,
    policy: &Policy,
) -> Result<Vec<AttestationUpload>> {
    if !matches!(policy, Policy::Keyless { .. }) {
        return Ok(Vec::new());
    }
    let binaries: Vec<(&str, &str)> = manifest
        .binaries()
        .map(|b| (b.name.as_str(), b.sha256.as_str()))
        .collect();
    let Some(&(first, _)) = binaries.first() else {
        return Ok(Vec::new());
    };
    let mut uploads = Vec::new();
    for attestation in layout::attestations(binaries.iter().map(|(n, _)| *n)) {
        let subject = attestation.binary.as_deref().unwrap_or(first);
        let sha256 = binaries
            .iter()
            .find(|(n, _)| *n == subject)
            .map(|(_, d)| d.to_string())
            .unwrap_or_default();
        let path = dist.join(&attestation.bundle);
        let text = std::fs::read_to_string(&path).map_err(Error::io("cannot read", &path))?;
        let bundle = serde_json::from_str(&text)
            .map_err(|e| Error::Publish(format!("{}: not JSON: {e}", path.display())))?;
        uploads.push(AttestationUpload {
            name: attestation.bundle,
            subject_sha256: sha256,
            bundle,
        });
    }
    Ok(uploads)
}

/// Stores the attestation bundles before the release is published, so the release is
/// verifiable with `gh attestation verify` the moment it appears. A repository that cannot
/// store attestations is said so and the release goes on: the bundles ship as assets anyway.
fn store_attestations(ctx: &Context, gh: &GitHub, uploads: &[AttestationUpload]) -> Result<()> {
    if uploads.is_empty() {
        return Ok(());
    }
    let stored = gh.store_attestations(uploads).map_err(|e| {
        Error::Publish(format!(
            "{e}\nnothing is published; attestations already stored are found again by their digest: run \
             the same command again"
        ))
    })?;
    let (mut new, mut present) = (0, 0);
    for (name, outcome) in &stored {
        match outcome {
            Stored::Uploaded(_) => new += 1,
            Stored::Present => present += 1,
            Stored::Unavailable { status, message } => {
                ctx.ui.info(format!(
                    "GitHub's attestation store is not available for {} (HTTP {status}: {message}; storing {name} \
                     was refused): it needs `attestations: write` and, for a private repository, a plan with \
                     artifact attestations. The release goes on; `gh attestation verify` will need \
                     `--bundle FILE.sigstore.json` from the release",
                    gh.repo()
                ));
                return Ok(());
            }
        }
    }
    ctx.ui.info(format!(
        "GitHub attestation store: {new} stored, {present} already there"
    ));
    Ok(())
}

/// Draft, upload what is missing (bounded concurrency, a byte bar), compare, publish once.
fn upload(ctx: &Context, gh: &GitHub, plan: &ReleasePlan, bytes: u64) -> Result<Published> {
    let bar = ctx.ui.byte_bar(bytes, "upload");
    let sent: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
    let done: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    let progress = |name: &str, now: u64, total: u64| {
        let sum = {
            let mut sent = sent.lock().unwrap_or_else(|e| e.into_inner());
            sent.insert(name.to_string(), now);
            sent.values().sum()
        };
        bar.set(sum, name);
        if now == total
            && done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.into())
        {
            ctx.ui.info(format!("sent {name} ({})", human_size(total)));
        }
    };
    // in-toto with a threshold above 1 (issue 13): the verified draft waits for rebuilds.
    let draft_only = crate::intoto::stops_at_draft(&ctx.config);
    let report = if draft_only {
        gh.stage_draft(plan, &progress)
    } else {
        gh.publish_release(plan, &progress)
    };
    let report = report.map_err(|e| {
        bar.finish("stopped");
        Error::Publish(format!(
            "{e}\npublishing {} to {} stopped: nothing is published unless GitHub applied the last request \
             without answering; at most a draft release exists. To resume, run the same command again: the \
             draft is reused, assets on it with the same digest are kept, only missing ones are uploaded, \
             and differing ones are refused (never deleted).",
            plan.tag,
            gh.repo()
        ))
    })?;
    bar.finish(&format!(
        "{} uploaded, {} kept",
        report.uploaded.len(),
        report.kept.len()
    ));
    if draft_only {
        return Ok(Published::Draft {
            url: report.release.html_url,
            uploaded: report.uploaded.len(),
        });
    }
    Ok(Published::Release {
        url: report.release.html_url,
        uploaded: report.uploaded.len(),
        kept: report.kept.len(),
        already: report.already_published,
    })
}

/// Preflight refuses with exit code 2 what the user must fix (token, access, an immutable
/// release); GitHub being unreachable or failing is a failure (1).
fn preflight_error(e: GithubError) -> Error {
    match e {
        GithubError::MissingToken
        | GithubError::InvalidToken
        | GithubError::InvalidUrl { .. }
        | GithubError::InvalidRepo(_)
        | GithubError::BadCredentials { .. }
        | GithubError::RepoNotFound { .. }
        | GithubError::NoPushAccess { .. }
        | GithubError::Forbidden { .. }
        | GithubError::AlreadyPublished { .. }
        | GithubError::SeveralDrafts { .. } => Error::Preflight(e.to_string()),
        other => Error::Publish(format!(
            "{other}\n(this was preflight: nothing was built, nothing was created on GitHub)"
        )),
    }
}

impl Published {
    /// Lines for the run's summary.
    pub fn summary(&self, tag: &str) -> String {
        match self {
            Published::Release {
                url, already: true, ..
            } => format!("{tag} was already published with exactly these files: {url}"),
            Published::Release {
                url,
                uploaded,
                kept,
                ..
            } => {
                format!("published {tag}: {url} ({uploaded} uploaded, {kept} kept from the draft)")
            }
            Published::Draft { url, uploaded } => format!(
                "{tag} is a verified draft ({uploaded} files uploaded): {url}\nin-toto needs more builders: \
                 each runs `xrelease rebuild {tag} --key KEY`, then `xrelease publish {tag} --layout-key owner.pub` publishes"
            ),
            Published::Recorded {
                plan_file,
                repository,
                files,
                bytes,
                requests,
            } => format!(
                "rehearsal: nothing was sent; publishing would upload {files} files ({}) to {} as release {tag}: \
                 {requests} requests recorded in {}",
                human_size(*bytes),
                repository.as_deref().unwrap_or(
                    "the repository (unknown here: set `[github] repository` or GITHUB_REPOSITORY)"
                ),
                plan_file.display()
            ),
        }
    }
}
