//! Embedded SCTs (RFC 6962 §3): parse the list in a Fulcio leaf, rebuild the precertificate it signs, verify.
//!
//! A CT log signs the *precertificate*: the final certificate's TBSCertificate without the SCT
//! list extension, bound to the issuer by SHA-256 of the issuer's SubjectPublicKeyInfo. The TBS
//! is rebuilt by cutting the extension out of the original bytes ([`asn1::tbs_without_extension`]),
//! never by re-encoding, so an issuer's encoding choices cannot make a good SCT fail.

use sha2::{Digest as _, Sha256};
use x509_cert::der::Decode as _;
use x509_cert::der::asn1::{ObjectIdentifier, OctetStringRef};

use super::asn1;
use super::certificate::Cert;
use super::ec::HashAlg;
use super::trusted_root::TrustedRoot;
use crate::digest::hex;

/// `SignedCertificateTimestampList` extension.
pub const OID_SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// One SCT (v1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sct {
    /// SHA-256 of the log's key.
    pub log_id: [u8; 32],
    /// Milliseconds since the epoch.
    pub timestamp_ms: u64,
    /// CT extensions (normally empty), signed along.
    pub extensions: Vec<u8>,
    /// TLS HashAlgorithm: 4 = SHA-256, 5 = SHA-384.
    pub hash: u8,
    /// TLS SignatureAlgorithm: 3 = ECDSA.
    pub signature_algorithm: u8,
    /// DER ECDSA signature.
    pub signature: Vec<u8>,
}

/// Big-endian reader over TLS-encoded bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("the SCT list is truncated".to_owned());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }
    fn vec(&mut self, len_bytes: usize) -> Result<&'a [u8], String> {
        let len = self.uint(len_bytes)? as usize;
        self.take(len)
    }
}

/// The SCTs embedded in `leaf`; an error if there are none or they don't parse.
pub fn embedded_scts(leaf: &Cert) -> Result<Vec<Sct>, String> {
    let ext = leaf
        .extension(OID_SCT_LIST)
        .ok_or("the certificate has no embedded SCT extension")?;
    // extnValue holds a DER OCTET STRING whose contents are the TLS-encoded list.
    let list = OctetStringRef::from_der(ext)
        .map_err(|e| format!("the SCT extension is not an OCTET STRING ({e})"))?;
    let mut outer = Reader(list.as_bytes());
    let mut entries = Reader(outer.vec(2)?);
    if !outer.0.is_empty() {
        return Err("bytes after the SCT list".to_owned());
    }
    let mut scts = Vec::new();
    while !entries.0.is_empty() {
        let mut r = Reader(entries.vec(2)?);
        let version = r.uint(1)?;
        if version != 0 {
            return Err(format!("SCT version {version} (only v1 = 0 exists)"));
        }
        let mut log_id = [0u8; 32];
        log_id.copy_from_slice(r.take(32)?);
        let sct = Sct {
            log_id,
            timestamp_ms: r.uint(8)?,
            extensions: r.vec(2)?.to_vec(),
            hash: r.uint(1)? as u8,
            signature_algorithm: r.uint(1)? as u8,
            signature: r.vec(2)?.to_vec(),
        };
        if !r.0.is_empty() {
            return Err("bytes after an SCT".to_owned());
        }
        scts.push(sct);
    }
    if scts.is_empty() {
        return Err("the SCT extension lists no SCTs".to_owned());
    }
    Ok(scts)
}

/// The bytes a CT log signed for a precertificate entry (RFC 6962 §3.2 `digitally-signed`).
pub fn signed_data(
    sct: &Sct,
    issuer_key_hash: &[u8; 32],
    precert_tbs: &[u8],
) -> Result<Vec<u8>, String> {
    let tbs_len = u32::try_from(precert_tbs.len())
        .ok()
        .filter(|&n| n < 1 << 24)
        .ok_or("the certificate is too large for an SCT")?;
    let ext_len = u16::try_from(sct.extensions.len()).map_err(|_| "SCT extensions too long")?;
    let mut out = Vec::with_capacity(precert_tbs.len() + 64);
    out.push(0); // sct_version v1
    out.push(0); // signature_type certificate_timestamp
    out.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
    out.extend_from_slice(issuer_key_hash);
    out.extend_from_slice(&tbs_len.to_be_bytes()[1..]);
    out.extend_from_slice(precert_tbs);
    out.extend_from_slice(&ext_len.to_be_bytes());
    out.extend_from_slice(&sct.extensions);
    Ok(out)
}

/// Checks every embedded SCT against the CT logs of `root`; `issuer` is the certificate that
/// signed `leaf`. Returns a one-line description of what verified.
pub fn verify_embedded_scts(
    leaf: &Cert,
    issuer: &Cert,
    root: &TrustedRoot,
) -> Result<String, String> {
    let scts = embedded_scts(leaf)?;
    let tbs = asn1::tbs_of_certificate(leaf.der()).map_err(|e| e.to_string())?;
    let precert = asn1::tbs_without_extension(tbs, OID_SCT_LIST.as_bytes())
        .map_err(|e| e.to_string())?
        .ok_or("the SCT extension vanished while rebuilding the precertificate")?;
    let issuer_key_hash: [u8; 32] = Sha256::digest(issuer.spki_der()).into();
    let mut logs = Vec::new();
    for sct in &scts {
        let log = root.ctlog(&sct.log_id).ok_or_else(|| {
            format!(
                "an SCT names CT log {}, which the trusted root does not list",
                hex(&sct.log_id)
            )
        })?;
        let at = i64::try_from(sct.timestamp_ms / 1000).unwrap_or(i64::MAX);
        if !log.valid_at(at) {
            return Err(format!(
                "CT log {} was not in use at the SCT's time {at}",
                log.base_url
            ));
        }
        let hash = match (sct.hash, sct.signature_algorithm) {
            (4, 3) => HashAlg::Sha256,
            (5, 3) => HashAlg::Sha384,
            (h, s) => {
                return Err(format!(
                    "SCT signed with TLS hash {h} / signature {s}; only ECDSA with SHA-256/384 is supported"
                ));
            }
        };
        let key = log.key().map_err(|e| e.to_string())?;
        let message = signed_data(sct, &issuer_key_hash, &precert)?;
        if !key.verify(hash, &message, &sct.signature) {
            return Err(format!(
                "the SCT from CT log {} does not verify over the precertificate: the certificate was altered, or the log's key differs",
                log.base_url
            ));
        }
        logs.push(log.base_url.clone());
    }
    Ok(format!("{} SCT(s) from {}", scts.len(), logs.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_data_layout() {
        let sct = Sct {
            log_id: [0; 32],
            timestamp_ms: 0x0102_0304_0506_0708,
            extensions: vec![],
            hash: 4,
            signature_algorithm: 3,
            signature: vec![],
        };
        let data = signed_data(&sct, &[0xaa; 32], b"TBS").unwrap();
        let mut expected = vec![0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1];
        expected.extend([0xaa; 32]);
        expected.extend([0, 0, 3]);
        expected.extend(b"TBS");
        expected.extend([0, 0]);
        assert_eq!(data, expected);
    }
}
