//! Cosign-compatible ECDSA P-256 key files: encrypted private keys, PEM public keys and blob signatures.
//!
//! Formats, as written by `cosign generate-key-pair` and `cosign sign-blob --key`:
//!
//! * Private key: a PEM block labelled `ENCRYPTED SIGSTORE PRIVATE KEY` (older
//!   cosign: `ENCRYPTED COSIGN PRIVATE KEY`) whose body is the JSON document of
//!   go-securesystemslib's `encrypted` package:
//!   `{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":B64},
//!   "cipher":{"name":"nacl/secretbox","nonce":B64},"ciphertext":B64}`.
//!   The 32-byte scrypt output of (password, salt) is the key of an
//!   XSalsa20-Poly1305 secretbox (NaCl layout: 16-byte tag, then ciphertext)
//!   that seals the PKCS#8 DER private key. Base64 is the standard, padded
//!   alphabet (Go's encoding of `[]byte` in JSON).
//! * Public key: PEM `PUBLIC KEY` holding the SubjectPublicKeyInfo DER.
//! * Signature: ECDSA P-256 over SHA-256 of the blob, ASN.1 DER, and the `.sig`
//!   file holds its standard base64 text.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::secret::{COSIGN_PASSWORD_ENV, Password};

/// PEM label cosign 2.x writes for encrypted private keys; we write it too.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of encrypted keys from cosign 1.x; still read.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// PEM label of a SubjectPublicKeyInfo public key.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

const KDF_NAME: &str = "scrypt";
const CIPHER_NAME: &str = "nacl/secretbox";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const BOX_KEY_LEN: usize = 32;
/// scrypt N = 2^15 for keys we write: the value cosign has always written and
/// every cosign version reads.
const WRITE_LOG_N: u8 = 15;
const SCRYPT_R: u64 = 8;
const SCRYPT_P: u64 = 1;
/// log2(N) values accepted on read: the same allow-list go-securesystemslib
/// uses (2^15 legacy, 2^16 standard, 2^17 OWASP). A key file is input, and an
/// unbounded N would let it make us burn arbitrary memory and CPU.
const ACCEPTED_LOG_N: [u8; 3] = [15, 16, 17];

/// Loading, creating or writing a key failed. Messages name the file and never
/// contain the password.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read key file {file}: {source}")]
    Read {
        /// The file, as given by the caller.
        file: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not PEM text.
    #[error(
        "{file} is not a PEM key file ({reason}); pass a key written by `xrelease keygen` or `cosign generate-key-pair`"
    )]
    NotPem {
        /// The file, as given by the caller.
        file: String,
        /// What is wrong with the PEM text.
        reason: String,
    },
    /// The PEM block is of another kind than the operation needs.
    #[error(
        "{file} holds a `{found}` PEM block but {expected} was expected; check you passed the right file (the .key file to sign, the .pub file to verify)"
    )]
    WrongLabel {
        /// The file, as given by the caller.
        file: String,
        /// The label found in the file.
        found: String,
        /// The label(s) the operation accepts.
        expected: &'static str,
    },
    /// The PEM body is not the JSON document cosign writes.
    #[error(
        "{file} is not a cosign encrypted key ({detail}); re-create it with `xrelease keygen` or `cosign generate-key-pair`"
    )]
    Envelope {
        /// The file, as given by the caller.
        file: String,
        /// Which part of the document is wrong.
        detail: String,
    },
    /// The scrypt cost parameters are outside the allow-list.
    #[error(
        "{file} asks for scrypt parameters N={n}, r={r}, p={p}; only N of 32768, 65536 or 131072 with r=8, p=1 are accepted (as in cosign), re-create the key with `xrelease keygen`"
    )]
    UnsupportedScrypt {
        /// The file, as given by the caller.
        file: String,
        /// scrypt N.
        n: u64,
        /// scrypt r.
        r: u64,
        /// scrypt p.
        p: u64,
    },
    /// Authenticated decryption failed, which in practice means the password.
    #[error(
        "wrong password for {file} ({COSIGN_PASSWORD_ENV}): the key did not decrypt; set {COSIGN_PASSWORD_ENV} to the password chosen when the key was generated (if it is right, the key file is corrupted)"
    )]
    WrongPassword {
        /// The file, as given by the caller.
        file: String,
    },
    /// The decrypted private key is not an ECDSA P-256 PKCS#8 key.
    #[error(
        "{file} does not hold an ECDSA P-256 private key ({detail}); xrelease signs with P-256 keys, the kind `cosign generate-key-pair` creates"
    )]
    NotP256Private {
        /// The file, as given by the caller.
        file: String,
        /// Decoder message (never key material).
        detail: String,
    },
    /// The public key is not an ECDSA P-256 SubjectPublicKeyInfo.
    #[error(
        "{file} does not hold an ECDSA P-256 public key ({detail}); pass the .pub file written by `xrelease keygen` or `cosign generate-key-pair`"
    )]
    NotP256Public {
        /// The file, as given by the caller.
        file: String,
        /// Decoder message.
        detail: String,
    },
    /// keygen would overwrite a file.
    #[error(
        "{file} already exists; refusing to overwrite a key file: move it away or choose another key prefix"
    )]
    AlreadyExists {
        /// The existing file.
        file: String,
    },
    /// A key file could not be written.
    #[error("cannot write key file {file}: {source}")]
    Write {
        /// The file being written.
        file: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The OS random number generator failed.
    #[error(
        "the operating system's random number generator failed ({detail}); cannot create key material safely, retry on a healthy system"
    )]
    Random {
        /// getrandom's message.
        detail: String,
    },
    /// Encoding a key we hold failed (should not happen for valid keys).
    #[error("cannot encode the key ({detail}); this is a bug in xrelease, please report it")]
    Encode {
        /// Encoder message.
        detail: String,
    },
}

