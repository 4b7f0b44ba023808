//! The GitHub client (`xrelease::github`) against the local GitHub server, including a fault
//! of every kind at every request of a publish, with and without retries.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::github_server::{
    Fault, GitHubServer, Listener, LoggedRequest, OWNER, REPO, TOKEN,
};
use sha2::{Digest, Sha256};
use xrelease::github::{
    AttestationUpload, ClientConfig, FoundRelease, GitHub, GithubError, PlannedAsset, ReleasePlan,
    Repo, RetryPolicy, Token,
};

const TAG: &str = "v1.2.3";

/// Short timeouts and backoffs keep the suite fast; the budget still allows
/// a `Retry-After: 1` wait.
fn test_config(api_url: String) -> ClientConfig {
    ClientConfig {
        api_url,
        upload_url: None,
        connect_timeout: Duration::from_secs(2),
        // Generous, so a loaded CI machine causes no spurious timeouts; the
        // hang test shortens it.
        request_timeout: Duration::from_secs(3),
        retry: RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(40),
            max_elapsed: Duration::from_secs(10),
        },
        upload_concurrency: 4,
    }
}

fn client_with(server: &GitHubServer, token: &str, cfg: ClientConfig) -> GitHub {
    let _ = server;
    GitHub::new(
        Token::new(token).unwrap(),
        Repo::new(OWNER, REPO).unwrap(),
        cfg,
    )
    .unwrap()
}

fn client(server: &GitHubServer) -> GitHub {
    client_with(server, TOKEN, test_config(server.api_url()))
}

/// Files with distinct content and sizes; returns the plan's assets.
fn make_assets(dir: &Path, n: usize) -> Vec<PlannedAsset> {
    (0..n)
        .map(|i| {
            let name = format!("xrelease-{i}-x86_64-unknown-linux-gnu.tar.gz");
            let path = dir.join(&name);
            let data: Vec<u8> = (0..(1000 + i * 1777))
                .map(|j| (j * 31 + i * 7) as u8)
                .collect();
            std::fs::write(&path, data).unwrap();
            PlannedAsset::from_path(path).unwrap()
        })
        .collect()
}

fn plan(assets: Vec<PlannedAsset>) -> ReleasePlan {
    ReleasePlan {
        tag: TAG.to_string(),
        name: format!("xrelease {TAG}"),
        body: "Release notes".to_string(),
        prerelease: false,
        assets,
    }
}

fn digest_of(path: &Path) -> (u64, String) {
    let data = std::fs::read(path).unwrap();
    let hex: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (data.len() as u64, format!("sha256:{hex}"))
}

/// The safety property: a published release for the tag, if any, holds
/// exactly the planned assets with the right sizes and digests.
/// Returns whether a published release exists.
fn assert_never_published_incomplete(
    server: &GitHubServer,
    assets: &[PlannedAsset],
    ctx: &str,
) -> bool {
    let releases: Vec<_> = server
        .releases(OWNER, REPO)
        .into_iter()
        .filter(|r| r.tag == TAG)
        .collect();
    let published: Vec<_> = releases.iter().filter(|r| !r.draft).collect();
    assert!(published.len() <= 1, "{ctx}: several published releases");
    if let Some(r) = published.first() {
        let mut want: Vec<(String, u64, String)> = assets
            .iter()
            .map(|a| {
                let (size, digest) = digest_of(&a.path);
                (a.name.clone(), size, digest)
            })
            .collect();
        let mut got: Vec<(String, u64, String)> = r
            .assets
            .iter()
            .map(|a| (a.name.clone(), a.size, a.digest.clone()))
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{ctx}: published release has wrong assets");
        true
    } else {
        false
    }
}

fn upload_name(entry: &LoggedRequest) -> Option<String> {
    let query = entry.path.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("name="))
        .map(str::to_string)
}

/// No asset stored twice and nothing deleted, over all the log.
fn assert_no_duplicates_no_deletes(log: &[LoggedRequest], ctx: &str) {
    let mut stored: HashMap<String, usize> = HashMap::new();
    for e in log {
        assert_ne!(e.method, "DELETE", "{ctx}: something was deleted: {e:?}");
        if e.listener == Listener::Uploads && e.method == "POST" && e.handled == Some(201) {
            *stored.entry(upload_name(e).unwrap()).or_default() += 1;
        }
    }
    for (name, n) in stored {
        assert_eq!(n, 1, "{ctx}: {name} was stored {n} times");
    }
}

fn count_requests_of_clean_publish(n_assets: usize) -> u64 {
    let server = GitHubServer::start();
    let dir = tempfile::tempdir().unwrap();
    let assets = make_assets(dir.path(), n_assets);
    client(&server)
        .publish_release(&plan(assets), &|_, _, _| {})
        .unwrap();
    server.request_count()
}

