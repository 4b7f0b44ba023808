//! `xrelease release` against the local GitHub server, through the real binary.
//!
//! `cargo xtask release v1.0.0` is the same code path: the fixture has no xtask crate, and an
//! xtask only forwards its arguments to `xrelease::cli::main`. The real runs share the basic
//! fixture (tagged v1.0.0 at HEAD, so its builds are cached) and write to their own `--dist`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support::github_server::{Fault, GitHubServer, Listener};
use crate::support::*;

const TAG: &str = "v1.0.0";
const OWNER: &str = "fixture";
const REPO: &str = "basic";
const TOKEN: &str = "ghp_xreleaseE2E_secretTOKEN_0123456789";
const PASSWORD: &str = "publish-Key-pa55-never-printed";

pub(crate) struct Setup {
    pub(crate) fixture: &'static Fixture,
    keys: tempfile::TempDir,
    config: PathBuf,
}

/// The shared basic fixture tagged at HEAD, and a key-signing config outside it.
pub(crate) fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let (fixture, outcome) = basic_release();
        outcome.success();
        fixture.git(&["tag", TAG]);
        let keys = tempfile::tempdir().unwrap();
        xrelease::signing::key::keygen(
            &keys.path().join("cosign"),
            &xrelease::secret::Password::from(PASSWORD),
        )
        .unwrap();
        let text =
            fixture.read("release.toml") + "\n[sign]\nmode = \"key\"\nkey = \"cosign.key\"\n";
        let config = fixture.config_outside(keys.path(), &text);
        Setup {
            fixture,
            keys,
            config,
        }
    })
}

fn server() -> GitHubServer {
    GitHubServer::builder()
        .repo(OWNER, REPO)
        .token(TOKEN, true)
        .immutable(true)
        .start()
}

/// `xrelease release v1.0.0` for real, into `dist`, publishing to `server`.
fn real_run(server: &GitHubServer, dist: &str, env: &[(&str, &str)]) -> Outcome {
    let s = setup();
    let mut run = s
        .fixture
        .xrelease(&["release", TAG, "--dist", dist])
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_API_URL", &server.api_url())
        .env("GITHUB_REPOSITORY", &format!("{OWNER}/{REPO}"));
    for (k, v) in env {
        run = run.env(k, v);
    }
    run.run_with_config(&s.config)
}

/// Name → (size, `sha256:<hex>`) of every file a release directory publishes (all but
/// xrelease's own records).
fn local_files(dir: &Path) -> Vec<(String, u64, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            !["publish-plan.json", "manifest.json"]
                .contains(&p.file_name().unwrap().to_str().unwrap())
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let digest = format!("sha256:{}", crate::sha256_hex(&bytes));
            (name, bytes.len() as u64, digest)
        })
        .collect();
    files.sort();
    files
}

/// The published release for the tag, if any, holds exactly `dir`'s files; returns whether
/// there is one.
#[track_caller]
fn published_exactly(server: &GitHubServer, dir: &Path, ctx: &str) -> bool {
    let releases = server.releases(OWNER, REPO);
    let published: Vec<_> = releases
        .iter()
        .filter(|r| r.tag == TAG && !r.draft)
        .collect();
    assert!(published.len() <= 1, "{ctx}: several published releases");
    let Some(release) = published.first() else {
        return false;
    };
    let mut remote: Vec<_> = release
        .assets
        .iter()
        .map(|a| (a.name.clone(), a.size, a.digest.clone()))
        .collect();
    remote.sort();
    assert_eq!(remote, local_files(dir), "{ctx}: published assets");
    true
}

/// Nothing deleted, no asset stored twice.
#[track_caller]
fn no_duplicates_no_deletes(server: &GitHubServer, ctx: &str) {
    let mut stored: HashMap<String, usize> = HashMap::new();
    for e in server.log() {
        assert_ne!(e.method, "DELETE", "{ctx}: {e:?}");
        if e.listener == Listener::Uploads && e.method == "POST" && e.handled == Some(201) {
            *stored.entry(e.path.clone()).or_default() += 1;
        }
    }
    for (path, n) in stored {
        assert_eq!(n, 1, "{ctx}: {path} stored {n} times");
    }
}

/// Requests of a clean real run of a release of `files` files: preflight (repository, tag,
/// drafts), the same three again after the build, the draft, the uploads, the listing, the
/// publish.
fn requests_of_a_clean_run(files: usize) -> u64 {
    (3 + 3 + 1 + files + 1 + 1) as u64
}

