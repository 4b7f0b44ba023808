//! Which Sigstore services a keyless signature goes to: Fulcio, one Rekor log (v1 or v2) and
//! an optional timestamp authority, chosen from a signing config v0.2 (parsed by
//! `sigstore-trust-root`) and the `[sign]` keys that override it.
//!
//! Where the signing config comes from: `[sign] signing-config = FILE` (or `sign-bundle
//! --signing-config`); else the `signing_config.v0.2.json` target of the TUF repository the
//! trusted root comes from (Sigstore's by default). A trusted root given as a file, or a TUF
//! repository that publishes no signing config, leaves the `[sign]` URLs alone: Fulcio and
//! Rekor v1 at `fulcio-url`/`rekor-url` (the public-good ones by default), no timestamps.
//!
//! Precedence: an explicit `fulcio-url` or `rekor-url` replaces the config's choice for that
//! service; `rekor-version = 2` picks the config's v2 log (or means `rekor-url` speaks v2).
//! Rekor v1 stays the default even when the config lists a v2 log, as cosign does.

use std::path::PathBuf;

use sigstore_trust_root::{ServiceConfiguration, ServiceEndpoint, ServiceSelector, SigningConfig};

use super::keyless::{KeylessError, TrustSource};

/// The public-good Fulcio.
pub const PUBLIC_GOOD_FULCIO_URL: &str = "https://fulcio.sigstore.dev";
/// The public-good Rekor (v1).
pub const PUBLIC_GOOD_REKOR_URL: &str = "https://rekor.sigstore.dev";

/// The Rekor API a log speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RekorVersion {
    /// `/api/v1/log/entries`: hashedrekord and dsse entries with a signed entry timestamp.
    #[default]
    V1,
    /// `/api/v2/log/entries`: hashedrekord 0.0.2 (DSSE as a hash of its PAE), Ed25519
    /// checkpoints, no signed time (a TSA provides it).
    V2,
}

impl RekorVersion {
    /// From `[sign] rekor-version`.
    pub fn from_major(major: i64) -> Option<Self> {
        match major {
            1 => Some(RekorVersion::V1),
            2 => Some(RekorVersion::V2),
            _ => None,
        }
    }

    fn major(self) -> u32 {
        match self {
            RekorVersion::V1 => 1,
            RekorVersion::V2 => 2,
        }
    }
}

/// The services one release (or one `sign-bundle`) signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services {
    pub fulcio_url: String,
    pub rekor_url: String,
    pub rekor_version: RekorVersion,
    /// Every bundle gets an RFC 3161 timestamp from here when set.
    pub tsa_url: Option<String>,
}

impl Default for Services {
    /// The public-good Fulcio and Rekor v1, no timestamps: what the `[sign]` defaults name.
    fn default() -> Self {
        Services {
            fulcio_url: PUBLIC_GOOD_FULCIO_URL.to_owned(),
            rekor_url: PUBLIC_GOOD_REKOR_URL.to_owned(),
            rekor_version: RekorVersion::V1,
            tsa_url: None,
        }
    }
}

impl std::fmt::Display for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = match self.rekor_version {
            RekorVersion::V1 => "v1",
            RekorVersion::V2 => "v2",
        };
        write!(
            f,
            "Fulcio {}, Rekor {version} {}",
            self.fulcio_url, self.rekor_url
        )?;
        if let Some(tsa) = &self.tsa_url {
            write!(f, ", TSA {tsa}")?;
        }
        Ok(())
    }
}

/// What the user asked for, before the signing config is consulted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choice {
    /// `[sign] signing-config`.
    pub signing_config: Option<PathBuf>,
    /// `[sign] fulcio-url`.
    pub fulcio_url: Option<String>,
    /// `[sign] rekor-url`.
    pub rekor_url: Option<String>,
    /// `[sign] rekor-version`; v1 when unset.
    pub rekor_version: Option<RekorVersion>,
}

/// The signing config cannot give what was asked for.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error(
        "cannot read the signing config {path}: {source}; pass an existing signing_config.v0.2.json (`[sign] signing-config` or `--signing-config`)"
    )]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{source_name} is not a usable Sigstore signing config ({detail}); pass a signing_config.v0.2.json (`[sign] signing-config` or `--signing-config`)"
    )]
    Parse { source_name: String, detail: String },
    #[error(
        "the signing config {source_name} lists no {service} valid now; set `[sign] {key}`, or use a signing config that lists one"
    )]
    Missing {
        source_name: String,
        service: &'static str,
        key: &'static str,
    },
    #[error(
        "`rekor-version = 2` asks for a Rekor v2 log, but the signing config {source_name} lists none valid now; use a config that lists one (for the public-good instance, signing_config_rekor_v2.v0.2.json), set `[sign] rekor-url` to a v2 log, or drop `rekor-version`"
    )]
    NoRekorV2 { source_name: String },
    #[error(
        "`rekor-version = 2` needs a signing config with a timestamp authority: Rekor v2 entries carry no signed time, so without a TSA timestamp the certificate cannot be checked; set `[sign] signing-config` (or use a TUF repository that publishes one) listing a TSA"
    )]
    NoTsaForV2,
    #[error(
        "the signing config {source_name} requires {selector:?} of {count} {service} services; xrelease submits to exactly one, so it cannot satisfy that config"
    )]
    Selector {
        source_name: String,
        service: &'static str,
        selector: ServiceSelector,
        count: String,
    },
}

