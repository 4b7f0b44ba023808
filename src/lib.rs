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
pub mod shell;
pub mod tag;
pub mod ui;
pub mod workspace;

pub mod stage {
    pub mod build;
    pub mod preflight;
    pub mod sbom;
}

use context::{Context, Mode};
use error::{Error, Result};
use manifest::Manifest;

/// Stages still to be written; a rehearsal stops before them and says so.
const NOT_YET: &[&str] = &["checksums", "sign", "attest", "verify", "publish"];

/// What a finished run produced.
pub struct Report {
    pub manifest: Manifest,
    pub stopped_before: &'static [&'static str],
}

/// The release, in order. Plan is pure and already done by [`Context::load`].
pub fn release(ctx: &Context) -> Result<Report> {
    if ctx.mode == Mode::Real && !NOT_YET.is_empty() {
        return Err(Error::Preflight(format!(
            "a real release needs stages this xrelease does not have yet ({}): nothing would be signed, \
             verified or published; rehearse with --dry-run",
            NOT_YET.join(", ")
        )));
    }
    stage::preflight::run(ctx)?; //  git tree, tag at HEAD, toolchains and linkers, pre-release checks
    let mut manifest = stage::build::run(ctx)?; //  cargo build per target and package → dist/<tag>/
    stage::sbom::run(&ctx.dist, &ctx.workspace.metadata, &mut manifest)?; // one CycloneDX SBOM per binary
    manifest.write(&ctx.dist)?;
    Ok(Report {
        manifest,
        stopped_before: NOT_YET,
    })
}
