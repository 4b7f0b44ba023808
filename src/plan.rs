//! Pure: config + workspace + tag → the artifacts to make, with their final names.
//!
//! No I/O happens here, so every naming problem (unknown bins, collisions, version mismatches)
//! is found before anything is built.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::platform::Target;
use crate::tag::Tag;
use crate::workspace::Workspace;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub tag: String,
    pub version: String,
    pub prerelease: bool,
    /// One entry per target: what a CI runner for that target builds (the matrix).
    pub include: Vec<TargetPlan>,
    pub artifacts: Vec<PlannedBinary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetPlan {
    pub target: String,
    pub platform: String,
    /// The GitHub Actions runner for this target's build job.
    pub runner: String,
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedBinary {
    pub name: String,
    pub bin: String,
    pub package: String,
    pub target: String,
    pub platform: String,
    /// The executable's file name as cargo writes it (`.exe` on Windows).
    #[serde(skip)]
    pub exe_suffix: &'static str,
}

impl Plan {
    /// Narrows the plan to one target: a CI runner's share of a split release.
    pub fn only_target(&mut self, triple: &str) -> Result<()> {
        if !self.include.iter().any(|i| i.target == triple) {
            let known: Vec<&str> = self.include.iter().map(|i| i.target.as_str()).collect();
            return Err(Error::Plan(format!(
                "`{triple}` is not a target of this release; its targets are: {}",
                known.join(", ")
            )));
        }
        self.include.retain(|i| i.target == triple);
        self.artifacts.retain(|a| a.target == triple);
        Ok(())
    }

    pub fn targets<'a>(&'a self, config: &'a Config) -> impl Iterator<Item = &'a Target> {
        config
            .targets
            .iter()
            .filter(|t| self.include.iter().any(|i| i.target == t.triple))
    }

    pub fn binaries_for<'a>(
        &'a self,
        target: &'a str,
        package: &'a str,
    ) -> impl Iterator<Item = &'a PlannedBinary> {
        self.artifacts
            .iter()
            .filter(move |a| a.target == target && a.package == package)
    }
}

