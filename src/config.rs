//! release.toml: strict raw form (serde, unknown keys refused) → resolved, validated `Config`.
//!
//! Every key has a default here, beside the code that reads it, so an empty file is a valid config.
//! `release.local.toml` (never committed) holds this machine's `[target.*]` overrides, written by
//! `xrelease doctor --fix`; its values win over release.toml's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::platform::{self, Target};
use crate::signing::services::RekorVersion;
use crate::tag::TagTemplate;

pub const DEFAULT_FILE: &str = "release.toml";
pub const LOCAL_FILE: &str = "release.local.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    #[serde(default)]
    release: RawRelease,
    #[serde(default)]
    target: BTreeMap<String, Toolchain>,
    #[serde(default)]
    sbom: RawSbom,
    #[serde(default)]
    sign: RawSign,
    #[serde(default)]
    github: RawGithub,
    #[serde(default, rename = "in-toto")]
    in_toto: Option<crate::intoto::config::RawInToto>,
    /// Absent: no container images. Present (even empty): one image per bin.
    image: Option<crate::image::config::RawImage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRelease {
    name_template: Option<String>,
    targets: Option<Vec<String>>,
    bins: Option<Vec<String>>,
    exclude_bins: Option<Vec<String>>,
    notes_template: Option<String>,
    pre_release_checks: Option<Vec<String>>,
    precise_builds: Option<bool>,
    tag_template: Option<String>,
    profile: Option<String>,
    strip: Option<bool>,
    max_glibc: Option<String>,
}

/// Per-target toolchain override: which rustc, which linker, how to run the result, extra env.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Toolchain {
    pub rustc: Option<String>,
    pub linker: Option<String>,
    pub runner: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The GitHub Actions runner that builds this target (default: a native one).
    pub ci_runner: Option<String>,
}

