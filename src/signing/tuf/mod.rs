//! Sigstore's trust material (`trusted_root.json`, `signing_config.v0.2.json`) from a TUF
//! repository, through the sigstore-rust TUF client (`sigstore-tuf`).
//!
//! The protocol is the crate's: the root chain from the initial root, timestamp → snapshot →
//! targets with thresholds, rollback and freeze checks, and targets checked against their listed
//! length and hashes; every use of the cache re-verifies it from the initial root. xrelease
//! owns only the policy, and what the crate lacks (`sigstore-trust-root`'s own TUF entry points,
//! `TufConfig` and `fetch_trust_material`, are not used: they flatten every failure into one
//! string, and are built on the pieces below that fall short):
//! - which repository and initial root (Sigstore's public-good one, embedded by
//!   `sigstore-trust-root`, unless `--tuf-url`/`--tuf-root` say otherwise) and where the cache
//!   lives (`$XDG_CACHE_HOME/xrelease/tuf/<repository>/`);
//! - the transport ([`Remote`]): the crate's HTTP transport reports an endless-data refusal and
//!   an unreachable host as the same `Transport` error, told apart only by its wording, and
//!   xrelease's exit codes depend on the difference;
//! - an all-or-nothing cache ([`Staged`]): the crate writes each file through as it verifies,
//!   so an update interrupted after the timestamp would leave a cache whose new metadata lists
//!   targets it does not hold; xrelease writes the files only once every target verified;
//! - offline reads ([`Cached`]): the crate's offline transport misses the version-prefixed and
//!   hash-prefixed names a consistent-snapshot repository uses, so an expired `targets.json` or
//!   an altered target would read as "not found" rather than as what it is.

mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sigstore_trust_root::SigstoreInstance;
use sigstore_tuf::{FileStore, Updater};

use store::{Cached, Remote, Staged};

/// Sigstore's public-good TUF repository (`SigstoreInstance::PublicGood`'s, checked by a test).
pub const SIGSTORE_TUF_URL: &str = "https://tuf-repo-cdn.sigstore.dev";

/// The target that holds a Sigstore instance's trusted root.
pub const TRUSTED_ROOT_TARGET: &str = sigstore_trust_root::TRUSTED_ROOT_TARGET;

/// The target that holds a Sigstore instance's signing config (Fulcio, Rekor, TSA URLs).
pub const SIGNING_CONFIG_TARGET: &str = sigstore_trust_root::SIGNING_CONFIG_TARGET;

/// Why the trust material could not be established. [`TufError::is_untrusted`] says whether
/// the repository (or the cache) held something that must not be trusted, as opposed to
/// something that could not be reached or read.
#[derive(Debug, thiserror::Error)]
pub enum TufError {
    #[error(
        "cannot reach the TUF repository: GET {url}: {detail}. Check the network; to verify without it, pass `--offline` (the trusted root cached by an earlier run) or `--trusted-root FILE`"
    )]
    Transport { url: String, detail: String },
    #[error("GET {url} answered HTTP {status}; a TUF repository serves its metadata with 200")]
    Status { url: String, status: u16 },
    #[error(
        "{url} is larger than the {limit} bytes allowed for it; refusing an endless-data attack"
    )]
    TooLarge { url: String, limit: u64 },
    #[error(
        "the TUF repository at {url} is incomplete: {detail} (a file its verified metadata leads to); try again later, or pass `--offline` or `--trusted-root FILE`"
    )]
    Incomplete { url: String, detail: String },
    #[error("the TUF repository at {url} served metadata that does not verify: {detail}{hint}")]
    Refused {
        url: String,
        detail: String,
        hint: &'static str,
    },
    #[error(
        "the TUF metadata cached for {url} does not verify (in {dir}): {detail}{hint}; run once without `--offline` to replace it, or pass `--trusted-root FILE`"
    )]
    CacheRefused {
        url: String,
        dir: String,
        detail: String,
        hint: &'static str,
    },
    #[error(
        "the cached {role} metadata of {url} expired at {expires} (in {dir}): `--offline` does not verify with expired TUF metadata. Run once without `--offline` to refresh the cache, or pass `--trusted-root FILE`"
    )]
    CacheExpired {
        url: String,
        dir: String,
        role: String,
        expires: String,
    },
    #[error(
        "the TUF repository at {url} lists no target {name} (neither in its top-level targets nor in a delegation)"
    )]
    NoTarget { url: String, name: String },
    #[error(
        "the initial TUF root is not a usable root.json ({detail}); pass the repository's root.json with `--tuf-root FILE`"
    )]
    BadInitialRoot { detail: String },
    #[error(
        "no trusted root cached for {url} (looked in {dir}{detail}): run `xrelease verify` once without `--offline` to fetch it over TUF, or pass `--trusted-root FILE`"
    )]
    NoCache {
        url: String,
        dir: String,
        detail: String,
    },
    #[error(
        "{url} is not Sigstore's public-good TUF repository, so xrelease has no initial root for it: pass `--tuf-root FILE` (or `[sign] tuf-root`) with a root.json of that repository you trust"
    )]
    NoInitialRoot { url: String },
    #[error(
        "no cache directory for TUF metadata: set XDG_CACHE_HOME or HOME, or pass `--trusted-root FILE`"
    )]
    NoCacheDir,
    #[error("{what}: {path}: {detail}")]
    Io {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
}

