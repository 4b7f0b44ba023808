//! A release with `[in-toto]`: the owner's `xrelease layout`, a maintainer's `xrelease tag`, the
//! release's build links; `in-toto-verify` judges the release directory as downloaded.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use xrelease::intoto::keys::Key;
use xrelease::intoto::layout;
use xrelease::intoto::metadata::{Layout, Link, Metablock};
use xrelease::secret::Password;
use xrelease::signing::key::{PrivateKey, keygen};

use super::*;
use crate::support::*;

pub(crate) const TAG: &str = "v1.0.0";
pub(crate) const PASSWORD: &str = "in-toto-Key-pa55-never-printed";

pub(crate) struct Setup {
    pub(crate) fixture: Fixture,
    pub(crate) keys: tempfile::TempDir,
    pub(crate) config: PathBuf,
    /// The rehearsal's release directory.
    pub(crate) dist: PathBuf,
    pub(crate) release: Outcome,
}

impl Setup {
    pub(crate) fn key(&self, name: &str) -> PathBuf {
        self.keys.path().join(name)
    }

    pub(crate) fn party(&self, name: &str) -> Party {
        let private = PrivateKey::read_encrypted(
            &self.key(&format!("{name}.key")),
            &Password::from(PASSWORD),
        )
        .unwrap();
        Party {
            key: Key::new(private.public_key()),
            private,
            pub_file: self.key(&format!("{name}.pub")),
        }
    }

    pub(crate) fn xrelease(&self, args: &[&str]) -> Run {
        maintainer_run(&self.fixture, args)
    }
}

/// xrelease with the key password and a git identity (for the annotated tag).
fn maintainer_run(fixture: &Fixture, args: &[&str]) -> Run {
    fixture
        .xrelease(args)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("GIT_COMMITTER_NAME", "Maintainer")
        .env("GIT_COMMITTER_EMAIL", "maintainer@example.invalid")
        .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
}

/// The basic fixture (linux-amd64 only, to keep the build short) with a 2-of-3 layout (the CI
/// key, maintainers alice and bob), tagged by alice, released as a rehearsal. Built once.
pub(crate) fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let fixture = Fixture::new("basic");
        let keys = tempfile::tempdir().unwrap();
        for name in ["owner", "alice", "ci", "bob"] {
            keygen(&keys.path().join(name), &Password::from(PASSWORD)).unwrap();
        }
        let text = "[release]\nexclude-bins = [\"app-secret\"]\ntargets = [\"x86_64-unknown-linux-gnu\"]\n\
                    [github]\nrepository = \"fixture/basic\"\n\
                    [sign]\nmode = \"key\"\nkey = \"ci.key\"\n\
                    [in-toto]\nmaintainers = [\"alice.pub\", \"bob.pub\"]\nci-key = \"ci.pub\"\nthreshold = 2\n";
        let config = fixture.config_outside(keys.path(), text);
        let dist = keys.path().join("dist");
        let key = |name: &str| keys.path().join(name).to_str().unwrap().to_owned();
        maintainer_run(&fixture, &["layout", "--key", &key("owner.key")])
            .run_with_config(&config)
            .success()
            .stdout_has("wrote .in_toto/root.layout");
        fixture.commit("in-toto layout");
        maintainer_run(&fixture, &["tag", TAG, "--key", &key("alice.key")])
            .run_with_config(&config)
            .success();
        let release = maintainer_run(
            &fixture,
            &[
                "release",
                TAG,
                "--dry-run",
                "--real-signing",
                "--quiet",
                "--dist",
                dist.to_str().unwrap(),
            ],
        )
        .run_with_config(&config);
        Setup {
            fixture,
            keys,
            config,
            dist,
            release,
        }
    })
}

/// The release directory as a user downloads it: what would be published (no rehearsal record).
pub(crate) fn downloaded(dist: &Path) -> tempfile::TempDir {
    let copy = copy_of(dist);
    // Neither record is published: the rehearsal's plan, and xrelease's unsigned manifest.
    let _ = std::fs::remove_file(copy.path().join("publish-plan.json"));
    let _ = std::fs::remove_file(copy.path().join("manifest.json"));
    copy
}

