//! `dist/<tag>/manifest.json`: the one versioned data model between stages and between CI jobs.
//!
//! Written with sorted keys and sorted artifacts so the same release gives the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Bump when a field changes meaning or is removed; readers refuse versions they don't know.
pub const SCHEMA_VERSION: u32 = 1;
pub const FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema_version: u32,
    pub tag: String,
    pub version: String,
    pub prerelease: bool,
    pub source: Source,
    /// Per target triple: the toolchain that built it.
    pub toolchains: BTreeMap<String, ToolchainInfo>,
    pub artifacts: Vec<Artifact>,
    /// One record per `cargo build` call: what it compiled (the SBOM stage reads these).
    pub builds: Vec<BuildRecord>,
    /// Stage name → wall milliseconds of its last run.
    pub timings: BTreeMap<String, u64>,
    /// Binary name → its glibc floor (the highest `GLIBC_x.y` it needs); linux-gnu binaries only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub glibc: BTreeMap<String, crate::config::GlibcVersion>,
    /// The release's container images (`[image]`), as `IMAGES` lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageRecord>,
}

/// One container image of the release (a real release pushes it before publishing, so a
/// published manifest's images are in their registry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    pub bin: String,
    /// `repository:tag@sha256:<index digest>`.
    pub reference: String,
    /// Binary artifact name → digest of the platform manifest whose layer holds it.
    pub platforms: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub repository: Option<String>,
    pub commit: String,
    /// The commit time: `SOURCE_DATE_EPOCH` for the builds and every timestamp written.
    pub commit_time: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolchainInfo {
    pub rustc: String,
    pub cargo: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Binary,
    Sbom,
    Checksums,
    Signature,
    Certificate,
    Bundle,
    Provenance,
    SbomAttestation,
    PublicKey,
    /// in-toto (src/intoto): the owner-signed `root.layout`.
    InTotoLayout,
    /// in-toto: a signed `<step>.<keyid>.link`.
    InTotoLink,
    /// `IMAGES`: the release's container images (src/image/).
    Images,
    /// `install.sh`: the verifying installer (src/stage/installer.rs), listed in `SHA256SUMS`.
    Installer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub name: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// For derived files (SBOMs, attestations, signatures): the artifact they are about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub describes: Option<String>,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRecord {
    pub target: String,
    /// The packages this cargo call built (`-p` each); one unless `precise-builds = false`.
    pub packages: Vec<String>,
    pub units: Vec<Unit>,
}

/// One `compiler-artifact` message of a build, reduced to what the SBOM needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    pub package_id: String,
    pub target_name: String,
    pub target_kind: Vec<String>,
    pub crate_types: Vec<String>,
    pub features: Vec<String>,
    /// Compiled for the build machine (build scripts, proc-macros and what only they use):
    /// never linked into the shipped binary.
    pub host: bool,
}

impl Manifest {
    pub fn path(dist: &Path) -> PathBuf {
        dist.join(FILE)
    }

    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.name == name)
    }

    pub fn binaries(&self) -> impl Iterator<Item = &Artifact> {
        self.artifacts.iter().filter(|a| a.kind == Kind::Binary)
    }

    /// Adds or replaces (by name) an artifact, keeping the list sorted by name.
    pub fn upsert(&mut self, artifact: Artifact) {
        self.artifacts.retain(|a| a.name != artifact.name);
        self.artifacts.push(artifact);
        self.artifacts.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Writes a file of the release into `dist` and records it, hashed from the bytes written.
    pub fn write_file(
        &mut self,
        dist: &Path,
        name: &str,
        kind: Kind,
        describes: Option<&str>,
        bytes: &[u8],
    ) -> Result<()> {
        let path = dist.join(name);
        std::fs::write(&path, bytes).map_err(Error::io("cannot write", &path))?;
        self.upsert(Artifact {
            name: name.to_string(),
            kind,
            bin: None,
            package: None,
            target: None,
            platform: None,
            describes: describes.map(str::to_string),
            sha256: crate::digest::sha256_bytes(bytes),
            size: bytes.len() as u64,
        });
        Ok(())
    }

    pub fn to_json(&self) -> String {
        let value = serde_json::to_value(self).expect("the manifest is plain data");
        let mut text = serde_json::to_string_pretty(&sorted(value)).expect("plain data serialises");
        text.push('\n');
        text
    }

    pub fn write(&self, dist: &Path) -> Result<()> {
        let path = Manifest::path(dist);
        std::fs::write(&path, self.to_json()).map_err(Error::io("cannot write the manifest", &path))
    }

    pub fn read(dist: &Path) -> Result<Manifest> {
        let path = Manifest::path(dist);
        let text =
            std::fs::read_to_string(&path).map_err(Error::io("cannot read the manifest", &path))?;
        Manifest::parse(&text).map_err(|why| Error::Manifest(format!("{}: {why}", path.display())))
    }

    pub fn parse(text: &str) -> std::result::Result<Manifest, String> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let v: Version = serde_json::from_str(text).map_err(|e| format!("not a manifest: {e}"))?;
        if v.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "schema version {} is not the one this xrelease reads ({SCHEMA_VERSION}); \
                 use the xrelease version that wrote it",
                v.schema_version
            ));
        }
        serde_json::from_str(text).map_err(|e| format!("invalid manifest: {e}"))
    }
}

