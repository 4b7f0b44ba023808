//! xrelease: turns a tagged Rust workspace into a release anyone can verify.
//!
//! The release order is the body of [`release`]: one line per stage. Every stage reads and
//! extends the manifest in `dist/<tag>/`, so any stage can be re-run from disk.

pub mod cli;
pub mod config;
pub mod context;
pub mod digest;
pub mod doctor;
pub mod error;
pub mod git;
pub mod manifest;
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
    pub mod attest;
    pub mod build;
    pub mod checksums;
    pub mod preflight;
    pub mod sbom;
    pub mod sign;
    pub mod verify;
}

use context::{Context, Mode};
use error::{Error, Result};
use manifest::Manifest;
use signing::Signer;

/// Stages still to be written; a rehearsal stops before them and says so.
const NOT_YET: &[&str] = &["publish"];

/// What a finished run produced.
pub struct Report {
    pub manifest: Manifest,
    pub stopped_before: &'static [&'static str],
}

/// The release, in order. Plan is pure and already done by [`Context::load`]; the signer was
/// chosen by the caller (a throwaway key for rehearsals), so no stage knows which mode it is in.
pub fn release(ctx: &Context, signer: &mut Signer) -> Result<Report> {
    if ctx.mode == Mode::Real && !NOT_YET.is_empty() {
        return Err(Error::Preflight(format!(
            "a real release needs stages this xrelease does not have yet ({}): nothing would be \
             published; rehearse with --dry-run",
            NOT_YET.join(", ")
        )));
    }
    stage::preflight::signer(signer)?; //  keyless: an identity-token source exists
    stage::preflight::run(ctx)?; //  git tree, tag at HEAD, toolchains and linkers, pre-release checks
    let (repository, ci) = (
        ctx.repository().unwrap_or_default(),
        stage::attest::Ci::from_env(),
    );
    let mut manifest = stage::build::run(ctx)?; //  cargo build per target and package → dist/<tag>/
    let dist = &ctx.dist;
    stage::sbom::run(dist, &ctx.workspace.metadata, &mut manifest)?; //  one CycloneDX SBOM per binary
    stage::checksums::run(dist, &mut manifest)?; //  SHA256SUMS over binaries and SBOMs
    stage::sign::run(dist, &mut manifest, signer)?; //  signature + bundle over SHA256SUMS
    stage::attest::run(
        dist,
        &mut manifest,
        signer,
        &attest_inputs(ctx, &repository, &ci),
    )?; //  SLSA provenance, SBOM attestations
    manifest.write(dist)?;
    let verified = stage::verify::run(dist, &manifest, &signer.policy(), &ctx.expect(), &ctx.ui)?; //  the gate
    Ok(Report {
        manifest: verified.manifest().clone(),
        stopped_before: NOT_YET,
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
        profile: "release",
        started_on: ctx.started_on.clone(),
        ci,
    }
}
