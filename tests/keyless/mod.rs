//! Keyless signing: the library against a loopback Sigstore.

mod library;
