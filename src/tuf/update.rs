//! The client workflow of TUF 1.0 §5 over one [`Repository`], online or from the cache alone.
//!
//! The cache is one file, written whole after an update has verified everything down to the
//! target: every root after the initial one, the timestamp, snapshot and targets metadata, and
//! the target. An interrupted update therefore leaves the last complete state for `--offline`,
//! and every read of the cache re-verifies it from the initial root, so a cache left by another
//! anchor (or planted) is never trusted.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::metadata::{Common, Envelope, HasCommon, MetaFile, MetaIndex, Role, Root, Targets};
use super::{Cached, Repository, TufError};
use crate::signing::bundle::Base64Bytes;
use crate::signing::http::Http;

/// Roots fetched in one update at most (python-tuf's default too).
const MAX_ROOT_ROTATIONS: u64 = 256;
/// Size limits for metadata whose length no parent lists (python-tuf's defaults).
const MAX_ROOT_BYTES: u64 = 512_000;
const MAX_TIMESTAMP_BYTES: u64 = 16_384;
const MAX_SNAPSHOT_BYTES: u64 = 2_000_000;
const MAX_TARGETS_BYTES: u64 = 5_000_000;
/// The cache file in the repository's cache directory.
const CACHE_FILE: &str = "trusted.json";

/// Metadata that verified, with the bytes it came from (which is what gets cached).
struct Trusted<T> {
    value: T,
    bytes: Vec<u8>,
}

/// The cache file: the last state that verified completely.
#[derive(Serialize, Deserialize)]
struct CacheFile {
    /// Every root after the initial one, in version order.
    roots: Vec<Base64Bytes>,
    timestamp: Base64Bytes,
    snapshot: Base64Bytes,
    targets: Base64Bytes,
    target_name: String,
    target: Base64Bytes,
}

/// A cache file that verified from the initial root.
struct State {
    roots: Vec<Vec<u8>>,
    root: Root,
    timestamp: Trusted<MetaIndex>,
    snapshot: Trusted<MetaIndex>,
    targets: Trusted<Targets>,
    target: Vec<u8>,
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

    /// §5.3–5.7: walk the root chain, refresh timestamp → snapshot → targets, then download
    /// (or reuse) and check the target; cache the whole state once it all verified.
    pub(super) fn fetch(&self, name: &str) -> Result<Vec<u8>, TufError> {
        let initial = self.initial_root()?;
        // A cache that does not verify from this anchor is ignored, not trusted.
        let cached = self
            .cache_file()
            .and_then(|file| self.verify_cache(&file, name).ok());
        // The walk continues from the cached chain's last root (already verified from the anchor).
        let (start, mut roots) = match &cached {
            Some(state) => (state.root.clone(), state.roots.clone()),
            None => (initial, Vec::new()),
        };
        let root = self.walk_roots(start, &mut roots, |file| {
            self.download(file, MAX_ROOT_BYTES)
        })?;
        self.not_expired(
            &root.common,
            &format!("{}/{}.root.json", self.repo.url, root.common.version),
        )?;
        // §5.3.11: after the timestamp, snapshot or targets keys change, the cached versions are
        // no reference for rollback (a fast-forward attack is recovered from by rotating keys).
        let reference = cached
            .as_ref()
            .filter(|state| same_roles(&state.root, &root));

        let timestamp = self.update_timestamp(&root, reference.map(|s| &s.timestamp.value))?;
        let snapshot = self.update_snapshot(
            &root,
            &timestamp.value,
            reference.map(|s| &s.snapshot.value),
        )?;
        let listed = meta(&snapshot.value, "targets.json")?;
        let targets =
            self.fetch_listed::<Targets>(&root, Role::Targets, listed, MAX_TARGETS_BYTES)?;
        let info = self.target_info(&targets.value, name)?;
        let target = match cached.filter(|s| info.check(&s.target, name).is_ok()) {
            Some(state) => state.target,
            None => {
                let file = match (root.consistent_snapshot, info.path_hash()) {
                    (true, Some(hash)) => format!("targets/{hash}.{name}"),
                    _ => format!("targets/{name}"),
                };
                let url = format!("{}/{file}", self.repo.url);
                let bytes = self.download(&file, info.length)?.ok_or(TufError::Status {
                    url: url.clone(),
                    status: 404,
                })?;
                info.check(&bytes, &url)?;
                bytes
            }
        };
        self.store(&CacheFile {
            roots: roots.into_iter().map(Base64Bytes).collect(),
            timestamp: Base64Bytes(timestamp.bytes),
            snapshot: Base64Bytes(snapshot.bytes),
            targets: Base64Bytes(targets.bytes),
            target_name: name.to_owned(),
            target: Base64Bytes(target.clone()),
        })?;
        Ok(target)
    }

