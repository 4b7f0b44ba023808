#!/usr/bin/env python3
"""Independent implementation of cosign's encrypted key format, for interop tests.

Built only from the format description (go-securesystemslib `encrypted`
package as used by cosign): scrypt (hashlib) derives a 32-byte key that opens a
NaCl secretbox (PyNaCl) holding a PKCS#8 DER private key (cryptography), and the
JSON document is wrapped in a PEM block. Shares no code with the Rust side, so a
misunderstanding of the format on either side makes the tests fail.

The password is read from the environment variable XRELEASE_INTEROP_PASSWORD,
never from argv (argv is visible in process listings).

Usage:
  make_cosign_key.py check
  make_cosign_key.py make KEY_OUT PUB_PEM_OUT LABEL      # LABEL: sigstore | cosign
  make_cosign_key.py decrypt KEY_IN                      # prints SPKI PEM of the key
  make_cosign_key.py sign KEY_IN FILE SIG_B64_OUT        # ECDSA-SHA256 DER, base64
"""

import base64
import hashlib
import json
import os
import sys

LABELS = {
    "sigstore": "ENCRYPTED SIGSTORE PRIVATE KEY",
    "cosign": "ENCRYPTED COSIGN PRIVATE KEY",
}
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1


def password() -> bytes:
    value = os.environ.get("XRELEASE_INTEROP_PASSWORD")
    if value is None:
        sys.exit("XRELEASE_INTEROP_PASSWORD is not set")
    return value.encode("utf-8")


def scrypt_key(pw: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    # hashlib's default maxmem (32 MiB) is exactly what N=2^15, r=8 needs and
    # OpenSSL counts some overhead on top, so allow more.
    return hashlib.scrypt(pw, salt=salt, n=n, r=r, p=p, maxmem=512 * 1024 * 1024, dklen=32)


def pem_wrap(label: str, body: bytes) -> str:
    text = base64.b64encode(body).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def pem_unwrap(text: str) -> tuple[str, bytes]:
    lines = [line.strip() for line in text.strip().splitlines()]
    first, last = lines[0], lines[-1]
    if not (first.startswith("-----BEGIN ") and first.endswith("-----")):
        sys.exit("not a PEM file")
    label = first[len("-----BEGIN ") : -len("-----")]
    if last != f"-----END {label}-----":
        sys.exit("PEM END line does not match")
    return label, base64.b64decode("".join(lines[1:-1]), validate=True)


def make(key_out: str, pub_out: str, label_name: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from nacl.secret import SecretBox
    from nacl.utils import random

    private = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = random(32)
    nonce = random(SecretBox.NONCE_SIZE)
    box = SecretBox(scrypt_key(password(), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    # .ciphertext is NaCl's tag||ciphertext without the nonce prefix.
    sealed = box.encrypt(pkcs8, nonce).ciphertext
    document = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
            "salt": base64.b64encode(salt).decode("ascii"),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode("ascii")},
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
    }
    body = json.dumps(document, separators=(",", ":")).encode("utf-8")
    with open(key_out, "w", encoding="ascii") as handle:
        handle.write(pem_wrap(LABELS[label_name], body))
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with open(pub_out, "wb") as handle:
        handle.write(public_pem)


def decrypt(key_in: str):
    from cryptography.hazmat.primitives import serialization
    from nacl.secret import SecretBox

    with open(key_in, encoding="ascii") as handle:
        label, body = pem_unwrap(handle.read())
    if label not in LABELS.values():
        sys.exit(f"unexpected PEM label {label!r}")
    document = json.loads(body)
    kdf, cipher = document["kdf"], document["cipher"]
    if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
        sys.exit("unexpected kdf/cipher names")
    params = kdf["params"]
    if set(document) != {"kdf", "cipher", "ciphertext"} or set(params) != {"N", "r", "p"}:
        sys.exit(f"unexpected JSON fields: {sorted(document)} {sorted(params)}")
    salt = base64.b64decode(kdf["salt"], validate=True)
    nonce = base64.b64decode(cipher["nonce"], validate=True)
    if len(salt) != 32 or len(nonce) != 24:
        sys.exit(f"salt/nonce lengths {len(salt)}/{len(nonce)}, expected 32/24")
    key = scrypt_key(password(), salt, params["N"], params["r"], params["p"])
    # Raises nacl.exceptions.CryptoError on a wrong password -> non-zero exit.
    pkcs8 = SecretBox(key).decrypt(base64.b64decode(document["ciphertext"], validate=True), nonce)
    return serialization.load_der_private_key(pkcs8, password=None)


def main(argv: list[str]) -> None:
    if argv[:1] == ["check"] and len(argv) == 1:
        import cryptography  # noqa: F401
        import nacl.secret  # noqa: F401

        print("ok")
    elif argv[:1] == ["make"] and len(argv) == 4 and argv[3] in LABELS:
        make(argv[1], argv[2], argv[3])
    elif argv[:1] == ["decrypt"] and len(argv) == 2:
        from cryptography.hazmat.primitives import serialization

        private = decrypt(argv[1])
        sys.stdout.write(
            private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )
    elif argv[:1] == ["sign"] and len(argv) == 4:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        private = decrypt(argv[1])
        with open(argv[2], "rb") as handle:
            data = handle.read()
        signature = private.sign(data, ec.ECDSA(hashes.SHA256()))
        with open(argv[3], "w", encoding="ascii") as handle:
            handle.write(base64.b64encode(signature).decode("ascii"))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
