//! The build stage: `cargo build --profile P --locked --target T -p PKG` per target and package.
//!
//! Executables are learnt from cargo's JSON messages (never guessed from `target/` paths),
//! copied to `dist/<tag>/<name>`, smoke-run where they can be, and recorded in the manifest
//! together with every compiled unit (the SBOM stage reads those).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cargo_metadata::{Message, TargetKind};

use crate::context::Context;
use crate::digest::sha256_file;
use crate::error::{Error, Result, tail};
use crate::git::Git;
use crate::manifest::{self, Artifact, BuildRecord, Kind, Manifest, Source, ToolchainInfo, Unit};
use crate::platform::{self, Target};
use crate::shell::Shell;
use crate::stage::preflight::{linker_for, rustc_for};

pub fn run(ctx: &Context) -> Result<Manifest> {
    let started = Instant::now();
    prepare_dist(&ctx.dist)?;
    let git = Git::new(&ctx.sh);
    let commit = git.head()?;
    let commit_time = git.commit_time(&commit)?;

    let mut manifest = Manifest {
        schema_version: manifest::SCHEMA_VERSION,
        tag: ctx.plan.tag.clone(),
        version: ctx.plan.version.clone(),
        prerelease: ctx.plan.prerelease,
        source: Source {
            repository: ctx.repository(),
            commit,
            commit_time,
        },
        toolchains: BTreeMap::new(),
        artifacts: Vec::new(),
        builds: Vec::new(),
        timings: BTreeMap::new(),
        glibc: BTreeMap::new(),
        images: Vec::new(),
    };
    // Marks dist/<tag>/ as ours from the start, so a build that fails halfway leaves a
    // directory the next run recognises and replaces.
    manifest.write(&ctx.dist)?;

    for target in ctx.plan.targets(&ctx.config) {
        let target_started = Instant::now();
        manifest
            .toolchains
            .insert(target.triple.clone(), toolchain_info(ctx, target)?);
        let packages: Vec<String> = ctx
            .plan
            .include
            .iter()
            .find(|i| i.target == target.triple)
            .map(|i| i.packages.clone())
            .unwrap_or_default();
        // One cargo call per package: a shared call would unify features across packages and
        // link crates into a binary that its own package never asked for.
        let groups: Vec<Vec<String>> = if ctx.config.precise_builds {
            packages.iter().map(|p| vec![p.clone()]).collect()
        } else {
            vec![packages.clone()]
        };
        for group in groups {
            let output = cargo_build(ctx, target, &group, commit_time)?;
            for package in &group {
                for planned in ctx.plan.binaries_for(&target.triple, package) {
                    let exe = output.executable(ctx, package, &planned.bin).ok_or_else(|| {
                        Error::Build(format!(
                            "cargo built no executable for bin `{}` of `{package}` ({}): if it has \
                             `required-features`, enable them by default or exclude the bin",
                            planned.bin, target.triple
                        ))
                    })?;
                    let dest = ctx.dist.join(&planned.name);
                    std::fs::copy(&exe, &dest)
                        .map_err(Error::io("cannot copy the executable to dist", &dest))?;
                    smoke_run(ctx, target, &dest)?;
                    if let Some(floor) = crate::glibc::floor(&dest)? {
                        manifest.glibc.insert(planned.name.clone(), floor);
                    }
                    let (sha256, size) =
                        sha256_file(&dest).map_err(Error::io("cannot hash", &dest))?;
                    manifest.upsert(Artifact {
                        name: planned.name.clone(),
                        kind: Kind::Binary,
                        bin: Some(planned.bin.clone()),
                        package: Some(package.clone()),
                        target: Some(target.triple.clone()),
                        platform: Some(target.platform.clone()),
                        describes: None,
                        sha256,
                        size,
                    });
                }
            }
            manifest.builds.push(BuildRecord {
                target: target.triple.clone(),
                packages: group,
                units: output.units,
            });
        }
        manifest.timings.insert(
            format!("build {}", target.triple),
            target_started.elapsed().as_millis() as u64,
        );
    }
    manifest
        .timings
        .insert("build".into(), started.elapsed().as_millis() as u64);
    manifest.write(&ctx.dist)?;
    Ok(manifest)
}