/// A signature failed to decode or verify. Each situation has its own variant
/// so a user can tell a damaged `.sig` file from a genuinely bad signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature text at all.
    #[error("the signature is empty; sign the artifact again (`xrelease sign`)")]
    Empty,
    /// The `.sig` text is not base64.
    #[error(
        "the signature is not base64 ({detail}); a .sig file holds the standard base64 of a DER signature, as `cosign sign-blob` writes it"
    )]
    NotBase64 {
        /// Decoder message.
        detail: String,
    },
    /// The bytes are not an ASN.1 DER ECDSA P-256 signature.
    #[error(
        "the signature is not a DER ECDSA P-256 signature ({len} bytes); the .sig file is truncated, damaged or from another key type"
    )]
    NotDer {
        /// Length of the decoded bytes.
        len: usize,
    },
    /// Well-formed, but not made by this key over these bytes.
    #[error(
        "the signature does not verify: the artifact changed after signing, or it was signed with a different key"
    )]
    DoesNotVerify,
}

/// An ECDSA P-256 signing key. The scalar is zeroized on drop by `p256`.
#[derive(Clone)]
pub struct PrivateKey {
    signing: SigningKey,
}

/// An ECDSA P-256 verifying key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    verifying: VerifyingKey,
}

/// Paths written by [`keygen`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairFiles {
    /// `<prefix>.key`: the encrypted private key, mode 0600.
    pub private_key: PathBuf,
    /// `<prefix>.pub`: the PEM public key.
    pub public_key: PathBuf,
}

