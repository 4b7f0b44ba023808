//! xrelease's own layout verification, the checks `in-toto-verify` makes, over a release
//! directory: the owner's signature and the expiry of `root.layout`; per step, links signed by
//! distinct listed keys up to the threshold, all recording the same artifacts; every artifact
//! rule; and the `files` inspection over the directory's files (hashed here rather than by
//! running the layout's command: a verifier never executes what a downloaded file says).
//!
//! Every failure names the step and the key, so a maintainer knows whose link to look at.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use time::OffsetDateTime;

use crate::digest::sha256_file;

use super::keys::Key;
use super::metadata::{Artifacts, Layout, Link, Metablock, Rule};
use super::{INSPECTION, LAYOUT_FILE, is_intoto_file};

/// Adds the layout verification to a `xrelease verify` report as `in-toto` checks: one per
/// step and inspection that passed, or the one that failed.
pub fn add_to_report(report: &mut crate::verify::Report, owner: &Key) {
    let result = verify_dir(&report.dir, owner, OffsetDateTime::now_utc());
    let mut add = |passed: bool, detail: String| {
        report.checks.push(crate::verify::Check {
            check: "in-toto",
            subject: LAYOUT_FILE.into(),
            passed,
            detail,
        });
        report.total += 1;
        if passed {
            report.passed += 1;
        } else {
            report.ok = false;
        }
    };
    match result {
        Ok(passed) => passed.lines.into_iter().for_each(|l| add(true, l)),
        Err(why) => add(false, why),
    }
}

/// What passed, one line per step and for the inspection.
#[derive(Debug, Clone, Default)]
pub struct Passed {
    pub lines: Vec<String>,
}

/// Verifies `dir` against its `root.layout` signed by `owner`, as of `now`.
pub fn verify_dir(dir: &Path, owner: &Key, now: OffsetDateTime) -> Result<Passed, String> {
    let mut passed = Passed::default();
    let text = std::fs::read_to_string(dir.join(LAYOUT_FILE))
        .map_err(|e| format!("cannot read {LAYOUT_FILE} in {}: {e}", dir.display()))?;
    let block = Metablock::parse(&text).map_err(|e| format!("{LAYOUT_FILE}: {e}"))?;
    block.verify(owner).map_err(|e| {
        format!(
            "{LAYOUT_FILE} is not signed by the layout key {}: {e}",
            owner.keyid()
        )
    })?;
    let layout = block.layout().map_err(|e| format!("{LAYOUT_FILE}: {e}"))?;
    let expires = OffsetDateTime::parse(
        &layout.expires,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| format!("{LAYOUT_FILE}: expiry `{}`: {e}", layout.expires))?;
    if expires <= now {
        return Err(format!(
            "{LAYOUT_FILE} expired on {}: the owner re-signs it with `xrelease layout --key owner.key` (signed by key {})",
            layout.expires,
            owner.keyid()
        ));
    }
    passed.lines.push(format!(
        "{LAYOUT_FILE} signed by {}, valid until {}",
        owner.short_id(),
        layout.expires
    ));
    let keys = layout_keys(&layout)?;
    let links = read_links(dir)?;

    let mut chain: BTreeMap<String, Link> = BTreeMap::new();
    for step in &layout.steps {
        let mut by_key: BTreeMap<String, Link> = BTreeMap::new();
        for (file, block) in links
            .iter()
            .filter(|(f, _)| link_step(f) == Some(&step.name))
        {
            let signer = block
                .signatures
                .first()
                .map(|s| s.keyid.clone())
                .unwrap_or_default();
            if block.signatures.len() != 1 {
                return Err(format!(
                    "step `{}`: {file} carries {} signatures; a link is signed by exactly one functionary",
                    step.name,
                    block.signatures.len()
                ));
            }
            let Some(key) = step
                .pubkeys
                .iter()
                .find(|id| **id == signer)
                .and_then(|id| keys.get(id))
            else {
                return Err(format!(
                    "step `{}`: {file} is signed by key {signer}, which the layout does not list for this step",
                    step.name
                ));
            };
            // Checked before the file name, so the answer does not depend on which of the two
            // files sorts first.
            let same_signer = links
                .iter()
                .filter(|(f, b)| {
                    link_step(f) == Some(&step.name)
                        && b.signatures.first().map(|s| s.keyid.as_str()) == Some(signer.as_str())
                })
                .count();
            if same_signer > 1 {
                return Err(format!(
                    "step `{}`: two links signed by the same key {signer} ({file} is one); a key counts once towards the threshold",
                    step.name
                ));
            }
            if !file.ends_with(&format!(".{}.link", key.short_id())) {
                return Err(format!(
                    "step `{}`: {file} is signed by key {signer} but named for another key",
                    step.name
                ));
            }
            block
                .verify(key)
                .map_err(|e| format!("step `{}`: {file}: {e}", step.name))?;
            let link = block
                .link()
                .map_err(|e| format!("step `{}`: {file}: {e}", step.name))?;
            if link.name != step.name {
                return Err(format!(
                    "step `{}`: {file} (key {signer}) records step `{}`",
                    step.name, link.name
                ));
            }
            by_key.insert(signer.clone(), link);
        }
        if (by_key.len() as u64) < u64::from(step.threshold) {
            let missing: Vec<&str> = step
                .pubkeys
                .iter()
                .filter(|id| !by_key.contains_key(*id))
                .map(|id| &id[..8.min(id.len())])
                .collect();
            return Err(format!(
                "step `{}` needs links from {} distinct keys of the layout and has {}{}; missing links from keys: {}",
                step.name,
                step.threshold,
                by_key.len(),
                if by_key.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (signed by {})",
                        by_key
                            .keys()
                            .map(|k| &k[..8])
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                missing.join(", ")
            ));
        }
        let mut iter = by_key.iter();
        let (first_key, first) = iter.next().expect("threshold is at least 1");
        for (key, link) in iter {
            if link.materials != first.materials || link.products != first.products {
                let what = if link.products != first.products {
                    "products"
                } else {
                    "materials"
                };
                return Err(format!(
                    "step `{}`: the links of keys {} and {} disagree on their {what}{}",
                    step.name,
                    &first_key[..8],
                    &key[..8],
                    differing(&first.products, &link.products)
                ));
            }
        }
        passed.lines.push(format!(
            "step `{}`: {} of {} required links agree (keys {})",
            step.name,
            by_key.len(),
            step.threshold,
            by_key
                .keys()
                .map(|k| &k[..8])
                .collect::<Vec<_>>()
                .join(", ")
        ));
        chain.insert(step.name.clone(), first.clone());
    }
    for step in &layout.steps {
        let link = &chain[&step.name];
        check_rules(
            &step.name,
            "materials",
            &step.expected_materials,
            link,
            &chain,
        )?;
        check_rules(
            &step.name,
            "products",
            &step.expected_products,
            link,
            &chain,
        )?;
    }

    for inspection in &layout.inspect {
        let files = dir_files(dir)?;
        if inspection.name == INSPECTION {
            check_sums(dir, &files)?;
        }
        let link = Link::new(
            &inspection.name,
            files.clone(),
            files,
            inspection.run.clone(),
        );
        chain.insert(inspection.name.clone(), link.clone());
        check_rules(
            &inspection.name,
            "materials",
            &inspection.expected_materials,
            &link,
            &chain,
        )?;
        check_rules(
            &inspection.name,
            "products",
            &inspection.expected_products,
            &link,
            &chain,
        )?;
        passed.lines.push(format!(
            "inspection `{}`: every file of the directory is a build product or release metadata",
            inspection.name
        ));
    }
    Ok(passed)
}

