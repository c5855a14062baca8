//! Where a token comes from: `{ env = "VAR" }` or `{ file = "/path" }`, never a literal in the
//! config file (config files end up in ConfigMaps, repositories and bug reports).

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The start of the message for a literal secret; [`super::load`] recognises it and masks
/// the value when it shows the offending line.
pub(crate) const LITERAL_SECRET: &str = "a literal secret is not allowed here";

/// A reference to a secret: an environment variable or a file (a mounted Kubernetes Secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// Read from this environment variable.
    Env(String),
    /// Read from this file; surrounding whitespace (a trailing newline) is trimmed.
    File(PathBuf),
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set (or not valid UTF-8).
    #[error("environment variable {var} is not set; set it, or point `{key}` at a file")]
    EnvMissing {
        /// The variable.
        var: String,
        /// The config key that references it.
        key: &'static str,
    },
    /// The file could not be read.
    #[error("cannot read `{key}` from {}: {source}", path.display())]
    FileUnreadable {
        /// The file.
        path: PathBuf,
        /// The config key that references it.
        key: &'static str,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The variable or file is empty.
    #[error("`{key}` comes from {origin}, which is empty")]
    Empty {
        /// `environment variable X` or `file Y`.
        origin: String,
        /// The config key.
        key: &'static str,
    },
}

impl SecretRef {
    /// A reference to an environment variable.
    pub fn env(var: impl Into<String>) -> Self {
        SecretRef::Env(var.into())
    }

    /// Reads the secret. `key` names the config key in error messages.
    pub fn resolve(&self, key: &'static str) -> Result<SecretString, SecretError> {
        let (value, origin) = match self {
            SecretRef::Env(var) => {
                let value = std::env::var(var).map_err(|_| SecretError::EnvMissing {
                    var: var.clone(),
                    key,
                })?;
                (value, format!("environment variable {var}"))
            }
            SecretRef::File(path) => (read_file(path, key)?, format!("file {}", path.display())),
        };
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(SecretError::Empty { origin, key });
        }
        Ok(SecretString::from(trimmed.to_owned()))
    }

    /// Whether the reference is to an environment variable that is set.
    pub fn is_available(&self) -> bool {
        match self {
            SecretRef::Env(var) => std::env::var_os(var).is_some(),
            SecretRef::File(path) => path.exists(),
        }
    }
}

fn read_file(path: &Path, key: &'static str) -> Result<String, SecretError> {
    std::fs::read_to_string(path).map_err(|source| SecretError::FileUnreadable {
        path: path.to_owned(),
        key,
        source,
    })
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(var) => write!(f, "{{ env = \"{var}\" }}"),
            SecretRef::File(path) => write!(f, "{{ file = \"{}\" }}", path.display()),
        }
    }
}

/// The table form, with serde's own "unknown variant" message for a wrong key.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Table {
    Env(String),
    File(PathBuf),
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RefVisitor;

        impl<'de> Visitor<'de> for RefVisitor {
            type Value = SecretRef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret reference: { env = \"VAR\" } or { file = \"/path\" }")
            }

            fn visit_str<E: de::Error>(self, _literal: &str) -> Result<SecretRef, E> {
                // The value is deliberately not echoed: it may be a real token.
                Err(E::custom(format_args!(
                    "{LITERAL_SECRET}; reference it instead: \
                     `{{ env = \"BUILDKITE_API_TOKEN\" }}` or \
                     `{{ file = \"/var/run/secrets/buildkite/api-token\" }}`"
                )))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SecretRef, A::Error> {
                let table = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(match table {
                    Table::Env(var) => SecretRef::Env(var),
                    Table::File(path) => SecretRef::File(path),
                })
            }
        }

        deserializer.deserialize_any(RefVisitor)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        token: SecretRef,
    }

    #[test]
    fn env_and_file_tables_parse() {
        let env: Holder = toml::from_str("token = { env = \"TOKEN\" }").expect("env");
        assert_eq!(env.token, SecretRef::env("TOKEN"));
        let file: Holder = toml::from_str("token = { file = \"/run/t\" }").expect("file");
        assert_eq!(file.token, SecretRef::File("/run/t".into()));
    }

    #[test]
    fn literal_string_is_refused_without_echoing_it() {
        let err = toml::from_str::<Holder>("token = \"bkua_0123456789\"").expect_err("literal");
        assert!(err.message().starts_with(LITERAL_SECRET), "{err}");
        assert!(!err.message().contains("bkua_0123456789"), "{err}");
    }

    #[test]
    fn unknown_table_key_names_the_valid_ones() {
        let err = toml::from_str::<Holder>("token = { vault = \"x\" }").expect_err("vault");
        assert!(err.message().contains("`env`"), "{err}");
        assert!(err.message().contains("`file`"), "{err}");
    }

    #[test]
    fn file_secret_is_trimmed_and_empty_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "abc123\n").expect("write");
        let secret = SecretRef::File(path.clone())
            .resolve("api_token")
            .expect("read");
        assert_eq!(secret.expose_secret(), "abc123");
        std::fs::write(&path, "\n").expect("write");
        let err = SecretRef::File(path)
            .resolve("api_token")
            .expect_err("empty");
        assert!(matches!(err, SecretError::Empty { .. }), "{err}");
    }

    #[test]
    fn missing_file_names_the_path_and_key() {
        let err = SecretRef::File("/nonexistent/jobify/token".into())
            .resolve("agent_token")
            .expect_err("missing");
        let text = err.to_string();
        assert!(text.contains("/nonexistent/jobify/token"), "{text}");
        assert!(text.contains("agent_token"), "{text}");
    }
}
