//! Sigstore TrustedRoot JSON: the Fulcio CAs, Rekor logs and CT logs a keyless verifier trusts.
//!
//! Format: `sigstore_trustroot.proto` in its proto3 JSON mapping, as `cosign trusted-root create`,
//! sigstore-python and sigstore-js read it. A `ClientTrustConfig` (which wraps a trusted root,
//! as sigstore-python's `--trust-config` takes) is accepted too.

use std::path::Path;

use serde::Deserialize;

use super::bundle::{Base64Bytes, LogId, X509Certificate};
use super::ec::{EcKey, UnsupportedKey};

/// Media type prefix of trusted roots (`...;version=0.1` and later spellings).
const TRUSTED_ROOT_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.trustedroot";

/// A parsed trusted root.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustedRoot {
    /// e.g. `application/vnd.dev.sigstore.trustedroot+json;version=0.1`.
    pub media_type: String,
    /// Rekor instances.
    #[serde(default)]
    pub tlogs: Vec<LogInstance>,
    /// Fulcio instances.
    #[serde(default)]
    pub certificate_authorities: Vec<CertificateAuthority>,
    /// Certificate Transparency logs that Fulcio submits precertificates to.
    #[serde(default)]
    pub ctlogs: Vec<LogInstance>,
}

/// A transparency log (Rekor or CT).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogInstance {
    /// Where the log lives; also names it in checkpoints.
    #[serde(default)]
    pub base_url: String,
    /// The log's key.
    pub public_key: PublicKeyMaterial,
    /// SHA-256 of the key's SPKI DER: how entries and SCTs name their log.
    pub log_id: LogId,
}

/// `PublicKey` of the trust root proto.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyMaterial {
    /// SubjectPublicKeyInfo DER.
    #[serde(default)]
    pub raw_bytes: Option<Base64Bytes>,
    /// When the key may be used; absent means always.
    #[serde(default)]
    pub valid_for: Option<TimeRange>,
}

/// A Fulcio instance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAuthority {
    /// Informational.
    #[serde(default)]
    pub uri: String,
    /// Intermediates first, the self-signed root last.
    pub cert_chain: CertChain,
    /// When the CA issued certificates; absent means always.
    #[serde(default)]
    pub valid_for: Option<TimeRange>,
}

/// `X509CertificateChain`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CertChain {
    /// DER certificates.
    #[serde(default)]
    pub certificates: Vec<X509Certificate>,
}

/// `TimeRange`: RFC 3339 timestamps, `end` open when absent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TimeRange {
    /// Start, inclusive.
    #[serde(default)]
    pub start: Option<String>,
    /// End, inclusive.
    #[serde(default)]
    pub end: Option<String>,
}

/// The trusted root could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustedRootError {
    /// File I/O.
    #[error(
        "cannot read the trusted root {path}: {source}; pass an existing trusted_root.json (`[sign] trusted-root` or `--trusted-root`)"
    )]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not the JSON we expect.
    #[error(
        "{path} is not a Sigstore trusted root ({detail}); pass the trusted_root.json of your Sigstore instance (e.g. from `cosign trusted-root create` or the instance's TUF repository)"
    )]
    Parse {
        /// The file.
        path: String,
        /// Parser message.
        detail: String,
    },
}

/// Either a trusted root or a ClientTrustConfig around one.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MaybeWrapped {
    media_type: Option<String>,
    trusted_root: Option<serde_json::Value>,
}

impl TrustedRoot {
    /// Reads a trusted root (or ClientTrustConfig) file.
    pub fn read(path: &Path) -> Result<Self, TrustedRootError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TrustedRootError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_json(&text, &shown)
    }

    /// Parses trusted root JSON; `path` names the source in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Self, TrustedRootError> {
        let err = |detail: String| TrustedRootError::Parse {
            path: path.to_owned(),
            detail,
        };
        let outer: MaybeWrapped = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let root: Self = match outer.trusted_root {
            Some(inner) => serde_json::from_value(inner),
            None => serde_json::from_str(text),
        }
        .map_err(|e| err(e.to_string()))?;
        if !root.media_type.starts_with(TRUSTED_ROOT_MEDIA_TYPE) {
            let found = outer.media_type.unwrap_or_default();
            return Err(err(format!(
                "media type `{}` (outer `{found}`)",
                root.media_type
            )));
        }
        Ok(root)
    }

    /// The Rekor instance an entry names by `key_id`, with its key.
    pub fn tlog(&self, key_id: &[u8]) -> Option<&LogInstance> {
        self.tlogs.iter().find(|log| log.log_id.key_id.0 == key_id)
    }

    /// The CT log an SCT names by `log_id`.
    pub fn ctlog(&self, log_id: &[u8]) -> Option<&LogInstance> {
        self.ctlogs.iter().find(|log| log.log_id.key_id.0 == log_id)
    }
}

impl LogInstance {
    /// The log's key, if it is one we can verify with.
    pub fn key(&self) -> Result<EcKey, UnsupportedKey> {
        let der = self
            .public_key
            .raw_bytes
            .as_ref()
            .ok_or_else(|| UnsupportedKey {
                detail: "the trusted root lists no key bytes for this log".to_owned(),
            })?;
        EcKey::from_spki_der(&der.0)
    }

    /// Whether the key was in use at `unix` seconds. Unparsable bounds count as "no".
    pub fn valid_at(&self, unix: i64) -> bool {
        covers(self.public_key.valid_for.as_ref(), unix)
    }
}

impl CertificateAuthority {
    /// Whether the CA was issuing at `unix` seconds. Unparsable bounds count as "no".
    pub fn valid_at(&self, unix: i64) -> bool {
        covers(self.valid_for.as_ref(), unix)
    }
}

