//! Rekor v1 client and entry bodies: upload `hashedrekord`/`dsse` entries, and check a logged body against a bundle.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::bundle::{
    Base64Bytes, Checkpoint, InclusionPromise, InclusionProof, KindVersion, LogId,
    TransparencyLogEntry,
};
use super::certificate::{Cert, pem_blocks, to_pem};
use super::dsse::{Envelope, decode_base64_lenient};
use super::http::{Http, TransportError, excerpt};
use crate::digest::{hex, unhex as decode_hex};

/// Rekor refused the entry or answered something unusable.
#[derive(Debug, thiserror::Error)]
pub enum RekorError {
    /// No answer.
    #[error("uploading to Rekor: {0}")]
    Transport(#[from] TransportError),
    /// The entry is already logged (same signature and key).
    #[error("Rekor at {url} already holds this entry (409); sign again to get a fresh signature")]
    Conflict {
        /// Rekor base URL.
        url: String,
    },
    /// Any other non-success status.
    #[error(
        "Rekor at {url} rejected the {kind} entry ({status}: {body}); check `[sign] rekor-url` points at a Rekor v1 API"
    )]
    Status {
        /// Rekor base URL.
        url: String,
        /// Entry kind.
        kind: &'static str,
        /// HTTP status.
        status: u16,
        /// Excerpt of the answer.
        body: String,
    },
    /// A success we cannot turn into a bundle entry.
    #[error(
        "Rekor at {url} answered 201 but the entry is unusable ({detail}); xrelease needs an inclusion proof with a checkpoint and a signed entry timestamp"
    )]
    Unusable {
        /// Rekor base URL.
        url: String,
        /// What was missing or malformed.
        detail: String,
    },
}

/// The proposed `hashedrekord` v0.0.1 entry for a signature over a blob with SHA-256 `digest`.
pub fn hashedrekord_entry(digest: &[u8], signature_der: &[u8], leaf: &Cert) -> Value {
    json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hex(digest)}},
            "signature": {
                "content": STANDARD.encode(signature_der),
                "publicKey": {"content": STANDARD.encode(to_pem("CERTIFICATE", leaf.der()))},
            },
        },
    })
}

