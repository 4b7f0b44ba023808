//! The attest stage: SLSA v1 provenance over all binaries, and one SBOM attestation per binary,
//! as in-toto Statements signed in DSSE envelopes by the same signer as `SHA256SUMS`.
//!
//! The build type is ours: `BUILD_TYPE` (documented in README.md, "Provenance").

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::digest::sha256_file;
use crate::error::{Error, Result};
use crate::manifest::{Kind, Manifest};
use crate::signing::Signer;
use crate::stage::sign::write;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
pub const CYCLONEDX_BOM: &str = "https://cyclonedx.org/bom";
pub const BUILD_TYPE: &str = "https://github.com/xrelease/xrelease/buildtypes/cargo-release/v1";
pub const LOCAL_BUILDER: &str = "https://github.com/xrelease/xrelease/builders/local";
pub const PROVENANCE_FILE: &str = "provenance.intoto.jsonl";
pub const PROVENANCE_BUNDLE: &str = "provenance.sigstore.json";

/// The SBOM attestation of a binary: `<artifact>.cdx.intoto.jsonl`.
pub fn sbom_attestation_name(binary: &str) -> String {
    format!("{binary}.cdx.intoto.jsonl")
}

/// The Sigstore bundle beside an attestation: `provenance.intoto.jsonl` →
/// `provenance.sigstore.json`, `<artifact>.cdx.intoto.jsonl` → `<artifact>.cdx.sigstore.json`.
pub fn bundle_name(attestation: &str) -> String {
    let stem = attestation
        .strip_suffix(".intoto.jsonl")
        .unwrap_or(attestation);
    format!("{stem}.sigstore.json")
}

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
    let mut statements = vec![(
        PROVENANCE_FILE.to_string(),
        Kind::Provenance,
        None,
        provenance(manifest, inputs)?,
    )];
    for binary in manifest.binaries() {
        let sbom_path = dist.join(crate::stage::sbom::file_name(&binary.name));
        let text =
            std::fs::read(&sbom_path).map_err(Error::io("cannot read the SBOM", &sbom_path))?;
        let sbom: Value = serde_json::from_slice(&text)
            .map_err(|e| Error::Manifest(format!("{}: not JSON: {e}", sbom_path.display())))?;
        let statement = json!({
            "_type": STATEMENT_TYPE,
            "subject": [{ "name": binary.name, "digest": { "sha256": binary.sha256 } }],
            "predicateType": CYCLONEDX_BOM,
            "predicate": sbom,
        });
        statements.push((
            sbom_attestation_name(&binary.name),
            Kind::SbomAttestation,
            Some(binary.name.clone()),
            statement,
        ));
    }

    for (name, kind, describes, statement) in statements {
        let (envelope, bundle) = signer.sign_dsse(PAYLOAD_TYPE, &to_bytes(&statement))?;
        let line = format!(
            "{}\n",
            serde_json::to_string(&envelope).expect("plain data")
        );
        write(
            dist,
            manifest,
            &name,
            kind,
            describes.as_deref(),
            line.as_bytes(),
        )?;
        // The provenance always has its bundle; keyless signatures carry their certificate and
        // log entry in a bundle beside every attestation.
        if kind == Kind::Provenance || signer.is_keyless() {
            let bundle = bundle.to_json().map_err(|e| Error::Sign(e.to_string()))?;
            write(
                dist,
                manifest,
                &bundle_name(&name),
                Kind::Bundle,
                Some(&name),
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
        "predicateType": SLSA_PROVENANCE,
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
