//! Check 1, `complete` half: trust nothing unlisted. Every file of the directory is listed in
//! `SHA256SUMS` or is exactly one of the metadata files the release layout defines for what is
//! listed (and then is checked as what it claims to be); anything else fails, whatever its name.
//!
//! The signature and attestation checks vouch for the signing files; the files they do not
//! cover are checked here: `cosign.pub` is the key the caller trusts, `manifest.json` is
//! xrelease's record, `publish-plan.json` is a rehearsal record.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Checks, Policy};
use crate::layout::{self, Role, Signing};
use crate::manifest::Manifest;

type Files = BTreeMap<String, Option<Vec<u8>>>;

/// `policy` is `None` before anything is signed: the files of either signing mode are allowed.
pub(super) fn check(
    checks: &mut Checks,
    files: &Files,
    digests: &BTreeMap<String, String>,
    listed: &BTreeMap<String, String>,
    policy: Option<&Policy>,
) {
    let signing = match policy {
        Some(Policy::Key(_)) => Signing::Key,
        Some(Policy::Keyless { .. }) => Signing::Keyless,
        None => Signing::Unknown,
    };
    let mut metadata = layout::metadata(listed.keys().map(String::as_str), signing);
    if files.contains_key(layout::INTOTO_LAYOUT) {
        let parsed = files
            .get(layout::INTOTO_LAYOUT)
            .and_then(|b| intoto_layout(b.as_deref().unwrap_or_default()).ok());
        metadata.extend(layout::intoto_metadata(parsed.as_ref()));
    }
    let unknown: Vec<&str> = digests
        .keys()
        .filter(|n| !listed.contains_key(*n) && !metadata.contains_key(*n))
        .map(String::as_str)
        .collect();
    checks.add(
        "complete",
        "release",
        if unknown.is_empty() {
            Ok("every file is listed in SHA256SUMS or is metadata the layout defines for it".into())
        } else {
            Err(format!(
                "not listed in SHA256SUMS: {} (a release holds only its listed files and the signatures, \
                 attestations and records the layout defines for them)",
                unknown.join(", ")
            ))
        },
    );
    for (name, role) in &metadata {
        let Some(bytes) = files.get(name) else {
            continue;
        };
        let bytes = bytes.as_deref().unwrap_or_default();
        let result = match role {
            Role::PublicKey => match policy {
                Some(Policy::Key(key)) => public_key(bytes, key),
                _ => continue,
            },
            Role::Manifest => manifest(bytes),
            Role::PublishPlan => publish_plan(bytes),
            Role::InTotoLayout => intoto_layout(bytes).map(|l| {
                format!(
                    "an in-toto layout of {} steps, expiring {} (`--layout-key` verifies it)",
                    l.steps.len(),
                    l.expires
                )
            }),
            Role::InTotoLink { step, keyid, key } => intoto_link(bytes, step, keyid, key),
            // The signature and attestation checks vouch for these.
            _ => continue,
        };
        checks.add("metadata", name.clone(), result);
    }
}

/// `cosign.pub` travels with a key-signed release for convenience only; it must be the key the
/// caller trusts, or someone reading it would trust another key.
fn public_key(bytes: &[u8], trusted: &crate::signing::key::PublicKey) -> Result<String, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not PEM text".to_string())?;
    let key = crate::signing::key::PublicKey::from_pem(text, layout::PUBLIC_KEY)
        .map_err(|e| e.to_string())?;
    if key.to_spki_der() == trusted.to_spki_der() {
        Ok(format!("the trusted key {}", trusted.hint()))
    } else {
        Err(format!(
            "holds key {}, not the trusted key {}",
            key.hint(),
            trusted.hint()
        ))
    }
}

/// xrelease's manifest, never published: it parses as one, of a schema this xrelease knows.
/// (Its digests are the release gate's business: `stage::verify` compares them with the files,
/// and a consumer has no reason to trust an unsigned list.)
fn manifest(bytes: &[u8]) -> Result<String, String> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| format!("not an xrelease manifest: {e}"))?;
    if manifest.schema_version != crate::manifest::SCHEMA_VERSION {
        return Err(format!(
            "manifest schema version {}, this xrelease reads {}",
            manifest.schema_version,
            crate::manifest::SCHEMA_VERSION
        ));
    }
    Ok(format!(
        "xrelease's record of {} ({} artifacts), not published",
        manifest.tag,
        manifest.artifacts.len()
    ))
}

/// A rehearsal's record: a JSON object with the list of requests.
fn publish_plan(bytes: &[u8]) -> Result<String, String> {
    let plan: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a publish plan: {e}"))?;
    match plan["requests"].as_array() {
        Some(requests) => Ok(format!(
            "a rehearsal's record of {} requests",
            requests.len()
        )),
        None => Err("not a publish plan: no `requests` list".into()),
    }
}

/// `root.layout`: in-toto signed metadata holding a layout. Who signed it is checked by
/// `verify --layout-key` against the owner's key; here it only has to be what its name says.
fn intoto_layout(bytes: &[u8]) -> Result<crate::intoto::metadata::Layout, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 JSON".to_string())?;
    crate::intoto::metadata::Metablock::parse(text)?.layout()
}

/// A link the layout provides for: it records the step its name says, and the key its name
/// says (one the layout lists for that step) signed it.
fn intoto_link(bytes: &[u8], step: &str, keyid: &str, key: &Value) -> Result<String, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 JSON".to_string())?;
    let block = crate::intoto::metadata::Metablock::parse(text)?;
    let link = block.link()?;
    if link.name != step {
        return Err(format!(
            "records step `{}`, its name says `{step}`",
            link.name
        ));
    }
    let key = crate::intoto::keys::Key::from_json(keyid, key)?;
    block
        .verify(&key)
        .map_err(|e| format!("step `{step}`: {e}"))?;
    Ok(format!(
        "the `{step}` link, signed by key {}",
        key.short_id()
    ))
}
