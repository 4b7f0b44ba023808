//! TUF 1.0 metadata: the four top-level roles, parsed leniently (unknown fields are kept, since
//! the signature covers them) and checked strictly (type, spec version, signatures, threshold).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest as _, Sha256, Sha512};

use super::TufError;
use crate::cjson;
use crate::digest::{hex, unhex};
use crate::signing::ec::{EcKey, HashAlg};
use crate::signing::trusted_root::parse_rfc3339;

/// A top-level role: its `_type` and the file name its metadata is published under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Root,
    Timestamp,
    Snapshot,
    Targets,
}

impl Role {
    /// The `_type` and role name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Timestamp => "timestamp",
            Role::Snapshot => "snapshot",
            Role::Targets => "targets",
        }
    }

    /// `root.json`, `timestamp.json`, ...: the name snapshot and timestamp list it under, and
    /// the cache file.
    pub fn file(self) -> String {
        format!("{}.json", self.name())
    }
}

/// A metadata file as published: the signed part exactly as parsed, and its signatures.
#[derive(Debug, Clone)]
pub struct Envelope {
    signed: Value,
    signatures: Vec<Signature>,
}

#[derive(Debug, Clone, Deserialize)]
struct Signature {
    keyid: String,
    sig: String,
}

#[derive(Deserialize)]
struct RawEnvelope {
    signed: Value,
    signatures: Vec<Signature>,
}

/// Fields every role has.
#[derive(Debug, Clone, Deserialize)]
pub struct Common {
    #[serde(rename = "_type")]
    pub kind: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
}

/// `root.json`: the keys, and which of them (and how many) sign each role.
#[derive(Debug, Clone, Deserialize)]
pub struct Root {
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub keys: BTreeMap<String, KeyDef>,
    pub roles: BTreeMap<String, RoleKeys>,
}

/// A public key as TUF lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyDef {
    pub keytype: String,
    pub scheme: String,
    pub keyval: KeyVal,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyVal {
    pub public: String,
}

/// A role's keys and threshold.
#[derive(Debug, Clone, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: u64,
}

/// `timestamp.json` and `snapshot.json`: versions (and maybe sizes and hashes) of other files.
#[derive(Debug, Clone, Deserialize)]
pub struct MetaIndex {
    #[serde(flatten)]
    pub common: Common,
    pub meta: BTreeMap<String, MetaFile>,
}

/// One entry of `meta`.
#[derive(Debug, Clone, Deserialize)]
pub struct MetaFile {
    pub version: u64,
    #[serde(default)]
    pub length: Option<u64>,
    #[serde(default)]
    pub hashes: Option<BTreeMap<String, String>>,
}

/// `targets.json`: the files the repository vouches for.
#[derive(Debug, Clone, Deserialize)]
pub struct Targets {
    #[serde(flatten)]
    pub common: Common,
    pub targets: BTreeMap<String, TargetFile>,
}

/// A target's size and digests.
#[derive(Debug, Clone, Deserialize)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
}

impl Envelope {
    /// Parses a metadata file; `what` names it in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self, TufError> {
        let raw: RawEnvelope = serde_json::from_slice(bytes).map_err(|e| TufError::Malformed {
            what: what.to_owned(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            signed: raw.signed,
            signatures: raw.signatures,
        })
    }

    /// The signed part as `T`, after checking `_type` is `role`'s and the spec version is 1.x.
    pub fn typed<T: DeserializeOwned + HasCommon>(
        &self,
        role: Role,
        what: &str,
    ) -> Result<T, TufError> {
        let malformed = |detail: String| TufError::Malformed {
            what: what.to_owned(),
            detail,
        };
        let value: T = serde_json::from_value(self.signed.clone())
            .map_err(|e| malformed(format!("as {} metadata: {e}", role.name())))?;
        let common = value.common();
        if common.kind != role.name() {
            return Err(malformed(format!(
                "its _type is {:?}, expected {:?}",
                common.kind,
                role.name()
            )));
        }
        if common.spec_version.split('.').next() != Some("1") {
            return Err(malformed(format!(
                "spec_version {} is not TUF 1.x",
                common.spec_version
            )));
        }
        if parse_rfc3339(&common.expires).is_none() {
            return Err(malformed(format!(
                "expires {:?} is not a date",
                common.expires
            )));
        }
        Ok(value)
    }

