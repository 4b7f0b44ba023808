//! `[image]` in release.toml: which bins become container images, from which targets, pushed where.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::platform::Target;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawImage {
    repository: Option<String>,
    bins: Option<Vec<String>>,
    targets: Option<Vec<String>>,
    labels: Option<BTreeMap<String, String>>,
}

/// The resolved `[image]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `host/path` the images are pushed to; None: `ghcr.io/OWNER/REPO` of the release's
    /// repository (known only once the run knows its repository).
    pub repository: Option<String>,
    /// Bins that get an image; empty: every released bin.
    pub bins: Vec<String>,
    /// The targets whose binaries form the platforms of each image, in index order.
    pub targets: Vec<Target>,
    /// Extra labels on every image config (the org.opencontainers.image.* ones are xrelease's).
    pub labels: BTreeMap<String, String>,
}

/// The image targets when none are configured: static binaries run FROM scratch, glibc ones don't.
pub const DEFAULT_TARGETS: [&str; 2] = ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"];

/// The OCI platform (os, architecture, variant) of a target that can be an image platform.
pub fn oci_platform(target: &Target) -> Option<(&'static str, &'static str, Option<&'static str>)> {
    if !target.triple.ends_with("-unknown-linux-musl") {
        return None;
    }
    match target.arch() {
        "x86_64" => Some(("linux", "amd64", None)),
        "aarch64" => Some(("linux", "arm64", Some("v8"))),
        _ => None,
    }
}

/// Resolves the section; errors are (key, why) for the caller to locate in the file.
pub fn resolve(
    raw: RawImage,
    release_targets: &[Target],
    _github_repository: Option<&str>,
) -> Result<Image, (&'static str, String)> {
    let repository = raw.repository.filter(|r| !r.is_empty());
    if let Some(repo) = &repository {
        check_repository(repo).map_err(|why| ("repository", why))?;
    }
    let triples = raw
        .targets
        .unwrap_or_else(|| DEFAULT_TARGETS.iter().map(|t| t.to_string()).collect());
    if triples.is_empty() {
        return Err((
            "targets",
            "is empty; an image needs at least one platform".into(),
        ));
    }
    let mut targets: Vec<Target> = Vec::new();
    for triple in &triples {
        let Some(target) = release_targets.iter().find(|t| t.triple == *triple) else {
            return Err((
                "targets",
                format!(
                    "`{triple}` is not built by this release; add it to release.targets \
                     (images are made from the release's own binaries)"
                ),
            ));
        };
        if oci_platform(target).is_none() {
            return Err((
                "targets",
                format!(
                    "`{triple}` cannot form an image FROM scratch: only static x86_64/aarch64 \
                     musl binaries can (use x86_64-unknown-linux-musl, aarch64-unknown-linux-musl)"
                ),
            ));
        }
        if targets
            .iter()
            .any(|t| oci_platform(t) == oci_platform(target))
        {
            return Err(("targets", format!("`{triple}` repeats a platform")));
        }
        targets.push(target.clone());
    }
    let labels = raw.labels.unwrap_or_default();
    if let Some(key) = labels.keys().find(|k| k.trim().is_empty()) {
        return Err(("labels", format!("`{key}` is not a label name")));
    }
    Ok(Image {
        repository,
        bins: raw.bins.unwrap_or_default(),
        targets,
        labels,
    })
}

/// `host[:port]/path`, lowercase, without tag or digest (those are xrelease's to set).
pub fn check_repository(repo: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "`{repo}` is not a repository of the form HOST/PATH (lowercase, no tag or digest), \
             e.g. ghcr.io/owner/repo"
        )
    };
    let (host, path) = repo.split_once('/').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && (host.contains('.') || host.contains(':') || host == "localhost")
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    let path_ok = !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
    if host_ok && path_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

impl Image {
    /// The repository of one bin's image: the configured (or default) repository when one bin has
    /// an image, `<repository>/<bin>` when several do (each image needs a name of its own).
    pub fn repository_for(
        &self,
        default_repo: Option<&str>,
        bin: &str,
        images: usize,
    ) -> Option<String> {
        let base = match &self.repository {
            Some(r) => r.clone(),
            None => format!("ghcr.io/{}", default_repo?.to_ascii_lowercase()),
        };
        Some(if images > 1 {
            format!("{base}/{}", bin.to_ascii_lowercase())
        } else {
            base
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(triples: &[&str]) -> Vec<Target> {
        triples.iter().map(|t| Target::new(t).unwrap()).collect()
    }

    #[test]
    fn defaults_are_the_two_musl_targets() {
        let release = targets(&[
            "x86_64-unknown-linux-gnu",
            "x86_64-unknown-linux-musl",
            "aarch64-unknown-linux-musl",
        ]);
        let image = resolve(RawImage::default(), &release, None).unwrap();
        let triples: Vec<_> = image.targets.iter().map(|t| t.triple.as_str()).collect();
        assert_eq!(triples, DEFAULT_TARGETS);
        assert_eq!(
            image.repository_for(Some("Owner/Repo"), "app", 1).unwrap(),
            "ghcr.io/owner/repo"
        );
        assert_eq!(
            image.repository_for(Some("o/r"), "app", 2).unwrap(),
            "ghcr.io/o/r/app"
        );
    }

    #[test]
    fn unbuilt_glibc_or_repeated_targets_are_refused() {
        let release = targets(&["x86_64-unknown-linux-gnu", "x86_64-unknown-linux-musl"]);
        let err = resolve(RawImage::default(), &release, None).unwrap_err();
        assert!(
            err.1.contains("aarch64-unknown-linux-musl` is not built"),
            "{err:?}"
        );
        let raw = RawImage {
            targets: Some(vec!["x86_64-unknown-linux-gnu".into()]),
            ..Default::default()
        };
        let err = resolve(raw, &release, None).unwrap_err();
        assert!(err.1.contains("FROM scratch"), "{err:?}");
        let raw = RawImage {
            targets: Some(vec![
                "x86_64-unknown-linux-musl".into(),
                "x86_64-unknown-linux-musl".into(),
            ]),
            ..Default::default()
        };
        assert!(
            resolve(raw, &release, None)
                .unwrap_err()
                .1
                .contains("repeats")
        );
    }

    #[test]
    fn repositories_are_host_and_lowercase_path() {
        assert!(check_repository("ghcr.io/owner/repo").is_ok());
        assert!(check_repository("127.0.0.1:5000/a/b").is_ok());
        for bad in [
            "owner/repo",
            "ghcr.io/Owner/repo",
            "ghcr.io/o/r:1.0",
            "ghcr.io/",
            "ghcr.io/o//r",
        ] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
    }
}