impl Toolchain {
    /// `other`'s keys win: used to lay release.local.toml over release.toml.
    fn overlay(&mut self, other: Toolchain) {
        if other.rustc.is_some() {
            self.rustc = other.rustc;
        }
        if other.linker.is_some() {
            self.linker = other.linker;
        }
        if other.runner.is_some() {
            self.runner = other.runner;
        }
        if other.ci_runner.is_some() {
            self.ci_runner = other.ci_runner;
        }
        self.env.extend(other.env);
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSbom {
    spec_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSign {
    mode: Option<String>,
    key: Option<String>,
    fulcio_url: Option<String>,
    rekor_url: Option<String>,
    signing_config: Option<String>,
    rekor_version: Option<i64>,
    trusted_root: Option<String>,
    tuf_url: Option<String>,
    tuf_root: Option<String>,
    identity: Option<String>,
    issuer: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawGithub {
    repository: Option<String>,
}

/// Only `[target.*]` belongs in the local file: it describes this machine, not the release.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    #[serde(default)]
    target: BTreeMap<String, Toolchain>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMode {
    Keyless,
    Key,
}

#[derive(Debug, Clone)]
pub struct Sign {
    pub mode: SignMode,
    pub key: PathBuf,
    /// Keyless: the signing config and the `fulcio-url`/`rekor-url`/`rekor-version` keys that
    /// choose the Sigstore services (resolved against the config by `signing::services`).
    pub services: crate::signing::services::Choice,
    pub trusted_root: Option<PathBuf>,
    /// The TUF repository the trusted root is fetched from when `trusted_root` is unset.
    pub tuf_url: Option<String>,
    /// That repository's initial root.json (needed for any but Sigstore's own).
    pub tuf_root: Option<PathBuf>,
    pub identity: Option<String>,
    pub issuer: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The directory release.toml lives in: relative paths in it are relative to this.
    pub root: PathBuf,
    pub name_template: NameTemplate,
    pub targets: Vec<Target>,
    pub bins: Vec<String>,
    pub exclude_bins: Vec<String>,
    pub notes_template: PathBuf,
    pub pre_release_checks: Vec<String>,
    pub precise_builds: bool,
    /// How tags are spelled: `v{version}` by default.
    pub tag_template: TagTemplate,
    /// The cargo profile every target is built with (`release` by default).
    pub profile: String,
    /// Strip debug info from what is published (cargo's `strip = "debuginfo"`), unless the
    /// workspace's own profile already says how to strip.
    pub strip: bool,
    /// The newest glibc a linux-gnu binary may need (`2.28`); the gate refuses a higher floor.
    pub max_glibc: Option<GlibcVersion>,
    pub toolchains: BTreeMap<String, Toolchain>,
    pub sbom_spec_version: String,
    pub sign: Sign,
    pub github_repository: Option<String>,
    /// `[in-toto]`: layout, tag and build links (src/intoto/config.rs owns its keys).
    pub in_toto: Option<crate::intoto::config::InToto>,
    /// `[image]`: container images of the release's static binaries (None: off).
    pub image: Option<crate::image::config::Image>,
}

impl Config {
    pub fn toolchain(&self, target: &Target) -> Toolchain {
        self.toolchains
            .get(&target.triple)
            .cloned()
            .unwrap_or_default()
    }
}

/// `{bin}-{version}-{platform}` and friends; `{bin}` and `{platform}` are required so names differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTemplate(String);

const PLACEHOLDERS: &[&str] = &["bin", "version", "platform", "target", "package", "tag"];

impl NameTemplate {
    pub fn parse(template: &str) -> std::result::Result<NameTemplate, String> {
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("`{template}` has a `{{` without a closing `}}`"))?;
            let name = &rest[open + 1..open + close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "`{template}` uses unknown placeholder `{{{name}}}`; known: {}",
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            rest = &rest[open + close + 1..];
        }
        for required in ["{bin}", "{platform}"] {
            if !template.contains(required) {
                return Err(format!(
                    "`{template}` lacks `{required}`: without it two artifacts would get the same name"
                ));
            }
        }
        if template.contains('/') || template.contains('\\') {
            return Err(format!(
                "`{template}` contains a path separator; names must be plain file names"
            ));
        }
        Ok(NameTemplate(template.to_string()))
    }

    pub fn render(&self, vars: &[(&str, &str)]) -> String {
        let mut out = self.0.clone();
        for (key, value) in vars {
            out = out.replace(&format!("{{{key}}}"), value);
        }
        out
    }
}

impl Default for NameTemplate {
    fn default() -> Self {
        NameTemplate("{bin}-{version}-{platform}".to_string())
    }
}

/// Reads `path` (missing + not explicitly asked for = all defaults) and the local overrides beside it.
pub fn load(path: &Path, explicit: bool) -> Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
        Err(e) => return Err(Error::io("cannot read the config", path)(e)),
    };
    let root = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut config = parse(&text, path, root.clone())?;

    let local_path = root.join(LOCAL_FILE);
    if let Ok(local_text) = std::fs::read_to_string(&local_path) {
        let local: RawLocal =
            toml::from_str(&local_text).map_err(|e| located(&local_path, &local_text, &e))?;
        for (triple, toolchain) in local.target {
            config
                .toolchains
                .entry(triple)
                .or_default()
                .overlay(toolchain);
        }
    }
    Ok(config)
}

/// Parses and resolves config text; `path` is only used to name the file in errors.
pub fn parse(text: &str, path: &Path, root: PathBuf) -> Result<Config> {
    let raw: Raw = toml::from_str(text).map_err(|e| located(path, text, &e))?;
    resolve(raw, path, root)
}

fn resolve(raw: Raw, path: &Path, root: PathBuf) -> Result<Config> {
    let bad = |key: &str, why: String| Error::Config(format!("{}: `{key}`: {why}", path.display()));
    let r = raw.release;

    let name_template = match r.name_template {
        Some(t) => NameTemplate::parse(&t).map_err(|why| bad("release.name-template", why))?,
        None => NameTemplate::default(),
    };

    let tag_template = match r.tag_template {
        Some(t) => TagTemplate::parse(&t).map_err(|why| bad("release.tag-template", why))?,
        None => TagTemplate::default(),
    };
    let profile = r.profile.unwrap_or_else(|| "release".into());
    if profile.is_empty()
        || profile == "dev"
        || profile == "test"
        || !profile
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad(
            "release.profile",
            format!(
                "`{profile}` is not a release profile; name one of Cargo.toml's `[profile.*]` (default \"release\")"
            ),
        ));
    }
    let max_glibc = match r.max_glibc.filter(|v| !v.is_empty()) {
        Some(v) => Some(GlibcVersion::parse(&v).ok_or_else(|| {
            bad(
                "release.max-glibc",
                format!("`{v}` is not a glibc version like \"2.28\""),
            )
        })?),
        None => None,
    };

    let triples = r.targets.unwrap_or_else(|| {
        vec![
            "x86_64-unknown-linux-gnu".into(),
            "aarch64-unknown-linux-gnu".into(),
        ]
    });
    if triples.is_empty() {
        return Err(bad(
            "release.targets",
            "is empty; list at least one target triple".into(),
        ));
    }
    let mut targets = Vec::new();
    for triple in &triples {
        let target = Target::new(triple).ok_or_else(|| {
            bad(
                "release.targets",
                format!(
                    "unknown target triple `{triple}`; known: {}",
                    platform::known_triples().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        if targets.contains(&target) {
            return Err(bad(
                "release.targets",
                format!("`{triple}` is listed twice"),
            ));
        }
        targets.push(target);
    }
    for triple in raw.target.keys() {
        if Target::new(triple).is_none() {
            return Err(bad(
                &format!("target.{triple}"),
                "is not a known target triple".into(),
            ));
        }
    }

    let spec_version = raw.sbom.spec_version.unwrap_or_else(|| "1.5".into());
    if spec_version != "1.5" {
        return Err(bad(
            "sbom.spec-version",
            format!("CycloneDX `{spec_version}` is not supported yet; use \"1.5\""),
        ));
    }

    let s = raw.sign;
    let mode = match s.mode.as_deref().unwrap_or("keyless") {
        "keyless" => SignMode::Keyless,
        "key" => SignMode::Key,
        other => {
            return Err(bad(
                "sign.mode",
                format!("`{other}` is not a mode; use \"keyless\" or \"key\""),
            ));
        }
    };
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let rekor_version = match s.rekor_version {
        None => None,
        Some(n) => Some(RekorVersion::from_major(n).ok_or_else(|| {
            bad(
                "sign.rekor-version",
                format!("`{n}` is not a Rekor API version; use 1 (the default) or 2"),
            )
        })?),
    };
    let sign = Sign {
        mode,
        key: root.join(s.key.unwrap_or_else(|| "cosign.key".into())),
        services: crate::signing::services::Choice {
            signing_config: non_empty(s.signing_config).map(|p| root.join(p)),
            fulcio_url: non_empty(s.fulcio_url),
            rekor_url: non_empty(s.rekor_url),
            rekor_version,
        },
        trusted_root: non_empty(s.trusted_root).map(|p| root.join(p)),
        tuf_url: non_empty(s.tuf_url),
        tuf_root: non_empty(s.tuf_root).map(|p| root.join(p)),
        identity: non_empty(s.identity),
        issuer: non_empty(s.issuer),
    };

    if sign.trusted_root.is_some() && (sign.tuf_url.is_some() || sign.tuf_root.is_some()) {
        return Err(bad(
            "sign.trusted-root",
            "a trusted root file and a TUF repository are two sources for the same thing; set `trusted-root`, or `tuf-url`/`tuf-root`, not both".to_owned(),
        ));
    }

    let github_repository = non_empty(raw.github.repository);
    if let Some(repo) = &github_repository {
        check_repository(repo).map_err(|why| bad("github.repository", why))?;
    }

    let in_toto = match raw.in_toto {
        Some(section) => Some(
            section
                .resolve(&root, &sign.key)
                .map_err(|(key, why)| bad(&key, why))?,
        ),
        None => None,
    };

    let image = raw
        .image
        .map(|raw| crate::image::config::resolve(raw, &targets, github_repository.as_deref()))
        .transpose()
        .map_err(|(key, why)| bad(&format!("image.{key}"), why))?;

    Ok(Config {
        image,
        in_toto,
        name_template,
        targets,
        bins: r.bins.unwrap_or_default(),
        exclude_bins: r.exclude_bins.unwrap_or_default(),
        notes_template: root.join(
            r.notes_template
                .unwrap_or_else(|| "templates/release-notes.md.j2".into()),
        ),
        pre_release_checks: r.pre_release_checks.unwrap_or_default(),
        precise_builds: r.precise_builds.unwrap_or(true),
        tag_template,
        profile,
        strip: r.strip.unwrap_or(true),
        max_glibc,
        toolchains: raw.target,
        sbom_spec_version: spec_version,
        sign,
        github_repository,
        root,
    })
}

/// A glibc version, `MAJOR.MINOR[.PATCH]` as in the `GLIBC_2.34` symbol versions binaries need.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GlibcVersion(Vec<u32>);

impl GlibcVersion {
    pub fn parse(text: &str) -> Option<GlibcVersion> {
        let parts: Option<Vec<u32>> = text.split('.').map(|p| p.parse().ok()).collect();
        parts
            .filter(|p| (2..=3).contains(&p.len()))
            .map(GlibcVersion)
    }
}

impl std::fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

impl TryFrom<String> for GlibcVersion {
    type Error = String;
    fn try_from(text: String) -> std::result::Result<Self, String> {
        GlibcVersion::parse(&text).ok_or_else(|| format!("`{text}` is not a glibc version"))
    }
}

impl From<GlibcVersion> for String {
    fn from(v: GlibcVersion) -> String {
        v.to_string()
    }
}

/// `OWNER/REPO`, both parts non-empty and free of URL syntax.
pub fn check_repository(repo: &str) -> std::result::Result<(), String> {
    let ok = repo.split('/').count() == 2
        && repo.split('/').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(format!("`{repo}` is not of the form OWNER/REPO"))
    }
}

/// A TOML error as `file:line:column: message`, the form editors jump to.
fn located(path: &Path, text: &str, err: &toml::de::Error) -> Error {
    let (line, column) = match err.span() {
        Some(span) => line_column(text, span.start),
        None => (1, 1),
    };
    Error::Config(format!(
        "{}:{line}:{column}: {}",
        path.display(),
        err.message().trim_end()
    ))
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config> {
        parse(text, Path::new("release.toml"), PathBuf::from("."))
    }

    #[test]
    fn an_empty_file_is_all_defaults() {
        let c = parse_str("").unwrap();
        assert_eq!(c.name_template, NameTemplate::default());
        let triples: Vec<_> = c.targets.iter().map(|t| t.triple.as_str()).collect();
        assert_eq!(
            triples,
            ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]
        );
        assert!(c.bins.is_empty() && c.exclude_bins.is_empty() && c.pre_release_checks.is_empty());
        assert!(c.precise_builds);
        assert_eq!(c.tag_template.to_string(), "v{version}");
        assert_eq!(
            (c.profile.as_str(), c.strip, c.max_glibc),
            ("release", true, None)
        );
        assert_eq!(c.sbom_spec_version, "1.5");
        assert_eq!(c.sign.mode, SignMode::Keyless);
        // No URL keys: the signing config (or the public-good defaults) decides.
        assert_eq!(c.sign.services, Default::default());
    }

    #[test]
    fn every_documented_key_is_accepted() {
        let text = r#"
[release]
name-template = "{bin}-{version}-{platform}"
targets = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]
bins = []
exclude-bins = ["xtask"]
notes-template = "templates/release-notes.md.j2"
pre-release-checks = ["cargo test --locked"]
precise-builds = true
tag-template = "{package}-v{version}"
profile = "release-lto"
strip = false
max-glibc = "2.28"

[target.aarch64-unknown-linux-gnu]
rustc = "/usr/bin/rustc"
linker = "aarch64-linux-gnu-gcc"
runner = "qemu-aarch64-static -L /usr/aarch64-linux-gnu"
env = { FOO = "bar" }
ci-runner = "ubuntu-24.04"

[sbom]
spec-version = "1.5"

[sign]
mode = "key"
key = "cosign.key"
fulcio-url = "https://fulcio.example"
rekor-url = "https://rekor.example"
signing-config = "signing_config.v0.2.json"
rekor-version = 2
trusted-root = "trusted_root.json"
identity = "me"
issuer = "https://issuer.example"

[github]
repository = "owner/repo"
"#;
        let c = parse_str(text).unwrap();
        assert_eq!(c.exclude_bins, ["xtask"]);
        assert!(c.tag_template.per_package());
        assert_eq!((c.profile.as_str(), c.strip), ("release-lto", false));
        assert_eq!(c.max_glibc.unwrap().to_string(), "2.28");
        assert_eq!(c.sign.mode, SignMode::Key);
        assert_eq!(c.sign.services.rekor_version, Some(RekorVersion::V2));
        assert_eq!(
            c.sign.services.fulcio_url.as_deref(),
            Some("https://fulcio.example")
        );
        assert!(
            c.sign
                .services
                .signing_config
                .as_ref()
                .is_some_and(|p| p.ends_with("signing_config.v0.2.json"))
        );
        assert!(
            parse_str("[sign]\nrekor-version = 3\n")
                .unwrap_err()
                .to_string()
                .contains("use 1 (the default) or 2")
        );
        let t = &c.toolchains["aarch64-unknown-linux-gnu"];
        assert_eq!(t.linker.as_deref(), Some("aarch64-linux-gnu-gcc"));
        assert_eq!(t.env["FOO"], "bar");
        assert_eq!(c.github_repository.as_deref(), Some("owner/repo"));
    }

    #[test]
    fn unknown_key_names_key_line_and_column() {
        let err = parse_str("[release]\ntargets = []\n\n[release.extra]\n")
            .unwrap_err()
            .to_string();
        let err2 = parse_str("[release]\nname-templat = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err2.starts_with("release.toml:2:1:"), "{err2}");
        assert!(err2.contains("unknown field `name-templat`"), "{err2}");
        assert!(err.contains("release.toml:"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_position() {
        let err = parse_str("[release]\ntargets = \"x86_64-unknown-linux-gnu\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("release.toml:2:11:"), "{err}");
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn unknown_target_is_refused() {
        let err = parse_str("[release]\ntargets = [\"x86_64-unknown-linux-gnux\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown target triple `x86_64-unknown-linux-gnux`"),
            "{err}"
        );
    }

    #[test]
    fn name_templates_need_bin_and_platform() {
        for (template, needle) in [
            ("{bin}-{version}", "lacks `{platform}`"),
            ("{version}-{platform}", "lacks `{bin}`"),
            ("{bin}-{arch}-{platform}", "unknown placeholder `{arch}`"),
            ("{bin}/{platform}", "path separator"),
        ] {
            let err = parse_str(&format!("[release]\nname-template = \"{template}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{template}: {err}");
        }
        let t = NameTemplate::parse("{bin}_{platform}_{version}").unwrap();
        assert_eq!(
            t.render(&[
                ("bin", "a"),
                ("platform", "linux-amd64"),
                ("version", "1.0.0")
            ]),
            "a_linux-amd64_1.0.0"
        );
    }

    #[test]
    fn unsupported_sbom_spec_and_sign_mode_are_refused() {
        assert!(
            parse_str("[sbom]\nspec-version = \"1.6\"\n")
                .unwrap_err()
                .to_string()
                .contains("not supported yet")
        );
        assert!(
            parse_str("[sign]\nmode = \"gpg\"\n")
                .unwrap_err()
                .to_string()
                .contains("\"keyless\" or \"key\"")
        );
    }

    #[test]
    fn bad_tag_template_profile_and_glibc_are_refused() {
        for (text, needle) in [
            (
                "tag-template = \"{name}-{version}\"",
                "release.tag-template",
            ),
            ("profile = \"dev\"", "not a release profile"),
            ("max-glibc = \"2\"", "not a glibc version"),
        ] {
            let err = parse_str(&format!("[release]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let v = |s: &str| GlibcVersion::parse(s).unwrap();
        assert!(v("2.34") > v("2.28") && v("2.3.4") < v("2.4") && v("2.28") < v("2.28.1"));
    }

    #[test]
    fn local_overrides_win() {
        let mut base = Toolchain {
            linker: Some("a".into()),
            runner: Some("r".into()),
            ..Default::default()
        };
        base.overlay(Toolchain {
            linker: Some("b".into()),
            ..Default::default()
        });
        assert_eq!(base.linker.as_deref(), Some("b"));
        assert_eq!(base.runner.as_deref(), Some("r"));
    }
}
