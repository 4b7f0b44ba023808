//! The release directory's layout, in one place: every file name xrelease writes, the
//! predicate type of each attestation, and which metadata files belong to which listed file.
//!
//! The sign and attest stages write by these names, the verifier accepts exactly these names
//! (nothing matched by pattern), and the publish stage uploads the attestations they define,
//! so writer and checker cannot drift apart.

use std::collections::BTreeMap;

/// Every binary and SBOM (and the installer), in `sha256sum` format.
pub const SUMS: &str = "SHA256SUMS";
/// Base64 signature over `SHA256SUMS` (what `cosign sign-blob` writes).
pub const SUMS_SIGNATURE: &str = "SHA256SUMS.sig";
/// Keyless only: the Fulcio certificate of that signature.
pub const SUMS_CERTIFICATE: &str = "SHA256SUMS.pem";
/// The Sigstore bundle of that signature (key and keyless).
pub const SUMS_BUNDLE: &str = "SHA256SUMS.sigstore.json";
/// Key mode only: the public half of the signing key.
pub const PUBLIC_KEY: &str = "cosign.pub";
/// DSSE envelope of the SLSA provenance; subjects are all binaries.
pub const PROVENANCE: &str = "provenance.intoto.jsonl";
/// The provenance envelope as a Sigstore bundle (key and keyless).
pub const PROVENANCE_BUNDLE: &str = "provenance.sigstore.json";
/// `[image]`: the release's container images by digest, listed in `SHA256SUMS` so the release's
/// signature covers which images belong to it.
pub const IMAGES: &str = crate::image::IMAGES_FILE;
/// `[image]`: the images' OCI layouts, the one directory a release holds (checked against
/// `IMAGES`, never uploaded to the GitHub Release).
pub const OCI_DIR: &str = crate::image::OCI_DIR;
/// The verifying installer, listed in `SHA256SUMS` like the binaries.
pub const INSTALLER: &str = "install.sh";
/// xrelease's own data model between stages. It stays in the directory (a re-run resumes
/// from it) but is never published: nothing signs it.
pub const MANIFEST: &str = crate::manifest::FILE;
/// A rehearsal's record of the requests publishing would send; never published.
pub const PUBLISH_PLAN: &str = "publish-plan.json";
/// in-toto (when configured): the owner-signed layout. Its steps' keys name the links that may
/// sit beside it, `<step>.<first 8 hex of keyid>.link`; no other link belongs to the release.
pub const INTOTO_LAYOUT: &str = crate::intoto::LAYOUT_FILE;

/// The in-toto Statement type of every attestation.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The DSSE payload type of every attestation.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Predicate type of the provenance (what `gh attestation verify` checks by default).
pub const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
/// Predicate type of an SBOM attestation (`gh attestation verify --predicate-type`).
pub const CYCLONEDX_BOM: &str = "https://cyclonedx.org/bom";

/// `<binary>.cdx.json`: the CycloneDX SBOM of a binary.
pub fn sbom(binary: &str) -> String {
    format!("{binary}.cdx.json")
}

/// `<binary>.cdx.intoto.jsonl`: the SBOM attestation of a binary.
pub fn sbom_attestation(binary: &str) -> String {
    format!("{binary}.cdx.intoto.jsonl")
}

/// The Sigstore bundle beside an attestation: `provenance.intoto.jsonl` →
/// `provenance.sigstore.json`, `<binary>.cdx.intoto.jsonl` → `<binary>.cdx.sigstore.json`.
pub fn bundle_of(attestation: &str) -> String {
    let stem = attestation
        .strip_suffix(".intoto.jsonl")
        .unwrap_or(attestation);
    format!("{stem}.sigstore.json")
}

/// A listed file that is one of the binaries (not an SBOM, the installer or `IMAGES`).
pub fn is_binary(listed: &str) -> bool {
    !listed.ends_with(".cdx.json") && listed != INSTALLER && listed != IMAGES
}

/// How the release was signed, as far as its files go; `Unknown` accepts the files of either
/// mode (the checks that run before anything is signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    Key,
    Keyless,
    Unknown,
}

impl Signing {
    fn key(self) -> bool {
        self != Signing::Keyless
    }
    fn keyless(self) -> bool {
        self != Signing::Key
    }
}

/// An attestation of the release: its envelope file, its bundle, its predicate type and, for
/// an SBOM attestation, the one binary it is about (the provenance covers them all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    pub file: String,
    pub bundle: String,
    pub predicate_type: &'static str,
    pub binary: Option<String>,
}

impl Attestation {
    /// Does the release carry the bundle beside this attestation? The provenance always;
    /// an SBOM attestation when keyless (its certificate and log entry live there).
    pub fn has_bundle(&self, signing: Signing) -> bool {
        self.binary.is_none() || signing.keyless()
    }
}

/// The attestations of a release of `binaries`: the provenance, then one per binary.
pub fn attestations<'a>(binaries: impl IntoIterator<Item = &'a str>) -> Vec<Attestation> {
    let mut out = vec![Attestation {
        file: PROVENANCE.into(),
        bundle: PROVENANCE_BUNDLE.into(),
        predicate_type: SLSA_PROVENANCE,
        binary: None,
    }];
    for binary in binaries {
        let file = sbom_attestation(binary);
        out.push(Attestation {
            bundle: bundle_of(&file),
            file,
            predicate_type: CYCLONEDX_BOM,
            binary: Some(binary.to_string()),
        });
    }
    out
}

