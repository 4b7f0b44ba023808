//! Adopting xrelease in an existing workspace: the tag forms real projects use, the first steps
//! in a repository that has never seen xrelease, the toolchain it needs, the workflow it may
//! already have, and the glibc its binaries need.

use crate::support::*;

/// `xrelease verify` on a rehearsal's output, under the throwaway key it wrote.
fn verify_rehearsal(fixture: &Fixture, tag: &str) {
    let dist = format!("dist/{tag}");
    fixture
        .xrelease(&[
            "verify",
            &dist,
            "--key",
            &format!("{dist}/cosign.pub"),
            "--tag",
            tag,
            "--repo",
            "fixture/tags",
        ])
        .run()
        .success()
        .stdout_has("checks passed");
}

fn binaries(fixture: &Fixture, tag: &str) -> Vec<String> {
    let manifest: serde_json::Value =
        serde_json::from_str(&fixture.read(&format!("dist/{tag}/manifest.json"))).unwrap();
    let mut names: Vec<String> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "binary")
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_per_package_tag_releases_that_package_only_and_records_its_glibc_floor() {
    let fixture = Fixture::new("tags");
    let tag = "beta-v1.2.3";
    let out = fixture
        .xrelease(&["release", tag, "--dry-run", "--quiet"])
        .run();
    out.success().stdout_has("glibc >= 2.36");
    // alpha (0.4.2) is neither built nor version-checked.
    assert_eq!(binaries(&fixture, tag), ["beta-1.2.3-linux-amd64"]);
    verify_rehearsal(&fixture, tag);

    // The floor comes from the ELF: beta links arc4random (glibc 2.36).
    let manifest: serde_json::Value =
        serde_json::from_str(&fixture.read(&format!("dist/{tag}/manifest.json"))).unwrap();
    assert_eq!(manifest["glibc"]["beta-1.2.3-linux-amd64"], "2.36");
    let (_, statement) =
        crate::read_envelope(&fixture.path(&format!("dist/{tag}/provenance.intoto.jsonl")));
    let internal = &statement["predicate"]["buildDefinition"]["internalParameters"];
    assert_eq!(internal["glibc"]["beta-1.2.3-linux-amd64"], "2.36");
    assert_eq!(internal["profile"], "release");
    let plan = fixture.read(&format!("dist/{tag}/publish-plan.json"));
    assert!(
        plan.contains("`beta-1.2.3-linux-amd64`: glibc 2.36 or newer"),
        "the notes name the floor: {plan}"
    );

    // max-glibc below the floor stops the release at the gate.
    let elsewhere = tempfile::tempdir().unwrap();
    let config = fixture.config_outside(
        elsewhere.path(),
        "[release]\ntag-template = \"{package}-v{version}\"\ntargets = [\"x86_64-unknown-linux-gnu\"]\n\
         max-glibc = \"2.35\"\n[github]\nrepository = \"fixture/tags\"\n",
    );
    fixture
        .xrelease(&["release", tag, "--dry-run", "--quiet"])
        .run_with_config(&config)
        .code(3)
        .stderr_has(
            "beta-1.2.3-linux-amd64 needs glibc 2.36, newer than `[release] max-glibc = \"2.35\"`",
        );

    // The tag's version is checked against the package it names, and only that one.
    fixture
        .xrelease(&["release", "alpha-v1.2.3", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("alpha is 0.4.2 (tag alpha-v1.2.3 needs 1.2.3)");
    fixture
        .xrelease(&["release", "v1.2.3", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("not of the form `{package}-v{version}`");
}

#[test]
fn a_bare_version_tag_rehearses_and_verifies() {
    let fixture = Fixture::new("tags");
    let elsewhere = tempfile::tempdir().unwrap();
    let config = fixture.config_outside(
        elsewhere.path(),
        "[release]\ntag-template = \"{version}\"\nbins = [\"beta\"]\n\
         targets = [\"x86_64-unknown-linux-gnu\"]\n[github]\nrepository = \"fixture/tags\"\n",
    );
    // Off a terminal: progress lines while cargo builds (every 10 ms here, 30 s by default),
    // then the per-stage timing table.
    let out = fixture
        .xrelease(&["release", "1.2.3", "--dry-run"])
        .env("XRELEASE_PROGRESS_SECS", "0.01")
        .run_with_config(&config);
    out.success()
        .stderr_has("  linux-amd64 beta: ")
        .stderr_has(" units, ");
    let stderr = out.stderr();
    let stages: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.starts_with("stage "))
        .map(|l| l.split("  ").next().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "stage",
            "build x86_64-unknown-linux-gnu",
            "build",
            "sbom",
            "installer",
            "checksums",
            "sign",
            "attest",
            "verify",
            "publish",
            "total"
        ],
        "{}",
        out.stderr()
    );
    assert_eq!(binaries(&fixture, "1.2.3"), ["beta-1.2.3-linux-amd64"]);
    verify_rehearsal(&fixture, "1.2.3");
}

#[test]
fn first_steps_in_a_fresh_repository_leave_the_tree_clean() {
    let fixture = Fixture::bare("fresh");
    fixture
        .xrelease(&["init"])
        .env("GITHUB_REPOSITORY", "fixture/fresh")
        .run()
        .success()
        .stdout_has("wrote release.toml")
        .stdout_has("wrote .gitignore")
        .stdout_has("wrote .github/workflows/release.yml");
    fixture.commit("xrelease init");
    fixture.xrelease(&["doctor", "--fix"]).run().success();
    for _ in 0..2 {
        fixture
            .xrelease(&["release", "v0.1.0", "--dry-run", "--quiet"])
            .run()
            .success();
    }
    assert_eq!(fixture.git(&["status", "--porcelain"]), "");
    let mut names = binaries(&fixture, "v0.1.0");
    names.retain(|n| n.ends_with("linux-amd64"));
    assert_eq!(
        names,
        ["tb-pack-0.1.0-linux-amd64", "tb-unpack-0.1.0-linux-amd64"]
    );

    // Without init's .gitignore lines, xrelease's own files still do not count as changes...
    fixture.write(".gitignore", "/target\n");
    fixture.git(&["commit", "-q", "-m", "no ignore lines", ".gitignore"]);
    assert!(fixture.git(&["status", "--porcelain"]).contains("?? dist/"));
    fixture
        .xrelease(&["release", "v0.1.0", "--dry-run", "--quiet"])
        .run()
        .success();
    // ...but anything else untracked does, and the refusal says what it found.
    fixture.write("notes.txt", "draft\n");
    fixture
        .xrelease(&["release", "v0.1.0", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("uncommitted changes (1 untracked)")
        .stderr_has("?? notes.txt");
}

#[test]
fn a_rust_version_newer_than_the_toolchain_stops_before_any_build() {
    let fixture = Fixture::new("tags");
    let manifest = fixture.read("beta/Cargo.toml");
    fixture.write(
        "beta/Cargo.toml",
        &manifest.replace(
            "edition = \"2021\"",
            "edition = \"2021\"\nrust-version = \"1.999\"",
        ),
    );
    fixture.commit("needs a future Rust");
    fixture
        .xrelease(&["release", "beta-v1.2.3", "--dry-run"])
        .run()
        .code(2)
        .stderr_has("package `beta` needs Rust 1.999 (its `rust-version`), but x86_64-unknown-linux-gnu builds with rustc ")
        .stderr_has("rustup toolchain install");
    assert!(
        !fixture.path("dist").exists() && !fixture.path("target").exists(),
        "nothing was built"
    );
    // The package not being released does not count.
    fixture.xrelease(&["plan", "alpha-v0.4.2"]).run().success();
}

#[test]
fn init_never_overwrites_an_existing_workflow() {
    let fixture = Fixture::bare("fresh");
    let mine = "name: mine\non: push\njobs: {}\n";
    fixture.write(".github/workflows/release.yml", mine);
    fixture.commit("their own release workflow");
    fixture
        .xrelease(&["init"])
        .env("GITHUB_REPOSITORY", "fixture/fresh")
        .run()
        .code(2)
        .stderr_has("nothing was overwritten")
        .stderr_has("-name: mine")
        .stderr_has("+name: release")
        .stderr_has("--workflow-name");
    assert_eq!(fixture.read(".github/workflows/release.yml"), mine);
    assert_eq!(
        fixture.git(&["status", "--porcelain"]),
        "",
        "nothing written"
    );

    fixture
        .xrelease(&["init", "--workflow-name", "xrelease.yml", "--musl"])
        .env("GITHUB_REPOSITORY", "fixture/fresh")
        .run()
        .success()
        .stdout_has("wrote .github/workflows/xrelease.yml");
    assert_eq!(fixture.read(".github/workflows/release.yml"), mine);
    assert!(
        fixture
            .read(".github/workflows/xrelease.yml")
            .contains("name: release")
    );
    let config = fixture.read("release.toml");
    assert!(
        config.contains("\"x86_64-unknown-linux-musl\", \"aarch64-unknown-linux-musl\""),
        "{config}"
    );
    fixture
        .xrelease(&["init", "--workflow-name", "../evil.yml"])
        .run()
        .code(2)
        .stderr_has("plain file name");
}

#[test]
fn the_musl_targets_are_first_class_set_up_by_doctor_and_smoke_run() {
    let fixture = Fixture::bare("tags");
    let elsewhere = tempfile::tempdir().unwrap();
    let config = elsewhere.path().join("release.toml");
    std::fs::write(
        &config,
        "[release]\ntag-template = \"{package}-v{version}\"\n\
         targets = [\"x86_64-unknown-linux-musl\", \"aarch64-unknown-linux-musl\"]\n\
         [github]\nrepository = \"fixture/tags\"\n",
    )
    .unwrap();
    // doctor --fix adds rustup's musl std and records the arm64 linker and qemu runner.
    fixture
        .xrelease(&["doctor", "--fix"])
        .run_with_config(&config)
        .success();
    let local = std::fs::read_to_string(elsewhere.path().join("release.local.toml")).unwrap();
    assert!(
        local.contains("[target.aarch64-unknown-linux-musl]"),
        "{local}"
    );
    let tag = "beta-v1.2.3";
    fixture
        .xrelease(&["release", tag, "--dry-run"])
        .run_with_config(&config)
        .success()
        .stdout_has("beta-1.2.3-linux-amd64-musl")
        .stdout_has("beta-1.2.3-linux-arm64-musl");
    verify_rehearsal(&fixture, tag);
    let amd64 = fixture.path(&format!("dist/{tag}/beta-1.2.3-linux-amd64-musl"));
    let arm64 = fixture.path(&format!("dist/{tag}/beta-1.2.3-linux-arm64-musl"));
    assert_eq!(elf_machine(&amd64), EM_X86_64);
    assert_eq!(elf_machine(&arm64), EM_AARCH64);
    // Static: no glibc floor recorded, and each runs (arm64 under qemu, no target libraries).
    let manifest = fixture.read(&format!("dist/{tag}/manifest.json"));
    assert!(!manifest.contains("\"glibc\""), "{manifest}");
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.arg("--version").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run(&mut std::process::Command::new(&amd64)).starts_with("beta 1.2.3"));
    assert!(
        run(std::process::Command::new("qemu-aarch64-static").arg(&arm64))
            .starts_with("beta 1.2.3")
    );
}
