//! What the release needs to know from git: cleanliness, HEAD, the tag, the commit time, the remote.

use crate::error::{Error, Result};
use crate::shell::Shell;

pub struct Git<'a> {
    sh: &'a Shell,
}

impl<'a> Git<'a> {
    pub fn new(sh: &'a Shell) -> Git<'a> {
        Git { sh }
    }

    pub fn head(&self) -> Result<String> {
        self.sh
            .read(self.sh.cmd("git").args(["rev-parse", "--verify", "HEAD^{commit}"]))
            .map_err(|e| Error::Preflight(format!("cannot find the git commit to release (is this a git repository with a commit?): {e}")))
    }

    /// Committer time of HEAD: the `SOURCE_DATE_EPOCH` of the release.
    pub fn commit_time(&self, commit: &str) -> Result<i64> {
        let text = self.sh.read(
            self.sh
                .cmd("git")
                .args(["show", "-s", "--format=%ct", commit]),
        )?;
        text.parse().map_err(|_| {
            Error::Preflight(format!(
                "git gave a commit time that is not a number: `{text}`"
            ))
        })
    }

    /// Changed and untracked files (ignored ones aside), one `git status --porcelain` line each.
    pub fn dirty_files(&self) -> Result<Vec<String>> {
        let text = self.sh.read(self.sh.cmd("git").args([
            "status",
            "--porcelain",
            "--untracked-files=normal",
        ]))?;
        Ok(text
            .lines()
            .map(|l| l.trim_end().to_string())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// The repository's top directory: `git status` names paths relative to it.
    pub fn toplevel(&self) -> Result<std::path::PathBuf> {
        self.sh
            .read(self.sh.cmd("git").args(["rev-parse", "--show-toplevel"]))
            .map(std::path::PathBuf::from)
    }

    /// The commit a tag points at, or `None` when the tag does not exist.
    pub fn tag_commit(&self, tag: &str) -> Option<String> {
        self.sh.ask(self.sh.cmd("git").args([
            "rev-parse",
            "-q",
            "--verify",
            &format!("refs/tags/{tag}^{{commit}}"),
        ]))
    }

    /// `OWNER/REPO` from the `origin` remote when it is a GitHub URL.
    pub fn github_remote(&self) -> Option<String> {
        let url = self
            .sh
            .ask(self.sh.cmd("git").args(["remote", "get-url", "origin"]))?;
        parse_github_url(&url)
    }
}

fn parse_github_url(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://github.com/")
        .or_else(|| url.strip_prefix("git@github.com:"))
        .or_else(|| url.strip_prefix("ssh://git@github.com/"))?;
    let repo = rest.trim_end_matches('/').trim_end_matches(".git");
    crate::config::check_repository(repo)
        .ok()
        .map(|_| repo.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn github_remotes_give_owner_and_repo() {
        for url in [
            "https://github.com/o/r.git",
            "git@github.com:o/r.git",
            "ssh://git@github.com/o/r",
            "https://github.com/o/r/",
        ] {
            assert_eq!(
                super::parse_github_url(url).as_deref(),
                Some("o/r"),
                "{url}"
            );
        }
        assert_eq!(super::parse_github_url("https://gitlab.com/o/r.git"), None);
    }
}
