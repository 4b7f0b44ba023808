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
        minijinja::context! { xrelease, install, version => env!("CARGO_PKG_VERSION"), in_toto, rebuild },
    )
}

/// A commented release.toml with the defaults, naming this workspace's repository.
pub fn config_file(repository: &str, exclude_bins: &[String]) -> Result<String> {
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
    let targets = [
        "x86_64-unknown-linux-gnu".to_string(),
        "aarch64-unknown-linux-gnu".to_string(),
    ];
    render(
        CONFIG_TEMPLATE,
        minijinja::context! { targets => quote(&targets), exclude_bins => quote(exclude_bins), repository },
    )
}

/// Writes release.toml (when absent) and the workflow; an existing, different workflow is only
/// replaced with `force`.
pub fn run(dir: &Path, repository: Option<String>, force: bool) -> Result<Vec<String>> {
    let workspace = Workspace::load(dir)?;
    let invocation = Invocation::detect(&workspace);
    let mut written = Vec::new();
    let config_path = dir.join(config::DEFAULT_FILE);
    if !config_path.exists() {
        let exclude: Vec<String> = if invocation == Invocation::Xtask {
            vec!["xtask".into()]
        } else {
            vec![]
        };
        let text = config_file(&repository.unwrap_or_default(), &exclude)?;
        std::fs::write(&config_path, text).map_err(Error::io("cannot write", &config_path))?;
        written.push(config::DEFAULT_FILE.to_string());
    }
    let config = config::load(&config_path, true)?;
    let text = workflow(&config, &invocation)?;
    let path = dir.join(WORKFLOW_PATH);
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == text => return Ok(written),
        Ok(_) if !force => {
            return Err(Error::Config(format!(
                "{WORKFLOW_PATH} exists and differs from what release.toml generates; re-run with --force to replace it"
            )));
        }
        _ => {}
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
    }
    std::fs::write(&path, text).map_err(Error::io("cannot write", &path))?;
    written.push(WORKFLOW_PATH.to_string());
    Ok(written)
}