/// The proposed `dsse` v0.0.1 entry: the envelope exactly as serialised for signing, and the
/// certificate that verifies it.
pub fn dsse_entry(envelope_json: &str, leaf: &Cert) -> Value {
    json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "proposedContent": {
                "envelope": envelope_json,
                "verifiers": [STANDARD.encode(to_pem("CERTIFICATE", leaf.der()))],
            },
        },
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogEntry {
    body: String,
    integrated_time: i64,
    #[serde(rename = "logID")]
    log_id: String,
    log_index: i64,
    verification: Option<Verification>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Verification {
    signed_entry_timestamp: Option<String>,
    inclusion_proof: Option<RawProof>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProof {
    checkpoint: Option<String>,
    #[serde(default)]
    hashes: Vec<String>,
    log_index: i64,
    root_hash: String,
    tree_size: i64,
}

/// Uploads `entry` to the Rekor at `base_url` and returns it as a bundle tlog entry.
pub fn upload(
    http: &Http,
    base_url: &str,
    entry: &Value,
) -> Result<TransparencyLogEntry, RekorError> {
    let base_url = base_url.trim_end_matches('/');
    let kind = match entry["kind"].as_str() {
        Some("dsse") => "dsse",
        _ => "hashedrekord",
    };
    let url = format!("{base_url}/api/v1/log/entries");
    let response = http.post_json(&url, &entry.to_string(), None)?;
    match response.status {
        201 | 200 => {}
        409 => {
            return Err(RekorError::Conflict {
                url: base_url.to_owned(),
            });
        }
        status => {
            return Err(RekorError::Status {
                url: base_url.to_owned(),
                kind,
                status,
                body: excerpt(&response.body, &[]),
            });
        }
    }
    let unusable = |detail: String| RekorError::Unusable {
        url: base_url.to_owned(),
        detail,
    };
    let mut entries: std::collections::BTreeMap<String, LogEntry> =
        serde_json::from_str(&response.body).map_err(|e| unusable(e.to_string()))?;
    let (_uuid, logged) = entries
        .pop_first()
        .ok_or_else(|| unusable("no entry in the answer".to_owned()))?;
    to_bundle_entry(logged).map_err(unusable)
}

fn to_bundle_entry(logged: LogEntry) -> Result<TransparencyLogEntry, String> {
    let body = STANDARD
        .decode(&logged.body)
        .map_err(|e| format!("body is not base64 ({e})"))?;
    let header: Value =
        serde_json::from_slice(&body).map_err(|e| format!("body is not JSON ({e})"))?;
    let kind_version = KindVersion {
        kind: header["kind"]
            .as_str()
            .ok_or("body has no kind")?
            .to_owned(),
        version: header["apiVersion"]
            .as_str()
            .ok_or("body has no apiVersion")?
            .to_owned(),
    };
    let verification = logged.verification.ok_or("no verification object")?;
    let set = verification
        .signed_entry_timestamp
        .ok_or("no signedEntryTimestamp")?;
    let proof = verification.inclusion_proof.ok_or("no inclusionProof")?;
    let unhex =
        |text: &str, what: &str| decode_hex(text).ok_or_else(|| format!("{what} is not hex"));
    Ok(TransparencyLogEntry {
        log_index: logged.log_index,
        log_id: LogId {
            key_id: Base64Bytes(unhex(&logged.log_id, "logID")?),
        },
        kind_version,
        integrated_time: logged.integrated_time,
        inclusion_promise: Some(InclusionPromise {
            signed_entry_timestamp: Base64Bytes(
                STANDARD
                    .decode(set)
                    .map_err(|e| format!("signedEntryTimestamp is not base64 ({e})"))?,
            ),
        }),
        inclusion_proof: Some(InclusionProof {
            log_index: proof.log_index,
            root_hash: Base64Bytes(unhex(&proof.root_hash, "rootHash")?),
            tree_size: proof.tree_size,
            hashes: proof
                .hashes
                .iter()
                .map(|h| unhex(h, "an inclusion proof hash").map(Base64Bytes))
                .collect::<Result<_, _>>()?,
            checkpoint: Checkpoint {
                envelope: proof
                    .checkpoint
                    .ok_or("no checkpoint in the inclusion proof")?,
            },
        }),
        canonicalized_body: Base64Bytes(body),
    })
}

/// What a bundle says was signed, to compare with a logged body.
pub enum Signed<'a> {
    /// A blob signature: SHA-256 of the artifact and the DER signature.
    Blob {
        /// SHA-256 of the artifact as we computed it.
        digest: &'a [u8],
        /// DER ECDSA signature.
        signature: &'a [u8],
    },
    /// A DSSE envelope.
    Dsse(&'a Envelope),
}

/// Checks that a canonicalized Rekor body records exactly `signed`, by `leaf`.
pub fn check_body(
    body: &[u8],
    kind_version: &KindVersion,
    signed: &Signed<'_>,
    leaf: &Cert,
) -> Result<String, String> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| format!("the logged body is not JSON ({e})"))?;
    let (kind, version) = (
        body["kind"].as_str().unwrap_or(""),
        body["apiVersion"].as_str().unwrap_or(""),
    );
    if (kind, version) != (kind_version.kind.as_str(), kind_version.version.as_str()) {
        return Err(format!(
            "the body is a {kind} v{version} entry but the bundle says {} v{}",
            kind_version.kind, kind_version.version
        ));
    }
    let spec = &body["spec"];
    match (kind, version, signed) {
        ("hashedrekord", "0.0.1", Signed::Blob { digest, signature }) => {
            let hash = &spec["data"]["hash"];
            if hash["algorithm"] != "sha256" || hash["value"].as_str() != Some(hex(digest).as_str())
            {
                return Err(format!(
                    "the logged entry is for digest {}:{}, not the artifact's sha256:{}",
                    hash["algorithm"].as_str().unwrap_or("?"),
                    hash["value"].as_str().unwrap_or("?"),
                    hex(digest)
                ));
            }
            let logged_sig = b64_field(&spec["signature"]["content"], "signature.content")?;
            if logged_sig != *signature {
                return Err("the logged signature is not the bundle's signature".to_owned());
            }
            same_certificate(&spec["signature"]["publicKey"]["content"], leaf)?;
            Ok(format!("hashedrekord for sha256:{}", hex(digest)))
        }
        ("dsse", "0.0.1", Signed::Dsse(envelope)) => {
            let payload = envelope.payload_bytes().map_err(|e| e.to_string())?;
            let payload_hash = hex(&Sha256::digest(&payload));
            let logged = &spec["payloadHash"];
            if logged["algorithm"] != "sha256"
                || logged["value"].as_str() != Some(payload_hash.as_str())
            {
                return Err(format!(
                    "the logged entry is for payload sha256:{}, not the envelope's sha256:{payload_hash}",
                    logged["value"].as_str().unwrap_or("?")
                ));
            }
            let logged_sigs = spec["signatures"]
                .as_array()
                .ok_or("the logged entry has no signatures")?;
            if logged_sigs.len() != envelope.signatures.len() {
                return Err(format!(
                    "the logged entry has {} signature(s), the envelope {}",
                    logged_sigs.len(),
                    envelope.signatures.len()
                ));
            }
            for sig in &envelope.signatures {
                let ours = decode_base64_lenient(&sig.sig)
                    .map_err(|_| "an envelope signature is not base64")?;
                let logged = logged_sigs
                    .iter()
                    .find(|l| b64_field(&l["signature"], "signature").is_ok_and(|b| b == ours))
                    .ok_or("the envelope's signature is not the one logged")?;
                same_certificate(&logged["verifier"], leaf)?;
            }
            Ok(format!("dsse for payload sha256:{payload_hash}"))
        }
        (kind, version, Signed::Blob { .. }) => Err(format!(
            "a blob signature must be logged as hashedrekord v0.0.1, this is {kind} v{version}"
        )),
        (kind, version, Signed::Dsse(_)) => Err(format!(
            "a DSSE envelope must be logged as dsse v0.0.1, this is {kind} v{version}"
        )),
    }
}

fn b64_field(value: &Value, what: &str) -> Result<Vec<u8>, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("the logged entry has no {what}"))?;
    STANDARD
        .decode(text)
        .map_err(|e| format!("the logged {what} is not base64 ({e})"))
}

/// The logged key field (base64 of a PEM certificate) must be the bundle's certificate.
fn same_certificate(value: &Value, leaf: &Cert) -> Result<(), String> {
    let pem = b64_field(value, "verifier/public key")?;
    let text = String::from_utf8(pem).map_err(|_| "the logged certificate is not PEM text")?;
    let ders = pem_blocks(&text, "CERTIFICATE", "logged entry").map_err(|e| e.to_string())?;
    if ders.first().map(Vec::as_slice) != Some(leaf.der()) {
        return Err("the logged entry names a different certificate than the bundle".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
