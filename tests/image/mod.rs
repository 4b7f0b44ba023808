//! Container images: a rehearsal of the `basic` fixture built for the two musl targets with
//! `[image]` on, its OCI layouts read back from disk, and the verifier's image checks tampered
//! with one at a time.

mod registry;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support::{Fixture, Outcome, copy_tree};
use xrelease::image::layout;

/// release.toml for the image rehearsals: the musl targets (their linkers set here, as doctor
/// would on this machine), every bin an image.
pub const CONFIG: &str = r#"
[release]
exclude-bins = ["app-secret"]
targets = ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"]

[target.x86_64-unknown-linux-musl]
linker = "cc"

[target.aarch64-unknown-linux-musl]
linker = "aarch64-linux-gnu-gcc"
runner = "qemu-aarch64-static -L /usr/aarch64-linux-gnu"

[github]
repository = "fixture/basic"

[image]
repository = "REGISTRY/fixture/basic"
labels = { "org.example.team" = "release" }
"#;

/// The config, its images going to the test registry.
pub fn config_text() -> String {
    CONFIG.replace("REGISTRY", &registry::registry().host)
}

pub struct ImageRelease {
    pub fixture: Fixture,
    pub config: PathBuf,
    _config_dir: tempfile::TempDir,
    pub outcome: Outcome,
}

impl ImageRelease {
    pub fn dist(&self) -> PathBuf {
        self.fixture.path("dist/v1.0.0")
    }
}

/// One musl rehearsal with images, shared by every test that only reads it.
pub fn image_release() -> &'static ImageRelease {
    static RELEASE: OnceLock<ImageRelease> = OnceLock::new();
    RELEASE.get_or_init(|| {
        let fixture = Fixture::new("basic");
        let config_dir = tempfile::tempdir().unwrap();
        let config = fixture.config_outside(config_dir.path(), &config_text());
        let outcome = fixture
            .xrelease(&["release", "v1.0.0", "--dry-run", "--quiet"])
            .run_with_config(&config);
        ImageRelease {
            fixture,
            config,
            _config_dir: config_dir,
            outcome,
        }
    })
}

/// `IMAGES` as (bin, reference, index digest).
fn images(dist: &Path) -> Vec<xrelease::image::Entry> {
    xrelease::image::parse(&std::fs::read_to_string(dist.join("IMAGES")).unwrap()).unwrap()
}

fn sums(dist: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(dist.join("SHA256SUMS"))
        .unwrap()
        .lines()
        .map(|l| (l[66..].to_string(), l[..64].to_string()))
        .collect()
}

#[test]
fn each_bin_gets_a_two_platform_image_whose_layers_hold_the_released_bytes() {
    let release = image_release();
    release.outcome.success();
    let dist = release.dist();
    let sums = sums(&dist);
    assert!(sums.contains_key("IMAGES"), "IMAGES is in SHA256SUMS");
    let entries = images(&dist);
    let bins: Vec<&str> = entries.iter().map(|e| e.bin.as_str()).collect();
    assert_eq!(bins, ["app", "app-tool", "other"]);
    for entry in &entries {
        let host = &registry::registry().host;
        assert_eq!(
            entry.repository,
            format!("{host}/fixture/basic/{}", entry.bin)
        );
        assert_eq!(entry.tag, "1.0.0");
        let (image, ref_name) = layout::read(&dist.join("oci").join(&entry.bin)).unwrap();
        assert_eq!(ref_name, "1.0.0");
        assert_eq!(image.index.digest(), entry.digest);
        let platforms: Vec<String> = image
            .parsed_index
            .manifests()
            .iter()
            .map(|d| {
                let p = d.platform().as_ref().unwrap();
                format!("{}/{}", p.os(), p.architecture())
            })
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
        for (p, platform) in image.platforms.iter().zip(["amd64-musl", "arm64-musl"]) {
            let binary = format!("{}-1.0.0-linux-{platform}", entry.bin);
            let (path, bytes) = layout::layer_file(&p.layer.bytes).unwrap();
            assert_eq!(path, entry.bin);
            assert_eq!(crate::sha256_hex(&bytes), sums[&binary], "{binary}");
            assert_eq!(
                p.parsed_config.rootfs().diff_ids(),
                &[p.layer.digest()],
                "uncompressed: the diff_id is the layer digest"
            );
            let config = p.parsed_config.config().as_ref().unwrap();
            assert_eq!(
                config.entrypoint().as_ref().unwrap(),
                &[format!("/{}", entry.bin)]
            );
            let labels = config.labels().as_ref().unwrap();
            assert_eq!(
                labels["org.opencontainers.image.source"],
                "https://github.com/fixture/basic"
            );
            assert_eq!(labels["org.opencontainers.image.version"], "1.0.0");
            assert_eq!(
                labels["org.opencontainers.image.created"],
                "2026-01-02T03:04:05Z"
            );
            assert_eq!(labels["org.example.team"], "release");
            let revision = &labels["org.opencontainers.image.revision"];
            assert_eq!(revision, &release.fixture.git(&["rev-parse", "HEAD"]));
        }
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dist.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["images"].as_array().unwrap().len(), 3);
    let reference = manifest["images"][0]["reference"].as_str().unwrap();
    assert_eq!(reference, entries[0].reference());
}