/// What an unlisted file of the release is, and so which check vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Checksums,
    SumsSignature,
    SumsCertificate,
    SumsBundle,
    PublicKey,
    /// An attestation envelope, or (`bundle: true`) the Sigstore bundle beside it.
    Attestation {
        attestation: Attestation,
        bundle: bool,
    },
    Manifest,
    PublishPlan,
    /// `root.layout`: its signature is `verify --layout-key`'s business.
    InTotoLayout,
    /// A link the layout provides for: `step` signed by the key `keyid` the layout lists for it.
    InTotoLink {
        step: String,
        keyid: String,
        key: serde_json::Value,
    },
}

/// The in-toto files a release with this `root.layout` may hold: the layout itself and one link
/// per step and key the layout lists for that step. A layout that does not parse defines no
/// links (and fails its own `metadata` check).
pub fn intoto_metadata(layout: Option<&crate::intoto::metadata::Layout>) -> BTreeMap<String, Role> {
    let mut out = BTreeMap::new();
    out.insert(INTOTO_LAYOUT.to_string(), Role::InTotoLayout);
    for step in layout.iter().flat_map(|l| &l.steps) {
        for keyid in &step.pubkeys {
            let (Some(short), Some(key)) = (keyid.get(..8), layout.and_then(|l| l.keys.get(keyid)))
            else {
                continue;
            };
            out.insert(
                format!("{}.{short}.link", step.name),
                Role::InTotoLink {
                    step: step.name.clone(),
                    keyid: keyid.clone(),
                    key: key.clone(),
                },
            );
        }
    }
    out
}

/// Exactly the metadata files the layout defines for a release whose `SHA256SUMS` lists
/// `listed`, by name. A file of the directory that is neither listed nor named here does not
/// belong to the release, whatever its name.
pub fn metadata<'a>(
    listed: impl IntoIterator<Item = &'a str>,
    signing: Signing,
) -> BTreeMap<String, Role> {
    let mut out = BTreeMap::new();
    out.insert(SUMS.to_string(), Role::Checksums);
    out.insert(SUMS_SIGNATURE.to_string(), Role::SumsSignature);
    out.insert(SUMS_BUNDLE.to_string(), Role::SumsBundle);
    if signing.keyless() {
        out.insert(SUMS_CERTIFICATE.to_string(), Role::SumsCertificate);
    }
    if signing.key() {
        out.insert(PUBLIC_KEY.to_string(), Role::PublicKey);
    }
    out.insert(MANIFEST.to_string(), Role::Manifest);
    out.insert(PUBLISH_PLAN.to_string(), Role::PublishPlan);
    for attestation in attestations(listed.into_iter().filter(|n| is_binary(n))) {
        if attestation.has_bundle(signing) {
            out.insert(
                attestation.bundle.clone(),
                Role::Attestation {
                    attestation: attestation.clone(),
                    bundle: true,
                },
            );
        }
        out.insert(
            attestation.file.clone(),
            Role::Attestation {
                attestation,
                bundle: false,
            },
        );
    }
    out
}

/// What verifying `binaries` one at a time reads besides them: `SHA256SUMS` and its signature
/// files, the provenance and its bundle, and each binary's SBOM, SBOM attestation and bundle
/// (files of either signing mode; those absent are reported by the checks that need them).
pub fn metadata_for<'a>(binaries: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = [SUMS, SUMS_SIGNATURE, SUMS_CERTIFICATE, SUMS_BUNDLE]
        .map(String::from)
        .to_vec();
    let binaries: Vec<&str> = binaries.into_iter().collect();
    out.extend(binaries.iter().map(|b| sbom(b)));
    for attestation in attestations(binaries) {
        out.push(attestation.file);
        out.push(attestation.bundle);
    }
    out.sort();
    out.dedup();
    out
}

/// Files whose bytes the verifier parses (everything else is only hashed): a hint for reading,
/// never a reason to trust a file.
pub fn is_small(name: &str) -> bool {
    [
        ".json", ".jsonl", ".sig", ".pem", ".pub", ".sh", ".layout", ".link",
    ]
    .iter()
    .any(|s| name.ends_with(s))
        || name == SUMS
        || name == IMAGES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_layout() {
        assert_eq!(sbom("a-1-linux-amd64"), "a-1-linux-amd64.cdx.json");
        assert_eq!(
            bundle_of(&sbom_attestation("a")),
            "a.cdx.sigstore.json".to_string()
        );
        assert_eq!(bundle_of(PROVENANCE), PROVENANCE_BUNDLE);
        assert!(!is_binary("a.cdx.json") && !is_binary(INSTALLER) && is_binary("a.exe"));
    }

    #[test]
    fn metadata_depends_on_what_is_listed_and_how_it_was_signed() {
        let listed = ["a", "a.cdx.json", INSTALLER];
        let key: Vec<String> = metadata(listed, Signing::Key).into_keys().collect();
        assert_eq!(
            key,
            [
                "SHA256SUMS",
                "SHA256SUMS.sig",
                "SHA256SUMS.sigstore.json",
                "a.cdx.intoto.jsonl",
                "cosign.pub",
                "manifest.json",
                "provenance.intoto.jsonl",
                "provenance.sigstore.json",
                "publish-plan.json",
            ]
        );
        let keyless = metadata(listed, Signing::Keyless);
        assert!(keyless.contains_key("a.cdx.sigstore.json"));
        assert!(keyless.contains_key(SUMS_CERTIFICATE));
        assert!(!keyless.contains_key(PUBLIC_KEY));
        // Nothing is defined for a file that is not listed, nor for the installer or an SBOM.
        assert!(!keyless.contains_key("b.cdx.intoto.jsonl"));
        assert!(!keyless.contains_key("install.sh.cdx.intoto.jsonl"));
        assert!(!keyless.contains_key("a.cdx.json.cdx.intoto.jsonl"));
    }
}
