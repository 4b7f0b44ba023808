//! Offline transparency-log checks: Rekor's signed entry timestamp, RFC 6962 inclusion proofs, signed checkpoints.
//!
//! Everything here is pure: an entry from a bundle plus the log's key from the trusted root.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

use super::bundle::{InclusionProof, TransparencyLogEntry};
use super::ec::EcKey;
use crate::digest::hex;

/// SHA-256 output.
pub type Hash = [u8; 32];

/// RFC 6962 leaf hash: `SHA-256(0x00 || leaf)`; the prefix keeps leaves and nodes apart.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// RFC 6962 interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The payload Rekor signs as the SET: canonical JSON (RFC 8785) of
/// `{body, integratedTime, logID, logIndex}`, `logID` in hex. Keys are written in sorted order,
/// and the values (base64, hex, integers) need no escaping, so this is the canonical form.
pub fn set_payload(entry: &TransparencyLogEntry) -> Vec<u8> {
    format!(
        r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
        STANDARD.encode(&entry.canonicalized_body.0),
        entry.integrated_time,
        hex(&entry.log_id.key_id.0),
        entry.log_index,
    )
    .into_bytes()
}

/// Verifies the entry's signed entry timestamp with the log's key.
pub fn verify_set(entry: &TransparencyLogEntry, log_key: &EcKey) -> Result<(), String> {
    let promise = entry
        .inclusion_promise
        .as_ref()
        .ok_or("the entry has no inclusionPromise (signed entry timestamp)")?;
    if log_key.verify(
        log_key.natural_hash(),
        &set_payload(entry),
        &promise.signed_entry_timestamp.0,
    ) {
        Ok(())
    } else {
        Err("the signed entry timestamp does not verify with the log's key over this entry's body, time, log id and index".to_owned())
    }
}