impl TufError {
    /// True when metadata or a target was served (or cached) but failed verification, as
    /// opposed to a network, cache or configuration problem.
    pub fn is_untrusted(&self) -> bool {
        matches!(
            self,
            TufError::TooLarge { .. }
                | TufError::Refused { .. }
                | TufError::CacheRefused { .. }
                | TufError::CacheExpired { .. }
                | TufError::NoTarget { .. }
        )
    }
}

/// A TUF repository, its trust anchor, and where its verified metadata is cached.
#[derive(Debug, Clone)]
pub struct Repository {
    /// Base URL, no trailing slash: metadata at `URL/N.root.json`, targets at `URL/targets/`.
    pub url: String,
    /// The root.json trusted without verification (beyond its own signatures).
    pub initial_root: Vec<u8>,
    /// `$XDG_CACHE_HOME/xrelease/tuf/<url, percent-encoded>/`.
    pub cache: PathBuf,
}

impl Repository {
    /// The repository at `url`, trusting `initial_root` (required unless `url` is Sigstore's,
    /// whose initial root `sigstore-trust-root` embeds).
    pub fn new(
        url: &str,
        initial_root: Option<Vec<u8>>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TufError> {
        let url = url.trim_end_matches('/').to_owned();
        let initial_root = match initial_root {
            Some(bytes) => bytes,
            None if url == SIGSTORE_TUF_URL => SigstoreInstance::PublicGood.tuf_root().to_vec(),
            None => return Err(TufError::NoInitialRoot { url }),
        };
        let non_empty = |name| env(name).filter(|v| !v.is_empty());
        let cache_home = non_empty("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| non_empty("HOME").map(|home| Path::new(&home).join(".cache")))
            .ok_or(TufError::NoCacheDir)?;
        let cache = cache_home.join("xrelease").join("tuf").join(escape(&url));
        Ok(Self {
            url,
            initial_root,
            cache,
        })
    }

    /// Updates the metadata over the network (or, `offline`, re-verifies the cache alone) and
    /// returns each target in `names`, verified; `None` for a target the repository does not
    /// list. Online, the cache is written only once everything verified.
    pub fn fetch(&self, names: &[&str], offline: bool) -> Result<Vec<Option<Vec<u8>>>, TufError> {
        let classify = |e| self.classify(e, offline);
        let disk = FileStore::new(&self.cache);
        let staged = Arc::new(Staged::new(disk.clone()));
        let updater = if offline {
            if !self.cache.join("timestamp.json").is_file() {
                return Err(self.no_cache(""));
            }
            Updater::new(Cached::new(disk), &self.initial_root)
        } else {
            Updater::new(Remote::new(&self.url), &self.initial_root)
        };
        let mut updater = updater
            .map_err(|e| TufError::BadInitialRoot { detail: chain(&e) })?
            .with_store(Arc::clone(&staged));
        let now = jiff::Timestamp::now();
        futures::executor::block_on(async {
            updater.refresh(now).await.map_err(classify)?;
            let mut targets = Vec::new();
            for name in names {
                match updater.get_target(name, now).await {
                    Ok(bytes) => targets.push(Some(bytes)),
                    Err(sigstore_tuf::Error::TargetNotFound(_)) => targets.push(None),
                    Err(e) => return Err(classify(e)),
                }
            }
            if !offline {
                staged.commit().map_err(|e| TufError::Io {
                    what: "writing the TUF cache",
                    path: self.cache.clone(),
                    detail: chain(&e),
                })?;
            }
            Ok(targets)
        })
    }

    /// A `sigstore-tuf` error as the situation the user is in.
    fn classify(&self, err: sigstore_tuf::Error, offline: bool) -> TufError {
        use sigstore_tuf::Error as E;
        let url = self.url.clone();
        let dir = self.cache.display().to_string();
        match err {
            // Our transport's own errors travel inside the crate's.
            E::Transport {
                source: Some(source),
                ..
            } if source.is::<TufError>() => *source.downcast::<TufError>().expect("checked"),
            // A file the verified metadata points at is missing (or too many root rotations).
            E::Transport { message, .. } if offline => self.no_cache(&format!(": {message}")),
            E::Transport { message, .. } => TufError::Incomplete {
                url,
                detail: message,
            },
            E::Io { .. } => TufError::Io {
                what: "reading the TUF cache",
                path: self.cache.clone(),
                detail: chain(&err),
            },
            E::Expired { role, expires } if offline => TufError::CacheExpired {
                url,
                dir,
                role,
                expires: expires.to_string(),
            },
            // Everything else is a verification failure (the error type is non-exhaustive:
            // anything new fails closed as untrusted too).
            err => {
                let hint = hint(&err);
                let detail = chain(&err);
                if offline {
                    TufError::CacheRefused {
                        url,
                        dir,
                        detail,
                        hint,
                    }
                } else {
                    TufError::Refused { url, detail, hint }
                }
            }
        }
    }

    fn no_cache(&self, detail: &str) -> TufError {
        TufError::NoCache {
            url: self.url.clone(),
            dir: self.cache.display().to_string(),
            detail: detail.to_owned(),
        }
    }
}

/// What a verification failure most likely means, and what to do.
fn hint(err: &sigstore_tuf::Error) -> &'static str {
    use sigstore_tuf::Error as E;
    match err {
        E::Expired { .. } => {
            ": the repository is stale or frozen (a freeze attack). Try again later, or pass `--trusted-root FILE`"
        }
        E::Rollback { .. } => {
            ": a rollback attack, or a mirror serving stale metadata. Try again later"
        }
        E::ThresholdNotMet { .. } | E::DuplicateSignature { .. } => {
            ": the metadata is forged or corrupted, or signed by keys the trusted root does not list"
        }
        E::IntegrityMismatch(_) | E::BadRootVersion { .. } => {
            ": it is not what the signed metadata lists (altered, swapped, or a mix-and-match of versions)"
        }
        _ => "",
    }
}

/// An error and its causes, as `a: b: c` (the crate's `Display` shows only the first).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A URL as one directory name: everything but `[A-Za-z0-9._-]` percent-encoded.
fn escape(url: &str) -> String {
    url.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_good_repository_is_the_one_the_crate_embeds_a_root_for() {
        assert_eq!(SIGSTORE_TUF_URL, SigstoreInstance::PublicGood.tuf_url());
        let env = |name: &str| (name == "HOME").then(|| "/home/u".to_owned());
        let repo = Repository::new(SIGSTORE_TUF_URL, None, &env).unwrap();
        assert_eq!(repo.initial_root, SigstoreInstance::PublicGood.tuf_root());
        assert_eq!(
            repo.cache,
            Path::new("/home/u/.cache/xrelease/tuf/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev")
        );
        assert!(matches!(
            Repository::new("https://tuf.example/", None, &env),
            Err(TufError::NoInitialRoot { url }) if url == "https://tuf.example"
        ));
    }
}
