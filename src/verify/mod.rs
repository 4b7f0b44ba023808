//! The verifier: the same code for the release gate and for consumers (`xrelease verify DIR`).
//!
//! It is built from an explicit policy (which key or identity must have signed) and fails
//! closed: a check that cannot be completed is a failed check, and an empty report passes
//! nothing. Every file of the directory is read once: binaries are streamed through the hash,
//! small files (sums, signatures, SBOMs, bundles) are kept from that same read for parsing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::sha256_files;
use crate::layout;
use crate::signing::key::PublicKey;
use crate::signing::keybundle;
use crate::signing::sigstore::Root;

pub use image::verify_image;

mod attestations;
mod complete;
mod image;
mod images;
pub mod keyless;

/// Who must have signed the release.
#[derive(Debug, Clone)]
pub enum Policy {
    /// A cosign-compatible public key (`--key cosign.pub`).
    Key(PublicKey),
    /// Sigstore keyless: a Fulcio certificate for exactly this identity (SAN) and OIDC issuer,
    /// chaining to `root`, with every signature in a transparency log `root` trusts.
    Keyless {
        identity: String,
        issuer: String,
        root: Root,
    },
}

impl Policy {
    /// The policy the release gate verifies with: the same key or identity that signs.
    pub fn of(signer: &crate::signing::Signer) -> Self {
        match signer {
            crate::signing::Signer::Key { key, .. } => Policy::Key(key.public_key()),
            crate::signing::Signer::Keyless(k) => Policy::Keyless {
                identity: k.expected.identity.clone(),
                issuer: k.expected.issuer.clone(),
                root: k.root.clone(),
            },
        }
    }
}

/// What the caller expects the release to be (provenance checks use these).
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub repository: Option<String>,
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The kind of check: stable names scripts can match on.
    pub check: &'static str,
    /// What it was about: a file name, or the directory.
    pub subject: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dir: PathBuf,
    pub passed: usize,
    pub total: usize,
    pub ok: bool,
    pub checks: Vec<Check>,
    /// name → sha256 of every regular file read (for the gate to compare with its manifest).
    #[serde(skip)]
    pub digests: BTreeMap<String, String>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// `[PASS]`/`[FAIL]` lines and the `N/M checks passed` summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = if c.passed { "[PASS]" } else { "[FAIL]" };
            out.push_str(&format!(
                "{mark} {:<10} {}: {}\n",
                c.check, c.subject, c.detail
            ));
        }
        out.push_str(&format!("{}/{} checks passed\n", self.passed, self.total));
        out
    }
}

/// Small files whose bytes the checks parse; everything else is only hashed.
fn keep_bytes(path: &Path) -> bool {
    layout::is_small(&file_name(path))
}

pub(crate) struct Checks(Vec<Check>);