/// `dist/<tag>/` is ours: an earlier run's output (it has a manifest) is replaced, anything else
/// is left alone and refused.
pub fn prepare_dist(dist: &Path) -> Result<()> {
    if dist.exists() {
        let empty = std::fs::read_dir(dist)
            .map_err(Error::io("cannot read", dist))?
            .next()
            .is_none();
        if !empty && !Manifest::path(dist).exists() {
            return Err(Error::Build(format!(
                "{} exists and is not an xrelease output directory (no {}); move it away or choose --dist",
                dist.display(),
                manifest::FILE
            )));
        }
        std::fs::remove_dir_all(dist)
            .map_err(Error::io("cannot clear the previous run's output", dist))?;
    }
    std::fs::create_dir_all(dist).map_err(Error::io("cannot create the output directory", dist))
}

fn toolchain_info(ctx: &Context, target: &Target) -> Result<ToolchainInfo> {
    let toolchain = ctx.config.toolchain(target);
    let rustc = ctx.sh.read(ctx.sh.cmd(rustc_for(&toolchain)).arg("-V"))?;
    let cargo = ctx
        .sh
        .read(ctx.sh.cmd(cargo(&ctx.workspace.root)).arg("-V"))?;
    Ok(ToolchainInfo { rustc, cargo })
}

/// `CARGO` (the cargo running `cargo xtask`), else `cargo` on PATH; with a rust-toolchain.toml
/// always rustup's `cargo` proxy, run in the workspace, so the pinned toolchain builds.
fn cargo(root: &Path) -> String {
    if crate::stage::preflight::toolchain_file(root).is_some() {
        return "cargo".into();
    }
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

struct CargoOutput {
    units: Vec<Unit>,
    /// (package id, bin name) → the executable cargo reported.
    executables: BTreeMap<(String, String), PathBuf>,
}

impl CargoOutput {
    fn executable(&self, ctx: &Context, package: &str, bin: &str) -> Option<PathBuf> {
        let id = &ctx.workspace.members.iter().find(|m| m.name == package)?.id;
        self.executables
            .get(&(id.clone(), bin.to_string()))
            .cloned()
    }
}

fn cargo_build(
    ctx: &Context,
    target: &Target,
    packages: &[String],
    commit_time: i64,
) -> Result<CargoOutput> {
    let toolchain = ctx.config.toolchain(target);
    let mut cmd = ctx
        .sh
        .cmd(cargo(&ctx.workspace.root))
        .args([
            "build",
            "--locked",
            "--message-format=json-render-diagnostics",
        ])
        .args(["--profile", &ctx.config.profile])
        .args(["--target", &target.triple])
        .args(packages.iter().flat_map(|p| ["-p", p.as_str()]))
        .args(["--config", &remap_flags(ctx, target)])
        .args(
            strip_flags(ctx)
                .iter()
                .flat_map(|f| ["--config", f.as_str()]),
        )
        .env("SOURCE_DATE_EPOCH", commit_time.to_string());
    if toolchain.rustc.is_some() {
        cmd = cmd.env("RUSTC", rustc_for(&toolchain));
    }
    if let Some(linker) = linker_for(target, &toolchain) {
        cmd = cmd.env(format!("CARGO_TARGET_{}_LINKER", target.env_key()), linker);
    }
    cmd = cmd.envs(&toolchain.env);
    let shown = format!(
        "cargo build --profile {} --locked --target {} -p {}",
        ctx.config.profile,
        target.triple,
        packages.join(" -p ")
    );
    ctx.ui.info(format!(
        "building {} for {}",
        packages.join(", "),
        target.triple
    ));

    let mut command = Shell::spawnable(cmd);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| Error::Command {
        command: shown.clone(),
        status: "could not start".into(),
        tail: e.to_string(),
    })?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let bar = ctx.ui.bar(
        estimate_units(ctx, packages),
        &format!("{} {}", target.platform, packages.join(",")),
    );
    let target_side = ctx.workspace.target_dir.join(&target.triple);
    let mut out = CargoOutput {
        units: Vec::new(),
        executables: BTreeMap::new(),
    };
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    for message in Message::parse_stream(stdout) {
        let Ok(Message::CompilerArtifact(a)) = message else {
            continue;
        };
        bar.step(&a.target.name);
        if let Some(exe) = &a.executable
            && a.target.kind.contains(&TargetKind::Bin)
        {
            out.executables.insert(
                (a.package_id.repr.clone(), a.target.name.clone()),
                exe.clone().into_std_path_buf(),
            );
        }
        let host = !a
            .filenames
            .iter()
            .any(|f| f.as_std_path().starts_with(&target_side));
        out.units.push(Unit {
            package_id: a.package_id.repr,
            target_name: a.target.name,
            target_kind: a.target.kind.iter().map(|k| k.to_string()).collect(),
            crate_types: a.target.crate_types.iter().map(|k| k.to_string()).collect(),
            features: a.features,
            host,
        });
    }
    let status = child
        .wait()
        .map_err(|e| Error::Build(format!("waiting for cargo: {e}")))?;
    let stderr_text = stderr_thread.join().unwrap_or_default();
    if !status.success() {
        bar.finish("failed");
        return Err(Error::Command {
            command: shown,
            status: status.to_string(),
            tail: tail(&stderr_text, 25),
        });
    }
    bar.finish("done");
    // Stable order: the manifest is byte-stable for the same build.
    out.units.sort_by(|a, b| {
        (&a.package_id, &a.target_name, a.host).cmp(&(&b.package_id, &b.target_name, b.host))
    });
    out.units.dedup();
    ctx.ui.info(format!(
        "built {} for {} ({} units)",
        packages.join(", "),
        target.triple,
        out.units.len()
    ));
    Ok(out)
}

