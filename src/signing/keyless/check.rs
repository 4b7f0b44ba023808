//! The checks a keyless verification reports, why each can fail, and how results print (`[PASS]`/`[FAIL]`).

use std::fmt;

/// The checks, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// A v0.3 bundle with a certificate and exactly one tlog entry, of the artifact's kind.
    Bundle,
    /// The certificate chains to a Fulcio CA of the trusted root.
    CertificateChain,
    /// The certificate was valid when Rekor integrated the entry.
    CertificateValidity,
    /// The embedded SCT verifies against a CT log of the trusted root.
    Sct,
    /// The certificate's SAN is the expected identity.
    Identity,
    /// The certificate's Fulcio issuer extension is the expected issuer.
    Issuer,
    /// The signature covers the artifact (or the envelope's PAE).
    Signature,
    /// Rekor's entry body records this signature, certificate and digest.
    TlogBody,
    /// Rekor's signed entry timestamp verifies with the log's key.
    SignedEntryTimestamp,
    /// The inclusion proof reproduces its root hash.
    InclusionProof,
    /// The checkpoint is signed by the log and commits to that root and size.
    Checkpoint,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 11] = [
        Check::Bundle,
        Check::CertificateChain,
        Check::CertificateValidity,
        Check::Sct,
        Check::Identity,
        Check::Issuer,
        Check::Signature,
        Check::TlogBody,
        Check::SignedEntryTimestamp,
        Check::InclusionProof,
        Check::Checkpoint,
    ];

    /// Stable machine name (for `--json`).
    pub fn id(self) -> &'static str {
        match self {
            Check::Bundle => "bundle",
            Check::CertificateChain => "certificate-chain",
            Check::CertificateValidity => "certificate-validity",
            Check::Sct => "sct",
            Check::Identity => "identity",
            Check::Issuer => "issuer",
            Check::Signature => "signature",
            Check::TlogBody => "tlog-body",
            Check::SignedEntryTimestamp => "tlog-set",
            Check::InclusionProof => "tlog-inclusion-proof",
            Check::Checkpoint => "tlog-checkpoint",
        }
    }

    /// What passing means, for people.
    pub fn description(self) -> &'static str {
        match self {
            Check::Bundle => "bundle is a keyless Sigstore v0.3 bundle",
            Check::CertificateChain => "certificate chains to a trusted Fulcio CA",
            Check::CertificateValidity => "certificate was valid when the entry was logged",
            Check::Sct => "certificate carries a valid SCT from a trusted CT log",
            Check::Identity => "certificate identity matches",
            Check::Issuer => "OIDC issuer matches",
            Check::Signature => "signature covers the artifact",
            Check::TlogBody => "transparency log entry records this signature",
            Check::SignedEntryTimestamp => "log's signed entry timestamp verifies",
            Check::InclusionProof => "inclusion proof reproduces the log root",
            Check::Checkpoint => "checkpoint is signed by the log and matches the proof",
        }
    }
}

/// Why a check failed. Each names the situation, carries the evidence and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// An earlier check this one needs failed; reported as a failure (fail closed).
    #[error("not checked, because `{0}` failed")]
    NotChecked(&'static str),
    /// The bundle is not one this verifier accepts.
    #[error("{0}")]
    Bundle(String),
    /// No path to a trusted CA.
    #[error(
        "the certificate does not chain to a Fulcio CA of the trusted root ({0}); pass the trusted root of the Sigstore instance that signed (`--trusted-root`)"
    )]
    Chain(String),
    /// Certificate outside its validity at the integrated time.
    #[error(
        "the certificate was valid {not_before} .. {not_after}, but the log integrated the entry at {integrated}: the signature was not logged while the certificate was valid; sign again"
    )]
    NotValidAtIntegratedTime {
        /// notBefore.
        not_before: String,
        /// notAfter.
        not_after: String,
        /// Rekor's integrated time.
        integrated: String,
    },
    /// SCT problems.
    #[error("{0}; the certificate was not logged by a CT log of this trusted root")]
    Sct(String),
    /// SAN mismatch.
    #[error(
        "the certificate was issued to {found:?}, not to `{expected}`; check the expected identity (`--certificate-identity`), which must match exactly, workflow path and ref included"
    )]
    Identity {
        /// Expected SAN.
        expected: String,
        /// The certificate's URI and email SANs.
        found: Vec<String>,
    },
    /// Issuer mismatch or unreadable.
    #[error(
        "the certificate's OIDC issuer is {found}, not `{expected}`; check the expected issuer (`--certificate-oidc-issuer`)"
    )]
    Issuer {
        /// Expected issuer.
        expected: String,
        /// What the certificate says (or why it can't be read).
        found: String,
    },
    /// The artifact is not what was signed.
    #[error("{0}")]
    Signature(String),
    /// The log entry does not match the bundle.
    #[error(
        "{0}: the bundle's log entry does not record this signature; it was swapped or altered"
    )]
    TlogBody(String),
    /// The entry's log is unknown or unusable.
    #[error("{0}")]
    Log(String),
    /// SET.
    #[error("{0}; the log entry or its promise was altered, or it comes from another log")]
    Set(String),
    /// Merkle proof.
    #[error("{0}; the inclusion proof was altered or belongs to another entry")]
    Inclusion(String),
    /// Checkpoint.
    #[error("{0}")]
    Checkpoint(String),
}

/// The outcome of one check: evidence when it passed, the reason when it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Which check.
    pub check: Check,
    /// `Ok(evidence)` or `Err(why)`.
    pub outcome: Result<String, VerifyError>,
}

impl CheckResult {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.outcome.is_ok()
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(evidence) => write!(f, "[PASS] {}: {evidence}", self.check.description()),
            Err(why) => write!(f, "[FAIL] {}: {why}", self.check.description()),
        }
    }
}

/// True only if there are results and every one passed.
pub fn all_passed(results: &[CheckResult]) -> bool {
    !results.is_empty() && results.iter().all(CheckResult::passed)
}
