//! Reading a published release back: its small metadata assets (`SHA256SUMS`, its signature,
//! the attestations, SBOMs) for `xrelease verify FILE --github OWNER/REPO@TAG`.
//!
//! Anonymous for public repositories, with `GITHUB_TOKEN` when set. The token only goes to the
//! API origin (HTTPS, or a loopback test server); the download redirect to GitHub's object
//! storage carries none. Nothing fetched is trusted: the verifier checks every byte.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::transport::origin_of;
use super::{GithubError, Repo, Token};

/// Metadata files are small; a bigger answer is refused rather than read.
const MAX_ASSET: u64 = 64 * 1024 * 1024;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        // The token must never follow a redirect to the storage host.
        .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
        .user_agent(concat!("xrelease/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn get(
    agent: &ureq::Agent,
    url: &str,
    accept: &str,
    token: Option<&Token>,
    what: &str,
) -> Result<(u16, Vec<u8>), GithubError> {
    let mut request = agent
        .get(url)
        .header("Accept", accept)
        .header("X-GitHub-Api-Version", "2022-11-28");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {}", token.secret()));
    }
    let fail = |detail: String| GithubError::BadResponse {
        action: what.to_string(),
        api_url: url.to_string(),
        detail,
    };
    let mut response = request.call().map_err(|e| fail(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ASSET)
        .read_to_vec()
        .map_err(|e| fail(e.to_string()))?;
    Ok((status, body))
}

/// Downloads the assets of the published release `tag` of `repo` whose names `wanted` accepts
/// into `dir`; returns their names. A missing release is an error naming it.
pub fn fetch_release_assets(
    api_url: &str,
    repo: &Repo,
    tag: &str,
    token: Option<&Token>,
    wanted: &dyn Fn(&str) -> bool,
    dir: &Path,
) -> Result<Vec<String>, GithubError> {
    let api = api_url.trim_end_matches('/');
    let origin = origin_of(api).map_err(|reason| GithubError::InvalidUrl {
        var: "GITHUB_API_URL",
        url: api.to_string(),
        reason,
    })?;
    let agent = agent();
    let action = format!("read release {tag} of {repo}");
    let url = format!(
        "{api}/repos/{}/{}/releases/tags/{}",
        repo.owner,
        repo.name,
        super::transport::encode(tag)
    );
    let (status, body) = get(&agent, &url, "application/vnd.github+json", token, &action)?;
    match status {
        200 => {}
        404 => {
            return Err(GithubError::Api {
                action,
                status,
                message: format!(
                    "no published release {tag} on {repo} (a private repository needs GITHUB_TOKEN)"
                ),
                codes: Vec::new(),
            });
        }
        _ => {
            return Err(GithubError::Api {
                action,
                status,
                message: String::from_utf8_lossy(&body).chars().take(300).collect(),
                codes: Vec::new(),
            });
        }
    }
    let release: Value = serde_json::from_slice(&body).map_err(|e| GithubError::BadResponse {
        action: action.clone(),
        api_url: api.to_string(),
        detail: format!("not a release: {e}"),
    })?;
    let mut fetched = Vec::new();
    for asset in release["assets"].as_array().into_iter().flatten() {
        let (Some(name), Some(url)) = (asset["name"].as_str(), asset["url"].as_str()) else {
            continue;
        };
        if !wanted(name) || name.contains('/') || name.contains("..") {
            continue;
        }
        // The asset's API URL must be on the API origin: the token goes with it.
        if !url.starts_with(&format!("{origin}/")) {
            return Err(GithubError::BadResponse {
                action,
                api_url: api.to_string(),
                detail: format!("asset URL {url} leaves {origin}"),
            });
        }
        let what = format!("download {name} from release {tag} of {repo}");
        let (status, bytes) = get(&agent, url, "application/octet-stream", token, &what)?;
        if status != 200 {
            return Err(GithubError::Api {
                action: what,
                status,
                message: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                codes: Vec::new(),
            });
        }
        let path = dir.join(name);
        std::fs::write(&path, &bytes).map_err(|source| GithubError::ReadFile {
            path: path.clone(),
            source,
        })?;
        fetched.push(name.to_string());
    }
    Ok(fetched)
}
