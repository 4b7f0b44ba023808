//! Release tags, parsed once into a `Tag`: a semantic version, and for a per-package tag the
//! package it releases.
//!
//! The form is `[release] tag-template` (`v{version}` by default; `{version}`,
//! `{package}-v{version}` as release-plz and cargo-release write them, `{package}/v{version}`).
//! `FromStr` accepts any of the common forms so the command line can parse a tag before the
//! config is read; [`Tag::with_template`] then reads it the way the configured template says,
//! and refuses a tag of another form.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

const EXPECTED: &str = "expected `vMAJOR.MINOR.PATCH` or `vMAJOR.MINOR.PATCH-PRERELEASE`, e.g. `v1.2.3` or `v1.2.3-rc.1` \
     (or the form `[release] tag-template` sets: `{version}`, `{package}-v{version}`, `{package}/v{version}`)";

/// The forms `FromStr` recognises, most specific first.
const COMMON: &[&str] = &[
    "v{version}",
    "{package}-v{version}",
    "{package}/v{version}",
    "{version}",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    text: String,
    version: semver::Version,
    package: Option<String>,
}

impl Tag {
    pub fn version(&self) -> &semver::Version {
        &self.version
    }

    /// The package a per-package tag (`{package}-v{version}`) releases; `None`: the workspace.
    pub fn package(&self) -> Option<&str> {
        self.package.as_deref()
    }

    /// A pre-release tag (`v1.2.3-rc.1`) is published as a GitHub pre-release.
    pub fn is_prerelease(&self) -> bool {
        !self.version.pre.is_empty()
    }

    /// The same tag read as `template` says: `Err` when it is not of that form.
    pub fn with_template(&self, template: &TagTemplate) -> Result<Tag, Error> {
        template.read(&self.text)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Tag {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        for form in COMMON {
            let template = TagTemplate::parse(form).expect("the common forms are valid");
            if let Ok(tag) = template.read(s) {
                return Ok(tag);
            }
        }
        // Explain with the default form's reason: it is what most tags are meant to be.
        Err(TagTemplate::default().read(s).unwrap_err())
    }
}

/// `[release] tag-template`: literal text around `{version}` and at most one `{package}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate(String);

impl Default for TagTemplate {
    fn default() -> Self {
        TagTemplate("v{version}".into())
    }
}

impl fmt::Display for TagTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Part<'a> {
    Text(&'a str),
    Version,
    Package,
}

impl TagTemplate {
    pub fn parse(template: &str) -> Result<TagTemplate, String> {
        let t = TagTemplate(template.to_string());
        let parts = t.parts()?;
        let count = |p: Part| parts.iter().filter(|x| **x == p).count();
        if count(Part::Version) != 1 {
            return Err(format!(
                "`{template}` must contain `{{version}}` exactly once"
            ));
        }
        if count(Part::Package) > 1 {
            return Err(format!(
                "`{template}` contains `{{package}}` more than once"
            ));
        }
        if parts
            .windows(2)
            .any(|w| !matches!(w, [Part::Text(_), _] | [_, Part::Text(_)]))
        {
            return Err(format!(
                "`{template}`: `{{package}}` and `{{version}}` need text between them, e.g. `{{package}}-v{{version}}`"
            ));
        }
        if template
            .chars()
            .any(|c| c.is_whitespace() || "~^:?*[\\".contains(c))
        {
            return Err(format!(
                "`{template}` has a character git does not allow in a tag"
            ));
        }
        Ok(t)
    }

    /// Whether tags of this form name a package (`{package}-v{version}`).
    pub fn per_package(&self) -> bool {
        self.0.contains("{package}")
    }

    /// The tag for `version` (and `package`, when the template names one).
    pub fn render(&self, package: &str, version: &semver::Version) -> String {
        self.0
            .replace("{package}", package)
            .replace("{version}", &version.to_string())
    }

    /// A GitHub Actions `on.push.tags` filter that matches this template's tags.
    pub fn ci_pattern(&self) -> String {
        let version = if self.0.starts_with("{version}") {
            "[0-9]*"
        } else {
            "*"
        };
        self.0
            .replace("{package}", "*")
            .replace("{version}", version)
    }

    fn parts(&self) -> Result<Vec<Part<'_>>, String> {
        let mut parts = Vec::new();
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(&rest[..open]));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("`{}` has a `{{` without a closing `}}`", self.0))?;
            parts.push(match &rest[open + 1..open + close] {
                "version" => Part::Version,
                "package" => Part::Package,
                other => {
                    return Err(format!(
                        "`{}` uses unknown placeholder `{{{other}}}`; known: {{version}}, {{package}}",
                        self.0
                    ));
                }
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest));
        }
        Ok(parts)
    }

    /// Reads `s` as a tag of this form. Placeholders are matched leftmost-first with
    /// backtracking, so `my-v2-tool-v1.0.0` reads as package `my-v2-tool`, version `1.0.0`.
    pub fn read(&self, s: &str) -> Result<Tag, Error> {
        let refuse = |why: &str| Error::Tag(format!("invalid tag `{s}`: {why}; {EXPECTED}"));
        let parts = self.parts().map_err(|e| refuse(&e))?;
        let mut found = (None, None);
        let mut why = format!("it is not of the form `{}`", self.0);
        if !matches(&parts, s, &mut found, &mut why) {
            return Err(refuse(&why));
        }
        let (Some(version), package) = found else {
            return Err(refuse(&why));
        };
        Ok(Tag {
            text: s.to_string(),
            version,
            package,
        })
    }
}