#[test]
fn the_binaries_run_from_their_layers_amd64_natively_arm64_under_qemu() {
    let release = image_release();
    release.outcome.success();
    let dist = release.dist();
    let (image, _) = layout::read(&dist.join("oci/other")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    for (p, runner) in image
        .platforms
        .iter()
        .zip([None, Some("qemu-aarch64-static")])
    {
        let (_, bytes) = layout::layer_file(&p.layer.bytes).unwrap();
        let path = scratch
            .path()
            .join(format!("other-{}", p.parsed_config.architecture()));
        std::fs::write(&path, bytes).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = match runner {
            None => std::process::Command::new(&path).arg("--version").output(),
            Some(qemu) => std::process::Command::new(qemu)
                .args(["-L", "/usr/aarch64-linux-gnu"])
                .arg(&path)
                .arg("--version")
                .output(),
        }
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "other 1.0.0",
            "{out:?}"
        );
    }
}

#[test]
fn the_same_commit_gives_the_same_index_digests() {
    let release = image_release();
    release.outcome.success();
    let again = tempfile::tempdir().unwrap();
    release
        .fixture
        .xrelease(&[
            "release",
            "v1.0.0",
            "--dry-run",
            "--quiet",
            "--dist",
            again.path().join("v1.0.0").to_str().unwrap(),
        ])
        .run_with_config(&release.config)
        .success();
    assert_eq!(
        images(&again.path().join("v1.0.0")),
        images(&release.dist())
    );
}

/// A copy of the image release to tamper with, and its key.
fn copy() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let release = image_release();
    release.outcome.success();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("release");
    copy_tree(&release.dist(), &dir);
    let key = dir.join("cosign.pub");
    (scratch, dir, key)
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("oci/app/blobs/sha256").join(&digest[7..])
}

#[test]
fn the_good_image_release_verifies() {
    let (_s, dir, key) = copy();
    let (code, report) = crate::verify_json(&dir, &key);
    assert_eq!(crate::failed(&report), Vec::<String>::new());
    assert_eq!(code, 0);
    let images = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "image" && c["passed"] == true)
        .count();
    assert_eq!(images, 3);
}

#[test]
fn tamper_a_layer_swapped_for_another_binary() {
    let (_s, dir, key) = copy();
    let (image, _) = layout::read(&dir.join("oci/app")).unwrap();
    let other = std::fs::read(dir.join("other-1.0.0-linux-amd64-musl")).unwrap();
    let layer = layout::layer_tar("app", &other, 0);
    std::fs::write(blob(&dir, &image.platforms[0].layer.digest()), layer).unwrap();
    crate::assert_fails(&dir, &key, "image oci/app: blob sha256:");
}

