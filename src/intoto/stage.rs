//! The release's in-toto stage: signs one `build` link per platform with the CI functionary key
//! and puts them, the tag's link and the layout into `dist/<tag>/` (and the manifest).

use std::path::Path;

use crate::context::{Context, Mode};
use crate::digest::sha256_file;
use crate::error::{Error, Result};
use crate::manifest::{Artifact, Kind, Manifest};

use super::commands::{keys, private_key};
use super::keys::Key;
use super::metadata::{Link, Metablock};
use super::{LAYOUT_FILE, LAYOUT_PATH, TAG_STEP, record};

/// Overrides `[in-toto] functionary-key`: where CI wrote the key from its secret.
pub const FUNCTIONARY_KEY_ENV: &str = "XRELEASE_INTOTO_KEY";

pub fn run(ctx: &Context, manifest: &mut Manifest) -> Result<()> {
    let Some(section) = &ctx.config.in_toto else {
        return Ok(());
    };
    let repo = &ctx.workspace.root;
    let tag = ctx.tag.to_string();
    let layout_path = repo.join(LAYOUT_PATH);
    if !layout_path.is_file() {
        return Err(Error::Preflight(format!(
            "`[in-toto]` is configured but {} does not exist: the project owner creates it with \
             `xrelease layout --key owner.key` and commits it",
            layout_path.display()
        )));
    }
    let Some(tag_link) = record::read_tag_link(repo, &tag)? else {
        if ctx.mode == Mode::Rehearsal {
            ctx.ui.info(format!(
                "in-toto: tag {tag} carries no signed `tag` link (yet), so this rehearsal writes no links; \
                 a maintainer creates the tag with `xrelease tag {tag} --key KEY`"
            ));
            return Ok(());
        }
        return Err(Error::Preflight(format!(
            "tag {tag} carries no in-toto `tag` link: delete it and let a maintainer re-create it with \
             `xrelease tag {tag} --key maintainer.key` (the link travels in the annotated tag's message; \
             CI must fetch tags, e.g. actions/checkout with fetch-depth: 0)"
        )));
    };
    let (maintainers, ci) = keys(section)?;
    let signer = maintainers
        .iter()
        .find(|k| tag_link.signatures.iter().any(|s| s.keyid == k.keyid()))
        .ok_or_else(|| {
            Error::Verification(format!(
                "the `tag` link of {tag} is not signed by any of `[in-toto] maintainers`"
            ))
        })?;
    tag_link
        .verify(signer)
        .map_err(|e| Error::Verification(format!("the `tag` link of {tag}: {e} (step `tag`)")))?;
    let link = tag_link
        .link()
        .map_err(|e| Error::Verification(format!("the `tag` link of {tag}: {e}")))?;
    let materials = record::tracked_files(repo, &manifest.source.commit)?;
    if link.name != TAG_STEP || link.materials != materials {
        return Err(Error::Verification(format!(
            "the `tag` link of {tag} (key {}) records other files than commit {}: it was signed for another commit",
            signer.keyid(),
            manifest.source.commit
        )));
    }

    // CI writes the key from a secret outside the checkout (the tree must stay clean).
    let functionary_path = std::env::var_os(FUNCTIONARY_KEY_ENV)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| section.functionary_key.clone());
    let functionary = private_key(&functionary_path)?;
    let functionary_id = Key::new(functionary.public_key());
    if functionary_id != ci {
        return Err(Error::Preflight(format!(
            "the functionary key {} (keyid {}) is not `[in-toto] ci-key` ({}, keyid {}): CI must sign with \
             the key the layout lists",
            functionary_path.display(),
            functionary_id.keyid(),
            section.ci_key.display(),
            ci.keyid()
        )));
    }
    let mut files = vec![(LAYOUT_FILE.to_owned(), Kind::InTotoLayout, None)];
    std::fs::copy(&layout_path, ctx.dist.join(LAYOUT_FILE))
        .map_err(Error::io("cannot copy the layout", &layout_path))?;
    let tag_file = Link::file_name(TAG_STEP, signer);
    write(&ctx.dist, &tag_file, &tag_link)?;
    files.push((tag_file, Kind::InTotoLink, None));
    for (step, block) in record::build_links(manifest, &materials, &functionary)? {
        let name = Link::file_name(&step, &ci);
        write(&ctx.dist, &name, &block)?;
        files.push((name, Kind::InTotoLink, Some(step)));
    }
    for (name, kind, describes) in files {
        let path = ctx.dist.join(&name);
        let (sha256, size) = sha256_file(&path).map_err(Error::io("cannot hash", &path))?;
        manifest.upsert(Artifact {
            name,
            kind,
            bin: None,
            package: None,
            target: None,
            platform: None,
            describes,
            sha256,
            size,
        });
    }
    ctx.ui.info(format!(
        "in-toto: build links signed by the CI key {}, with the tag link and {LAYOUT_FILE}",
        ci.short_id()
    ));
    Ok(())
}

pub fn write(dir: &Path, name: &str, block: &Metablock) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, block.to_json()).map_err(Error::io("cannot write", &path))
}
