//! Recording links: the tagged commit's files (the `tag` link's materials, and every `build`
//! link's), the tag link carried inside an annotated tag's message, and the build links.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::digest::sha256_bytes;
use crate::error::{Error, Result, tail};
use crate::manifest::Manifest;
use crate::signing::key::PrivateKey;

use super::metadata::{Artifacts, Link, Metablock, sha256};
use super::{TAG_STEP, build_step};

const BEGIN: &str = "-----BEGIN IN-TOTO LINK-----";
const END: &str = "-----END IN-TOTO LINK-----";

/// Every file git tracks at `commit`, with the SHA-256 of its content as committed (not as
/// checked out: line-ending filters or a dirty tree must not change what the tag records).
/// Submodules are not files of this repository and are left out.
pub fn tracked_files(repo: &Path, commit: &str) -> Result<Artifacts> {
    let listing = git(repo, &["ls-tree", "-r", "-z", "--full-tree", commit], None)?;
    let mut entries = Vec::new();
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8(entry.to_vec())
            .map_err(|_| Error::Build(format!("a file name at {commit} is not UTF-8")))?;
        let (meta, path) = entry
            .split_once('\t')
            .ok_or_else(|| Error::Build(format!("unexpected `git ls-tree` line: {entry}")))?;
        let mut parts = meta.split(' ');
        let (_mode, kind, oid) = (parts.next(), parts.next(), parts.next());
        if kind == Some("blob")
            && let Some(oid) = oid
        {
            entries.push((path.to_owned(), oid.to_owned()));
        }
    }
    let request: String = entries.iter().map(|(_, oid)| format!("{oid}\n")).collect();
    let contents = git(repo, &["cat-file", "--batch"], Some(request.as_bytes()))?;
    let mut artifacts = Artifacts::new();
    let mut rest = &contents[..];
    for (path, oid) in entries {
        // Each answer: "<oid> blob <size>\n<content>\n".
        let newline = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| Error::Build("`git cat-file --batch` answer ended early".into()))?;
        let header = String::from_utf8_lossy(&rest[..newline]).into_owned();
        let size: usize = header
            .strip_prefix(&format!("{oid} blob "))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Build(format!("unexpected `git cat-file` header: {header}")))?;
        let body = rest
            .get(newline + 1..newline + 1 + size)
            .ok_or_else(|| Error::Build("`git cat-file --batch` answer ended early".into()))?;
        artifacts.insert(path, sha256(&sha256_bytes(body)));
        rest = &rest[(newline + 2 + size).min(rest.len())..];
    }
    Ok(artifacts)
}

/// The `tag` link: the tagged commit's files as materials, nothing produced.
pub fn tag_link(repo: &Path, commit: &str, tag: &str) -> Result<Link> {
    Ok(Link::new(
        TAG_STEP,
        tracked_files(repo, commit)?,
        Artifacts::new(),
        vec![
            "git".into(),
            "tag".into(),
            "--annotate".into(),
            tag.into(),
            commit.into(),
        ],
    ))
}

/// The annotated tag's message: a line for people, then the signed link in a block.
pub fn tag_message(tag: &str, link: &Metablock) -> String {
    let json = serde_json::to_string(link).expect("metadata serialises");
    format!(
        "{tag}\n\nin-toto `tag` link, signed by a maintainer (xrelease tag):\n{BEGIN}\n{json}\n{END}\n"
    )
}

/// The signed link inside an annotated tag's message, if it carries one.
pub fn link_from_tag_message(message: &str) -> Option<std::result::Result<Metablock, String>> {
    let start = message.find(BEGIN)? + BEGIN.len();
    let end = start + message[start..].find(END)?;
    Some(Metablock::parse(message[start..end].trim()))
}

/// The tag link `tag` carries: `None` for a lightweight tag or one without a link.
pub fn read_tag_link(repo: &Path, tag: &str) -> Result<Option<Metablock>> {
    let kind = git(repo, &["cat-file", "-t", &format!("refs/tags/{tag}")], None)?;
    if String::from_utf8_lossy(&kind).trim() != "tag" {
        return Ok(None);
    }
    let object = git(
        repo,
        &["cat-file", "tag", &format!("refs/tags/{tag}")],
        None,
    )?;
    let object = String::from_utf8_lossy(&object);
    match link_from_tag_message(&object) {
        None => Ok(None),
        Some(Ok(link)) => Ok(Some(link)),
        Some(Err(e)) => Err(Error::Preflight(format!(
            "tag {tag} carries an in-toto link that does not parse ({e}); re-create the tag with `xrelease tag {tag} --key KEY`"
        ))),
    }
}

/// One `build` link per platform: the tagged files as materials, that platform's binaries (as
/// named in the release directory) as products, the cargo commands as the command.
pub fn build_links(
    manifest: &Manifest,
    materials: &Artifacts,
    key: &PrivateKey,
) -> Result<Vec<(String, Metablock)>> {
    let mut platforms: Vec<&str> = manifest
        .binaries()
        .filter_map(|a| a.platform.as_deref())
        .collect();
    platforms.sort();
    platforms.dedup();
    let mut links = Vec::new();
    for platform in platforms {
        let binaries: Vec<_> = manifest
            .binaries()
            .filter(|a| a.platform.as_deref() == Some(platform))
            .collect();
        let products: Artifacts = binaries
            .iter()
            .map(|a| (a.name.clone(), sha256(&a.sha256)))
            .collect();
        let mut command = Vec::new();
        for build in &manifest.builds {
            let target_platform = crate::platform::Target::new(&build.target).map(|t| t.platform);
            if target_platform.as_deref() != Some(platform) {
                continue;
            }
            if !command.is_empty() {
                command.push("&&".to_owned());
            }
            command.extend(
                [
                    "cargo",
                    "build",
                    "--release",
                    "--locked",
                    "--target",
                    &build.target,
                ]
                .map(str::to_owned),
            );
            for package in &build.packages {
                command.extend(["-p".to_owned(), package.clone()]);
            }
        }
        let step = build_step(platform);
        let link = Link::new(&step, materials.clone(), products, command);
        let block = Metablock::sign(&link, key).map_err(|e| Error::Sign(e.to_string()))?;
        links.push((step, block));
    }
    Ok(links)
}

fn git(repo: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>> {
    let command = format!("git {}", args.join(" "));
    let mut child = Command::new("git")
        .args(args)
        .current_dir(repo)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Build(format!("cannot run `{command}`: {e}")))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped");
        // git answers while reading, so feed it from a thread to avoid a pipe deadlock.
        let input = input.to_vec();
        std::thread::spawn(move || pipe.write_all(&input));
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Build(format!("cannot run `{command}`: {e}")))?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            status: out.status.to_string(),
            tail: tail(&String::from_utf8_lossy(&out.stderr), 10),
        });
    }
    Ok(out.stdout)
}
