//! xrelease: turns a tagged Rust workspace into a release anyone can verify.
//!
//! The release order is the body of [`release`]: one line per stage. Every stage reads and
//! extends the manifest in `dist/<tag>/`, so any stage can be re-run from disk.

pub mod cjson;
pub mod cli;
pub mod config;
pub mod context;
pub mod digest;
pub mod doctor;
pub mod error;
pub mod git;
pub mod github;
pub mod glibc;
pub mod image;
pub mod init;
pub mod intoto;
pub mod layout;
pub mod manifest;
pub mod notes;
pub mod plan;
pub mod platform;
pub mod secret;
pub mod shell;
pub mod signing;
pub mod tag;
pub mod ui;
pub mod verify;
pub mod workspace;

pub mod stage {
    pub mod assemble;
    pub mod attest;
    pub mod build;
    pub mod checksums;
    pub mod image;
    pub mod installer;
    pub mod preflight;
    pub mod publish;
    pub mod sbom;
    pub mod sign;
    pub mod verify;
}

use context::{Context, Mode};
use error::Result;
use manifest::Manifest;
use signing::Signer;
use stage::publish::{Published, Publisher};
use stage::verify::Verified;
use verify::Policy;

/// What a finished run produced.
pub struct Report {
    pub manifest: Manifest,
    pub published: Published,
}

/// The release, in order. Plan is pure and already done by [`Context::load`]; the signer and the
/// publisher were chosen by the caller (a throwaway key and a recorder for rehearsals), so no
/// stage knows which mode it is in.
pub fn release(ctx: &Context, signer: &mut Signer, publisher: &mut Publisher) -> Result<Report> {
    stage::preflight::signer(signer)?; //  keyless: an identity-token source exists
    stage::preflight::run(ctx, publisher)?; //  git tree, tag at HEAD, toolchains, GitHub access, checks
    if ctx.mode == Mode::Real
        && let Some(verified) = stage::verify::resumable(ctx, &Policy::of(signer))?
    {
        return publish(ctx, &verified, signer, publisher, Default::default()); //  a failed run's verified release, as it was
    }
    let manifest = stage::build::run(ctx)?; //  cargo build per target and package → dist/<tag>/
    finish(ctx, manifest, signer, publisher)
}

/// One CI runner's share of a split release: the binaries of its targets and their manifest.
/// Nothing is published from here, so its preflight has no GitHub part.
pub fn build_share(ctx: &Context) -> Result<Manifest> {
    stage::preflight::run(ctx, &mut Publisher::record()?)?;
    stage::build::run(ctx)
}

/// A split release: merges the runners' shares, then continues as a single machine would.
pub fn assemble(
    ctx: &Context,
    shares: &[std::path::PathBuf],
    signer: &mut Signer,
    publisher: &mut Publisher,
) -> Result<Report> {
    stage::preflight::signer(signer)?; //  keyless: an identity-token source exists
    stage::preflight::run_for_assemble(ctx, publisher)?; //  the tagged commit, repository, GitHub access
    let manifest = stage::assemble::run(ctx, shares)?; //  shares checked and merged → dist/<tag>/
    finish(ctx, manifest, signer, publisher)
}

/// Everything after the binaries exist, the same for one machine and for a split release.
fn finish(
    ctx: &Context,
    mut manifest: Manifest,
    signer: &mut Signer,
    publisher: &mut Publisher,
) -> Result<Report> {
    let dist = &ctx.dist;
    let (repository, ci) = (
        ctx.repository().unwrap_or_default(),
        stage::attest::Ci::from_env(),
    );
    let mut clock = manifest.timings.clone();
    timed(&mut clock, "sbom", || {
        stage::sbom::run(dist, &ctx.workspace.metadata, &mut manifest)
    })?; //  one CycloneDX SBOM per binary
    timed(&mut clock, "installer", || {
        stage::installer::run(dist, &mut manifest, &repository, &Policy::of(signer))
    })?; //  install.sh, the verifying installer for these builds and this signer
    timed(&mut clock, "checksums", || {
        stage::checksums::run(dist, &mut manifest)
    })?; //  SHA256SUMS over binaries, SBOMs and install.sh
    if ctx.config.image.is_some() {
        timed(&mut clock, "image", || {
            stage::image::run(ctx, &repository, &mut manifest)
        })?; //  [image]: OCI layouts in oci/, IMAGES in SHA256SUMS
    }
    if let Some(published) = stage::publish::already_published(publisher, &manifest)? {
        return Ok(Report {
            manifest,
            published,
        }); //  a re-run of a published release: identical, done
    }
    timed(&mut clock, "sign", || {
        stage::sign::run(dist, &mut manifest, signer)
    })?; //  signature + bundle over SHA256SUMS
    timed(&mut clock, "attest", || {
        stage::attest::run(
            dist,
            &mut manifest,
            signer,
            &attest_inputs(ctx, &repository, &ci),
        )
    })?; //  provenance, SBOM attestations
    if ctx.config.in_toto.is_some() {
        timed(&mut clock, "in-toto", || {
            intoto::stage::run(ctx, &mut manifest)
        })?; //  in-toto: build links, the tag's link, root.layout
    }
    manifest.timings = clock.clone();
    manifest.write(dist)?;
    let verified = timed(&mut clock, "verify", || {
        stage::verify::run(dist, &manifest, &Policy::of(signer), &ctx.expect(), &ctx.ui)
    })?; //  the gate
    publish(ctx, &verified, signer, publisher, clock) //  draft → upload → compare → publish
}

/// Runs one stage and records its wall time under `name`.
fn timed<T>(
    clock: &mut std::collections::BTreeMap<String, u64>,
    name: &str,
    stage: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let started = std::time::Instant::now();
    let out = stage()?;
    clock.insert(name.into(), started.elapsed().as_millis() as u64);
    Ok(out)
}

fn publish(
    ctx: &Context,
    verified: &Verified,
    signer: &mut Signer,
    publisher: &mut Publisher,
    mut clock: std::collections::BTreeMap<String, u64>,
) -> Result<Report> {
    stage::verify::glibc(ctx, verified)?; //  no binary needs a newer glibc than max-glibc
    if let Some(published) = stage::publish::already_published(publisher, verified.manifest())? {
        return Ok(Report {
            manifest: verified.manifest().clone(),
            published,
        });
    }
    if ctx.mode == Mode::Real && verified.dist().join(layout::IMAGES).exists() {
        timed(&mut clock, "push", || {
            stage::image::push(verified, signer, &ctx.ui)
        })?; //  [image]: the verified layouts to their registry
    }
    let published = timed(&mut clock, "publish", || {
        stage::publish::run(ctx, verified, &Policy::of(signer), publisher)
    })?;
    // The manifest in dist/ is the published one, without timings (a re-run's must be
    // byte-identical); the report keeps them, and the table shows them.
    let mut manifest = verified.manifest().clone();
    manifest.timings = clock;
    ctx.ui.timings(&manifest.timings);
    Ok(Report {
        manifest,
        published,
    })
}

fn attest_inputs<'a>(
    ctx: &'a Context,
    repository: &'a str,
    ci: &'a stage::attest::Ci,
) -> stage::attest::Inputs<'a> {
    stage::attest::Inputs {
        repository,
        workspace_root: &ctx.workspace.root,
        profile: &ctx.config.profile,
        started_on: ctx.started_on.clone(),
        ci,
    }
}
