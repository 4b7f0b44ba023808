//! GitHub's attestation store: a keyless release's attestation bundles are stored with the
//! repository, so `gh attestation verify FILE --repo OWNER/REPO` finds them by the file's digest.
//!
//! Storing is idempotent: before each upload (and before each retry, since an answer may have
//! been lost) the store is listed by the subject's digest, and a bundle holding the same DSSE
//! envelope counts as stored. Repositories whose plan lacks the feature (GitHub answers 404
//! or 403) are reported as such, not as a failure.

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::local::PlannedRequest;
use super::transport::{next_link, parse_error_body, scrub};
use super::{ClientConfig, Failure, GitHub, GithubError, Inner, PER_PAGE, Repo};

/// One bundle to store: `subject_sha256` is the hex digest of a subject of its statement (the
/// store is listed by it to find an earlier upload).
#[derive(Clone, Debug)]
pub struct AttestationUpload {
    pub name: String,
    pub subject_sha256: String,
    pub bundle: Value,
}

/// What happened to one bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Uploaded by this run; GitHub's id for it.
    Uploaded(u64),
    /// Already in the store (an earlier run, or this run's lost answer).
    Present,
    /// The repository cannot store attestations (its plan, or the token's permissions).
    Unavailable { status: u16, message: String },
}

/// Pages of attestations for one digest bounded, like every listing.
const MAX_PAGES: usize = 20;

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    attestations: Vec<Listed>,
}

#[derive(Deserialize)]
struct Listed {
    bundle: Option<Value>,
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

/// Two bundles are the same attestation when they carry the same envelope (payload and
/// signatures); the verification material may be re-encoded by the store.
fn same_attestation(a: &Value, b: &Value) -> bool {
    !a["dsseEnvelope"].is_null() && a["dsseEnvelope"] == b["dsseEnvelope"]
}

fn list_path(repo_path: &str, sha256: &str) -> String {
    format!("{repo_path}/attestations/sha256:{sha256}")
}

impl Inner {
    /// `Ok(None)`: the bundle is not stored yet; `Ok(Some(Stored::…))`: nothing to upload.
    async fn find_attestation(&self, up: &AttestationUpload) -> Result<Option<Stored>, Failure> {
        let action = format!("list the attestations of {}", up.name);
        let mut uri = format!(
            "{}?per_page={PER_PAGE}",
            list_path(&self.repo_path(), &up.subject_sha256)
        );
        for _ in 0..MAX_PAGES {
            let reply = self.send(Method::GET, &uri, None).await?;
            match reply.status {
                // GitHub answers 404 when nothing is stored for the digest.
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::FORBIDDEN => {
                    let (message, _) = parse_error_body(&reply.body);
                    return Ok(Some(Stored::Unavailable {
                        status: 403,
                        message: scrub(&message, &self.token),
                    }));
                }
                _ => {}
            }
            let page: Listing = self.json(&action, &reply)?;
            if page
                .attestations
                .iter()
                .filter_map(|l| l.bundle.as_ref())
                .any(|b| same_attestation(b, &up.bundle))
            {
                return Ok(Some(Stored::Present));
            }
            match next_link(&reply.headers) {
                Some(next) if next.starts_with(&format!("{}/", self.api_origin)) => uri = next,
                Some(next) => {
                    return Err(Failure::Fatal(self.bad_response(
                        &action,
                        format!("pagination link {next} leaves {}", self.api_origin),
                    )));
                }
                None => return Ok(None),
            }
        }
        Err(Failure::Fatal(GithubError::TooManyPages {
            what: action,
            max: MAX_PAGES,
        }))
    }

    async fn store_attestation(&self, up: &AttestationUpload) -> Result<Stored, GithubError> {
        let action = format!("store the attestation {}", up.name);
        let path = format!("{}/attestations", self.repo_path());
        let body = json!({ "bundle": up.bundle });
        self.retrying(&action, |_| async {
            if let Some(done) = self.find_attestation(up).await? {
                return Ok(done);
            }
            let reply = self.send(Method::POST, &path, Some(&body)).await?;
            if matches!(reply.status.as_u16(), 403 | 404) {
                let (message, _) = parse_error_body(&reply.body);
                return Ok(Stored::Unavailable {
                    status: reply.status.as_u16(),
                    message: scrub(&message, &self.token),
                });
            }
            let created: Created = self.json(&action, &reply)?;
            Ok(Stored::Uploaded(created.id))
        })
        .await
    }
}

impl GitHub {
    /// Stores each bundle unless it is already stored, in order; stops at the first answer
    /// that says the repository cannot store attestations (the rest would get the same).
    pub fn store_attestations(
        &self,
        uploads: &[AttestationUpload],
    ) -> Result<Vec<(String, Stored)>, GithubError> {
        let mut out = Vec::new();
        for up in uploads {
            let stored = self.rt.block_on(self.inner.store_attestation(up))?;
            let stop = matches!(stored, Stored::Unavailable { .. });
            out.push((up.name.clone(), stored));
            if stop {
                break;
            }
        }
        Ok(out)
    }
}

/// The requests [`GitHub::store_attestations`] sends when nothing is stored yet.
pub fn rehearse_attestations(
    repo: Option<&Repo>,
    config: &ClientConfig,
    uploads: &[AttestationUpload],
) -> Vec<PlannedRequest> {
    let api = config.api_url.trim_end_matches('/');
    let repo_path = match repo {
        Some(r) => format!("{api}/repos/{}/{}", r.owner, r.name),
        None => format!("{api}/repos/{{owner}}/{{repo}}"),
    };
    let mut requests = Vec::new();
    for up in uploads {
        requests.push(PlannedRequest {
            method: "GET",
            url: format!(
                "{}?per_page={PER_PAGE}",
                list_path(&repo_path, &up.subject_sha256)
            ),
            purpose: format!(
                "find {} in the attestation store, to never store it twice",
                up.name
            ),
            body: None,
            size: None,
            digest: None,
        });
        requests.push(PlannedRequest {
            method: "POST",
            url: format!("{repo_path}/attestations"),
            purpose: format!("store {} for `gh attestation verify`", up.name),
            body: Some(json!({ "bundle": format!("<the Sigstore bundle {}>", up.name) })),
            size: None,
            digest: None,
        });
    }
    requests
}