    /// Checks that at least `threshold` distinct keys of `role` in `root` signed this metadata
    /// (over the canonical JSON of `signed`). Keys of types this client cannot check count as
    /// not signing, so an unsupported key can only make verification fail, never pass.
    pub fn verify(&self, root: &Root, role: Role, what: &str) -> Result<(), TufError> {
        let keys = root
            .roles
            .get(role.name())
            .ok_or_else(|| TufError::Malformed {
                what: what.to_owned(),
                detail: format!("the trusted root defines no {} role", role.name()),
            })?;
        let message = cjson::encode(&self.signed).map_err(|e| TufError::Malformed {
            what: what.to_owned(),
            detail: e.to_string(),
        })?;
        let allowed: BTreeSet<&str> = keys.keyids.iter().map(String::as_str).collect();
        // Counted by key, not keyid: one key listed under two keyids signs once.
        let mut good: Vec<EcKey> = Vec::new();
        for signature in &self.signatures {
            if !allowed.contains(signature.keyid.as_str()) {
                continue;
            }
            let Some(key) = root.keys.get(&signature.keyid) else {
                continue;
            };
            let Some(sig) = unhex(&signature.sig) else {
                continue;
            };
            if let Some(ec) = key.verifying_key(&message, &sig)
                && !good.contains(&ec)
            {
                good.push(ec);
            }
        }
        let threshold = keys.threshold.max(1);
        if (good.len() as u64) < threshold {
            return Err(TufError::Threshold {
                what: what.to_owned(),
                role: role.name(),
                good: good.len(),
                threshold,
            });
        }
        Ok(())
    }
}

/// Access to the fields every role has.
pub trait HasCommon {
    fn common(&self) -> &Common;
}

impl HasCommon for Root {
    fn common(&self) -> &Common {
        &self.common
    }
}

impl HasCommon for MetaIndex {
    fn common(&self) -> &Common {
        &self.common
    }
}

impl HasCommon for Targets {
    fn common(&self) -> &Common {
        &self.common
    }
}

impl Common {
    /// Whether the metadata has expired at `now` (Unix seconds).
    pub fn expired(&self, now: i64) -> bool {
        parse_rfc3339(&self.expires).is_none_or(|at| at <= now)
    }
}

impl KeyDef {
    /// This key, if `signature` (DER, as ECDSA schemes publish it) is its over `message`.
    /// ECDSA P-256/P-384 with SHA-256/384, the public key as PEM (current) or hex SEC1
    /// (older repositories); other schemes never verify.
    fn verifying_key(&self, message: &[u8], signature: &[u8]) -> Option<EcKey> {
        self.verifies(message, signature)
            .then(|| self.ec_key())
            .flatten()
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let (hash, size_ok): (HashAlg, fn(&EcKey) -> bool) = match self.scheme.as_str() {
            "ecdsa-sha2-nistp256" => (HashAlg::Sha256, |k| matches!(k, EcKey::P256(_))),
            "ecdsa-sha2-nistp384" => (HashAlg::Sha384, |k| matches!(k, EcKey::P384(_))),
            _ => return false,
        };
        if !matches!(
            self.keytype.as_str(),
            "ecdsa" | "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384"
        ) {
            return false;
        }
        self.ec_key()
            .filter(size_ok)
            .is_some_and(|key| key.verify(hash, message, signature))
    }

    fn ec_key(&self) -> Option<EcKey> {
        let public = self.keyval.public.trim();
        if public.starts_with("-----BEGIN PUBLIC KEY-----") {
            let body: String = public.lines().filter(|l| !l.starts_with("-----")).collect();
            let der =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).ok()?;
            return EcKey::from_spki_der(&der).ok();
        }
        let point = unhex(public)?;
        if let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point) {
            return Some(EcKey::P256(key));
        }
        p384::ecdsa::VerifyingKey::from_sec1_bytes(&point)
            .ok()
            .map(EcKey::P384)
    }
}

