//! Where `sigstore-tuf` reads and writes: the repository over xrelease's HTTP client, the cache
//! committed all at once, and the cache read back offline (see `mod.rs` for why each exists).

use std::collections::BTreeMap;
use std::sync::Mutex;

use sigstore_tuf::transport::FetchFuture;
use sigstore_tuf::{FileStore, MetadataStore};

use super::TufError;
use crate::signing::http::{GetError, Http};

/// The repository over HTTP: 200 is the file, 403/404 none (object stores answer 403 for a
/// missing key), anything else an error; a body longer than the limit the metadata allows is
/// refused while reading. Errors are [`TufError`]s inside the crate's `Transport` error, so
/// they keep their type (`Repository::classify` takes them out again).
pub(super) struct Remote {
    url: String,
    http: Http,
}

impl Remote {
    pub(super) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            http: Http::new(),
        }
    }

    fn get(&self, path: &str, limit: u64) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        let url = format!("{}/{path}", self.url);
        let fail = |e: TufError| sigstore_tuf::Error::transport_with_source(e.to_string(), e);
        match self.http.get_bytes(&url, limit) {
            Ok(response) if response.status == 200 => Ok(Some(response.body)),
            Ok(response) if matches!(response.status, 403 | 404) => Ok(None),
            Ok(response) => Err(fail(TufError::Status {
                url,
                status: response.status,
            })),
            Err(GetError::TooLarge) => Err(fail(TufError::TooLarge { url, limit })),
            Err(GetError::Transport(e)) => Err(fail(TufError::Transport {
                url,
                detail: e.detail,
            })),
        }
    }
}

impl sigstore_tuf::Repository for Remote {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move { self.get(name, max_length) })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move { self.get(&format!("targets/{path}"), max_length) })
    }
}

/// A cache whose writes wait in memory until [`Staged::commit`]: an update that fails anywhere
/// leaves the cache as the last complete update left it.
pub(super) struct Staged {
    disk: FileStore,
    pending: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Staged {
    pub(super) fn new(disk: FileStore) -> Self {
        Self {
            disk,
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    /// Writes every staged file (each one atomically).
    pub(super) fn commit(&self) -> sigstore_tuf::Result<()> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("not poisoned"));
        pending
            .iter()
            .try_for_each(|(name, bytes)| self.disk.store(name, bytes))
    }
}

impl MetadataStore for Staged {
    fn load(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        match self.pending.lock().expect("not poisoned").get(name) {
            Some(bytes) => Ok(Some(bytes.clone())),
            None => self.disk.load(name),
        }
    }

    fn store(&self, name: &str, bytes: &[u8]) -> sigstore_tuf::Result<()> {
        let mut pending = self.pending.lock().expect("not poisoned");
        pending.insert(name.to_owned(), bytes.to_vec());
        Ok(())
    }
}

/// The cache as the repository, offline. The crate caches the top-level targets metadata as
/// `targets.json` and targets by name, but asks a consistent-snapshot repository for
/// `N.targets.json` and `targets/<hash>.<name>`: those names are mapped back. Serving the
/// unprefixed copy is safe because the crate checks it against the version and hashes the
/// verified metadata pins, and a mismatch is then reported as one rather than as a miss.
pub(super) struct Cached {
    disk: FileStore,
}

impl Cached {
    pub(super) fn new(disk: FileStore) -> Self {
        Self { disk }
    }

    fn read(&self, name: &str, limit: u64) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        match self.disk.load(name)? {
            Some(bytes) if bytes.len() as u64 > limit => {
                Err(sigstore_tuf::Error::IntegrityMismatch(format!(
                    "the cached {name} is {} bytes, more than the {limit} allowed",
                    bytes.len()
                )))
            }
            found => Ok(found),
        }
    }
}

impl sigstore_tuf::Repository for Cached {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            let unprefixed = name
                .split_once('.')
                .filter(|(version, _)| version.bytes().all(|b| b.is_ascii_digit()))
                .map(|(_, rest)| rest);
            match unprefixed {
                // Roots are cached by version already (`root_history/`), and the root walk
                // ends at the first version missing.
                Some(rest) if rest != "root.json" => self.read(rest, max_length),
                _ => self.read(name, max_length),
            }
        })
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            let (dir, file) = path.rsplit_once('/').map_or(("", path), |(d, f)| (d, f));
            let file = file
                .split_once('.')
                .filter(|(hash, _)| hash.len() >= 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
                .map_or(file, |(_, name)| name);
            let name = if dir.is_empty() {
                format!("targets/{file}")
            } else {
                format!("targets/{dir}/{file}")
            };
            self.read(&name, max_length)
        })
    }
}
