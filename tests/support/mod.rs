//! Test support: fixture workspaces copied to a temp dir, and a small DSL to run xrelease on them.

#![allow(dead_code)]

pub mod files_server;
pub mod github_server;
pub mod sigstore;
pub mod tuf;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture workspace in its own temp dir, committed to a fresh git repository.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Fixture {
    pub fn new(name: &str) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix(&format!("xrelease-{name}-"))
            .tempdir()
            .unwrap();
        let root = dir.path().join(name);
        copy_tree(&repo_root().join("tests/fixtures").join(name), &root);
        let fixture = Fixture { _dir: dir, root };
        fixture.machine_overrides();
        fixture.git(&["init", "-q", "-b", "main"]);
        fixture.commit("fixture");
        fixture
    }

    /// A fixture as a workspace that has never seen xrelease: no machine overrides copied in,
    /// no .gitignore lines added for them.
    pub fn bare(name: &str) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix(&format!("xrelease-{name}-"))
            .tempdir()
            .unwrap();
        let root = dir.path().join(name);
        copy_tree(&repo_root().join("tests/fixtures").join(name), &root);
        let fixture = Fixture { _dir: dir, root };
        fixture.git(&["init", "-q", "-b", "main"]);
        fixture.commit("fixture");
        fixture
    }

    /// This machine's toolchain overrides (what `xrelease doctor --fix` recorded for the repo),
    /// kept out of git in the fixture as in a real workspace.
    fn machine_overrides(&self) {
        let local = repo_root().join("release.local.toml");
        if local.exists() {
            std::fs::copy(&local, self.root.join("release.local.toml")).unwrap();
        }
        let ignore = self.root.join(".gitignore");
        let mut text = std::fs::read_to_string(&ignore).unwrap_or_default();
        text.push_str("\n/release.local.toml\n");
        std::fs::write(ignore, text).unwrap();
    }

    /// Writes a release.toml into `dir`, outside the fixture's git tree (so the tree stays clean),
    /// with this machine's overrides beside it as they are beside the fixture's own.
    pub fn config_outside(&self, dir: &Path, text: &str) -> PathBuf {
        let config = dir.join("release.toml");
        std::fs::write(&config, text).unwrap();
        let local = self.path("release.local.toml");
        if local.exists() {
            std::fs::copy(&local, dir.join("release.local.toml")).unwrap();
        }
        config
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> &Fixture {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=Fixture",
                "-c",
                "user.email=fixture@example.invalid",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "tag.gpgsign=false",
            ])
            .args(args)
            .current_dir(&self.root)
            .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
            .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
    }

    pub fn xrelease(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xrelease"));
        // No terminal: xrelease must never wait for a password prompt in a test.
        cmd.args(args)
            .current_dir(&self.root)
            .stdin(std::process::Stdio::null());
        for var in [
            "GITHUB_ACTIONS",
            "GITHUB_REPOSITORY",
            "GITHUB_TOKEN",
            "GITHUB_API_URL",
            "GITHUB_UPLOAD_URL",
            "XRELEASE_GITHUB_ATTEMPTS",
            "XRELEASE_GITHUB_TIMEOUT",
            "CARGO_TARGET_DIR",
            "RUSTC",
            "RUSTFLAGS",
            "GITHUB_WORKFLOW_REF",
            "SIGSTORE_ID_TOKEN",
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        ] {
            cmd.env_remove(var);
        }
        Run { cmd }
    }
}

pub struct Run {
    cmd: Command,
}

impl Run {
    pub fn env(mut self, key: &str, value: &str) -> Run {
        self.cmd.env(key, value);
        self
    }

    /// Runs with `--config FILE` appended (a config kept outside the fixture's git tree).
    pub fn run_with_config(mut self, config: &Path) -> Outcome {
        self.cmd.arg("--config").arg(config);
        self.run()
    }

    pub fn run(mut self) -> Outcome {
        let output = self.cmd.output().unwrap();
        Outcome { output }
    }
}

pub struct Outcome {
    pub output: Output,
}

impl Outcome {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    #[track_caller]
    pub fn code(&self, expected: i32) -> &Outcome {
        assert_eq!(
            self.output.status.code(),
            Some(expected),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub fn success(&self) -> &Outcome {
        self.code(0)
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Outcome {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Outcome {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout()
        );
        self
    }
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == "dist" {
            continue;
        }
        let dest = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// One dry-run release of the `basic` fixture, built once and shared by every test that only
/// reads it (building both targets is the slow part of the suite).
pub fn basic_release() -> &'static (Fixture, Outcome) {
    static RELEASE: OnceLock<(Fixture, Outcome)> = OnceLock::new();
    RELEASE.get_or_init(|| {
        let fixture = Fixture::new("basic");
        let outcome = fixture
            .xrelease(&["release", "v1.0.0", "--dry-run", "--quiet"])
            .run();
        (fixture, outcome)
    })
}

/// The ELF machine field (`e_machine`) of a file, read from its header.
pub fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        path.display()
    );
    assert_eq!(
        bytes[5],
        1,
        "{}: expected a little-endian ELF",
        path.display()
    );
    u16::from_le_bytes([bytes[18], bytes[19]])
}

pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
