//! A 2-of-3 release against the local GitHub server: CI's run stops at a verified draft, a
//! rebuild whose binary differs is refused, an agreeing rebuild uploads its link, and only then
//! does `xrelease publish` publish.

use std::path::Path;

use xrelease::intoto::metadata::Link;

use super::release::{TAG, downloaded, setup};
use super::*;
use crate::support::github_server::GitHubServer;
use crate::support::*;

const TOKEN: &str = "ghp_xreleaseInToto_secretTOKEN_0123456789";

fn with_github(run: Run, server: &GitHubServer) -> Run {
    run.env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_API_URL", &server.api_url())
        .env("GITHUB_REPOSITORY", "fixture/basic")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_threshold_release_publishes_only_after_an_independent_rebuild_agrees() {
    let s = setup();
    s.release.success();
    let server = GitHubServer::builder()
        .repo("fixture", "basic")
        .token(TOKEN, true)
        .immutable(true)
        .start();
    let work = tempfile::tempdir().unwrap();
    let ci_dist = work.path().join("ci");
    let (owner_pub, alice, bob) = (s.key("owner.pub"), s.key("alice.key"), s.key("bob.key"));
    let state = || {
        let releases = server.releases("fixture", "basic");
        assert_eq!(releases.len(), 1, "one release for the tag");
        let r = &releases[0];
        let names: Vec<String> = r.assets.iter().map(|a| a.name.clone()).collect();
        (r.draft, names)
    };

    // CI: the whole release, verified, ends as a draft.
    with_github(
        s.xrelease(&["release", TAG, "--quiet", "--dist", path(&ci_dist)]),
        &server,
    )
    .run_with_config(&s.config)
    .success()
    .stdout_has("is a verified draft");
    let (draft, before) = state();
    assert!(draft, "CI published a threshold-2 release");

    let publish = || {
        with_github(
            s.xrelease(&[
                "publish",
                TAG,
                "--layout-key",
                path(&owner_pub),
                "--dist",
                path(&ci_dist),
            ]),
            &server,
        )
        .run_with_config(&s.config)
    };
    publish()
        .code(3)
        .stderr_has(
            "step `build-linux-amd64` needs links from 2 distinct keys of the layout and has 1",
        )
        .stderr_has("nothing is published");
    assert!(state().0);

    // Bob's rebuild is built differently (opt-level 1): refused, naming the binary and digests.
    with_github(
        s.xrelease(&[
            "rebuild",
            TAG,
            "--key",
            path(&bob),
            "--quiet",
            "--dist",
            path(&work.path().join("bob")),
        ]),
        &server,
    )
    .env("CARGO_TARGET_DIR", path(&work.path().join("bob-target")))
    .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1")
    .run_with_config(&s.config)
    .code(3)
    .stderr_has("differs from the draft")
    .stderr_has("app-1.0.0-linux-amd64: this rebuild made sha256:")
    .stderr_has(", the draft holds sha256:");
    assert_eq!(
        state(),
        (true, before.clone()),
        "a refused rebuild uploads nothing"
    );
    publish().code(3).stderr_has("needs links from 2");

    // Alice rebuilds from scratch in a fresh target dir: identical bytes, her link goes up.
    with_github(
        s.xrelease(&[
            "rebuild",
            TAG,
            "--key",
            path(&alice),
            "--quiet",
            "--dist",
            path(&work.path().join("alice")),
        ]),
        &server,
    )
    .env("CARGO_TARGET_DIR", path(&work.path().join("alice-target")))
    .run_with_config(&s.config)
    .success()
    .stdout_has("the rebuild matches the draft");
    let alice_link = Link::file_name("build-linux-amd64", &s.party("alice").key);
    assert!(state().1.contains(&alice_link));

    publish()
        .success()
        .stdout_has("[PASS] in-toto step `build-linux-amd64`: 2 of 2 required links agree")
        .stdout_has("published v1.0.0");
    let (draft, after) = state();
    assert!(!draft, "published");

    // What was published is what in-toto-verify accepts: CI's files and Alice's link.
    let published = downloaded(&ci_dist);
    std::fs::copy(
        work.path().join("alice").join(&alice_link),
        published.path().join(&alice_link),
    )
    .unwrap();
    let mut local: Vec<String> = std::fs::read_dir(published.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    local.sort();
    let mut after = after;
    after.sort();
    assert_eq!(after, local);
    accepted(published.path(), &owner_pub);
}