#[test]
fn tamper_a_consistent_image_of_other_bytes_is_not_the_listed_one() {
    let (_s, dir, key) = copy();
    let (image, _) = layout::read(&dir.join("oci/app")).unwrap();
    // A whole, self-consistent image of the other bin's bytes, written where app's was.
    let input = layout::ImageInput {
        bin: "app".into(),
        version: "1.0.0".into(),
        commit: "0".repeat(40),
        commit_time: 0,
        labels: Default::default(),
        platforms: vec![layout::PlatformInput {
            os: "linux",
            architecture: "amd64",
            variant: None,
            binary: std::fs::read(dir.join("other-1.0.0-linux-amd64-musl")).unwrap(),
        }],
    };
    let forged = layout::build(&input).unwrap();
    layout::write(&dir.join("oci/app"), &forged, "1.0.0").unwrap();
    assert_ne!(forged.index.digest(), image.index.digest());
    crate::assert_fails(&dir, &key, "image oci/app: the layout's index is");
}

#[test]
fn tamper_images_edited_to_name_the_forged_index() {
    let (_s, dir, key) = copy();
    let text = std::fs::read_to_string(dir.join("IMAGES")).unwrap();
    let first = text.lines().next().unwrap();
    let forged = text.replace(&first[first.len() - 64..], &"0".repeat(64));
    std::fs::write(dir.join("IMAGES"), forged).unwrap();
    crate::assert_fails(&dir, &key, "checksum IMAGES");
}

#[test]
fn tamper_an_unreferenced_blob_or_an_unlisted_layout() {
    let (_s, dir, key) = copy();
    std::fs::write(blob(&dir, &format!("sha256:{}", "1".repeat(64))), b"x").unwrap();
    crate::assert_fails(
        &dir,
        &key,
        "image oci/app: blobs the image does not reference",
    );
    let (_s, dir, key) = copy();
    copy_tree(&dir.join("oci/app"), &dir.join("oci/extra"));
    crate::assert_fails(&dir, &key, "image oci: not listed in IMAGES: oci/extra");
}

#[test]
fn tamper_images_removed_leaves_oci_unaccounted_for() {
    let (_s, dir, key) = copy();
    std::fs::remove_file(dir.join("IMAGES")).unwrap();
    let failures = crate::assert_fails(&dir, &key, "image oci: oci/ is present but IMAGES is not");
    assert!(
        failures.iter().any(|f| f.starts_with("checksum IMAGES")),
        "{failures:?}"
    );
}

const TOKEN: &str = "ghp_xreleaseImages_secretTOKEN_0123456789";
const PASSWORD: &str = "image-Key-pa55-never-printed";

/// A key-signed real release of the image fixture into `dist`, publishing to `server`.
fn real_run(
    release: &ImageRelease,
    keys: &Path,
    server: &crate::support::github_server::GitHubServer,
    dist: &Path,
    docker_config: &Path,
) -> Outcome {
    let text = config_text() + "\n[sign]\nmode = \"key\"\nkey = \"cosign.key\"\n";
    let config = release.fixture.config_outside(keys, &text);
    release
        .fixture
        .xrelease(&["release", "v1.0.0", "--dist", dist.to_str().unwrap()])
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_API_URL", &server.api_url())
        .env("GITHUB_REPOSITORY", "fixture/basic")
        .env("DOCKER_CONFIG", docker_config.to_str().unwrap())
        .run_with_config(&config)
}

fn github() -> crate::support::github_server::GitHubServer {
    crate::support::github_server::GitHubServer::builder()
        .repo("fixture", "basic")
        .token(TOKEN, true)
        .immutable(true)
        .start()
}

/// What the registry serves for `reference`: (bytes, digest), or None.
fn pull(reference: &str) -> Option<(Vec<u8>, String)> {
    let reg = registry::registry();
    let client = reg.client();
    let r: oci_client::Reference = reference.parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(client.pull_manifest_raw(
        &r,
        &reg.auth(),
        &[
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
        ],
    ))
    .ok()
    .map(|(b, d)| (b.to_vec(), d))
}