/// `--remap-path-prefix` for the cargo home, the workspace and the target dir, so the binary does
/// not depend on where it was built (reproducible builds). Applied to target units only. rustc
/// applies the last matching rule, so the target dir (often inside the workspace) comes last.
fn remap_flags(ctx: &Context, target: &Target) -> String {
    let mut flags = Vec::new();
    if let Some(home) = cargo_home() {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    flags.push(format!(
        "--remap-path-prefix={}=/build",
        ctx.workspace.root.display()
    ));
    flags.push(format!(
        "--remap-path-prefix={}=/target",
        ctx.workspace.target_dir.display()
    ));
    let quoted: Vec<String> = flags
        .iter()
        .map(|f| serde_json::to_string(f).expect("a string"))
        .collect();
    format!("target.{}.rustflags=[{}]", target.triple, quoted.join(","))
}

/// `[release] strip = true`: debug info is stripped from what is published, unless the
/// workspace's own profile (or one it inherits from) already says how to strip.
fn strip_flags(ctx: &Context) -> Vec<String> {
    let profile = &ctx.config.profile;
    if !ctx.config.strip || profile_sets_strip(&ctx.workspace.root, profile) {
        return Vec::new();
    }
    vec![format!("profile.{profile}.strip=\"debuginfo\"")]
}

fn profile_sets_strip(root: &Path, profile: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(root.join("Cargo.toml")) else {
        return false;
    };
    let Ok(manifest) = text.parse::<toml::Table>() else {
        return false;
    };
    let profiles = manifest.get("profile").and_then(|p| p.as_table());
    let mut name = profile.to_string();
    // Follow `inherits` (bounded: cargo refuses cycles anyway).
    for _ in 0..8 {
        let Some(table) = profiles
            .and_then(|p| p.get(&name))
            .and_then(|t| t.as_table())
        else {
            return false;
        };
        if table.contains_key("strip") {
            return true;
        }
        match table.get("inherits").and_then(|i| i.as_str()) {
            Some(parent) => name = parent.to_string(),
            None => return false,
        }
    }
    false
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// How many units a build will compile, for the progress bar: the package's dependency closure.
fn estimate_units(ctx: &Context, packages: &[String]) -> u64 {
    let Some(resolve) = &ctx.workspace.metadata.resolve else {
        return 0;
    };
    let nodes: BTreeMap<&str, &cargo_metadata::Node> = resolve
        .nodes
        .iter()
        .map(|n| (n.id.repr.as_str(), n))
        .collect();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = ctx
        .workspace
        .members
        .iter()
        .filter(|m| packages.contains(&m.name))
        .map(|m| m.id.as_str())
        .collect();
    while let Some(id) = todo.pop() {
        if seen.insert(id)
            && let Some(node) = nodes.get(id)
        {
            todo.extend(node.deps.iter().map(|d| d.pkg.repr.as_str()));
        }
    }
    seen.len() as u64
}

/// Runs a fresh binary with `--version` (then `--help`): one that cannot start fails the build.
/// Host binaries run directly; others only through their target's configured `runner`.
///
/// "Cannot start" is what the loader, the kernel or the emulator says (a missing library or
/// glibc version, a wrong architecture, a crash); a binary that ran and chose to exit non-zero
/// (a wrapper whose tool is not installed here, one without `--version`) did start, and is only
/// noted.
fn smoke_run(ctx: &Context, target: &Target, binary: &Path) -> Result<()> {
    let toolchain = ctx.config.toolchain(target);
    let mut words = match &toolchain.runner {
        Some(runner) => shell_words::split(runner)
            .map_err(|e| Error::Config(format!("`[target.{}] runner`: {e}", target.triple)))?,
        None if platform::runs_natively(&target.triple) => Vec::new(),
        None => return Ok(()),
    };
    words.push(binary.display().to_string());
    let mut last = String::new();
    for flag in ["--version", "--help"] {
        match run_with_timeout(&words, flag, Duration::from_secs(60)) {
            Ok(()) => return Ok(()),
            Err(Ran::CannotStart(why)) => {
                return Err(Error::Build(format!(
                    "{} does not start on {} (`{} {flag}`): {why}",
                    binary.display(),
                    target.triple,
                    words.join(" ")
                )));
            }
            Err(Ran::Started(why)) => last = why,
        }
    }
    ctx.ui.info(format!(
        "note: {} starts on {}, but exits non-zero for both --version and --help ({last}); not a failure",
        binary.display(),
        target.triple
    ));
    Ok(())
}

/// How a smoke run that did not succeed went.
#[derive(Debug)]
enum Ran {
    /// The process ran its own code and exited non-zero, or outlived the time limit.
    Started(String),
    /// The kernel, the loader or the emulator refused it, or it crashed.
    CannotStart(String),
}

/// Whether an exit looks like the loader or the emulator refusing the binary rather than the
/// binary's own decision. `code` is `None` for a death by signal (a crash).
fn could_not_start(code: Option<i32>, stderr: &str) -> bool {
    const LOADER: &[&str] = &[
        "error while loading shared libraries",
        "not found (required by",
        "cannot execute binary file",
        "Exec format error",
        "Could not open '",
        "qemu: uncaught target signal",
    ];
    matches!(code, None | Some(126) | Some(127)) || LOADER.iter().any(|m| stderr.contains(m))
}

fn run_with_timeout(words: &[String], flag: &str, limit: Duration) -> std::result::Result<(), Ran> {
    let mut child = std::process::Command::new(&words[0])
        .args(&words[1..])
        .arg(flag)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Ran::CannotStart(e.to_string()))?;
    let start = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Ran::CannotStart(e.to_string()))?
        {
            if status.success() {
                return Ok(());
            }
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            let why = format!("{status}: {}", tail(&err, 5));
            return Err(if could_not_start(status.code(), &err) {
                Ran::CannotStart(why)
            } else {
                Ran::Started(why)
            });
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Ran::Started(format!(
                "still running after {}s",
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str) -> std::result::Result<(), Ran> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        run_with_timeout(
            &[path.display().to_string()],
            "--version",
            Duration::from_secs(10),
        )
    }

    #[test]
    fn strip_is_left_to_a_profile_that_sets_it_itself() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[profile.release]\ndebug = 1\n\n[profile.release-lto]\ninherits = \"release\"\nlto = true\n\n\
             [profile.dist]\ninherits = \"release-lto\"\nstrip = \"symbols\"\n\n[profile.more]\ninherits = \"dist\"\n",
        )
        .unwrap();
        let sets = |p: &str| profile_sets_strip(dir.path(), p);
        assert!(!sets("release") && !sets("release-lto") && !sets("custom"));
        assert!(sets("dist") && sets("more"), "set directly, and inherited");
    }

    #[test]
    fn a_binary_that_exits_non_zero_has_started_one_the_loader_refuses_has_not() {
        assert!(run("#!/bin/sh\nexit 0\n").is_ok());
        // A wrapper whose tool is missing here: it ran.
        assert!(matches!(
            run("#!/bin/sh\necho 'Could not find tool: nm' >&2\nexit 102\n"),
            Err(Ran::Started(_))
        ));
        // What ld.so says for a missing library or a too-old glibc; a crash; no such format.
        for script in [
            "#!/bin/sh\necho 'bin: error while loading shared libraries: libssl.so.3' >&2\nexit 127\n",
            "#!/bin/sh\necho \"bin: version \\`GLIBC_2.39' not found (required by bin)\" >&2\nexit 1\n",
            "#!/bin/sh\nkill -SEGV $$\n",
            "\x7fELF not really",
        ] {
            assert!(matches!(run(script), Err(Ran::CannotStart(_))), "{script}");
        }
    }
}
