//! `xrelease doctor [--fix]`: the preflight toolchain check for every target, and the repairs.
//!
//! Repairs that depend on this machine (Debian's rustc for a target rustup cannot download here)
//! are recorded in release.local.toml, never in release.toml: on another machine, say a CI runner
//! with rustup's target, the same override would be wrong.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{self, Config, Toolchain};
use crate::error::{Error, Result};
use crate::platform::{self, Target};
use crate::shell::{Shell, find_program};
use crate::stage::preflight::{check_target, gcc_for, linker_for};
use crate::ui::Ui;

/// Prints one line per target; returns whether every target is ready.
pub fn run(dir: &Path, config: &Config, fix: bool, ui: &Ui) -> Result<bool> {
    let sh = Shell::new(dir)?;
    let mut ready = true;
    for target in &config.targets {
        let mut toolchain = config.toolchain(target);
        let mut status = check_target(&sh, target, &toolchain);
        if status.is_err() && fix {
            if let Some(local) = repair(&sh, target, &toolchain, ui)? {
                record_local(&config.root, target, &local)?;
                toolchain = local;
            }
            status = check_target(&sh, target, &toolchain);
        }
        match status {
            Ok(line) => println!("[ok]      {line}"),
            Err(why) => {
                ready = false;
                println!("[missing] {why}");
            }
        }
    }
    if !ready && !fix {
        println!("run `xrelease doctor --fix` to install what can be installed");
    }
    Ok(ready)
}

/// Tries rustup first, then (Debian/Ubuntu, arm64) the apt recipe; returns the override to record.
fn repair(sh: &Shell, target: &Target, current: &Toolchain, ui: &Ui) -> Result<Option<Toolchain>> {
    let triple = &target.triple;
    let mut toolchain = current.clone();
    if current.rustc.is_none() && find_program("rustup").is_some() {
        ui.info(format!("rustup target add {triple}"));
        if sh
            .read(sh.cmd("rustup").args(["target", "add", triple]))
            .is_err()
        {
            ui.info(format!(
                "rustup could not add {triple} (no download access?)"
            ));
        }
    }
    let needs_cross = !platform::runs_natively(triple);
    let std_ok = |t: &Toolchain| {
        check_target(
            sh,
            target,
            &Toolchain {
                linker: Some("true".into()),
                runner: None,
                ..t.clone()
            },
        )
        .is_ok()
    };
    let apt = find_program("apt-get").is_some();
    let musl = triple.ends_with("-musl");
    if triple.starts_with("aarch64-unknown-linux-") && needs_cross && apt {
        let mut packages = Vec::new();
        // Debian's rustc has no musl std: for musl targets rustup's is the only source.
        if !musl
            && !std_ok(&toolchain)
            && !std_ok(&Toolchain {
                rustc: Some("/usr/bin/rustc".into()),
                ..toolchain.clone()
            })
        {
            packages.extend(["rustc-web", "libstd-rust-web-dev:arm64"]);
        }
        if find_program(&gcc_for(target)).is_none() {
            packages.push("gcc-aarch64-linux-gnu");
        }
        if find_program("qemu-aarch64-static").is_none() {
            packages.push("qemu-user-static");
        }
        if !packages.is_empty() {
            apt_install(sh, &packages, ui)?;
        }
        if !musl
            && !std_ok(&toolchain)
            && std_ok(&Toolchain {
                rustc: Some("/usr/bin/rustc".into()),
                ..toolchain.clone()
            })
        {
            toolchain.rustc = Some("/usr/bin/rustc".into());
        }
        if toolchain.runner.is_none() && find_program("qemu-aarch64-static").is_some() {
            // A static musl binary needs no target libraries; a glibc one needs Debian's.
            toolchain.runner = Some(if musl {
                "qemu-aarch64-static".into()
            } else {
                "qemu-aarch64-static -L /usr/aarch64-linux-gnu".into()
            });
        }
    }
    if needs_cross
        && linker_for(target, &toolchain).is_none()
        && find_program(&gcc_for(target)).is_some()
    {
        toolchain.linker = Some(gcc_for(target));
    }
    Ok((toolchain != *current).then_some(toolchain))
}

fn apt_install(sh: &Shell, packages: &[&str], ui: &Ui) -> Result<()> {
    let root = sh.ask(sh.cmd("id").arg("-u")).as_deref() == Some("0");
    let prefix: Vec<&str> = if root { vec![] } else { vec!["sudo"] };
    let steps: Vec<Vec<&str>> = vec![
        vec!["dpkg", "--add-architecture", "arm64"],
        vec!["apt-get", "update", "-qq"],
        [&["apt-get", "install", "-y", "-qq"][..], packages].concat(),
    ];
    for step in steps {
        let words: Vec<&str> = prefix.iter().chain(step.iter()).copied().collect();
        ui.info(words.join(" "));
        sh.read(
            sh.cmd(words[0])
                .args(&words[1..])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    Ok(())
}

/// Writes (merging) `[target.T]` into release.local.toml, which release.toml's values yield to.
fn record_local(root: &Path, target: &Target, toolchain: &Toolchain) -> Result<()> {
    #[derive(serde::Serialize, serde::Deserialize, Default)]
    struct Local {
        #[serde(default)]
        target: BTreeMap<String, Toolchain>,
    }
    let path = root.join(config::LOCAL_FILE);
    let mut local: Local = match std::fs::read_to_string(&path) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
        }
        Err(_) => Local::default(),
    };
    local
        .target
        .insert(target.triple.clone(), toolchain.clone());
    let body = toml::to_string(&local)
        .map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))?;
    let text = format!(
        "# This machine's toolchain overrides, written by `xrelease doctor --fix`.\n\
         # Keep it out of git: it describes this machine, not the release. Its values win over release.toml's.\n\n{body}"
    );
    std::fs::write(&path, text).map_err(Error::io("cannot write", &path))?;
    println!(
        "recorded this machine's [target.{}] override in {}",
        target.triple,
        path.display()
    );
    Ok(())
}