/// On-disk JSON of an encrypted key. Field order matches what cosign writes.
#[derive(Serialize, Deserialize)]
struct EncryptedKeyJson {
    kdf: KdfJson,
    cipher: CipherJson,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct KdfJson {
    name: String,
    params: ScryptParamsJson,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptParamsJson {
    #[serde(rename = "N")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(Serialize, Deserialize)]
struct CipherJson {
    name: String,
    nonce: String,
}

impl PrivateKey {
    /// Generates a fresh key from the OS random number generator.
    pub fn generate() -> Result<Self, KeyError> {
        // Rejection sampling: 32 random bytes are a valid scalar unless they are
        // zero or >= the group order, which happens with probability ~2^-32.
        // Several misses in a row mean the RNG is broken, not unlucky.
        for _ in 0..8 {
            let mut bytes = Zeroizing::new([0u8; 32]);
            fill_random(&mut bytes[..])?;
            if let Ok(signing) = SigningKey::from_slice(&bytes[..]) {
                return Ok(Self { signing });
            }
        }
        Err(KeyError::Random {
            detail: "random bytes were repeatedly not a valid P-256 scalar".to_owned(),
        })
    }

    /// Reads and decrypts a cosign encrypted private key file.
    pub fn read_encrypted(path: &Path, password: &Password) -> Result<Self, KeyError> {
        let file = path.display().to_string();
        let text = read_text(path, &file)?;
        Self::from_encrypted_pem(&text, password, &file)
    }

    /// Decrypts a cosign encrypted private key from PEM text. `file` names the
    /// source in error messages.
    pub fn from_encrypted_pem(
        text: &str,
        password: &Password,
        file: &str,
    ) -> Result<Self, KeyError> {
        let block = pem_decode(text).map_err(|reason| KeyError::NotPem {
            file: file.to_owned(),
            reason,
        })?;
        if block.label != SIGSTORE_PRIVATE_KEY_LABEL && block.label != COSIGN_PRIVATE_KEY_LABEL {
            return Err(KeyError::WrongLabel {
                file: file.to_owned(),
                found: block.label,
                expected: "`ENCRYPTED SIGSTORE PRIVATE KEY` (or the older `ENCRYPTED COSIGN PRIVATE KEY`)",
            });
        }
        let envelope_err = |detail: String| KeyError::Envelope {
            file: file.to_owned(),
            detail,
        };
        let doc: EncryptedKeyJson = serde_json::from_slice(&block.body)
            .map_err(|e| envelope_err(format!("PEM body is not the expected JSON: {e}")))?;
        if doc.kdf.name != KDF_NAME {
            return Err(envelope_err(format!(
                "unsupported kdf `{}`, only `{KDF_NAME}`",
                doc.kdf.name
            )));
        }
        if doc.cipher.name != CIPHER_NAME {
            return Err(envelope_err(format!(
                "unsupported cipher `{}`, only `{CIPHER_NAME}`",
                doc.cipher.name
            )));
        }
        let ScryptParamsJson { n, r, p } = doc.kdf.params;
        let log_n = ACCEPTED_LOG_N
            .into_iter()
            .find(|&log_n| n == 1u64 << log_n)
            .filter(|_| r == SCRYPT_R && p == SCRYPT_P)
            .ok_or_else(|| KeyError::UnsupportedScrypt {
                file: file.to_owned(),
                n,
                r,
                p,
            })?;
        let salt = decode_field(&doc.kdf.salt, "kdf.salt").map_err(envelope_err)?;
        let nonce = decode_field(&doc.cipher.nonce, "cipher.nonce").map_err(envelope_err)?;
        if nonce.len() != NONCE_LEN {
            return Err(envelope_err(format!(
                "cipher.nonce is {} bytes, expected {NONCE_LEN}",
                nonce.len()
            )));
        }
        let ciphertext = decode_field(&doc.ciphertext, "ciphertext").map_err(envelope_err)?;

        let box_key = derive_box_key(password, &salt, log_n)?;
        let cipher = XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(&box_key[..]));
        // Poly1305 cannot tell a wrong password from a corrupted file; the
        // password is by far the common cause, so the error leads with it.
        let pkcs8 = Zeroizing::new(
            cipher
                .decrypt(
                    crypto_secretbox::Nonce::from_slice(&nonce),
                    ciphertext.as_slice(),
                )
                .map_err(|_| KeyError::WrongPassword {
                    file: file.to_owned(),
                })?,
        );
        let signing = SigningKey::from_pkcs8_der(&pkcs8).map_err(|e| KeyError::NotP256Private {
            file: file.to_owned(),
            detail: e.to_string(),
        })?;
        Ok(Self { signing })
    }

    /// Encrypts this key in cosign's format under the `ENCRYPTED SIGSTORE
    /// PRIVATE KEY` label, with a fresh salt and nonce.
    pub fn to_encrypted_pem(&self, password: &Password) -> Result<String, KeyError> {
        self.to_encrypted_pem_with_cost(password, WRITE_LOG_N)
    }

    fn to_encrypted_pem_with_cost(
        &self,
        password: &Password,
        log_n: u8,
    ) -> Result<String, KeyError> {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt)?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;

        // Encode through `SecretKey`: `SigningKey`'s own PKCS#8 encoder needs
        // p256's `pem` feature, which would pull in a PEM crate we don't use.
        let pkcs8 = p256::SecretKey::from(&self.signing)
            .to_pkcs8_der()
            .map_err(|e| KeyError::Encode {
                detail: e.to_string(),
            })?;
        let box_key = derive_box_key(password, &salt, log_n)?;
        let cipher = XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(&box_key[..]));
        let ciphertext = cipher
            .encrypt(
                crypto_secretbox::Nonce::from_slice(&nonce),
                pkcs8.as_bytes(),
            )
            .map_err(|_| KeyError::Encode {
                detail: "secretbox encryption failed".to_owned(),
            })?;

        let doc = EncryptedKeyJson {
            kdf: KdfJson {
                name: KDF_NAME.to_owned(),
                params: ScryptParamsJson {
                    n: 1u64 << log_n,
                    r: SCRYPT_R,
                    p: SCRYPT_P,
                },
                salt: STANDARD.encode(salt),
            },
            cipher: CipherJson {
                name: CIPHER_NAME.to_owned(),
                nonce: STANDARD.encode(nonce),
            },
            ciphertext: STANDARD.encode(&ciphertext),
        };
        let json = serde_json::to_vec(&doc).map_err(|e| KeyError::Encode {
            detail: e.to_string(),
        })?;
        Ok(pem_encode(SIGSTORE_PRIVATE_KEY_LABEL, &json))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            verifying: *self.signing.verifying_key(),
        }
    }

    /// Signs `message`: ECDSA P-256 over SHA-256(message), ASN.1 DER encoded.
    /// Byte-for-byte the kind of signature `cosign sign-blob --key` makes.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.signing.sign(message);
        signature.to_der().as_bytes().to_vec()
    }

    /// Signs `message` and returns the `.sig` file text (standard base64 of
    /// the DER signature, no trailing newline, as cosign writes it).
    pub fn sign_base64(&self, message: &[u8]) -> String {
        encode_signature(&self.sign(message))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Identify the key by its public half only.
        write!(f, "PrivateKey(P-256, hint={})", self.public_key().hint())
    }
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` file.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let file = path.display().to_string();
        let text = read_text(path, &file)?;
        Self::from_pem(&text, &file)
    }

    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) holding a P-256 key.
    /// `file` names the source in error messages.
    pub fn from_pem(text: &str, file: &str) -> Result<Self, KeyError> {
        let block = pem_decode(text).map_err(|reason| KeyError::NotPem {
            file: file.to_owned(),
            reason,
        })?;
        if block.label != PUBLIC_KEY_LABEL {
            return Err(KeyError::WrongLabel {
                file: file.to_owned(),
                found: block.label,
                expected: "`PUBLIC KEY`",
            });
        }
        Self::from_spki_der(&block.body, file)
    }

    /// Parses SubjectPublicKeyInfo DER holding a P-256 key.
    pub fn from_spki_der(der: &[u8], file: &str) -> Result<Self, KeyError> {
        let verifying =
            VerifyingKey::from_public_key_der(der).map_err(|e| KeyError::NotP256Public {
                file: file.to_owned(),
                detail: e.to_string(),
            })?;
        Ok(Self { verifying })
    }

    /// SubjectPublicKeyInfo DER.
    pub fn to_spki_der(&self) -> Vec<u8> {
        // Encoding a validated point into a fixed-shape structure has no
        // failure case; a panic here would be a bug in `p256`, not bad input.
        p256::PublicKey::from(&self.verifying)
            .to_public_key_der()
            .map(|doc| doc.as_bytes().to_vec())
            .expect("SPKI encoding of a valid P-256 point cannot fail")
    }

    /// PEM `PUBLIC KEY` text, as in cosign's `.pub` files.
    pub fn to_pem(&self) -> String {
        pem_encode(PUBLIC_KEY_LABEL, &self.to_spki_der())
    }

    /// Key id hint: standard base64 of SHA-256 over the SubjectPublicKeyInfo
    /// DER. This is what cosign puts in a bundle's `publicKey.hint`, so
    /// bundles we write look like cosign's to verifiers that compare hints.
    pub fn hint(&self) -> String {
        STANDARD.encode(Sha256::digest(self.to_spki_der()))
    }

    /// Verifies a DER signature over `message` (ECDSA P-256 / SHA-256).
    /// Both low-S and high-S signatures are accepted, like OpenSSL and Go do,
    /// because cosign does not normalise S.
    pub fn verify(&self, message: &[u8], der: &[u8]) -> Result<(), SignatureError> {
        if der.is_empty() {
            return Err(SignatureError::Empty);
        }
        let signature =
            Signature::from_der(der).map_err(|_| SignatureError::NotDer { len: der.len() })?;
        self.verifying
            .verify(message, &signature)
            .map_err(|_| SignatureError::DoesNotVerify)
    }

    /// Verifies the text of a `.sig` file over `message`.
    pub fn verify_base64(&self, message: &[u8], sig_text: &str) -> Result<(), SignatureError> {
        let der = decode_signature(sig_text)?;
        self.verify(message, &der)
    }

    /// Verifies a DER signature given only SHA-256(message), e.g. the digest in
    /// a Sigstore bundle's `messageSignature`.
    pub fn verify_sha256_digest(&self, digest: &[u8], der: &[u8]) -> Result<(), SignatureError> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        if der.is_empty() {
            return Err(SignatureError::Empty);
        }
        let signature =
            Signature::from_der(der).map_err(|_| SignatureError::NotDer { len: der.len() })?;
        if digest.len() != 32 {
            return Err(SignatureError::DoesNotVerify);
        }
        self.verifying
            .verify_prehash(digest, &signature)
            .map_err(|_| SignatureError::DoesNotVerify)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(P-256, hint={})", self.hint())
    }
}

/// `.sig` file text for a DER signature: standard base64, no newline.
pub fn encode_signature(der: &[u8]) -> String {
    STANDARD.encode(der)
}

/// Decodes `.sig` file text. Surrounding whitespace (a trailing newline from
/// an editor or `echo`) is ignored; anything else must be standard base64.
pub fn decode_signature(sig_text: &str) -> Result<Vec<u8>, SignatureError> {
    let trimmed = sig_text.trim();
    if trimmed.is_empty() {
        return Err(SignatureError::Empty);
    }
    let der = STANDARD
        .decode(trimmed)
        .map_err(|e| SignatureError::NotBase64 {
            detail: e.to_string(),
        })?;
    if der.is_empty() {
        return Err(SignatureError::Empty);
    }
    Ok(der)
}

/// Generates a key pair and writes `<prefix>.key` (encrypted, mode 0600) and
/// `<prefix>.pub`. Existing files are never overwritten.
pub fn keygen(prefix: &Path, password: &Password) -> Result<KeyPairFiles, KeyError> {
    let files = KeyPairFiles {
        private_key: with_suffix(prefix, ".key"),
        public_key: with_suffix(prefix, ".pub"),
    };
    // Check both up front so a refusal leaves nothing half-written; the
    // create_new opens below still close the race with another writer.
    for path in [&files.private_key, &files.public_key] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyError::AlreadyExists {
                file: path.display().to_string(),
            });
        }
    }
    let key = PrivateKey::generate()?;
    let private_pem = key.to_encrypted_pem(password)?;
    let public_pem = key.public_key().to_pem();

    write_new(&files.private_key, private_pem.as_bytes(), 0o600)?;
    if let Err(err) = write_new(&files.public_key, public_pem.as_bytes(), 0o644) {
        // Don't leave a private key without its public half: a later keygen
        // would refuse because of it and the user would not know why.
        let _ = std::fs::remove_file(&files.private_key);
        return Err(err);
    }
    Ok(files)
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let file = path.display().to_string();
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Set at creation so the private key is never world-readable, not
        // even between create and chmod.
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut handle = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::AlreadyExists { file: file.clone() }
        } else {
            KeyError::Write {
                file: file.clone(),
                source,
            }
        }
    })?;
    handle
        .write_all(contents)
        .and_then(|()| handle.sync_all())
        .map_err(|source| KeyError::Write { file, source })
}

fn read_text(path: &Path, file: &str) -> Result<String, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        file: file.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| KeyError::NotPem {
        file: file.to_owned(),
        reason: "the file is not text".to_owned(),
    })
}

fn fill_random(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::getrandom(buf).map_err(|e| KeyError::Random {
        detail: e.to_string(),
    })
}

fn derive_box_key(
    password: &Password,
    salt: &[u8],
    log_n: u8,
) -> Result<Zeroizing<[u8; BOX_KEY_LEN]>, KeyError> {
    // r and p are fixed by the allow-list, so these parameters are always
    // valid; the error arm only guards against a future edit.
    let params = scrypt::Params::new(log_n, SCRYPT_R as u32, SCRYPT_P as u32, BOX_KEY_LEN)
        .map_err(|e| KeyError::Encode {
            detail: format!("scrypt parameters: {e}"),
        })?;
    let mut key = Zeroizing::new([0u8; BOX_KEY_LEN]);
    scrypt::scrypt(password.expose().as_bytes(), salt, &params, &mut key[..]).map_err(|e| {
        KeyError::Encode {
            detail: format!("scrypt output length: {e}"),
        }
    })?;
    Ok(key)
}

fn decode_field(value: &str, field: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(value)
        .map_err(|e| format!("{field} is not base64: {e}"))
}

struct PemBlock {
    label: String,
    body: Vec<u8>,
}

/// Reads the first PEM block. Deliberately lenient about line length and
/// line endings (CRLF, unwrapped bodies): keys get copied through CI secret
/// stores that rewrap text, and the base64 itself is still checked strictly.
fn pem_decode(text: &str) -> Result<PemBlock, String> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let start = text
        .find(BEGIN)
        .ok_or_else(|| "no `-----BEGIN ...-----` line".to_owned())?;
    let rest = &text[start + BEGIN.len()..];
    let label_len = rest
        .find(DASHES)
        .ok_or_else(|| "the BEGIN line is not closed by `-----`".to_owned())?;
    let label = &rest[..label_len];
    if label.contains(['\n', '\r']) {
        return Err("the BEGIN line is not closed by `-----`".to_owned());
    }
    let after_begin = &rest[label_len + DASHES.len()..];
    let end_line = format!("-----END {label}-----");
    let body_len = after_begin
        .find(&end_line)
        .ok_or_else(|| format!("no `{end_line}` line"))?;
    let body_text: String = after_begin[..body_len]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if body_text.contains(':') {
        return Err("PEM headers (e.g. Proc-Type) are not supported".to_owned());
    }
    let body = STANDARD
        .decode(body_text.as_bytes())
        .map_err(|e| format!("the PEM body is not base64: {e}"))?;
    Ok(PemBlock {
        label: label.to_owned(),
        body,
    })
}

/// PEM with 64-column lines and LF endings, as Go's `pem.Encode` writes.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut start = 0;
    while start < b64.len() {
        // base64 text is ASCII, so any byte offset is a char boundary.
        let end = (start + 64).min(b64.len());
        out.push_str(&b64[start..end]);
        out.push('\n');
        start = end;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "correct horse battery staple 7f3a";

    fn key_and_pem() -> (PrivateKey, String) {
        let key = PrivateKey::generate().expect("generate");
        let pem = key
            .to_encrypted_pem(&Password::from(PASSWORD))
            .expect("encrypt");
        (key, pem)
    }

    #[test]
    fn encrypted_pem_round_trips_and_has_cosign_shape() {
        let (key, pem) = key_and_pem();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|line| line.len() <= 64));

        let block = pem_decode(&pem).expect("pem");
        let json: serde_json::Value = serde_json::from_slice(&block.body).expect("json");
        assert_eq!(json["kdf"]["name"], "scrypt");
        assert_eq!(json["kdf"]["params"]["N"], 32768);
        assert_eq!(json["kdf"]["params"]["r"], 8);
        assert_eq!(json["kdf"]["params"]["p"], 1);
        assert_eq!(json["cipher"]["name"], "nacl/secretbox");
        let salt = STANDARD
            .decode(json["kdf"]["salt"].as_str().expect("salt"))
            .expect("b64");
        let nonce = STANDARD
            .decode(json["cipher"]["nonce"].as_str().expect("nonce"))
            .expect("b64");
        assert_eq!((salt.len(), nonce.len()), (32, 24));

        let back = PrivateKey::from_encrypted_pem(&pem, &Password::from(PASSWORD), "mem.key")
            .expect("decrypt");
        assert_eq!(back.public_key(), key.public_key());
    }

    #[test]
    fn newer_cosign_scrypt_cost_is_read() {
        // Recent go-securesystemslib encrypts with N=2^16 by default.
        let key = PrivateKey::generate().expect("generate");
        let pem = key
            .to_encrypted_pem_with_cost(&Password::from(PASSWORD), 16)
            .expect("encrypt");
        assert!(
            String::from_utf8(pem_decode(&pem).expect("pem").body)
                .expect("utf8")
                .contains("\"N\":65536")
        );
        let back =
            PrivateKey::from_encrypted_pem(&pem, &Password::from(PASSWORD), "k").expect("decrypt");
        assert_eq!(back.public_key(), key.public_key());
    }

    #[test]
    fn old_cosign_label_is_read() {
        let (key, pem) = key_and_pem();
        let old = pem.replace(SIGSTORE_PRIVATE_KEY_LABEL, COSIGN_PRIVATE_KEY_LABEL);
        let back = PrivateKey::from_encrypted_pem(&old, &Password::from(PASSWORD), "old.key")
            .expect("decrypt");
        assert_eq!(back.public_key(), key.public_key());
    }

    #[test]
    fn wrong_password_names_file_and_env_but_not_password() {
        let (_, pem) = key_and_pem();
        let wrong = "Tr0ub4dor&3-not-it";
        let err = PrivateKey::from_encrypted_pem(&pem, &Password::from(wrong), "cosign.key")
            .expect_err("must fail");
        assert!(matches!(err, KeyError::WrongPassword { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("wrong password for cosign.key (COSIGN_PASSWORD)"),
            "{text}"
        );
        for shown in [text, format!("{err:?}")] {
            assert!(!shown.contains(wrong), "password leaked: {shown}");
            assert!(!shown.contains(PASSWORD), "password leaked: {shown}");
        }
    }

    #[test]
    fn public_key_pem_is_rejected_as_private_key() {
        let key = PrivateKey::generate().expect("generate");
        let err = PrivateKey::from_encrypted_pem(
            &key.public_key().to_pem(),
            &Password::from(PASSWORD),
            "cosign.pub",
        )
        .expect_err("must fail");
        assert!(
            matches!(&err, KeyError::WrongLabel { found, .. } if found == "PUBLIC KEY"),
            "{err:?}"
        );
    }

    #[test]
    fn huge_scrypt_cost_is_refused_before_deriving() {
        let (_, pem) = key_and_pem();
        let block = pem_decode(&pem).expect("pem");
        let json = String::from_utf8(block.body).expect("utf8");
        let hostile = json.replace("\"N\":32768", "\"N\":1073741824");
        assert_ne!(json, hostile);
        let pem = pem_encode(SIGSTORE_PRIVATE_KEY_LABEL, hostile.as_bytes());
        let err = PrivateKey::from_encrypted_pem(&pem, &Password::from(PASSWORD), "k")
            .expect_err("must fail");
        assert!(
            matches!(err, KeyError::UnsupportedScrypt { n: 1073741824, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn garbage_is_not_pem() {
        let err = PrivateKey::from_encrypted_pem("hello", &Password::from("x"), "k")
            .expect_err("must fail");
        assert!(matches!(err, KeyError::NotPem { .. }), "{err:?}");
        let err = PublicKey::from_pem(
            "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n",
            "p",
        )
        .expect_err("must fail");
        assert!(matches!(err, KeyError::NotPem { .. }), "{err:?}");
    }

    #[test]
    fn pem_reader_tolerates_crlf_and_unwrapped_bodies() {
        let key = PrivateKey::generate().expect("generate");
        let public = key.public_key();
        let b64 = STANDARD.encode(public.to_spki_der());
        let text = format!("-----BEGIN PUBLIC KEY-----\r\n{b64}\r\n-----END PUBLIC KEY-----\r\n");
        assert_eq!(PublicKey::from_pem(&text, "p").expect("parse"), public);
    }

    #[test]
    fn public_key_pem_round_trips() {
        let key = PrivateKey::generate().expect("generate");
        let public = key.public_key();
        let pem = public.to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(PublicKey::from_pem(&pem, "p").expect("parse"), public);
        // base64 of a 32-byte digest.
        assert_eq!(STANDARD.decode(public.hint()).expect("b64").len(), 32);
    }

    #[test]
    fn signature_errors_are_distinct() {
        let key = PrivateKey::generate().expect("generate");
        let public = key.public_key();
        let message = b"artifact bytes";
        let der = key.sign(message);
        let good = encode_signature(&der);
        public
            .verify_base64(message, &good)
            .expect("valid signature");
        public
            .verify_base64(message, &format!("{good}\n"))
            .expect("trailing newline ok");

        assert_eq!(public.verify(message, &[]), Err(SignatureError::Empty));
        assert_eq!(
            public.verify_base64(message, ""),
            Err(SignatureError::Empty)
        );
        assert_eq!(
            public.verify_base64(message, " \n"),
            Err(SignatureError::Empty)
        );
        assert!(matches!(
            public.verify_base64(message, "not base64!!"),
            Err(SignatureError::NotBase64 { .. })
        ));
        let truncated = encode_signature(&der[..der.len() - 5]);
        assert!(matches!(
            public.verify_base64(message, &truncated),
            Err(SignatureError::NotDer { .. })
        ));
        // Flip a bit in the last byte: still DER, no longer the signature.
        let mut tampered = der.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        assert_eq!(
            public.verify(message, &tampered),
            Err(SignatureError::DoesNotVerify)
        );
        assert_eq!(
            public.verify(b"other artifact", &der),
            Err(SignatureError::DoesNotVerify)
        );
        let other = PrivateKey::generate().expect("generate").public_key();
        assert_eq!(
            other.verify(message, &der),
            Err(SignatureError::DoesNotVerify)
        );
    }

    #[test]
    fn high_s_signatures_verify_like_openssl() {
        // Go and OpenSSL do not normalise S, so cosign signatures are high-S
        // about half the time; a verifier that rejected them would fail
        // randomly on real cosign output.
        let key = PrivateKey::generate().expect("generate");
        let message = b"payload";
        let signature = Signature::from_der(&key.sign(message)).expect("der");
        let (r, s) = signature.split_scalars();
        let flipped = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).expect("scalars");
        let (low, high) = if signature.normalize_s().is_some() {
            (flipped, signature)
        } else {
            (signature, flipped)
        };
        assert!(low.normalize_s().is_none() && high.normalize_s().is_some());
        let public = key.public_key();
        public
            .verify(message, low.to_der().as_bytes())
            .expect("low-S");
        public
            .verify(message, high.to_der().as_bytes())
            .expect("high-S");
    }

    #[test]
    fn prehash_verification_matches_message_verification() {
        let key = PrivateKey::generate().expect("generate");
        let der = key.sign(b"blob");
        let digest = Sha256::digest(b"blob");
        key.public_key()
            .verify_sha256_digest(&digest, &der)
            .expect("digest verify");
        let other = Sha256::digest(b"blob2");
        assert_eq!(
            key.public_key().verify_sha256_digest(&other, &der),
            Err(SignatureError::DoesNotVerify)
        );
    }

    #[test]
    fn keygen_writes_files_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = dir.path().join("cosign");
        let password = Password::from(PASSWORD);
        let files = keygen(&prefix, &password).expect("keygen");
        assert_eq!(files.private_key, dir.path().join("cosign.key"));
        assert_eq!(files.public_key, dir.path().join("cosign.pub"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&files.private_key)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let before = std::fs::read(&files.private_key).expect("read");
        let err = keygen(&prefix, &password).expect_err("must refuse");
        assert!(
            matches!(&err, KeyError::AlreadyExists { file } if file.ends_with("cosign.key")),
            "{err:?}"
        );
        assert_eq!(std::fs::read(&files.private_key).expect("read"), before);

        // Only the .pub present: still refused, naming the .pub file.
        let other = dir.path().join("other");
        std::fs::write(dir.path().join("other.pub"), "x").expect("write");
        let err = keygen(&other, &password).expect_err("must refuse");
        assert!(
            matches!(&err, KeyError::AlreadyExists { file } if file.ends_with("other.pub")),
            "{err:?}"
        );
        assert!(!dir.path().join("other.key").exists());
    }
}
