//! The sbom stage: one CycloneDX document per binary, listing exactly the crates linked into it.
//!
//! "Linked" is read from the build itself: the target-side units cargo compiled for that target
//! and package (host-only units — build scripts, proc-macros and what only they use — are left
//! out), reached from the binary's package through normal dependency edges. The document is bound
//! to the binary by its SHA-256 and is byte-for-byte reproducible: the timestamp is the commit
//! time and the serial number is derived from the content.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cargo_metadata::{DependencyKind, Metadata, Package};
use cyclonedx_bom::external_models::date_time::DateTime;
use cyclonedx_bom::external_models::normalized_string::NormalizedString;
use cyclonedx_bom::external_models::spdx::SpdxExpression;
use cyclonedx_bom::external_models::uri::Purl;
use cyclonedx_bom::models::bom::{Bom, SpecVersion, UrnUuid};
use cyclonedx_bom::models::component::{Classification, Component, Components};
use cyclonedx_bom::models::dependency::{Dependencies, Dependency};
use cyclonedx_bom::models::hash::{Hash, HashAlgorithm, HashValue, Hashes};
use cyclonedx_bom::models::license::{License, LicenseChoice, Licenses};
use cyclonedx_bom::models::metadata::Metadata as BomMetadata;
use cyclonedx_bom::models::property::{Properties, Property};
use cyclonedx_bom::models::tool::Tools;
use cyclonedx_bom::validation::Validate;

use crate::error::{Error, Result};
use crate::manifest::{Artifact, BuildRecord, Kind, Manifest};

/// Writes `<binary>.cdx.json` for every binary of the manifest into `dist` and records them.
pub fn run(dist: &Path, metadata: &Metadata, manifest: &mut Manifest) -> Result<()> {
    let lock = Lockfile::read(metadata.workspace_root.as_std_path())?;
    let binaries: Vec<Artifact> = manifest.binaries().cloned().collect();
    for binary in binaries {
        let json = document(metadata, &lock, manifest, &binary)?;
        let name = crate::layout::sbom(&binary.name);
        let path = dist.join(&name);
        std::fs::write(&path, &json).map_err(Error::io("cannot write the SBOM", &path))?;
        // Hashed from the bytes just written: no second read of the file.
        let (sha256, size) = (crate::digest::sha256_bytes(&json), json.len() as u64);
        manifest.upsert(Artifact {
            name,
            kind: Kind::Sbom,
            bin: binary.bin.clone(),
            package: binary.package.clone(),
            target: binary.target.clone(),
            platform: binary.platform.clone(),
            describes: Some(binary.name.clone()),
            sha256,
            size,
        });
    }
    Ok(())
}

