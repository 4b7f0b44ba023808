//! Secret values (key passwords) that never print and are wiped from memory when dropped.

use std::fmt;

use zeroize::Zeroize;

/// Name of the environment variable cosign reads the key password from; we
/// use the same one so existing CI secrets keep working.
pub const COSIGN_PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// A value that must not leak into logs, error messages or panics.
///
/// There is deliberately no `Display`, no revealing `Debug`, no `Deref` and no
/// `PartialEq`: every read goes through [`Secret::expose`], so a reviewer can
/// grep for the places where the secret leaves its box.
pub struct Secret<T: Zeroize> {
    inner: T,
}

/// A key password. Cosign treats passwords as bytes; we keep them as UTF-8
/// text because they come from environment variables and terminals.
pub type Password = Secret<String>;

/// Reading a secret from the environment failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The variable exists but is not valid UTF-8. The value itself is never
    /// included, only the variable name.
    #[error(
        "environment variable {name} is not valid UTF-8; set it to the password as plain UTF-8 text"
    )]
    NotUnicode {
        /// Name of the offending environment variable.
        name: String,
    },
}

impl<T: Zeroize> Secret<T> {
    /// Wraps a value. The caller should drop its own copies of `value`.
    pub fn new(value: T) -> Self {
        Self { inner: value }
    }

    /// Gives read access to the secret. Named loudly on purpose: call sites
    /// are the audit points for where the password is used.
    pub fn expose(&self) -> &T {
        &self.inner
    }
}

impl Password {
    /// Reads a password from the environment variable `name`.
    ///
    /// Returns `Ok(None)` when the variable is unset, so the caller can decide
    /// between prompting and failing. An empty value is a valid (empty)
    /// password, as in cosign.
    pub fn from_env(name: &str) -> Result<Option<Self>, SecretError> {
        match std::env::var(name) {
            Ok(value) => Ok(Some(Self::new(value))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::NotUnicode {
                name: name.to_owned(),
            }),
        }
    }
}

impl From<String> for Password {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Password {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone())
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        // Overwrite the buffer before the allocator gets it back. Copies made
        // earlier by reallocation cannot be reached from here; wrapping the
        // value as early as possible keeps those to a minimum.
        self.inner.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Fixed text: not even the length is shown, it narrows brute force.
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let password = Password::from("hunter2-very-secret");
        let shown = format!("{password:?} {:#?}", password);
        assert_eq!(shown, "Secret(***) Secret(***)");
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn expose_returns_the_value() {
        let password = Password::from(String::from("p@ss"));
        assert_eq!(password.expose(), "p@ss");
        assert_eq!(password.clone().expose(), "p@ss");
    }

    #[test]
    fn debug_inside_a_struct_hides_the_value() {
        #[derive(Debug)]
        #[allow(dead_code)] // only the Debug output is under test
        struct Options {
            password: Password,
        }
        let options = Options {
            password: Password::from("topsecret"),
        };
        assert!(!format!("{options:?}").contains("topsecret"));
    }

    #[test]
    fn unset_env_is_none() {
        let value = Password::from_env("XRELEASE_TEST_SURELY_UNSET_VARIABLE_6c1f");
        assert!(matches!(value, Ok(None)));
    }
}
