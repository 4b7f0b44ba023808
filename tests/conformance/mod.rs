//! The Sigstore conformance suite's bundle-verification cases through `xrelease verify-bundle`,
//! driven as the suite drives a client (its CLI protocol): every case by the artifact's path and
//! by its `sha256:` digest, 140 runs. A `_fail` case must be refused (exit 3), every other case
//! verified (exit 0). The data and its README are in `tests/fixtures/sigstore-conformance/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};

use crate::support::repo_root;

/// The suite's defaults for cases that ship no `identity`/`issuer` file (its README).
const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// `_fail` cases whose refusal comes before any verification, because what the suite hands the
/// client is itself malformed: bad usage (exit 2), not a refused bundle (exit 3). Here the
/// "wrong key" is not a valid base64 key at all.
const BAD_USAGE: &[&str] = &["managed-key-wrong-key_fail"];

fn data() -> PathBuf {
    repo_root().join("tests/fixtures/sigstore-conformance")
}

/// One case: the protocol's flags, read from the case directory or defaulted.
struct Case {
    name: String,
    dir: PathBuf,
    artifact: PathBuf,
}

impl Case {
    fn file(&self, name: &str) -> Option<PathBuf> {
        let path = self.dir.join(name);
        path.is_file().then_some(path)
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.file(name)
            .map(|p| std::fs::read_to_string(p).unwrap().trim().to_owned())
            .unwrap_or_else(|| default.to_owned())
    }

    fn args(&self, artifact: String) -> Vec<String> {
        let mut args = vec![
            "verify-bundle".to_owned(),
            "--bundle".to_owned(),
            self.dir.join("bundle.sigstore.json").display().to_string(),
        ];
        match self.file("key.pub") {
            Some(key) => args.extend(["--key".to_owned(), key.display().to_string()]),
            None => args.extend([
                "--certificate-identity".to_owned(),
                self.text("identity", DEFAULT_IDENTITY),
                "--certificate-oidc-issuer".to_owned(),
                self.text("issuer", DEFAULT_ISSUER),
            ]),
        }
        let root = self
            .file("trusted_root.json")
            .unwrap_or_else(|| data().join("production_trusted_root.json"));
        args.extend(["--trusted-root".to_owned(), root.display().to_string()]);
        args.push(artifact);
        args
    }

    /// The exit code the case must end with.
    fn expected_exit(&self) -> i32 {
        if BAD_USAGE.contains(&self.name.as_str()) {
            2
        } else if self.name.ends_with("_fail") {
            3
        } else {
            0
        }
    }
}

fn cases() -> Vec<Case> {
    let root = data().join("bundle-verify");
    let mut cases: Vec<Case> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|dir| {
            let own = dir.join("artifact");
            Case {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                artifact: if own.is_file() {
                    own
                } else {
                    root.join("a.txt")
                },
                dir,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

fn sha256_of(path: &Path) -> String {
    format!("sha256:{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn every_conformance_case_by_path_and_by_digest() {
    let cases = cases();
    assert_eq!(cases.len(), 70, "the suite's 70 bundle-verification cases");
    let runs: Vec<(String, Vec<String>, i32)> = cases
        .iter()
        .flat_map(|case| {
            [
                (
                    format!("{} (path)", case.name),
                    case.args(case.artifact.display().to_string()),
                    case.expected_exit(),
                ),
                (
                    format!("{} (digest)", case.name),
                    case.args(sha256_of(&case.artifact)),
                    case.expected_exit(),
                ),
            ]
        })
        .collect();
    // Two workers: each run is a short process, and the machine's cores are shared.
    let (left, right) = runs.split_at(runs.len() / 2);
    let wrong: Vec<String> = std::thread::scope(|s| {
        let workers = [left, right].map(|share| {
            s.spawn(move || {
                share
                    .iter()
                    .filter_map(|(name, args, expected)| {
                        let out = Command::new(env!("CARGO_BIN_EXE_xrelease"))
                            .args(args)
                            .output()
                            .unwrap();
                        (out.status.code() != Some(*expected)).then(|| {
                            format!(
                                "{name}: exit {:?}, expected {expected}: {}",
                                out.status.code(),
                                String::from_utf8_lossy(&out.stderr).trim()
                            )
                        })
                    })
                    .collect::<Vec<_>>()
            })
        });
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(
        wrong.is_empty(),
        "{}/{} conformance runs behaved as the suite expects; these did not:\n{}",
        runs.len() - wrong.len(),
        runs.len(),
        wrong.join("\n")
    );
}
