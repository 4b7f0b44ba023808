//! Interop tests for the signing modules against independent implementations:
//! the `openssl` CLI and a Python (hashlib + PyNaCl + cryptography) cosign key
//! codec in tests/interop/make_cosign_key.py.
//!
//! python3 with PyNaCl and cryptography, and openssl, are required (scripts/setup.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use xrelease::secret::Password;
use xrelease::signing::dsse::{DsseError, Envelope};
use xrelease::signing::key::{
    self, KeyError, PrivateKey, PublicKey, SignatureError, decode_signature, keygen,
};

const PASSWORD: &str = "interop pw \u{e9}t\u{e9} #42";
const PASSWORD_ENV: &str = "XRELEASE_INTEROP_PASSWORD";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/make_cosign_key.py")
}

/// Runs the Python helper with `password` in its environment.
fn python(args: &[&str], password: &str) -> Output {
    Command::new("python3")
        .arg(script())
        .args(args)
        .env(PASSWORD_ENV, password)
        .output()
        .expect("python3 was found by python_ready() but could not be started")
}

/// Checks that python3 with PyNaCl and cryptography is installed (scripts/setup.sh installs
/// them): an interop test that cannot run is a failure, not a skip.
fn python_ready(test: &str) -> bool {
    let ok = Command::new("python3")
        .arg(script())
        .arg("check")
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{test}: python3 with PyNaCl and cryptography is missing; run scripts/setup.sh"
    );
    ok
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl dgst -sha256 -verify PUB -signature SIG FILE`; true on "Verified OK".
fn openssl_verifies(public_pem: &Path, signature_der: &Path, data: &Path) -> bool {
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public_pem)
        .arg("-signature")
        .arg(signature_der)
        .arg(data)
        .output()
        .expect("the openssl CLI is required by these tests (apt-get install openssl)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verified = stdout.contains("Verified OK");
    // Exit status and text must agree, so a changed openssl output format
    // cannot turn a failure into a pass.
    assert_eq!(out.status.success(), verified, "openssl said: {stdout}");
    verified
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::write(path, bytes).expect("write test file");
}

#[test]
fn keygen_round_trip_sign_and_verify_with_openssl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let password = Password::from(PASSWORD);
    let files = keygen(&dir.path().join("release"), &password).expect("keygen");

    let private = PrivateKey::read_encrypted(&files.private_key, &password).expect("read key");
    let public = PublicKey::read(&files.public_key).expect("read pub");
    assert_eq!(private.public_key(), public);

    let artifact = dir.path().join("artifact.tar.gz");
    write(&artifact, b"release artifact bytes\x00\x01\x02");
    let sig_text = private.sign_base64(b"release artifact bytes\x00\x01\x02");
    public
        .verify_base64(b"release artifact bytes\x00\x01\x02", &sig_text)
        .expect("own verify");

    let sig_der = dir.path().join("artifact.sig.der");
    write(&sig_der, decode_signature(&sig_text).expect("b64"));
    assert!(
        openssl_verifies(&files.public_key, &sig_der, &artifact),
        "openssl rejected a signature from our keygen'd key"
    );
    write(&artifact, b"release artifact bytes\x00\x01\x03");
    assert!(!openssl_verifies(&files.public_key, &sig_der, &artifact));
}

#[test]
fn wrong_password_is_refused_without_leaking_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = keygen(&dir.path().join("cosign"), &Password::from(PASSWORD)).expect("keygen");
    let wrong = "definitely-Not-the-password-91";
    let err = PrivateKey::read_encrypted(&files.private_key, &Password::from(wrong))
        .expect_err("wrong password must fail");
    assert!(matches!(err, KeyError::WrongPassword { .. }), "{err:?}");
    let display = err.to_string();
    let expected_start = format!(
        "wrong password for {} (COSIGN_PASSWORD)",
        files.private_key.display()
    );
    assert!(display.starts_with(&expected_start), "{display}");
    for text in [display, format!("{err:?}"), format!("{err:#?}")] {
        assert!(!text.contains(wrong), "wrong password leaked: {text}");
        assert!(!text.contains(PASSWORD), "real password leaked: {text}");
    }
}

#[test]
fn python_made_cosign_keys_sign_for_openssl() {
    if !python_ready("python_made_cosign_keys_sign_for_openssl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let artifact = dir.path().join("blob.bin");
    let data = b"blob signed with a key made by an independent implementation";
    write(&artifact, data);

    for (label, pem_label) in [
        ("sigstore", key::SIGSTORE_PRIVATE_KEY_LABEL),
        ("cosign", key::COSIGN_PRIVATE_KEY_LABEL),
    ] {
        let key_path = dir.path().join(format!("{label}.key"));
        let pub_path = dir.path().join(format!("{label}.pub"));
        let out = python(
            &[
                "make",
                key_path.to_str().expect("utf8 path"),
                pub_path.to_str().expect("utf8 path"),
                label,
            ],
            PASSWORD,
        );
        assert_success(&out, "python make");
        let pem = std::fs::read_to_string(&key_path).expect("read");
        assert!(
            pem.starts_with(&format!("-----BEGIN {pem_label}-----")),
            "{pem}"
        );

        let private = PrivateKey::read_encrypted(&key_path, &Password::from(PASSWORD))
            .unwrap_or_else(|e| panic!("Rust could not read the Python {label} key: {e}"));
        let python_public = PublicKey::read(&pub_path).expect("python pub");
        assert_eq!(private.public_key(), python_public);

        let sig_der = dir.path().join(format!("{label}.sig.der"));
        write(&sig_der, private.sign(data));
        assert!(
            openssl_verifies(&pub_path, &sig_der, &artifact),
            "openssl rejected the signature made with the Python {label} key"
        );

        let err = PrivateKey::read_encrypted(&key_path, &Password::from("nope"))
            .expect_err("wrong password");
        assert!(matches!(err, KeyError::WrongPassword { .. }), "{err:?}");
    }
}

#[test]
fn rust_keygen_key_decrypts_in_python() {
    if !python_ready("rust_keygen_key_decrypts_in_python") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let files = keygen(&dir.path().join("cosign"), &Password::from(PASSWORD)).expect("keygen");
    let key_arg = files.private_key.to_str().expect("utf8 path");

    let out = python(&["decrypt", key_arg], PASSWORD);
    assert_success(&out, "python decrypt");
    let from_python = PublicKey::from_pem(&String::from_utf8_lossy(&out.stdout), "python stdout")
        .expect("python printed a public key");
    assert_eq!(
        from_python,
        PublicKey::read(&files.public_key).expect("pub")
    );

    // The Python side must really check the password, or the test above
    // would prove nothing.
    let out = python(&["decrypt", key_arg], "not the password");
    assert!(
        !out.status.success(),
        "python decrypted with a wrong password"
    );

    // A signature made by Python/OpenSSL with our key verifies in Rust.
    // Run several: OpenSSL does not normalise S, so this covers high-S too.
    let public = PublicKey::read(&files.public_key).expect("pub");
    for round in 0..4 {
        let data_path = dir.path().join(format!("data{round}"));
        let sig_path = dir.path().join(format!("data{round}.sig"));
        let data = format!("payload number {round}");
        write(&data_path, &data);
        let out = python(
            &[
                "sign",
                key_arg,
                data_path.to_str().expect("utf8"),
                sig_path.to_str().expect("utf8"),
            ],
            PASSWORD,
        );
        assert_success(&out, "python sign");
        let sig_text = std::fs::read_to_string(&sig_path).expect("sig");
        public
            .verify_base64(data.as_bytes(), &sig_text)
            .expect("Rust verifies a Python/OpenSSL signature");
    }
}

#[test]
fn dsse_signature_verifies_with_openssl_over_independent_pae() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = keygen(&dir.path().join("k"), &Password::from(PASSWORD)).expect("keygen");
    let private =
        PrivateKey::read_encrypted(&files.private_key, &Password::from(PASSWORD)).expect("read");
    let payload_type = "application/vnd.in-toto+json";
    let payload = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#;
    let envelope = Envelope::sign(payload_type, payload, &private, "");

    // Round trip through JSON, as a verifier would receive it.
    let envelope: Envelope =
        serde_json::from_str(&serde_json::to_string(&envelope).expect("json")).expect("parse");
    assert_eq!(
        STANDARD.decode(&envelope.payload).expect("b64"),
        payload.to_vec()
    );

    // PAE written out by hand here, not with dsse::pae.
    let independent_pae = |body: &[u8]| {
        let mut bytes = format!(
            "DSSEv1 {} {} {} ",
            payload_type.len(),
            payload_type,
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        bytes
    };
    let pae_path = dir.path().join("pae.bin");
    let sig_path = dir.path().join("sig.der");
    write(&pae_path, independent_pae(payload));
    write(
        &sig_path,
        STANDARD
            .decode(&envelope.signatures[0].sig)
            .expect("sig b64"),
    );
    assert!(openssl_verifies(&files.public_key, &sig_path, &pae_path));

    let public = PublicKey::read(&files.public_key).expect("pub");
    assert_eq!(envelope.verify(&public).expect("verify"), payload.to_vec());

    // Tampered payload: openssl and we both refuse.
    let tampered = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[1]}"#;
    write(&pae_path, independent_pae(tampered));
    assert!(!openssl_verifies(&files.public_key, &sig_path, &pae_path));
    let mut bad = envelope.clone();
    bad.payload = STANDARD.encode(tampered);
    assert!(matches!(
        bad.verify(&public),
        Err(DsseError::NoValidSignature {
            first: SignatureError::DoesNotVerify
        })
    ));
}

#[test]
fn damaged_sig_files_give_distinct_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = keygen(&dir.path().join("k"), &Password::from(PASSWORD)).expect("keygen");
    let private =
        PrivateKey::read_encrypted(&files.private_key, &Password::from(PASSWORD)).expect("read");
    let public = PublicKey::read(&files.public_key).expect("pub");
    let data = b"artifact";
    let der = private.sign(data);

    let mut tampered = der.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    let cases: [(&str, String); 4] = [
        ("tampered", STANDARD.encode(&tampered)),
        ("truncated", STANDARD.encode(&der[..der.len() / 2])),
        ("empty", String::new()),
        ("non-base64", "this is not base64 at all!".to_owned()),
    ];
    let mut messages = Vec::new();
    for (name, text) in &cases {
        let err = public
            .verify_base64(data, text)
            .expect_err("damaged signature must fail");
        match (*name, &err) {
            ("tampered", SignatureError::DoesNotVerify)
            | ("truncated", SignatureError::NotDer { .. })
            | ("empty", SignatureError::Empty)
            | ("non-base64", SignatureError::NotBase64 { .. }) => {}
            _ => panic!("{name} signature gave the wrong error: {err:?}"),
        }
        messages.push(err.to_string());
    }
    messages.sort();
    messages.dedup();
    assert_eq!(
        messages.len(),
        4,
        "error messages must differ: {messages:?}"
    );

    // The tampered signature is rejected by openssl too, so the failure is in
    // the signature and not in our verifier.
    let artifact = dir.path().join("artifact");
    let sig = dir.path().join("tampered.der");
    write(&artifact, data);
    write(&sig, &tampered);
    assert!(!openssl_verifies(&files.public_key, &sig, &artifact));
    write(&sig, &der);
    assert!(openssl_verifies(&files.public_key, &sig, &artifact));
}
