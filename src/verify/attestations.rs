//! Checks 3 and 4 (attestation half): the SLSA provenance and the SBOM attestations.
//!
//! An envelope's statement is only read after its signature verified under the policy: an
//! unverified statement fails every content check rather than being trusted.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Checks, Expect, Policy};
use crate::layout::{
    CYCLONEDX_BOM, PAYLOAD_TYPE, PROVENANCE as PROVENANCE_FILE, PROVENANCE_BUNDLE, SLSA_PROVENANCE,
    STATEMENT_TYPE, bundle_of as bundle_name, sbom_attestation as sbom_attestation_name,
};
use crate::signing::dsse::Envelope;
use crate::signing::keybundle;

type Files = BTreeMap<String, Option<Vec<u8>>>;

/// `listed` is what `SHA256SUMS` lists (the provenance's subjects must be exactly its
/// binaries, with those signed digests); `only` limits the SBOM attestations checked to the
/// binaries being verified one at a time.
pub(super) fn check(
    checks: &mut Checks,
    policy: &Policy,
    files: &Files,
    listed: &BTreeMap<String, String>,
    only: Option<&BTreeSet<String>>,
    expect: &Expect,
) {
    let binaries: BTreeMap<&str, &str> = listed
        .iter()
        .filter(|(n, _)| crate::layout::is_binary(n))
        .map(|(n, d)| (n.as_str(), d.as_str()))
        .collect();
    check_provenance(checks, policy, files, &binaries, expect);
    for (binary, digest) in &binaries {
        if only.is_some_and(|only| !only.contains(*binary)) {
            continue;
        }
        check_sbom_attestation(checks, policy, files, binary, digest);
    }
}

/// Reads a `.intoto.jsonl` file's envelopes and verifies each under the policy; on success, the
/// verified statements. One `attestation` check per file (keyless: preceded by the `keyless`
/// checks of the bundle beside it, which must hold the file's one envelope).
fn verified_statements(
    checks: &mut Checks,
    policy: &Policy,
    files: &Files,
    name: &str,
) -> Option<(Vec<Envelope>, Vec<Value>)> {
    let result = (|| {
        let bytes = files
            .get(name)
            .and_then(|b| b.as_deref())
            .ok_or_else(|| format!("{name} is missing"))?;
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
        let mut envelopes = Vec::new();
        let mut statements = Vec::new();
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        if matches!(policy, Policy::Keyless { .. }) && lines.len() > 1 {
            return Err(format!(
                "{} envelopes; a keyless attestation holds one, the one in {}",
                lines.len(),
                bundle_name(name)
            ));
        }
        for (n, line) in lines {
            let envelope: Envelope = serde_json::from_str(line)
                .map_err(|e| format!("line {}: not a DSSE envelope: {e}", n + 1))?;
            let payload = match policy {
                Policy::Key(key) => envelope
                    .verify(key)
                    .map_err(|e| format!("line {}: {e}", n + 1))?,
                Policy::Keyless { .. } => super::keyless::verify_envelope(
                    checks,
                    policy,
                    files,
                    &bundle_name(name),
                    &envelope,
                )?,
            };
            if envelope.payload_type != PAYLOAD_TYPE {
                return Err(format!(
                    "line {}: payloadType is `{}`, expected `{PAYLOAD_TYPE}`",
                    n + 1,
                    envelope.payload_type
                ));
            }
            let statement: Value = serde_json::from_slice(&payload)
                .map_err(|e| format!("line {}: the payload is not JSON: {e}", n + 1))?;
            envelopes.push(envelope);
            statements.push(statement);
        }
        if envelopes.is_empty() {
            return Err("no envelope in the file".into());
        }
        Ok((envelopes, statements))
    })();
    let outcome = result
        .as_ref()
        .map(|(e, _)| format!("{} DSSE envelope(s), signatures verify", e.len()))
        .map_err(Clone::clone);
    checks.add("attestation", name, outcome);
    result.ok()
}

fn statement_types(statement: &Value, predicate_type: &str) -> Result<(), String> {
    if statement["_type"] != STATEMENT_TYPE {
        return Err(format!(
            "_type is {}, expected {STATEMENT_TYPE}",
            statement["_type"]
        ));
    }
    if statement["predicateType"] != predicate_type {
        return Err(format!(
            "predicateType is {}, expected {predicate_type}",
            statement["predicateType"]
        ));
    }
    Ok(())
}

/// The statement's subjects as name → sha256.
fn subjects(statement: &Value) -> Result<BTreeMap<String, String>, String> {
    let list = statement["subject"]
        .as_array()
        .ok_or("the statement has no subject list")?;
    let mut out = BTreeMap::new();
    for s in list {
        let name = s["name"].as_str().ok_or("a subject has no name")?;
        let digest = s["digest"]["sha256"]
            .as_str()
            .ok_or_else(|| format!("subject {name} has no sha256 digest"))?;
        if out.insert(name.to_string(), digest.to_string()).is_some() {
            return Err(format!("subject {name} is listed twice"));
        }
    }
    Ok(out)
}