#[test]
fn end_to_end_publish_then_silence() {
    let server = GitHubServer::builder()
        .repo(OWNER, REPO)
        .token(TOKEN, true)
        .immutable(true)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let assets = make_assets(dir.path(), 5);
    let gh = client(&server);
    let last_progress = Mutex::new(HashMap::new());
    let report = gh
        .publish_release(&plan(assets.clone()), &|name, sent, total| {
            assert!(sent <= total);
            last_progress
                .lock()
                .unwrap()
                .insert(name.to_string(), (sent, total));
        })
        .unwrap();
    assert!(!report.release.draft);
    assert!(!report.already_published);
    assert_eq!(report.uploaded.len(), 5);
    assert!(report.kept.is_empty());
    for a in &assets {
        let (size, _) = digest_of(&a.path);
        assert_eq!(last_progress.lock().unwrap()[&a.name], (size, size));
    }

    let releases = server.releases(OWNER, REPO);
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0].name, format!("xrelease {TAG}"));
    assert!(assert_never_published_incomplete(&server, &assets, "e2e"));

    let log = server.log();
    let last = log.last().unwrap();
    assert_eq!((last.method.as_str(), last.status), ("PATCH", Some(200)));
    assert_eq!(log.iter().filter(|e| e.method == "PATCH").count(), 1);
    // Only the tag lookup may miss (404: no release yet); nothing else failed.
    for e in &log {
        let expected = if e.path.contains("/releases/tags/") {
            404
        } else if e.method == "POST" {
            201
        } else {
            200
        };
        assert_eq!(e.status, Some(expected), "{e:?}");
    }
    let count = server.request_count();
    drop(gh);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.request_count(), count, "requests after the PATCH");
    assert_no_duplicates_no_deletes(&log, "e2e");
}

#[test]
fn rerun_of_published_identical_release_is_a_no_op() {
    let server = GitHubServer::start();
    let dir = tempfile::tempdir().unwrap();
    let assets = make_assets(dir.path(), 2);
    client(&server)
        .publish_release(&plan(assets.clone()), &|_, _, _| {})
        .unwrap();
    let before = server.log().len();
    let report = client(&server)
        .publish_release(&plan(assets), &|_, _, _| {})
        .unwrap();
    assert!(report.already_published);
    let log = server.log();
    assert!(log[before..].iter().all(|e| e.method == "GET"), "{log:#?}");
}

/// One run of the fault sweep: a publish with `fault` at request `k`, then a
/// clean re-run, checking the safety properties after each.
/// Returns how long the faulty run took.
fn sweep_case(fault: Fault, k: u64, retries: bool, hang: Duration) -> Duration {
    let ctx = format!("{fault:?} at request {k} (retries: {retries})");
    let server = GitHubServer::builder()
        .repo(OWNER, REPO)
        .token(TOKEN, true)
        .immutable(true)
        .hang_for(hang)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let assets = make_assets(dir.path(), 5);
    server.fail_request(k, fault);
    let mut cfg = test_config(server.api_url());
    if !retries {
        cfg.retry.max_attempts = 1;
    }
    if fault == Fault::Hang {
        cfg.request_timeout = Duration::from_millis(300);
    }
    let started = Instant::now();
    let first =
        client_with(&server, TOKEN, cfg).publish_release(&plan(assets.clone()), &|_, _, _| {});
    let took = started.elapsed();
    if retries {
        // One fault is always absorbed by retrying.
        first.as_ref().unwrap_or_else(|e| panic!("{ctx}: {e}"));
    }
    let published = assert_never_published_incomplete(&server, &assets, &ctx);
    if first.is_ok() {
        assert!(published, "{ctx}: Ok but not published");
    }
    if let Err(e) = &first {
        assert!(
            !published || matches!(fault, Fault::ResetAfterEffect),
            "{ctx}: {e}"
        );
    }

    let second = client(&server).publish_release(&plan(assets.clone()), &|_, _, _| {});
    second.unwrap_or_else(|e| panic!("{ctx}: re-run failed: {e}"));
    assert!(assert_never_published_incomplete(&server, &assets, &ctx));
    let drafts_left = server
        .releases(OWNER, REPO)
        .iter()
        .filter(|r| r.draft)
        .count();
    assert_eq!(drafts_left, 0, "{ctx}: a stray draft was created");
    assert_no_duplicates_no_deletes(&server.log(), &ctx);
    // The fault really happened (the run reached request k).
    assert!(
        server
            .log()
            .iter()
            .any(|e| e.number == k && e.fault == Some(fault)),
        "{ctx}: fault never triggered"
    );
    took
}

