//! Byte-exact DER walking: the signed bytes of a certificate, and a TBS with one extension cut out.
//!
//! Signatures cover exact bytes. Decoding into structs and re-encoding reproduces them only if
//! the issuer wrote canonical DER everywhere, so the two places that need signed bytes (the TBS
//! of a certificate, and the precertificate TBS an SCT signs) slice the original encoding instead.

/// DER tag of SEQUENCE.
const SEQUENCE: u8 = 0x30;
/// DER tag of OBJECT IDENTIFIER.
const OID: u8 = 0x06;
/// `[3] EXPLICIT` in a TBSCertificate: the extensions.
const EXTENSIONS: u8 = 0xA3;

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

/// The elements inside a constructed value.
pub fn children(value: &[u8]) -> Result<Vec<Tlv<'_>>, DerError> {
    let mut out = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let (tlv, next) = read(rest)?;
        out.push(tlv);
        rest = next;
    }
    Ok(out)
}

/// Encodes `tag`, a minimal DER length and `content`.
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
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

/// `tbs` with the extension `oid_der` (the OID's content octets) removed, every other byte kept.
/// Returns `None` when the TBS has no such extension. An extensions list left empty is dropped
/// whole, since `Extensions` may not be an empty SEQUENCE.
pub fn tbs_without_extension(tbs: &[u8], oid_der: &[u8]) -> Result<Option<Vec<u8>>, DerError> {
    let tbs = read_one(tbs)?;
    if tbs.tag != SEQUENCE {
        return Err(DerError("a TBSCertificate is a SEQUENCE"));
    }
    let mut found = false;
    let mut content = Vec::with_capacity(tbs.value.len());
    for field in children(tbs.value)? {
        if field.tag != EXTENSIONS {
            content.extend_from_slice(field.whole);
            continue;
        }
        let list = read_one(field.value)?;
        if list.tag != SEQUENCE {
            return Err(DerError("Extensions is a SEQUENCE"));
        }
        let mut kept = Vec::with_capacity(list.value.len());
        for extension in children(list.value)? {
            let (id, _) = read(extension.value)?;
            if id.tag == OID && id.value == oid_der {
                found = true;
            } else {
                kept.extend_from_slice(extension.whole);
            }
        }
        if !kept.is_empty() {
            content.extend_from_slice(&encode(EXTENSIONS, &encode(SEQUENCE, &kept)));
        }
    }
    Ok(found.then(|| encode(SEQUENCE, &content)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_in_minimal_form() {
        for len in [0usize, 1, 127, 128, 255, 256, 65_535, 70_000] {
            let content = vec![7u8; len];
            let encoded = encode(0x04, &content);
            let (tlv, rest) = read(&encoded).expect("read");
            assert_eq!((tlv.tag, tlv.value.len(), rest.len()), (0x04, len, 0));
            assert_eq!(tlv.whole, &encoded[..]);
        }
    }

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

    fn extension(oid: &[u8], value: &[u8]) -> Vec<u8> {
        let mut inner = encode(OID, oid);
        inner.extend(encode(0x04, value));
        encode(SEQUENCE, &inner)
    }

    #[test]
    fn cuts_one_extension_and_keeps_the_rest_byte_for_byte() {
        let version = encode(0xA0, &encode(0x02, &[2]));
        let serial = encode(0x02, &[0x11]);
        let (a, b, cut) = (
            extension(&[1, 2], b"a"),
            extension(&[1, 3], &[9; 200]),
            extension(&[1, 4], b"sct"),
        );
        let tbs_with = |exts: &[&Vec<u8>]| {
            let list: Vec<u8> = exts.iter().flat_map(|e| e.iter().copied()).collect();
            let mut content = version.clone();
            content.extend(&serial);
            content.extend(encode(EXTENSIONS, &encode(SEQUENCE, &list)));
            encode(SEQUENCE, &content)
        };
        let original = tbs_with(&[&a, &cut, &b]);
        let expected = tbs_with(&[&a, &b]);
        assert_eq!(
            tbs_without_extension(&original, &[1, 4]).unwrap(),
            Some(expected)
        );
        assert_eq!(tbs_without_extension(&original, &[1, 9]).unwrap(), None);

        let only = tbs_with(&[&cut]);
        let mut bare = version.clone();
        bare.extend(&serial);
        assert_eq!(
            tbs_without_extension(&only, &[1, 4]).unwrap(),
            Some(encode(SEQUENCE, &bare))
        );
    }
}