fn layout_keys(layout: &Layout) -> Result<BTreeMap<String, Key>, String> {
    layout
        .keys
        .iter()
        .map(|(id, value)| Key::from_json(id, value).map(|k| (id.clone(), k)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{LAYOUT_FILE}: {e}"))
}

/// `<step>` of a link file name `<step>.<8 hex>.link`.
fn link_step(file: &str) -> Option<&str> {
    file.strip_suffix(".link")?.rsplit_once('.').map(|(s, _)| s)
}

fn read_links(dir: &Path) -> Result<Vec<(String, Metablock)>, String> {
    let mut links = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != LAYOUT_FILE && is_intoto_file(&name) {
            let text = std::fs::read_to_string(entry.path()).map_err(|e| format!("{name}: {e}"))?;
            links.push((
                name.clone(),
                Metablock::parse(&text).map_err(|e| format!("{name}: {e}"))?,
            ));
        }
    }
    links.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(links)
}

/// Every file under `dir` with its SHA-256, as in-toto's inspection records them: relative
/// paths with `/`, link files left out.
fn dir_files(dir: &Path) -> Result<Artifacts, String> {
    fn walk(root: &Path, dir: &Path, out: &mut Artifacts) -> Result<(), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                walk(root, &path, out)?;
            } else if !glob(&rel, "*.link*") {
                let (sha, _) = sha256_file(&path).map_err(|e| format!("{rel}: {e}"))?;
                out.insert(rel, super::metadata::sha256(&sha));
            }
        }
        Ok(())
    }
    let mut out = Artifacts::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// What the inspection's `sha256sum --check SHA256SUMS` checks: every listed file is present
/// with the listed digest.
fn check_sums(dir: &Path, files: &Artifacts) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join("SHA256SUMS"))
        .map_err(|e| format!("inspection `{INSPECTION}`: SHA256SUMS: {e}"))?;
    for line in text.lines() {
        let (digest, name) = line.split_once("  ").ok_or_else(|| {
            format!("inspection `{INSPECTION}`: SHA256SUMS line `{line}` is malformed")
        })?;
        match files.get(name).and_then(|h| h.get("sha256")) {
            Some(actual) if actual == digest => {}
            Some(actual) => {
                return Err(format!(
                    "inspection `{INSPECTION}`: {name} is {actual}, SHA256SUMS says {digest}"
                ));
            }
            None => return Err(format!("inspection `{INSPECTION}`: {name} is missing")),
        }
    }
    Ok(())
}

