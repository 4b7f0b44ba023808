//! `[in-toto]` in release.toml: who may sign which step, how many builders must agree, how long
//! a layout lives. Raw (strict serde) → resolved, like the rest of the config.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawInToto {
    maintainers: Option<Vec<String>>,
    ci_key: Option<String>,
    functionary_key: Option<String>,
    threshold: Option<u32>,
    expires_days: Option<u32>,
}

/// The resolved section; present only when release.toml has `[in-toto]`.
#[derive(Debug, Clone)]
pub struct InToto {
    /// Maintainers' public keys: they sign the `tag` step and may sign `build` links.
    pub maintainers: Vec<PathBuf>,
    /// The CI functionary's public key (a `build` signer).
    pub ci_key: PathBuf,
    /// The private half CI signs its `build` links with (password from `COSIGN_PASSWORD`).
    pub functionary_key: PathBuf,
    /// How many distinct keys must sign identical `build` links per platform.
    pub threshold: u32,
    /// Lifetime of a layout written by `xrelease layout`.
    pub expires_days: u32,
}

impl RawInToto {
    /// `default_key` is `[sign] key`: in key mode CI already holds it, so it is the functionary
    /// key unless another is named.
    pub fn resolve(self, root: &Path, default_key: &Path) -> Result<InToto, (String, String)> {
        let maintainers: Vec<PathBuf> = self
            .maintainers
            .unwrap_or_default()
            .iter()
            .map(|p| root.join(p))
            .collect();
        if maintainers.is_empty() {
            return Err((
                "in-toto.maintainers".into(),
                "is empty; list the maintainers' public key files (cosign .pub), e.g. [\"keys/alice.pub\"]".into(),
            ));
        }
        let ci_key = self.ci_key.filter(|s| !s.is_empty()).ok_or_else(|| {
            (
                "in-toto.ci-key".into(),
                "is missing; name the CI functionary's public key file (cosign .pub), e.g. \"keys/ci.pub\"".into(),
            )
        })?;
        let threshold = self.threshold.unwrap_or(2);
        if threshold == 0 {
            return Err(("in-toto.threshold".into(), "must be at least 1".into()));
        }
        if threshold as usize > maintainers.len() + 1 {
            return Err((
                "in-toto.threshold".into(),
                format!(
                    "is {threshold}, but only {} keys may sign a build (the CI key and {} maintainers); lower it or add maintainers",
                    maintainers.len() + 1,
                    maintainers.len()
                ),
            ));
        }
        let expires_days = self.expires_days.unwrap_or(365);
        if expires_days == 0 {
            return Err(("in-toto.expires-days".into(), "must be at least 1".into()));
        }
        Ok(InToto {
            maintainers,
            ci_key: root.join(ci_key),
            functionary_key: self
                .functionary_key
                .filter(|s| !s.is_empty())
                .map(|p| root.join(p))
                .unwrap_or_else(|| default_key.to_path_buf()),
            threshold,
            expires_days,
        })
    }
}