fn pull_blob(repository: &str, digest: &str) -> Vec<u8> {
    let reg = registry::registry();
    let client = reg.client();
    let r: oci_client::Reference = format!("{repository}@{digest}").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut out = Vec::new();
    rt.block_on(async {
        client
            .auth(&r, &reg.auth(), oci_client::RegistryOperation::Pull)
            .await
            .unwrap();
        client.pull_blob(&r, digest, &mut out).await.unwrap();
    });
    out
}

#[test]
fn a_real_release_pushes_the_images_and_a_rerun_pushes_nothing_new() {
    let release = tagged();
    let reg = registry::registry();
    let keys = tempfile::tempdir().unwrap();
    xrelease::signing::key::keygen(
        &keys.path().join("cosign"),
        &xrelease::secret::Password::from(PASSWORD),
    )
    .unwrap();
    let scratch = tempfile::tempdir().unwrap();

    // Without credentials the registry refuses the push, and nothing is published.
    let server = github();
    let anonymous = scratch.path().join("no-docker-config");
    std::fs::create_dir_all(&anonymous).unwrap();
    let refused = real_run(
        release,
        keys.path(),
        &server,
        &scratch.path().join("d0"),
        &anonymous,
    );
    refused.code(1).stderr_has("refused the credentials");
    assert!(server.releases("fixture", "basic").is_empty());

    let dist = scratch.path().join("d1");
    let out = real_run(release, keys.path(), &server, &dist, &reg.docker_config());
    out.success();
    crate::assert_never_leaked(reg.password(), &[&out, &refused], &[&dist]);
    assert!(!server.releases("fixture", "basic")[0].draft);
    let sums = sums(&dist);
    for entry in images(&dist) {
        let (index, digest) = pull(&format!("{}:{}", entry.repository, entry.tag)).unwrap();
        assert_eq!(digest, entry.digest);
        let index: oci_spec::image::ImageIndex = serde_json::from_slice(&index).unwrap();
        assert_eq!(index.manifests().len(), 2);
        for (descriptor, platform) in index.manifests().iter().zip(["amd64-musl", "arm64-musl"]) {
            let (bytes, _) =
                pull(&format!("{}@{}", entry.repository, descriptor.digest())).unwrap();
            let manifest: oci_spec::image::ImageManifest = serde_json::from_slice(&bytes).unwrap();
            let config = pull_blob(&entry.repository, manifest.config().digest().as_ref());
            let config: oci_spec::image::ImageConfiguration =
                serde_json::from_slice(&config).unwrap();
            let layer_digest = manifest.layers()[0].digest().to_string();
            assert_eq!(
                config.rootfs().diff_ids(),
                std::slice::from_ref(&layer_digest)
            );
            let layer = pull_blob(&entry.repository, &layer_digest);
            let (_, binary) = layout::layer_file(&layer).unwrap();
            let name = format!("{}-1.0.0-linux-{platform}", entry.bin);
            assert_eq!(crate::sha256_hex(&binary), sums[&name], "{name}");
        }
    }

    check_referrers(&dist, &keys.path().join("cosign.pub"));

    // verify-image: the good images pass; another key, an unreachable registry do not.
    let public = keys.path().join("cosign.pub");
    for entry in images(&dist) {
        let tagged = format!("{}:{}", entry.repository, entry.tag);
        verify_image(release, &tagged, &public)
            .success()
            .stdout_has("checks passed");
    }
    let app = format!("{}:1.0.0", images(&dist)[0].repository);
    let (_other_key, other_pub) = crate::other_key(scratch.path());
    verify_image(release, &app, &other_pub)
        .code(3)
        .stdout_has("[FAIL] signature");
    verify_image(release, "127.0.0.1:1/fixture/basic/app:1.0.0", &public)
        .code(2)
        .stderr_has("unreachable");
    tamper_cases(&dist, keys.path());

    // The same commit again (a fresh GitHub, a fresh build): the same digests, every tag kept.
    let again = real_run(
        release,
        keys.path(),
        &github(),
        &scratch.path().join("d2"),
        &reg.docker_config(),
    );
    again.success();
    assert_eq!(images(&scratch.path().join("d2")), images(&dist));
    assert_eq!(
        again
            .stderr()
            .matches("is already in the registry: kept")
            .count(),
        3,
        "{}",
        again.stderr()
    );
    assert_eq!(
        again
            .stderr()
            .matches("signature and attestations already attached")
            .count(),
        3,
        "{}",
        again.stderr()
    );

    // A tag moved to another index is refused: the release stops before GitHub.
    let app = &images(&dist)[0];
    let other = &images(&dist)[2];
    let (index, _) = pull(&format!("{}@{}", app.repository, app.digest)).unwrap();
    // Everything app's index needs, copied into other's repository, then other's tag moved.
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    for d in serde_json::from_slice::<oci_spec::image::ImageIndex>(&index)
        .unwrap()
        .manifests()
    {
        let (bytes, _) = pull(&format!("{}@{}", app.repository, d.digest())).unwrap();
        let m: oci_spec::image::ImageManifest = serde_json::from_slice(&bytes).unwrap();
        for blob in std::iter::once(m.config()).chain(m.layers()) {
            let digest = blob.digest().to_string();
            blobs.push((pull_blob(&app.repository, &digest), digest));
        }
        manifests.push((bytes, d.digest().to_string()));
    }
    let client = reg.client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let at =
        |r: &str| -> oci_client::Reference { format!("{}{r}", other.repository).parse().unwrap() };
    let moved = at(&format!(":{}", other.tag));
    rt.block_on(async {
        client
            .auth(&moved, &reg.auth(), oci_client::RegistryOperation::Push)
            .await
            .unwrap();
        for (data, digest) in blobs {
            client
                .push_blob(&at(&format!("@{digest}")), data, &digest)
                .await
                .unwrap();
        }
        let manifest_type =
            http::HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json");
        for (bytes, digest) in manifests {
            client
                .push_manifest_raw(&at(&format!("@{digest}")), bytes, manifest_type.clone())
                .await
                .unwrap();
        }
        let index_type = http::HeaderValue::from_static("application/vnd.oci.image.index.v1+json");
        client
            .push_manifest_raw(&moved, index.clone(), index_type)
            .await
            .unwrap();
    });
    assert_eq!(
        pull(&format!("{}:{}", other.repository, other.tag))
            .unwrap()
            .1,
        app.digest
    );
    let server = github();
    let refused = real_run(
        release,
        keys.path(),
        &server,
        &scratch.path().join("d3"),
        &reg.docker_config(),
    );
    refused
        .code(1)
        .stderr_has("already points at")
        .stderr_has("not moved");
    verify_image(
        release,
        &format!("{}:{}", other.repository, other.tag),
        &public,
    )
    .code(3)
    .stdout_has("[FAIL] signature");
    assert!(server.releases("fixture", "basic").is_empty());
}