/// Runs `sweep_case` for k = 1..=n on a few threads: the cases are
/// independent servers, and most of their time is waiting.
fn sweep(fault: Fault, retries: bool) {
    let n = count_requests_of_clean_publish(5);
    assert!(
        n >= 10,
        "a clean publish of 5 assets took only {n} requests"
    );
    let ks: Vec<u64> = (1..=n).collect();
    std::thread::scope(|s| {
        for chunk in ks.chunks(ks.len().div_ceil(6)) {
            s.spawn(move || {
                for &k in chunk {
                    sweep_case(fault, k, retries, Duration::from_secs(2));
                }
            });
        }
    });
}

#[test]
fn sweep_server_error() {
    sweep(Fault::ServerError, true);
    sweep(Fault::ServerError, false);
}

#[test]
fn sweep_bad_gateway() {
    sweep(Fault::BadGateway, true);
    sweep(Fault::BadGateway, false);
}

#[test]
fn sweep_rate_limited_retry_after() {
    sweep(Fault::RateLimited, true);
    sweep(Fault::RateLimited, false);
}

#[test]
fn sweep_rate_limit_exhausted() {
    sweep(Fault::RateLimitExhausted, true);
    sweep(Fault::RateLimitExhausted, false);
}

#[test]
fn sweep_reset() {
    sweep(Fault::Reset, true);
    sweep(Fault::Reset, false);
}

#[test]
fn sweep_reset_after_effect() {
    sweep(Fault::ResetAfterEffect, true);
    sweep(Fault::ResetAfterEffect, false);
}

#[test]
fn hang_longer_than_timeout_is_retried() {
    // Request 4 is the draft creation, request 7 one of the uploads. The
    // server would hang for 5 s; the client must give up after its 0.3 s
    // timeout and retry instead of waiting for the connection to close.
    std::thread::scope(|s| {
        for k in [4, 7] {
            s.spawn(move || {
                let took = sweep_case(Fault::Hang, k, true, Duration::from_secs(5));
                assert!(took < Duration::from_secs(3), "hang at {k} took {took:?}");
            });
        }
    });
}

#[test]
fn retry_after_is_honoured() {
    let server = GitHubServer::start();
    server.fail_request(1, Fault::RateLimited);
    let started = Instant::now();
    client(&server).check_access().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(server.request_count(), 2);
}

