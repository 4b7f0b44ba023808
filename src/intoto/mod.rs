//! in-toto: the layout the project owner signs, the `tag` link a maintainer signs, one `build`
//! link per platform from each builder, and the checks that tie the downloaded files to them.
//!
//! Everything written here is what the reference verifier (`in-toto-verify`, Python in-toto
//! 3.x with securesystemslib) reads: classic signed metadata over OLPC canonical JSON, ECDSA
//! P-256 cosign keys with securesystemslib's keyids. xrelease's own verifier ([`verify`]) checks
//! the same layout the same way, so `xrelease verify` and `xrelease publish` need no Python.

pub mod commands;
pub mod config;
pub mod keys;
pub mod layout;
pub mod metadata;
pub mod record;
pub mod stage;
pub mod threshold;
pub mod verify;

/// Where `xrelease layout` writes the owner-signed layout, in the repository.
pub const LAYOUT_PATH: &str = ".in_toto/root.layout";
/// The layout's name in the release directory (where `in-toto-verify --layout` finds it).
pub const LAYOUT_FILE: &str = "root.layout";
/// The step a maintainer's `xrelease tag` records.
pub const TAG_STEP: &str = "tag";
/// The inspection that binds the downloaded directory to the build products.
pub const INSPECTION: &str = "files";

/// The `build` step of one platform (`build-linux-amd64`): a step per platform, because a
/// step's threshold compares whole links and each platform's builder makes different bytes.
pub fn build_step(platform: &str) -> String {
    format!("build-{platform}")
}

/// Whether a real release ends at a verified draft: with `[in-toto] threshold` above 1 the
/// other builders' links come after CI's run, and `xrelease publish` publishes.
pub fn stops_at_draft(config: &crate::config::Config) -> bool {
    config.in_toto.as_ref().is_some_and(|s| s.threshold > 1)
}

/// The release notes' in-toto commands, for a release that ships a layout: they run in the
/// downloaded directory with the owner's public key (published by the project, beside the
/// layout in the repository as `.in_toto/owner.pub`).
pub fn notes_commands(manifest: &crate::manifest::Manifest) -> Vec<String> {
    if manifest.artifact(LAYOUT_FILE).is_none() {
        return Vec::new();
    }
    vec![
        "# in-toto (pip install in-toto): owner.pub is the project owner's key, .in_toto/owner.pub in the repository".into(),
        "in-toto-verify --layout root.layout --verification-keys owner.pub".into(),
    ]
}

/// The in-toto files a release directory may hold besides what SHA256SUMS lists: the layout and
/// links named `<step>.<8 hex>.link`. Links are added after SHA256SUMS is signed (a rebuild
/// uploads its own), so they cannot be listed in it; the layout's signatures cover them instead.
pub fn is_intoto_file(name: &str) -> bool {
    if name == LAYOUT_FILE {
        return true;
    }
    let Some(stem) = name.strip_suffix(".link") else {
        return false;
    };
    let Some((step, id)) = stem.rsplit_once('.') else {
        return false;
    };
    !step.is_empty()
        && step
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && id.len() == 8
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_layout_and_well_named_links_are_intoto_files() {
        assert!(is_intoto_file("root.layout"));
        assert!(is_intoto_file("tag.0123abcd.link"));
        assert!(is_intoto_file("build-linux-amd64.0123abcd.link"));
        assert!(!is_intoto_file("tag.link"));
        assert!(!is_intoto_file("tag.0123ABCD.link"));
        assert!(!is_intoto_file("../x.0123abcd.link"));
        assert!(!is_intoto_file("evil"));
    }
}
