//! `xrelease init`: a commented release.toml and the tag-push workflow, rendered from templates/.
//!
//! The workflow is a function of release.toml (its targets decide the build matrix's runners are
//! listed by `xrelease plan --json`, and how xrelease is invoked depends on the workspace), so a
//! test can regenerate this repo's own workflow and fail when the committed one is stale.
//! Templates use `[[ ]]`/`[% %]` delimiters so that GitHub's `${{ }}` passes through untouched.

use std::path::Path;

use minijinja::Environment;
use minijinja::syntax::SyntaxConfig;
use serde::Serialize;

use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::workspace::Workspace;

const WORKFLOW_TEMPLATE: &str = include_str!("../templates/release.yml.j2");
const CONFIG_TEMPLATE: &str = include_str!("../templates/release.toml.j2");
pub const WORKFLOW_PATH: &str = ".github/workflows/release.yml";

/// How the workflow runs xrelease: through the workspace's own xtask when it has one that
/// depends on xrelease, else an installed `xrelease` of this version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Xtask,
    Installed,
}

impl Invocation {
    pub fn detect(workspace: &Workspace) -> Invocation {
        let xtask = workspace
            .metadata
            .workspace_packages()
            .into_iter()
            .find(|p| p.name.as_str() == "xtask");
        let uses_xrelease = xtask.is_some_and(|p| {
            p.dependencies.iter().any(|d| d.name == "xrelease")
                || workspace.members.iter().any(|m| m.name == "xrelease")
        });
        if uses_xrelease {
            Invocation::Xtask
        } else {
            Invocation::Installed
        }
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .block_delimiters("[%", "%]")
            .variable_delimiters("[[", "]]")
            .comment_delimiters("[#", "#]")
            .build()
            .expect("valid delimiters"),
    );
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env
}

fn render(template: &str, context: impl Serialize) -> Result<String> {
    environment()
        .render_str(template, context)
        .map_err(|e| Error::Config(format!("cannot render a template: {e}")))
}

/// The release workflow for this config and workspace.
pub fn workflow(config: &Config, invocation: &Invocation) -> Result<String> {
    let (xrelease, install) = match invocation {
        Invocation::Xtask => ("cargo xtask", false),
        Invocation::Installed => ("xrelease", true),
    };
    // in-toto (issue 13): the functionary key comes from a secret; above threshold 1 the run
    // ends at a draft and a second builder job on another runner image rebuilds and publishes.
    let in_toto = config.in_toto.is_some();
    let rebuild = crate::intoto::stops_at_draft(config);
    render(
        WORKFLOW_TEMPLATE,
        minijinja::context! {
            xrelease,
            install,
            version => env!("CARGO_PKG_VERSION"),
            tag_pattern => config.tag_template.ci_pattern(),
            in_toto,
            rebuild,
        },
    )
}

/// The two musl targets `init --musl` adds: static binaries that run on any Linux.
pub const MUSL_TARGETS: [&str; 2] = ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"];