/// The CycloneDX 1.5 JSON document for one binary artifact.
pub fn document(
    metadata: &Metadata,
    lock: &Lockfile,
    manifest: &Manifest,
    binary: &Artifact,
) -> Result<Vec<u8>> {
    let missing = |what: &str| {
        Error::Manifest(format!(
            "binary {} has no {what} in the manifest",
            binary.name
        ))
    };
    let package_name = binary
        .package
        .as_deref()
        .ok_or_else(|| missing("package"))?;
    let target = binary.target.as_deref().ok_or_else(|| missing("target"))?;
    let bin = binary.bin.as_deref().ok_or_else(|| missing("bin"))?;
    let package = metadata
        .workspace_packages()
        .into_iter()
        .find(|p| p.name.as_str() == package_name)
        .ok_or_else(|| {
            Error::Manifest(format!(
                "package `{package_name}` is not a member of this workspace"
            ))
        })?;
    let build = manifest
        .builds
        .iter()
        .find(|b| b.target == target && b.packages.iter().any(|p| p == package_name))
        .ok_or_else(|| missing("build record"))?;

    let graph = Graph::new(metadata, build);
    let linked = graph.linked(&package.id.repr);
    let root = metadata.workspace_root.as_std_path();
    let purls: BTreeMap<&str, String> = linked
        .iter()
        .map(|id| (*id, purl(graph.packages[id], root)))
        .collect();

    let mut components: Vec<Component> = linked
        .iter()
        .map(|id| component(graph.packages[id], &purls[id], lock))
        .collect();
    components.sort_by(|a, b| a.bom_ref.cmp(&b.bom_ref));

    let root_ref = binary.name.clone();
    let mut dependencies = vec![Dependency {
        dependency_ref: root_ref.clone(),
        dependencies: graph
            .edges(&package.id.repr, &linked)
            .map(|id| purls[id].clone())
            .collect(),
    }];
    for id in &linked {
        dependencies.push(Dependency {
            dependency_ref: purls[id].clone(),
            dependencies: graph.edges(id, &linked).map(|d| purls[d].clone()).collect(),
        });
    }
    for d in &mut dependencies {
        d.dependencies.sort();
    }
    dependencies.sort_by(|a, b| a.dependency_ref.cmp(&b.dependency_ref));

    let mut subject = Component::new(
        Classification::Application,
        bin,
        &manifest.version,
        Some(root_ref),
    );
    subject.purl = Some(purl(package, root).parse().expect("infallible"));
    subject.description = package.description.as_deref().map(NormalizedString::new);
    subject.licenses = package.license.as_deref().map(licenses);
    subject.hashes = Some(Hashes(vec![Hash {
        alg: HashAlgorithm::SHA_256,
        content: HashValue(binary.sha256.clone()),
    }]));

    let mut tool = Component::new(
        Classification::Application,
        "xrelease",
        env!("CARGO_PKG_VERSION"),
        None,
    );
    tool.purl = Some(
        format!("pkg:cargo/xrelease@{}", env!("CARGO_PKG_VERSION"))
            .parse()
            .expect("infallible"),
    );

    let mut bom = Bom {
        serial_number: None,
        metadata: Some(BomMetadata {
            timestamp: Some(timestamp(manifest.source.commit_time)?),
            tools: Some(Tools::Object {
                services: None,
                components: Some(Components(vec![tool])),
            }),
            component: Some(subject),
            properties: Some(Properties(vec![
                Property::new("xrelease:target", target),
                Property::new("xrelease:artifact", &binary.name),
            ])),
            ..BomMetadata::default()
        }),
        components: Some(Components(components)),
        dependencies: Some(Dependencies(dependencies)),
        ..Bom::default()
    };
    bom.spec_version = SpecVersion::V1_5;

    // The serial number names this exact content: same inputs, same document, same bytes.
    let unsigned = render(bom.clone())?;
    let uuid = uuid::Uuid::new_v5(&SERIAL_NAMESPACE, &unsigned);
    bom.serial_number =
        Some(UrnUuid::new(format!("urn:uuid:{uuid}")).expect("a v5 UUID is a valid URN"));

    let result = bom.validate_version(SpecVersion::V1_5);
    if !result.passed() {
        return Err(Error::Manifest(format!(
            "the SBOM for {} is not valid CycloneDX 1.5: {result:?}",
            binary.name
        )));
    }
    render(bom)
}

/// A fixed namespace for content-derived serial numbers (itself a v5 UUID of "xrelease.sbom").
const SERIAL_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6c1f_3d4e_2b7a_5c80_9d41_07e3_a2b5_c6d8);