#[test]
fn a_real_release_publishes_exactly_the_release_directory() {
    let s = setup();
    let server = server();
    let out = real_run(&server, "dist/publish-e2e", &[]);
    out.success().stdout_has("published v1.0.0: ");
    let dist = s.fixture.path("dist/publish-e2e");
    assert!(published_exactly(&server, &dist, "e2e"));
    let releases = server.releases(OWNER, REPO);
    assert_eq!(releases.len(), 1);
    let release = &releases[0];
    assert!(!release.draft && !release.prerelease);
    assert_eq!(release.name, "basic v1.0.0");
    for needle in [
        "| `app-1.0.0-linux-amd64` |",
        "sha256sum -c --strict SHA256SUMS",
        "openssl dgst -sha256 -verify cosign.pub",
        "xrelease verify . --key cosign.pub --repo fixture/basic --tag v1.0.0",
    ] {
        assert!(release.body.contains(needle), "{needle}:\n{}", release.body);
    }

    let log = server.log();
    let files = local_files(&dist).len();
    assert_eq!(log.len() as u64, requests_of_a_clean_run(files), "{log:#?}");
    let last = log.last().unwrap();
    assert_eq!((last.method.as_str(), last.status), ("PATCH", Some(200)));
    assert_eq!(log.iter().filter(|e| e.method == "PATCH").count(), 1);
    no_duplicates_no_deletes(&server, "e2e");

    crate::assert_never_leaked(TOKEN, &[&out], &[dist.as_path(), s.keys.path()]);
    assert!(!release.body.contains(TOKEN) && !release.name.contains(TOKEN));
}

#[test]
fn a_published_release_for_the_tag_is_refused_before_any_build() {
    let s = setup();
    let server = server();
    server.seed_release(OWNER, REPO, TAG, false, &[("old.bin", b"old")]);
    let out = real_run(&server, "dist/publish-immutable", &[]);
    out.code(2)
        .stderr_has("release v1.0.0 is already published on fixture/basic")
        .stderr_has("releases are immutable: cut a new tag");
    assert!(!s.fixture.path("dist/publish-immutable").exists());
    assert!(server.log().iter().all(|e| e.method == "GET"));
    assert_eq!(server.releases(OWNER, REPO)[0].assets.len(), 1);
}

#[test]
fn a_published_release_with_other_files_is_refused_before_signing() {
    let s = setup();
    let server = server();
    server.seed_release(
        OWNER,
        REPO,
        TAG,
        false,
        &[
            ("SHA256SUMS", b"0000  other\n"),
            ("app-1.0.0-linux-amd64", b"old"),
        ],
    );
    let out = real_run(&server, "dist/publish-differs-published", &[]);
    out.code(2)
        .stderr_has("release v1.0.0 is already published")
        .stderr_has("differs from this build")
        .stderr_has("app-1.0.0-linux-amd64: sha256:")
        .stderr_has("releases are immutable: cut a new tag");
    assert!(
        !s.fixture
            .path("dist/publish-differs-published/SHA256SUMS.sig")
            .exists(),
        "nothing was signed"
    );
    assert!(server.log().iter().all(|e| e.method == "GET"));
}

#[test]
fn a_draft_with_a_differing_asset_is_refused_naming_it() {
    let server = server();
    server.seed_release(
        OWNER,
        REPO,
        TAG,
        true,
        &[("app-1.0.0-linux-amd64", b"not what was built")],
    );
    let out = real_run(&server, "dist/publish-differs", &[]);
    out.code(1)
        .stderr_has("app-1.0.0-linux-amd64: 18 bytes on GitHub")
        .stderr_has("never deletes")
        .stderr_has("run the same command again");
    assert!(
        server.log().iter().all(|e| e.method == "GET"),
        "{:#?}",
        server.log()
    );
    let release = &server.releases(OWNER, REPO)[0];
    assert!(release.draft);
    assert_eq!(release.assets.len(), 1);
}

#[test]
fn a_missing_or_powerless_token_is_refused_before_any_build() {
    let s = setup();
    let server = server();
    let out = s
        .fixture
        .xrelease(&["release", TAG, "--dist", "dist/publish-no-token"])
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("GITHUB_API_URL", &server.api_url())
        .env("GITHUB_REPOSITORY", "fixture/basic")
        .run_with_config(&s.config);
    out.code(2).stderr_has("GITHUB_TOKEN is not set");
    let read_only = "ghp_readOnly_TOKEN_987";
    server.add_token(read_only, false);
    let out = real_run(
        &server,
        "dist/publish-read-only",
        &[("GITHUB_TOKEN", read_only)],
    );
    out.code(2).stderr_has("cannot push to it");
    assert!(!s.fixture.path("dist/publish-no-token").exists());
    assert!(!s.fixture.path("dist/publish-read-only").exists());
    assert_eq!(server.request_count(), 1);
}

