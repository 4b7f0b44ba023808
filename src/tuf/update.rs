//! The client workflow of TUF 1.0 §5 over one [`Repository`], online or from the cache alone.

use std::path::{Path, PathBuf};

use super::metadata::{Envelope, HasCommon, MetaFile, MetaIndex, Role, Root, TargetFile, Targets};
use super::{Cached, Repository, TufError};
use crate::signing::http::Http;

/// Roots fetched in one update at most (python-tuf's default too).
const MAX_ROOT_ROTATIONS: u64 = 256;
/// Size limits for metadata whose length no parent lists.
const MAX_ROOT_BYTES: u64 = 512 * 1024;
const MAX_TIMESTAMP_BYTES: u64 = 16 * 1024;
const MAX_SNAPSHOT_BYTES: u64 = 2 * 1024 * 1024;
const MAX_TARGETS_BYTES: u64 = 5 * 1024 * 1024;

/// Metadata that verified, with the bytes it came from (which is what gets cached).
struct Trusted<T> {
    value: T,
    bytes: Vec<u8>,
}

pub(super) struct Updater<'a> {
    repo: &'a Repository,
    http: Option<&'a Http>,
    now: i64,
}

impl<'a> Updater<'a> {
    pub(super) fn new(repo: &'a Repository, http: Option<&'a Http>, now: i64) -> Self {
        Self { repo, http, now }
    }

    /// §5.3–5.7: refresh every top-level role, then download (or reuse) and check the target.
    pub(super) fn fetch(&self, name: &str) -> Result<Vec<u8>, TufError> {
        let root = self.update_root()?;
        self.not_expired(&root.value.common, "root.json")?;
        let timestamp = self.update_timestamp(&root.value)?;
        let snapshot = self.update_snapshot(&root.value, &timestamp.value)?;
        let targets = self.update_targets(&root.value, &snapshot.value)?;
        let info = self.target_info(&targets.value, name)?;
        let cached = self.cache_path(&Path::new("targets").join(name));
        if let Ok(bytes) = std::fs::read(&cached)
            && info.check(&bytes, name).is_ok()
        {
            return Ok(bytes);
        }
        let file = match (root.value.consistent_snapshot, info.path_hash()) {
            (true, Some(hash)) => format!("targets/{hash}.{name}"),
            _ => format!("targets/{name}"),
        };
        let url = format!("{}/{file}", self.repo.url);
        let bytes = self.download(&file, info.length)?.ok_or(TufError::Status {
            url: url.clone(),
            status: 404,
        })?;
        info.check(&bytes, &url)?;
        self.store(&cached, &bytes)?;
        Ok(bytes)
    }

    /// The cache alone: the root must verify against itself, every other role against it, the
    /// versions must chain, and the target must match targets.json. Expiry is reported.
    pub(super) fn cached(&self, name: &str) -> Result<Cached, TufError> {
        let no_cache = || TufError::NoCache {
            url: self.repo.url.clone(),
            dir: self.repo.cache.display().to_string(),
        };
        let root = self.cached_root().ok_or_else(no_cache)?;
        let load = |role: Role| -> Result<Envelope, TufError> {
            let bytes =
                std::fs::read(self.cache_path(Path::new(&role.file()))).map_err(|_| no_cache())?;
            let envelope = Envelope::parse(&bytes, &self.cached_name(role))?;
            envelope.verify(&root.value, role, &self.cached_name(role))?;
            Ok(envelope)
        };
        let timestamp: MetaIndex =
            load(Role::Timestamp)?.typed(Role::Timestamp, "timestamp.json")?;
        let snapshot: MetaIndex = load(Role::Snapshot)?.typed(Role::Snapshot, "snapshot.json")?;
        let targets: Targets = load(Role::Targets)?.typed(Role::Targets, "targets.json")?;
        expect_version(
            &snapshot.common,
            meta(&timestamp, "snapshot.json")?.version,
            "cached snapshot.json",
        )?;
        expect_version(
            &targets.common,
            meta(&snapshot, "targets.json")?.version,
            "cached targets.json",
        )?;
        let info = self.target_info(&targets, name)?;
        let path = self.cache_path(&Path::new("targets").join(name));
        let bytes = std::fs::read(&path).map_err(|_| no_cache())?;
        info.check(&bytes, &path.display().to_string())?;
        let expired = [
            ("root.json", &root.value.common),
            ("timestamp.json", &timestamp.common),
            ("snapshot.json", &snapshot.common),
            ("targets.json", &targets.common),
        ]
        .into_iter()
        .find(|(_, common)| common.expired(self.now))
        .map(|(file, common)| {
            format!(
                "the cached {file} of {} expired at {}",
                self.repo.url, common.expires
            )
        });
        Ok(Cached { bytes, expired })
    }

