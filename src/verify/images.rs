//! The release's container images on disk: `IMAGES` (listed in SHA256SUMS, so signed) names one
//! image per bin by index digest, and `oci/<bin>/` must hold exactly that image, whose every
//! platform layer holds exactly one released binary of that bin.

use std::collections::BTreeMap;
use std::path::Path;

use super::Checks;
use crate::image::{self, IMAGES_FILE, OCI_DIR, layout};

/// Checks `oci/` against `IMAGES`. A release without images has neither; one without the other
/// fails.
pub(super) fn check(
    checks: &mut Checks,
    dir: &Path,
    files: &BTreeMap<String, Option<Vec<u8>>>,
    listed: &BTreeMap<String, String>,
) {
    let oci = dir.join(OCI_DIR);
    let images = files.get(IMAGES_FILE);
    if images.is_none() {
        if oci.exists() {
            checks.add(
                "image",
                OCI_DIR,
                Err("oci/ is present but IMAGES is not: nothing signed says which images belong to the release".into()),
            );
        }
        return;
    }
    let entries = match images
        .and_then(|b| b.as_deref())
        .ok_or_else(|| "IMAGES was not read".to_string())
        .and_then(|b| std::str::from_utf8(b).map_err(|_| "IMAGES is not UTF-8".to_string()))
        .and_then(image::parse)
    {
        Ok(entries) if !entries.is_empty() => entries,
        Ok(_) => {
            checks.add("image", IMAGES_FILE, Err("IMAGES lists no image".into()));
            return;
        }
        Err(why) => {
            checks.add("image", IMAGES_FILE, Err(why));
            return;
        }
    };
    let on_disk: Vec<String> = match std::fs::read_dir(&oci) {
        Ok(dirs) => dirs
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => {
            checks.add("image", OCI_DIR, Err(format!("cannot read oci/: {e}")));
            return;
        }
    };
    let unlisted: Vec<&String> = on_disk
        .iter()
        .filter(|d| !entries.iter().any(|e| e.bin == **d))
        .collect();
    if !unlisted.is_empty() {
        checks.add(
            "image",
            OCI_DIR,
            Err(format!(
                "not listed in IMAGES: {}",
                unlisted
                    .iter()
                    .map(|s| format!("oci/{s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
    }
    let released: BTreeMap<&str, &str> = listed
        .iter()
        .filter(|(name, _)| crate::layout::is_binary(name))
        .map(|(name, digest)| (digest.as_str(), name.as_str()))
        .collect();
    for entry in &entries {
        let subject = format!("{OCI_DIR}/{}", entry.bin);
        let result = layout::read(&oci.join(&entry.bin))
            .and_then(|(built, ref_name)| check_image(entry, &built, &ref_name, &released));
        checks.add("image", subject, result);
    }
}

fn check_image(
    entry: &image::Entry,
    built: &layout::Image,
    ref_name: &str,
    released: &BTreeMap<&str, &str>,
) -> Result<String, String> {
    if built.index.digest() != entry.digest {
        return Err(format!(
            "the layout's index is {}, but IMAGES lists {}",
            built.index.digest(),
            entry.digest
        ));
    }
    if ref_name != entry.tag {
        return Err(format!(
            "the layout names the image `{ref_name}`, IMAGES tags it `{}`",
            entry.tag
        ));
    }
    if built.platforms.is_empty() {
        return Err("the index lists no platform".into());
    }
    let mut holds = Vec::new();
    for p in &built.platforms {
        let (path, bytes) = layout::layer_file(&p.layer.bytes)
            .map_err(|why| format!("{}: {why}", p.manifest.digest()))?;
        if path != entry.bin {
            return Err(format!(
                "{}'s layer holds `{path}`, not `{}`",
                p.manifest.digest(),
                entry.bin
            ));
        }
        let digest = crate::digest::sha256_bytes(&bytes);
        let Some(name) = released.get(digest.as_str()) else {
            return Err(format!(
                "{}'s layer holds a `{path}` (sha256 {digest}) that is not a binary of this release",
                p.manifest.digest()
            ));
        };
        if p.parsed_config.rootfs().diff_ids() != &[p.layer.digest()] {
            return Err(format!(
                "{}'s config does not name its layer as its only diff_id",
                p.manifest.digest()
            ));
        }
        holds.push(name.to_string());
    }
    Ok(format!(
        "index {} ({} platforms) holds exactly {}",
        entry.digest,
        built.platforms.len(),
        holds.join(", ")
    ))
}