type Found = (Option<semver::Version>, Option<String>);

fn matches(parts: &[Part<'_>], s: &str, found: &mut Found, why: &mut String) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return s.is_empty();
    };
    match first {
        Part::Text(text) => s
            .strip_prefix(text)
            .is_some_and(|after| matches(rest, after, found, why)),
        Part::Version | Part::Package => {
            for end in (1..=s.len()).filter(|e| s.is_char_boundary(*e)) {
                let (value, after) = s.split_at(end);
                let saved = found.clone();
                let ok = match first {
                    Part::Version => match version(value) {
                        Ok(v) => {
                            found.0 = Some(v);
                            true
                        }
                        Err(e) => {
                            if rest.is_empty() || after.is_empty() {
                                *why = e;
                            }
                            false
                        }
                    },
                    _ => {
                        let ok = value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                        found.1 = Some(value.to_string());
                        ok
                    }
                };
                if ok && matches(rest, after, found, why) {
                    return true;
                }
                *found = saved;
            }
            false
        }
    }
}

fn version(text: &str) -> Result<semver::Version, String> {
    let v = semver::Version::parse(text).map_err(|e| e.to_string())?;
    if !v.build.is_empty() {
        return Err("build metadata (`+...`) is not allowed in a release tag".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(t: &str) -> TagTemplate {
        TagTemplate::parse(t).unwrap()
    }

    #[test]
    fn release_and_prerelease_tags_parse() {
        let t: Tag = "v1.2.3".parse().unwrap();
        assert_eq!(t.version().to_string(), "1.2.3");
        assert!(!t.is_prerelease());
        assert_eq!(t.to_string(), "v1.2.3");
        assert_eq!(t.package(), None);

        let rc: Tag = "v1.2.3-rc.1".parse().unwrap();
        assert!(rc.is_prerelease());
        assert_eq!(rc.to_string(), "v1.2.3-rc.1");
    }

    #[test]
    fn the_common_forms_parse_without_a_template() {
        let bare: Tag = "1.2.3".parse().unwrap();
        assert_eq!(
            (bare.version().to_string(), bare.package()),
            ("1.2.3".into(), None)
        );
        let dash: Tag = "my-tool-v0.4.0-beta.2".parse().unwrap();
        assert_eq!(dash.package(), Some("my-tool"));
        assert_eq!(dash.version().to_string(), "0.4.0-beta.2");
        let slash: Tag = "tool/v2.0.0".parse().unwrap();
        assert_eq!(slash.package(), Some("tool"));
        assert_eq!(slash.to_string(), "tool/v2.0.0");
    }

    #[test]
    fn malformed_tags_are_refused_with_the_expected_form() {
        for bad in [
            "v1.2",
            "v1.2.3.4",
            "release-1",
            "v01.2.3",
            "",
            "v1.2.3+build.5",
            "V1.2.3",
        ] {
            let err = bad.parse::<Tag>().unwrap_err().to_string();
            assert!(err.contains("vMAJOR.MINOR.PATCH"), "{bad}: {err}");
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
    }

    #[test]
    fn a_template_decides_how_a_tag_reads() {
        let t = template("{package}-v{version}");
        let tag = t.read("my-v2-tool-v1.0.0").unwrap();
        assert_eq!(tag.package(), Some("my-v2-tool"));
        assert_eq!(tag.version().to_string(), "1.0.0");
        let tag = t.read("pkg-v1.0.0-rc-v2").unwrap();
        assert_eq!(tag.package(), Some("pkg"));
        assert_eq!(tag.version().to_string(), "1.0.0-rc-v2");
        // The configured form is authoritative: a tag of another form is refused.
        let err = template("v{version}")
            .read("1.0.0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not of the form `v{version}`"), "{err}");
        assert!(template("{version}").read("v1.0.0").is_err());
        assert!(t.read("v1.0.0").is_err());
        let custom = template("release-{version}");
        assert_eq!(custom.read("release-3.1.4").unwrap().version().minor, 1);
        let tag: Tag = "pkg/v1.0.0".parse().unwrap();
        assert_eq!(
            tag.with_template(&template("{package}/v{version}"))
                .unwrap()
                .package(),
            Some("pkg")
        );
    }

    #[test]
    fn templates_render_and_give_a_ci_pattern() {
        let v = semver::Version::parse("1.2.3").unwrap();
        assert_eq!(
            template("{package}-v{version}").render("app", &v),
            "app-v1.2.3"
        );
        assert_eq!(TagTemplate::default().ci_pattern(), "v*");
        assert_eq!(template("{version}").ci_pattern(), "[0-9]*");
        assert_eq!(template("{package}-v{version}").ci_pattern(), "*-v*");
        assert_eq!(template("{package}/v{version}").ci_pattern(), "*/v*");
        assert!(template("{package}/v{version}").per_package());
    }

    #[test]
    fn bad_templates_are_refused() {
        for (bad, needle) in [
            ("v", "exactly once"),
            ("{version}{version}", "exactly once"),
            ("{package}{version}", "text between"),
            ("{pkg}-{version}", "unknown placeholder"),
            ("v {version}", "git does not allow"),
            ("{package}-{package}-{version}", "more than once"),
        ] {
            let err = TagTemplate::parse(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