pub fn plan(config: &Config, workspace: &Workspace, tag: &Tag) -> Result<Plan> {
    // The configured tag form decides what the tag names: a per-package tag releases only
    // that package's bins, at that package's version; the rest of the workspace is untouched.
    let tag = &tag.with_template(&config.tag_template)?;
    if let Some(package) = tag.package() {
        let member = workspace.members.iter().find(|m| m.name == package);
        if member.is_none_or(|m| m.bins.is_empty()) {
            let mut with_bins: Vec<&str> = workspace
                .members
                .iter()
                .filter(|m| !m.bins.is_empty())
                .map(|m| m.name.as_str())
                .collect();
            with_bins.sort();
            return Err(Error::Plan(format!(
                "tag {tag} names package `{package}`, which {} in this workspace; packages with bins: {}",
                if member.is_some() {
                    "has no bins"
                } else {
                    "is not a member"
                },
                with_bins.join(", ")
            )));
        }
    }
    let all: Vec<(&str, &str)> = workspace
        .members
        .iter()
        .flat_map(|m| {
            m.bins
                .iter()
                .map(move |b| (m.name.as_str(), b.name.as_str()))
        })
        .collect();
    let known = |bin: &String| all.iter().any(|(_, b)| b == bin);
    let listing = || {
        let mut names: Vec<_> = all.iter().map(|(_, b)| *b).collect();
        names.sort();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    for (key, list) in [
        ("bins", &config.bins),
        ("exclude-bins", &config.exclude_bins),
    ] {
        let unknown: Vec<_> = list
            .iter()
            .filter(|b| !known(b))
            .map(|b| format!("`{b}`"))
            .collect();
        if !unknown.is_empty() {
            return Err(Error::Plan(format!(
                "release.toml: `release.{key}` names bins the workspace does not have: {}; its bins are: {}",
                unknown.join(", "),
                listing()
            )));
        }
    }

    let chosen: Vec<(&str, &str)> = all
        .iter()
        .copied()
        .filter(|(p, _)| tag.package().is_none_or(|t| t == *p))
        .filter(|(_, b)| config.bins.is_empty() || config.bins.iter().any(|c| c == b))
        .filter(|(_, b)| !config.exclude_bins.iter().any(|c| c == b))
        .collect();
    if chosen.is_empty() {
        return Err(Error::Plan(format!(
            "nothing to release: no bin is left after `bins`/`exclude-bins` (workspace bins: {})",
            listing()
        )));
    }

    let packages: BTreeSet<&str> = chosen.iter().map(|(p, _)| *p).collect();
    let mismatches: Vec<String> = workspace
        .members
        .iter()
        .filter(|m| packages.contains(m.name.as_str()) && m.version != *tag.version())
        .map(|m| {
            format!(
                "  {} is {} (tag {tag} needs {})",
                m.name,
                m.version,
                tag.version()
            )
        })
        .collect();
    if !mismatches.is_empty() {
        return Err(Error::Plan(format!(
            "the tag's version does not match the packages being released:\n{}\n\
             bump the versions in Cargo.toml (and Cargo.lock), or tag the version they carry",
            mismatches.join("\n")
        )));
    }

    let version = tag.version().to_string();
    let tag_text = tag.to_string();
    let mut artifacts = Vec::new();
    for target in &config.targets {
        for (package, bin) in &chosen {
            let name = config.name_template.render(&[
                ("bin", bin),
                ("version", &version),
                ("platform", &target.platform),
                ("target", &target.triple),
                ("package", package),
                ("tag", &tag_text),
            ]) + target.exe_suffix;
            if name.contains('/') {
                return Err(Error::Plan(format!(
                    "`{name}`: `{{tag}}` in `name-template` puts the tag's `/` into a file name; \
                     use `{{package}}` and `{{version}}` instead"
                )));
            }
            artifacts.push(PlannedBinary {
                name,
                bin: bin.to_string(),
                package: package.to_string(),
                target: target.triple.clone(),
                platform: target.platform.clone(),
                exe_suffix: target.exe_suffix,
            });
        }
    }

    let mut by_name: BTreeMap<&str, Vec<&PlannedBinary>> = BTreeMap::new();
    for a in &artifacts {
        by_name.entry(&a.name).or_default().push(a);
    }
    let collisions: Vec<String> = by_name
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(name, v)| {
            let who: Vec<_> = v
                .iter()
                .map(|a| format!("{}:{} for {}", a.package, a.bin, a.target))
                .collect();
            format!("  {name} ← {}", who.join(", "))
        })
        .collect();
    if !collisions.is_empty() {
        return Err(Error::Plan(format!(
            "two artifacts would get the same name:\n{}\nrename a bin, exclude one (`exclude-bins`), \
             or add `{{package}}` to `name-template`",
            collisions.join("\n")
        )));
    }

    let include = config
        .targets
        .iter()
        .map(|t| TargetPlan {
            target: t.triple.clone(),
            platform: t.platform.clone(),
            runner: config
                .toolchain(t)
                .ci_runner
                .unwrap_or_else(|| crate::platform::default_ci_runner(&t.triple).to_string()),
            packages: packages.iter().map(|p| p.to_string()).collect(),
        })
        .collect();
    artifacts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Plan {
        tag: tag_text,
        version,
        prerelease: tag.is_prerelease(),
        include,
        artifacts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::workspace::{Bin, Member};
    use std::path::{Path, PathBuf};

    fn member(name: &str, version: &str, bins: &[&str]) -> Member {
        Member {
            name: name.into(),
            version: version.parse().unwrap(),
            id: format!("path+file:///ws/{name}#{version}"),
            bins: bins
                .iter()
                .map(|b| Bin {
                    name: b.to_string(),
                    required_features: vec![],
                })
                .collect(),
        }
    }

    fn workspace(members: Vec<Member>) -> Workspace {
        let metadata: cargo_metadata::Metadata = serde_json::from_str(
            r#"{"packages":[],"workspace_members":[],"resolve":null,"target_directory":"/ws/target",
                "version":1,"workspace_root":"/ws","metadata":null}"#,
        )
        .unwrap();
        Workspace {
            root: "/ws".into(),
            target_dir: "/ws/target".into(),
            members,
            metadata,
        }
    }

    fn config(text: &str) -> Config {
        config::parse(text, Path::new("release.toml"), PathBuf::from("/ws")).unwrap()
    }

    fn sample() -> Workspace {
        workspace(vec![
            member("app", "1.0.0", &["app", "app-tool", "app-secret"]),
            member("other", "1.0.0", &["other"]),
            member("corelib", "0.3.0", &[]),
        ])
    }

    #[test]
    fn names_every_bin_for_every_target() {
        let c = config("[release]\nexclude-bins = [\"app-secret\"]\n");
        let p = plan(&c, &sample(), &"v1.0.0".parse().unwrap()).unwrap();
        let names: Vec<_> = p.artifacts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "app-1.0.0-linux-amd64",
                "app-1.0.0-linux-arm64",
                "app-tool-1.0.0-linux-amd64",
                "app-tool-1.0.0-linux-arm64",
                "other-1.0.0-linux-amd64",
                "other-1.0.0-linux-arm64",
            ]
        );
        assert_eq!(p.include.len(), 2);
        assert_eq!(p.include[0].packages, ["app", "other"]);
        // Each target builds on a native runner unless release.toml says otherwise.
        assert_eq!(p.include[0].runner, "ubuntu-24.04");
        assert_eq!(p.include[1].runner, "ubuntu-24.04-arm");
        let cross = config("[target.aarch64-unknown-linux-gnu]\nci-runner = \"ubuntu-24.04\"\n");
        let p = plan(&cross, &sample(), &"v1.0.0".parse().unwrap()).unwrap();
        assert_eq!(p.include[1].runner, "ubuntu-24.04");
        // corelib is lib-only and at another version: it is not released, so it is not checked.
    }

    #[test]
    fn bins_selects_and_unknown_bins_are_errors() {
        let c = config("[release]\nbins = [\"other\"]\n");
        let p = plan(&c, &sample(), &"v1.0.0".parse().unwrap()).unwrap();
        assert!(p.artifacts.iter().all(|a| a.bin == "other"));
        assert_eq!(p.include[0].packages, ["other"]);

        let c = config("[release]\nexclude-bins = [\"nope\"]\n");
        let err = plan(&c, &sample(), &"v1.0.0".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`nope`") && err.contains("app-tool"), "{err}");
    }

    #[test]
    fn version_mismatches_are_all_listed() {
        let ws = workspace(vec![
            member("app", "1.0.0", &["app"]),
            member("other", "0.9.0", &["other"]),
        ]);
        let err = plan(&config(""), &ws, &"v1.1.0".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("app is 1.0.0") && err.contains("other is 0.9.0"),
            "{err}"
        );
    }

    #[test]
    fn colliding_names_are_refused() {
        let ws = workspace(vec![
            member("a", "1.0.0", &["tool"]),
            member("b", "1.0.0", &["tool"]),
        ]);
        let err = plan(&config(""), &ws, &"v1.0.0".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tool-1.0.0-linux-amd64")
                && err.contains("a:tool")
                && err.contains("b:tool"),
            "{err}"
        );
        let fixed = config("[release]\nname-template = \"{package}-{bin}-{version}-{platform}\"\n");
        assert!(plan(&fixed, &ws, &"v1.0.0".parse().unwrap()).is_ok());
    }

    #[test]
    fn a_workspace_without_bins_has_nothing_to_release() {
        let ws = workspace(vec![member("corelib", "1.0.0", &[])]);
        let err = plan(&config(""), &ws, &"v1.0.0".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing to release"), "{err}");
    }

    #[test]
    fn a_per_package_tag_releases_only_that_package_at_its_version() {
        let ws = workspace(vec![
            member("app", "1.0.0", &["app", "app-tool"]),
            member("other", "0.4.2", &["other"]),
            member("corelib", "0.3.0", &[]),
        ]);
        let c = config(
            "[release]\ntag-template = \"{package}-v{version}\"\nexclude-bins = [\"app-tool\"]\n",
        );
        let p = plan(&c, &ws, &"other-v0.4.2".parse().unwrap()).unwrap();
        let names: Vec<_> = p.artifacts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            ["other-0.4.2-linux-amd64", "other-0.4.2-linux-arm64"]
        );
        assert_eq!(p.include[0].packages, ["other"]);
        assert_eq!(p.tag, "other-v0.4.2");
        // The version check applies to what is released, and only to it.
        let err = plan(&c, &ws, &"other-v1.0.0".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("other is 0.4.2") && !err.contains("app is"),
            "{err}"
        );
        for (tag, needle) in [
            ("corelib-v0.3.0", "has no bins"),
            ("nope-v1.0.0", "is not a member"),
            ("v1.0.0", "not of the form `{package}-v{version}`"),
        ] {
            let err = plan(&c, &ws, &tag.parse().unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{tag}: {err}");
        }
        let slash = config(
            "[release]\ntag-template = \"{package}/v{version}\"\nname-template = \"{tag}-{bin}-{platform}\"\n",
        );
        let err = plan(&slash, &ws, &"other/v0.4.2".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("into a file name"), "{err}");
        // A bare-version template releases the whole workspace.
        let bare = config("[release]\ntag-template = \"{version}\"\n");
        let p = plan(&bare, &sample(), &"1.0.0".parse().unwrap()).unwrap();
        assert_eq!(p.tag, "1.0.0");
        assert_eq!(p.artifacts.len(), 8);
    }

    #[test]
    fn windows_names_get_exe() {
        let c = config("[release]\ntargets = [\"x86_64-pc-windows-msvc\"]\n");
        let p = plan(
            &c,
            &workspace(vec![member("app", "1.0.0", &["app"])]),
            &"v1.0.0".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(p.artifacts[0].name, "app-1.0.0-windows-amd64.exe");
    }
}
