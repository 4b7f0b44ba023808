//! in-toto's classic signed metadata: `{"signatures":[{"keyid","sig"}],"signed":{...}}`, where
//! `sig` is the hex DER ECDSA signature over the canonical JSON of `signed`; and the two
//! documents xrelease writes into it, links and layouts, with exactly in-toto 1.0's fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::{hex, unhex};
use crate::signing::key::PrivateKey;

use super::keys::Key;
use crate::cjson;

/// Artifact path → `{"sha256": hex}`.
pub type Artifacts = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub keyid: String,
    pub sig: String,
}

/// Signed metadata of either kind; `signed` is kept as parsed, so the signature is checked over
/// the very fields that were signed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metablock {
    pub signatures: Vec<Signature>,
    pub signed: Value,
}

/// Why a signature did not verify.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature by key {0}")]
    Missing(String),
    #[error("the signature by key {0} does not verify")]
    Invalid(String),
    #[error("{0}")]
    NotCanonical(#[from] cjson::NotCanonical),
}

impl Metablock {
    /// Signs `signed` (a [`Link`] or [`Layout`]) with `key`.
    pub fn sign(signed: &impl Serialize, key: &PrivateKey) -> Result<Metablock, SignatureError> {
        let signed = serde_json::to_value(signed).expect("metadata serialises");
        let mut block = Metablock {
            signatures: Vec::new(),
            signed,
        };
        block.add_signature(key)?;
        Ok(block)
    }

    /// Adds (or replaces) `key`'s signature.
    pub fn add_signature(&mut self, key: &PrivateKey) -> Result<(), SignatureError> {
        let keyid = Key::new(key.public_key()).keyid().to_owned();
        let sig = hex(&key.sign(&cjson::encode(&self.signed)?));
        self.signatures.retain(|s| s.keyid != keyid);
        self.signatures.push(Signature { keyid, sig });
        Ok(())
    }

    /// Checks `key`'s signature over the canonical `signed`.
    pub fn verify(&self, key: &Key) -> Result<(), SignatureError> {
        let signature = self
            .signatures
            .iter()
            .find(|s| s.keyid == key.keyid())
            .ok_or_else(|| SignatureError::Missing(key.keyid().to_owned()))?;
        let der =
            unhex(&signature.sig).ok_or_else(|| SignatureError::Invalid(key.keyid().to_owned()))?;
        key.public()
            .verify(&cjson::encode(&self.signed)?, &der)
            .map_err(|_| SignatureError::Invalid(key.keyid().to_owned()))
    }

    pub fn parse(text: &str) -> Result<Metablock, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("metadata serialises");
        text.push('\n');
        text
    }

    /// The `signed` part as a link.
    pub fn link(&self) -> Result<Link, String> {
        serde_json::from_value(self.signed.clone()).map_err(|e| format!("not an in-toto link: {e}"))
    }

    /// The `signed` part as a layout.
    pub fn layout(&self) -> Result<Layout, String> {
        serde_json::from_value(self.signed.clone())
            .map_err(|e| format!("not an in-toto layout: {e}"))
    }
}

/// What one step did: its inputs (materials), outputs (products) and command.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Link {
    #[serde(rename = "_type")]
    pub kind: LinkType,
    pub name: String,
    pub materials: Artifacts,
    pub products: Artifacts,
    pub byproducts: BTreeMap<String, Value>,
    pub command: Vec<String>,
    pub environment: BTreeMap<String, Value>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum LinkType {
    Link,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum LayoutType {
    Layout,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum StepType {
    Step,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum InspectionType {
    Inspection,
}

impl Link {
    pub fn new(
        name: &str,
        materials: Artifacts,
        products: Artifacts,
        command: Vec<String>,
    ) -> Link {
        Link {
            kind: LinkType::Link,
            name: name.to_owned(),
            materials,
            products,
            byproducts: BTreeMap::new(),
            command,
            environment: BTreeMap::new(),
        }
    }

    /// The file name in-toto looks the link up by: `<step>.<first 8 hex of keyid>.link`.
    pub fn file_name(step: &str, key: &Key) -> String {
        format!("{step}.{}.link", key.short_id())
    }
}

/// The supply chain's definition, signed by the project owner.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    #[serde(rename = "_type")]
    pub kind: LayoutType,
    /// `YYYY-MM-DDTHH:MM:SSZ`, the only form in-toto accepts.
    pub expires: String,
    pub readme: String,
    pub keys: BTreeMap<String, Value>,
    pub steps: Vec<Step>,
    pub inspect: Vec<Inspection>,
}

/// One rule as in-toto writes it, e.g. `["MATCH", "*", "WITH", "PRODUCTS", "FROM", "build"]`.
pub type Rule = Vec<String>;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(rename = "_type")]
    pub kind: StepType,
    pub name: String,
    pub threshold: u32,
    pub pubkeys: Vec<String>,
    pub expected_command: Vec<String>,
    pub expected_materials: Vec<Rule>,
    pub expected_products: Vec<Rule>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Inspection {
    #[serde(rename = "_type")]
    pub kind: InspectionType,
    pub name: String,
    pub run: Vec<String>,
    pub expected_materials: Vec<Rule>,
    pub expected_products: Vec<Rule>,
}

/// Builds a rule from its words.
pub fn rule(words: &[&str]) -> Rule {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// `{"sha256": hex}`.
pub fn sha256(hex: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("sha256".to_owned(), hex.to_owned())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_link_verifies_and_any_change_breaks_it() {
        let private = PrivateKey::generate().unwrap();
        let key = Key::new(private.public_key());
        let link = Link::new(
            "build",
            Artifacts::from([("src/main.rs".into(), sha256(&"a".repeat(64)))]),
            Artifacts::new(),
            vec!["cargo".into(), "build".into()],
        );
        let block = Metablock::sign(&link, &private).unwrap();
        assert_eq!(block.signatures[0].keyid, key.keyid());
        block.verify(&key).unwrap();
        let parsed = Metablock::parse(&block.to_json()).unwrap();
        assert_eq!(parsed.link().unwrap(), link);
        parsed.verify(&key).unwrap();

        let mut tampered = parsed.clone();
        tampered.signed["name"] = "other".into();
        assert!(matches!(
            tampered.verify(&key),
            Err(SignatureError::Invalid(_))
        ));
        let stranger = Key::new(PrivateKey::generate().unwrap().public_key());
        assert!(matches!(
            parsed.verify(&stranger),
            Err(SignatureError::Missing(_))
        ));
        assert_eq!(
            Link::file_name("build", &key),
            format!("build.{}.link", &key.keyid()[..8])
        );
    }
}