fn check_provenance(
    checks: &mut Checks,
    policy: &Policy,
    files: &Files,
    binaries: &BTreeMap<&str, &str>,
    expect: &Expect,
) {
    let verified = verified_statements(checks, policy, files, PROVENANCE_FILE);
    let unverified =
        || Err::<String, String>("not checked: the provenance envelope did not verify".into());
    let Some((envelopes, statements)) = verified else {
        checks.add("provenance", "subjects", unverified());
        checks.add("provenance", "source", unverified());
        checks.add("provenance", PROVENANCE_BUNDLE, unverified());
        return;
    };
    let statement = &statements[0];
    let kind = statement_types(statement, SLSA_PROVENANCE);

    let subject_check = kind.clone().and_then(|()| {
        let claimed = subjects(statement)?;
        let mut problems = Vec::new();
        for (name, digest) in binaries {
            match claimed.get(*name) {
                None => problems.push(format!("{name} is not a subject")),
                Some(d) if d != digest => {
                    problems.push(format!("{name}: subject sha256 {d}, file {digest}"))
                }
                Some(_) => {}
            }
        }
        for name in claimed
            .keys()
            .filter(|n| !binaries.contains_key(n.as_str()))
        {
            problems.push(format!(
                "{name} is a subject but not a binary of this release"
            ));
        }
        if problems.is_empty() {
            Ok(format!(
                "SLSA v1 provenance; subjects are exactly the {} binaries",
                binaries.len()
            ))
        } else {
            Err(problems.join("; "))
        }
    });
    checks.add("provenance", "subjects", subject_check);
    checks.add(
        "provenance",
        "source",
        kind.and_then(|()| source(statement, expect)),
    );

    // The bundle must carry the very same, verifying envelope.
    let bundle = (|| {
        let bytes = files
            .get(PROVENANCE_BUNDLE)
            .and_then(|b| b.as_deref())
            .ok_or(format!("{PROVENANCE_BUNDLE} is missing"))?;
        let bundle = keybundle::from_json(std::str::from_utf8(bytes).map_err(|_| "not UTF-8")?)
            .map_err(|e| e.to_string())?;
        // Keyless: the bundle already passed its `keyless` checks, or nothing here ran.
        if let Policy::Key(key) = policy {
            keybundle::verify_dsse(&bundle, key).map_err(|e| e.to_string())?;
        }
        if keybundle::holds_envelope(&bundle, &envelopes[0]) {
            Ok("Sigstore bundle v0.3 holds the same verified envelope".into())
        } else {
            Err(format!(
                "the bundle's envelope is not the one in {PROVENANCE_FILE}"
            ))
        }
    })();
    checks.add("provenance", PROVENANCE_BUNDLE, bundle);
}

/// The provenance names the repository and tag asked for, and a commit.
fn source(statement: &Value, expect: &Expect) -> Result<String, String> {
    let definition = &statement["predicate"]["buildDefinition"];
    let external = &definition["externalParameters"];
    let repo_url = external["repository"]
        .as_str()
        .ok_or("externalParameters.repository is missing")?;
    let tag = external["tag"]
        .as_str()
        .ok_or("externalParameters.tag is missing")?;
    let source = definition["resolvedDependencies"]
        .as_array()
        .and_then(|deps| deps.iter().find(|d| d["digest"]["gitCommit"].is_string()))
        .ok_or("resolvedDependencies has no git commit")?;
    let commit = source["digest"]["gitCommit"].as_str().unwrap_or_default();
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "the git commit `{commit}` is not a 40-hex commit id"
        ));
    }
    let uri = source["uri"].as_str().unwrap_or_default();
    if let Some(repo) = &expect.repository {
        let want = format!("https://github.com/{repo}");
        if repo_url != want || !uri.starts_with(&format!("git+{want}@")) {
            return Err(format!(
                "the provenance names {repo_url} ({uri}), expected {want}"
            ));
        }
    }
    if let Some(want) = &expect.tag {
        if tag != want
            || external["ref"] != format!("refs/tags/{want}")
            || !uri.ends_with(&format!("@refs/tags/{want}"))
        {
            return Err(format!("the provenance is for tag {tag}, expected {want}"));
        }
    }
    Ok(format!("{repo_url} at {tag}, commit {commit}"))
}

fn check_sbom_attestation(
    checks: &mut Checks,
    policy: &Policy,
    files: &Files,
    binary: &str,
    digest: &str,
) {
    let name = sbom_attestation_name(binary);
    let Some((_, statements)) = verified_statements(checks, policy, files, &name) else {
        checks.add(
            "sbom-attest",
            name,
            Err("not checked: the envelope did not verify".into()),
        );
        return;
    };
    let result = statement_types(&statements[0], CYCLONEDX_BOM).and_then(|()| {
        let claimed = subjects(&statements[0])?;
        if claimed.len() != 1 || claimed.get(binary).map(String::as_str) != Some(digest) {
            let list: Vec<String> = claimed.iter().map(|(n, d)| format!("{n} ({d})")).collect();
            return Err(format!(
                "the subject must be {binary} ({digest}) alone, found: {}",
                list.join(", ")
            ));
        }
        let sbom_name = crate::layout::sbom(binary);
        let sbom: Value = files
            .get(&sbom_name)
            .and_then(|b| b.as_deref())
            .and_then(|b| serde_json::from_slice(b).ok())
            .ok_or(format!("{sbom_name} is missing or not JSON"))?;
        if statements[0]["predicate"] != sbom {
            return Err(format!("the attested SBOM differs from {sbom_name}"));
        }
        Ok(format!("binds {sbom_name} to {binary}"))
    });
    checks.add("sbom-attest", name, result);
}
