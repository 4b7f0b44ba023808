//! The checksums stage: `SHA256SUMS` over every binary and SBOM, `install.sh` (and `IMAGES`), in the format `sha256sum -c`
//! reads: `<64 lowercase hex><two spaces><name>\n`, sorted by name.

use std::path::{Path, PathBuf};

use crate::digest::sha256_files;
use crate::error::{Error, Result};
use crate::manifest::{Artifact, Kind, Manifest};

pub const FILE: &str = crate::layout::SUMS;

/// Hashes every binary and SBOM of the manifest afresh (the bytes on disk are what ships),
/// checks them against the manifest, and writes `SHA256SUMS`.
pub fn run(dist: &Path, manifest: &mut Manifest) -> Result<()> {
    let listed: Vec<&Artifact> = manifest
        .artifacts
        .iter()
        .filter(|a| {
            matches!(
                a.kind,
                Kind::Binary | Kind::Sbom | Kind::Images | Kind::Installer
            )
        })
        .collect();
    if listed.is_empty() {
        return Err(Error::Manifest(
            "nothing to checksum: the manifest lists no binary".into(),
        ));
    }
    let paths: Vec<PathBuf> = listed.iter().map(|a| dist.join(&a.name)).collect();
    let mut lines = Vec::new();
    for (artifact, hashed) in listed.iter().zip(sha256_files(&paths, &|_| false)) {
        let path = dist.join(&artifact.name);
        let hashed = hashed.map_err(Error::io("cannot hash", &path))?;
        // The manifest's digest was taken when the file was written; a difference means
        // something changed the file since, and that is not what we built.
        if hashed.sha256 != artifact.sha256 || hashed.size != artifact.size {
            return Err(Error::Manifest(format!(
                "{} changed after it was written: the manifest says sha256 {} ({} bytes), the file is {} ({} bytes)",
                path.display(),
                artifact.sha256,
                artifact.size,
                hashed.sha256,
                hashed.size
            )));
        }
        lines.push(format_line(&hashed.sha256, &artifact.name));
    }
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    let text = lines.concat();
    manifest.write_file(dist, FILE, Kind::Checksums, None, text.as_bytes())?;
    Ok(())
}

pub fn format_line(sha256: &str, name: &str) -> String {
    format!("{sha256}  {name}\n")
}
