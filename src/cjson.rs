//! OLPC canonical JSON, the encoding TUF and in-toto (via securesystemslib) sign: object keys
//! sorted, no whitespace, strings with only `"` and `\` escaped, integers only.
//!
//! Metadata is verified over the canonical form of its `signed` value as parsed, so fields this
//! client does not know (`x-tuf-on-ci-*` and the like) are covered by the signature too.

use serde_json::Value;

/// A value canonical JSON cannot carry: a number that is not an integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("canonical JSON has no non-integer numbers, and the metadata holds {0}")]
pub struct NotCanonical(pub String);

/// The canonical encoding of `value`.
pub fn encode(value: &Value) -> Result<Vec<u8>, NotCanonical> {
    let mut out = Vec::with_capacity(4096);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), NotCanonical> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if !(n.is_i64() || n.is_u64()) {
                return Err(NotCanonical(n.to_string()));
            }
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // serde_json's map is ordered by key already unless `preserve_order` is on; sort
            // anyway so the encoding never depends on a feature flag elsewhere in the tree.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for byte in s.bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(value: Value) -> String {
        String::from_utf8(encode(&value).unwrap()).unwrap()
    }

    #[test]
    fn keys_sort_bytewise_and_nothing_is_spaced() {
        let value = json!({"b": [1, true, null], "a": {"z": -3, "Z": "x"}, "_type": "root"});
        assert_eq!(
            canon(value),
            r#"{"_type":"root","a":{"Z":"x","z":-3},"b":[1,true,null]}"#
        );
    }

    #[test]
    fn strings_escape_only_quote_and_backslash() {
        // Control characters and non-ASCII go through raw, unlike ordinary JSON.
        let value = json!("a\"b\\c\nd\u{7f}é");
        assert_eq!(
            canon(value).as_bytes(),
            "\"a\\\"b\\\\c\nd\u{7f}é\"".as_bytes()
        );
    }

    #[test]
    fn non_integers_are_refused() {
        assert!(encode(&json!({"version": 1.5})).is_err());
        assert_eq!(canon(json!(u64::MAX)), u64::MAX.to_string());
    }
}
