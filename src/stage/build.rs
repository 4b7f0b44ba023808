//! The build stage: `cargo build --release --locked --target T -p PKG` per target and package.
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
        images: Vec::new(),
    };

    for target in ctx.plan.targets(&ctx.config) {
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
    let cargo = ctx.sh.read(ctx.sh.cmd(cargo()).arg("-V"))?;
    Ok(ToolchainInfo { rustc, cargo })
}

fn cargo() -> String {
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
        .cmd(cargo())
        .args([
            "build",
            "--release",
            "--locked",
            "--message-format=json-render-diagnostics",
        ])
        .args(["--target", &target.triple])
        .args(packages.iter().flat_map(|p| ["-p", p.as_str()]))
        .args(["--config", &remap_flags(ctx, target)])
        .env("SOURCE_DATE_EPOCH", commit_time.to_string());
    if toolchain.rustc.is_some() {
        cmd = cmd.env("RUSTC", rustc_for(&toolchain));
    }
    if let Some(linker) = linker_for(target, &toolchain) {
        cmd = cmd.env(format!("CARGO_TARGET_{}_LINKER", target.env_key()), linker);
    }
    cmd = cmd.envs(&toolchain.env);
    let shown = format!(
        "cargo build --release --locked --target {} -p {}",
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
fn smoke_run(ctx: &Context, target: &Target, binary: &Path) -> Result<()> {
    let toolchain = ctx.config.toolchain(target);
    let mut words = match &toolchain.runner {
        Some(runner) => shell_words::split(runner)
            .map_err(|e| Error::Config(format!("`[target.{}] runner`: {e}", target.triple)))?,
        None if target.triple == platform::host_triple() => Vec::new(),
        None => return Ok(()),
    };
    words.push(binary.display().to_string());
    let mut last = String::new();
    for flag in ["--version", "--help"] {
        match run_with_timeout(&words, flag, Duration::from_secs(60)) {
            Ok(()) => return Ok(()),
            Err(why) => last = why,
        }
    }
    Err(Error::Build(format!(
        "{} does not start on {} (`{} --version`): {last}",
        binary.display(),
        target.triple,
        words.join(" ")
    )))
}

fn run_with_timeout(
    words: &[String],
    flag: &str,
    limit: Duration,
) -> std::result::Result<(), String> {
    let mut child = std::process::Command::new(&words[0])
        .args(&words[1..])
        .arg(flag)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            if status.success() {
                return Ok(());
            }
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            return Err(format!("{status}: {}", tail(&err, 5)));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {}s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