/// Sorts object keys at every level, whatever map type serde_json was built with.
pub fn sorted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> Manifest {
        Manifest {
            schema_version: SCHEMA_VERSION,
            tag: "v1.0.0".into(),
            version: "1.0.0".into(),
            prerelease: false,
            source: Source {
                repository: Some("o/r".into()),
                commit: "a".repeat(40),
                commit_time: 1_700_000_000,
            },
            toolchains: BTreeMap::from([(
                "x86_64-unknown-linux-gnu".into(),
                ToolchainInfo {
                    rustc: "rustc 1.95.0".into(),
                    cargo: "cargo 1.95.0".into(),
                },
            )]),
            artifacts: vec![Artifact {
                name: "app-1.0.0-linux-amd64".into(),
                kind: Kind::Binary,
                bin: Some("app".into()),
                package: Some("app".into()),
                target: Some("x86_64-unknown-linux-gnu".into()),
                platform: Some("linux-amd64".into()),
                describes: None,
                sha256: "0".repeat(64),
                size: 42,
            }],
            builds: vec![BuildRecord {
                target: "x86_64-unknown-linux-gnu".into(),
                packages: vec!["app".into()],
                units: vec![Unit {
                    package_id: "registry+https://github.com/rust-lang/crates.io-index#itoa@1.0.11"
                        .into(),
                    target_name: "itoa".into(),
                    target_kind: vec!["lib".into()],
                    crate_types: vec!["lib".into()],
                    features: vec![],
                    host: false,
                }],
            }],
            timings: BTreeMap::from([("build".into(), 1234)]),
            glibc: BTreeMap::new(),
            images: vec![],
        }
    }

    /// Pins the schema: a change here is a change of the contract with CI jobs and older runs.
    #[test]
    fn schema_is_pinned() {
        let json = sample().to_json();
        let expected = r#"{
  "artifacts": [
    {
      "bin": "app",
      "kind": "binary",
      "name": "app-1.0.0-linux-amd64",
      "package": "app",
      "platform": "linux-amd64",
      "sha256": "0000000000000000000000000000000000000000000000000000000000000000",
      "size": 42,
      "target": "x86_64-unknown-linux-gnu"
    }
  ],
  "builds": [
    {
      "packages": [
        "app"
      ],
      "target": "x86_64-unknown-linux-gnu",
      "units": [
        {
          "crate_types": [
            "lib"
          ],
          "features": [],
          "host": false,
          "package_id": "registry+https://github.com/rust-lang/crates.io-index#itoa@1.0.11",
          "target_kind": [
            "lib"
          ],
          "target_name": "itoa"
        }
      ]
    }
  ],
  "prerelease": false,
  "schema_version": 1,
  "source": {
    "commit": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "commit_time": 1700000000,
    "repository": "o/r"
  },
  "tag": "v1.0.0",
  "timings": {
    "build": 1234
  },
  "toolchains": {
    "x86_64-unknown-linux-gnu": {
      "cargo": "cargo 1.95.0",
      "rustc": "rustc 1.95.0"
    }
  },
  "version": "1.0.0"
}
"#;
        assert_eq!(json, expected);
        assert_eq!(Manifest::parse(&json).unwrap(), sample());
    }

    #[test]
    fn other_schema_versions_are_refused() {
        let json = sample()
            .to_json()
            .replace("\"schema_version\": 1", "\"schema_version\": 99");
        assert!(
            Manifest::parse(&json)
                .unwrap_err()
                .contains("schema version 99")
        );
    }
}
