//! Everything a release run knows before it starts: config, workspace, tag, plan, where to write.

use std::path::{Path, PathBuf};

use crate::config::{self, Config};
use crate::error::Result;
use crate::plan::{self, Plan};
use crate::shell::Shell;
use crate::tag::Tag;
use crate::ui::Ui;
use crate::workspace::Workspace;

/// Decided once, at the composition root: a rehearsal and a real release share every stage
/// except the last side effects (what signs, what publishes) and the checks that only a real
/// release needs (the tag exists at HEAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Real,
    Rehearsal,
}

pub struct Context {
    pub config: Config,
    pub workspace: Workspace,
    pub tag: Tag,
    pub plan: Plan,
    /// `dist/<tag>/`: the only place xrelease writes release files.
    pub dist: PathBuf,
    pub mode: Mode,
    pub allow_dirty: bool,
    pub sh: Shell,
    pub ui: Ui,
    /// When this run started (RFC 3339): the provenance's `startedOn`.
    pub started_on: String,
}

pub struct Inputs<'a> {
    pub dir: &'a Path,
    pub config: Option<&'a Path>,
    pub tag: Tag,
    pub dist: Option<&'a Path>,
    pub mode: Mode,
    pub allow_dirty: bool,
    pub quiet: bool,
}

impl Context {
    /// Loads the config and the workspace and plans the release; nothing is built or written.
    pub fn load(inputs: Inputs<'_>) -> Result<Context> {
        let config = load_config(inputs.dir, inputs.config)?;
        let workspace = Workspace::load(inputs.dir)?;
        let plan = plan::plan(&config, &workspace, &inputs.tag)?;
        let tag = inputs.tag.with_template(&config.tag_template)?;
        let dist = match inputs.dist {
            Some(d) => inputs.dir.join(d),
            None => workspace.root.join("dist").join(inputs.tag.to_string()),
        };
        Ok(Context {
            sh: Shell::new(&workspace.root)?,
            ui: Ui::new(inputs.quiet),
            config,
            workspace,
            tag,
            plan,
            dist,
            mode: inputs.mode,
            allow_dirty: inputs.allow_dirty,
            started_on: crate::stage::attest::now_rfc3339(),
        })
    }
}

impl Context {
    /// `OWNER/REPO` on GitHub: `[github] repository`, else `GITHUB_REPOSITORY`, else the
    /// `origin` remote when it is on GitHub.
    pub fn repository(&self) -> Option<String> {
        self.config
            .github_repository
            .clone()
            .or_else(|| {
                std::env::var("GITHUB_REPOSITORY")
                    .ok()
                    .filter(|r| crate::config::check_repository(r).is_ok())
            })
            .or_else(|| crate::git::Git::new(&self.sh).github_remote())
    }

    /// What the release gate expects the provenance to name.
    pub fn expect(&self) -> crate::verify::Expect {
        crate::verify::Expect {
            repository: self.repository(),
            tag: Some(self.tag.to_string()),
        }
    }
}

pub fn load_config(dir: &Path, explicit: Option<&Path>) -> Result<Config> {
    match explicit {
        Some(path) => config::load(&dir.join(path), true),
        None => config::load(&dir.join(config::DEFAULT_FILE), false),
    }
}