fn render(bom: Bom) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    bom.output_as_json_v1_5(&mut out)
        .map_err(|e| Error::Manifest(format!("cannot write the SBOM: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

fn timestamp(epoch: i64) -> Result<DateTime> {
    let text = time::OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .ok_or_else(|| Error::Manifest(format!("commit time {epoch} is not a valid timestamp")))?;
    DateTime::try_from(text).map_err(|e| Error::Manifest(format!("timestamp: {e}")))
}

fn component(package: &Package, purl: &str, lock: &Lockfile) -> Component {
    let mut c = Component::new(
        Classification::Library,
        &package.name,
        &package.version.to_string(),
        Some(purl.to_string()),
    );
    c.purl = Some(purl.parse::<Purl>().expect("infallible"));
    c.description = package.description.as_deref().map(NormalizedString::new);
    c.licenses = package.license.as_deref().map(licenses);
    c.hashes = lock
        .checksum(
            &package.name,
            &package.version.to_string(),
            package.source.as_ref().map(|s| s.repr.as_str()),
        )
        .map(|sum| {
            Hashes(vec![Hash {
                alg: HashAlgorithm::SHA_256,
                content: HashValue(sum.to_string()),
            }])
        });
    c
}

/// Cargo's `MIT/Apache-2.0` becomes the SPDX expression `MIT OR Apache-2.0`; what cannot be
/// read as SPDX is kept as a named license rather than dropped.
fn licenses(text: &str) -> Licenses {
    let choice = match SpdxExpression::parse_lax(text.to_string()) {
        Ok(expression) => LicenseChoice::Expression(expression),
        Err(_) => LicenseChoice::License(License::named_license(text)),
    };
    Licenses(vec![choice])
}

/// `pkg:cargo/name@version`, qualified for sources other than crates.io the way cargo-cyclonedx
/// does: `vcs_url` for git, `repository_url` for other registries, `download_url` for paths.
pub fn purl(package: &Package, workspace_root: &Path) -> String {
    let base = format!("pkg:cargo/{}@{}", package.name, package.version);
    let qualifier = match package.source.as_ref().map(|s| s.repr.as_str()) {
        None => {
            let dir = package
                .manifest_path
                .parent()
                .map(|p| p.as_std_path())
                .unwrap_or(Path::new("."));
            let rel = dir.strip_prefix(workspace_root).unwrap_or(dir);
            let rel = if rel.as_os_str().is_empty() {
                "."
            } else {
                rel.to_str().unwrap_or(".")
            };
            Some(("download_url", format!("file://{rel}")))
        }
        Some(s) if is_crates_io(s) => None,
        Some(s) if s.starts_with("git+") => {
            let (url, commit) = s.split_once('#').unwrap_or((s, ""));
            let url = url.split('?').next().unwrap_or(url);
            Some((
                "vcs_url",
                if commit.is_empty() {
                    url.to_string()
                } else {
                    format!("{url}#{commit}")
                },
            ))
        }
        Some(s) => Some((
            "repository_url",
            s.trim_start_matches("registry+")
                .trim_start_matches("sparse+")
                .to_string(),
        )),
    };
    match qualifier {
        None => base,
        Some((key, value)) => format!("{base}?{key}={}", percent_encode(&value)),
    }
}

fn is_crates_io(source: &str) -> bool {
    source == "registry+https://github.com/rust-lang/crates.io-index"
        || source == "sparse+https://index.crates.io/"
}

/// purl qualifier values: everything but unreserved characters, `:` and `/` is percent-encoded.
fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The resolve graph of one build, indexed by package id.
///
/// `cargo metadata` resolves features for the whole workspace at once, so its edges include
/// optional dependencies that another member's features switched on. An edge counts here only
/// when the features this build actually compiled the package with activate it.
struct Graph<'a> {
    packages: BTreeMap<&'a str, &'a Package>,
    /// id → ids of its normal dependencies active in this build, any platform.
    normal: BTreeMap<&'a str, Vec<&'a str>>,
    /// Target-side package ids this build compiled.
    compiled: BTreeSet<&'a str>,
}

impl<'a> Graph<'a> {
    fn new(metadata: &'a Metadata, build: &'a BuildRecord) -> Graph<'a> {
        let packages: BTreeMap<&str, &Package> = metadata
            .packages
            .iter()
            .map(|p| (p.id.repr.as_str(), p))
            .collect();
        let mut features: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for unit in build.units.iter().filter(|u| !u.host) {
            features
                .entry(unit.package_id.as_str())
                .or_default()
                .extend(unit.features.iter().map(String::as_str));
        }
        let mut normal = BTreeMap::new();
        for node in metadata.resolve.iter().flat_map(|r| &r.nodes) {
            let id = node.id.repr.as_str();
            let (Some(package), Some(enabled)) = (packages.get(id), features.get(id)) else {
                continue;
            };
            let deps = node
                .deps
                .iter()
                .filter(|d| d.dep_kinds.iter().any(|k| k.kind == DependencyKind::Normal))
                .filter(|d| edge_active(package, enabled, &d.name))
                .map(|d| d.pkg.repr.as_str())
                .collect();
            normal.insert(id, deps);
        }
        let compiled = features.keys().copied().collect();
        Graph {
            packages,
            normal,
            compiled,
        }
    }

    /// The crates linked into `package`'s binaries: compiled target-side units reachable from it
    /// through active normal dependencies, the package itself excluded.
    fn linked(&self, package: &'a str) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![package];
        while let Some(id) = todo.pop() {
            for dep in self.normal.get(id).into_iter().flatten() {
                if self.compiled.contains(dep)
                    && self.packages.contains_key(dep)
                    && seen.insert(*dep)
                {
                    todo.push(dep);
                }
            }
        }
        seen.remove(package);
        seen
    }

    fn edges<'s>(
        &'s self,
        id: &str,
        linked: &'s BTreeSet<&'a str>,
    ) -> impl Iterator<Item = &'a str> + 's {
        self.normal
            .get(id)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |d| linked.contains(d))
    }
}

