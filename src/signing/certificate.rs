//! Fulcio certificates: parsing, the chain to a trusted CA, validity at a time, and the identity they certify.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use x509_cert::Certificate;
use x509_cert::der::asn1::{ObjectIdentifier, Utf8StringRef};
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::asn1;
use super::ec::EcKey;

const OID_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
/// Fulcio's OIDC issuer extension, v1: the issuer URL as raw bytes (deprecated, still written).
const OID_FULCIO_ISSUER_V1: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's OIDC issuer extension, v2: the issuer URL as a DER UTF8String.
const OID_FULCIO_ISSUER_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");

/// A certificate that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// Not X.509 DER.
    #[error(
        "the {what} is not a DER X.509 certificate ({detail}); the bundle or trusted root is damaged"
    )]
    Malformed {
        /// Which certificate.
        what: &'static str,
        /// Parser message.
        detail: String,
    },
    /// PEM text without the expected block.
    #[error("no `{label}` PEM block in the {what}; expected PEM text as Fulcio returns it")]
    NoPem {
        /// Which input.
        what: &'static str,
        /// The label looked for.
        label: &'static str,
    },
    /// PEM body not base64.
    #[error("a PEM block in the {what} is not base64 ({detail})")]
    PemBase64 {
        /// Which input.
        what: &'static str,
        /// Decoder message.
        detail: String,
    },
}

/// A parsed certificate, keeping its exact DER.
#[derive(Debug, Clone)]
pub struct Cert {
    der: Vec<u8>,
    cert: Certificate,
}

impl Cert {
    /// Parses DER; `what` names the certificate in errors ("leaf certificate", ...).
    pub fn from_der(der: &[u8], what: &'static str) -> Result<Self, CertificateError> {
        let malformed = |detail: String| CertificateError::Malformed { what, detail };
        let cert = Certificate::from_der(der).map_err(|e| malformed(e.to_string()))?;
        // The signature check slices the original bytes; make sure they slice.
        asn1::tbs_of_certificate(der).map_err(|e| malformed(e.to_string()))?;
        Ok(Self {
            der: der.to_vec(),
            cert,
        })
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SubjectPublicKeyInfo DER: what SCTs hash as the issuer key id.
    pub fn spki_der(&self) -> Vec<u8> {
        // Re-encoding a decoded SPKI is exact: it is two fixed-shape fields.
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap_or_default()
    }

    /// The subject key, if it is one we can verify with.
    pub fn public_key(&self) -> Result<EcKey, super::ec::UnsupportedKey> {
        EcKey::from_spki_der(&self.spki_der())
    }

    /// notBefore and notAfter, Unix seconds.
    pub fn validity(&self) -> (i64, i64) {
        let validity = &self.cert.tbs_certificate.validity;
        let secs = |t: x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        (secs(validity.not_before), secs(validity.not_after))
    }

    /// Whether `unix` falls inside the validity window (both ends inclusive, as RFC 5280 says).
    pub fn valid_at(&self, unix: i64) -> bool {
        let (start, end) = self.validity();
        start <= unix && unix <= end
    }

    /// The raw value of extension `oid` (the content of its extnValue OCTET STRING).
    pub fn extension(&self, oid: ObjectIdentifier) -> Option<&[u8]> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|ext| ext.extn_id == oid)
            .map(|ext| ext.extn_value.as_bytes())
    }

    /// The URI and email SANs, in certificate order.
    pub fn san_identities(&self) -> Vec<String> {
        let Some(san) = self
            .extension(OID_SAN)
            .and_then(|v| SubjectAltName::from_der(v).ok())
        else {
            return Vec::new();
        };
        san.0
            .iter()
            .filter_map(|name| match name {
                GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
                GeneralName::Rfc822Name(email) => Some(email.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The OIDC issuer Fulcio recorded. When both extensions are present they must agree;
    /// a certificate whose two issuer fields disagree certifies nothing.
    pub fn oidc_issuer(&self) -> Result<Option<String>, String> {
        let v2 = match self.extension(OID_FULCIO_ISSUER_V2) {
            Some(der) => Some(
                Utf8StringRef::from_der(der)
                    .map(|s| s.as_str().to_owned())
                    .map_err(|e| {
                        format!("issuer extension {OID_FULCIO_ISSUER_V2} is not a UTF8String ({e})")
                    })?,
            ),
            None => None,
        };
        let v1 = match self.extension(OID_FULCIO_ISSUER_V1) {
            Some(raw) => Some(
                String::from_utf8(raw.to_vec())
                    .map_err(|_| format!("issuer extension {OID_FULCIO_ISSUER_V1} is not UTF-8"))?,
            ),
            None => None,
        };
        match (v1, v2) {
            (Some(v1), Some(v2)) if v1 != v2 => Err(format!(
                "the certificate's issuer extensions disagree ({OID_FULCIO_ISSUER_V1}: `{v1}`, {OID_FULCIO_ISSUER_V2}: `{v2}`)"
            )),
            (v1, v2) => Ok(v2.or(v1)),
        }
    }
}

/// All `label` blocks of PEM text, decoded.
pub fn pem_blocks(
    text: &str,
    label: &'static str,
    what: &'static str,
) -> Result<Vec<Vec<u8>>, CertificateError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let stop = after
            .find(&end)
            .ok_or(CertificateError::NoPem { what, label })?;
        let body: String = after[..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        out.push(
            STANDARD
                .decode(body)
                .map_err(|e| CertificateError::PemBase64 {
                    what,
                    detail: e.to_string(),
                })?,
        );
        rest = &after[stop + end.len()..];
    }
    if out.is_empty() {
        return Err(CertificateError::NoPem { what, label });
    }
    Ok(out)
}

/// PEM text of one block, 64-column lines, as Go's `pem.Encode` writes (and Rekor stores).
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_errors() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = to_pem("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let two = format!("{pem}junk\n{pem}");
        assert_eq!(
            pem_blocks(&two, "CERTIFICATE", "test").unwrap(),
            vec![der.clone(), der]
        );
        assert!(matches!(
            pem_blocks("nothing", "CERTIFICATE", "test"),
            Err(CertificateError::NoPem { .. })
        ));
        assert!(matches!(
            pem_blocks(
                "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----",
                "CERTIFICATE",
                "t"
            ),
            Err(CertificateError::PemBase64 { .. })
        ));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(
            Cert::from_der(b"\x30\x03\x02\x01\x01", "leaf certificate"),
            Err(CertificateError::Malformed { .. })
        ));
    }
}