/// A commented release.toml with the defaults, naming this workspace's repository.
pub fn config_file(repository: &str, exclude_bins: &[String], musl: bool) -> Result<String> {
    let quote = |items: &[String]| {
        format!(
            "[{}]",
            items
                .iter()
                .map(|i| format!("\"{i}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut targets = vec![
        "x86_64-unknown-linux-gnu".to_string(),
        "aarch64-unknown-linux-gnu".to_string(),
    ];
    if musl {
        targets.extend(MUSL_TARGETS.map(String::from));
    }
    render(
        CONFIG_TEMPLATE,
        minijinja::context! { targets => quote(&targets), exclude_bins => quote(exclude_bins), repository },
    )
}

/// What `xrelease init` was asked for.
#[derive(Debug, Default)]
pub struct Options {
    /// `OWNER/REPO` for the new release.toml.
    pub repository: Option<String>,
    /// Replace an existing workflow that differs.
    pub force: bool,
    /// The workflow's file name under `.github/workflows/` (default `release.yml`).
    pub workflow_name: Option<String>,
    /// Release the two musl targets too.
    pub musl: bool,
}

/// What init did, file by file, and any note for the user.
#[derive(Debug, Default)]
pub struct Outcome {
    pub written: Vec<String>,
    pub notes: Vec<String>,
}

/// Writes release.toml (when absent), the .gitignore lines for xrelease's own files and the
/// workflow. Nothing the user has is overwritten unless `force` asks for the workflow: an
/// existing, different workflow is refused with the diff and the ways out.
pub fn run(dir: &Path, options: Options) -> Result<Outcome> {
    let workflow_rel = workflow_path(options.workflow_name.as_deref())?;
    let workspace = Workspace::load(dir)?;
    let invocation = Invocation::detect(&workspace);
    let mut out = Outcome::default();
    let config_path = dir.join(config::DEFAULT_FILE);
    // The config to write, if there is none yet: the workflow is rendered from it, and a
    // refusal below must leave the workspace exactly as it was.
    let new_config = if config_path.exists() {
        if options.musl {
            out.notes.push(format!(
                "{} exists and is left as it is: add {} to `[release] targets` for the musl builds",
                config::DEFAULT_FILE,
                MUSL_TARGETS.map(|t| format!("\"{t}\"")).join(", ")
            ));
        }
        None
    } else {
        let exclude: Vec<String> = if invocation == Invocation::Xtask {
            vec!["xtask".into()]
        } else {
            vec![]
        };
        Some(config_file(
            &options.repository.unwrap_or_default(),
            &exclude,
            options.musl,
        )?)
    };
    let config = match &new_config {
        Some(text) => config::parse(text, &config_path, dir.to_path_buf())?,
        None => config::load(&config_path, true)?,
    };
    let text = workflow(&config, &invocation)?;
    let path = dir.join(&workflow_rel);
    let existing = std::fs::read_to_string(&path).ok();
    match &existing {
        Some(existing) if *existing != text && !options.force => {
            let diff = similar::TextDiff::from_lines(existing.as_str(), text.as_str())
                .unified_diff()
                .context_radius(3)
                .header(&format!("{workflow_rel} (yours)"), "xrelease's")
                .to_string();
            return Err(Error::Config(format!(
                "{workflow_rel} exists and differs from what xrelease generates; nothing was overwritten.\n{diff}\
                 Keep yours and write xrelease's beside it with `--workflow-name xrelease.yml`, \
                 or replace yours with `--force`"
            )));
        }
        _ => {}
    }
    if let Some(new_config) = new_config {
        std::fs::write(&config_path, new_config)
            .map_err(Error::io("cannot write", &config_path))?;
        out.written.push(config::DEFAULT_FILE.to_string());
    }
    if ignore_own_files(dir)? {
        out.written.push(".gitignore".into());
    }
    if existing.as_deref() != Some(text.as_str()) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
        }
        std::fs::write(&path, text).map_err(Error::io("cannot write", &path))?;
        out.written.push(workflow_rel);
    }
    Ok(out)
}

/// `.github/workflows/NAME`, NAME a plain `*.yml`/`*.yaml` file name.
fn workflow_path(name: Option<&str>) -> Result<String> {
    let Some(name) = name else {
        return Ok(WORKFLOW_PATH.to_string());
    };
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    if !plain || !(name.ends_with(".yml") || name.ends_with(".yaml")) {
        return Err(Error::Config(format!(
            "--workflow-name `{name}`: give a plain file name ending in .yml, e.g. `xrelease.yml`"
        )));
    }
    Ok(format!(".github/workflows/{name}"))
}

/// The lines .gitignore needs so that xrelease's own files never dirty the tree: the output
/// directory and this machine's overrides. Appended when missing; returns whether it wrote.
fn ignore_own_files(dir: &Path) -> Result<bool> {
    let path = dir.join(".gitignore");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("cannot read", &path)(e)),
    };
    let has = |entry: &str| {
        text.lines().map(str::trim).any(|l| {
            let l = l.trim_start_matches('/').trim_end_matches('/');
            l == entry
        })
    };
    let missing: Vec<String> = [
        ("dist", "/dist/"),
        (config::LOCAL_FILE, "/release.local.toml"),
    ]
    .into_iter()
    .filter(|(entry, _)| !has(entry))
    .map(|(_, line)| line.to_string())
    .collect();
    if missing.is_empty() {
        return Ok(false);
    }
    let mut new = text;
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str("# xrelease: its output and this machine's toolchain overrides\n");
    for line in missing {
        new.push_str(&line);
        new.push('\n');
    }
    std::fs::write(&path, new).map_err(Error::io("cannot write", &path))?;
    Ok(true)
}