/// The root an RFC 9162 §2.1.3.2 inclusion proof leads to, for leaf `index` of a tree of `size`.
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: Hash,
    proof: &[Hash],
) -> Result<Hash, String> {
    if index >= size {
        return Err(format!(
            "leaf index {index} is outside a tree of size {size}"
        ));
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = leaf;
    for p in proof {
        if s_n == 0 {
            return Err(format!(
                "the proof has {} hashes, more than a tree of size {size} needs",
                proof.len()
            ));
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(format!(
            "the proof has {} hashes, fewer than a tree of size {size} needs",
            proof.len()
        ));
    }
    Ok(r)
}

fn to_hash(bytes: &[u8], what: &str) -> Result<Hash, String> {
    bytes
        .try_into()
        .map_err(|_| format!("{what} is {} bytes, not a 32-byte SHA-256", bytes.len()))
}

/// Checks that `proof` places `body` (the canonicalized entry) under its root hash.
pub fn verify_inclusion(proof: &InclusionProof, body: &[u8]) -> Result<(), String> {
    let index = u64::try_from(proof.log_index).map_err(|_| "negative proof logIndex")?;
    let size = u64::try_from(proof.tree_size).map_err(|_| "negative proof treeSize")?;
    let hashes = proof
        .hashes
        .iter()
        .enumerate()
        .map(|(i, h)| to_hash(&h.0, &format!("proof hash #{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let expected = to_hash(&proof.root_hash.0, "the proof's rootHash")?;
    let computed = root_from_inclusion_proof(index, size, leaf_hash(body), &hashes)?;
    if computed == expected {
        Ok(())
    } else {
        Err(format!(
            "the proof for leaf {index} of {size} leads to root {}, but the proof claims {}",
            hex(&computed),
            hex(&expected)
        ))
    }
}

/// The body of a checkpoint (a tlog "signed note").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// First line: the log's origin string, e.g. `rekor.sigstore.dev - 1193050959916656506`.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash of the tree of that size.
    pub root_hash: Hash,
}

/// One signature line of a signed note: `— <name> <base64(key hint || signature)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Signer name.
    pub name: String,
    /// First 4 bytes of the signer's key id.
    pub key_hint: [u8; 4],
    /// The signature over the note text.
    pub signature: Vec<u8>,
}

/// Splits a signed note into its text (which the signatures cover, final newline included),
/// the parsed checkpoint, and the signature lines.
pub fn parse_signed_note(envelope: &str) -> Result<(&str, Checkpoint, Vec<NoteSignature>), String> {
    let split = envelope
        .find("\n\n")
        .ok_or("the checkpoint has no blank line between note and signatures")?;
    let (text, signatures) = (&envelope[..split + 1], &envelope[split + 2..]);
    let mut lines = text.lines();
    let origin = lines
        .next()
        .filter(|l| !l.is_empty())
        .ok_or("the checkpoint has no origin line")?;
    let size = lines
        .next()
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or("the checkpoint's second line is not a tree size")?;
    let root = lines
        .next()
        .and_then(|l| STANDARD.decode(l).ok())
        .ok_or("the checkpoint's third line is not a base64 root hash")?;
    let checkpoint = Checkpoint {
        origin: origin.to_owned(),
        size,
        root_hash: to_hash(&root, "the checkpoint's root hash")?,
    };
    let mut parsed = Vec::new();
    for line in signatures.lines().filter(|l| !l.is_empty()) {
        let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| {
            format!("checkpoint signature line does not start with an em dash: `{line}`")
        })?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| format!("checkpoint signature line has no signature: `{line}`"))?;
        let bytes = STANDARD
            .decode(b64)
            .map_err(|e| format!("checkpoint signature is not base64 ({e})"))?;
        if bytes.len() < 5 {
            return Err("checkpoint signature is too short".to_owned());
        }
        parsed.push(NoteSignature {
            name: name.to_owned(),
            key_hint: [bytes[0], bytes[1], bytes[2], bytes[3]],
            signature: bytes[4..].to_vec(),
        });
    }
    if parsed.is_empty() {
        return Err("the checkpoint carries no signatures".to_owned());
    }
    Ok((text, checkpoint, parsed))
}

/// Checks that the proof's checkpoint is signed by the log (`key`, whose key id is `key_id`) and
/// commits to the same tree size and root hash as the proof.
pub fn verify_checkpoint(
    proof: &InclusionProof,
    key: &EcKey,
    key_id: &[u8],
) -> Result<Checkpoint, String> {
    let (text, checkpoint, signatures) = parse_signed_note(&proof.checkpoint.envelope)?;
    let hint = key_id
        .get(..4)
        .ok_or("the log's key id is shorter than 4 bytes")?;
    let signed = signatures
        .iter()
        .filter(|s| s.key_hint == hint)
        .any(|s| key.verify(key.natural_hash(), text.as_bytes(), &s.signature));
    if !signed {
        return Err(format!(
            "no signature on the checkpoint verifies with the log's key (key hint {}); it was signed by another key",
            hex(hint)
        ));
    }
    let proof_size = u64::try_from(proof.tree_size).map_err(|_| "negative proof treeSize")?;
    if checkpoint.size != proof_size {
        return Err(format!(
            "the checkpoint is for a tree of {} entries, the proof for {proof_size}",
            checkpoint.size
        ));
    }
    if checkpoint.root_hash.as_slice() != proof.root_hash.0.as_slice() {
        return Err(format!(
            "the checkpoint commits to root {}, the proof to {}",
            hex(&checkpoint.root_hash),
            hex(&proof.root_hash.0)
        ));
    }
    Ok(checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962 MTH, straight from the definition.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = n.next_power_of_two() / 2;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// RFC 6962 PATH, straight from the definition.
    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = n.next_power_of_two() / 2;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    #[test]
    fn every_leaf_of_every_small_tree_proves_to_the_root() {
        for size in 1..=17usize {
            let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&[i as u8])).collect();
            let root = mth(&leaves);
            for index in 0..size {
                let proof = path(index, &leaves);
                let got =
                    root_from_inclusion_proof(index as u64, size as u64, leaves[index], &proof);
                assert_eq!(got, Ok(root), "leaf {index} of {size}");
                if !proof.is_empty() {
                    let mut bad = proof.clone();
                    bad[0] = leaf_hash(b"x");
                    let got =
                        root_from_inclusion_proof(index as u64, size as u64, leaves[index], &bad);
                    assert_ne!(got, Ok(root), "altered proof for leaf {index} of {size}");
                }
            }
        }
    }

    #[test]
    fn proof_length_and_index_are_checked() {
        let leaves: Vec<Hash> = (0..4u8).map(|i| leaf_hash(&[i])).collect();
        let proof = path(1, &leaves);
        assert!(root_from_inclusion_proof(4, 4, leaves[1], &proof).is_err());
        assert!(root_from_inclusion_proof(1, 4, leaves[1], &proof[..1]).is_err());
        let mut long = proof.clone();
        long.push(leaves[0]);
        assert!(root_from_inclusion_proof(1, 4, leaves[1], &long).is_err());
    }

    #[test]
    fn signed_note_parsing() {
        let root = STANDARD.encode([7u8; 32]);
        let sig = STANDARD.encode([1, 2, 3, 4, 9, 9]);
        let note =
            format!("log.example - 42\n10\n{root}\nTimestamp: 1\n\n\u{2014} log.example {sig}\n");
        let (text, cp, sigs) = parse_signed_note(&note).expect("parse");
        assert_eq!(
            text,
            format!("log.example - 42\n10\n{root}\nTimestamp: 1\n")
        );
        assert_eq!(
            (cp.origin.as_str(), cp.size, cp.root_hash),
            ("log.example - 42", 10, [7u8; 32])
        );
        assert_eq!(sigs[0].key_hint, [1, 2, 3, 4]);
        assert_eq!(sigs[0].signature, vec![9, 9]);
        assert!(parse_signed_note("no blank line\n").is_err());
        assert!(
            parse_signed_note(&format!("o\n10\n{root}\n\n")).is_err(),
            "unsigned"
        );
        assert!(parse_signed_note(&format!("o\nten\n{root}\n\n\u{2014} o {sig}\n")).is_err());
        assert!(
            parse_signed_note(&format!("o\n10\n{root}\n\n- o {sig}\n")).is_err(),
            "ascii dash"
        );
    }
}