/// Every image's referrers, as cosign v3 lays them out, kept in the fallback index (distribution
/// 2.8 has no referrers API): the sign statement and the provenance on the index, an SBOM
/// attestation on each platform manifest, each a bundle the release's key verifies.
fn check_referrers(dist: &Path, public: &Path) {
    use serde_json::Value;
    use xrelease::image::referrers::*;
    let key = xrelease::signing::key::PublicKey::read(public).unwrap();
    for entry in images(dist) {
        let (index, _) = pull(&format!("{}:{}", entry.repository, entry.tag)).unwrap();
        let index: oci_spec::image::ImageIndex = serde_json::from_slice(&index).unwrap();
        let mut subjects = vec![entry.digest.clone()];
        subjects.extend(index.manifests().iter().map(|d| d.digest().to_string()));
        for subject in &subjects {
            let tag = format!("{}:{}", entry.repository, subject.replace(':', "-"));
            let (fallback, _) = pull(&tag).unwrap_or_else(|| panic!("no fallback index {tag}"));
            let fallback: Value = serde_json::from_slice(&fallback).unwrap();
            let listed = fallback["manifests"].as_array().unwrap();
            let mut types: Vec<&str> = listed
                .iter()
                .map(|m| m["annotations"][PREDICATE_ANNOTATION].as_str().unwrap())
                .collect();
            types.sort();
            let expected = if *subject == entry.digest {
                vec![SIGN_PREDICATE, PROVENANCE_PREDICATE]
            } else {
                vec![SBOM_PREDICATE]
            };
            assert_eq!(types, expected, "{tag}");
            for listing in listed {
                assert_eq!(listing["artifactType"], BUNDLE_TYPE);
                let digest = listing["digest"].as_str().unwrap();
                let (bytes, _) = pull(&format!("{}@{digest}", entry.repository)).unwrap();
                let m: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(m["artifactType"], BUNDLE_TYPE);
                assert_eq!(m["config"]["mediaType"], EMPTY_TYPE);
                assert_eq!(m["config"]["size"], 2);
                assert_eq!(m["layers"].as_array().unwrap().len(), 1);
                assert_eq!(m["layers"][0]["mediaType"], BUNDLE_TYPE);
                assert_eq!(m["subject"]["digest"], subject.as_str());
                assert_eq!(m["annotations"][CONTENT_ANNOTATION], "dsse-envelope");
                let predicate_type = m["annotations"][PREDICATE_ANNOTATION].as_str().unwrap();
                let bundle = pull_blob(
                    &entry.repository,
                    m["layers"][0]["digest"].as_str().unwrap(),
                );
                let bundle =
                    xrelease::signing::keybundle::from_json(std::str::from_utf8(&bundle).unwrap())
                        .unwrap();
                let statement: Value = serde_json::from_slice(
                    &xrelease::signing::keybundle::verify_dsse(&bundle, &key).unwrap(),
                )
                .unwrap();
                assert_eq!(statement["predicateType"], predicate_type);
                let named: Vec<String> = statement["subject"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| format!("sha256:{}", s["digest"]["sha256"].as_str().unwrap()))
                    .collect();
                if predicate_type == PROVENANCE_PREDICATE {
                    assert_eq!(
                        named, subjects,
                        "provenance names the index and every platform"
                    );
                    assert_eq!(
                        statement["predicate"]["buildDefinition"]["externalParameters"]["tag"],
                        "v1.0.0"
                    );
                } else {
                    assert_eq!(named, std::slice::from_ref(subject));
                }
            }
        }
    }
}

