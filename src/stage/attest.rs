//! The attest stage: SLSA v1 provenance over all binaries, and one SBOM attestation per binary,
//! as in-toto Statements signed in DSSE envelopes by the same signer as `SHA256SUMS`.
//!
//! The build type is ours: `BUILD_TYPE` (documented in README.md, "Provenance").

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::digest::sha256_file;
use crate::error::{Error, Result};
use crate::layout;
use crate::manifest::{Kind, Manifest};
use crate::signing::Signer;

// The names and predicate types are the release layout's; re-exported for the stage's callers.
pub use crate::layout::{
    CYCLONEDX_BOM, PAYLOAD_TYPE, PROVENANCE as PROVENANCE_FILE, PROVENANCE_BUNDLE, SLSA_PROVENANCE,
    STATEMENT_TYPE, bundle_of as bundle_name, sbom_attestation as sbom_attestation_name,
};
pub const BUILD_TYPE: &str = "https://github.com/xrelease/xrelease/buildtypes/cargo-release/v1";
pub const LOCAL_BUILDER: &str = "https://github.com/xrelease/xrelease/builders/local";

/// Everything the provenance says about the run, gathered by the caller.
pub struct Inputs<'a> {
    pub repository: &'a str,
    pub workspace_root: &'a Path,
    pub profile: &'a str,
    /// When the release started (RFC 3339).
    pub started_on: String,
    /// The GitHub Actions variables (`GITHUB_*`, `RUNNER_*`), empty outside Actions.
    pub ci: &'a Ci,
}

pub fn run(
    dist: &Path,
    manifest: &mut Manifest,
    signer: &mut Signer,
    inputs: &Inputs<'_>,
) -> Result<()> {
    // Every statement is made before the first is signed: a keyless signature is a public log
    // entry, and one statement that cannot be made must not leave the others logged.
    let mut statements = Vec::new();
    let binaries: Vec<(String, String)> = manifest
        .binaries()
        .map(|b| (b.name.clone(), b.sha256.clone()))
        .collect();
    for attestation in layout::attestations(binaries.iter().map(|(n, _)| n.as_str())) {
        let Some(binary) = &attestation.binary else {
            statements.push((attestation, Kind::Provenance, provenance(manifest, inputs)?));
            continue;
        };
        let sha256 = &binaries
            .iter()
            .find(|(n, _)| n == binary)
            .expect("listed above")
            .1;
        let sbom_path = dist.join(layout::sbom(binary));
        let text =
            std::fs::read(&sbom_path).map_err(Error::io("cannot read the SBOM", &sbom_path))?;
        let sbom: Value = serde_json::from_slice(&text)
            .map_err(|e| Error::Manifest(format!("{}: not JSON: {e}", sbom_path.display())))?;
        let statement = json!({
            "_type": STATEMENT_TYPE,
            "subject": [{ "name": binary, "digest": { "sha256": sha256 } }],
            "predicateType": attestation.predicate_type,
            "predicate": sbom,
        });
        statements.push((attestation, Kind::SbomAttestation, statement));
    }

    let signing = if signer.is_keyless() {
        layout::Signing::Keyless
    } else {
        layout::Signing::Key
    };
    for (attestation, kind, statement) in statements {
        let (envelope, bundle) = signer.sign_dsse(PAYLOAD_TYPE, &to_bytes(&statement))?;
        let line = format!("{envelope}\n");
        let name = &attestation.file;
        manifest.write_file(
            dist,
            name,
            kind,
            attestation.binary.as_deref(),
            line.as_bytes(),
        )?;
        if attestation.has_bundle(signing) {
            manifest.write_file(
                dist,
                &attestation.bundle,
                Kind::Bundle,
                Some(name),
                bundle.as_bytes(),
            )?;
        }
    }
    Ok(())
}

fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(&crate::manifest::sorted(value.clone())).expect("plain data")
}

