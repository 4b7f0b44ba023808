//! A loopback Sigstore for tests: runs `server.mjs` (@sigstore/mock's Fulcio and Rekor, an
//! `openssl ts` timestamp authority) and sigstore-js's verifier.
//!
//! The Node packages are installed beside the scripts by `scripts/setup.sh` (`npm ci`). Each
//! server is a child of the test process and exits when its stdin closes, so even a crashed test
//! leaves nothing running.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The GitHub Actions OIDC issuer.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The identity Fulcio certifies for the server's default GitHub claims.
pub const WORKFLOW_IDENTITY: &str =
    "https://github.com/o/r/.github/workflows/release.yml@refs/tags/v1.0.0";
/// `GITHUB_WORKFLOW_REF` matching [`WORKFLOW_IDENTITY`].
pub const WORKFLOW_REF: &str = "o/r/.github/workflows/release.yml@refs/tags/v1.0.0";

/// The Node scripts and their `node_modules` (installed by `scripts/setup.sh` with `npm ci`).
fn install_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sigstore");
        assert!(
            dir.join("node_modules/@sigstore/mock").is_dir()
                && dir.join("node_modules/@sigstore/verify").is_dir(),
            "the keyless tests need Node.js >= 20.17 and the packages of {}: run `bash scripts/setup.sh` \
             (or `npm ci` in that directory)",
            dir.display()
        );
        dir
    })
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Seconds added to the CA's and CT log's clock (negative: certificates from the past).
    pub ca_clock_skew_secs: i64,
    /// Claims merged over the GitHub defaults in tokens from the Actions token endpoint.
    pub claims: Option<serde_json::Value>,
}

/// A running loopback Sigstore.
pub struct Sigstore {
    child: Child,
    stdin: Option<ChildStdin>,
    _dir: tempfile::TempDir,
    /// Fulcio base URL.
    pub fulcio_url: String,
    /// Rekor base URL.
    pub rekor_url: String,
    /// The RFC 3161 timestamp endpoint.
    pub tsa_url: String,
    /// What GitHub Actions puts in ACTIONS_ID_TOKEN_REQUEST_URL.
    pub token_request_url: String,
    /// What GitHub Actions puts in ACTIONS_ID_TOKEN_REQUEST_TOKEN.
    pub token_request_token: String,
    /// This instance's trusted root.
    pub trusted_root: PathBuf,
    /// A root with the same names and URLs but other keys.
    pub other_trusted_root: PathBuf,
    /// A signing config v0.2 listing this Fulcio, Rekor (v1) and TSA.
    pub signing_config: PathBuf,
}

impl Sigstore {
    /// Starts a server with default options.
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    /// Starts a server.
    pub fn start_with(options: Options) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let trusted_root = dir.path().join("trusted_root.json");
        let other_trusted_root = dir.path().join("other_trusted_root.json");
        let signing_config = dir.path().join("signing_config.v0.2.json");
        let mut command = Command::new("node");
        command
            .arg(install_dir().join("server.mjs"))
            .arg(&trusted_root)
            .arg("--other-root")
            .arg(&other_trusted_root)
            .arg("--signing-config")
            .arg(&signing_config)
            .arg("--ca-clock-skew")
            .arg(options.ca_clock_skew_secs.to_string());
        if let Some(claims) = &options.claims {
            command.arg("--claims").arg(claims.to_string());
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the keyless tests need Node.js on PATH");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let info: serde_json::Value = match serde_json::from_str(&line) {
            Ok(info) => info,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the Sigstore test server did not start (first line: {line:?}); see its stderr above"
                );
            }
        };
        let field = |name: &str| info[name].as_str().expect(name).to_owned();
        Self {
            stdin: child.stdin.take(),
            child,
            _dir: dir,
            fulcio_url: field("fulcio_url"),
            rekor_url: field("rekor_url"),
            tsa_url: field("tsa_url"),
            token_request_url: field("token_request_url"),
            token_request_token: field("token_request_token"),
            trusted_root,
            other_trusted_root,
            signing_config,
        }
    }

    /// A GitHub Actions environment pointing at this server's token endpoint.
    pub fn actions_env(&self) -> Vec<(String, String)> {
        vec![
            ("GITHUB_ACTIONS".into(), "true".into()),
            ("GITHUB_WORKFLOW_REF".into(), WORKFLOW_REF.into()),
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL".into(),
                self.token_request_url.clone(),
            ),
            (
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN".into(),
                self.token_request_token.clone(),
            ),
        ]
    }
}