/// Chooses the services from `config` (with its name, for messages) and `choice`.
pub fn select(
    config: Option<(&SigningConfig, &str)>,
    choice: &Choice,
) -> Result<Services, ServicesError> {
    let version = choice.rekor_version.unwrap_or_default();
    let Some((config, source_name)) = config else {
        if version == RekorVersion::V2 {
            return Err(ServicesError::NoTsaForV2);
        }
        let defaults = Services::default();
        return Ok(Services {
            fulcio_url: choice.fulcio_url.clone().unwrap_or(defaults.fulcio_url),
            rekor_url: choice.rekor_url.clone().unwrap_or(defaults.rekor_url),
            ..defaults
        });
    };
    let missing = |service, key| ServicesError::Missing {
        source_name: source_name.to_owned(),
        service,
        key,
    };
    let fulcio_url = match &choice.fulcio_url {
        Some(url) => url.clone(),
        None => {
            url_of(config.fulcio_url()).ok_or_else(|| missing("Fulcio (caUrls)", "fulcio-url"))?
        }
    };
    let rekor_url = match &choice.rekor_url {
        Some(url) => url.clone(),
        None => {
            one_service(
                source_name,
                "Rekor",
                &config.rekor_tlog_config,
                &config.eligible_rekor_urls(Some(version.major())),
            )?;
            match url_of(config.rekor_url(Some(version.major()))) {
                Some(url) => url,
                None if version == RekorVersion::V2 => {
                    return Err(ServicesError::NoRekorV2 {
                        source_name: source_name.to_owned(),
                    });
                }
                None => return Err(missing("Rekor v1 log (rekorTlogUrls)", "rekor-url")),
            }
        }
    };
    one_service(
        source_name,
        "timestamp authority",
        &config.tsa_config,
        &config.eligible_tsa_urls(),
    )?;
    let tsa_url = url_of(config.tsa_url());
    if version == RekorVersion::V2 && tsa_url.is_none() {
        return Err(ServicesError::NoTsaForV2);
    }
    Ok(Services {
        fulcio_url,
        rekor_url,
        rekor_version: version,
        tsa_url,
    })
}

fn url_of(endpoint: Option<&ServiceEndpoint>) -> Option<String> {
    endpoint.map(|e| e.url.trim_end_matches('/').to_owned())
}

/// One submission satisfies ANY, EXACT 1, and ALL when a single operator runs every eligible
/// service; anything else would need several logs or TSAs, which a release does not do.
fn one_service(
    source_name: &str,
    service: &'static str,
    config: &ServiceConfiguration,
    eligible: &[&ServiceEndpoint],
) -> Result<(), ServicesError> {
    let single_operator = || {
        let mut operators = eligible.iter().map(|e| e.operator.as_deref());
        match operators.next() {
            None => true,
            Some(None) => eligible.len() == 1,
            Some(Some(first)) => operators.all(|op| op == Some(first)),
        }
    };
    let ok = match config.selector {
        ServiceSelector::Any => true,
        ServiceSelector::Exact => config.count == Some(1),
        ServiceSelector::All => single_operator(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ServicesError::Selector {
            source_name: source_name.to_owned(),
            service,
            selector: config.selector,
            count: config.count.map_or("all".to_owned(), |c| c.to_string()),
        })
    }
}

/// Parses a signing config's text, naming it `source_name` in errors.
pub fn parse(text: &str, source_name: &str) -> Result<SigningConfig, ServicesError> {
    SigningConfig::from_json(text).map_err(|e| ServicesError::Parse {
        source_name: source_name.to_owned(),
        detail: e.to_string(),
    })
}

