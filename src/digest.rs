//! SHA-256 of files: streaming reads into one reused buffer (memory does not grow with file size).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Large enough that the hash, not the syscalls, dominates; small enough to stay in cache.
const BUFFER: usize = 256 * 1024;

/// Hex SHA-256 and size of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUFFER];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
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
    #[test]
    fn known_digests() {
        assert_eq!(
            super::sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 600_000]).unwrap();
        let (digest, size) = super::sha256_file(&path).unwrap();
        assert_eq!(size, 600_000);
        assert_eq!(digest, super::sha256_bytes(&vec![7u8; 600_000]));
    }
}
