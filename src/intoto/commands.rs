//! The maintainers' in-toto commands: `xrelease layout` (the owner signs the layout, once and on
//! every rotation) and `xrelease tag` (a maintainer tags and signs the `tag` link).

use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::signing::key::PrivateKey;

use super::config::InToto;
use super::keys::Key;
use super::layout::{self, Spec};
use super::metadata::Metablock;
use super::record;

/// Written beside the layout by `xrelease layout`.
pub const OWNER_KEY_FILE: &str = "owner.pub";

/// The `[in-toto]` section, or a config error saying how to add it.
pub fn section(config: &Config) -> Result<&InToto> {
    config.in_toto.as_ref().ok_or_else(|| {
        Error::Config(
            "release.toml has no `[in-toto]` section: add one naming `maintainers` (public key files) and \
             `ci-key` (the CI functionary's public key)"
                .into(),
        )
    })
}

/// A cosign private key, unlocked with `COSIGN_PASSWORD` (or a prompt on a terminal).
pub fn private_key(path: &Path) -> Result<PrivateKey> {
    if !path.is_file() {
        return Err(Error::Preflight(format!(
            "key {} not found: create one with `xrelease keygen` (or `cosign generate-key-pair`)",
            path.display()
        )));
    }
    let password = crate::signing::password(false)?;
    PrivateKey::read_encrypted(path, &password).map_err(|e| Error::Preflight(e.to_string()))
}

fn public_key(path: &Path, what: &str) -> Result<Key> {
    Key::read(path).map_err(|e| Error::Config(format!("in-toto {what}: {e}")))
}

/// The maintainers' keys and the CI key, as the layout lists them.
pub fn keys(section: &InToto) -> Result<(Vec<Key>, Key)> {
    let maintainers = section
        .maintainers
        .iter()
        .map(|p| public_key(p, "maintainer key"))
        .collect::<Result<Vec<_>>>()?;
    Ok((maintainers, public_key(&section.ci_key, "ci-key")?))
}

/// Writes `output` (`.in_toto/root.layout`) signed by `owner_key`; returns the owner's keyid.
pub fn write_layout(config: &Config, owner_key: &Path, output: &Path) -> Result<String> {
    let section = section(config)?;
    let (maintainers, ci) = keys(section)?;
    let owner = private_key(owner_key)?;
    let platforms = layout::platform_patterns(config);
    let expires =
        time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(section.expires_days));
    let readme = format!(
        "xrelease release layout{}: a maintainer tags (step `tag`); {} of the CI key and the maintainers \
         build each platform from exactly the tagged files with identical results (steps `build-*`); \
         the downloaded directory holds those binaries and the release's metadata files, nothing else \
         (inspection `files`).",
        config
            .github_repository
            .as_deref()
            .map(|r| format!(" for {r}"))
            .unwrap_or_default(),
        section.threshold
    );
    let layout = layout::build(&Spec {
        maintainers: &maintainers,
        ci: &ci,
        threshold: section.threshold,
        platforms: &platforms,
        expires,
        readme,
    });
    let block = Metablock::sign(&layout, &owner).map_err(|e| Error::Sign(e.to_string()))?;
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
    }
    std::fs::write(output, block.to_json()).map_err(Error::io("cannot write", output))?;
    // The owner's public key beside it: the generated workflow's publish job checks the layout
    // with it (users take the owner key from where the project publishes its maintainers' keys).
    let owner_pub = output.with_file_name(OWNER_KEY_FILE);
    std::fs::write(&owner_pub, owner.public_key().to_pem())
        .map_err(Error::io("cannot write", &owner_pub))?;
    Ok(Key::new(owner.public_key()).keyid().to_owned())
}

/// Creates the annotated tag `tag` at HEAD carrying the `tag` link signed by `key`, which must
/// be one of the layout's maintainers. Returns the link's file name.
pub fn tag(repo: &Path, config: &Config, tag: &str, key: &Path) -> Result<String> {
    let section = section(config)?;
    let (maintainers, _) = keys(section)?;
    let sh = crate::shell::Shell::new(repo)?;
    let git = crate::git::Git::new(&sh);
    if git.tag_commit(tag).is_some() {
        return Err(Error::Tag(format!(
            "tag {tag} already exists: tags are not moved; cut a new version"
        )));
    }
    let dirty = git.dirty_files()?;
    if !dirty.is_empty() {
        return Err(Error::Preflight(format!(
            "the working tree has uncommitted changes ({}): the tag records the committed files, commit first",
            dirty.join(", ")
        )));
    }
    let private = private_key(key)?;
    let signer = Key::new(private.public_key());
    if !maintainers.contains(&signer) {
        return Err(Error::Config(format!(
            "{} (keyid {}) is not one of `[in-toto] maintainers`: only a maintainer's key may sign the `tag` step",
            key.display(),
            signer.keyid()
        )));
    }
    let commit = git.head()?;
    let link = record::tag_link(repo, &commit, tag)?;
    let block = Metablock::sign(&link, &private).map_err(|e| Error::Sign(e.to_string()))?;
    let message = record::tag_message(tag, &block);
    let mut cmd = sh.cmd("git").args([
        "tag",
        "--annotate",
        "--cleanup=verbatim",
        "--file=-",
        tag,
        &commit,
    ]);
    cmd = cmd.stdin(message.as_bytes());
    sh.read(cmd)?;
    Ok(super::metadata::Link::file_name(super::TAG_STEP, &signer))
}
