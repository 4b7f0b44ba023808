//! The one door for child processes: every command xrelease runs goes through here (xshell).
//!
//! Failures carry the command line and the tail of its output; commands marked secret are never
//! echoed.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, tail};

pub struct Shell {
    sh: xshell::Shell,
}

impl Shell {
    pub fn new(dir: &Path) -> Result<Shell> {
        let sh =
            xshell::Shell::new().map_err(|e| Error::Build(format!("cannot start a shell: {e}")))?;
        sh.change_dir(dir);
        Ok(Shell { sh })
    }

    pub fn dir(&self) -> PathBuf {
        self.sh.current_dir()
    }

    /// A command to adjust (env, args) before running it with [`Shell::read`] or [`Shell::spawn`].
    pub fn cmd(&self, program: impl AsRef<Path>) -> xshell::Cmd<'_> {
        self.sh.cmd(program).quiet()
    }

    /// Runs a command to completion; its trimmed stdout, or an error with the tail of its output.
    pub fn read(&self, cmd: xshell::Cmd<'_>) -> Result<String> {
        let shown = cmd.to_string();
        let out = cmd.ignore_status().output().map_err(|e| Error::Command {
            command: shown.clone(),
            status: "could not start".into(),
            tail: e.to_string(),
        })?;
        if !out.status.success() {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            return Err(Error::Command {
                command: shown,
                status: out.status.to_string(),
                tail: tail(&text, 20),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Like [`Shell::read`], but `None` when the command ran and failed (a question, not an order).
    pub fn ask(&self, cmd: xshell::Cmd<'_>) -> Option<String> {
        self.read(cmd).ok()
    }

    /// For commands whose output is streamed (cargo's JSON messages): the std form of `cmd`.
    pub fn spawnable(cmd: xshell::Cmd<'_>) -> std::process::Command {
        cmd.into()
    }
}

/// Whether `program` can be started: a path that exists, or a name found on PATH.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = Path::new(program);
    if path.components().count() > 1 {
        return path.is_file().then(|| path.to_path_buf());
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