/// Reads the signing config the release uses, if any (see the module doc for where from).
/// A TUF repository is updated and verified as for the trusted root.
pub fn load(
    choice: &Choice,
    trust: &TrustSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(SigningConfig, String)>, KeylessError> {
    if let Some(path) = &choice.signing_config {
        let text = std::fs::read_to_string(path).map_err(|e| ServicesError::Read {
            path: path.display().to_string(),
            source: e,
        })?;
        let name = path.display().to_string();
        return Ok(Some((parse(&text, &name)?, name)));
    }
    // A repository that signs no signing config (an older or private one): the URL keys.
    let Some(json) = trust.resolve_signing_config_json(env)? else {
        return Ok(None);
    };
    Ok(Some((parse(&json.text, &json.source)?, json.source)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC_GOOD: &str = r#"{
      "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
      "caUrls": [{"url": "https://fulcio.example", "majorApiVersion": 1,
                  "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "example"}],
      "oidcUrls": [],
      "rekorTlogUrls": [
        {"url": "https://rekor-v2.example", "majorApiVersion": 2,
         "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "example"},
        {"url": "https://rekor.example", "majorApiVersion": 1,
         "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "example"}],
      "tsaUrls": [{"url": "https://tsa.example/api/v1/timestamp", "majorApiVersion": 1,
                   "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "example"}],
      "rekorTlogConfig": {"selector": "ANY"},
      "tsaConfig": {"selector": "ANY"}
    }"#;

    fn config(text: &str) -> SigningConfig {
        parse(text, "test").unwrap()
    }

    #[test]
    fn v1_by_default_with_the_configs_tsa() {
        let c = config(PUBLIC_GOOD);
        let s = select(Some((&c, "c.json")), &Choice::default()).unwrap();
        assert_eq!(
            s,
            Services {
                fulcio_url: "https://fulcio.example".into(),
                rekor_url: "https://rekor.example".into(),
                rekor_version: RekorVersion::V1,
                tsa_url: Some("https://tsa.example/api/v1/timestamp".into()),
            }
        );
        let v2 = Choice {
            rekor_version: Some(RekorVersion::V2),
            ..Choice::default()
        };
        let s = select(Some((&c, "c.json")), &v2).unwrap();
        assert_eq!(
            (s.rekor_url.as_str(), s.rekor_version),
            ("https://rekor-v2.example", RekorVersion::V2)
        );
    }

    #[test]
    fn explicit_urls_override_the_config() {
        let c = config(PUBLIC_GOOD);
        let choice = Choice {
            fulcio_url: Some("http://127.0.0.1:1".into()),
            rekor_url: Some("http://127.0.0.1:2".into()),
            ..Choice::default()
        };
        let s = select(Some((&c, "c.json")), &choice).unwrap();
        assert_eq!(s.fulcio_url, "http://127.0.0.1:1");
        assert_eq!(s.rekor_url, "http://127.0.0.1:2");
        assert_eq!(
            s.tsa_url.as_deref(),
            Some("https://tsa.example/api/v1/timestamp")
        );
        // Without a config: the URL keys (or the public-good defaults), v1, no timestamps.
        let s = select(None, &choice).unwrap();
        assert_eq!((s.rekor_version, s.tsa_url), (RekorVersion::V1, None));
        assert_eq!(
            select(None, &Choice::default()).unwrap(),
            Services::default()
        );
    }

    #[test]
    fn configs_that_select_nothing_usable_are_refused() {
        let v2 = Choice {
            rekor_version: Some(RekorVersion::V2),
            ..Choice::default()
        };
        let v1_only = PUBLIC_GOOD.replace(r#""majorApiVersion": 2"#, r#""majorApiVersion": 1"#);
        let c = config(&v1_only);
        let err = select(Some((&c, "c.json")), &v2).unwrap_err();
        assert!(matches!(err, ServicesError::NoRekorV2 { .. }), "{err}");
        assert!(err.to_string().contains("c.json"), "{err}");

        let no_tsa = PUBLIC_GOOD
            .replace(r#""tsaUrls": [{"#, r#""unused": [{"#)
            .replace(r#""oidcUrls": [],"#, r#""oidcUrls": [], "tsaUrls": [],"#);
        let c = config(&no_tsa);
        assert!(
            select(Some((&c, "c.json")), &Choice::default())
                .unwrap()
                .tsa_url
                .is_none()
        );
        assert!(matches!(
            select(Some((&c, "c.json")), &v2),
            Err(ServicesError::NoTsaForV2)
        ));
        assert!(matches!(select(None, &v2), Err(ServicesError::NoTsaForV2)));

        let expired = PUBLIC_GOOD.replace(
            r#""validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "example"}],
      "oidcUrls""#,
            r#""validFor": {"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"}, "operator": "example"}],
      "oidcUrls""#,
        );
        let c = config(&expired);
        let err = select(Some((&c, "c.json")), &Choice::default()).unwrap_err();
        assert!(err.to_string().contains("lists no Fulcio"), "{err}");

        let exact_two = PUBLIC_GOOD.replace(
            r#""rekorTlogConfig": {"selector": "ANY"}"#,
            r#""rekorTlogConfig": {"selector": "EXACT", "count": 2}"#,
        );
        let c = config(&exact_two);
        let err = select(Some((&c, "c.json")), &Choice::default()).unwrap_err();
        assert!(matches!(err, ServicesError::Selector { .. }), "{err}");

        assert!(
            parse("{}", "x.json")
                .unwrap_err()
                .to_string()
                .contains("x.json")
        );
        let missing = Choice {
            signing_config: Some("/nonexistent/signing_config.json".into()),
            ..Choice::default()
        };
        let err = load(&missing, &TrustSource::File("/r.json".into()), &|_| None).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot read the signing config /nonexistent/signing_config.json"),
            "{err}"
        );
    }
}