impl Checks {
    fn add(
        &mut self,
        check: &'static str,
        subject: impl Into<String>,
        result: Result<String, String>,
    ) {
        let (passed, detail) = match result {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        self.0.push(Check {
            check,
            subject: subject.into(),
            passed,
            detail,
        });
    }
}

pub fn verify(dir: &Path, policy: &Policy, expect: &Expect) -> Report {
    let (mut checks, files, digests) = read(dir);
    let sums = check_sums(&mut checks, &files, &digests);
    complete::check(&mut checks, &files, &digests, &sums, Some(policy));
    images::check(&mut checks, dir, &files, &sums);
    check_signature(&mut checks, policy, &files);
    check_sboms(&mut checks, &files, &digests, &sums);
    attestations::check(&mut checks, policy, &files, &sums, None, expect);
    finish(dir, checks, digests)
}

/// One file at a time: verifies just the binaries `paths` (their `SHA256SUMS` lines, the
/// signature over `SHA256SUMS`, their provenance subjects, their SBOMs and SBOM attestations)
/// against the release's metadata in `from`, where the rest of the release may be absent.
/// There is no `complete` check: the directory is not the release, only its signed records.
pub fn verify_files(paths: &[PathBuf], from: &Path, policy: &Policy, expect: &Expect) -> Report {
    let mut checks = Checks(Vec::new());
    let mut files: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let mut digests = BTreeMap::new();
    let mut selected = BTreeSet::new();
    let mut read_into =
        |checks: &mut Checks, list: &[PathBuf], keep: &(dyn Fn(&Path) -> bool + Sync)| {
            for hashed in sha256_files(list, keep) {
                match hashed {
                    Ok(h) => {
                        let name = file_name(&h.path);
                        digests.insert(name.clone(), h.sha256);
                        files.insert(name, h.bytes);
                    }
                    Err(e) => checks.add("read", from.display().to_string(), Err(format!("{e}"))),
                }
            }
        };
    // The binaries come from where the user has them; only their metadata from `from`.
    let mut names = Vec::new();
    for path in paths {
        let name = file_name(path);
        if !layout::is_binary(&name) || name.is_empty() {
            checks.add(
                "file",
                name.clone(),
                Err("not a binary of a release: give the downloaded binaries".into()),
            );
            continue;
        }
        selected.insert(layout::sbom(&name));
        selected.insert(name.clone());
        names.push(name);
    }
    let metadata: Vec<PathBuf> = layout::metadata_for(names.iter().map(String::as_str))
        .iter()
        .map(|n| from.join(n))
        .collect();
    // Absent optional files (a key release has no certificate) are simply not read; the checks
    // that need one say it is missing.
    let present: Vec<PathBuf> = metadata.into_iter().filter(|p| p.is_file()).collect();
    read_into(&mut checks, &present, &|_| true);
    read_into(&mut checks, paths, &|_| false);

    let listed = check_sums_of(&mut checks, &files, &digests, Some(&selected));
    for name in selected.iter().filter(|n| layout::is_binary(n)) {
        if !listed.contains_key(name) {
            checks.add(
                "file",
                name.clone(),
                Err(format!(
                    "{name} is not listed in SHA256SUMS: it is not a file of this release"
                )),
            );
        }
    }
    check_signature(&mut checks, policy, &files);
    let scoped: BTreeMap<String, String> = listed
        .iter()
        .filter(|(n, _)| selected.contains(*n))
        .map(|(n, d)| (n.clone(), d.clone()))
        .collect();
    check_sboms(&mut checks, &files, &digests, &scoped);
    attestations::check(
        &mut checks,
        policy,
        &files,
        &listed,
        Some(&selected),
        expect,
    );
    finish(from, checks, digests)
}

/// The checks that need no signature: `SHA256SUMS` against the files (well formed, plain names,
/// every line matching, nothing the layout does not define) and the SBOMs. The sign stage runs these before a
/// keyless signer sends anything to the transparency log.
pub fn verify_unsigned(dir: &Path) -> Report {
    let (mut checks, files, digests) = read(dir);
    let sums = check_sums(&mut checks, &files, &digests);
    complete::check(&mut checks, &files, &digests, &sums, None);
    images::check(&mut checks, dir, &files, &sums);
    check_sboms(&mut checks, &files, &digests, &sums);
    finish(dir, checks, digests)
}

/// A name SHA256SUMS lists that is a binary (not an SBOM, not the `IMAGES` list).
/// `oci/`, the images' layouts: the one directory a release holds (checked by `images`).
fn is_image_dir(dir: &Path, name: &str) -> bool {
    name == layout::OCI_DIR && std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.is_dir())
}

type Read = (
    Checks,
    BTreeMap<String, Option<Vec<u8>>>,
    BTreeMap<String, String>,
);

/// Reads (and hashes) every file of the directory once.
fn read(dir: &Path) -> Read {
    let mut checks = Checks(Vec::new());
    let mut files: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let mut digests = BTreeMap::new();

    match list_dir(dir) {
        Err(why) => checks.add("read", dir.display().to_string(), Err(why)),
        Ok((paths, oddities)) => {
            for odd in oddities.into_iter().filter(|o| !is_image_dir(dir, o)) {
                checks.add(
                    "complete",
                    odd.clone(),
                    Err(format!(
                        "{odd} is not a regular file; a release holds files only"
                    )),
                );
            }
            for hashed in sha256_files(&paths, &keep_bytes) {
                match hashed {
                    Ok(h) => {
                        let name = file_name(&h.path);
                        digests.insert(name.clone(), h.sha256);
                        files.insert(name, h.bytes);
                    }
                    Err(e) => checks.add(
                        "read",
                        dir.display().to_string(),
                        Err(format!("cannot read a file: {e}")),
                    ),
                }
            }
        }
    }

    (checks, files, digests)
}

fn finish(dir: &Path, checks: Checks, digests: BTreeMap<String, String>) -> Report {
    let checks = checks.0;
    let passed = checks.iter().filter(|c| c.passed).count();
    let total = checks.len();
    Report {
        dir: dir.to_path_buf(),
        passed,
        total,
        ok: total > 0 && passed == total,
        checks,
        digests,
    }
}

