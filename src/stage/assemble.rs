//! The assemble stage of a split release: merges the shares that CI runners built
//! (`xrelease build TAG --target T --dist DIR`) into `dist/<tag>/`, refusing anything that would
//! make the result differ from a single-machine release: a missing or duplicated target, a
//! binary whose bytes are not the ones its share recorded, shares of another commit or version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::context::Context;
use crate::digest::sha256_file;
use crate::error::{Error, Result};
use crate::git::Git;
use crate::manifest::{Kind, Manifest};
use crate::stage::build::prepare_dist;

pub fn run(ctx: &Context, shares: &[PathBuf]) -> Result<Manifest> {
    let started = Instant::now();
    let refuse = |why: String| {
        Error::Preflight(format!(
            "cannot assemble: {why}; nothing was signed or published"
        ))
    };
    if shares.is_empty() {
        return Err(refuse("no share directories given".into()));
    }
    let head = Git::new(&ctx.sh).head()?;
    let mut merged: Option<Manifest> = None;
    let mut built_by: BTreeMap<String, &Path> = BTreeMap::new();
    let mut files: Vec<(PathBuf, String)> = Vec::new();

    for dir in shares {
        let share = Manifest::read(dir)
            .map_err(|e| refuse(format!("{} is not a share: {e}", dir.display())))?;
        if share.tag != ctx.plan.tag || share.version != ctx.plan.version {
            return Err(refuse(format!(
                "{} was built for {} ({}), not {} ({})",
                dir.display(),
                share.tag,
                share.version,
                ctx.plan.tag,
                ctx.plan.version
            )));
        }
        if share.source.commit != head {
            return Err(refuse(format!(
                "{} was built from commit {}, but HEAD is {head}",
                dir.display(),
                share.source.commit
            )));
        }
        for target in share.toolchains.keys() {
            if let Some(other) = built_by.insert(target.clone(), dir) {
                return Err(refuse(format!(
                    "target {target} is in two shares: {} and {}",
                    other.display(),
                    dir.display()
                )));
            }
        }
        for binary in share.binaries() {
            let planned = ctx
                .plan
                .artifacts
                .iter()
                .any(|a| a.name == binary.name && Some(&a.target) == binary.target.as_ref());
            if !planned {
                return Err(refuse(format!(
                    "{} holds {}, which this release does not plan",
                    dir.display(),
                    binary.name
                )));
            }
            let path = dir.join(&binary.name);
            let (sha256, size) = sha256_file(&path)
                .map_err(|e| refuse(format!("cannot read {}: {e}", path.display())))?;
            if sha256 != binary.sha256 || size != binary.size {
                return Err(refuse(format!(
                    "{} is not the binary its share recorded: expected sha256 {} ({} bytes), found {sha256} ({size} bytes)",
                    path.display(),
                    binary.sha256,
                    binary.size
                )));
            }
            files.push((path, binary.name.clone()));
        }
        merged = Some(match merged {
            None => share,
            Some(mut m) => {
                if m.source != share.source {
                    return Err(refuse(format!(
                        "{} records another source than the first share",
                        dir.display()
                    )));
                }
                m.toolchains.extend(share.toolchains);
                m.builds.extend(share.builds);
                m.glibc.extend(share.glibc);
                // Each runner's build time per target (its "build" total is its own).
                m.timings.extend(
                    share
                        .timings
                        .into_iter()
                        .filter(|(k, _)| k.starts_with("build ")),
                );
                for a in share
                    .artifacts
                    .into_iter()
                    .filter(|a| a.kind == Kind::Binary)
                {
                    m.upsert(a);
                }
                m
            }
        });
    }

    let mut manifest = merged.expect("at least one share");
    let missing: Vec<&str> = ctx
        .plan
        .include
        .iter()
        .map(|i| i.target.as_str())
        .filter(|t| !built_by.contains_key(*t))
        .collect();
    if !missing.is_empty() {
        return Err(refuse(format!("no share built {}", missing.join(", "))));
    }
    let absent: Vec<&str> = ctx
        .plan
        .artifacts
        .iter()
        .map(|a| a.name.as_str())
        .filter(|n| manifest.artifact(n).is_none())
        .collect();
    if !absent.is_empty() {
        return Err(refuse(format!("the shares lack {}", absent.join(", "))));
    }
    manifest.artifacts.retain(|a| a.kind == Kind::Binary);
    manifest
        .builds
        .sort_by(|a, b| (&a.target, &a.packages).cmp(&(&b.target, &b.packages)));

    prepare_dist(&ctx.dist)?;
    manifest.write(&ctx.dist)?; // ours from the start, should a copy fail
    for (from, name) in files {
        let to = ctx.dist.join(&name);
        std::fs::copy(&from, &to).map_err(Error::io("cannot copy the binary into dist", &to))?;
    }
    manifest
        .timings
        .insert("assemble".into(), started.elapsed().as_millis() as u64);
    manifest.write(&ctx.dist)?;
    ctx.ui.info(format!(
        "assembled {} binaries from {} shares",
        manifest.binaries().count(),
        shares.len()
    ));
    Ok(manifest)
}

pub fn share_dirs(dir: &Path, given: &[PathBuf]) -> Vec<PathBuf> {
    given.iter().map(|g| dir.join(g)).collect()
}
