//! A TUF 1.0 client for one job: fetching a repository's `trusted_root.json` target securely, as
//! Sigstore publishes its public-good trust root (Fulcio CAs, Rekor and CT log keys).
//!
//! [`Repository::fetch_target`] is the specification's client workflow (§5): walk the root chain
//! from the trusted root one version at a time (each new root signed by a threshold of the old
//! keys and of its own), refuse an expired root, then timestamp → snapshot → targets, each
//! verified against the root's keys and thresholds, checked against the version, length and
//! hashes its parent lists, protected from rollback by the versions cached from the last run,
//! and refused once expired; finally the target, whose length and hashes must match. Verified
//! metadata and the target are cached per repository; [`Repository::cached_target`] (`--offline`)
//! re-verifies that cache without the network, and reports rather than refuses expiry. Every
//! use of the cache re-verifies it from the initial root (see `update.rs`).
//!
//! The trust anchor of Sigstore's repository is embedded (`sigstore-root.json`, root version 15
//! as published by Sigstore's root-signing ceremony): from it the client walks to the current
//! root. Delegated targets are not followed: Sigstore lists `trusted_root.json` in the top-level
//! targets, and a target that is not there is an error. Keys: ECDSA P-256/P-384 (what Sigstore
//! signs with); signatures by other key types do not count toward a threshold.

mod metadata;
mod update;

use std::path::{Path, PathBuf};

pub use metadata::Role;

/// Sigstore's public-good TUF repository.
pub const SIGSTORE_TUF_URL: &str = "https://tuf-repo-cdn.sigstore.dev";

/// The initial trusted root of [`SIGSTORE_TUF_URL`]: the client walks from it to the current one.
pub const SIGSTORE_INITIAL_ROOT: &[u8] = include_bytes!("sigstore-root.json");

/// The target that holds a Sigstore instance's trusted root.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";

/// Why the trusted root could not be established. Every variant but the network and cache ones
/// means the repository (or something between it and us) served metadata that must not be
/// trusted; [`TufError::is_untrusted`] says which.
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
    #[error("{what} is not valid TUF metadata: {detail}")]
    Malformed { what: String, detail: String },
    #[error(
        "{what}: {good} valid signature(s) from the {role} role's keys, {threshold} required: the metadata is forged or corrupted, or signed by keys the trusted root does not list"
    )]
    Threshold {
        what: String,
        role: &'static str,
        good: usize,
        threshold: u64,
    },
    #[error(
        "{what} has version {actual}, but {expected} was expected; refusing a mix-and-match of metadata"
    )]
    Version {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{what}: version {offered} is older than version {trusted}, already trusted: a rollback attack, or a mirror serving stale metadata"
    )]
    Rollback {
        what: String,
        trusted: u64,
        offered: u64,
    },
    #[error(
        "{what} expired at {expires}: the repository is stale or frozen (a freeze attack). Try again later; to verify knowingly with the cached trusted root, pass `--offline`"
    )]
    Expired { what: String, expires: String },
    #[error("{what} is {actual} bytes, but {expected} were listed: it was altered or swapped")]
    Length {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{what} has {alg} {actual}, but {expected} was listed: it was altered or swapped")]
    Hash {
        what: String,
        alg: String,
        expected: String,
        actual: String,
    },
    #[error(
        "the TUF repository at {url} lists no target {name} in its top-level targets (delegated targets are not followed)"
    )]
    NoTarget { url: String, name: String },
    #[error(
        "the initial TUF root is not a usable root.json ({detail}); pass the repository's root.json with `--tuf-root FILE`"
    )]
    BadInitialRoot { detail: String },
    #[error(
        "no trusted root cached for {url} (looked in {dir}): run `xrelease verify` once without `--offline` to fetch it over TUF, or pass `--trusted-root FILE`"
    )]
    NoCache { url: String, dir: String },
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
    /// True when metadata or a target was served but failed verification (as opposed to a
    /// network, cache or configuration problem).
    pub fn is_untrusted(&self) -> bool {
        !matches!(
            self,
            TufError::Transport { .. }
                | TufError::Status { .. }
                | TufError::NoCache { .. }
                | TufError::NoInitialRoot { .. }
                | TufError::BadInitialRoot { .. }
                | TufError::NoCacheDir
                | TufError::Io { .. }
        )
    }
}

/// A TUF repository, its trust anchor, and where its verified metadata is cached.
#[derive(Debug, Clone)]
pub struct Repository {
    /// Base URL, no trailing slash: metadata at `URL/N.root.json`, targets at `URL/targets/`.
    pub url: String,
    /// The root.json trusted without verification when nothing newer is cached.
    pub initial_root: Vec<u8>,
    /// `$XDG_CACHE_HOME/xrelease/tuf/<url, percent-encoded>/`.
    pub cache: PathBuf,
}

/// A target read from the cache without the network.
#[derive(Debug)]
pub struct Cached {
    pub bytes: Vec<u8>,
    /// Set when some cached metadata has expired: what and when, for the user to weigh.
    pub expired: Option<String>,
}

impl Repository {
    /// The repository at `url`, trusting `initial_root` (required unless `url` is Sigstore's).
    pub fn new(
        url: &str,
        initial_root: Option<Vec<u8>>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TufError> {
        let url = url.trim_end_matches('/').to_owned();
        let initial_root = match initial_root {
            Some(bytes) => bytes,
            None if url == SIGSTORE_TUF_URL => SIGSTORE_INITIAL_ROOT.to_vec(),
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

    /// Updates the metadata over the network and returns the verified target `name`.
    pub fn fetch_target(
        &self,
        http: &crate::signing::http::Http,
        name: &str,
        now: i64,
    ) -> Result<Vec<u8>, TufError> {
        update::Updater::new(self, Some(http), now).fetch(name)
    }

    /// Re-verifies the cached metadata and target `name` without the network.
    pub fn cached_target(&self, name: &str, now: i64) -> Result<Cached, TufError> {
        update::Updater::new(self, None, now).cached(name)
    }
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