fn list_dir(dir: &Path) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read the release directory: {e}"))?;
    let mut paths = Vec::new();
    let mut oddities = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read the release directory: {e}"))?;
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        if kind.is_file() {
            paths.push(entry.path());
        } else {
            oddities.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    paths.sort();
    Ok((paths, oddities))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Check 1: every SHA256SUMS line matches its file, names are plain and unique (the `complete`
/// half is [`complete::check`]). Returns the listed name → digest for the SBOM checks.
fn check_sums(
    checks: &mut Checks,
    files: &BTreeMap<String, Option<Vec<u8>>>,
    digests: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    check_sums_of(checks, files, digests, None)
}

/// [`check_sums`], matching only the lines of `only` against files when given (one-file
/// verification: the rest of the release is absent on purpose).
fn check_sums_of(
    checks: &mut Checks,
    files: &BTreeMap<String, Option<Vec<u8>>>,
    digests: &BTreeMap<String, String>,
    only: Option<&BTreeSet<String>>,
) -> BTreeMap<String, String> {
    let Some(Some(text)) = files.get(crate::layout::SUMS) else {
        checks.add(
            "checksums",
            crate::layout::SUMS,
            Err("SHA256SUMS is missing: nothing can be verified".into()),
        );
        return BTreeMap::new();
    };
    let Ok(text) = std::str::from_utf8(text) else {
        checks.add(
            "checksums",
            crate::layout::SUMS,
            Err("SHA256SUMS is not UTF-8 text".into()),
        );
        return BTreeMap::new();
    };
    let mut listed = BTreeMap::new();
    let mut bad_lines = Vec::new();
    let mut bad_names = Vec::new();
    for (n, line) in text.split_terminator('\n').enumerate() {
        let Some((digest, name)) = parse_line(line) else {
            bad_lines.push(format!(
                "line {}: `{}`",
                n + 1,
                line.chars().take(100).collect::<String>()
            ));
            continue;
        };
        if name.contains('/')
            || name.contains('\\')
            || name == "."
            || name == ".."
            || name.contains("..")
            || name.is_empty()
        {
            bad_names.push(format!("`{name}` is not a plain file name"));
            continue;
        }
        if listed
            .insert(name.to_string(), digest.to_string())
            .is_some()
        {
            bad_names.push(format!("`{name}` is listed twice"));
        }
    }
    if !text.is_empty() && !text.ends_with('\n') {
        bad_lines.push("the last line has no newline".into());
    }
    checks.add(
        "checksums",
        crate::layout::SUMS,
        if bad_lines.is_empty() && !listed.is_empty() {
            Ok(format!("{} lines in sha256sum format", listed.len()))
        } else if listed.is_empty() && bad_lines.is_empty() {
            Err("SHA256SUMS lists no file".into())
        } else {
            Err(format!("malformed: {}", bad_lines.join("; ")))
        },
    );
    checks.add(
        "names",
        crate::layout::SUMS,
        if bad_names.is_empty() {
            Ok("plain, unique file names".into())
        } else {
            Err(bad_names.join("; "))
        },
    );
    for (name, expected) in &listed {
        if only.is_some_and(|only| !only.contains(name)) {
            continue;
        }
        let result = match digests.get(name) {
            None => Err(format!("{name} is listed but missing from the release")),
            Some(actual) if actual == expected => Ok(format!("sha256 {expected}")),
            Some(actual) => Err(format!("expected sha256 {expected}, got {actual}")),
        };
        checks.add("checksum", name.clone(), result);
    }
    listed
}

/// `<64 lowercase hex><two spaces><name>`, the only form xrelease writes.
fn parse_line(line: &str) -> Option<(&str, &str)> {
    let (digest, name) = (line.get(..64)?, line.get(64..)?.strip_prefix("  ")?);
    let hex = digest
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    hex.then_some((digest, name))
}

/// Check 2: the signature over SHA256SUMS, both as `.sig` and as a Sigstore bundle.
fn check_signature(
    checks: &mut Checks,
    policy: &Policy,
    files: &BTreeMap<String, Option<Vec<u8>>>,
) {
    let sums = files.get(crate::layout::SUMS).and_then(|b| b.as_deref());
    let key = match policy {
        Policy::Key(key) => key,
        Policy::Keyless { .. } => return keyless::check_signature(checks, policy, files),
    };
    let sig = files.get("SHA256SUMS.sig").and_then(|b| b.as_deref());
    checks.add(
        "signature",
        "SHA256SUMS.sig",
        match (sums, sig) {
            (None, _) => Err("SHA256SUMS is missing, so its signature cannot be checked".into()),
            (_, None) => Err("SHA256SUMS.sig is missing".into()),
            (Some(sums), Some(sig)) => match std::str::from_utf8(sig) {
                Err(_) => Err("the signature is not text (base64 expected)".into()),
                Ok(text) => key
                    .verify_base64(sums, text.trim())
                    .map(|()| format!("ECDSA P-256 signature by key {}", key.hint()))
                    .map_err(|e| e.to_string()),
            },
        },
    );
    let bundle = files
        .get("SHA256SUMS.sigstore.json")
        .and_then(|b| b.as_deref());
    checks.add(
        "signature",
        "SHA256SUMS.sigstore.json",
        match (sums, bundle) {
            (None, _) => Err("SHA256SUMS is missing, so its bundle cannot be checked".into()),
            (_, None) => Err("SHA256SUMS.sigstore.json is missing".into()),
            (Some(sums), Some(bundle)) => std::str::from_utf8(bundle)
                .map_err(|_| "the bundle is not UTF-8 JSON".to_string())
                .and_then(|text| keybundle::from_json(text).map_err(|e| e.to_string()))
                .and_then(|b| keybundle::verify_blob(&b, sums, key).map_err(|e| e.to_string()))
                .map(|()| "Sigstore bundle v0.3: digest and signature match".into()),
        },
    );
}

/// Check 4 (SBOM half): every binary has an SBOM, each parses as CycloneDX 1.5, and its
/// `metadata.component` SHA-256 is the digest of the binary it is named after.
fn check_sboms(
    checks: &mut Checks,
    files: &BTreeMap<String, Option<Vec<u8>>>,
    digests: &BTreeMap<String, String>,
    listed: &BTreeMap<String, String>,
) {
    let binaries: BTreeSet<&String> = listed.keys().filter(|n| layout::is_binary(n)).collect();
    for binary in &binaries {
        let sbom_name = crate::layout::sbom(binary);
        if !files.contains_key(&sbom_name) {
            checks.add("sbom", sbom_name, Err(format!("{binary} has no SBOM")));
        }
    }
    for (name, bytes) in files.iter().filter(|(n, _)| n.ends_with(".cdx.json")) {
        let binary = name.trim_end_matches(".cdx.json");
        let result = bytes
            .as_deref()
            .ok_or_else(|| "not read".to_string())
            .and_then(sbom_subject_digest)
            .and_then(|claimed| match digests.get(binary) {
                None => Err(format!("describes {binary}, which is not in the release")),
                Some(actual) if *actual == claimed => Ok(format!("CycloneDX 1.5, bound to {binary} (sha256 {actual})")),
                Some(actual) => Err(format!(
                    "metadata.component sha256 is {claimed}, but {binary} is {actual}: this SBOM describes other bytes"
                )),
            });
        checks.add("sbom", name.clone(), result);
    }
}

/// Parses an SBOM as CycloneDX 1.5 and returns the SHA-256 its `metadata.component` claims.
fn sbom_subject_digest(bytes: &[u8]) -> Result<String, String> {
    use cyclonedx_bom::models::bom::Bom;
    use cyclonedx_bom::models::hash::HashAlgorithm;
    let bom = Bom::parse_from_json_v1_5(bytes)
        .map_err(|e| format!("not a CycloneDX 1.5 JSON document: {e}"))?;
    let component = bom.metadata.and_then(|m| m.component).ok_or_else(|| {
        "no metadata.component: the SBOM does not say which binary it describes".to_string()
    })?;
    let hashes = component.hashes.map(|h| h.0).unwrap_or_default();
    hashes
        .into_iter()
        .find(|h| h.alg == HashAlgorithm::SHA_256)
        .map(|h| h.content.0.to_ascii_lowercase())
        .ok_or_else(|| {
            "metadata.component has no SHA-256: the SBOM is not bound to a binary".into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_lines_are_strict() {
        let d = "a".repeat(64);
        assert_eq!(parse_line(&format!("{d}  app")), Some((d.as_str(), "app")));
        assert_eq!(parse_line(&format!("{d} app")), None);
        assert_eq!(parse_line(&format!("{d} *app")), None);
        assert_eq!(parse_line(&format!("{}  app", "A".repeat(64))), None);
        assert_eq!(parse_line("abc  app"), None);
    }
}