/// A fault at request `k` with retries off: the run fails leaving at most a draft (or, when
/// the publish itself took effect unanswered, the complete release) and says how to resume;
/// the same command then completes the release.
fn fault_then_rerun(fault: Fault, k: u64, dist: &str) {
    let ctx = format!("{fault:?} at request {k}");
    let s = setup();
    let server = server();
    server.fail_request(k, fault);
    let first = real_run(&server, dist, &[("XRELEASE_GITHUB_ATTEMPTS", "1")]);
    assert!(
        server
            .log()
            .iter()
            .any(|e| e.number == k && e.fault == Some(fault)),
        "{ctx}: the fault never happened"
    );
    first.code(1).stderr_has("the same command");
    let dir = s.fixture.path(dist);
    let published = published_exactly(&server, &dir, &ctx);
    assert!(
        !published || fault == Fault::ResetAfterEffect,
        "{ctx}: published although the run failed"
    );

    let second = real_run(&server, dist, &[]);
    if published {
        // CI's "re-run all jobs" of a finished release: the same files, so nothing to do.
        second
            .success()
            .stdout_has("was already published with exactly these files");
    } else {
        second.success().stdout_has("published v1.0.0: ");
    }
    assert!(
        published_exactly(&server, &dir, &ctx),
        "{ctx}: not published"
    );
    assert!(
        server.releases(OWNER, REPO).iter().all(|r| !r.draft),
        "{ctx}: a stray draft"
    );
    no_duplicates_no_deletes(&server, &ctx);
    crate::assert_never_leaked(TOKEN, &[&first, &second], &[dir.as_path()]);
}

#[test]
fn a_fault_at_any_step_of_publishing_leaves_a_resumable_draft() {
    let (fixture, _) = basic_release();
    let files = local_files(&fixture.path("dist/v1.0.0")).len();
    let n = requests_of_a_clean_run(files);
    let cases = [
        (Fault::ServerError, 2, "the tag lookup in preflight"),
        (Fault::Reset, 7, "the draft's creation"),
        (Fault::BadGateway, 9, "an upload"),
        (Fault::RateLimitExhausted, n - 1, "the final listing"),
        (
            Fault::ResetAfterEffect,
            n,
            "the publish, applied but unanswered",
        ),
    ];
    std::thread::scope(|scope| {
        for (i, (fault, k, _what)) in cases.into_iter().enumerate() {
            scope.spawn(move || fault_then_rerun(fault, k, &format!("dist/publish-fault-{i}")));
        }
    });
}

#[test]
fn a_rehearsal_sends_no_request_and_records_them_all() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let server = server();
    let out = fixture
        .xrelease(&["release", TAG, "--dry-run", "--dist", "dist/publish-dry"])
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_API_URL", &server.api_url())
        .env("GITHUB_REPOSITORY", "fixture/basic")
        .run();
    out.success()
        .stdout_has("rehearsal: nothing was sent; publishing would upload")
        .stdout_has("publish-plan.json");
    assert!(server.log().is_empty(), "{:#?}", server.log());

    let dist = fixture.path("dist/publish-dry");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dist.join("publish-plan.json")).unwrap())
            .unwrap();
    let requests = record["requests"].as_array().unwrap();
    let files = local_files(&dist);
    assert_eq!(
        requests.len() as u64,
        requests_of_a_clean_run(files.len()) - 3,
        "preflight's lookups are not repeated in the record"
    );
    let api = server.api_url();
    assert_eq!(requests[0]["url"], format!("{api}/repos/fixture/basic"));
    assert_eq!(requests[3]["method"], "POST");
    assert_eq!(requests[3]["body"]["draft"], true);
    assert_eq!(requests.last().unwrap()["method"], "PATCH");
    assert_eq!(requests.last().unwrap()["body"]["draft"], false);
    let mut uploads: Vec<(String, u64, String)> = requests
        .iter()
        .filter(|r| r["size"].is_u64())
        .map(|r| {
            let url = r["url"].as_str().unwrap();
            let name = url.rsplit("name=").next().unwrap().to_string();
            (
                name,
                r["size"].as_u64().unwrap(),
                r["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    uploads.sort();
    assert_eq!(uploads, files);
    crate::assert_never_leaked(TOKEN, &[&out], &[dist.as_path()]);
}
