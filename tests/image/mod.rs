//! Container images: a rehearsal of the `basic` fixture built for the two musl targets with
//! `[image]` on, its OCI layouts read back from disk, and the verifier's image checks tampered
//! with one at a time.

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
labels = { "org.example.team" = "release" }
"#;

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
        let config = fixture.config_outside(config_dir.path(), CONFIG);
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
        assert_eq!(
            entry.repository,
            format!("ghcr.io/fixture/basic/{}", entry.bin)
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
    assert_eq!(
        manifest["images"][0]["pushed"], false,
        "a rehearsal pushes nothing"
    );
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
