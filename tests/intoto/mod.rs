//! in-toto: the reference verifier (`in-toto-verify` from in-toto 3.1.0, tests/requirements.txt)
//! judges the layouts and links xrelease writes, and refuses each tamper the layout must catch.

mod release;
mod threshold;

use std::path::{Path, PathBuf};
use std::process::Command;

use xrelease::intoto::keys::Key;
use xrelease::intoto::layout::{self, Spec};
use xrelease::intoto::metadata::{Artifacts, Layout, Link, Metablock, sha256};
use xrelease::signing::key::PrivateKey;

/// A named key pair, its public half written as a cosign `.pub` file.
pub(crate) struct Party {
    pub(crate) private: PrivateKey,
    pub(crate) key: Key,
    pub(crate) pub_file: PathBuf,
}

impl Party {
    pub(crate) fn new(dir: &Path, name: &str) -> Party {
        let private = PrivateKey::generate().unwrap();
        let pub_file = dir.join(format!("{name}.pub"));
        std::fs::write(&pub_file, private.public_key().to_pem()).unwrap();
        Party {
            key: Key::new(private.public_key()),
            private,
            pub_file,
        }
    }

    /// Signs `link` into `dir` under the file name in-toto looks it up by.
    pub(crate) fn write_link(&self, dir: &Path, link: &Link) -> PathBuf {
        let path = dir.join(Link::file_name(&link.name, &self.key));
        let block = Metablock::sign(link, &self.private).unwrap();
        std::fs::write(&path, block.to_json()).unwrap();
        path
    }
}

/// `in-toto-verify` run in `dir` (the downloaded release directory) with the owner's key file.
pub(crate) fn in_toto_verify(dir: &Path, owner_pub: &Path) -> std::process::Output {
    Command::new("in-toto-verify")
        .args(["--layout", "root.layout", "--verification-keys"])
        .arg(owner_pub)
        .current_dir(dir)
        .output()
        .expect("in-toto-verify (pip in-toto, tests/requirements.txt) runs")
}

