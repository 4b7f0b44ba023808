//! The one error type: every situation a user can hit, with its evidence and its fix.

use std::path::PathBuf;

/// Exit codes are part of the CLI contract (DESIGN.md): scripts and CI rely on them.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const VERIFY: i32 = 3;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// release.toml (or release.local.toml) could not be parsed or is inconsistent.
    #[error("{0}")]
    Config(String),

    #[error("{0}")]
    Tag(String),

    /// The plan found a problem before anything was built (names, versions, bins).
    #[error("{0}")]
    Plan(String),

    /// Preflight refused to start: the message says what is missing and how to fix it.
    #[error("{0}")]
    Preflight(String),

    #[error("{what}: {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An external command failed; `tail` is the end of its output, the part that says why.
    #[error("`{command}` failed ({status})\n{tail}")]
    Command {
        command: String,
        status: String,
        tail: String,
    },

    #[error("{0}")]
    Build(String),

    #[error("{0}")]
    Manifest(String),

    #[error("{0}")]
    Sign(String),

    /// Publishing to GitHub failed; the message says what is left (at most a draft) and how
    /// to resume.
    #[error("{0}")]
    Publish(String),

    /// The release (or a directory given to `xrelease verify`) failed verification.
    #[error("verification failed:\n{0}")]
    Verification(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Tag(_) | Error::Plan(_) | Error::Preflight(_) => exit::USAGE,
            Error::Io { .. }
            | Error::Command { .. }
            | Error::Build(_)
            | Error::Manifest(_)
            | Error::Sign(_)
            | Error::Publish(_) => exit::FAILURE,
            Error::Verification(_) => exit::VERIFY,
        }
    }

    pub fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The last `n` lines of a command's output: enough to see why it failed, short enough to read.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}
