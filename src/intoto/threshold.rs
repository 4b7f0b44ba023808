//! Threshold releases (`[in-toto] threshold` above 1): CI's run ends at a verified draft; each
//! further builder runs `xrelease rebuild`, which rebuilds the tag, refuses if any binary differs
//! from the draft's and otherwise uploads its signed `build` links; `xrelease publish` verifies
//! the layout over the draft's files and only then publishes.

use std::path::Path;

use time::OffsetDateTime;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::github::{Asset, FoundRelease, GitHub, Release, Repo};
use crate::manifest::Manifest;

use super::commands::{keys, private_key, section};
use super::keys::Key;
use super::metadata::Link;
use super::{is_intoto_file, record, stage, verify};

fn github(repository: Option<String>) -> Result<GitHub> {
    let repo: Repo = repository
        .ok_or_else(|| {
            Error::Config(
                "cannot tell which GitHub repository holds the draft: set `[github] repository` or GITHUB_REPOSITORY"
                    .into(),
            )
        })?
        .parse()
        .map_err(|e: crate::github::GithubError| Error::Config(e.to_string()))?;
    GitHub::from_env(repo).map_err(|e| Error::Preflight(e.to_string()))
}

/// The draft release of `tag`, with its assets; a published or missing one is refused.
fn draft(gh: &GitHub, tag: &str) -> Result<(Release, Vec<Asset>)> {
    let publish = |e: crate::github::GithubError| Error::Publish(e.to_string());
    match gh.find_release(tag).map_err(publish)? {
        FoundRelease::Draft(r) => {
            let assets = gh.list_assets(r.id).map_err(publish)?;
            Ok((r, assets))
        }
        FoundRelease::Published(r) => Err(Error::Preflight(format!(
            "release {tag} is already published ({}): nothing to rebuild or publish",
            r.html_url
        ))),
        FoundRelease::Absent => Err(Error::Preflight(format!(
            "{} has no draft release for {tag}: CI's release run creates it",
            gh.repo()
        ))),
    }
}

fn asset_digest<'a>(assets: &'a [Asset], name: &str) -> Option<&'a str> {
    assets
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| a.digest.as_deref())
        .and_then(|d| d.strip_prefix("sha256:"))
}

/// `xrelease rebuild TAG --key K`: builds the checked-out tag into `ctx.dist`, compares every
/// binary with the draft's, then signs and uploads this builder's `build` links. Returns the
/// uploaded link names.
pub fn rebuild(ctx: &Context, key: &Path) -> Result<Vec<String>> {
    let section = section(&ctx.config)?;
    let (maintainers, ci) = keys(section)?;
    let private = private_key(key)?;
    let signer = Key::new(private.public_key());
    if signer != ci && !maintainers.contains(&signer) {
        return Err(Error::Config(format!(
            "{} (keyid {}) is neither `[in-toto] ci-key` nor one of the maintainers: the layout lets only those sign `build` links",
            key.display(),
            signer.keyid()
        )));
    }
    let gh = github(ctx.repository())?;
    let tag = ctx.tag.to_string();
    let (release, assets) = draft(&gh, &tag)?;

    let manifest: Manifest = crate::build_share(ctx)?;
    let mut differ = Vec::new();
    for binary in manifest.binaries() {
        match asset_digest(&assets, &binary.name) {
            Some(theirs) if theirs == binary.sha256 => {}
            Some(theirs) => differ.push(format!(
                "{}: this rebuild made sha256:{}, the draft holds sha256:{theirs}",
                binary.name, binary.sha256
            )),
            None => differ.push(format!(
                "{}: this rebuild made it, but the draft has no such asset (or GitHub gave no digest)",
                binary.name
            )),
        }
    }
    if !differ.is_empty() {
        return Err(Error::Verification(format!(
            "the rebuild of {tag} differs from the draft, so no `build` link is signed (key {}):\n  {}",
            signer.keyid(),
            differ.join("\n  ")
        )));
    }
    let materials = record::tracked_files(&ctx.workspace.root, &manifest.source.commit)?;
    let mut uploaded = Vec::new();
    for (step, block) in record::build_links(&manifest, &materials, &private)? {
        let name = Link::file_name(&step, &signer);
        stage::write(&ctx.dist, &name, &block)?;
        let path = ctx.dist.join(&name);
        gh.upload_asset(&release, &name, &path, &|_, _| {})
            .map_err(|e| Error::Publish(e.to_string()))?;
        uploaded.push(name);
    }
    Ok(uploaded)
}

/// `xrelease publish TAG --layout-key owner.pub`: the draft's files are `dist`'s (same names,
/// same digests as GitHub reports them) plus the link files only the draft holds, which are
/// downloaded; the layout is verified over exactly that set, and only then is the draft published.
pub fn publish(
    repository: Option<String>,
    tag: &str,
    dist: &Path,
    owner: &Key,
) -> Result<(String, Vec<String>)> {
    let gh = github(repository)?;
    let (release, assets) = draft(&gh, tag)?;
    let work = tempfile_dir()?;
    for asset in &assets {
        let dest = work.join(&asset.name);
        let local = dist.join(&asset.name);
        let Some(digest) = asset
            .digest
            .as_deref()
            .and_then(|d| d.strip_prefix("sha256:"))
        else {
            return Err(Error::Verification(format!(
                "GitHub reports no digest for {}: the draft's files cannot be compared, so nothing is published",
                asset.name
            )));
        };
        if local.is_file() {
            let (sha, _) =
                crate::digest::sha256_file(&local).map_err(Error::io("cannot hash", &local))?;
            if sha != digest {
                return Err(Error::Verification(format!(
                    "{} on the draft is sha256:{digest}, but {} is sha256:{sha}",
                    asset.name,
                    local.display()
                )));
            }
            std::fs::copy(&local, &dest).map_err(Error::io("cannot copy", &local))?;
        } else if is_intoto_file(&asset.name) {
            let text = gh
                .download_text(asset)
                .map_err(|e| Error::Publish(e.to_string()))?;
            if crate::digest::sha256_bytes(text.as_bytes()) != digest {
                return Err(Error::Verification(format!(
                    "{} downloaded from the draft does not have the digest GitHub reports",
                    asset.name
                )));
            }
            std::fs::write(&dest, text).map_err(Error::io("cannot write", &dest))?;
        } else {
            return Err(Error::Verification(format!(
                "{} is on the draft but not in {}: pass the release directory CI verified (--dist)",
                asset.name,
                dist.display()
            )));
        }
    }
    let result = verify::verify_dir(&work, owner, OffsetDateTime::now_utc());
    let _ = std::fs::remove_dir_all(&work);
    let passed = result.map_err(|why| {
        Error::Verification(format!(
            "in-toto: {why}\nthe draft of {tag} stays a draft: nothing is published"
        ))
    })?;
    let published = gh
        .publish(release.id, release.prerelease)
        .map_err(|e| Error::Publish(e.to_string()))?;
    Ok((published.html_url, passed.lines))
}

/// A fresh private directory for the draft's files.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("xrelease-publish-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).map_err(Error::io("cannot create", &dir))?;
    Ok(dir)
}