impl Drop for Sigstore {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Looks variables up in `vars` (tests never touch the process environment).
pub fn env_from(vars: Vec<(String, String)>) -> impl Fn(&str) -> Option<String> {
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// GitHub Actions' claims for a tag-push release run of `o/r`.
pub fn github_claims() -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    serde_json::json!({
        "iss": GITHUB_ISSUER,
        "sub": "repo:o/r:ref:refs/tags/v1.0.0",
        "aud": "sigstore",
        "iat": now,
        "exp": now + 300,
        "repository": "o/r",
        "repository_owner": "o",
        "ref": "refs/tags/v1.0.0",
        "sha": "a".repeat(40),
        "event_name": "push",
        "workflow": "release",
        "workflow_ref": WORKFLOW_REF,
        "job_workflow_ref": WORKFLOW_REF,
        "runner_environment": "github-hosted",
    })
}

/// An unsigned JWT (`alg: none`) with `claims`: the mock decodes tokens but does not verify them.
pub fn unsigned_jwt(claims: &serde_json::Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// Runs sigstore-js's verifier on a bundle file; `Ok(its output)` if it accepts.
pub fn reference_verify(
    bundle: &Path,
    artifact: Option<&Path>,
    trusted_root: &Path,
    identity: &str,
    issuer: &str,
) -> Result<String, String> {
    let mut command = Command::new("node");
    command
        .arg(install_dir().join("verify.mjs"))
        .arg("--bundle")
        .arg(bundle)
        .arg("--trusted-root")
        .arg(trusted_root)
        .args(["--identity", identity, "--issuer", issuer]);
    if let Some(artifact) = artifact {
        command.arg("--artifact").arg(artifact);
    }
    let output = command.output().expect("run node verify.mjs");
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Runs sigstore-python's CLI (`python3 -m sigstore`, installed from tests/requirements.txt)
/// offline on a bundle, with a ClientTrustConfig wrapping `trusted_root`; `Ok(its output)` if it
/// accepts. For DSSE bundles `artifact` must be a subject of the in-toto statement.
pub fn sigstore_python_verify(
    bundle: &Path,
    artifact: &Path,
    trusted_root: &Path,
    identity: &str,
    issuer: &str,
) -> Result<String, String> {
    let root: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(trusted_root).expect("read root"))
            .expect("root json");
    let url = root["tlogs"][0]["baseUrl"].clone();
    let service = serde_json::json!([{"url": url, "majorApiVersion": 1,
        "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "test"}]);
    let config = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": root,
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": service, "oidcUrls": [], "rekorTlogUrls": service, "tsaUrls": [],
            "rekorTlogConfig": {"selector": "ANY"}, "tsaConfig": {"selector": "ANY"}
        }
    });
    let scratch = tempfile::tempdir().expect("tempdir");
    let config_path = scratch.path().join("trust_config.json");
    std::fs::write(&config_path, config.to_string()).expect("write trust config");
    let output = Command::new("python3")
        .args(["-m", "sigstore", "--trust-config"])
        .arg(&config_path)
        .args(["verify", "identity", "--offline", "--bundle"])
        .arg(bundle)
        .args(["--cert-identity", identity, "--cert-oidc-issuer", issuer])
        .arg(artifact)
        .output()
        .expect("run python3 -m sigstore");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}