fn verify_image(release: &ImageRelease, reference: &str, key: &Path) -> Outcome {
    release
        .fixture
        .xrelease(&["verify-image", reference, "--key", key.to_str().unwrap()])
        .env(
            "DOCKER_CONFIG",
            registry::registry().docker_config().to_str().unwrap(),
        )
        .run()
}

/// Pushes raw bytes to the test registry: a blob (`media_type` None) or a manifest.
fn put(repository: &str, reference: &str, bytes: &[u8], media_type: Option<&str>) {
    let reg = registry::registry();
    let client = reg.client();
    let r: oci_client::Reference = format!("{repository}{reference}").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        client
            .auth(&r, &reg.auth(), oci_client::RegistryOperation::Push)
            .await
            .unwrap();
        match media_type {
            None => {
                let digest = reference.trim_start_matches('@');
                client.push_blob(&r, bytes.to_vec(), digest).await.unwrap();
            }
            Some(t) => {
                client
                    .push_manifest_raw(&r, bytes.to_vec(), http::HeaderValue::from_str(t).unwrap())
                    .await
                    .unwrap();
            }
        }
    });
}

/// Pushes `image` as `repository:1.0.0` and attaches `statements`, signed with the release's
/// key, each hung on `hang_on(statement)` (its true subject unless a case forges another).
fn push_signed(
    repository: &str,
    image: &layout::Image,
    signed: &[xrelease::image::referrers::Statement],
    keys: &Path,
    hang_on: impl Fn(&xrelease::image::referrers::Statement) -> oci_spec::image::Descriptor,
) {
    use xrelease::image::referrers::*;
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    for p in &image.platforms {
        for blob in [&p.layer, &p.config] {
            put(
                repository,
                &format!("@{}", blob.digest()),
                &blob.bytes,
                None,
            );
        }
        put(
            repository,
            &format!("@{}", p.manifest.digest()),
            &p.manifest.bytes,
            Some(MANIFEST),
        );
    }
    put(repository, ":1.0.0", &image.index.bytes, Some(INDEX));
    let key = xrelease::signing::key::PrivateKey::read_encrypted(
        &keys.join("cosign.key"),
        &xrelease::secret::Password::from(PASSWORD),
    )
    .unwrap();
    let mut fallbacks: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    for st in signed {
        let payload = layout::canonical_json(&st.statement);
        let bundle =
            xrelease::signing::keybundle::to_json(&xrelease::signing::keybundle::sign_dsse(
                "application/vnd.in-toto+json",
                &payload,
                &key,
            ))
            .unwrap();
        let r = referrer(&hang_on(st), bundle.as_bytes(), st.predicate_type);
        let empty = empty_config();
        put(
            repository,
            &format!("@{}", empty.digest()),
            &empty.bytes,
            None,
        );
        put(
            repository,
            &format!("@{}", r.bundle.digest()),
            &r.bundle.bytes,
            None,
        );
        put(
            repository,
            &format!("@{}", r.manifest.digest()),
            &r.manifest.bytes,
            Some(MANIFEST),
        );
        // Listed under the statement's true subject, wherever its manifest points.
        let subject = st.subject.digest().to_string();
        let existing = fallbacks.get(&subject).cloned();
        let updated = fallback_index(existing.as_deref(), listing(&r)).unwrap();
        fallbacks.insert(subject, updated);
    }
    for (subject, index) in fallbacks {
        put(
            repository,
            &format!(":{}", fallback_tag(&subject)),
            &index,
            Some(INDEX),
        );
    }
}