/// The SLSA v1 provenance statement: subjects are exactly the binaries.
pub fn provenance(manifest: &Manifest, inputs: &Inputs<'_>) -> Result<Value> {
    let subjects: Vec<Value> = manifest
        .binaries()
        .map(|b| json!({ "name": b.name, "digest": { "sha256": b.sha256 } }))
        .collect();
    let lock = inputs.workspace_root.join("Cargo.lock");
    let (lock_sha256, _) = sha256_file(&lock).map_err(Error::io("cannot hash", &lock))?;
    let tag = &manifest.tag;
    let repository = inputs.repository;
    let ci = inputs.ci;

    let mut external = json!({
        "repository": format!("https://github.com/{repository}"),
        "ref": format!("refs/tags/{tag}"),
        "tag": tag,
    });
    let mut internal = json!({
        "targets": manifest.toolchains.keys().collect::<Vec<_>>(),
        "profile": inputs.profile,
        "toolchains": manifest.toolchains,
        "sourceDateEpoch": manifest.source.commit_time,
    });
    if !manifest.glibc.is_empty() {
        // The oldest glibc each linux-gnu binary starts on: what its users' machines need.
        internal["glibc"] = json!(manifest.glibc);
    }
    let (builder, invocation) = match ci.workflow_ref() {
        Some(workflow_ref) => {
            let (path, at) = workflow_ref
                .strip_prefix(&format!(
                    "{}/",
                    ci.get("GITHUB_REPOSITORY").unwrap_or_default()
                ))
                .and_then(|rest| rest.split_once('@'))
                .unwrap_or((workflow_ref, ""));
            external["workflow"] = json!({
                "ref": at,
                "repository": format!("{}/{}", ci.server(), ci.get("GITHUB_REPOSITORY").unwrap_or_default()),
                "path": path,
            });
            internal["github"] = json!({
                "event_name": ci.get("GITHUB_EVENT_NAME"),
                "repository_id": ci.get("GITHUB_REPOSITORY_ID"),
                "repository_owner_id": ci.get("GITHUB_REPOSITORY_OWNER_ID"),
                "runner_environment": ci.get("RUNNER_ENVIRONMENT"),
            });
            let invocation = format!(
                "{}/{}/actions/runs/{}/attempts/{}",
                ci.server(),
                ci.get("GITHUB_REPOSITORY").unwrap_or_default(),
                ci.get("GITHUB_RUN_ID").unwrap_or_default(),
                ci.get("GITHUB_RUN_ATTEMPT").unwrap_or("1"),
            );
            (format!("{}/{workflow_ref}", ci.server()), invocation)
        }
        None => (
            format!("{LOCAL_BUILDER}@v{}", env!("CARGO_PKG_VERSION")),
            format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        ),
    };

    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": layout::SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": internal,
                "resolvedDependencies": [
                    {
                        "uri": format!("git+https://github.com/{repository}@refs/tags/{tag}"),
                        "digest": { "gitCommit": manifest.source.commit },
                    },
                    {
                        "uri": format!("git+https://github.com/{repository}@refs/tags/{tag}#Cargo.lock"),
                        "name": "Cargo.lock",
                        "digest": { "sha256": lock_sha256 },
                    },
                ],
            },
            "runDetails": {
                "builder": { "id": builder, "version": { "xrelease": env!("CARGO_PKG_VERSION") } },
                "metadata": {
                    "invocationId": invocation,
                    "startedOn": inputs.started_on,
                    "finishedOn": now_rfc3339(),
                },
            },
        },
    }))
}

pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond");
    now.format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats")
}

/// The GitHub Actions context: the standard variables of a workflow run.
#[derive(Debug, Clone, Default)]
pub struct Ci {
    vars: BTreeMap<String, String>,
}

impl Ci {
    pub fn from_env() -> Ci {
        Ci::from_vars(std::env::vars())
    }

    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Ci {
        let vars = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("GITHUB_") || k.starts_with("RUNNER_"))
            .collect();
        Ci { vars }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// In GitHub Actions: `OWNER/REPO/.github/workflows/FILE@REF`.
    pub fn workflow_ref(&self) -> Option<&str> {
        (self.get("GITHUB_ACTIONS") == Some("true"))
            .then(|| self.get("GITHUB_WORKFLOW_REF"))
            .flatten()
    }

    pub fn server(&self) -> &str {
        self.get("GITHUB_SERVER_URL")
            .unwrap_or("https://github.com")
    }
}
