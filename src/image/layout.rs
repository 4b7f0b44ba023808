//! One multi-arch image as plain data and as an OCI image layout on disk (`oci-layout`,
//! `index.json`, `blobs/sha256/`): built reproducibly, read back with every digest checked.
//!
//! Reproducible means the same inputs give the same bytes: layers are uncompressed tar with
//! one entry (`/<bin>`, mode 0755, uid/gid 0, mtime = commit time), and every JSON document is
//! serialised with sorted keys and no whitespace (oci-spec keeps annotations and labels in hash
//! maps, whose order is not stable).

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, Digest, ImageConfiguration, ImageConfigurationBuilder,
    ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType, Os,
    PlatformBuilder, RootFsBuilder,
};

use crate::digest::sha256_bytes;

/// The annotation the layout's `index.json` names the image by (the release's version).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What one platform of an image is made of.
pub struct PlatformInput {
    pub os: &'static str,
    pub architecture: &'static str,
    pub variant: Option<&'static str>,
    /// The released binary's bytes, exactly as listed in SHA256SUMS.
    pub binary: Vec<u8>,
}

/// Everything an image is made of; the same values give the same index digest.
pub struct ImageInput {
    pub bin: String,
    pub version: String,
    pub commit: String,
    pub commit_time: i64,
    /// `org.opencontainers.image.*` and the configured labels, already merged.
    pub labels: BTreeMap<String, String>,
    pub platforms: Vec<PlatformInput>,
}

/// A blob and its descriptor.
#[derive(Debug, Clone)]
pub struct Blob {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: MediaType, bytes: Vec<u8>) -> Blob {
        Blob {
            descriptor: Descriptor::new(media_type, bytes.len() as u64, digest_of(&bytes)),
            bytes,
        }
    }

    pub fn digest(&self) -> String {
        self.descriptor.digest().to_string()
    }
}

/// One platform's image: its manifest, config and single layer.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    /// The manifest's descriptor as the index lists it (with its platform).
    pub manifest: Blob,
    pub parsed: ImageManifest,
    pub config: Blob,
    pub parsed_config: ImageConfiguration,
    pub layer: Blob,
}

/// A multi-arch image: the index and one image per platform.
#[derive(Debug, Clone)]
pub struct Image {
    pub index: Blob,
    pub parsed_index: ImageIndex,
    pub platforms: Vec<PlatformImage>,
}

impl Image {
    /// Every blob, the index last (the order a registry needs them in).
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut blobs = Vec::new();
        for p in &self.platforms {
            blobs.extend([&p.layer, &p.config, &p.manifest]);
        }
        blobs.push(&self.index);
        blobs
    }
}

pub fn digest_of(bytes: &[u8]) -> Digest {
    format!("sha256:{}", sha256_bytes(bytes))
        .parse()
        .expect("a sha256 hex digest is a valid digest")
}

/// Sorted keys, no whitespace: the one byte form xrelease writes its OCI JSON in.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("OCI documents are plain data");
    serde_json::to_vec(&crate::manifest::sorted(value)).expect("plain data serialises")
}

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// The layer: a tar holding exactly `/<bin>`, owned by root, dated at the commit.
pub fn layer_tar(bin: &str, binary: &[u8], mtime: i64) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(bin)
        .expect("bin names are short plain names");
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime.max(0) as u64);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append(&header, binary)
        .expect("writing to memory cannot fail");
    builder.into_inner().expect("writing to memory cannot fail")
}

