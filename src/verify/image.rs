//! `xrelease verify-image REF`: a pushed image against the release's signer. Resolves the tag,
//! checks every platform's single layer, and requires, each verified under the policy: cosign's
//! sign statement and the SLSA provenance on the index (the provenance naming the index and
//! every platform manifest, no more, no less), and on every platform manifest a CycloneDX
//! attestation whose SBOM names exactly the binary in that manifest's layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use super::{Checks, Policy, Report};
use crate::image::layout;
use crate::image::referrers::{
    BUNDLE_TYPE, PREDICATE_ANNOTATION, PROVENANCE_PREDICATE, SBOM_PREDICATE, SIGN_PREDICATE,
};
use crate::image::registry::{Registry, RegistryError};
use crate::signing::keybundle;

/// Err: the registry could not be reached (exit 2); Ok: the report (exit 0 or 3).
pub fn verify_image(reference: &str, policy: &Policy) -> Result<Report, String> {
    let mut checks = Checks(Vec::new());
    let unreachable = |e: RegistryError| match e {
        RegistryError::Unreachable(why) => Err(why),
        RegistryError::Refused(why) => Ok(why),
    };
    let repository = repository_of(reference);
    let registry = match Registry::for_repository(&repository) {
        Ok(r) => r,
        Err(e) => return unreachable(e).map(|why| fail(reference, "resolve", why)),
    };
    // The digest is taken from the bytes served, not from what the registry says they are.
    let (index_bytes, index_digest) = match registry.get(reference) {
        Ok(Some((bytes, _))) => {
            let digest = format!("sha256:{}", crate::digest::sha256_bytes(&bytes));
            if let Some((_, pinned)) = reference.split_once('@')
                && pinned != digest
            {
                return Ok(fail(
                    reference,
                    "resolve",
                    format!("the registry served {digest} for {reference}"),
                ));
            }
            (bytes, digest)
        }
        Ok(None) => {
            return Ok(fail(
                reference,
                "resolve",
                format!("{reference} does not exist"),
            ));
        }
        Err(e) => return unreachable(e).map(|why| fail(reference, "resolve", why)),
    };
    let index: oci_spec::image::ImageIndex = match serde_json::from_slice(&index_bytes) {
        Ok(index) => index,
        Err(e) => {
            return Ok(fail(
                reference,
                "resolve",
                format!("{reference} is not an OCI image index: {e}"),
            ));
        }
    };
    checks.add(
        "resolve",
        reference,
        Ok(format!(
            "{index_digest}, {} platforms",
            index.manifests().len()
        )),
    );

    // Each platform: one layer holding one file; its digest is what the SBOM must name.
    let mut layers: BTreeMap<String, String> = BTreeMap::new();
    for d in index.manifests() {
        let digest = d.digest().to_string();
        let result = platform_layer(&registry, &repository, &digest);
        if let Ok((_, sha)) = &result {
            layers.insert(digest.clone(), sha.clone());
        }
        let result = result.map(|(path, sha)| format!("/{path}, sha256 {sha}"));
        match result {
            Err(Fetch::Unreachable(why)) => return Err(why),
            Err(Fetch::Failed(why)) => checks.add("layer", digest, Err(why)),
            Ok(detail) => checks.add("layer", digest, Ok(detail)),
        }
    }

    let api = match registry.has_referrers_api(&repository, &index_digest) {
        Ok(api) => api,
        Err(RegistryError::Unreachable(why)) => return Err(why),
        Err(RegistryError::Refused(why)) => {
            checks.add("referrers", index_digest.clone(), Err(why));
            false
        }
    };
    let platforms: BTreeSet<String> = index
        .manifests()
        .iter()
        .map(|d| d.digest().to_string())
        .collect();
    let mut expected_subjects = platforms.clone();
    expected_subjects.insert(index_digest.clone());

    let ctx = Ctx {
        registry: &registry,
        repository: &repository,
        policy,
        api,
    };
    let sign = ctx.attested(&mut checks, &index_digest, SIGN_PREDICATE, |st| {
        subject_digests(st)
            .contains(&index_digest)
            .then(|| "cosign signature over the index".to_string())
            .ok_or_else(|| "the sign statement does not name the index".to_string())
    });
    checks.add("signature", index_digest.clone(), sign);
    let provenance = ctx.attested(&mut checks, &index_digest, PROVENANCE_PREDICATE, |st| {
        let named = subject_digests(st);
        if named == expected_subjects {
            Ok(format!(
                "SLSA v1 provenance naming the index and its {} platform manifests",
                platforms.len()
            ))
        } else {
            let missing: Vec<_> = expected_subjects.difference(&named).cloned().collect();
            let extra: Vec<_> = named.difference(&expected_subjects).cloned().collect();
            Err(format!(
                "the provenance's subjects are not the index and its platform manifests: missing {missing:?}, extra {extra:?}"
            ))
        }
    });
    checks.add("provenance", index_digest.clone(), provenance);
    for manifest in &platforms {
        let layer = layers.get(manifest).cloned();
        let sbom = ctx.attested(&mut checks, manifest, SBOM_PREDICATE, |st| {
            if subject_digests(st) != BTreeSet::from([manifest.clone()]) {
                return Err("the SBOM attestation names another subject".into());
            }
            let claimed = sbom_component_sha256(&st["predicate"])?;
            match &layer {
                Some(sha) if *sha == claimed => Ok(format!(
                    "CycloneDX SBOM of the layer's binary (sha256 {sha})"
                )),
                Some(sha) => Err(format!(
                    "the SBOM describes sha256 {claimed}, but the layer holds {sha}"
                )),
                None => Err("the layer could not be read".into()),
            }
        });
        checks.add("sbom", manifest.clone(), sbom);
    }
    Ok(finish(reference, checks))
}