    /// The cache alone, re-verified from the initial root; expiry is reported, not refused.
    pub(super) fn cached(&self, name: &str) -> Result<Cached, TufError> {
        self.initial_root()?;
        let file = self.cache_file().ok_or_else(|| TufError::NoCache {
            url: self.repo.url.clone(),
            dir: self.repo.cache.display().to_string(),
        })?;
        let state = self.verify_cache(&file, name)?;
        let expired = [
            ("root.json", &state.root.common),
            ("timestamp.json", &state.timestamp.value.common),
            ("snapshot.json", &state.snapshot.value.common),
            ("targets.json", &state.targets.value.common),
        ]
        .into_iter()
        .find(|(_, common)| common.expired(self.now))
        .map(|(file, common)| {
            format!(
                "the cached {file} of {} expired at {}",
                self.repo.url, common.expires
            )
        });
        Ok(Cached {
            bytes: state.target,
            expired,
        })
    }

    /// Verifies a cache file as the online workflow would, from the initial root, without
    /// expiry: the root chain, each role under the final root, the version chain, the target.
    fn verify_cache(&self, file: &CacheFile, name: &str) -> Result<State, TufError> {
        let what = |role: &str| format!("the cached {role} of {}", self.repo.url);
        let mut cached_roots = file.roots.iter();
        let mut roots = Vec::new();
        // Roots up to the anchor's version are skipped: a newer anchor (a new xrelease) may
        // start later in a chain cached by an older one.
        let root = self.walk_roots(self.initial_root()?, &mut roots, |file| {
            Ok(cached_roots
                .find(|b| version_of(&b.0).is_some_and(|v| format!("{v}.root.json") == file))
                .map(|b| b.0.clone()))
        })?;
        let load = |role: Role, bytes: &[u8]| -> Result<Envelope, TufError> {
            let envelope = Envelope::parse(bytes, &what(&role.file()))?;
            envelope.verify(&root, role, &what(&role.file()))?;
            Ok(envelope)
        };
        let timestamp: MetaIndex = load(Role::Timestamp, &file.timestamp.0)?
            .typed(Role::Timestamp, &what("timestamp.json"))?;
        let snapshot: MetaIndex = load(Role::Snapshot, &file.snapshot.0)?
            .typed(Role::Snapshot, &what("snapshot.json"))?;
        let targets: Targets =
            load(Role::Targets, &file.targets.0)?.typed(Role::Targets, &what("targets.json"))?;
        expect_version(
            &snapshot.common,
            meta(&timestamp, "snapshot.json")?.version,
            &what("snapshot.json"),
        )?;
        expect_version(
            &targets.common,
            meta(&snapshot, "targets.json")?.version,
            &what("targets.json"),
        )?;
        if file.target_name != name {
            return Err(TufError::NoTarget {
                url: self.repo.url.clone(),
                name: name.to_owned(),
            });
        }
        self.target_info(&targets, name)?
            .check(&file.target.0, &what(name))?;
        Ok(State {
            roots,
            root,
            timestamp: Trusted {
                value: timestamp,
                bytes: file.timestamp.0.clone(),
            },
            snapshot: Trusted {
                value: snapshot,
                bytes: file.snapshot.0.clone(),
            },
            targets: Trusted {
                value: targets,
                bytes: file.targets.0.clone(),
            },
            target: file.target.0.clone(),
        })
    }

    /// §5.3: from `start`, take `N+1.root.json` from `next` until there is none; each must be
    /// signed by a threshold of the previous root's keys and of its own, and be version N+1.
    /// The bytes of each root taken are appended to `chain`.
    fn walk_roots(
        &self,
        start: Root,
        chain: &mut Vec<Vec<u8>>,
        mut next: impl FnMut(&str) -> Result<Option<Vec<u8>>, TufError>,
    ) -> Result<Root, TufError> {
        let mut root = start;
        for _ in 0..MAX_ROOT_ROTATIONS {
            let version = root.common.version + 1;
            let file = format!("{version}.root.json");
            let Some(bytes) = next(&file)? else {
                break;
            };
            let what = format!("{}/{file}", self.repo.url);
            let envelope = Envelope::parse(&bytes, &what)?;
            envelope.verify(
                &root,
                Role::Root,
                &format!("{what} (by the previous root's keys)"),
            )?;
            let new: Root = envelope.typed(Role::Root, &what)?;
            envelope.verify(&new, Role::Root, &format!("{what} (by its own keys)"))?;
            expect_version(&new.common, version, &what)?;
            chain.push(bytes);
            root = new;
        }
        Ok(root)
    }

    /// §5.4: the timestamp, no older than the reference (nor pointing at an older snapshot).
    fn update_timestamp(
        &self,
        root: &Root,
        reference: Option<&MetaIndex>,
    ) -> Result<Trusted<MetaIndex>, TufError> {
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
        if let Some(old) = reference {
            no_rollback(old.common.version, new.common.version, &what)?;
            let old_snapshot = meta(old, "snapshot.json")?.version;
            no_rollback(
                old_snapshot,
                snapshot.version,
                &format!("the snapshot version in {what}"),
            )?;
        }
        self.not_expired(&new.common, &what)?;
        Ok(Trusted { value: new, bytes })
    }