#[test]
fn published_release_is_refused_before_anything_is_created() {
    let server = GitHubServer::start();
    server.seed_release(OWNER, REPO, TAG, false, &[("old.tar.gz", b"old")]);
    let dir = tempfile::tempdir().unwrap();
    let err = client(&server)
        .publish_release(&plan(make_assets(dir.path(), 2)), &|_, _, _| {})
        .unwrap_err();
    assert!(
        matches!(err, GithubError::AlreadyPublished { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("releases are immutable: cut a new tag"),
        "{err}"
    );
    assert!(
        server.log().iter().all(|e| e.method == "GET"),
        "{:#?}",
        server.log()
    );
    assert_eq!(server.releases(OWNER, REPO).len(), 1);
}

#[test]
fn draft_with_differing_asset_is_refused_naming_it() {
    let server = GitHubServer::start();
    let dir = tempfile::tempdir().unwrap();
    let assets = make_assets(dir.path(), 3);
    let bad_name = assets[1].name.clone();
    let good = std::fs::read(&assets[0].path).unwrap();
    server.seed_release(
        OWNER,
        REPO,
        TAG,
        true,
        &[
            (assets[0].name.as_str(), &good),
            (bad_name.as_str(), b"stale bytes"),
        ],
    );
    let err = client(&server)
        .publish_release(&plan(assets), &|_, _, _| {})
        .unwrap_err();
    assert!(matches!(err, GithubError::AssetsDiffer { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&bad_name), "{text}");
    assert!(text.contains("never deletes"), "{text}");
    // Nothing uploaded, patched or deleted.
    assert!(
        server.log().iter().all(|e| e.method == "GET"),
        "{:#?}",
        server.log()
    );
    assert!(server.releases(OWNER, REPO)[0].draft);
}

#[test]
fn draft_with_foreign_asset_is_refused_naming_it() {
    let server = GitHubServer::start();
    server.seed_release(OWNER, REPO, TAG, true, &[("notes.txt", b"hello")]);
    let dir = tempfile::tempdir().unwrap();
    let err = client(&server)
        .publish_release(&plan(make_assets(dir.path(), 1)), &|_, _, _| {})
        .unwrap_err();
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert!(server.log().iter().all(|e| e.method == "GET"));
}

#[test]
fn existing_draft_is_reused_and_matching_assets_kept() {
    let server = GitHubServer::start();
    let dir = tempfile::tempdir().unwrap();
    let assets = make_assets(dir.path(), 3);
    let first = std::fs::read(&assets[0].path).unwrap();
    let id = server.seed_release(OWNER, REPO, TAG, true, &[(assets[0].name.as_str(), &first)]);
    let report = client(&server)
        .publish_release(&plan(assets.clone()), &|_, _, _| {})
        .unwrap();
    assert_eq!(report.release.id, id);
    assert_eq!(report.kept, vec![assets[0].name.clone()]);
    assert_eq!(report.uploaded.len(), 2);
    assert!(assert_never_published_incomplete(&server, &assets, "reuse"));
    assert!(
        !server
            .log()
            .iter()
            .any(|e| e.method == "POST" && e.listener == Listener::Api)
    );
}

#[test]
fn several_drafts_for_the_tag_are_refused() {
    let server = GitHubServer::start();
    let a = server.seed_release(OWNER, REPO, TAG, true, &[]);
    let b = server.seed_release(OWNER, REPO, TAG, true, &[]);
    let dir = tempfile::tempdir().unwrap();
    let err = client(&server)
        .publish_release(&plan(make_assets(dir.path(), 1)), &|_, _, _| {})
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, GithubError::SeveralDrafts { .. }), "{err:?}");
    assert!(
        text.contains(&a.to_string()) && text.contains(&b.to_string()),
        "{text}"
    );
    assert!(server.log().iter().all(|e| e.method == "GET"));
}

#[test]
fn drafts_are_found_beyond_the_first_page() {
    let server = GitHubServer::start();
    let draft = server.seed_release(OWNER, REPO, TAG, true, &[]);
    for i in 0..150 {
        server.seed_release(OWNER, REPO, &format!("v0.{i}.0"), false, &[]);
    }
    match client(&server).find_release(TAG).unwrap() {
        FoundRelease::Draft(r) => assert_eq!(r.id, draft),
        other => panic!("{other:?}"),
    }
    let pages = server
        .log()
        .iter()
        .filter(|e| e.path.contains("/releases?"))
        .count();
    assert_eq!(pages, 2);
    assert!(matches!(
        client(&server).find_release("v9").unwrap(),
        FoundRelease::Absent
    ));
    assert!(matches!(
        client(&server).find_release("v0.3.0").unwrap(),
        FoundRelease::Published(_)
    ));
}

#[test]
fn enterprise_prefixes_and_upload_override() {
    // Releases advertise an upload host where nothing listens: only the
    // GITHUB_UPLOAD_URL override can make the uploads land.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/api/uploads", probe.local_addr().unwrap());
    drop(probe);
    let server = GitHubServer::builder()
        .repo(OWNER, REPO)
        .token(TOKEN, true)
        .api_prefix("/api/v3")
        .upload_prefix("/api/uploads")
        .advertise_upload_base(&dead)
        .start();
    assert!(server.api_url().ends_with("/api/v3"));
    let dir = tempfile::tempdir().unwrap();
    let assets = make_assets(dir.path(), 2);
    let mut cfg = test_config(server.api_url());
    cfg.upload_url = Some(server.upload_url());
    client_with(&server, TOKEN, cfg)
        .publish_release(&plan(assets.clone()), &|_, _, _| {})
        .unwrap();
    assert!(assert_never_published_incomplete(
        &server,
        &assets,
        "enterprise"
    ));
    assert!(server.log().iter().all(|e| e.path.starts_with("/api/")));
}

#[test]
fn large_upload_streams_with_progress() {
    let server = GitHubServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let data: Vec<u8> = (0..24 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let gh = client(&server);
    let release = gh.create_draft(TAG, "n", "b", false).unwrap();
    let calls = Mutex::new(Vec::new());
    let asset = gh
        .upload_asset(&release, "big.bin", &path, &|sent, total| {
            calls.lock().unwrap().push((sent, total));
        })
        .unwrap();
    let (size, digest) = digest_of(&path);
    assert_eq!(asset.size, size);
    assert_eq!(asset.digest.as_deref(), Some(digest.as_str()));
    let calls = calls.into_inner().unwrap();
    assert_eq!(calls.last(), Some(&(size, size)));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[test]
fn client_errors_fail_at_once_quoting_github() {
    let server = GitHubServer::builder()
        .repo(OWNER, REPO)
        .token(TOKEN, true)
        .immutable(true)
        .start();
    let id = server.seed_release(OWNER, REPO, TAG, false, &[]);
    let dir = tempfile::tempdir().unwrap();
    let assets = make_assets(dir.path(), 1);
    let gh = client(&server);
    let release = match gh.find_release(TAG).unwrap() {
        FoundRelease::Published(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(release.id, id);
    let before = server.request_count();
    let err = gh
        .upload_asset(&release, &assets[0].name, &assets[0].path, &|_, _| {})
        .unwrap_err();
    assert_eq!(
        server.request_count(),
        before + 1,
        "a 422 must not be retried"
    );
    let text = err.to_string();
    assert!(
        matches!(err, GithubError::Api { status: 422, .. }),
        "{err:?}"
    );
    assert!(
        text.contains("Cannot upload assets to an immutable release"),
        "{text}"
    );

    // A second draft for a tag is fine; a duplicate published tag is a 422
    // whose code is quoted.
    let err = gh
        .publish(gh.create_draft(TAG, "n", "b", false).unwrap().id, false)
        .unwrap_err();
    assert!(err.to_string().contains("already_exists"), "{err}");
}

#[test]
fn access_problems_are_named() {
    let server = GitHubServer::start();
    server.add_token("ghp_readonly_TOKEN_abc", false);

    let err = client_with(
        &server,
        "ghp_wrong_TOKEN_zzz",
        test_config(server.api_url()),
    )
    .check_access()
    .unwrap_err();
    assert!(matches!(err, GithubError::BadCredentials { .. }), "{err:?}");
    assert!(err.to_string().contains("Bad credentials"));

    let err = client_with(
        &server,
        "ghp_readonly_TOKEN_abc",
        test_config(server.api_url()),
    )
    .check_access()
    .unwrap_err();
    assert!(matches!(err, GithubError::NoPushAccess { .. }), "{err:?}");

    let err = GitHub::new(
        Token::new(TOKEN).unwrap(),
        Repo::new(OWNER, "nope").unwrap(),
        test_config(server.api_url()),
    )
    .unwrap()
    .check_access()
    .unwrap_err();
    assert!(matches!(err, GithubError::RepoNotFound { .. }), "{err:?}");
}

#[test]
fn token_never_appears_in_errors_or_debug() {
    let secret = "ghp_SUPERsecretTOKENvalue_42";
    let server = GitHubServer::start();
    let mut texts = Vec::new();

    let token = Token::new(secret).unwrap();
    texts.push(format!("{token:?}"));
    let gh = client_with(&server, secret, test_config(server.api_url()));
    texts.push(format!("{gh:?}"));
    let e = gh.check_access().unwrap_err();
    texts.push(format!("{e} {e:?}"));

    // Transient failures until the budget runs out.
    server.add_token(secret, true);
    for k in 1..=10 {
        server.fail_request(server.request_count() + k, Fault::ServerError);
    }
    let e = gh.check_access().unwrap_err();
    assert!(matches!(e, GithubError::GaveUp { .. }), "{e:?}");
    texts.push(format!("{e} {e:?}"));

    // Connection errors carry library text: the token must not be there either.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let e = client_with(&server, secret, test_config(dead))
        .check_access()
        .unwrap_err();
    texts.push(format!("{e} {e:?}"));

    for t in &texts {
        assert!(!t.contains(secret), "token leaked: {t}");
        assert!(!t.contains("SUPERsecret"), "token leaked: {t}");
    }
}

#[test]
fn invalid_plans_fail_before_any_request() {
    let server = GitHubServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("has space.tar.gz");
    std::fs::write(&path, b"x").unwrap();
    let p = plan(vec![PlannedAsset::from_path(&path).unwrap()]);
    let err = client(&server)
        .publish_release(&p, &|_, _, _| {})
        .unwrap_err();
    assert!(err.to_string().contains("has space.tar.gz"), "{err}");
    let p = plan(vec![PlannedAsset {
        name: "missing.tar.gz".into(),
        path: dir.path().join("missing.tar.gz"),
        sha256: None,
    }]);
    let err = client(&server)
        .publish_release(&p, &|_, _, _| {})
        .unwrap_err();
    assert!(matches!(err, GithubError::ReadFile { .. }), "{err:?}");
    assert_eq!(server.request_count(), 0);
}

/// A bare HTTP/1.1 client, to check the fake's own GitHub behaviour
/// independently of the client under test.
struct Raw {
    out: std::net::TcpStream,
    reader: std::io::BufReader<std::net::TcpStream>,
}

impl Raw {
    fn connect(base: &str) -> Raw {
        let addr = base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let out = std::net::TcpStream::connect(addr).unwrap();
        let reader = std::io::BufReader::new(out.try_clone().unwrap());
        Raw { out, reader }
    }

    /// Sends one request on the kept-alive connection; returns status, headers, body.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &[u8],
        chunked: bool,
    ) -> (u16, String, serde_json::Value) {
        use std::io::{BufRead, Read, Write};
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n");
        if let Some(a) = auth {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        if chunked {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            self.out.write_all(head.as_bytes()).unwrap();
            for part in body.chunks(7) {
                write!(self.out, "{:x}\r\n", part.len()).unwrap();
                self.out.write_all(part).unwrap();
                self.out.write_all(b"\r\n").unwrap();
            }
            self.out.write_all(b"0\r\n\r\n").unwrap();
        } else {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            self.out.write_all(head.as_bytes()).unwrap();
            self.out.write_all(body).unwrap();
        }
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = String::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            headers.push_str(&line);
        }
        let mut buf = vec![0u8; len];
        self.reader.read_exact(&mut buf).unwrap();
        let json = serde_json::from_slice(&buf).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
    }
}

#[test]
fn fake_github_requires_auth_and_accepts_both_schemes() {
    let server = GitHubServer::start();
    let mut c = Raw::connect(&server.api_url());
    let path = format!("/repos/{OWNER}/{REPO}");
    let (status, _, body) = c.send("GET", &path, None, b"", false);
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Bad credentials"))
    );
    let (status, _, _) = c.send("GET", &path, Some("Bearer nope"), b"", false);
    assert_eq!(status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let (status, _, body) = c.send("GET", &path, Some(&bearer), b"", false);
    assert_eq!(
        (status, body["permissions"]["push"].as_bool()),
        (200, Some(true))
    );
    let (status, _, _) = c.send("GET", &path, Some(&format!("token {TOKEN}")), b"", false);
    assert_eq!(status, 200);
    let (status, _, _) = c.send("GET", "/repos/acme/other", Some(&bearer), b"", false);
    assert_eq!(status, 404);
    // All of the above went over one kept-alive connection.
    assert_eq!(server.request_count(), 5);
}

#[test]
fn fake_github_release_rules() {
    let server = GitHubServer::builder()
        .repo(OWNER, REPO)
        .token(TOKEN, true)
        .immutable(true)
        .start();
    let auth = format!("Bearer {TOKEN}");
    let auth = Some(auth.as_str());
    let mut api = Raw::connect(&server.api_url());
    let releases = format!("/repos/{OWNER}/{REPO}/releases");
    let draft = br#"{"tag_name":"v1","name":"one","body":"b","draft":true,"prerelease":false}"#;

    // Drafts may share a tag (chunked body to exercise that framing too).
    let (s1, _, d1) = api.send("POST", &releases, auth, draft, true);
    let (s2, _, d2) = api.send("POST", &releases, auth, draft, false);
    assert_eq!((s1, s2), (201, 201));
    let upload_url = d1["upload_url"].as_str().unwrap().to_string();
    assert!(upload_url.starts_with(&server.upload_url()));
    assert!(upload_url.ends_with("/assets{?name,label}"));

    // The tag endpoint does not see drafts; the listing does.
    let (s, _, _) = api.send("GET", &format!("{releases}/tags/v1"), auth, b"", false);
    assert_eq!(s, 404);
    let (s, _, list) = api.send("GET", &format!("{releases}?per_page=1"), auth, b"", false);
    assert_eq!((s, list.as_array().unwrap().len()), (200, 1));

    // Upload: digest reported, duplicate names refused.
    let assets = format!("{}?name=a.bin", upload_url.split('{').next().unwrap());
    let assets_path = &assets[server.upload_url().len()..];
    let mut up = Raw::connect(&server.upload_url());
    let (s, _, a) = up.send("POST", assets_path, auth, b"abc", false);
    assert_eq!(s, 201);
    assert_eq!(
        a["digest"].as_str(),
        Some("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(
        (a["size"].as_u64(), a["state"].as_str()),
        (Some(3), Some("uploaded"))
    );
    let (s, _, e) = up.send("POST", assets_path, auth, b"abc", false);
    assert_eq!(
        (s, e["errors"][0]["code"].as_str()),
        (422, Some("already_exists"))
    );

    // Publishing the first draft takes the tag; the twin cannot follow.
    let id1 = d1["id"].as_u64().unwrap();
    let id2 = d2["id"].as_u64().unwrap();
    let publish = br#"{"draft":false}"#;
    let (s, _, r) = api.send("PATCH", &format!("{releases}/{id1}"), auth, publish, false);
    assert_eq!((s, r["draft"].as_bool()), (200, Some(false)));
    let (s, _, _) = api.send("GET", &format!("{releases}/tags/v1"), auth, b"", false);
    assert_eq!(s, 200);
    let (s, _, e) = api.send("PATCH", &format!("{releases}/{id2}"), auth, publish, false);
    assert_eq!(
        (s, e["errors"][0]["code"].as_str()),
        (422, Some("already_exists"))
    );
    let published = br#"{"tag_name":"v1","draft":false}"#;
    let (s, _, _) = api.send("POST", &releases, auth, published, false);
    assert_eq!(s, 422);

    // Immutable: no more uploads or deletes on the published release.
    let (s, _, _) = up.send(
        "POST",
        &assets_path.replace("a.bin", "b.bin"),
        auth,
        b"x",
        false,
    );
    assert_eq!(s, 422);
    let asset_id = a["id"].as_u64().unwrap();
    let (s, _, _) = api.send(
        "DELETE",
        &format!("{releases}/assets/{asset_id}"),
        auth,
        b"",
        false,
    );
    assert_eq!(s, 422);
    assert_eq!(
        server
            .releases(OWNER, REPO)
            .iter()
            .map(|r| r.assets.len())
            .sum::<usize>(),
        1
    );
}

#[test]
fn fake_github_faults_have_no_effect_except_reset_after_effect() {
    let server = GitHubServer::start();
    let auth = format!("Bearer {TOKEN}");
    let releases = format!("/repos/{OWNER}/{REPO}/releases");
    let body = br#"{"tag_name":"v1","draft":true}"#;
    for fault in [
        Fault::ServerError,
        Fault::BadGateway,
        Fault::RateLimited,
        Fault::RateLimitExhausted,
    ] {
        let k = server.request_count() + 1;
        server.fail_request(k, fault);
        let (s, headers, _) =
            Raw::connect(&server.api_url()).send("POST", &releases, Some(&auth), body, false);
        assert!(s >= 403, "{fault:?}: {s}");
        if fault == Fault::RateLimited {
            assert!(headers.contains("Retry-After: 1"), "{headers}");
        }
    }
    assert!(server.releases(OWNER, REPO).is_empty());
    for (fault, effect) in [(Fault::Reset, false), (Fault::ResetAfterEffect, true)] {
        let before = server.releases(OWNER, REPO).len();
        server.fail_request(server.request_count() + 1, fault);
        let mut c = Raw::connect(&server.api_url());
        use std::io::{Read, Write};
        let req = format!(
            "POST {releases} HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        c.out.write_all(req.as_bytes()).unwrap();
        c.out.write_all(body).unwrap();
        let mut rest = Vec::new();
        let _ = c.reader.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{fault:?} sent a response");
        assert_eq!(
            server.releases(OWNER, REPO).len(),
            before + usize::from(effect),
            "{fault:?}"
        );
    }
}

#[test]
fn a_file_that_changed_since_it_was_verified_is_refused_before_any_request() {
    let server = GitHubServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut assets = make_assets(dir.path(), 2);
    let (_, digest) = digest_of(&assets[1].path);
    assets[0].sha256 = Some(digest.trim_start_matches("sha256:").to_string());
    let err = client(&server)
        .publish_release(&plan(assets.clone()), &|_, _, _| {})
        .unwrap_err();
    assert!(matches!(err, GithubError::Changed { .. }), "{err:?}");
    assert!(err.to_string().contains(&assets[0].name), "{err}");
    assert_eq!(server.request_count(), 0);
}

#[test]
fn a_rehearsal_describes_every_request_of_a_publish_and_sends_none() {
    let server = GitHubServer::start();
    let dir = tempfile::tempdir().unwrap();
    let assets = make_assets(dir.path(), 3);
    let cfg = test_config(server.api_url());
    let repo = Repo::new(OWNER, REPO).unwrap();
    let described = xrelease::github::rehearse(Some(&repo), &cfg, &plan(assets.clone())).unwrap();
    assert_eq!(server.request_count(), 0);

    client(&server)
        .publish_release(&plan(assets.clone()), &|_, _, _| {})
        .unwrap();
    let sent: Vec<(String, String)> = server
        .log()
        .iter()
        .map(|e| {
            (
                e.method.clone(),
                e.path.split('?').next().unwrap().to_string(),
            )
        })
        .collect();
    let planned: Vec<(String, String)> = described
        .iter()
        .map(|r| {
            let path = r.url.split('?').next().unwrap();
            let path = &path[path.find("/repos/").unwrap()..];
            (r.method.to_string(), path.to_string())
        })
        .collect();
    // Same requests, in the same order, once the draft's id is known (uploads may finish in
    // any order, so compare them as a set).
    let id = server.releases(OWNER, REPO)[0].id.to_string();
    let planned: Vec<(String, String)> = planned
        .into_iter()
        .map(|(m, p)| (m, p.replace("{release_id}", &id)))
        .collect();
    let key = |v: &Vec<(String, String)>| {
        let mut v = v.clone();
        v.sort();
        v
    };
    assert_eq!(key(&planned), key(&sent));
    assert_eq!(planned.first(), sent.first());
    assert_eq!(planned.last(), sent.last());
    for (r, a) in described.iter().filter(|r| r.size.is_some()).zip(&assets) {
        assert_eq!(r.digest.clone().unwrap(), digest_of(&a.path).1);
    }
}

/// Keyless releases store their attestation bundles first, then publish. Bundles shaped as
/// GitHub indexes them: a DSSE envelope over an in-toto statement naming one subject.
fn attestation_uploads(assets: &[PlannedAsset]) -> Vec<AttestationUpload> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    assets
        .iter()
        .take(3)
        .enumerate()
        .map(|(i, a)| {
            let (_, digest) = digest_of(&a.path);
            let hex = digest.trim_start_matches("sha256:").to_string();
            let statement = serde_json::json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": a.name, "digest": {"sha256": hex}}],
                "predicateType": "https://slsa.dev/provenance/v1",
                "predicate": {"n": i},
            });
            let bundle = serde_json::json!({
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "verificationMaterial": {},
                "dsseEnvelope": {
                    "payload": b64.encode(statement.to_string()),
                    "payloadType": "application/vnd.in-toto+json",
                    "signatures": [{"sig": b64.encode(format!("signature {i}"))}],
                },
            });
            AttestationUpload {
                name: format!("{}.intoto.jsonl", a.name),
                subject_sha256: hex,
                bundle,
            }
        })
        .collect()
}

/// What the publish stage does for a keyless release: store the attestations, then publish.
fn store_then_publish(
    gh: &GitHub,
    uploads: &[AttestationUpload],
    assets: &[PlannedAsset],
) -> Result<(), GithubError> {
    gh.store_attestations(uploads)?;
    gh.publish_release(&plan(assets.to_vec()), &|_, _, _| {})?;
    Ok(())
}

/// One case of the attestation sweep: `fault` at request `k` of store-then-publish, then a clean
/// re-run. Afterwards each bundle is stored exactly once, and no release was published before
/// every attestation was stored.
fn attestation_sweep_case(fault: Fault, k: u64, retries: bool) {
    let ctx = format!("{fault:?} at request {k} (retries: {retries})");
    let server = GitHubServer::builder()
        .repo(OWNER, REPO)
        .token(TOKEN, true)
        .immutable(true)
        .hang_for(Duration::from_secs(2))
        .start();
    let dir = tempfile::tempdir().unwrap();
    let assets = make_assets(dir.path(), 4);
    let uploads = attestation_uploads(&assets);
    server.fail_request(k, fault);
    let mut cfg = test_config(server.api_url());
    if !retries {
        cfg.retry.max_attempts = 1;
    }
    if fault == Fault::Hang {
        cfg.request_timeout = Duration::from_millis(300);
    }
    let first = store_then_publish(&client_with(&server, TOKEN, cfg), &uploads, &assets);
    if retries {
        first.as_ref().unwrap_or_else(|e| panic!("{ctx}: {e}"));
    }
    let published = assert_never_published_incomplete(&server, &assets, &ctx);
    if published {
        assert_eq!(
            server.attestations(OWNER, REPO).len(),
            uploads.len(),
            "{ctx}: published with a different number of attestations stored than bundles (each exactly once)"
        );
    }

    store_then_publish(&client(&server), &uploads, &assets)
        .unwrap_or_else(|e| panic!("{ctx}: re-run failed: {e}"));
    assert!(assert_never_published_incomplete(&server, &assets, &ctx));
    let stored = server.attestations(OWNER, REPO);
    assert_eq!(
        stored.len(),
        uploads.len(),
        "{ctx}: {} attestations stored for {} bundles",
        stored.len(),
        uploads.len()
    );
    for up in &uploads {
        let n = stored
            .iter()
            .filter(|s| s.bundle["dsseEnvelope"] == up.bundle["dsseEnvelope"])
            .count();
        assert_eq!(n, 1, "{ctx}: {} stored {n} times", up.name);
    }
    assert_no_duplicates_no_deletes(&server.log(), &ctx);
    assert!(
        server
            .log()
            .iter()
            .any(|e| e.number == k && e.fault == Some(fault)),
        "{ctx}: fault never triggered"
    );
}

#[test]
fn attestation_store_then_publish_survives_a_fault_at_every_request() {
    let n = {
        let server = GitHubServer::start();
        let dir = tempfile::tempdir().unwrap();
        let assets = make_assets(dir.path(), 4);
        store_then_publish(&client(&server), &attestation_uploads(&assets), &assets).unwrap();
        let attestation_requests = server
            .log()
            .iter()
            .filter(|e| e.path.contains("/attestations"))
            .count();
        assert_eq!(
            attestation_requests, 6,
            "a clean run lists then stores each of the 3 bundles"
        );
        server.request_count()
    };
    let cases: Vec<(Fault, u64, bool)> = Fault::ALL
        .iter()
        .flat_map(|&f| [true, false].map(move |r| (f, r)))
        .flat_map(|(f, r)| (1..=n).map(move |k| (f, k, r)))
        .collect();
    std::thread::scope(|s| {
        for chunk in cases.chunks(cases.len().div_ceil(8)) {
            s.spawn(move || {
                for &(fault, k, retries) in chunk {
                    attestation_sweep_case(fault, k, retries);
                }
            });
        }
    });
}
