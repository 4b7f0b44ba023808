//! The verify stage: the release gate. It runs the consumers' verifier on the exact bytes in
//! `dist/<tag>/`, under the policy of the signer that signed them, and only a full pass yields
//! the `Verified` value that publishing requires.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::ui::Ui;
use crate::verify::{self, Expect, Policy};

/// Proof that a release directory passed every check. Only [`run`] makes one.
#[derive(Debug)]
pub struct Verified {
    dist: PathBuf,
    manifest: Manifest,
}

impl Verified {
    pub fn dist(&self) -> &Path {
        &self.dist
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

pub fn run(
    dist: &Path,
    manifest: &Manifest,
    policy: &Policy,
    expect: &Expect,
    ui: &Ui,
) -> Result<Verified> {
    let report = verify::verify(dist, policy, expect);
    if !report.ok {
        return Err(Error::Verification(report.render()));
    }
    ui.info(format!(
        "verified: {}/{} checks passed",
        report.passed, report.total
    ));
    // What was verified must be exactly what the manifest will publish.
    for artifact in &manifest.artifacts {
        match report.digests.get(&artifact.name) {
            Some(digest) if *digest == artifact.sha256 => {}
            Some(digest) => {
                return Err(Error::Verification(format!(
                    "{} is {digest} on disk but {} in the manifest: it changed during the release",
                    artifact.name, artifact.sha256
                )));
            }
            None if artifact.name == crate::manifest::FILE => {}
            None => {
                return Err(Error::Verification(format!(
                    "{} is in the manifest but not in {}",
                    artifact.name,
                    dist.display()
                )));
            }
        }
    }
    Ok(Verified {
        dist: dist.to_path_buf(),
        manifest: manifest.clone(),
    })
}

/// `[release] max-glibc`: every binary's glibc floor, read again from the verified bytes (the
/// manifest's record must agree), is at most that version. Exit 3 otherwise: the release
/// would not start on the systems it promises to support.
pub fn glibc(ctx: &crate::context::Context, verified: &Verified) -> Result<()> {
    let mut problems = Vec::new();
    for binary in verified.manifest.binaries() {
        let floor = crate::glibc::floor(&verified.dist.join(&binary.name))?;
        if floor.as_ref() != verified.manifest.glibc.get(&binary.name) {
            problems.push(format!(
                "{}: needs glibc {} but the manifest records {}",
                binary.name,
                floor.map_or("none".into(), |f| f.to_string()),
                verified
                    .manifest
                    .glibc
                    .get(&binary.name)
                    .map_or("none".into(), |f| f.to_string())
            ));
            continue;
        }
        if let (Some(floor), Some(max)) = (floor, &ctx.config.max_glibc)
            && floor > *max
        {
            problems.push(format!(
                "{} needs glibc {floor}, newer than `[release] max-glibc = \"{max}\"`",
                binary.name
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Verification(format!(
        "[FAIL] glibc: {}\nbuild the linux-gnu targets on an older system (or container), release the \
         static musl targets instead (`[release] targets`, `xrelease init --musl`), or raise `max-glibc`",
        problems.join("\n[FAIL] glibc: ")
    )))
}

/// A real run that failed after the verify gate (say, mid-upload) left a verified release in
/// `dist/<tag>/`. Re-running must publish exactly those bytes: a rebuild would sign again (new
/// provenance timestamps; keyless, a new certificate) and no longer match what the draft
/// already holds. So when `dist/<tag>/` holds a release of this very commit that verifies under
/// this run's policy, it is resumed; anything else (another commit, another key, a tampered or
/// partial directory) is rebuilt.
pub fn resumable(ctx: &crate::context::Context, policy: &Policy) -> Result<Option<Verified>> {
    let Ok(manifest) = Manifest::read(&ctx.dist) else {
        return Ok(None);
    };
    let head = crate::git::Git::new(&ctx.sh).head()?;
    if manifest.tag != ctx.plan.tag || manifest.source.commit != head {
        return Ok(None);
    }
    match run(&ctx.dist, &manifest, policy, &ctx.expect(), &ctx.ui) {
        Ok(verified) => {
            ctx.ui.info(format!(
                "{} already holds a verified release of {head}: resuming it (delete the directory to rebuild)",
                ctx.dist.display()
            ));
            Ok(Some(verified))
        }
        Err(_) => Ok(None),
    }
}