fn binary() -> &'static str {
    "app-1.0.0-linux-amd64"
}

/// A second builder's link: what an agreeing `xrelease rebuild` by `who` signs.
fn agreeing_link(dist: &Path, ci: &Party, who: &Party) {
    let ci_link = dist.join(Link::file_name("build-linux-amd64", &ci.key));
    let link = Metablock::parse(&std::fs::read_to_string(ci_link).unwrap())
        .unwrap()
        .link()
        .unwrap();
    who.write_link(dist, &link);
}

#[test]
fn a_release_writes_the_layout_the_tag_link_and_a_build_link_per_platform() {
    let s = setup();
    s.release.success();
    let ci = s.party("ci");
    let alice = s.party("alice");
    for name in [
        "root.layout".to_owned(),
        Link::file_name("tag", &alice.key),
        Link::file_name("build-linux-amd64", &ci.key),
    ] {
        assert!(s.dist.join(&name).is_file(), "{name} missing");
    }
    let build = Metablock::parse(
        &std::fs::read_to_string(s.dist.join(Link::file_name("build-linux-amd64", &ci.key)))
            .unwrap(),
    )
    .unwrap();
    build.verify(&ci.key).unwrap();
    let build = build.link().unwrap();
    // Materials: every tracked file of the tagged commit, as committed.
    let cargo_toml = sha256_file(&s.fixture.path("Cargo.toml"));
    assert_eq!(build.materials["Cargo.toml"]["sha256"], cargo_toml);
    assert!(build.materials.contains_key(".in_toto/root.layout"));
    // Products: exactly the platform's binaries in the release directory.
    let mut binaries: Vec<String> = std::fs::read_dir(&s.dist)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-linux-amd64"))
        .collect();
    binaries.sort();
    assert_eq!(build.products.keys().cloned().collect::<Vec<_>>(), binaries);
    assert_eq!(
        build.products[binary()]["sha256"],
        sha256_file(&s.dist.join(binary()))
    );
    assert_eq!(build.command[..3], ["cargo", "build", "--release"]);
    // The release notes show the command that works in the downloaded directory.
    let plan = std::fs::read_to_string(s.dist.join("publish-plan.json")).unwrap();
    assert!(
        plan.contains("in-toto-verify --layout root.layout --verification-keys owner.pub"),
        "{plan}"
    );
    // The manifest lists them (publish refuses what it does not list).
    let manifest = std::fs::read_to_string(s.dist.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"in-toto-layout\"") && manifest.contains("\"in-toto-link\""));
}

#[test]
fn in_toto_verify_judges_the_downloaded_release_directory() {
    let s = setup();
    s.release.success();
    let (ci, alice, owner) = (s.party("ci"), s.party("alice"), s.party("owner"));
    let dir = downloaded(&s.dist);
    // Threshold 2: CI's link alone is not enough.
    refused(
        dir.path(),
        &owner.pub_file,
        "build-linux-amd64",
        "only one of two build links",
    );
    agreeing_link(dir.path(), &ci, &alice);
    accepted(dir.path(), &owner.pub_file);

    let section_keys = [alice.key.clone(), s.party("bob").key];
    let platforms = [("linux-amd64".to_owned(), "*-*-linux-amd64".to_owned())];
    let expired: Layout = layout::build(&layout::Spec {
        maintainers: &section_keys,
        ci: &ci.key,
        threshold: 2,
        platforms: &platforms,
        expires: time::OffsetDateTime::now_utc() - time::Duration::hours(1),
        readme: String::new(),
    });
    every_tamper_is_refused(
        dir.path(),
        &owner,
        [&ci, &alice],
        "linux-amd64",
        binary(),
        &expired,
    );
}

#[test]
fn only_a_maintainer_tags_and_a_tag_is_never_moved() {
    let s = setup();
    let owner = s.key("owner.key");
    s.xrelease(&["tag", "v1.0.1", "--key", owner.to_str().unwrap()])
        .run_with_config(&s.config)
        .code(2)
        .stderr_has("is not one of `[in-toto] maintainers`");
    let bob = s.key("bob.key");
    s.xrelease(&["tag", TAG, "--key", bob.to_str().unwrap()])
        .run_with_config(&s.config)
        .code(2)
        .stderr_has("already exists");
    assert!(s.fixture.git(&["tag", "--list", "v1.0.1"]).is_empty());
}