    /// §5.5: the snapshot the timestamp names; no targets metadata may go back in version.
    fn update_snapshot(
        &self,
        root: &Root,
        timestamp: &MetaIndex,
        reference: Option<&MetaIndex>,
    ) -> Result<Trusted<MetaIndex>, TufError> {
        let listed = meta(timestamp, "snapshot.json")?;
        let new =
            self.fetch_listed::<MetaIndex>(root, Role::Snapshot, listed, MAX_SNAPSHOT_BYTES)?;
        for (file, old_meta) in reference.map(|old| &old.meta).into_iter().flatten() {
            let what = format!("{file} in {}/snapshot.json", self.repo.url);
            let new_meta = new
                .value
                .meta
                .get(file)
                .ok_or_else(|| TufError::Malformed {
                    what: what.clone(),
                    detail: "listed by the trusted snapshot, missing from the new one".to_owned(),
                })?;
            no_rollback(old_meta.version, new_meta.version, &what)?;
        }
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
    fn initial_root(&self) -> Result<Root, TufError> {
        let what = "the initial TUF root";
        let check = || -> Result<Root, TufError> {
            let envelope = Envelope::parse(&self.repo.initial_root, what)?;
            let root: Root = envelope.typed(Role::Root, what)?;
            envelope.verify(&root, Role::Root, what)?;
            Ok(root)
        };
        check().map_err(|e| TufError::BadInitialRoot {
            detail: e.to_string(),
        })
    }

    /// §5.7: the target's entry (top-level targets only: delegations are not followed).
    fn target_info<'t>(
        &self,
        targets: &'t Targets,
        name: &str,
    ) -> Result<&'t super::metadata::TargetFile, TufError> {
        targets.targets.get(name).ok_or_else(|| TufError::NoTarget {
            url: self.repo.url.clone(),
            name: name.to_owned(),
        })
    }

    fn not_expired(&self, common: &Common, what: &str) -> Result<(), TufError> {
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

    fn cache_path(&self) -> PathBuf {
        self.repo.cache.join(CACHE_FILE)
    }

    fn cache_file(&self) -> Option<CacheFile> {
        let text = std::fs::read(self.cache_path()).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes the cache file whole or not at all (a temporary file of this process, renamed).
    fn store(&self, file: &CacheFile) -> Result<(), TufError> {
        let path = self.cache_path();
        let io = |detail: std::io::Error| TufError::Io {
            what: "writing the TUF cache",
            path: path.clone(),
            detail: detail.to_string(),
        };
        std::fs::create_dir_all(&self.repo.cache).map_err(io)?;
        let tmp = path.with_extension(format!("{}.partial", std::process::id()));
        let json = serde_json::to_vec(file).expect("plain data");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

/// Whether two roots give the timestamp, snapshot and targets roles the same keys and thresholds.
fn same_roles(old: &Root, new: &Root) -> bool {
    [Role::Timestamp, Role::Snapshot, Role::Targets]
        .into_iter()
        .all(|role| {
            let keys = |root: &Root| {
                root.roles.get(role.name()).map(|r| {
                    let mut ids: Vec<_> = r
                        .keyids
                        .iter()
                        .map(|id| root.keys.get(id).map(|k| k.keyval.public.trim().to_owned()))
                        .collect();
                    ids.sort();
                    (ids, r.threshold)
                })
            };
            keys(old) == keys(new)
        })
}

/// The `signed.version` of a metadata file, without verifying anything.
fn version_of(bytes: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value["signed"]["version"].as_u64()
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

fn expect_version(common: &Common, expected: u64, what: &str) -> Result<(), TufError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Root {
        let envelope = Envelope::parse(super::super::SIGSTORE_INITIAL_ROOT, "root").unwrap();
        envelope.typed(Role::Root, "root").unwrap()
    }

    #[test]
    fn rotating_a_top_level_role_key_drops_the_rollback_reference() {
        let old = root();
        assert!(same_roles(&old, &root()));
        // Root keys are not one of these roles: rotating them keeps the reference.
        let mut new = root();
        new.roles.get_mut("root").unwrap().threshold = 1;
        assert!(same_roles(&old, &new));
        for role in ["timestamp", "snapshot", "targets"] {
            let mut new = root();
            let keyid = new.roles[role].keyids[0].clone();
            new.keys.get_mut(&keyid).unwrap().keyval.public = "another key".to_owned();
            assert!(!same_roles(&old, &new), "{role} key rotated");
            let mut new = root();
            new.roles.get_mut(role).unwrap().threshold += 1;
            assert!(!same_roles(&old, &new), "{role} threshold changed");
        }
    }

    #[test]
    fn versions_are_read_without_trusting_anything() {
        assert_eq!(version_of(super::super::SIGSTORE_INITIAL_ROOT), Some(15));
        assert_eq!(version_of(b"{}"), None);
        assert_eq!(version_of(b"not json"), None);
    }
}