fn differing(a: &Artifacts, b: &Artifacts) -> String {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let diffs: Vec<String> = names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| {
            let digest = |x: &Artifacts| {
                x.get(n)
                    .and_then(|h| h.get("sha256"))
                    .cloned()
                    .unwrap_or_else(|| "absent".into())
            };
            format!("{n}: {} vs {}", digest(a), digest(b))
        })
        .collect();
    if diffs.is_empty() {
        String::new()
    } else {
        format!(" ({})", diffs.join("; "))
    }
}

/// Applies `rules` in order to the queue of `link`'s materials or products, as in-toto does:
/// each rule consumes what it authorises; DISALLOW fails on what is left that it matches.
fn check_rules(
    step: &str,
    which: &str,
    rules: &[Rule],
    link: &Link,
    chain: &BTreeMap<String, Link>,
) -> Result<(), String> {
    let artifacts = if which == "materials" {
        &link.materials
    } else {
        &link.products
    };
    let mut queue: BTreeSet<String> = artifacts.keys().cloned().collect();
    let fail = |why: String| format!("{step} ({which}): {why}");
    for rule in rules {
        let words: Vec<&str> = rule.iter().map(String::as_str).collect();
        let matching = |pattern: &str, queue: &BTreeSet<String>| -> Vec<String> {
            queue.iter().filter(|p| glob(p, pattern)).cloned().collect()
        };
        let consumed: Vec<String> = match words.as_slice() {
            ["MATCH", pattern, "WITH", kind @ ("MATERIALS" | "PRODUCTS"), "FROM", other] => {
                let Some(source) = chain.get(*other) else {
                    return Err(fail(format!("rule {words:?} refers to unknown step `{other}`")));
                };
                let theirs = if *kind == "MATERIALS" {
                    &source.materials
                } else {
                    &source.products
                };
                matching(pattern, &queue)
                    .into_iter()
                    .filter(|p| theirs.get(p).is_some() && theirs.get(p) == artifacts.get(p))
                    .collect()
            }
            ["CREATE", pattern] => matching(pattern, &queue)
                .into_iter()
                .filter(|p| !link.materials.contains_key(p) && link.products.contains_key(p))
                .collect(),
            ["DELETE", pattern] => matching(pattern, &queue)
                .into_iter()
                .filter(|p| link.materials.contains_key(p) && !link.products.contains_key(p))
                .collect(),
            ["MODIFY", pattern] => matching(pattern, &queue)
                .into_iter()
                .filter(|p| {
                    matches!((link.materials.get(p), link.products.get(p)), (Some(a), Some(b)) if a != b)
                })
                .collect(),
            ["ALLOW", pattern] => matching(pattern, &queue),
            ["REQUIRE", name] => {
                if !queue.contains(*name) {
                    return Err(fail(format!("{name} is required but absent")));
                }
                Vec::new()
            }
            ["DISALLOW", pattern] => {
                let left = matching(pattern, &queue);
                if !left.is_empty() {
                    return Err(fail(format!(
                        "not accounted for by any rule (changed, extra or unexpected): {}",
                        left.join(", ")
                    )));
                }
                Vec::new()
            }
            _ => return Err(fail(format!("unsupported rule {words:?}"))),
        };
        for p in consumed {
            queue.remove(&p);
        }
    }
    Ok(())
}

/// Python's `fnmatch` as in-toto uses it: `*` any run (slashes included), `?` one character,
/// `[...]` a set (`[!...]` its complement).
pub fn glob(name: &str, pattern: &str) -> bool {
    fn go(n: &[char], p: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&n[i..], &p[1..])),
            Some('?') => !n.is_empty() && go(&n[1..], &p[1..]),
            Some('[') => {
                let Some(close) = p.iter().skip(2).position(|c| *c == ']').map(|i| i + 2) else {
                    return n.first() == Some(&'[') && go(&n[1..], &p[1..]);
                };
                let Some(c) = n.first() else { return false };
                let (negate, set) = match p[1] {
                    '!' => (true, &p[2..close]),
                    _ => (false, &p[1..close]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= *c && *c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == *c;
                        i += 1;
                    }
                }
                hit != negate && go(&n[1..], &p[close + 1..])
            }
            Some(ch) => n.first() == Some(ch) && go(&n[1..], &p[1..]),
        }
    }
    let n: Vec<char> = name.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    go(&n, &p)
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_is_fnmatch() {
        assert!(glob("app-1.0.0-linux-amd64", "*-*-linux-amd64"));
        assert!(!glob("app-1.0.0-linux-amd64.cdx.json", "*-*-linux-amd64"));
        assert!(glob("oci/app/index.json", "*.json"));
        assert!(glob("a.link", "*.link*"));
        assert!(glob("x1", "x[0-9]") && !glob("xa", "x[0-9]") && glob("xa", "x[!0-9]"));
        assert!(glob("ab", "a?") && !glob("a", "a?"));
    }
}