fn covers(range: Option<&TimeRange>, unix: i64) -> bool {
    let Some(range) = range else { return true };
    let after_start = match &range.start {
        Some(start) => parse_rfc3339(start).is_some_and(|start| start <= unix),
        None => true,
    };
    let before_end = match &range.end {
        Some(end) => parse_rfc3339(end).is_some_and(|end| unix <= end),
        None => true,
    };
    after_start && before_end
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp (`2024-01-02T03:04:05.678Z`, or with a
/// `+hh:mm` offset). Fractions are dropped: Rekor's integrated times are whole seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let num = |range| num_in(text, range);
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't')
    {
        return None;
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let (h, m) = (num_in(rest, 1..3)?, num_in(rest, 4..6)?);
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn num_in(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = text.get(range)?;
    part.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| part.parse().ok())?
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's civil-date algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2024-01-02T03:04:05Z` for Unix seconds: times in messages that people read.
pub fn format_rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Inverse of `days_from_civil` (same algorithm, run backwards).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2021-03-07T03:20:29.000Z"),
            Some(1_615_087_229)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T12:00:00+01:30"),
            Some(951_825_600 - 5400)
        );
        assert_eq!(
            parse_rfc3339("2024-12-31T23:59:59.123456789Z"),
            Some(1_735_689_599)
        );
        for bad in [
            "",
            "2021-03-07",
            "2021-13-07T00:00:00Z",
            "2021-03-07T00:00:00",
            "2021-03-07T00:00:00.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_what_it_parses() {
        for unix in [0, 951_825_600, 1_615_087_229, 1_735_689_599, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&format_rfc3339(unix)), Some(unix));
        }
        assert_eq!(format_rfc3339(1_615_087_229), "2021-03-07T03:20:29Z");
    }

    #[test]
    fn validity_windows_fail_closed_on_garbage() {
        let range = |start: &str, end: Option<&str>| {
            Some(TimeRange {
                start: Some(start.to_owned()),
                end: end.map(str::to_owned),
            })
        };
        assert!(covers(None, 5));
        assert!(covers(range("1970-01-01T00:00:05Z", None).as_ref(), 5));
        assert!(!covers(range("1970-01-01T00:00:06Z", None).as_ref(), 5));
        assert!(!covers(
            range("1970-01-01T00:00:00Z", Some("1970-01-01T00:00:04Z")).as_ref(),
            5
        ));
        assert!(!covers(range("yesterday", None).as_ref(), 5));
    }

    #[test]
    fn reads_a_root_and_a_client_trust_config() {
        let root = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{"baseUrl": "https://rekor.example", "hashAlgorithm": "SHA2_256",
                       "publicKey": {"rawBytes": "AAEC", "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                     "validFor": {"start": "2021-01-12T11:53:27Z"}},
                       "logId": {"keyId": "AQID"}}],
            "certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": "AAEC"}]},
                                        "validFor": {"start": "2021-01-12T11:53:27Z"}}],
            "ctlogs": [],
            "timestampAuthorities": []
        });
        let parsed = TrustedRoot::from_json(&root.to_string(), "root.json").expect("root");
        assert_eq!(
            parsed.tlog(&[1, 2, 3]).map(|l| l.base_url.as_str()),
            Some("https://rekor.example")
        );
        assert!(parsed.tlog(&[9]).is_none());

        let wrapped = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": root,
            "signingConfig": {}
        });
        assert_eq!(
            TrustedRoot::from_json(&wrapped.to_string(), "c.json").expect("wrapped"),
            parsed
        );

        let bundle_instead = r#"{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}"#;
        assert!(matches!(
            TrustedRoot::from_json(bundle_instead, "b.json"),
            Err(TrustedRootError::Parse { .. })
        ));
    }

    #[test]
    fn reads_sigstores_public_good_root_with_the_logs_it_cannot_use() {
        // The real trusted_root.json of the public-good instance: two Fulcio CAs (the first
        // retired), a Rekor v1 log (ECDSA P-256) and a Rekor v2 log (Ed25519), two CT logs.
        let text = include_str!("../../tests/fixtures/tuf/sigstore-trusted_root.json");
        let root = TrustedRoot::from_json(text, "public-good").unwrap();
        assert_eq!(root.tlogs.len(), 2);
        assert_eq!(root.certificate_authorities.len(), 2);
        for log in root.tlogs.iter().chain(&root.ctlogs) {
            let key = log.key();
            let spki = &log.public_key.raw_bytes.as_ref().unwrap().0;
            if log.base_url.contains("log2025-1") {
                // Ed25519 (Rekor v2) is listed, not usable: a bundle from it fails its checks.
                assert!(key.is_err(), "{}", log.base_url);
            } else {
                key.unwrap_or_else(|e| panic!("{}: {e}", log.base_url));
                let id: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(spki).into();
                assert_eq!(
                    log.log_id.key_id.0, id,
                    "{}: logId is the key's SHA-256",
                    log.base_url
                );
            }
        }
        let v1 = root
            .tlogs
            .iter()
            .find(|l| l.base_url == "https://rekor.sigstore.dev")
            .unwrap();
        assert!(root.tlog(&v1.log_id.key_id.0).is_some());
        assert!(v1.valid_at(1_735_689_600) && !v1.valid_at(1_600_000_000));
        for ca in &root.certificate_authorities {
            for cert in &ca.cert_chain.certificates {
                super::super::certificate::Cert::from_der(&cert.raw_bytes.0, "CA").unwrap();
            }
        }
    }
}
