//! `cargo metadata` → what a workspace can release: its members, their bins and versions.

use std::path::{Path, PathBuf};

use cargo_metadata::{Metadata, MetadataCommand, TargetKind};

use crate::error::{Error, Result, tail};

#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    pub members: Vec<Member>,
    /// The full metadata, kept for the SBOM stage (licenses, sources, the resolve graph).
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub version: semver::Version,
    pub id: String,
    pub bins: Vec<Bin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bin {
    pub name: String,
    pub required_features: Vec<String>,
}

impl Workspace {
    /// Runs `cargo metadata --locked` in `dir`: a missing or stale Cargo.lock is refused here,
    /// because releases build with `--locked`.
    pub fn load(dir: &Path) -> Result<Workspace> {
        let manifest = dir.join("Cargo.toml");
        if !manifest.is_file() {
            return Err(Error::Preflight(format!(
                "no Cargo.toml in {}: run xrelease from the root of the workspace to release",
                dir.display()
            )));
        }
        if !dir.join("Cargo.lock").is_file() {
            return Err(Error::Preflight(format!(
                "{} has no Cargo.lock: releases build with --locked, so the lock file must be committed; \
                 run `cargo generate-lockfile` and commit Cargo.lock",
                dir.display()
            )));
        }
        let metadata = MetadataCommand::new()
            .manifest_path(&manifest)
            .other_options(vec!["--locked".to_string()])
            .exec()
            .map_err(|e| metadata_error(dir, e))?;
        Ok(Workspace::from_metadata(metadata))
    }

    pub fn from_metadata(metadata: Metadata) -> Workspace {
        let members = metadata
            .workspace_packages()
            .into_iter()
            .map(|p| Member {
                name: p.name.to_string(),
                version: p.version.clone(),
                id: p.id.repr.clone(),
                bins: p
                    .targets
                    .iter()
                    .filter(|t| t.kind.contains(&TargetKind::Bin))
                    .map(|t| Bin {
                        name: t.name.clone(),
                        required_features: t.required_features.clone(),
                    })
                    .collect(),
            })
            .collect();
        Workspace {
            root: metadata.workspace_root.clone().into_std_path_buf(),
            target_dir: metadata.target_directory.clone().into_std_path_buf(),
            members,
            metadata,
        }
    }
}

fn metadata_error(dir: &Path, e: cargo_metadata::Error) -> Error {
    let text = e.to_string();
    if text.contains("--locked") || text.contains("lock file") {
        return Error::Preflight(format!(
            "Cargo.lock in {} is out of date with Cargo.toml: releases build with --locked; \
             run `cargo update --workspace` (or `cargo build`), review and commit Cargo.lock\n{}",
            dir.display(),
            tail(&text, 6)
        ));
    }
    Error::Preflight(format!(
        "`cargo metadata` failed in {}:\n{}",
        dir.display(),
        tail(&text, 12)
    ))
}