/// `xrelease verify DIR --key ci.pub --layout-key owner.pub` on the downloaded directory.
fn verify_layout(s: &Setup, dir: &Path) -> Outcome {
    let (ci, owner) = (s.key("ci.pub"), s.key("owner.pub"));
    s.fixture
        .xrelease(&[
            "verify",
            dir.to_str().unwrap(),
            "--key",
            ci.to_str().unwrap(),
            "--layout-key",
            owner.to_str().unwrap(),
        ])
        .run()
}

#[test]
fn verify_checks_the_layout_and_names_the_step_and_key_of_each_bad_link() {
    let s = setup();
    s.release.success();
    let (ci, alice, bob, owner) = (
        s.party("ci"),
        s.party("alice"),
        s.party("bob"),
        s.party("owner"),
    );
    let dir = downloaded(&s.dist);
    verify_layout(s, dir.path())
        .code(3)
        .stdout_has(
            "step `build-linux-amd64` needs links from 2 distinct keys of the layout and has 1",
        )
        .stdout_has(&format!(
            "missing links from keys: {}",
            alice.key.short_id()
        ));
    agreeing_link(dir.path(), &ci, &alice);
    verify_layout(s, dir.path())
        .success()
        .stdout_has("[PASS]")
        .stdout_has("step `build-linux-amd64`: 2 of 2 required links agree")
        .stdout_has("inspection `files`");

    let step = "build-linux-amd64";
    let alice_link = dir.path().join(Link::file_name(step, &alice.key));
    let link = Metablock::parse(&std::fs::read_to_string(&alice_link).unwrap())
        .unwrap()
        .link()
        .unwrap();

    let t = copy_of(dir.path());
    let keys = tempfile::tempdir().unwrap();
    let stranger = Party::new(keys.path(), "stranger");
    let resigned = Metablock::sign(&link, &stranger.private).unwrap();
    std::fs::write(
        t.path().join(alice_link.file_name().unwrap()),
        resigned.to_json(),
    )
    .unwrap();
    verify_layout(s, t.path()).code(3).stdout_has(&format!(
        "step `{step}`: {} is signed by key {}, which the layout does not list",
        alice_link.file_name().unwrap().to_str().unwrap(),
        stranger.key.keyid()
    ));

    let t = copy_of(dir.path());
    let twice = Metablock::sign(&link, &ci.private).unwrap();
    std::fs::write(
        t.path().join(alice_link.file_name().unwrap()),
        twice.to_json(),
    )
    .unwrap();
    verify_layout(s, t.path()).code(3).stdout_has(&format!(
        "step `{step}`: two links signed by the same key {}",
        ci.key.keyid()
    ));

    let t = copy_of(dir.path());
    let mut other = link.clone();
    *other.products.get_mut(binary()).unwrap() = sha256(&"0".repeat(64));
    bob.write_link(t.path(), &other);
    verify_layout(s, t.path())
        .code(3)
        .stdout_has(&format!("step `{step}`: the links of keys "))
        .stdout_has(bob.key.short_id())
        .stdout_has(&format!("disagree on their products ({}: ", binary()))
        .stdout_has(&"0".repeat(64));

    let t = copy_of(dir.path());
    let mut layout =
        Metablock::parse(&std::fs::read_to_string(t.path().join("root.layout")).unwrap())
            .unwrap()
            .layout()
            .unwrap();
    layout.expires = "2020-01-01T00:00:00Z".into();
    write_layout(t.path(), &layout, &owner.private);
    verify_layout(s, t.path())
        .code(3)
        .stdout_has("root.layout expired on 2020-01-01T00:00:00Z");

    let t = copy_of(dir.path());
    let mut bytes = std::fs::read(t.path().join(binary())).unwrap();
    bytes[100] ^= 1;
    std::fs::write(t.path().join(binary()), bytes).unwrap();
    verify_layout(s, t.path())
        .code(3)
        .stdout_has(&format!("inspection `files`: {} is", binary()));
}
