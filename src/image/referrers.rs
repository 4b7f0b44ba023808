//! Signatures and attestations of an image as cosign v3 writes them: OCI 1.1 referrers, each an
//! image manifest with `artifactType` = the Sigstore bundle type, the empty config, exactly one
//! layer (the bundle JSON) and `subject` = the signed index or platform manifest; and, for
//! registries without the referrers API, the fallback index under the tag `sha256-<hex>`.

use serde_json::{Value, json};

use super::layout::{Blob, Image, canonical_json, digest_of};
use oci_spec::image::{Descriptor, MediaType};

pub const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
pub const PROVENANCE_PREDICATE: &str = "https://slsa.dev/provenance/v1";
pub const SBOM_PREDICATE: &str = "https://cyclonedx.org/bom";
pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
pub const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// One in-toto statement to sign and hang on `subject`.
pub struct Statement {
    pub subject: Descriptor,
    pub predicate_type: &'static str,
    pub statement: Value,
}

fn subject(name: &str, digest: &str) -> Value {
    json!({ "name": name, "digest": { "sha256": digest.trim_start_matches("sha256:") } })
}

fn statement(subjects: Vec<Value>, predicate_type: &str, predicate: Value) -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": predicate,
    })
}

/// The statements of one image: cosign's sign statement on the index, the release's SLSA v1
/// provenance re-stated with the index and every platform manifest as subjects, and one
/// CycloneDX attestation per platform manifest (`sboms[i]` is the SBOM of platform `i`'s binary).
pub fn statements(
    repository: &str,
    image: &Image,
    provenance_predicate: &Value,
    sboms: &[Value],
) -> Vec<Statement> {
    let index = &image.index.descriptor;
    let mut subjects = vec![subject(repository, &image.index.digest())];
    for p in &image.platforms {
        subjects.push(subject(repository, &p.manifest.digest()));
    }
    let mut out = vec![
        Statement {
            subject: index.clone(),
            predicate_type: SIGN_PREDICATE,
            statement: statement(
                vec![subject(repository, &image.index.digest())],
                SIGN_PREDICATE,
                json!({}),
            ),
        },
        Statement {
            subject: index.clone(),
            predicate_type: PROVENANCE_PREDICATE,
            statement: statement(subjects, PROVENANCE_PREDICATE, provenance_predicate.clone()),
        },
    ];
    for (p, sbom) in image.platforms.iter().zip(sboms) {
        out.push(Statement {
            subject: p.manifest.descriptor.clone(),
            predicate_type: SBOM_PREDICATE,
            statement: statement(
                vec![subject(repository, &p.manifest.digest())],
                SBOM_PREDICATE,
                sbom.clone(),
            ),
        });
    }
    out
}

/// The empty config every referrer points at: the two bytes `{}`.
pub fn empty_config() -> Blob {
    let bytes = b"{}".to_vec();
    Blob {
        descriptor: Descriptor::new(MediaType::EmptyJSON, 2, digest_of(&bytes)),
        bytes,
    }
}

/// A referrer: the manifest that carries `bundle` (its one layer) and points at `subject`.
pub struct Referrer {
    pub manifest: Blob,
    pub bundle: Blob,
    pub predicate_type: String,
}

pub fn referrer(subject: &Descriptor, bundle_json: &[u8], predicate_type: &str) -> Referrer {
    let bundle = Blob {
        descriptor: Descriptor::new(
            MediaType::Other(BUNDLE_TYPE.into()),
            bundle_json.len() as u64,
            digest_of(bundle_json),
        ),
        bytes: bundle_json.to_vec(),
    };
    let config = empty_config();
    // The subject is named by type, digest and size only (not the index's platform fields).
    let bare_subject = Descriptor::new(
        subject.media_type().clone(),
        subject.size(),
        subject.digest().clone(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": BUNDLE_TYPE,
        "config": config.descriptor,
        "layers": [bundle.descriptor],
        "subject": bare_subject,
        "annotations": {
            CONTENT_ANNOTATION: "dsse-envelope",
            PREDICATE_ANNOTATION: predicate_type,
        },
    });
    let bytes = canonical_json(&manifest);
    Referrer {
        manifest: Blob {
            descriptor: Descriptor::new(
                MediaType::ImageManifest,
                bytes.len() as u64,
                digest_of(&bytes),
            ),
            bytes,
        },
        bundle,
        predicate_type: predicate_type.into(),
    }
}

/// The descriptor of `referrer` as a referrers list (API answer or fallback index) holds it.
pub fn listing(referrer: &Referrer) -> Value {
    json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": referrer.manifest.digest(),
        "size": referrer.manifest.bytes.len(),
        "artifactType": BUNDLE_TYPE,
        "annotations": {
            CONTENT_ANNOTATION: "dsse-envelope",
            PREDICATE_ANNOTATION: referrer.predicate_type,
        },
    })
}

/// The fallback index with `entry` added (kept as is when it is already there).
pub fn fallback_index(existing: Option<&[u8]>, entry: Value) -> Result<Vec<u8>, String> {
    let mut index = match existing {
        Some(bytes) => serde_json::from_slice::<Value>(bytes)
            .map_err(|e| format!("the fallback referrers index is not JSON: {e}"))?,
        None => json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [],
        }),
    };
    let manifests = index
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or("the fallback referrers index has no manifests list")?;
    if !manifests.iter().any(|m| m["digest"] == entry["digest"]) {
        manifests.push(entry);
    }
    Ok(canonical_json(&index))
}

/// `sha256-<hex>`: the tag the referrers tag schema keeps a subject's referrers under.
pub fn fallback_tag(subject_digest: &str) -> String {
    subject_digest.replacen(':', "-", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_referrer_is_cosign_v3_shaped() {
        let subject = Descriptor::new(MediaType::ImageIndex, 10, digest_of(b"index"));
        let r = referrer(&subject, b"{\"bundle\":1}", SIGN_PREDICATE);
        let m: Value = serde_json::from_slice(&r.manifest.bytes).unwrap();
        assert_eq!(m["artifactType"], BUNDLE_TYPE);
        assert_eq!(m["config"]["mediaType"], EMPTY_TYPE);
        assert_eq!(
            m["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(m["layers"].as_array().unwrap().len(), 1);
        assert_eq!(m["layers"][0]["mediaType"], BUNDLE_TYPE);
        assert_eq!(m["subject"]["digest"], subject.digest().to_string());
        assert_eq!(m["annotations"][CONTENT_ANNOTATION], "dsse-envelope");
        assert_eq!(m["annotations"][PREDICATE_ANNOTATION], SIGN_PREDICATE);

        let once = fallback_index(None, listing(&r)).unwrap();
        let twice = fallback_index(Some(&once), listing(&r)).unwrap();
        assert_eq!(
            once, twice,
            "adding the same referrer again changes nothing"
        );
        assert_eq!(fallback_tag("sha256:ab"), "sha256-ab");
    }
}