/// Whether `package`, compiled with `enabled` features, uses its dependency whose library is
/// called `extern_name` (cargo's name for the edge: renamed, `-` as `_`).
fn edge_active(package: &Package, enabled: &BTreeSet<&str>, extern_name: &str) -> bool {
    let declared: Vec<&cargo_metadata::Dependency> = package
        .dependencies
        .iter()
        .filter(|d| d.kind == DependencyKind::Normal)
        .filter(|d| d.rename.as_deref().unwrap_or(&d.name).replace('-', "_") == extern_name)
        .collect();
    if declared.is_empty() || declared.iter().any(|d| !d.optional) {
        return true;
    }
    declared.iter().any(|d| {
        let key = d.rename.as_deref().unwrap_or(&d.name);
        // An optional dependency is on when its implicit feature is, or when an enabled feature
        // names it as `dep:key` or `key/feature` (`key?/feature` alone does not switch it on).
        enabled.contains(key)
            || enabled.iter().any(|f| {
                package.features.get(*f).is_some_and(|items| {
                    items
                        .iter()
                        .any(|i| i == &format!("dep:{key}") || i.starts_with(&format!("{key}/")))
                })
            })
    })
}

/// Cargo.lock's checksums: the SHA-256 of each registry crate's `.crate` file.
pub struct Lockfile {
    sums: BTreeMap<(String, String, String), String>,
}

impl Lockfile {
    pub fn read(workspace_root: &Path) -> Result<Lockfile> {
        let path = workspace_root.join("Cargo.lock");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Preflight(format!(
                "cannot read {}: {e}; releases build with --locked, so Cargo.lock must be committed \
                 (run `cargo generate-lockfile`)",
                path.display()
            ))
        })?;
        Lockfile::parse(&text).map_err(|why| Error::Preflight(format!("{}: {why}", path.display())))
    }

    pub fn parse(text: &str) -> std::result::Result<Lockfile, String> {
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(default)]
            package: Vec<RawPackage>,
        }
        #[derive(serde::Deserialize)]
        struct RawPackage {
            name: String,
            version: String,
            source: Option<String>,
            checksum: Option<String>,
        }
        let raw: Raw =
            toml::from_str(text).map_err(|e| format!("not a Cargo.lock: {}", e.message()))?;
        let sums = raw
            .package
            .into_iter()
            .filter_map(|p| Some(((p.name, p.version, p.source?), p.checksum?)))
            .collect();
        Ok(Lockfile { sums })
    }

    fn checksum(&self, name: &str, version: &str, source: Option<&str>) -> Option<&str> {
        let source = source?;
        let key = (name.to_string(), version.to_string(), source.to_string());
        self.sums.get(&key).map(String::as_str).or_else(|| {
            // crates.io's sparse protocol id and its git index id name the same registry.
            is_crates_io(source)
                .then(|| {
                    let alt = (
                        "registry+https://github.com/rust-lang/crates.io-index",
                        "sparse+https://index.crates.io/",
                    );
                    let other = if source == alt.0 { alt.1 } else { alt.0 };
                    self.sums
                        .get(&(name.to_string(), version.to_string(), other.to_string()))
                })
                .flatten()
                .map(String::as_str)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_licenses_become_spdx_expressions() {
        let json = |l: Licenses| format!("{:?}", l.0[0]);
        assert!(json(licenses("MIT/Apache-2.0")).contains("MIT OR Apache-2.0"));
        assert!(json(licenses("MIT OR Apache-2.0")).contains("MIT OR Apache-2.0"));
        assert!(json(licenses("Some Custom Thing")).contains("Some Custom Thing"));
    }

    #[test]
    fn qualifier_values_are_percent_encoded() {
        assert_eq!(
            percent_encode("git+https://github.com/o/r#abc"),
            "git%2Bhttps://github.com/o/r%23abc"
        );
    }

    #[test]
    fn lockfile_checksums_by_name_version_and_source() {
        let lock = Lockfile::parse(
            r#"
version = 4
[[package]]
name = "itoa"
version = "1.0.11"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "49f1f14873335454500d59611f1cf4a4b0f786f9ac11f4312a78e4cf2566695b"

[[package]]
name = "app"
version = "1.0.0"
"#,
        )
        .unwrap();
        let crates_io = "registry+https://github.com/rust-lang/crates.io-index";
        assert_eq!(
            lock.checksum("itoa", "1.0.11", Some(crates_io)),
            Some("49f1f14873335454500d59611f1cf4a4b0f786f9ac11f4312a78e4cf2566695b")
        );
        assert_eq!(
            lock.checksum("itoa", "1.0.11", Some("sparse+https://index.crates.io/"))
                .map(str::len),
            Some(64)
        );
        assert_eq!(lock.checksum("app", "1.0.0", None), None);
    }

    #[test]
    fn timestamps_come_from_the_commit_time() {
        assert_eq!(
            timestamp(1_767_323_045).unwrap().to_string(),
            "2026-01-02T03:04:05Z"
        );
    }
}
