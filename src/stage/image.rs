//! The image stage: one multi-arch FROM-scratch image per bin, assembled as an OCI image layout
//! under `dist/<tag>/oci/<bin>/` from the binaries SHA256SUMS lists, plus the `IMAGES` list,
//! which is then added to SHA256SUMS so the signature (next stage) covers which images belong
//! to the release. Nothing leaves the machine here: a real release pushes after the gate.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::image::config::{Image, oci_platform};
use crate::image::registry::{Pushed, Registry, RegistryError};
use crate::image::{self, Entry, IMAGES_FILE, OCI_DIR, layout};
use crate::manifest::{Artifact, ImageRecord, Kind, Manifest};

/// What the images say about their source, gathered by the caller.
pub struct Inputs<'a> {
    pub config: &'a Image,
    /// `OWNER/REPO` on GitHub, when known: the default repository and the `source` label.
    pub repository: Option<&'a str>,
    pub metadata: &'a cargo_metadata::Metadata,
}

/// Runs the stage when `[image]` is configured (a release without it has no images).
pub fn run(ctx: &crate::context::Context, repository: &str, manifest: &mut Manifest) -> Result<()> {
    let Some(config) = &ctx.config.image else {
        return Ok(());
    };
    let inputs = Inputs {
        config,
        repository: Some(repository).filter(|r| !r.is_empty()),
        metadata: &ctx.workspace.metadata,
    };
    assemble(&ctx.dist, manifest, &inputs)
}

/// Builds every image's layout and `IMAGES`, then lists `IMAGES` in SHA256SUMS.
pub fn assemble(dist: &Path, manifest: &mut Manifest, inputs: &Inputs<'_>) -> Result<()> {
    let sums = read_sums(dist)?;
    let bins = image_bins(manifest, inputs.config)?;
    let oci = dist.join(OCI_DIR);
    if oci.exists() {
        std::fs::remove_dir_all(&oci).map_err(Error::io("cannot clear", &oci))?;
    }
    let mut entries = Vec::new();
    let mut records = Vec::new();
    for bin in &bins {
        let mut platforms = Vec::new();
        let mut package = None;
        let mut names = Vec::new();
        for target in &inputs.config.targets {
            let artifact = manifest
                .binaries()
                .find(|a| a.bin.as_deref() == Some(bin) && a.target.as_deref() == Some(&target.triple))
                .ok_or_else(|| {
                    Error::Plan(format!(
                        "the image of `{bin}` needs its {} binary, which this release did not build",
                        target.triple
                    ))
                })?;
            package = artifact.package.clone();
            let binary = released_bytes(dist, artifact, &sums)?;
            let (os, architecture, variant) = oci_platform(target)
                .expect("[image] targets were checked when the config was read");
            names.push(artifact.name.clone());
            platforms.push(layout::PlatformInput {
                os,
                architecture,
                variant,
                binary,
            });
        }
        let input = layout::ImageInput {
            bin: bin.clone(),
            version: manifest.version.clone(),
            commit: manifest.source.commit.clone(),
            commit_time: manifest.source.commit_time,
            labels: labels(manifest, inputs, bin, package.as_deref()),
            platforms,
        };
        let built = layout::build(&input).map_err(Error::Build)?;
        let dir = oci.join(bin);
        layout::write(&dir, &built, &manifest.version)
            .map_err(Error::io("cannot write the OCI layout", &dir))?;
        let repository = inputs
            .config
            .repository_for(inputs.repository, bin, bins.len())
            .ok_or_else(|| {
                Error::Config(
                    "[image]: the release's GitHub repository is unknown, so the image repository \
                     has no default; set `repository` in [image] (e.g. \"ghcr.io/owner/repo\")"
                        .into(),
                )
            })?;
        let entry = Entry {
            bin: bin.clone(),
            repository,
            tag: manifest.version.clone(),
            digest: built.index.digest(),
        };
        records.push(ImageRecord {
            bin: bin.clone(),
            reference: entry.reference(),
            platforms: built
                .platforms
                .iter()
                .zip(&names)
                .map(|(p, name)| (name.clone(), p.manifest.digest()))
                .collect(),
        });
        entries.push(entry);
    }
    let text = image::format(&entries);
    manifest.write_file(dist, IMAGES_FILE, Kind::Images, None, text.as_bytes())?;
    manifest.images = records;
    // SHA256SUMS again, now with IMAGES: the signature over it covers the images.
    crate::stage::checksums::run(dist, manifest)
}

