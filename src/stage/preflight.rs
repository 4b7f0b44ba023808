//! Preflight: everything that can be checked before anything expensive runs.
//!
//! Git state, the tag, every target's std and linker, GitHub (real runs: token, push access, no
//! published release for the tag), and the project's own pre-release checks.

use std::path::PathBuf;

use crate::config::Toolchain;
use crate::context::{Context, Mode};
use crate::error::{Error, Result, tail};
use crate::git::Git;
use crate::platform::{self, Target};
use crate::shell::{Shell, find_program};
use crate::signing::Signer;
use crate::stage::publish::Publisher;

/// Before a release or a runner's share is built: everything.
pub fn run(ctx: &Context, publisher: &mut Publisher) -> Result<()> {
    check_git(ctx)?;
    check_repository(ctx)?;
    check_toolchains(ctx)?;
    check_rust_version(ctx)?;
    publisher.preflight(ctx)?; // a rehearsal's publisher records, so it checks nothing
    for check in &ctx.config.pre_release_checks {
        run_check(ctx, check)?;
    }
    Ok(())
}

/// Before shares are assembled: nothing is built here, so no toolchain is needed; the source
/// must still be the tagged commit and the repository known.
pub fn run_for_assemble(ctx: &Context, publisher: &mut Publisher) -> Result<()> {
    check_git(ctx)?;
    check_repository(ctx)?;
    publisher.preflight(ctx)
}

fn check_repository(ctx: &Context) -> Result<()> {
    if ctx.repository().is_none() {
        return Err(Error::Preflight(
            "cannot tell which GitHub repository this is (the provenance names it): set `[github] repository = \"OWNER/REPO\"` \
             in release.toml, or GITHUB_REPOSITORY, or add a github.com `origin` remote"
                .into(),
        ));
    }
    Ok(())
}

fn check_toolchains(ctx: &Context) -> Result<()> {
    let problems: Vec<String> = ctx
        .plan
        .targets(&ctx.config)
        .filter_map(|t| check_target(&ctx.sh, t, &ctx.config.toolchain(t)).err())
        .collect();
    if !problems.is_empty() {
        return Err(Error::Preflight(format!(
            "{}\n(`xrelease doctor` shows this check; `xrelease doctor --fix` installs what it can)",
            problems.join("\n")
        )));
    }
    Ok(())
}

