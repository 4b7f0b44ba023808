//! The sign stage: a signature over `SHA256SUMS`, as `cosign sign-blob` writes it, plus its
//! Sigstore bundle (and, keyless, the certificate; with a key, the public half as `cosign.pub`).

use std::path::Path;

use crate::error::{Error, Result};
use crate::layout;
use crate::manifest::{Kind, Manifest};
use crate::signing::Signer;
use crate::signing::key::encode_signature;
use crate::stage::checksums;

pub fn run(dist: &Path, manifest: &mut Manifest, signer: &mut Signer) -> Result<()> {
    if signer.is_keyless() {
        // The next step is public and permanent (a transparency-log entry): first make sure the
        // local stages left a release that can pass, so a failure leaves no orphaned entry.
        let report = crate::verify::verify_unsigned(dist);
        if !report.ok {
            return Err(Error::Verification(format!(
                "{}nothing was signed or sent to the transparency log",
                report.render()
            )));
        }
    }
    let sums_path = dist.join(checksums::FILE);
    let sums = std::fs::read(&sums_path).map_err(Error::io("cannot read", &sums_path))?;
    let signature = signer.sign_blob(&sums)?;

    let bundle = signature.bundle;
    let mut outputs = vec![
        (
            layout::SUMS_SIGNATURE,
            Kind::Signature,
            encode_signature(&signature.der).into_bytes(),
        ),
        (layout::SUMS_BUNDLE, Kind::Bundle, bundle.into_bytes()),
    ];
    if let Some(pem) = signature.certificate_pem {
        outputs.push((
            layout::SUMS_CERTIFICATE,
            Kind::Certificate,
            pem.into_bytes(),
        ));
    }
    if let Some(key) = signer.public_key() {
        outputs.push((
            layout::PUBLIC_KEY,
            Kind::PublicKey,
            key.to_pem().into_bytes(),
        ));
    }
    for (name, kind, bytes) in outputs {
        manifest.write_file(dist, name, kind, Some(checksums::FILE), &bytes)?;
    }
    Ok(())
}