    /// §5.3: from the trusted root (cached, else initial), fetch `N+1.root.json` until there is
    /// none; each must be signed by a threshold of the previous root's keys and of its own.
    fn update_root(&self) -> Result<Trusted<Root>, TufError> {
        let mut root = match self.cached_root() {
            Some(root) => root,
            None => {
                let root = self.initial_root()?;
                self.store(&self.cache_path(Path::new("root.json")), &root.bytes)?;
                root
            }
        };
        for _ in 0..MAX_ROOT_ROTATIONS {
            let next = root.value.common.version + 1;
            let file = format!("{next}.root.json");
            let Some(bytes) = self.download(&file, MAX_ROOT_BYTES)? else {
                return Ok(root);
            };
            let what = format!("{}/{file}", self.repo.url);
            let envelope = Envelope::parse(&bytes, &what)?;
            envelope.verify(
                &root.value,
                Role::Root,
                &format!("{what} (by the previous root's keys)"),
            )?;
            let new: Root = envelope.typed(Role::Root, &what)?;
            envelope.verify(&new, Role::Root, &format!("{what} (by its own keys)"))?;
            expect_version(&new.common, next, &what)?;
            self.store(&self.cache_path(Path::new("root.json")), &bytes)?;
            root = Trusted { value: new, bytes };
        }
        Err(TufError::TooManyRotations {
            url: self.repo.url.clone(),
            limit: MAX_ROOT_ROTATIONS,
        })
    }

    /// §5.4: the timestamp, no older than the cached one (nor pointing at an older snapshot).
    fn update_timestamp(&self, root: &Root) -> Result<Trusted<MetaIndex>, TufError> {
        let old = self.cached_role::<MetaIndex>(root, Role::Timestamp);
        let what = format!("{}/timestamp.json", self.repo.url);
        let bytes = self
            .download("timestamp.json", MAX_TIMESTAMP_BYTES)?
            .ok_or_else(|| TufError::Status {
                url: what.clone(),
                status: 404,
            })?;
        let envelope = Envelope::parse(&bytes, &what)?;
        envelope.verify(root, Role::Timestamp, &what)?;
        let new: MetaIndex = envelope.typed(Role::Timestamp, &what)?;
        let snapshot = meta(&new, "snapshot.json")?;
        if let Some(old) = old {
            no_rollback(old.common.version, new.common.version, &what)?;
            let old_snapshot = meta(&old, "snapshot.json")?.version;
            no_rollback(
                old_snapshot,
                snapshot.version,
                &format!("the snapshot version in {what}"),
            )?;
        }
        self.not_expired(&new.common, &what)?;
        self.store(&self.cache_path(Path::new("timestamp.json")), &bytes)?;
        Ok(Trusted { value: new, bytes })
    }

    /// §5.5: the snapshot the timestamp names; no targets metadata may go back in version.
    fn update_snapshot(
        &self,
        root: &Root,
        timestamp: &MetaIndex,
    ) -> Result<Trusted<MetaIndex>, TufError> {
        let listed = meta(timestamp, "snapshot.json")?;
        let new =
            self.fetch_listed::<MetaIndex>(root, Role::Snapshot, listed, MAX_SNAPSHOT_BYTES)?;
        if let Some(old) = self.cached_role::<MetaIndex>(root, Role::Snapshot) {
            for (file, old_meta) in &old.meta {
                let what = format!("{file} in {}/snapshot.json", self.repo.url);
                let new_meta = new
                    .value
                    .meta
                    .get(file)
                    .ok_or_else(|| TufError::Malformed {
                        what: what.clone(),
                        detail: "listed by the trusted snapshot, missing from the new one"
                            .to_owned(),
                    })?;
                no_rollback(old_meta.version, new_meta.version, &what)?;
            }
        }
        self.store(&self.cache_path(Path::new("snapshot.json")), &new.bytes)?;
        Ok(new)
    }

    /// §5.6: the targets metadata the snapshot names.
    fn update_targets(
        &self,
        root: &Root,
        snapshot: &MetaIndex,
    ) -> Result<Trusted<Targets>, TufError> {
        let listed = meta(snapshot, "targets.json")?;
        let new = self.fetch_listed::<Targets>(root, Role::Targets, listed, MAX_TARGETS_BYTES)?;
        self.store(&self.cache_path(Path::new("targets.json")), &new.bytes)?;
        Ok(new)
    }

    /// Downloads the version of `role` that `listed` names, checks its length and hashes (if
    /// listed), signatures, exact version and expiry.
    fn fetch_listed<T: serde::de::DeserializeOwned + HasCommon>(
        &self,
        root: &Root,
        role: Role,
        listed: &MetaFile,
        limit: u64,
    ) -> Result<Trusted<T>, TufError> {
        let file = if root.consistent_snapshot {
            format!("{}.{}", listed.version, role.file())
        } else {
            role.file()
        };
        let what = format!("{}/{file}", self.repo.url);
        let bytes = self
            .download(&file, listed.length.unwrap_or(limit))?
            .ok_or_else(|| TufError::Status {
                url: what.clone(),
                status: 404,
            })?;
        listed.check(&bytes, &what)?;
        let envelope = Envelope::parse(&bytes, &what)?;
        envelope.verify(root, role, &what)?;
        let value: T = envelope.typed(role, &what)?;
        expect_version(value.common(), listed.version, &what)?;
        self.not_expired(value.common(), &what)?;
        Ok(Trusted { value, bytes })
    }

