//! What is left of xrelease's own trusted-root code now that the sigstore-rust crates parse and
//! use trusted roots (`super::sigstore`): the error for a root that cannot be read, worded with
//! the fix.

/// The trusted root could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustedRootError {
    /// File I/O.
    #[error(
        "cannot read the trusted root {path}: {source}; pass an existing trusted_root.json (`[sign] trusted-root` or `--trusted-root`)"
    )]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not the JSON we expect.
    #[error(
        "{path} is not a Sigstore trusted root ({detail}); pass the trusted_root.json of your Sigstore instance (e.g. from `cosign trusted-root create` or the instance's TUF repository)"
    )]
    Parse {
        /// The file.
        path: String,
        /// Parser message.
        detail: String,
    },
}
