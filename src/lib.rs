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
pub mod github;
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
    pub mod build;
    pub mod checksums;
    pub mod preflight;
    pub mod publish;
    pub mod sbom;
    pub mod sign;
    pub mod verify;
}

use context::{Context, Mode};
use error::{Error, Result};
use manifest::Manifest;
use signing::Signer;
use stage::publish::{Published, Publisher};

/// Stages still to be written; a rehearsal stops before them and says so.
pub const NOT_YET: &[&str] = &["attest"];

/// What a finished run produced.
pub struct Report {
    pub manifest: Manifest,
    pub published: Published,
    pub stopped_before: &'static [&'static str],
}

/// The release, in order. Plan is pure and already done by [`Context::load`]; the signer and the
/// publisher were chosen by the caller (a throwaway key and a recorder for rehearsals), so no
/// stage knows which mode it is in.
pub fn release(ctx: &Context, signer: &mut Signer, publisher: &mut Publisher) -> Result<Report> {
    if ctx.mode == Mode::Real && !NOT_YET.is_empty() {
        return Err(Error::Preflight(format!(
            "a real release needs stages this xrelease does not have yet ({}): nothing would be \
             attested or published; rehearse with --dry-run",
            NOT_YET.join(", ")
        )));
    }
    stage::preflight::run(ctx, publisher)?; //  git tree, tag at HEAD, toolchains, GitHub access, checks
    let mut manifest = stage::build::run(ctx)?; //  cargo build per target and package → dist/<tag>/
    let dist = &ctx.dist;
    stage::sbom::run(dist, &ctx.workspace.metadata, &mut manifest)?; //  one CycloneDX SBOM per binary
    stage::checksums::run(dist, &mut manifest)?; //  SHA256SUMS over binaries and SBOMs
    stage::sign::run(dist, &mut manifest, signer)?; //  signature + bundle over SHA256SUMS
    manifest.write(dist)?;
    let verified = stage::verify::run(dist, &manifest, &signer.policy(), &ctx.expect(), &ctx.ui)?; //  the gate
    let published = stage::publish::run(ctx, &verified, &signer.policy(), publisher)?; //  draft → upload → compare → publish
    Ok(Report {
        manifest: verified.manifest().clone(),
        published,
        stopped_before: NOT_YET,
    })
}