#[track_caller]
pub(crate) fn accepted(dir: &Path, owner_pub: &Path) {
    let out = in_toto_verify(dir, owner_pub);
    assert!(
        out.status.success(),
        "in-toto-verify refused {}:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Refused, and for the reason given (a fragment of in-toto's message).
#[track_caller]
pub(crate) fn refused(dir: &Path, owner_pub: &Path, why: &str, tamper: &str) {
    let out = in_toto_verify(dir, owner_pub);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "in-toto-verify accepted the release after: {tamper}"
    );
    assert!(
        stderr.contains(why),
        "{tamper}: refused, but not for {why:?}:\n{stderr}"
    );
}

pub(crate) fn write_layout(dir: &Path, layout: &Layout, owner: &PrivateKey) {
    let block = Metablock::sign(layout, owner).unwrap();
    std::fs::write(dir.join("root.layout"), block.to_json()).unwrap();
}

/// A copy of `dir` to tamper with.
pub(crate) fn copy_of(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    copy
}

pub(crate) fn sha256_file(path: &Path) -> String {
    crate::sha256_hex(&std::fs::read(path).unwrap())
}

/// The tampers of the list, each on a fresh copy of an accepted `dir` whose layout has a
/// threshold of 2 for `build-<platform>` and whose build links are signed by `builders`.
/// `binary` is one binary of that platform; `stranger` is a key the layout does not list.
pub(crate) fn every_tamper_is_refused(
    dir: &Path,
    owner: &Party,
    builders: [&Party; 2],
    platform: &str,
    binary: &str,
    expired: &Layout,
) {
    let step = format!("build-{platform}");
    let link_of = |p: &Party| dir.join(Link::file_name(&step, &p.key));
    let stranger = Party::new(dir.parent().unwrap(), "stranger");

    let t = copy_of(dir);
    let mut bytes = std::fs::read(t.path().join(binary)).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(t.path().join(binary), bytes).unwrap();
    refused(
        t.path(),
        &owner.pub_file,
        "sha256sum",
        "one byte of a binary changed",
    );
    // An attacker who also rewrites SHA256SUMS still fails the inspection's binding of the
    // binary to the build products.
    let sums = std::fs::read_to_string(t.path().join("SHA256SUMS")).unwrap();
    let sums = sums.replace(
        &sha256_file(&dir.join(binary)),
        &sha256_file(&t.path().join(binary)),
    );
    std::fs::write(t.path().join("SHA256SUMS"), sums).unwrap();
    refused(
        t.path(),
        &owner.pub_file,
        &format!("'DISALLOW *' matched the following artifacts: ['{binary}']"),
        "one byte of a binary changed, SHA256SUMS rewritten to match",
    );

    let t = copy_of(dir);
    std::fs::write(t.path().join("evil.sh"), "#!/bin/sh\n").unwrap();
    refused(t.path(), &owner.pub_file, "evil.sh", "an extra file");

    let t = copy_of(dir);
    let removed = link_of(builders[1]);
    std::fs::remove_file(t.path().join(removed.file_name().unwrap())).unwrap();
    refused(t.path(), &owner.pub_file, &step, "a build link removed");

    let t = copy_of(dir);
    let original = Metablock::parse(&std::fs::read_to_string(link_of(builders[1])).unwrap())
        .unwrap()
        .link()
        .unwrap();
    let resigned = Metablock::sign(&original, &stranger.private).unwrap();
    std::fs::write(
        t.path().join(removed.file_name().unwrap()),
        resigned.to_json(),
    )
    .unwrap();
    refused(
        t.path(),
        &owner.pub_file,
        &step,
        "a link re-signed by an unlisted key",
    );

    let t = copy_of(dir);
    let mut other = original.clone();
    let product = other.products.get_mut(binary).unwrap();
    *product = sha256(&"0".repeat(64));
    builders[1].write_link(t.path(), &other);
    refused(
        t.path(),
        &owner.pub_file,
        "different artifacts",
        "a second build link with a different product",
    );

    let t = copy_of(dir);
    write_layout(t.path(), expired, &owner.private);
    refused(t.path(), &owner.pub_file, "expired", "an expired layout");
}

/// A hand-made release directory: the layout, links and files the library writes, without a
/// build. The reference verifier accepts it; every tamper is refused.
#[test]
fn the_reference_verifier_accepts_library_metadata_and_refuses_each_tamper() {
    let keys = tempfile::tempdir().unwrap();
    let owner = Party::new(keys.path(), "owner");
    let alice = Party::new(keys.path(), "alice");
    let ci = Party::new(keys.path(), "ci");
    let dir = keys.path().join("release");
    std::fs::create_dir(&dir).unwrap();

    let binary = "app-1.0.0-linux-amd64";
    std::fs::write(dir.join(binary), b"\x7fELF pretend binary").unwrap();
    std::fs::write(dir.join("app-1.0.0-linux-amd64.cdx.json"), b"{}").unwrap();
    let sums = format!(
        "{}  {binary}\n{}  app-1.0.0-linux-amd64.cdx.json\n",
        sha256_file(&dir.join(binary)),
        sha256_file(&dir.join("app-1.0.0-linux-amd64.cdx.json")),
    );
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();

    let materials = Artifacts::from([
        ("Cargo.toml".to_owned(), sha256(&"1".repeat(64))),
        ("src/main.rs".to_owned(), sha256(&"2".repeat(64))),
    ]);
    let tag = Link::new(
        "tag",
        materials.clone(),
        Artifacts::new(),
        vec!["git".into()],
    );
    alice.write_link(&dir, &tag);
    let build = Link::new(
        "build-linux-amd64",
        materials,
        Artifacts::from([(binary.to_owned(), sha256(&sha256_file(&dir.join(binary))))]),
        vec!["cargo".into(), "build".into()],
    );
    ci.write_link(&dir, &build);
    alice.write_link(&dir, &build);

    let platforms = [("linux-amd64".to_owned(), "*-*-linux-amd64".to_owned())];
    let maintainers = [alice.key.clone()];
    let spec = |expires| Spec {
        maintainers: &maintainers,
        ci: &ci.key,
        threshold: 2,
        platforms: &platforms,
        expires,
        readme: "test".into(),
    };
    let now = time::OffsetDateTime::now_utc();
    write_layout(
        &dir,
        &layout::build(&spec(now + time::Duration::days(30))),
        &owner.private,
    );
    accepted(&dir, &owner.pub_file);

    let expired = layout::build(&spec(now - time::Duration::days(1)));
    every_tamper_is_refused(&dir, &owner, [&ci, &alice], "linux-amd64", binary, &expired);

    // An SBOM no step produced is still bound: the inspection checks SHA256SUMS.
    let t = copy_of(&dir);
    std::fs::write(t.path().join("app-1.0.0-linux-amd64.cdx.json"), b"{ }").unwrap();
    refused(t.path(), &owner.pub_file, "sha256sum", "an SBOM changed");
}

/// With `[in-toto] threshold = 2` the generated workflow passes the functionary key from a
/// secret, stops at the draft, and adds the rebuild and publish jobs; it lints clean.
#[test]
fn the_threshold_workflow_has_a_second_builder_and_lints_clean() {
    let fixture = crate::support::Fixture::new("basic");
    let config = fixture.read("release.toml")
        + "\n[in-toto]\nmaintainers = [\"keys/alice.pub\"]\nci-key = \"keys/ci.pub\"\nthreshold = 2\n";
    fixture.write("release.toml", &config);
    fixture
        .xrelease(&["init", "--force"])
        .env("GITHUB_REPOSITORY", "fixture/basic")
        .run()
        .success();
    let workflow = fixture.read(".github/workflows/release.yml");
    for needle in [
        "XRELEASE_INTOTO_KEY: ${{ runner.temp }}/intoto-ci.key",
        "  rebuild:\n",
        "runs-on: ubuntu-22.04",
        "rebuild \"$TAG\" --key \"$RUNNER_TEMP/rebuild.key\"",
        "  publish:\n",
        "publish \"$TAG\" --layout-key .in_toto/owner.pub --dist release-dir",
    ] {
        assert!(
            workflow.contains(needle),
            "workflow lacks {needle:?}:\n{workflow}"
        );
    }
    let (ok, out, zok, zout) =
        crate::lint_workflows(&[fixture.path(".github/workflows/release.yml")]);
    assert!(ok, "actionlint: {out}");
    assert!(zok, "zizmor: {zout}");
}
