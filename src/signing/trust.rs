//! Where a keyless signer and verifier get their trust material: a `trusted_root.json` file,
//! or the targets a TUF repository publishes (`trusted_root.json`, `signing_config.v0.2.json`).

use std::path::PathBuf;

use super::keyless::KeylessError;
use super::trusted_root::TrustedRootError;
use crate::signing::tuf::{Repository, SIGNING_CONFIG_TARGET, TRUSTED_ROOT_TARGET, TufError};

/// Where a keyless verifier gets its trusted root (Fulcio CAs, Rekor and CT log keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustSource {
    /// A trusted_root.json file (a private Sigstore instance, or one fetched elsewhere).
    File(PathBuf),
    /// The `trusted_root.json` target of a TUF repository: Sigstore's public-good one by default.
    Tuf {
        /// Repository base URL.
        url: String,
        /// Its initial root.json; `None` is the embedded one (Sigstore's repository only).
        initial_root: Option<PathBuf>,
        /// Use only what an earlier run cached; never touch the network.
        offline: bool,
    },
}

impl Default for TrustSource {
    fn default() -> Self {
        TrustSource::Tuf {
            url: crate::signing::tuf::SIGSTORE_TUF_URL.to_owned(),
            initial_root: None,
            offline: false,
        }
    }
}

/// A trusted root, parsed.
#[derive(Debug)]
pub struct ResolvedRoot {
    /// The root.
    pub root: super::sigstore::Root,
}

/// A trust document's text before parsing, and where it came from.
#[derive(Debug)]
pub struct RootJson {
    pub text: String,
    /// A path or URL, for messages.
    pub source: String,
}

impl TrustSource {
    /// From `[sign]` or the verify flags: a file wins; else the TUF repository at `tuf_url`
    /// (default Sigstore's), trusting `tuf_root` (default the embedded root).
    pub fn new(
        trusted_root: Option<PathBuf>,
        tuf_url: Option<String>,
        tuf_root: Option<PathBuf>,
        offline: bool,
    ) -> Self {
        match trusted_root {
            Some(path) => TrustSource::File(path),
            None => TrustSource::Tuf {
                url: tuf_url.unwrap_or_else(|| crate::signing::tuf::SIGSTORE_TUF_URL.to_owned()),
                initial_root: tuf_root,
                offline,
            },
        }
    }

    /// Reads the file, or updates the TUF metadata (or re-verifies the cache, offline) and
    /// parses the verified `trusted_root.json` target. Never falls back to anything weaker.
    pub fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ResolvedRoot, KeylessError> {
        let json = self.resolve_json(env)?;
        Ok(ResolvedRoot {
            root: super::sigstore::Root::from_json(&json.text, &json.source)?,
        })
    }

    /// The trusted root's JSON text, read or fetched as [`TrustSource::resolve`] does.
    pub fn resolve_json(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RootJson, KeylessError> {
        match self {
            TrustSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| TrustedRootError::Read {
                    path: path.display().to_string(),
                    source: e,
                })?;
                let source = path.display().to_string();
                Ok(RootJson { text, source })
            }
            TrustSource::Tuf { url, .. } => {
                self.target(TRUSTED_ROOT_TARGET, env)?.ok_or_else(|| {
                    TufError::NoTarget {
                        url: url.trim_end_matches('/').to_owned(),
                        name: TRUSTED_ROOT_TARGET.to_owned(),
                    }
                    .into()
                })
            }
        }
    }

    /// The signing config (`signing_config.v0.2.json`: which Fulcio, Rekor and timestamp
    /// authority to use) the TUF repository publishes, verified as the trusted root is.
    /// `None` for a trusted root file, and for a repository that publishes none.
    pub fn resolve_signing_config_json(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<RootJson>, KeylessError> {
        match self {
            TrustSource::File(_) => Ok(None),
            TrustSource::Tuf { .. } => self.target(SIGNING_CONFIG_TARGET, env),
        }
    }

    /// One target of the TUF repository, as text; `None` if the repository lists no `name`.
    fn target(
        &self,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<RootJson>, KeylessError> {
        let TrustSource::Tuf {
            url,
            initial_root,
            offline,
        } = self
        else {
            return Ok(None);
        };
        let initial = match initial_root {
            Some(path) => Some(std::fs::read(path).map_err(|e| TufError::Io {
                what: "reading the initial TUF root",
                path: path.clone(),
                detail: e.to_string(),
            })?),
            None => None,
        };
        let repo = Repository::new(url, initial, env)?;
        let Some(bytes) = repo.fetch(&[name], *offline)?.pop().flatten() else {
            return Ok(None);
        };
        let source = format!("{}/targets/{name}", repo.url);
        let text = String::from_utf8(bytes).map_err(|_| TrustedRootError::Parse {
            path: source.clone(),
            detail: "not UTF-8".to_owned(),
        })?;
        Ok(Some(RootJson { text, source }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_trusted_root_comes_from_sigstores_tuf_repository_unless_configured() {
        assert_eq!(
            TrustSource::default(),
            TrustSource::Tuf {
                url: "https://tuf-repo-cdn.sigstore.dev".to_owned(),
                initial_root: None,
                offline: false,
            }
        );
        let file = TrustSource::new(Some("/r.json".into()), Some("https://x".into()), None, true);
        assert_eq!(file, TrustSource::File("/r.json".into()));
        assert!(
            file.resolve_signing_config_json(&env(&[]))
                .unwrap()
                .is_none()
        );

        // Offline with nothing cached: fail closed, naming the cache and the fixes.
        let empty_cache = tempfile_dir();
        let cache_env = [("XDG_CACHE_HOME", empty_cache.to_str().unwrap())];
        let offline = TrustSource::new(None, None, None, true);
        for err in [
            offline.resolve(&env(&cache_env)).unwrap_err(),
            offline
                .resolve_signing_config_json(&env(&cache_env))
                .unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(
                text.contains("no trusted root cached for https://tuf-repo-cdn.sigstore.dev"),
                "{text}"
            );
            assert!(
                text.contains(&format!(
                    "{}/xrelease/tuf/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev",
                    empty_cache.display()
                )),
                "{text}"
            );
            assert!(
                text.contains("without `--offline`") && text.contains("--trusted-root"),
                "{text}"
            );
        }
        std::fs::remove_dir_all(&empty_cache).unwrap();

        // Another repository needs its own anchor.
        let private = TrustSource::new(None, Some("https://tuf.example".into()), None, false);
        let err = private.resolve(&env(&cache_env)).unwrap_err();
        assert!(err.to_string().contains("pass `--tuf-root FILE`"), "{err}");

        let missing = TrustSource::File(PathBuf::from("/nonexistent/trusted_root.json"));
        let err = missing.resolve(&env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/trusted_root.json"),
            "{err}"
        );
    }

    /// A fresh directory under the system temp dir (the lib's unit tests have no tempfile).
    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "xrelease-trust-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