/// Every released package's `rust-version` against the rustc of every target, so a workspace
/// that needs a newer Rust stops here with the fix instead of deep inside cargo.
fn check_rust_version(ctx: &Context) -> Result<()> {
    let released: Vec<&cargo_metadata::Package> = ctx
        .workspace
        .metadata
        .workspace_packages()
        .into_iter()
        .filter(|p| {
            ctx.plan
                .artifacts
                .iter()
                .any(|a| a.package == p.name.as_str())
        })
        .collect();
    if released.iter().all(|p| p.rust_version.is_none()) {
        return Ok(());
    }
    let pinned = toolchain_file(&ctx.workspace.root);
    let mut problems = Vec::new();
    let mut newest: Option<semver::Version> = None;
    for target in ctx.plan.targets(&ctx.config) {
        let rustc = rustc_for(&ctx.config.toolchain(target));
        let text = ctx.sh.read(ctx.sh.cmd(&rustc).arg("-V"))?;
        let Some(have) = rustc_version(&text) else {
            return Err(Error::Preflight(format!(
                "`{rustc} -V` printed `{text}`, which does not name a Rust version"
            )));
        };
        for package in &released {
            if let Some(need) = &package.rust_version
                && (need.major, need.minor, need.patch) > (have.major, have.minor, have.patch)
            {
                newest = newest.max(Some(need.clone()));
                let need = short_version(need);
                problems.push(format!(
                    "package `{}` needs Rust {need} (its `rust-version`), but {} builds with {text} (`{rustc}`)",
                    package.name, target.triple
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let version = newest.as_ref().map(short_version).unwrap_or_default();
    let fix = match &pinned {
        Some(file) => format!(
            "{file} pins the toolchain: raise its `channel` to {version} or later (`rustup toolchain install {version}`)"
        ),
        None => format!(
            "install a newer toolchain: `rustup toolchain install {version}` and pin it in rust-toolchain.toml \
             (`[toolchain] channel = \"{version}\"`, which xrelease honours), or `rustup update`; or set \
             `[target.T] rustc` to a newer rustc"
        ),
    };
    problems.dedup();
    Err(Error::Preflight(format!("{}\n{fix}", problems.join("\n"))))
}

/// Cargo reads `rust-version = "1.80"` as 1.80.0: say it as the user wrote it.
fn short_version(v: &semver::Version) -> String {
    if v.patch == 0 && v.pre.is_empty() {
        format!("{}.{}", v.major, v.minor)
    } else {
        v.to_string()
    }
}

/// `rustc 1.95.0 (59807616e 2026-04-14)` → 1.95.0 (a nightly's `-nightly` kept as pre-release).
fn rustc_version(text: &str) -> Option<semver::Version> {
    semver::Version::parse(text.split_whitespace().nth(1)?).ok()
}

/// The workspace's rustup toolchain file, when it has one: rustup then picks the toolchain for
/// every cargo and rustc run in the workspace, and xrelease must not bypass it.
pub fn toolchain_file(root: &std::path::Path) -> Option<&'static str> {
    ["rust-toolchain.toml", "rust-toolchain"]
        .into_iter()
        .find(|f| root.join(f).is_file())
}

/// The signer can sign when its turn comes: a keyless signer has an identity-token source
/// (`SIGSTORE_ID_TOKEN`, or GitHub Actions' token endpoint), so a missing token stops the
/// release here rather than after the build. (A key was already unlocked when it was loaded.)
pub fn signer(signer: &Signer) -> Result<()> {
    signer.preflight(&crate::signing::process_env)
}

fn check_git(ctx: &Context) -> Result<()> {
    let git = Git::new(&ctx.sh);
    let head = git.head()?;
    let dirty = without_own_files(ctx, &git, git.dirty_files()?)?;
    if !dirty.is_empty() {
        let hint = match ctx.mode {
            Mode::Rehearsal => "commit or stash them, or rehearse anyway with --allow-dirty",
            Mode::Real => "commit or stash them: a release is built from a commit, exactly",
        };
        if !(ctx.allow_dirty && ctx.mode == Mode::Rehearsal) {
            return Err(Error::Preflight(format!(
                "the git tree has uncommitted changes ({}):\n  {}\n{hint}",
                describe_dirty(&dirty),
                dirty.join("\n  ")
            )));
        }
    }
    if ctx.allow_dirty && ctx.mode == Mode::Real {
        return Err(Error::Preflight(
            "--allow-dirty is only accepted with --dry-run: a real release is built from a clean commit".into(),
        ));
    }
    if ctx.mode == Mode::Real {
        let tag = ctx.tag.to_string();
        match git.tag_commit(&tag) {
            None => {
                return Err(Error::Preflight(format!(
                    "tag {tag} does not exist: create it on the commit to release with `git tag -a {tag} -m {tag}` \
                     (or rehearse with --dry-run)"
                )));
            }
            Some(commit) if commit != head => {
                return Err(Error::Preflight(format!(
                    "tag {tag} points at {commit}, but HEAD is {head}: check out the tag (`git checkout {tag}`) to release it"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Leaves out exactly the untracked files xrelease and cargo make themselves: the output
/// directory, this machine's `release.local.toml` (written by `doctor --fix`) and cargo's target
/// directory. In a workspace whose .gitignore predates xrelease they would otherwise make the
/// second command after `init` refuse; anything else untracked still counts.
fn without_own_files(ctx: &Context, git: &Git, dirty: Vec<String>) -> Result<Vec<String>> {
    let Ok(top) = git.toplevel().map(|t| t.canonicalize().unwrap_or(t)) else {
        return Ok(dirty);
    };
    let own: Vec<String> = [
        (ctx.workspace.root.join("dist"), true),
        (ctx.dist.clone(), true),
        (ctx.config.root.join(crate::config::LOCAL_FILE), false),
        (ctx.workspace.root.join(crate::config::LOCAL_FILE), false),
        (ctx.workspace.target_dir.clone(), true),
    ]
    .into_iter()
    .filter_map(|(path, dir)| {
        let path = ctx.workspace.root.join(path);
        let path = path.canonicalize().unwrap_or(path);
        let rel = path.strip_prefix(&top).ok()?.to_string_lossy().into_owned();
        (!rel.is_empty()).then(|| if dir { format!("{rel}/") } else { rel })
    })
    .collect();
    Ok(dirty
        .into_iter()
        .filter(|line| match line.strip_prefix("?? ") {
            Some(path) => !own
                .iter()
                .any(|o| path == o || (o.ends_with('/') && path.starts_with(o.as_str()))),
            None => true,
        })
        .collect())
}

/// "2 modified, 1 untracked": what kind of changes `git status --porcelain` listed.
fn describe_dirty(lines: &[String]) -> String {
    let untracked = lines.iter().filter(|l| l.starts_with("??")).count();
    let changed = lines.len() - untracked;
    let mut parts = Vec::new();
    if changed > 0 {
        parts.push(format!("{changed} changed"));
    }
    if untracked > 0 {
        parts.push(format!("{untracked} untracked"));
    }
    parts.join(", ")
}

/// The rustc a target is built with: its override, else `RUSTC`, else the one on PATH.
pub fn rustc_for(toolchain: &Toolchain) -> String {
    toolchain
        .rustc
        .clone()
        .or_else(|| std::env::var("RUSTC").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "rustc".into())
}

/// The linker cargo will use for a target: its override, else `CARGO_TARGET_<T>_LINKER`.
pub fn linker_for(target: &Target, toolchain: &Toolchain) -> Option<String> {
    toolchain
        .linker
        .clone()
        .or_else(|| std::env::var(format!("CARGO_TARGET_{}_LINKER", target.env_key())).ok())
        .filter(|s| !s.is_empty())
}

/// Checks that `target` can be built and (if it has a runner) run here; the error says how to fix it.
pub fn check_target(
    sh: &Shell,
    target: &Target,
    toolchain: &Toolchain,
) -> std::result::Result<String, String> {
    let triple = &target.triple;
    let rustc = rustc_for(toolchain);
    let Some(rustc_path) = find_program(&rustc) else {
        return Err(format!(
            "{triple}: rustc `{rustc}` not found; install Rust (https://rustup.rs) or fix `[target.{triple}] rustc`"
        ));
    };
    let sysroot = sh
        .read(sh.cmd(&rustc_path).args(["--print", "sysroot"]))
        .map_err(|e| format!("{triple}: `{rustc} --print sysroot` failed: {e}"))?;
    let std_dir = PathBuf::from(&sysroot)
        .join("lib/rustlib")
        .join(triple)
        .join("lib");
    let has_std = std::fs::read_dir(&std_dir)
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libstd-") && name.ends_with(".rlib")
            })
        })
        .unwrap_or(false);
    if !has_std {
        return Err(format!(
            "{triple}: the standard library for this target is missing from `{rustc}` (sysroot {sysroot}); {}",
            std_fix(target)
        ));
    }

    // The host's own musl target links with the host's cc (rustc brings musl's crt and libc).
    let host = platform::runs_natively(&target.triple);
    match linker_for(target, toolchain) {
        Some(linker) if find_program(&linker).is_none() => {
            return Err(format!(
                "{triple}: linker `{linker}` not found; {}",
                install_hint(&linker)
                    .unwrap_or_else(|| format!("install it or fix `[target.{triple}] linker`"))
            ));
        }
        None if !host && triple.contains("-linux-") => {
            let gcc = gcc_for(target);
            return Err(format!(
                "{triple}: no linker configured for this cross target; {} and set `[target.{triple}] linker = \"{gcc}\"` \
                 (or CARGO_TARGET_{}_LINKER)",
                install_hint(&gcc).unwrap_or_else(|| format!("install {gcc}")),
                target.env_key()
            ));
        }
        _ => {}
    }
    if let Some(runner) = &toolchain.runner {
        let program = shell_words::split(runner)
            .ok()
            .and_then(|w| w.into_iter().next())
            .unwrap_or_default();
        if find_program(&program).is_none() {
            return Err(format!(
                "{triple}: runner `{program}` not found; {}",
                install_hint(&program)
                    .unwrap_or_else(|| format!("install it or fix `[target.{triple}] runner`"))
            ));
        }
    }
    Ok(format!(
        "{triple}: rustc `{rustc}`, std present{}",
        match linker_for(target, toolchain) {
            Some(l) => format!(", linker {l}"),
            None => ", host linker".into(),
        }
    ))
}

/// The GNU cross compiler Debian/Ubuntu name for a target: `aarch64-linux-gnu-gcc`.
///
/// musl targets link with the same GNU cross gcc: rustc's musl targets bring their own crt
/// objects and libc, so only the driver and the linker for the architecture are needed.
pub fn gcc_for(target: &Target) -> String {
    let mut parts: Vec<&str> = target.triple.split('-').collect();
    parts.retain(|p| *p != "unknown");
    for part in parts.iter_mut() {
        if *part == "musl" {
            *part = "gnu";
        }
    }
    let arch = match parts[0] {
        "armv7" => "arm",
        "riscv64gc" => "riscv64",
        a => a,
    };
    parts[0] = arch;
    format!("{}-gcc", parts.join("-"))
}

/// The command that installs a missing tool, when we know it.
pub fn install_hint(program: &str) -> Option<String> {
    if let Some(prefix) = program.strip_suffix("-gcc") {
        return Some(format!(
            "install it with `sudo apt-get install gcc-{prefix}` (Debian/Ubuntu)"
        ));
    }
    if program.starts_with("qemu-") {
        return Some(
            "install it with `sudo apt-get install qemu-user-static` (Debian/Ubuntu)".into(),
        );
    }
    None
}

fn std_fix(target: &Target) -> String {
    let triple = &target.triple;
    let mut fix = format!("with rustup: `rustup target add {triple}`");
    if triple == "aarch64-unknown-linux-gnu" {
        fix.push_str(
            "; on Debian/Ubuntu without rustup downloads: `sudo dpkg --add-architecture arm64 && sudo apt-get update && \
             sudo apt-get install rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu qemu-user-static` and set \
             `[target.aarch64-unknown-linux-gnu] rustc = \"/usr/bin/rustc\"`",
        );
    }
    fix
}

fn run_check(ctx: &Context, check: &str) -> Result<()> {
    let words = shell_words::split(check).map_err(|e| {
        Error::Config(format!(
            "release.toml: `release.pre-release-checks`: cannot split `{check}`: {e}"
        ))
    })?;
    let Some((program, args)) = words.split_first() else {
        return Ok(());
    };
    ctx.ui.info(format!("pre-release check: {check}"));
    ctx.sh
        .read(ctx.sh.cmd(program).args(args))
        .map(|_| ())
        .map_err(|e| match e {
            Error::Command {
                status, tail: out, ..
            } => Error::Preflight(format!(
                "pre-release check `{check}` failed ({status}); fix it before releasing:\n{}",
                tail(&out, 20)
            )),
            other => other,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_gcc_names() {
        let gcc = |t: &str| gcc_for(&Target::new(t).unwrap());
        assert_eq!(gcc("aarch64-unknown-linux-gnu"), "aarch64-linux-gnu-gcc");
        assert_eq!(
            gcc("armv7-unknown-linux-gnueabihf"),
            "arm-linux-gnueabihf-gcc"
        );
        assert_eq!(gcc("riscv64gc-unknown-linux-gnu"), "riscv64-linux-gnu-gcc");
        assert_eq!(gcc("aarch64-unknown-linux-musl"), "aarch64-linux-gnu-gcc");
        assert!(
            install_hint("aarch64-linux-gnu-gcc")
                .unwrap()
                .contains("gcc-aarch64-linux-gnu")
        );
    }
}