struct Ctx<'a> {
    registry: &'a Registry,
    repository: &'a str,
    policy: &'a Policy,
    api: bool,
}

impl Ctx<'_> {
    /// The referrers of `subject` with `predicate_type`: at least one must be a well-formed
    /// referrer of `subject` whose bundle verifies under the policy and whose statement passes
    /// `check`. Returns that check's detail, or every candidate's reason.
    fn attested(
        &self,
        checks: &mut Checks,
        subject: &str,
        predicate_type: &str,
        check: impl Fn(&Value) -> Result<String, String>,
    ) -> Result<String, String> {
        let listed = self
            .registry
            .referrers(self.repository, subject, self.api)
            .map_err(|e| e.to_string())?;
        let mut reasons = Vec::new();
        for listing in listed
            .iter()
            .filter(|l| l["annotations"][PREDICATE_ANNOTATION] == predicate_type)
        {
            let digest = listing["digest"].as_str().unwrap_or_default();
            match self.statement(checks, subject, digest, predicate_type) {
                Ok(statement) => match check(&statement) {
                    Ok(detail) => return Ok(detail),
                    Err(why) => reasons.push(format!("{digest}: {why}")),
                },
                Err(why) => reasons.push(format!("{digest}: {why}")),
            }
        }
        Err(if reasons.is_empty() {
            format!("no {predicate_type} referrer is attached to {subject}")
        } else {
            reasons.join("; ")
        })
    }

    /// One referrer: its manifest (cosign v3 shape, subject = `subject`), its bundle verified
    /// under the policy, the verified statement of `predicate_type`.
    fn statement(
        &self,
        checks: &mut Checks,
        subject: &str,
        digest: &str,
        predicate_type: &str,
    ) -> Result<Value, String> {
        let (bytes, _) = self
            .registry
            .get(&format!("{}@{digest}", self.repository))
            .map_err(|e| e.to_string())?
            .ok_or("the referrer's manifest is missing")?;
        let m: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("not a manifest: {e}"))?;
        if m["artifactType"] != BUNDLE_TYPE {
            return Err(format!(
                "artifactType is {}, not {BUNDLE_TYPE}",
                m["artifactType"]
            ));
        }
        if m["subject"]["digest"] != subject {
            return Err(format!(
                "its subject is {}, not {subject}",
                m["subject"]["digest"]
            ));
        }
        let layers = m["layers"].as_array().cloned().unwrap_or_default();
        let [layer] = layers.as_slice() else {
            return Err(format!(
                "{} layers; a referrer holds exactly one bundle",
                layers.len()
            ));
        };
        let bundle_digest = layer["digest"].as_str().unwrap_or_default();
        let bundle_bytes = self
            .registry
            .blob(self.repository, bundle_digest)
            .map_err(|e| e.to_string())?;
        let text = std::str::from_utf8(&bundle_bytes).map_err(|_| "the bundle is not UTF-8")?;
        let bundle = keybundle::from_json(text).map_err(|e| e.to_string())?;
        let payload = match self.policy {
            Policy::Key(key) => keybundle::verify_dsse(&bundle, key).map_err(|e| e.to_string())?,
            Policy::Keyless { .. } => {
                let Some(envelope) = keybundle::envelope(&bundle) else {
                    return Err("the bundle holds no DSSE envelope".into());
                };
                let name = format!("referrer {digest}");
                let files = BTreeMap::from([(name.clone(), Some(bundle_bytes.clone()))]);
                super::keyless::verify_envelope(checks, self.policy, &files, &name, &envelope)?
            }
        };
        let statement: Value = serde_json::from_slice(&payload)
            .map_err(|e| format!("the payload is not JSON: {e}"))?;
        if statement["predicateType"] != predicate_type {
            return Err(format!(
                "the signed statement's predicateType is {}, the annotation says {predicate_type}",
                statement["predicateType"]
            ));
        }
        Ok(statement)
    }
}