/// The bins that get an image: the configured ones (each must be released), else every one.
fn image_bins(manifest: &Manifest, config: &Image) -> Result<Vec<String>> {
    let released: std::collections::BTreeSet<String> =
        manifest.binaries().filter_map(|a| a.bin.clone()).collect();
    if config.bins.is_empty() {
        return Ok(released.into_iter().collect());
    }
    let mut bins = Vec::new();
    for bin in &config.bins {
        if !released.contains(bin) {
            return Err(Error::Config(format!(
                "[image] bins: `{bin}` is not a bin this release builds; released: {}",
                released.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if !bins.contains(bin) {
            bins.push(bin.clone());
        }
    }
    bins.sort();
    Ok(bins)
}

/// `linux/amd64`, `linux/arm64/v8`: the form `docker --platform` takes.
pub fn platform_name(os: &str, architecture: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{os}/{architecture}/{v}"),
        None => format!("{os}/{architecture}"),
    }
}

fn read_sums(dist: &Path) -> Result<BTreeMap<String, String>> {
    let path = dist.join(crate::stage::checksums::FILE);
    let text = std::fs::read_to_string(&path).map_err(Error::io("cannot read", &path))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(digest, name)| (name.to_string(), digest.to_string()))
        .collect())
}

/// The binary's bytes, which must be exactly what SHA256SUMS and the manifest list.
fn released_bytes(
    dist: &Path,
    artifact: &Artifact,
    sums: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let path = dist.join(&artifact.name);
    let bytes = std::fs::read(&path).map_err(Error::io("cannot read the binary", &path))?;
    let actual = crate::digest::sha256_bytes(&bytes);
    match sums.get(&artifact.name) {
        Some(listed) if *listed == actual && *listed == artifact.sha256 => Ok(bytes),
        listed => Err(Error::Manifest(format!(
            "{} is sha256 {actual}, but SHA256SUMS lists {} and the manifest {}: \
             an image must hold exactly the released bytes",
            path.display(),
            listed.map_or("nothing", |s| s.as_str()),
            artifact.sha256
        ))),
    }
}

/// The configured labels, then xrelease's `org.opencontainers.image.*` ones (which win: they
/// state facts about the build, not preferences).
fn labels(
    manifest: &Manifest,
    inputs: &Inputs<'_>,
    bin: &str,
    package: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = inputs.config.labels.clone();
    let mut set = |key: &str, value: String| {
        labels.insert(format!("org.opencontainers.image.{key}"), value);
    };
    if let Some(repo) = inputs.repository {
        set("source", format!("https://github.com/{repo}"));
    }
    set("revision", manifest.source.commit.clone());
    set("version", manifest.version.clone());
    set("created", layout::rfc3339(manifest.source.commit_time));
    set("title", bin.to_string());
    let license = package.and_then(|name| {
        inputs
            .metadata
            .packages
            .iter()
            .find(|p| p.name.as_str() == name)
            .and_then(|p| p.license.clone())
    });
    if let Some(license) = license {
        set("licenses", license);
    }
    labels
}

/// After the gate, before the GitHub Release: pushes every image `IMAGES` lists, exactly the
/// verified layouts, tagged with the version. An existing tag at another digest stops the
/// release (nothing is published); one at the same digest is kept, so a re-run sends nothing.
pub fn push(
    verified: &crate::stage::verify::Verified,
    signer: &mut crate::signing::Signer,
    ui: &crate::ui::Ui,
) -> Result<()> {
    let dist = verified.dist();
    let path = dist.join(IMAGES_FILE);
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).map_err(Error::io("cannot read", &path))?;
    let entries = image::parse(&text).map_err(Error::Manifest)?;
    for entry in &entries {
        let (built, _) = layout::read(&dist.join(OCI_DIR).join(&entry.bin))
            .map_err(|why| Error::Manifest(format!("oci/{}: {why}", entry.bin)))?;
        if built.index.digest() != entry.digest {
            return Err(Error::Verification(format!(
                "oci/{} is {}, IMAGES lists {}",
                entry.bin,
                built.index.digest(),
                entry.digest
            )));
        }
        let registry = Registry::for_repository(&entry.repository).map_err(publish_error)?;
        let pushed = registry
            .push_image(&entry.repository, &entry.tag, &built)
            .map_err(publish_error)?;
        ui.info(match pushed {
            Pushed::Created => format!("pushed {}", entry.reference()),
            Pushed::Kept => format!("{} is already in the registry: kept", entry.reference()),
        });
        let record = verified
            .manifest()
            .images
            .iter()
            .find(|r| r.bin == entry.bin)
            .ok_or_else(|| {
                Error::Manifest(format!("the manifest records no image of {}", entry.bin))
            })?;
        attach(&registry, entry, &built, record, dist, signer, ui)?;
    }
    Ok(())
}