/// Images signed by the release's own key, each wrong in exactly one way: verify-image refuses
/// each, naming the check.
fn tamper_cases(dist: &Path, keys: &Path) {
    use xrelease::image::referrers::*;
    let release = image_release();
    let public = keys.join("cosign.pub");
    let host = &registry::registry().host;
    let (genuine, _) = layout::read(&dist.join("oci/app")).unwrap();
    let provenance = {
        use base64::Engine as _;
        let text = std::fs::read_to_string(dist.join("provenance.intoto.jsonl")).unwrap();
        let envelope: serde_json::Value =
            serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let payload = base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&payload).unwrap()["predicate"].clone()
    };
    let sboms: Vec<serde_json::Value> = ["amd64-musl", "arm64-musl"]
        .iter()
        .map(|p| {
            let text = std::fs::read(dist.join(format!("app-1.0.0-linux-{p}.cdx.json"))).unwrap();
            serde_json::from_slice(&text).unwrap()
        })
        .collect();

    // A provenance that leaves out the arm64 manifest.
    let repo = format!("{host}/tamper/no-arm64");
    let mut list = statements(&repo, &genuine, &provenance, &sboms);
    let arm64 = genuine.platforms[1].manifest.digest()[7..].to_string();
    for st in &mut list {
        if st.predicate_type == PROVENANCE_PREDICATE {
            let subjects = st.statement["subject"].as_array_mut().unwrap();
            subjects.retain(|s| s["digest"]["sha256"] != arm64.as_str());
        }
    }
    push_signed(&repo, &genuine, &list, keys, |st| st.subject.clone());
    verify_image(release, &format!("{repo}:1.0.0"), &public)
        .code(3)
        .stdout_has("[FAIL] provenance")
        .stdout_has("missing [\"sha256:");

    // A sign referrer listed for the index whose subject is another digest.
    let repo = format!("{host}/tamper/subject");
    let list = statements(&repo, &genuine, &provenance, &sboms);
    let elsewhere = genuine.platforms[0].manifest.descriptor.clone();
    push_signed(&repo, &genuine, &list, keys, |st| {
        if st.predicate_type == SIGN_PREDICATE {
            elsewhere.clone()
        } else {
            st.subject.clone()
        }
    });
    verify_image(release, &format!("{repo}:1.0.0"), &public)
        .code(3)
        .stdout_has("[FAIL] signature")
        .stdout_has("its subject is");

    // The layer swapped: an image of the other bin's bytes, attested with app's SBOMs.
    let repo = format!("{host}/tamper/layer");
    let input = layout::ImageInput {
        bin: "app".into(),
        version: "1.0.0".into(),
        commit: "0".repeat(40),
        commit_time: 0,
        labels: Default::default(),
        platforms: ["amd64", "arm64"]
            .iter()
            .map(|arch| layout::PlatformInput {
                os: "linux",
                architecture: if *arch == "amd64" { "amd64" } else { "arm64" },
                variant: None,
                binary: std::fs::read(dist.join(format!("other-1.0.0-linux-{arch}-musl"))).unwrap(),
            })
            .collect(),
    };
    let swapped = layout::build(&input).unwrap();
    let list = statements(&repo, &swapped, &provenance, &sboms);
    push_signed(&repo, &swapped, &list, keys, |st| st.subject.clone());
    let out = verify_image(release, &format!("{repo}:1.0.0"), &public);
    out.code(3)
        .stdout_has("[FAIL] sbom")
        .stdout_has("but the layer holds");
    assert!(
        out.stdout().contains("[PASS] signature"),
        "only the binding fails: {}",
        out.stdout()
    );
}