enum Fetch {
    Unreachable(String),
    Failed(String),
}

impl From<RegistryError> for Fetch {
    fn from(e: RegistryError) -> Fetch {
        match e {
            RegistryError::Unreachable(why) => Fetch::Unreachable(why),
            RegistryError::Refused(why) => Fetch::Failed(why),
        }
    }
}

/// A platform manifest's one layer: the file it holds and that file's SHA-256.
fn platform_layer(
    registry: &Registry,
    repository: &str,
    digest: &str,
) -> Result<(String, String), Fetch> {
    let (bytes, _) = registry
        .get(&format!("{repository}@{digest}"))?
        .ok_or_else(|| Fetch::Failed("the platform manifest is missing".into()))?;
    let manifest: oci_spec::image::ImageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| Fetch::Failed(format!("not an image manifest: {e}")))?;
    let [layer] = manifest.layers().as_slice() else {
        return Err(Fetch::Failed(format!(
            "{} layers; xrelease's images have one",
            manifest.layers().len()
        )));
    };
    let blob = registry.blob(repository, layer.digest().as_ref())?;
    let (path, file) = layout::layer_file(&blob).map_err(Fetch::Failed)?;
    Ok((path, crate::digest::sha256_bytes(&file)))
}

fn subject_digests(statement: &Value) -> BTreeSet<String> {
    statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["digest"]["sha256"].as_str())
        .map(|hex| format!("sha256:{hex}"))
        .collect()
}

fn sbom_component_sha256(sbom: &Value) -> Result<String, String> {
    sbom["metadata"]["component"]["hashes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["alg"] == "SHA-256")
        .and_then(|h| h["content"].as_str())
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| "the SBOM's metadata.component has no SHA-256".into())
}

/// `host/path` of a reference (`host/path:tag`, `host/path@digest`, or both).
fn repository_of(reference: &str) -> String {
    let name = reference.split('@').next().unwrap_or(reference);
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_string(),
        _ => name.to_string(),
    }
}

fn fail(reference: &str, check: &'static str, why: String) -> Report {
    let mut checks = Checks(Vec::new());
    checks.add(check, reference, Err(why));
    finish(reference, checks)
}

fn finish(reference: &str, checks: Checks) -> Report {
    let checks = checks.0;
    let passed = checks.iter().filter(|c| c.passed).count();
    let total = checks.len();
    Report {
        dir: PathBuf::from(reference),
        passed,
        total,
        ok: total > 0 && passed == total,
        checks,
        digests: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_of_references() {
        assert_eq!(
            repository_of("127.0.0.1:5000/o/r:1.0.0"),
            "127.0.0.1:5000/o/r"
        );
        assert_eq!(repository_of("127.0.0.1:5000/o/r"), "127.0.0.1:5000/o/r");
        assert_eq!(repository_of("ghcr.io/o/r:1@sha256:ab"), "ghcr.io/o/r");
    }
}
