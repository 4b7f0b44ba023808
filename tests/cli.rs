//! xrelease through its real binary, on fixture workspaces: one test binary, specs as tests.

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
fn the_dry_run_names_the_stages_not_yet_implemented() {
    let (_, outcome) = basic_release();
    outcome
        .success()
        .stdout_has("not yet implemented: sbom, checksums, sign, attest, verify, publish");
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
    // Today a real run is refused before building because later stages are missing; either way
    // nothing is built.
    let out = fixture.xrelease(&["release", "v1.0.0"]).run();
    out.code(2);
    assert!(!fixture.path("dist").exists());
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
