//! The layout `xrelease layout` writes: which keys sign which step, how many builders must
//! agree, and the rules that bind the downloaded directory to what the builders produced.
//!
//! Steps: `tag` (one maintainer), then `build-<platform>` per platform (threshold N of the CI
//! key and the maintainers; materials must be the tag's, products that platform's binaries).
//! The `files` inspection runs where `in-toto-verify` runs, the downloaded release directory:
//! every binary there must be a build product with the same digest, every other file one of the
//! release's metadata kinds, and nothing else may be present (in-toto never hashes files on disk
//! without an inspection, so a changed binary would otherwise pass).

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::config::Config;

use super::keys::Key;
use super::metadata::{Inspection, InspectionType, Layout, LayoutType, Step, StepType, rule};
use super::{INSPECTION, TAG_STEP, build_step};

/// Files a release directory holds besides binaries, by pattern (in-toto's fnmatch): the
/// inspection allows these and nothing else (`install.sh` and the SBOMs are bound by the
/// inspection's check of `SHA256SUMS`). Links are never recorded (in-toto excludes
/// `*.link*` from what it hashes).
pub const METADATA_PATTERNS: &[&str] = &[
    "SHA256SUMS",
    "SHA256SUMS.sig",
    "SHA256SUMS.pem",
    "cosign.pub",
    "manifest.json",
    "publish-plan.json",
    "root.layout",
    crate::layout::INSTALLER,
    "*.cdx.json",
    "*.intoto.jsonl",
    "*.sigstore.json",
];

/// The inspection's command: every file SHA256SUMS lists is what it says, so the SBOMs (which
/// no step produces) are bound too. It exits non-zero on any mismatch or missing file.
pub const INSPECTION_COMMAND: &[&str] =
    &["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"];

/// What the layout is made from.
pub struct Spec<'a> {
    pub maintainers: &'a [Key],
    pub ci: &'a Key,
    pub threshold: u32,
    /// (platform, the pattern its binaries' names match).
    pub platforms: &'a [(String, String)],
    pub expires: OffsetDateTime,
    pub readme: String,
}

/// Each platform with the fnmatch pattern of its binaries' names: the name template with every
/// part but the platform and target a wildcard.
pub fn platform_patterns(config: &Config) -> Vec<(String, String)> {
    config
        .targets
        .iter()
        .map(|t| {
            let pattern = config.name_template.render(&[
                ("bin", "*"),
                ("version", "*"),
                ("platform", &t.platform),
                ("target", &t.triple),
                ("package", "*"),
                ("tag", "*"),
            ]) + t.exe_suffix;
            (t.platform.clone(), pattern)
        })
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the only date form in-toto accepts.
pub fn format_expiry(at: OffsetDateTime) -> String {
    // RFC 3339 of a whole-second UTC time is exactly that form.
    at.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC date formats")
}

pub fn build(spec: &Spec<'_>) -> Layout {
    let mut keys = BTreeMap::new();
    for key in spec.maintainers.iter().chain([spec.ci]) {
        keys.insert(key.keyid().to_owned(), key.to_json());
    }
    let maintainer_ids: Vec<String> = dedup(spec.maintainers.iter().map(|k| k.keyid()));
    let builder_ids =
        dedup(std::iter::once(spec.ci.keyid()).chain(spec.maintainers.iter().map(|k| k.keyid())));

    let mut steps = vec![Step {
        kind: StepType::Step,
        name: TAG_STEP.into(),
        threshold: 1,
        pubkeys: maintainer_ids,
        expected_command: Vec::new(),
        // The tag records the tagged commit's files; it produces nothing.
        expected_materials: vec![rule(&["ALLOW", "*"])],
        expected_products: vec![rule(&["DISALLOW", "*"])],
    }];
    let mut inspection_materials = Vec::new();
    for (platform, pattern) in spec.platforms {
        let step = build_step(platform);
        steps.push(Step {
            kind: StepType::Step,
            name: step.clone(),
            threshold: spec.threshold,
            pubkeys: builder_ids.clone(),
            expected_command: Vec::new(),
            // Built from exactly the tagged files, producing only this platform's binaries.
            expected_materials: vec![
                rule(&["MATCH", "*", "WITH", "MATERIALS", "FROM", TAG_STEP]),
                rule(&["DISALLOW", "*"]),
            ],
            expected_products: vec![rule(&["CREATE", pattern]), rule(&["DISALLOW", "*"])],
        });
        inspection_materials.push(rule(&["MATCH", pattern, "WITH", "PRODUCTS", "FROM", &step]));
    }
    for pattern in METADATA_PATTERNS {
        inspection_materials.push(rule(&["ALLOW", pattern]));
    }
    inspection_materials.push(rule(&["DISALLOW", "*"]));

    Layout {
        kind: LayoutType::Layout,
        expires: format_expiry(spec.expires),
        readme: spec.readme.clone(),
        keys,
        steps,
        inspect: vec![Inspection {
            kind: InspectionType::Inspection,
            name: INSPECTION.into(),
            run: INSPECTION_COMMAND.iter().map(|s| (*s).to_owned()).collect(),
            expected_materials: inspection_materials,
            // The check changes nothing: what is there afterwards is what was there before.
            expected_products: vec![
                rule(&["MATCH", "*", "WITH", "MATERIALS", "FROM", INSPECTION]),
                rule(&["DISALLOW", "*"]),
            ],
        }],
    }
}

fn dedup<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.iter().any(|o| o == id) {
            out.push(id.to_owned());
        }
    }
    out
}