/// The image fixture tagged v1.0.0 at HEAD (once: the real runs share it).
fn tagged() -> &'static ImageRelease {
    static TAGGED: OnceLock<()> = OnceLock::new();
    let release = image_release();
    release.outcome.success();
    TAGGED.get_or_init(|| {
        release.fixture.git(&["tag", "-f", "v1.0.0"]);
    });
    release
}

#[test]
fn a_keyless_real_release_pushes_images_verify_image_accepts_by_identity() {
    use crate::support::sigstore::{
        GITHUB_ISSUER, Sigstore, WORKFLOW_IDENTITY, github_claims, unsigned_jwt,
    };
    let release = tagged();
    let reg = registry::registry();
    let sigstore = Sigstore::start();
    let dir = tempfile::tempdir().unwrap();
    // Its own repositories: the key-signed test's images carry that key's referrers.
    let text = config_text().replace("/fixture/basic", "/keyless/basic")
        + &format!(
            "\n[sign]\nmode = \"keyless\"\nfulcio-url = \"{}\"\nrekor-url = \"{}\"\n\
             trusted-root = \"{}\"\nidentity = \"{WORKFLOW_IDENTITY}\"\nissuer = \"{GITHUB_ISSUER}\"\n",
            sigstore.fulcio_url,
            sigstore.rekor_url,
            sigstore.trusted_root.display()
        );
    let config = release.fixture.config_outside(dir.path(), &text);
    let server = github();
    let dist = dir.path().join("dist");
    release
        .fixture
        .xrelease(&["release", "v1.0.0", "--dist", dist.to_str().unwrap()])
        .env("SIGSTORE_ID_TOKEN", &unsigned_jwt(&github_claims()))
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_API_URL", &server.api_url())
        .env("GITHUB_REPOSITORY", "fixture/basic")
        .env("DOCKER_CONFIG", reg.docker_config().to_str().unwrap())
        .run_with_config(&config)
        .success();
    let root = sigstore.trusted_root.to_str().unwrap().to_string();
    let verify = |identity: &str| {
        let entry = &images(&dist)[0];
        release
            .fixture
            .xrelease(&[
                "verify-image",
                &format!("{}:{}", entry.repository, entry.tag),
                "--certificate-identity",
                identity,
                "--certificate-oidc-issuer",
                GITHUB_ISSUER,
                "--trusted-root",
                &root,
            ])
            .env("DOCKER_CONFIG", reg.docker_config().to_str().unwrap())
            .run()
    };
    verify(WORKFLOW_IDENTITY)
        .success()
        .stdout_has("[PASS] provenance");
    verify("https://github.com/someone/else/.github/workflows/release.yml@refs/tags/v1.0.0")
        .code(3)
        .stdout_has("[FAIL] signature");
}
