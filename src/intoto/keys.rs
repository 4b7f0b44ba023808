//! in-toto public keys from cosign `.pub` files, with the keyid securesystemslib computes.
//!
//! securesystemslib (which `in-toto-verify` loads keys with) re-encodes a PEM key file into its
//! own PEM text and hashes that text into the keyid, so the PEM here must be byte-identical to
//! its output: 64-column base64, LF line ends, a trailing newline. [`PublicKey::to_pem`] writes
//! exactly that form from the decoded key, whatever the layout of the file it was read from.

use std::path::Path;

use serde_json::{Value, json};

use crate::digest::sha256_bytes;
use crate::signing::key::{KeyError, PublicKey};

use crate::cjson;

pub const KEYTYPE: &str = "ecdsa";
pub const SCHEME: &str = "ecdsa-sha2-nistp256";

/// A functionary's or the owner's public key, as a layout lists it.
#[derive(Clone, Debug)]
pub struct Key {
    keyid: String,
    pem: String,
    public: PublicKey,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.keyid == other.keyid
    }
}

impl Key {
    pub fn new(public: PublicKey) -> Key {
        let pem = public.to_pem();
        let keyid = sha256_bytes(&cjson::encode(&body(&pem)).expect("a key has no numbers"));
        Key { keyid, pem, public }
    }

    /// Reads a cosign-format `.pub` file.
    pub fn read(path: &Path) -> Result<Key, KeyError> {
        PublicKey::read(path).map(Key::new)
    }

    /// SHA-256 (hex) of the canonical JSON of `keytype`, `scheme` and `keyval`.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The keyid prefix in link file names (`<step>.<8 hex>.link`).
    pub fn short_id(&self) -> &str {
        &self.keyid[..8]
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The key as an entry of a layout's `keys` (in-toto also wants the keyid inside).
    pub fn to_json(&self) -> Value {
        let mut value = body(&self.pem);
        value["keyid"] = Value::String(self.keyid.clone());
        value
    }

    /// Parses a layout's key entry, refusing one whose keyid is not the hash of its contents
    /// (a layout could otherwise name one key and hold another).
    pub fn from_json(keyid: &str, value: &Value) -> Result<Key, String> {
        let field = |name: &str| value.get(name).and_then(Value::as_str);
        if field("keytype") != Some(KEYTYPE) || field("scheme") != Some(SCHEME) {
            return Err(format!(
                "key {keyid} is not {KEYTYPE}/{SCHEME}, the only kind xrelease signs and checks"
            ));
        }
        let pem = value
            .pointer("/keyval/public")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("key {keyid} has no keyval.public"))?;
        let public = PublicKey::from_pem(pem, keyid).map_err(|e| e.to_string())?;
        let key = Key::new(public);
        if key.keyid != keyid {
            return Err(format!(
                "key listed as {keyid} hashes to {}; the layout is malformed",
                key.keyid
            ));
        }
        Ok(key)
    }
}

fn body(pem: &str) -> Value {
    json!({"keytype": KEYTYPE, "scheme": SCHEME, "keyval": {"public": pem}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::key::PrivateKey;

    #[test]
    fn keyid_hashes_the_canonical_key_and_round_trips() {
        let key = Key::new(PrivateKey::generate().unwrap().public_key());
        let expected = format!(
            r#"{{"keytype":"ecdsa","keyval":{{"public":"{}"}},"scheme":"ecdsa-sha2-nistp256"}}"#,
            key.pem
        );
        assert_eq!(key.keyid(), sha256_bytes(expected.as_bytes()));
        assert!(key.pem.ends_with("-----END PUBLIC KEY-----\n"));
        let parsed = Key::from_json(key.keyid(), &key.to_json()).unwrap();
        assert_eq!(parsed, key);
        assert!(Key::from_json(&"0".repeat(64), &key.to_json()).is_err());
    }
}