impl MetaFile {
    /// Checks a downloaded file against the length and hashes this entry lists (if any).
    pub fn check(&self, bytes: &[u8], what: &str) -> Result<(), TufError> {
        if let Some(length) = self.length
            && bytes.len() as u64 != length
        {
            return Err(TufError::Length {
                what: what.to_owned(),
                expected: length,
                actual: bytes.len() as u64,
            });
        }
        match &self.hashes {
            Some(hashes) => check_hashes(hashes, bytes, what),
            None => Ok(()),
        }
    }
}

impl TargetFile {
    /// Checks a target's bytes: exact length, and every listed hash this client knows (at
    /// least one must be known).
    pub fn check(&self, bytes: &[u8], what: &str) -> Result<(), TufError> {
        if bytes.len() as u64 != self.length {
            return Err(TufError::Length {
                what: what.to_owned(),
                expected: self.length,
                actual: bytes.len() as u64,
            });
        }
        check_hashes(&self.hashes, bytes, what)
    }

    /// The digest that names the file on a consistent-snapshot repository.
    pub fn path_hash(&self) -> Option<&str> {
        ["sha256", "sha512"]
            .into_iter()
            .find_map(|alg| self.hashes.get(alg).map(String::as_str))
    }
}

fn check_hashes(
    hashes: &BTreeMap<String, String>,
    bytes: &[u8],
    what: &str,
) -> Result<(), TufError> {
    if hashes.is_empty() {
        return Err(TufError::Malformed {
            what: what.to_owned(),
            detail: "its metadata lists an empty set of hashes".to_owned(),
        });
    }
    let mut checked = 0;
    for (alg, expected) in hashes {
        let actual = match alg.as_str() {
            "sha256" => hex(&Sha256::digest(bytes)),
            "sha512" => hex(&Sha512::digest(bytes)),
            _ => continue,
        };
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(TufError::Hash {
                what: what.to_owned(),
                alg: alg.clone(),
                expected: expected.clone(),
                actual,
            });
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(TufError::Malformed {
            what: what.to_owned(),
            detail: format!(
                "it lists only hashes this client cannot compute ({}); sha256 or sha512 is needed",
                hashes.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sigstore's public-good root, versions 14 (test fixture) and 15 (the embedded anchor):
    /// real metadata, signed by Sigstore's keyholders.
    const ROOT_14: &[u8] = include_bytes!("../../tests/fixtures/tuf/sigstore-14.root.json");
    const ROOT_15: &[u8] = super::super::SIGSTORE_INITIAL_ROOT;

    fn root(bytes: &[u8]) -> (Envelope, Root) {
        let envelope = Envelope::parse(bytes, "root").unwrap();
        let root = envelope.typed(Role::Root, "root").unwrap();
        (envelope, root)
    }

    #[test]
    fn sigstores_root_verifies_under_its_own_keys_and_the_previous_roots() {
        let (v14_envelope, v14) = root(ROOT_14);
        let (v15_envelope, v15) = root(ROOT_15);
        assert_eq!((v14.common.version, v15.common.version), (14, 15));
        assert!(v15.consistent_snapshot);
        v14_envelope.verify(&v14, Role::Root, "v14").unwrap();
        v15_envelope.verify(&v15, Role::Root, "v15").unwrap();
        // The rotation: v15 is signed by a threshold of v14's root keys too.
        v15_envelope.verify(&v14, Role::Root, "v15 by v14").unwrap();
        // Root keys do not sign for the timestamp role: roles are not interchangeable.
        let err = v15_envelope
            .verify(&v15, Role::Timestamp, "v15 as timestamp")
            .unwrap_err();
        assert!(
            matches!(
                err,
                TufError::Threshold {
                    good: 0,
                    threshold: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn one_changed_field_drops_every_signature() {
        let (mut envelope, v15) = root(ROOT_15);
        envelope.signed["expires"] = Value::String("2099-01-01T00:00:00Z".to_owned());
        let err = envelope.verify(&v15, Role::Root, "edited").unwrap_err();
        assert!(
            matches!(
                err,
                TufError::Threshold {
                    good: 0,
                    threshold: 3,
                    ..
                }
            ),
            "{err}"
        );
        // An unknown field is covered by the signature as well.
        let (mut envelope, _) = root(ROOT_15);
        envelope.signed["x-extra"] = Value::Bool(true);
        assert!(envelope.verify(&v15, Role::Root, "extended").is_err());
    }

    #[test]
    fn a_repeated_signature_counts_once() {
        let (mut envelope, v15) = root(ROOT_15);
        let first = envelope.signatures[0].clone();
        envelope.signatures = vec![first.clone(), first.clone(), first];
        let err = envelope.verify(&v15, Role::Root, "repeated").unwrap_err();
        assert!(
            matches!(
                err,
                TufError::Threshold {
                    good: 1,
                    threshold: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn one_key_under_two_keyids_signs_once() {
        let (mut envelope, mut v15) = root(ROOT_15);
        let first = envelope.signatures[0].clone();
        let alias = "00".repeat(32);
        v15.keys
            .insert(alias.clone(), v15.keys[&first.keyid].clone());
        let role = v15.roles.get_mut("root").unwrap();
        role.keyids = vec![first.keyid.clone(), alias.clone()];
        role.threshold = 2;
        envelope.signatures = vec![
            first.clone(),
            Signature {
                keyid: alias,
                sig: first.sig,
            },
        ];
        let err = envelope.verify(&v15, Role::Root, "aliased").unwrap_err();
        assert!(
            matches!(
                err,
                TufError::Threshold {
                    good: 1,
                    threshold: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn empty_hash_lists_are_refused() {
        let target = TargetFile {
            length: 1,
            hashes: BTreeMap::new(),
        };
        assert!(matches!(
            target.check(b"x", "t"),
            Err(TufError::Malformed { .. })
        ));
        let meta = MetaFile {
            version: 1,
            length: None,
            hashes: Some(BTreeMap::new()),
        };
        assert!(matches!(
            meta.check(b"x", "m"),
            Err(TufError::Malformed { .. })
        ));
    }

    #[test]
    fn keys_of_other_types_or_schemes_never_verify() {
        let (envelope, mut v15) = root(ROOT_15);
        for key in v15.keys.values_mut() {
            key.scheme = "ed25519".to_owned();
        }
        assert!(envelope.verify(&v15, Role::Root, "ed25519").is_err());
        let (_, mut v15) = root(ROOT_15);
        for key in v15.keys.values_mut() {
            key.scheme = "ecdsa-sha2-nistp384".to_owned();
        }
        assert!(envelope.verify(&v15, Role::Root, "wrong curve").is_err());
    }

    #[test]
    fn type_and_spec_version_are_checked() {
        let (envelope, _) = root(ROOT_15);
        let err = envelope.typed::<Targets>(Role::Targets, "r").unwrap_err();
        assert!(
            err.to_string().contains("r is not valid TUF metadata"),
            "{err}"
        );
        let mut two = envelope.clone();
        two.signed["spec_version"] = Value::String("2.0.0".to_owned());
        let err = two.typed::<Root>(Role::Root, "r").unwrap_err();
        assert!(err.to_string().contains("not TUF 1.x"), "{err}");
    }

    #[test]
    fn targets_must_match_length_and_every_known_hash() {
        let body = b"trusted";
        let sha256 = hex(&Sha256::digest(body));
        let file = TargetFile {
            length: 7,
            hashes: [("sha256".to_owned(), sha256.clone())].into(),
        };
        file.check(body, "t").unwrap();
        assert!(matches!(
            file.check(b"trustee", "t"),
            Err(TufError::Hash { .. })
        ));
        assert!(matches!(
            file.check(b"trusted!", "t"),
            Err(TufError::Length { .. })
        ));
        let unknown = TargetFile {
            length: 7,
            hashes: [("blake2b".to_owned(), "00".to_owned())].into(),
        };
        assert!(matches!(
            unknown.check(body, "t"),
            Err(TufError::Malformed { .. })
        ));
        assert_eq!(file.path_hash(), Some(sha256.as_str()));
    }
}
