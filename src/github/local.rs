//! What is checked without the network: asset names and files, their digests against the
//! verified ones, and how a remote asset compares; and the description of a publish that a
//! rehearsal records instead of sending it.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::transport::encode;
use super::{
    Asset, ClientConfig, DEFAULT_API_URL, GithubError, LocalAsset, PER_PAGE, ReleasePlan, Repo,
    UPLOAD_CHUNK,
};

fn is_asset_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+')
}

/// Hashes the file and checks its name would survive GitHub unchanged.
pub(super) fn prepare_local(
    name: &str,
    path: &Path,
    expected: Option<&str>,
) -> Result<LocalAsset, GithubError> {
    // GitHub silently renames assets with other characters, which would make
    // the uploaded asset impossible to match with the local file.
    if name.is_empty()
        || name.starts_with('.')
        || name.ends_with('.')
        || !name.chars().all(is_asset_name_char)
    {
        return Err(GithubError::InvalidPlan(format!(
            "asset name `{name}` would be renamed by GitHub: use only letters, digits and . - _ + (not starting or ending with .)"
        )));
    }
    let read_err = |source| GithubError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(expected) = expected {
        if !expected.eq_ignore_ascii_case(&digest) {
            return Err(GithubError::Changed {
                path: path.to_path_buf(),
                expected: expected.to_string(),
                actual: digest,
            });
        }
    }
    Ok(LocalAsset {
        name: name.to_string(),
        path: path.to_path_buf(),
        size,
        digest: format!("sha256:{digest}"),
    })
}

/// Everything local is checked before the first request, so a bad plan never leaves a
/// half-made draft behind (and a rehearsal finds the same problems a real run would).
pub(super) fn prepare_plan(plan: &ReleasePlan) -> Result<Vec<LocalAsset>, GithubError> {
    if plan.tag.trim().is_empty() {
        return Err(GithubError::InvalidPlan("the tag is empty".into()));
    }
    let mut seen = HashSet::new();
    for a in &plan.assets {
        // GitHub's name check is not reliably case-sensitive.
        if !seen.insert(a.name.to_ascii_lowercase()) {
            return Err(GithubError::InvalidPlan(format!(
                "asset name {} appears twice (names are compared ignoring case)",
                a.name
            )));
        }
    }
    plan.assets
        .iter()
        .map(|a| prepare_local(&a.name, &a.path, a.sha256.as_deref()))
        .collect()
}

/// One request a publish would send, as a rehearsal records it (`publish-plan.json`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlannedRequest {
    pub method: &'static str,
    /// `{release_id}` stands for the id GitHub gives the draft.
    pub url: String,
    pub purpose: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Uploads: the bytes sent and their digest (`sha256:<hex>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// The requests [`GitHub::publish_release`] sends for `plan` when nothing exists yet for the
/// tag and nothing fails, in order — without sending any, and without a token. The plan is
/// checked exactly as a real publish checks it. `repo` is `None` when it is not known
/// (the URLs then say `{owner}/{repo}`).
pub fn rehearse(
    repo: Option<&Repo>,
    config: &ClientConfig,
    plan: &ReleasePlan,
) -> Result<Vec<PlannedRequest>, GithubError> {
    let locals = prepare_plan(plan)?;
    let api = config.api_url.trim_end_matches('/');
    let repo_path = match repo {
        Some(r) => format!("{api}/repos/{}/{}", r.owner, r.name),
        None => format!("{api}/repos/{{owner}}/{{repo}}"),
    };
    // The real upload URL is the one GitHub returns with the draft; this is where it is on
    // github.com and on Enterprise servers.
    let upload_base = match &config.upload_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None if api == DEFAULT_API_URL => "https://uploads.github.com".to_string(),
        None => match api.strip_suffix("/api/v3") {
            Some(host) => format!("{host}/api/uploads"),
            None => "{upload host of the draft's upload_url}".to_string(),
        },
    };
    let upload_path = upload_base.clone() + &repo_path[api.len()..];
    let request = |method, url: String, purpose: &str| PlannedRequest {
        method,
        url,
        purpose: purpose.to_string(),
        body: None,
        size: None,
        digest: None,
    };
    let mut requests = vec![
        request(
            "GET",
            repo_path.clone(),
            "check that the token reaches the repository and may push to it",
        ),
        request(
            "GET",
            format!("{repo_path}/releases/tags/{}", encode(&plan.tag)),
            "refuse a published release for the tag",
        ),
        request(
            "GET",
            format!("{repo_path}/releases?per_page={PER_PAGE}"),
            "find a draft left by an earlier attempt, to resume it",
        ),
        PlannedRequest {
            body: Some(serde_json::json!({
                "tag_name": plan.tag,
                "name": plan.name,
                "body": plan.body,
                "draft": true,
                "prerelease": plan.prerelease,
            })),
            ..request(
                "POST",
                format!("{repo_path}/releases"),
                "create the release as a draft",
            )
        },
    ];
    for local in &locals {
        requests.push(PlannedRequest {
            size: Some(local.size),
            digest: Some(local.digest.clone()),
            ..request(
                "POST",
                format!(
                    "{upload_path}/releases/{{release_id}}/assets?name={}",
                    encode(&local.name)
                ),
                &format!("upload {}", local.name),
            )
        });
    }
    requests.push(request(
        "GET",
        format!("{repo_path}/releases/{{release_id}}/assets?per_page={PER_PAGE}"),
        "list the draft's assets and compare names, sizes and digests with the release",
    ));
    requests.push(PlannedRequest {
        body: Some(serde_json::json!({
            "draft": false,
            "prerelease": plan.prerelease,
            "name": plan.name,
            "body": plan.body,
        })),
        ..request(
            "PATCH",
            format!("{repo_path}/releases/{{release_id}}"),
            "publish: the release becomes visible, once",
        )
    });
    Ok(requests)
}

/// How a remote asset compares with the local file of the same name.
pub(super) fn compare(remote: &Asset, local: &LocalAsset) -> Result<(), String> {
    if remote.state != "uploaded" {
        return Err(format!(
            "{}: incomplete upload on GitHub (state `{}`)",
            remote.name, remote.state
        ));
    }
    if remote.size != local.size {
        return Err(format!(
            "{}: {} bytes on GitHub, {} bytes locally",
            remote.name, remote.size, local.size
        ));
    }
    match &remote.digest {
        Some(d) if d.eq_ignore_ascii_case(&local.digest) => Ok(()),
        Some(d) => Err(format!(
            "{}: {d} on GitHub, {} locally",
            remote.name, local.digest
        )),
        None => Err(format!(
            "{}: GitHub reports no digest, so its content cannot be verified",
            remote.name
        )),
    }
}
