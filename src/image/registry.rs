//! The only code that talks to container registries: oci-client over rustls (ring), with
//! credentials from `GITHUB_TOKEN` (ghcr.io) or the docker `config.json` (`DOCKER_CONFIG`).
//!
//! Loopback registries (127.0.0.1, localhost, [::1]) are spoken to over plain HTTP, as docker
//! does; every other host over HTTPS only.

use std::path::PathBuf;

use base64::Engine as _;
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::layout::{Blob, Image};

/// Why a registry call failed: unreachable (network, TLS, 5xx) or refused by the registry.
#[derive(Debug)]
pub enum RegistryError {
    Unreachable(String),
    Refused(String),
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryError::Unreachable(why) | RegistryError::Refused(why) => f.write_str(why),
        }
    }
}

pub type Result<T> = std::result::Result<T, RegistryError>;

/// What pushing a tag found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The tag was new: every missing blob and manifest went up, then the tag.
    Created,
    /// The tag already pointed at this very index: nothing was sent.
    Kept,
}

pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    rt: tokio::runtime::Runtime,
    host: String,
}

pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

fn is_loopback(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name);
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

impl Registry {
    /// A client for the registry `repository` lives on, with that registry's credentials.
    pub fn for_repository(repository: &str) -> Result<Registry> {
        let host = repository
            .split_once('/')
            .map(|(h, _)| h.to_string())
            .ok_or_else(|| {
                RegistryError::Refused(format!("`{repository}` names no registry host"))
            })?;
        // reqwest is built without a default TLS provider (no aws-lc C build): ring it is. A
        // second install (another client in this process) is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if is_loopback(&host) {
            oci_client::client::ClientProtocol::HttpsExcept(vec![host.clone()])
        } else {
            oci_client::client::ClientProtocol::Https
        };
        let client = Client::new(oci_client::client::ClientConfig {
            protocol,
            ..Default::default()
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                RegistryError::Unreachable(format!("cannot start the async runtime: {e}"))
            })?;
        let auth = credentials(&host).map_err(RegistryError::Refused)?;
        Ok(Registry {
            client,
            auth,
            rt,
            host,
        })
    }

    fn reference(&self, text: &str) -> Result<Reference> {
        text.parse()
            .map_err(|e| RegistryError::Refused(format!("`{text}` is not an image reference: {e}")))
    }

    /// The manifest (or index) a tag or digest names, with its digest; None when there is none.
    pub fn get(&self, reference: &str) -> Result<Option<(Vec<u8>, String)>> {
        let r = self.reference(reference)?;
        let res = self.rt.block_on(self.client.pull_manifest_raw(
            &r,
            &self.auth,
            &[INDEX_TYPE, MANIFEST_TYPE],
        ));
        match res {
            Ok((bytes, digest)) => Ok(Some((bytes.to_vec(), digest))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.classify(e, reference)),
        }
    }

    /// A blob's bytes, checked against its digest.
    pub fn blob(&self, repository: &str, digest: &str) -> Result<Vec<u8>> {
        let r = self.reference(&format!("{repository}@{digest}"))?;
        let mut out = Vec::new();
        self.rt
            .block_on(async {
                self.client
                    .auth(&r, &self.auth, oci_client::RegistryOperation::Pull)
                    .await?;
                self.client.pull_blob(&r, digest, &mut out).await
            })
            .map_err(|e| self.classify(e, &format!("blob {digest}")))?;
        let actual = format!("sha256:{}", crate::digest::sha256_bytes(&out));
        if actual != digest {
            return Err(RegistryError::Refused(format!(
                "the registry served {actual} for blob {digest}"
            )));
        }
        Ok(out)
    }

    /// Uploads a blob unless the registry has it.
    pub fn put_blob(&self, repository: &str, blob: &Blob) -> Result<()> {
        let digest = blob.digest();
        let r = self.reference(&format!("{repository}@{digest}"))?;
        self.rt
            .block_on(async {
                self.client
                    .auth(&r, &self.auth, oci_client::RegistryOperation::Push)
                    .await?;
                if !self.client.blob_exists(&r, &digest).await? {
                    self.client
                        .push_blob(&r, blob.bytes.clone(), &digest)
                        .await?;
                }
                Ok::<(), OciDistributionError>(())
            })
            .map_err(|e| self.classify(e, &format!("blob {digest}")))
    }

    /// Puts a manifest or index under `reference` (a tag, or its own digest).
    pub fn put_manifest(&self, reference: &str, bytes: &[u8], media_type: &str) -> Result<()> {
        let r = self.reference(reference)?;
        let content_type = http::HeaderValue::from_str(media_type)
            .map_err(|_| RegistryError::Refused(format!("bad media type {media_type}")))?;
        self.rt
            .block_on(async {
                self.client
                    .auth(&r, &self.auth, oci_client::RegistryOperation::Push)
                    .await?;
                self.client
                    .push_manifest_raw(&r, bytes.to_vec(), content_type)
                    .await
            })
            .map(|_| ())
            .map_err(|e| self.classify(e, reference))
    }

    /// Pushes `image` as `repository:tag`: blobs and platform manifests by digest, then the index
    /// under the tag. A tag already at another digest is refused before anything is sent; one
    /// already at this digest is kept.
    pub fn push_image(&self, repository: &str, tag: &str, image: &Image) -> Result<Pushed> {
        let tagged = format!("{repository}:{tag}");
        let want = image.index.digest();
        if let Some((_, digest)) = self.get(&tagged)? {
            return if digest == want {
                Ok(Pushed::Kept)
            } else {
                Err(RegistryError::Refused(format!(
                    "{tagged} already points at {digest}, not at this release's {want}: \
                     a published tag is not moved; cut a new version"
                )))
            };
        }
        for p in &image.platforms {
            self.put_blob(repository, &p.layer)?;
            self.put_blob(repository, &p.config)?;
            self.put_manifest(
                &format!("{repository}@{}", p.manifest.digest()),
                &p.manifest.bytes,
                MANIFEST_TYPE,
            )?;
        }
        self.put_manifest(&tagged, &image.index.bytes, INDEX_TYPE)?;
        match self.get(&tagged)? {
            Some((_, digest)) if digest == want => Ok(Pushed::Created),
            other => Err(RegistryError::Refused(format!(
                "after the push, {tagged} points at {}, not {want}",
                other.map_or("nothing".into(), |(_, d)| d)
            ))),
        }
    }

    /// Whether the registry implements the OCI 1.1 referrers API (`GET /v2/<name>/referrers/
    /// <digest>` answers with an index); distribution 2.8 and ghcr.io answer 404.
    pub fn has_referrers_api(&self, repository: &str, subject: &str) -> Result<bool> {
        let r = self.reference(&format!("{repository}@{subject}"))?;
        let token = self
            .rt
            .block_on(
                self.client
                    .auth(&r, &self.auth, oci_client::RegistryOperation::Pull),
            )
            .map_err(|e| self.classify(e, "the referrers API"))?;
        let authorization = match (token, &self.auth) {
            (Some(token), _) => Some(format!("Bearer {token}")),
            (None, RegistryAuth::Basic(user, password)) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            _ => None,
        };
        let scheme = if is_loopback(&self.host) {
            "http"
        } else {
            "https"
        };
        let name = repository.split_once('/').map_or("", |(_, n)| n);
        let url = format!("{scheme}://{}/v2/{name}/referrers/{subject}", self.host);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
            .build()
            .into();
        let mut request = agent.get(&url).header("Accept", INDEX_TYPE);
        if let Some(value) = &authorization {
            request = request.header("Authorization", value);
        }
        let response = request.call().map_err(|e| {
            RegistryError::Unreachable(format!(
                "registry {} is unreachable (the referrers API): {e}",
                self.host
            ))
        })?;
        let status = response.status().as_u16();
        let is_index = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with(INDEX_TYPE));
        match status {
            200 if is_index => Ok(true),
            200 | 404 => Ok(false),
            s if s >= 500 => Err(RegistryError::Unreachable(format!(
                "registry {} failed on the referrers API: HTTP {s}",
                self.host
            ))),
            s => Err(RegistryError::Refused(format!(
                "registry {} refused the referrers API: HTTP {s}",
                self.host
            ))),
        }
    }

    /// The referrers of `subject`: the API's answer, else the fallback index's manifests.
    pub fn referrers(
        &self,
        repository: &str,
        subject: &str,
        api: bool,
    ) -> Result<Vec<serde_json::Value>> {
        let index = if api {
            let r = self.reference(&format!("{repository}@{subject}"))?;
            let index = self
                .rt
                .block_on(self.client.pull_referrers(&r, None))
                .map_err(|e| self.classify(e, "the referrers API"))?;
            serde_json::to_value(index).map_err(|e| RegistryError::Refused(e.to_string()))?
        } else {
            match self.get(&format!(
                "{repository}:{}",
                super::referrers::fallback_tag(subject)
            ))? {
                Some((bytes, _)) => serde_json::from_slice(&bytes).map_err(|e| {
                    RegistryError::Refused(format!(
                        "the fallback referrers index of {subject} is not JSON: {e}"
                    ))
                })?,
                None => return Ok(Vec::new()),
            }
        };
        Ok(index["manifests"].as_array().cloned().unwrap_or_default())
    }

    /// Pushes one referrer (empty config, bundle, manifest) and, without the referrers API,
    /// adds it to the subject's fallback index under the tag `sha256-<hex>`.
    pub fn push_referrer(
        &self,
        repository: &str,
        subject: &str,
        referrer: &super::referrers::Referrer,
        api: bool,
    ) -> Result<()> {
        self.put_blob(repository, &super::referrers::empty_config())?;
        self.put_blob(repository, &referrer.bundle)?;
        self.put_manifest(
            &format!("{repository}@{}", referrer.manifest.digest()),
            &referrer.manifest.bytes,
            MANIFEST_TYPE,
        )?;
        if api {
            return Ok(());
        }
        let tag = format!("{repository}:{}", super::referrers::fallback_tag(subject));
        let existing = self.get(&tag)?.map(|(bytes, _)| bytes);
        let updated = super::referrers::fallback_index(
            existing.as_deref(),
            super::referrers::listing(referrer),
        )
        .map_err(RegistryError::Refused)?;
        if existing.as_deref() != Some(updated.as_slice()) {
            self.put_manifest(&tag, &updated, INDEX_TYPE)?;
        }
        Ok(())
    }

    /// An error in words that never hold a credential (oci-client's carry URLs, not headers).
    fn classify(&self, e: OciDistributionError, what: &str) -> RegistryError {
        let host = &self.host;
        match &e {
            OciDistributionError::RequestError(_) => {
                RegistryError::Unreachable(format!("registry {host} is unreachable ({what}): {e}"))
            }
            OciDistributionError::ServerError { code, .. } if *code >= 500 => {
                RegistryError::Unreachable(format!("registry {host} failed ({what}): {e}"))
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => RegistryError::Refused(format!(
                "registry {host} refused the credentials ({what}): set GITHUB_TOKEN (ghcr.io) \
                     or log in so that $DOCKER_CONFIG/config.json holds an `auths` entry for {host}"
            )),
            _ => RegistryError::Refused(format!("registry {host} ({what}): {e}")),
        }
    }
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|err| {
            matches!(
                err.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NotFound | OciErrorCode::NameUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}

/// The credentials for `host`: the docker config's `auths` entry, else `GITHUB_TOKEN` for
/// ghcr.io, else anonymous. Never logged: RegistryAuth's Debug hides them.
pub fn credentials(host: &str) -> std::result::Result<RegistryAuth, String> {
    if let Some(auth) = docker_config_auth(host)? {
        return Ok(auth);
    }
    if host == "ghcr.io"
        && let Ok(token) = std::env::var("GITHUB_TOKEN")
        && !token.is_empty()
    {
        let user = std::env::var("GITHUB_ACTOR").unwrap_or_else(|_| "x-access-token".into());
        return Ok(RegistryAuth::Basic(user, token));
    }
    Ok(RegistryAuth::Anonymous)
}

fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json")),
    }
}

fn docker_config_auth(host: &str) -> std::result::Result<Option<RegistryAuth>, String> {
    let Some(path) = docker_config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let entry = auths.iter().find(|(key, _)| {
        let key = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        key.split('/').next() == Some(host)
    });
    let Some((_, entry)) = entry else {
        return Ok(None);
    };
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    if let (Some(user), Some(password)) = (field("username"), field("password")) {
        return Ok(Some(RegistryAuth::Basic(user.into(), password.into())));
    }
    if let Some(encoded) = field("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                format!(
                    "{}: the `auth` of {host} is not base64 of USER:PASSWORD",
                    path.display()
                )
            })?;
        let (user, password) = decoded.split_once(':').ok_or_else(|| {
            format!(
                "{}: the `auth` of {host} is not base64 of USER:PASSWORD",
                path.display()
            )
        })?;
        return Ok(Some(RegistryAuth::Basic(user.into(), password.into())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_go_without_tls() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:443"));
        assert!(!is_loopback("ghcr.io"));
        assert!(!is_loopback("127.0.0.1.example.com:5000"));
    }
}