/// Builds the image: one manifest per platform (in the given order), then the index.
pub fn build(input: &ImageInput) -> Result<Image, String> {
    let oci = |e: oci_spec::OciSpecError| format!("cannot build an OCI document: {e}");
    let created = rfc3339(input.commit_time);
    let mut platforms = Vec::new();
    let mut index_entries = Vec::new();
    for p in &input.platforms {
        let layer = Blob::new(
            MediaType::ImageLayer,
            layer_tar(&input.bin, &p.binary, input.commit_time),
        );
        let labels: std::collections::HashMap<String, String> =
            input.labels.clone().into_iter().collect();
        let mut config = ImageConfigurationBuilder::default()
            .created(created.clone())
            .architecture(Arch::from(p.architecture))
            .os(Os::from(p.os))
            .config(
                ConfigBuilder::default()
                    .entrypoint(vec![format!("/{}", input.bin)])
                    .labels(labels)
                    .build()
                    .map_err(oci)?,
            )
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(vec![layer.digest()])
                    .build()
                    .map_err(oci)?,
            );
        if let Some(variant) = p.variant {
            config = config.variant(variant);
        }
        let parsed_config = config.build().map_err(oci)?;
        let config = Blob::new(MediaType::ImageConfig, canonical_json(&parsed_config));
        let parsed = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config.descriptor.clone())
            .layers(vec![layer.descriptor.clone()])
            .build()
            .map_err(oci)?;
        let mut manifest = Blob::new(MediaType::ImageManifest, canonical_json(&parsed));
        let mut platform = PlatformBuilder::default()
            .architecture(Arch::from(p.architecture))
            .os(Os::from(p.os));
        if let Some(variant) = p.variant {
            platform = platform.variant(variant);
        }
        manifest
            .descriptor
            .set_platform(Some(platform.build().map_err(oci)?));
        index_entries.push(manifest.descriptor.clone());
        platforms.push(PlatformImage {
            manifest,
            parsed,
            config,
            parsed_config,
            layer,
        });
    }
    let annotations = [
        ("org.opencontainers.image.created", created.as_str()),
        ("org.opencontainers.image.revision", input.commit.as_str()),
        ("org.opencontainers.image.version", input.version.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect::<std::collections::HashMap<_, _>>();
    let parsed_index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(index_entries)
        .annotations(annotations)
        .build()
        .map_err(oci)?;
    Ok(Image {
        index: Blob::new(MediaType::ImageIndex, canonical_json(&parsed_index)),
        parsed_index,
        platforms,
    })
}

/// Writes `dir` as an OCI image layout whose `index.json` names the image `ref_name`.
/// The directory is replaced whole: a layout holds exactly this image.
pub fn write(dir: &Path, image: &Image, ref_name: &str) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs)?;
    for blob in image.blobs() {
        let hex = blob.digest().trim_start_matches("sha256:").to_string();
        std::fs::write(blobs.join(hex), &blob.bytes)?;
    }
    std::fs::write(dir.join("oci-layout"), LAYOUT_FILE)?;
    std::fs::write(dir.join("index.json"), layout_index(image, ref_name))
}

/// The `oci-layout` file, byte for byte.
pub const LAYOUT_FILE: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

fn layout_index(image: &Image, ref_name: &str) -> Vec<u8> {
    let mut descriptor = image.index.descriptor.clone();
    descriptor.set_annotations(Some([(REF_NAME.to_string(), ref_name.to_string())].into()));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![descriptor])
        .build()
        .expect("the layout index has every required field");
    canonical_json(&index)
}

