//! Release notes: the CHANGELOG section for the version, a table of the release's files, and
//! the exact commands that verify it — rendered with minijinja from the notes template.
//!
//! Pure: the caller reads the template and the changelog; nothing here touches the disk.

use serde::Serialize;

use crate::ui::human_size;
use crate::verify::Policy;

/// The template xrelease ships; used when the workspace has none at the configured path.
pub const BUILTIN_TEMPLATE: &str = include_str!("../templates/release-notes.md.j2");

/// Where the default `notes-template` points, relative to release.toml.
pub const DEFAULT_TEMPLATE_PATH: &str = "templates/release-notes.md.j2";

/// One row of the artifacts table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub size: u64,
    pub size_human: String,
    pub sha256: String,
    /// A linux-gnu binary's glibc floor: the oldest glibc it starts on.
    pub glibc: Option<String>,
}

impl Row {
    pub fn new(name: &str, size: u64, sha256: &str) -> Row {
        Row {
            name: name.to_string(),
            size,
            size_human: human_size(size),
            sha256: sha256.to_string(),
            glibc: None,
        }
    }

    pub fn with_glibc(mut self, floor: Option<impl ToString>) -> Row {
        self.glibc = floor.map(|f| f.to_string());
        self
    }
}

/// Everything the template can use.
#[derive(Debug, Clone, Serialize)]
pub struct Notes {
    pub tag: String,
    pub version: String,
    pub repository: Option<String>,
    pub prerelease: bool,
    /// The CHANGELOG.md section for the version, without its heading.
    pub changelog: Option<String>,
    pub artifacts: Vec<Row>,
    /// Shell commands, in order, that check the downloaded release.
    pub verify_commands: Vec<String>,
    /// Key-signed releases: the public key file that ships with the release.
    pub public_key: Option<String>,
    /// The release's verifying installer (`install.sh`), when it has one.
    pub install: Option<Install>,
}

/// How to run the release's `install.sh`: the one-line command and the binaries `--bin` picks from.
#[derive(Debug, Clone, Serialize)]
pub struct Install {
    pub command: String,
    pub bins: Vec<String>,
}

impl Install {
    /// `curl … | sh`, straight from the release's download URL; `--bin` when there is a choice.
    pub fn new(repository: Option<&str>, tag: &str, mut bins: Vec<String>) -> Install {
        bins.sort();
        bins.dedup();
        let repo = repository.unwrap_or("OWNER/REPO");
        let mut command = format!(
            "curl -fsSL https://github.com/{repo}/releases/download/{tag}/{} | sh",
            crate::layout::INSTALLER
        );
        if bins.len() > 1 {
            command.push_str(&format!(" -s -- --bin {}", bins[0]));
        }
        Install { command, bins }
    }
}

impl Notes {
    pub fn render(&self, template: &str) -> Result<String, String> {
        let mut env = minijinja::Environment::new();
        env.set_keep_trailing_newline(true);
        // A misspelt variable in a user's template is an error, not an empty string.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template("notes", template)
            .map_err(|e| format!("{e:#}"))?;
        let tmpl = env.get_template("notes").map_err(|e| format!("{e:#}"))?;
        tmpl.render(minijinja::Value::from_serialize(self))
            .map_err(|e| format!("{e:#}"))
    }
}

/// The section of a Keep-a-Changelog style file for `version`: after a `## [1.0.0]`,
/// `## 1.0.0` or `## v1.0.0` heading (anything may follow the version: a date, a link), up to
/// the next `## ` heading. `None` when there is no such heading or the section is empty.
pub fn changelog_section(text: &str, version: &str) -> Option<String> {
    let mut lines = text.lines();
    lines.by_ref().find(|line| is_heading_for(line, version))?;
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("## ")).collect();
    let section = body.join("\n").trim().to_string();
    (!section.is_empty()).then_some(section)
}

fn is_heading_for(line: &str, version: &str) -> bool {
    let Some(rest) = line.strip_prefix("## ") else {
        return false;
    };
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('[').unwrap_or(rest);
    let rest = rest.strip_prefix('v').unwrap_or(rest);
    match rest.strip_prefix(version) {
        // `1.0.0` must not match `1.0.0-rc.1` or `1.0.01`.
        Some(after) => after
            .chars()
            .next()
            .is_none_or(|c| c == ']' || c.is_whitespace()),
        None => false,
    }
}

