//! Byte-exact DER walking: the signed bytes (TBS) of a certificate.
//!
//! Signatures cover exact bytes. Decoding into structs and re-encoding reproduces them only if
//! the issuer wrote canonical DER everywhere, so the TBS is sliced from the original encoding.

/// DER tag of SEQUENCE.
const SEQUENCE: u8 = 0x30;

/// The DER could not be walked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed DER: {0}")]
pub struct DerError(pub &'static str);

/// One tag-length-value element, borrowed from its encoding.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    /// The identifier octet (only low-tag-number form occurs in X.509).
    pub tag: u8,
    /// The contents.
    pub value: &'a [u8],
    /// Tag, length and contents: the exact encoded bytes.
    pub whole: &'a [u8],
}

/// Reads the element at the start of `input`; returns it and the bytes after it.
pub fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), DerError> {
    let (&tag, rest) = input.split_first().ok_or(DerError("unexpected end"))?;
    if tag & 0x1f == 0x1f {
        return Err(DerError("high tag numbers do not occur in certificates"));
    }
    let (&first, rest) = rest.split_first().ok_or(DerError("missing length"))?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(DerError("indefinite or oversized length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        if rest[0] == 0 || len < 0x80 {
            return Err(DerError("non-minimal length"));
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(DerError("length runs past the end"));
    }
    let header = input.len() - rest.len();
    let tlv = Tlv {
        tag,
        value: &rest[..len],
        whole: &input[..header + len],
    };
    Ok((tlv, &rest[len..]))
}

/// Reads exactly one element filling all of `input`.
pub fn read_one(input: &[u8]) -> Result<Tlv<'_>, DerError> {
    match read(input)? {
        (tlv, []) => Ok(tlv),
        _ => Err(DerError("trailing bytes")),
    }
}

/// The exact TBSCertificate bytes of a certificate: what its issuer signed.
pub fn tbs_of_certificate(cert_der: &[u8]) -> Result<&[u8], DerError> {
    let cert = read_one(cert_der)?;
    if cert.tag != SEQUENCE {
        return Err(DerError("a certificate is a SEQUENCE"));
    }
    let (tbs, _) = read(cert.value)?;
    if tbs.tag != SEQUENCE {
        return Err(DerError("a TBSCertificate is a SEQUENCE"));
    }
    Ok(tbs.whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_der_lengths() {
        assert!(
            read(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5]).is_err(),
            "long form for a short length"
        );
        assert!(read(&[0x04, 0x80]).is_err(), "indefinite length");
        assert!(read(&[0x04, 0x05, 1]).is_err(), "truncated");
        assert!(read_one(&[0x04, 0x00, 0x00]).is_err(), "trailing bytes");
    }
}