/// Reads a layout back: the one image `index.json` names, every blob checked against its digest
/// and size, and nothing in the layout that the image does not reference. Returns the image and
/// its `ref.name`.
pub fn read(dir: &Path) -> Result<(Image, String), String> {
    let read_file = |rel: &str| {
        std::fs::read(dir.join(rel)).map_err(|e| format!("cannot read {rel} of the layout: {e}"))
    };
    if read_file("oci-layout")? != LAYOUT_FILE.as_bytes() {
        return Err("oci-layout is not {\"imageLayoutVersion\":\"1.0.0\"}".into());
    }
    let top: ImageIndex = serde_json::from_slice(&read_file("index.json")?)
        .map_err(|e| format!("index.json is not an OCI index: {e}"))?;
    let [entry] = top.manifests().as_slice() else {
        return Err(format!(
            "index.json lists {} entries; a release's layout holds exactly one image",
            top.manifests().len()
        ));
    };
    let ref_name = entry
        .annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME).cloned())
        .ok_or("index.json names no image (org.opencontainers.image.ref.name)")?;
    let mut used = Vec::new();
    let mut blob = |descriptor: &Descriptor| -> Result<Blob, String> {
        let digest = descriptor.digest().to_string();
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("{digest} is not a sha256 digest"))?;
        let bytes = read_file(&format!("blobs/sha256/{hex}"))?;
        let actual = sha256_bytes(&bytes);
        if actual != hex || bytes.len() as u64 != descriptor.size() {
            return Err(format!(
                "blob {digest} ({} bytes) holds other bytes: sha256:{actual} ({} bytes)",
                descriptor.size(),
                bytes.len()
            ));
        }
        used.push(hex.to_string());
        Ok(Blob {
            descriptor: descriptor.clone(),
            bytes,
        })
    };
    let index = blob(entry)?;
    let parsed_index: ImageIndex = serde_json::from_slice(&index.bytes)
        .map_err(|e| format!("{} is not an OCI index: {e}", index.digest()))?;
    let mut platforms = Vec::new();
    for descriptor in parsed_index.manifests() {
        let manifest = blob(descriptor)?;
        let parsed: ImageManifest = serde_json::from_slice(&manifest.bytes)
            .map_err(|e| format!("{} is not an OCI image manifest: {e}", manifest.digest()))?;
        let config = blob(parsed.config())?;
        let parsed_config: ImageConfiguration = serde_json::from_slice(&config.bytes)
            .map_err(|e| format!("{} is not an OCI image config: {e}", config.digest()))?;
        let [layer] = parsed.layers().as_slice() else {
            return Err(format!(
                "{} has {} layers; xrelease's images have exactly one",
                manifest.digest(),
                parsed.layers().len()
            ));
        };
        let layer = blob(layer)?;
        platforms.push(PlatformImage {
            manifest,
            parsed,
            config,
            parsed_config,
            layer,
        });
    }
    let mut present = Vec::new();
    let blobs_dir = dir.join("blobs").join("sha256");
    for entry in std::fs::read_dir(&blobs_dir)
        .map_err(|e| format!("cannot read blobs/sha256 of the layout: {e}"))?
    {
        let entry = entry.map_err(|e| format!("cannot read blobs/sha256: {e}"))?;
        present.push(entry.file_name().to_string_lossy().into_owned());
    }
    let extra: Vec<&String> = present.iter().filter(|p| !used.contains(p)).collect();
    if !extra.is_empty() {
        return Err(format!(
            "blobs the image does not reference: {}",
            extra
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut top_level: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the layout: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| !["oci-layout", "index.json", "blobs"].contains(&n.as_str()))
        .collect();
    top_level.sort();
    if !top_level.is_empty() {
        return Err(format!(
            "files that are not part of an OCI layout: {}",
            top_level.join(", ")
        ));
    }
    Ok((
        Image {
            index,
            parsed_index,
            platforms,
        },
        ref_name,
    ))
}

/// The one file of a layer: its path and bytes. Anything but a single regular file is refused.
pub fn layer_file(layer: &[u8]) -> Result<(String, Vec<u8>), String> {
    use std::io::Read;
    let mut archive = tar::Archive::new(layer);
    let mut found = None;
    for entry in archive
        .entries()
        .map_err(|e| format!("the layer is not a tar archive: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("the layer is not a tar archive: {e}"))?;
        if found.is_some() {
            return Err("the layer holds more than one entry".into());
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err("the layer's entry is not a regular file".into());
        }
        let path = entry
            .path()
            .map_err(|e| format!("the layer's entry has no valid path: {e}"))?
            .to_string_lossy()
            .into_owned();
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read the layer's file: {e}"))?;
        found = Some((path, bytes));
    }
    found.ok_or_else(|| "the layer is empty".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(binary: &[u8]) -> ImageInput {
        ImageInput {
            bin: "app".into(),
            version: "1.0.0".into(),
            commit: "a".repeat(40),
            commit_time: 1_767_323_045,
            labels: BTreeMap::from([
                ("org.opencontainers.image.version".into(), "1.0.0".into()),
                ("z".into(), "last".into()),
                ("a".into(), "first".into()),
            ]),
            platforms: vec![
                PlatformInput {
                    os: "linux",
                    architecture: "amd64",
                    variant: None,
                    binary: binary.to_vec(),
                },
                PlatformInput {
                    os: "linux",
                    architecture: "arm64",
                    variant: Some("v8"),
                    binary: b"arm".to_vec(),
                },
            ],
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes() {
        let a = build(&input(b"amd")).unwrap();
        let b = build(&input(b"amd")).unwrap();
        assert_eq!(a.index.bytes, b.index.bytes);
        assert_ne!(
            a.index.digest(),
            build(&input(b"amd!")).unwrap().index.digest()
        );
        let config = String::from_utf8(a.platforms[0].config.bytes.clone()).unwrap();
        assert!(config.find("\"a\":\"first\"").unwrap() < config.find("\"z\":\"last\"").unwrap());
        assert!(config.contains("\"Entrypoint\":[\"/app\"]"), "{config}");
    }

    #[test]
    fn the_layer_holds_exactly_the_binary_owned_by_root_at_the_commit_time() {
        let image = build(&input(b"\x7fELF binary")).unwrap();
        let layer = &image.platforms[0].layer.bytes;
        assert_eq!(
            layer_file(layer).unwrap(),
            ("app".to_string(), b"\x7fELF binary".to_vec())
        );
        let mut archive = tar::Archive::new(layer.as_slice());
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        let h = entry.header();
        assert_eq!(
            (h.uid().unwrap(), h.gid().unwrap(), h.mode().unwrap()),
            (0, 0, 0o755)
        );
        assert_eq!(h.mtime().unwrap(), 1_767_323_045);
        let diff_ids = image.platforms[0].parsed_config.rootfs().diff_ids();
        assert_eq!(diff_ids, &[image.platforms[0].layer.digest()]);
    }

    #[test]
    fn a_written_layout_reads_back_and_refuses_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let image = build(&input(b"amd")).unwrap();
        write(dir.path(), &image, "1.0.0").unwrap();
        let (back, name) = read(dir.path()).unwrap();
        assert_eq!(name, "1.0.0");
        assert_eq!(back.index.bytes, image.index.bytes);
        assert_eq!(back.platforms.len(), 2);

        let layer_hex = image.platforms[0].layer.digest()[7..].to_string();
        let layer_path = dir.path().join("blobs/sha256").join(&layer_hex);
        std::fs::write(&layer_path, b"other").unwrap();
        assert!(read(dir.path()).unwrap_err().contains("holds other bytes"));
        write(dir.path(), &image, "1.0.0").unwrap();
        std::fs::write(dir.path().join("blobs/sha256").join("0".repeat(64)), b"x").unwrap();
        assert!(read(dir.path()).unwrap_err().contains("does not reference"));
    }
}