/// The commands that check a downloaded release, for the policy it was signed under.
pub fn verify_commands(policy: &Policy, repository: Option<&str>, tag: &str) -> Vec<String> {
    let repo = repository.unwrap_or("OWNER/REPO");
    let mut commands = vec![
        format!("gh release download {tag} --repo {repo} --dir {tag} && cd {tag}"),
        "sha256sum -c --strict SHA256SUMS".to_string(),
    ];
    match policy {
        Policy::Key(_) => {
            commands.push(
                "openssl dgst -sha256 -verify cosign.pub -signature <(base64 -d SHA256SUMS.sig) SHA256SUMS"
                    .to_string(),
            );
            commands.push(
                "cosign verify-blob --key cosign.pub --signature SHA256SUMS.sig SHA256SUMS"
                    .to_string(),
            );
            commands.push(format!(
                "xrelease verify . --key cosign.pub --repo {repo} --tag {tag}"
            ));
        }
        Policy::Keyless {
            identity, issuer, ..
        } => {
            commands.push(format!(
                "cosign verify-blob --bundle SHA256SUMS.sigstore.json --certificate-identity {identity} \
                 --certificate-oidc-issuer {issuer} SHA256SUMS"
            ));
            commands.push(format!(
                "xrelease verify . --certificate-identity {identity} --certificate-oidc-issuer {issuer} \
                 --repo {repo} --tag {tag}"
            ));
            // One downloaded binary, against GitHub's attestation store (the provenance, then
            // its SBOM); `--bundle BINARY.cdx.sigstore.json` works offline too.
            commands.push(format!("gh attestation verify BINARY --repo {repo}"));
            commands.push(format!(
                "gh attestation verify BINARY --repo {repo} --predicate-type {}",
                crate::layout::CYCLONEDX_BOM
            ));
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHANGELOG: &str = "# Changelog\n\n## [Unreleased]\n\n- next\n\n\
        ## [1.0.0] - 2026-01-02\n\n### Added\n\n- the first release\n\n\
        ## [1.0.0-rc.1]\n\n- a candidate\n\n## 0.9.0\n\n- old\n";

    #[test]
    fn changelog_sections_by_heading_style() {
        assert_eq!(
            changelog_section(CHANGELOG, "1.0.0").as_deref(),
            Some("### Added\n\n- the first release")
        );
        assert_eq!(
            changelog_section(CHANGELOG, "1.0.0-rc.1").as_deref(),
            Some("- a candidate")
        );
        assert_eq!(
            changelog_section(CHANGELOG, "0.9.0").as_deref(),
            Some("- old")
        );
        assert_eq!(
            changelog_section("## v2.0.0\nbig\n## v1.0.0\nsmall\n", "2.0.0").as_deref(),
            Some("big")
        );
        assert_eq!(changelog_section(CHANGELOG, "1.0"), None);
        assert_eq!(changelog_section(CHANGELOG, "2.0.0"), None);
        assert_eq!(changelog_section("## 1.0.0\n\n## 0.9.0\n", "1.0.0"), None);
    }

    fn notes(changelog: Option<&str>) -> Notes {
        let key = crate::signing::key::PrivateKey::generate().unwrap();
        Notes {
            tag: "v1.0.0".into(),
            version: "1.0.0".into(),
            repository: Some("o/r".into()),
            prerelease: false,
            changelog: changelog.map(str::to_string),
            artifacts: vec![Row::new("app-1.0.0-linux-amd64", 2048, &"ab".repeat(32))],
            verify_commands: verify_commands(&Policy::Key(key.public_key()), Some("o/r"), "v1.0.0"),
            public_key: Some("cosign.pub".into()),
            install: Some(Install::new(
                Some("o/r"),
                "v1.0.0",
                vec!["tool".into(), "app".into()],
            )),
        }
    }

    #[test]
    fn the_builtin_template_renders_changelog_table_and_commands() {
        let text = notes(Some("- the first release"))
            .render(BUILTIN_TEMPLATE)
            .unwrap();
        assert!(text.starts_with("- the first release\n"), "{text}");
        assert!(
            text.contains(&format!(
                "| `app-1.0.0-linux-amd64` | 2.0 KiB | `{}` |",
                "ab".repeat(32)
            )),
            "{text}"
        );
        for command in [
            "sha256sum -c --strict SHA256SUMS",
            "openssl dgst -sha256 -verify cosign.pub",
            "cosign verify-blob --key cosign.pub",
            "xrelease verify . --key cosign.pub --repo o/r --tag v1.0.0",
        ] {
            assert!(text.contains(command), "{command}:\n{text}");
        }
        assert!(text.contains("`cosign.pub` is published"), "{text}");
        assert!(
            text.contains(
                "curl -fsSL https://github.com/o/r/releases/download/v1.0.0/install.sh | sh -s -- --bin app\n"
            ),
            "{text}"
        );
        assert!(text.contains("`--bin` picks one of: app, tool"), "{text}");
        let one = Install::new(None, "v2.0.0", vec!["app".into()]);
        assert_eq!(
            one.command,
            "curl -fsSL https://github.com/OWNER/REPO/releases/download/v2.0.0/install.sh | sh"
        );
        let without = notes(None).render(BUILTIN_TEMPLATE).unwrap();
        assert!(without.starts_with("## Artifacts"), "{without}");
    }

    #[test]
    fn template_mistakes_are_reported() {
        let err = notes(None).render("{{ changelgo }}").unwrap_err();
        assert!(err.contains("undefined"), "{err}");
        let err = notes(None).render("{% if %}").unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
    }
}
