//! Release tags: `v` + a semantic version, parsed once into a `Tag`.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

const EXPECTED: &str = "expected `vMAJOR.MINOR.PATCH` or `vMAJOR.MINOR.PATCH-PRERELEASE`, e.g. `v1.2.3` or `v1.2.3-rc.1`";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    version: semver::Version,
}

impl Tag {
    pub fn version(&self) -> &semver::Version {
        &self.version
    }

    /// A pre-release tag (`v1.2.3-rc.1`) is published as a GitHub pre-release.
    pub fn is_prerelease(&self) -> bool {
        !self.version.pre.is_empty()
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.version)
    }
}

impl FromStr for Tag {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refuse = |why: &str| Error::Tag(format!("invalid tag `{s}`: {why}; {EXPECTED}"));
        let rest = s
            .strip_prefix('v')
            .ok_or_else(|| refuse("it must start with `v`"))?;
        let version = semver::Version::parse(rest).map_err(|e| refuse(&e.to_string()))?;
        if !version.build.is_empty() {
            return Err(refuse(
                "build metadata (`+...`) is not allowed in a release tag",
            ));
        }
        Ok(Tag { version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_and_prerelease_tags_parse() {
        let t: Tag = "v1.2.3".parse().unwrap();
        assert_eq!(t.version().to_string(), "1.2.3");
        assert!(!t.is_prerelease());
        assert_eq!(t.to_string(), "v1.2.3");

        let rc: Tag = "v1.2.3-rc.1".parse().unwrap();
        assert!(rc.is_prerelease());
        assert_eq!(rc.to_string(), "v1.2.3-rc.1");
    }

    #[test]
    fn malformed_tags_are_refused_with_the_expected_form() {
        for bad in [
            "1.2.3",
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
}