/// Signs and attaches the image's referrers (cosign v3 layout) unless a previous run did: the
/// sign statement and the provenance on the index, an SBOM attestation on each platform manifest.
fn attach(
    registry: &Registry,
    entry: &Entry,
    built: &layout::Image,
    record: &crate::manifest::ImageRecord,
    dist: &Path,
    signer: &mut crate::signing::Signer,
    ui: &crate::ui::Ui,
) -> Result<()> {
    use crate::image::referrers::{self, PREDICATE_ANNOTATION};
    let repo = &entry.repository;
    let api = registry
        .has_referrers_api(repo, &entry.digest)
        .map_err(publish_error)?;
    let predicates = |subject: &str| -> Result<Vec<String>> {
        Ok(registry
            .referrers(repo, subject, api)
            .map_err(publish_error)?
            .iter()
            .filter_map(|m| {
                m["annotations"][PREDICATE_ANNOTATION]
                    .as_str()
                    .map(String::from)
            })
            .collect())
    };
    let on_index = predicates(&entry.digest)?;
    let mut complete = [referrers::SIGN_PREDICATE, referrers::PROVENANCE_PREDICATE]
        .iter()
        .all(|p| on_index.iter().any(|have| have == p));
    for p in &built.platforms {
        complete = complete
            && predicates(&p.manifest.digest())?
                .iter()
                .any(|have| have == referrers::SBOM_PREDICATE);
    }
    if complete {
        ui.info(format!(
            "{}: signature and attestations already attached",
            entry.reference()
        ));
        return Ok(());
    }
    let provenance = provenance_predicate(dist)?;
    let mut sboms = Vec::new();
    for p in &built.platforms {
        let digest = p.manifest.digest();
        let binary = record
            .platforms
            .iter()
            .find(|(_, d)| **d == digest)
            .map(|(name, _)| name)
            .ok_or_else(|| Error::Manifest(format!("the manifest names no binary for {digest}")))?;
        let path = dist.join(crate::layout::sbom(binary));
        let text = std::fs::read(&path).map_err(Error::io("cannot read the SBOM", &path))?;
        sboms.push(
            serde_json::from_slice(&text)
                .map_err(|e| Error::Manifest(format!("{}: not JSON: {e}", path.display())))?,
        );
    }
    // Every statement is signed before the first is sent: one that cannot be signed must not
    // leave the others attached.
    let mut signed = Vec::new();
    for st in referrers::statements(repo, built, &provenance, &sboms) {
        let payload = layout::canonical_json(&st.statement);
        let (_, bundle) = signer.sign_dsse("application/vnd.in-toto+json", &payload)?;
        signed.push((
            st.subject.digest().to_string(),
            referrers::referrer(&st.subject, bundle.as_bytes(), st.predicate_type),
        ));
    }
    for (subject, referrer) in &signed {
        registry
            .push_referrer(repo, subject, referrer, api)
            .map_err(publish_error)?;
    }
    ui.info(format!(
        "{}: {} referrers attached{}",
        entry.reference(),
        signed.len(),
        if api {
            ""
        } else {
            " (and the fallback sha256-<hex> index)"
        }
    ));
    Ok(())
}

/// The release's verified SLSA provenance predicate, re-stated for the images.
fn provenance_predicate(dist: &Path) -> Result<serde_json::Value> {
    use base64::Engine as _;
    let path = dist.join(crate::stage::attest::PROVENANCE_FILE);
    let text = std::fs::read_to_string(&path).map_err(Error::io("cannot read", &path))?;
    let bad = |why: String| Error::Manifest(format!("{}: {why}", path.display()));
    let envelope: serde_json::Value = serde_json::from_str(text.lines().next().unwrap_or(""))
        .map_err(|e| bad(format!("not a DSSE envelope: {e}")))?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap_or(""))
        .map_err(|e| bad(format!("payload is not base64: {e}")))?;
    let statement: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|e| bad(format!("payload is not JSON: {e}")))?;
    Ok(statement["predicate"].clone())
}

fn publish_error(e: RegistryError) -> Error {
    Error::Publish(format!(
        "{e}\nNo GitHub Release was created; fix this and re-run: images already pushed are kept"
    ))
}
