//! SHA-256 of files: streaming reads into one reused buffer per worker (memory does not grow
//! with file size), files spread over every core. `sha2` uses the CPU's SHA extensions where
//! present.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

/// Large enough that the hash, not the syscalls, dominates; small enough to stay in cache.
const BUFFER: usize = 256 * 1024;

/// Hex SHA-256 and size of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut buf = vec![0u8; BUFFER];
    hash_reader(std::fs::File::open(path)?, &mut buf, None)
}

/// One file's digest, and its bytes when they were asked to be kept.
#[derive(Debug)]
pub struct Hashed {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub bytes: Option<Vec<u8>>,
}

/// Hashes `paths` in parallel (one worker per core). `keep(path)` says which files' bytes to
/// keep in memory as they are read, so that small files are read once for hashing and parsing.
/// Results are in the order of `paths`.
pub fn sha256_files(
    paths: &[PathBuf],
    keep: &(dyn Fn(&Path) -> bool + Sync),
) -> Vec<std::io::Result<Hashed>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(paths.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<std::io::Result<Hashed>>>> =
        paths.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut buf = vec![0u8; BUFFER];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { break };
                    let result = hash_one(path, &mut buf, keep(path));
                    *results[i].lock().expect("no worker panics holding it") = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .expect("no worker panics holding it")
                .expect("every index was taken")
        })
        .collect()
}

fn hash_one(path: &Path, buf: &mut [u8], keep: bool) -> std::io::Result<Hashed> {
    let file = std::fs::File::open(path)?;
    let mut kept = keep.then(Vec::new);
    let (sha256, size) = hash_reader(file, buf, kept.as_mut())?;
    Ok(Hashed {
        path: path.to_path_buf(),
        sha256,
        size,
        bytes: kept,
    })
}

fn hash_reader(
    mut reader: impl Read,
    buf: &mut [u8],
    mut keep: Option<&mut Vec<u8>>,
) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        if let Some(kept) = keep.as_deref_mut() {
            kept.extend_from_slice(&buf[..n]);
        }
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Bytes from lower- or upper-case hex; `None` for odd lengths and non-hex characters.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 600_000]).unwrap();
        let (digest, size) = sha256_file(&path).unwrap();
        assert_eq!(size, 600_000);
        assert_eq!(digest, sha256_bytes(&vec![7u8; 600_000]));
    }

    #[test]
    fn parallel_hashing_keeps_order_and_bytes_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..9)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                std::fs::write(&p, vec![i as u8; 100_000 * i + 1]).unwrap();
                p
            })
            .chain([dir.path().join("missing")])
            .collect();
        let results = sha256_files(&paths, &|p: &Path| p.ends_with("f3"));
        assert_eq!(results.len(), 10);
        for (i, r) in results.iter().take(9).enumerate() {
            let h = r.as_ref().unwrap();
            assert_eq!(h.path, paths[i]);
            assert_eq!(h.size, (100_000 * i + 1) as u64);
            assert_eq!(h.sha256, sha256_bytes(&vec![i as u8; 100_000 * i + 1]));
            assert_eq!(h.bytes.is_some(), i == 3);
        }
        assert_eq!(
            results[3].as_ref().unwrap().bytes.as_ref().unwrap().len(),
            300_001
        );
        assert!(results[9].is_err());
    }
}