    /// The initial root: trusted as given (it is the anchor), but it must parse and be signed by
    /// its own threshold, which catches a truncated or wrong file.
    fn initial_root(&self) -> Result<Trusted<Root>, TufError> {
        let what = "the initial TUF root";
        let envelope = Envelope::parse(&self.repo.initial_root, what)?;
        let root: Root = envelope.typed(Role::Root, what)?;
        envelope.verify(&root, Role::Root, what)?;
        Ok(Trusted {
            value: root,
            bytes: self.repo.initial_root.clone(),
        })
    }

    /// The cached root, when it verifies against itself and is no older than the initial one.
    fn cached_root(&self) -> Option<Trusted<Root>> {
        let bytes = std::fs::read(self.cache_path(Path::new("root.json"))).ok()?;
        let envelope = Envelope::parse(&bytes, "cached root.json").ok()?;
        let root: Root = envelope.typed(Role::Root, "cached root.json").ok()?;
        envelope
            .verify(&root, Role::Root, "cached root.json")
            .ok()?;
        let initial = self.initial_root().ok()?;
        (root.common.version >= initial.value.common.version)
            .then_some(Trusted { value: root, bytes })
    }

    /// Cached metadata of `role` if it still verifies under `root` (keys may have rotated).
    fn cached_role<T: serde::de::DeserializeOwned + HasCommon>(
        &self,
        root: &Root,
        role: Role,
    ) -> Option<T> {
        let bytes = std::fs::read(self.cache_path(Path::new(&role.file()))).ok()?;
        let envelope = Envelope::parse(&bytes, &role.file()).ok()?;
        envelope.verify(root, role, &role.file()).ok()?;
        envelope.typed(role, &role.file()).ok()
    }

    /// §5.7: the target's entry (top-level targets only: delegations are not followed).
    fn target_info<'t>(
        &self,
        targets: &'t Targets,
        name: &str,
    ) -> Result<&'t TargetFile, TufError> {
        targets.targets.get(name).ok_or_else(|| TufError::NoTarget {
            url: self.repo.url.clone(),
            name: name.to_owned(),
        })
    }

    fn cached_name(&self, role: Role) -> String {
        format!("the cached {} of {}", role.file(), self.repo.url)
    }

    fn not_expired(&self, common: &super::metadata::Common, what: &str) -> Result<(), TufError> {
        if common.expired(self.now) {
            return Err(TufError::Expired {
                what: what.to_owned(),
                expires: common.expires.clone(),
            });
        }
        Ok(())
    }

    /// GET `URL/file`, at most `limit` bytes; `None` for 404 (and 403, which S3-style hosts
    /// answer for missing keys).
    fn download(&self, file: &str, limit: u64) -> Result<Option<Vec<u8>>, TufError> {
        let http = self.http.expect("downloads happen only online");
        let url = format!("{}/{file}", self.repo.url);
        let response = http.get_bytes(&url, limit).map_err(|e| match e {
            crate::signing::http::GetError::TooLarge => TufError::TooLarge {
                url: url.clone(),
                limit,
            },
            crate::signing::http::GetError::Transport(e) => TufError::Transport {
                url: url.clone(),
                detail: e.detail,
            },
        })?;
        match response.status {
            200 => Ok(Some(response.body)),
            403 | 404 => Ok(None),
            status => Err(TufError::Status { url, status }),
        }
    }

    fn cache_path(&self, file: &Path) -> PathBuf {
        self.repo.cache.join(file)
    }

    /// Writes a cache file whole or not at all (temporary file, then rename).
    fn store(&self, path: &Path, bytes: &[u8]) -> Result<(), TufError> {
        let io = |detail: std::io::Error| TufError::Io {
            what: "writing the TUF cache",
            path: path.to_owned(),
            detail: detail.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("json.partial");
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

fn meta<'m>(index: &'m MetaIndex, file: &str) -> Result<&'m MetaFile, TufError> {
    index.meta.get(file).ok_or_else(|| TufError::Malformed {
        what: format!(
            "{} metadata version {}",
            index.common.kind, index.common.version
        ),
        detail: format!("it lists no {file}"),
    })
}

fn expect_version(
    common: &super::metadata::Common,
    expected: u64,
    what: &str,
) -> Result<(), TufError> {
    if common.version != expected {
        return Err(TufError::Version {
            what: what.to_owned(),
            expected,
            actual: common.version,
        });
    }
    Ok(())
}

fn no_rollback(trusted: u64, offered: u64, what: &str) -> Result<(), TufError> {
    if offered < trusted {
        return Err(TufError::Rollback {
            what: what.to_owned(),
            trusted,
            offered,
        });
    }
    Ok(())
}
