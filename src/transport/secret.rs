//! Reads a secret from where the config says it is. The value is returned
//! to the caller only; errors name the reference, never the value.

use std::path::PathBuf;

use crate::config::Secret;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    #[error("environment variable `{0}` is not valid UTF-8")]
    NotUnicode(String),
    #[error("cannot read secret file `{}`: {error}", path.display())]
    File {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

impl SecretError {
    pub fn hint(&self) -> String {
        match self {
            SecretError::MissingEnv(name) | SecretError::NotUnicode(name) => {
                format!(
                    "export `{name}` with the secret it stands for (a password, client secret or refresh token) before sending"
                )
            }
            SecretError::File { .. } => {
                "point `file:` at a readable regular file holding only the secret".into()
            }
        }
    }
}

pub fn read_secret(secret: &Secret) -> Result<String, SecretError> {
    match secret {
        Secret::Env(name) => match std::env::var(name) {
            Ok(value) => Ok(value),
            Err(std::env::VarError::NotPresent) => Err(SecretError::MissingEnv(name.clone())),
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::NotUnicode(name.clone())),
        },
        Secret::Literal(value) => Ok(value.clone()),
        Secret::File(path) => {
            let error = |error| SecretError::File {
                path: path.clone(),
                error,
            };
            let bytes = crate::config::read_regular_file(path, 64 * 1024).map_err(error)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| error(std::io::Error::other("not UTF-8 text")))?;
            // Editors add one trailing newline; it is never part of a password.
            let text = text.strip_suffix('\n').unwrap_or(&text);
            Ok(text.strip_suffix('\r').unwrap_or(text).to_string())
        }
    }
}
