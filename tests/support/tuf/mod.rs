//! Test support: a TUF repository made and mutated by python-tuf, the reference implementation
//! (`repo.py`), served as static files from 127.0.0.1 with a log of what was requested.

#![allow(dead_code)] // tests use different subsets

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A repository in a temporary directory, served over HTTP until the test process ends.
pub struct TufRepo {
    dir: tempfile::TempDir,
    /// Base URL: metadata at `URL/N.root.json`, targets at `URL/targets/`.
    pub url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TufRepo {
    /// `repo.py init` with `target` as `trusted_root.json` and `signing_config` (if any) as
    /// `signing_config.v0.2.json`, and a server for `DIR/repo`.
    pub fn init(target: &Path, signing_config: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Self::serve(dir);
        let dir = repo.dir().display().to_string();
        let target = target.display().to_string();
        let mut args = vec!["init", &dir, "--target", &target];
        let signing_config = signing_config.map(|p| p.display().to_string());
        if let Some(path) = &signing_config {
            args.extend(["--signing-config", path]);
        }
        repo.run(&args);
        repo
    }

    /// `repo.py SUBCOMMAND DIR ARGS...`: a legitimate update or an attack (see repo.py).
    pub fn mutate(&self, subcommand: &str, args: &[&str]) {
        let dir = self.dir().display().to_string();
        let mut all = vec![subcommand, dir.as_str()];
        all.extend_from_slice(args);
        self.run(&all);
    }

    /// A legitimate release of a new `trusted_root.json`: `repo.py update-target`.
    pub fn update_target(&self, target: &Path) {
        self.update_named("trusted_root.json", target);
    }

    /// A legitimate release of a new version of target `name`.
    pub fn update_named(&self, name: &str, target: &Path) {
        let args = ["--target", target.to_str().unwrap(), "--name", name];
        self.mutate("update-target", &args);
    }

    /// The trust anchor a client is given (`--tuf-root`).
    pub fn initial_root(&self) -> PathBuf {
        self.dir().join("initial-root.json")
    }

    /// A file as served.
    pub fn served(&self, name: &str) -> PathBuf {
        self.dir().join("repo").join(name)
    }

    /// The path of the `trusted_root.json` currently listed (`targets/<sha256>.trusted_root.json`).
    pub fn current_target(&self) -> PathBuf {
        self.current_named("trusted_root.json")
    }

    /// The path of target `name` as currently listed (`targets/<sha256>.<name>`).
    pub fn current_named(&self, name: &str) -> PathBuf {
        let state = std::fs::read_to_string(self.dir().join("state.json")).unwrap();
        let state: serde_json::Value = serde_json::from_str(&state).unwrap();
        let version = state["targets"]
            .as_u64()
            .expect("state.json names the targets version");
        let targets =
            std::fs::read_to_string(self.served(&format!("{version}.targets.json"))).unwrap();
        let targets: serde_json::Value = serde_json::from_str(&targets).unwrap();
        let hash = targets["signed"]["targets"][name]["hashes"]["sha256"]
            .as_str()
            .unwrap()
            .to_owned();
        self.served(&format!("targets/{hash}.{name}"))
    }

    /// Paths requested so far, in order (`/timestamp.json`, ...).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/tuf/repo.py");
        let out = Command::new("python3")
            .arg(script)
            .args(args)
            .output()
            .expect("python3 runs tests/support/tuf/repo.py (install: bash scripts/setup.sh)");
        assert!(
            out.status.success(),
            "repo.py {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn serve(dir: tempfile::TempDir) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let root = dir.path().join("repo");
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, log) = (root.clone(), Arc::clone(&log));
                std::thread::spawn(move || serve_connection(stream, &root, &log));
            }
        });
        Self { dir, url, requests }
    }
}

/// GET of a static file: 200 with its bytes, 404 when absent, one request per connection.
fn serve_connection(mut stream: TcpStream, root: &Path, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    log.lock().unwrap().push(path.clone());
    let file = root.join(path.trim_start_matches('/'));
    let safe = !path.contains("..");
    let (status, body) = match std::fs::read(&file) {
        Ok(bytes) if safe && file.is_file() => ("200 OK", bytes),
        _ => ("404 Not Found", b"not found".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}
