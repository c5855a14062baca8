//! The files that point a `jobify run` at the simulators: a kubeconfig, the token files and a
//! `jobify.toml` rendered from a [`ConfigTemplate`].

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{AGENT_TOKEN, API_TOKEN, CLUSTER_AGENT_TOKEN, SimEnv};

/// The environment variable `jobify sim`'s config reads the API token from.
pub const API_TOKEN_ENV: &str = "BUILDKITE_API_TOKEN";

/// Where the written `jobify.toml` tells jobify to read the Buildkite API token from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `{ env = "BUILDKITE_API_TOKEN" }`: for a `jobify run` started by hand, as in production.
    Env,
    /// `{ file = "<dir>/buildkite-api-token" }`: for jobify running inside this process,
    /// which cannot set its own environment safely.
    File,
}

/// A `jobify.toml` with `{{name}}` placeholders.
///
/// [`SimEnv::write_files`] fills in `{{organization}}`, `{{source}}`, `{{graphql_url}}`,
/// `{{agent_url}}` (insert them inside double quotes; they are escaped for a TOML basic
/// string; `agent_url` is the Stacks API simulator's with the `stacks` source) and
/// `{{api_token}}`, `{{agent_token}}` (secret references, inline tables: insert them bare).
/// [`ConfigTemplate::with`] adds more. A placeholder left without a value is an error, so a
/// typo in a template cannot silently produce a config that points elsewhere.
#[derive(Clone, Debug)]
pub struct ConfigTemplate {
    text: Cow<'static, str>,
    values: Vec<(String, String)>,
}

impl ConfigTemplate {
    /// A template with text `text`.
    pub fn new(text: impl Into<Cow<'static, str>>) -> Self {
        ConfigTemplate {
            text: text.into(),
            values: Vec::new(),
        }
    }

    /// Also replaces `{{name}}` with `value` (verbatim: quote and escape it as the place in the
    /// template needs).
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.values.push((name.to_owned(), value.into()));
        self
    }

    /// The text with every placeholder replaced.
    ///
    /// # Errors
    /// [`FilesError::Placeholder`] naming the first placeholder that has no value.
    pub fn render(&self) -> Result<String, FilesError> {
        let mut text = self.text.to_string();
        for (name, value) in &self.values {
            text = text.replace(&format!("{{{{{name}}}}}"), value);
        }
        if let Some(start) = text.find("{{") {
            let name: String = text[start + 2..]
                .chars()
                .take_while(|c| *c != '}')
                .collect();
            return Err(FilesError::Placeholder(name));
        }
        Ok(text)
    }
}

/// Why the files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A template placeholder has no value.
    #[error("the config template's placeholder {{{{{0}}}}} has no value")]
    Placeholder(String),
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// What [`SimEnv::write_files`] wrote.
#[derive(Clone, Debug)]
pub struct SimFiles {
    /// The kubeconfig whose current context is the Kubernetes simulator.
    pub kubeconfig: PathBuf,
    /// The `jobify.toml`.
    pub config: PathBuf,
    /// The Buildkite API token (also what `BUILDKITE_API_TOKEN` must hold for
    /// [`TokenSource::Env`]).
    pub api_token_file: PathBuf,
    /// The agent token (`/v3/metrics`, and the Stacks source's credential).
    pub agent_token_file: PathBuf,
    /// Where the config reads the API token from.
    pub token_source: TokenSource,
}

impl SimFiles {
    /// The shell command that runs `program` (e.g. `jobify` or `cargo run -p jobify --`)
    /// against the simulators, with the environment the config needs.
    pub fn run_command(&self, program: &str) -> String {
        let mut command = format!("KUBECONFIG={} ", shell_quote(&self.kubeconfig));
        if self.token_source == TokenSource::Env {
            let _ = write!(command, "{API_TOKEN_ENV}={API_TOKEN} ");
        }
        let _ = write!(command, "{program} run -c {}", shell_quote(&self.config));
        command
    }
}

impl SimEnv {
    /// Writes `kubeconfig`, `buildkite-api-token`, `buildkite-agent-token` and `jobify.toml`
    /// (rendered from `template`) into `dir`, which must exist.
    ///
    /// # Errors
    /// A placeholder without a value, or a file that cannot be written.
    pub fn write_files(
        &self,
        dir: &Path,
        template: &ConfigTemplate,
        token_source: TokenSource,
    ) -> Result<SimFiles, FilesError> {
        let files = SimFiles {
            kubeconfig: dir.join("kubeconfig"),
            config: dir.join("jobify.toml"),
            api_token_file: dir.join("buildkite-api-token"),
            agent_token_file: dir.join("buildkite-agent-token"),
            token_source,
        };
        let api_token = match token_source {
            TokenSource::Env => format!("{{ env = \"{API_TOKEN_ENV}\" }}"),
            TokenSource::File => file_ref(&files.api_token_file),
        };
        let text = template
            .clone()
            .with("organization", toml_escape(self.organization()))
            .with("graphql_url", toml_escape(&self.buildkite().graphql_url()))
            .with("source", self.source().as_str())
            .with(
                "agent_url",
                toml_escape(&match self.stacks() {
                    Some(stacks) => stacks.base_url(),
                    None => self.buildkite().agent_url(),
                }),
            )
            .with("api_token", api_token)
            .with("agent_token", file_ref(&files.agent_token_file))
            .render()?;
        let write = |path: &Path, contents: &str| {
            std::fs::write(path, contents).map_err(|source| FilesError::Write {
                path: path.to_owned(),
                source,
            })
        };
        write(&files.api_token_file, API_TOKEN)?;
        let agent_token = match self.stacks() {
            Some(_) => CLUSTER_AGENT_TOKEN,
            None => AGENT_TOKEN,
        };
        write(&files.agent_token_file, agent_token)?;
        self.kubernetes()
            .write_kubeconfig(&files.kubeconfig)
            .map_err(|source| FilesError::Write {
                path: files.kubeconfig.clone(),
                source,
            })?;
        write(&files.config, &text)?;
        Ok(files)
    }
}

/// `{ file = "<path>" }`.
fn file_ref(path: &Path) -> String {
    format!(
        "{{ file = \"{}\" }}",
        toml_escape(&path.display().to_string())
    )
}

/// Escapes `value` for the inside of a TOML basic string.
pub(crate) fn toml_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// `path`, single-quoted for a POSIX shell when it needs quoting.
fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_fills_placeholders_and_refuses_missing_ones() {
        let template = ConfigTemplate::new("a = \"{{x}}\"\nb = {{y}}\n").with("x", "1");
        assert!(matches!(template.render(), Err(FilesError::Placeholder(name)) if name == "y"));
        let text = template.with("y", "2").render().expect("all filled");
        assert_eq!(text, "a = \"1\"\nb = 2\n");
    }

    #[test]
    fn escaped_values_stay_one_toml_string() {
        let value = toml_escape("C:\\tmp\\\"odd\"\n");
        let parsed: toml::Table = toml::from_str(&format!("v = \"{value}\"")).expect("toml");
        assert_eq!(parsed["v"].as_str(), Some("C:\\tmp\\\"odd\"\n"));
    }

    #[test]
    fn run_command_sets_the_token_only_when_the_config_reads_it_from_the_environment() {
        let files = |token_source| SimFiles {
            kubeconfig: "/tmp/s/kubeconfig".into(),
            config: "/tmp/my dir/jobify.toml".into(),
            api_token_file: "/tmp/s/t".into(),
            agent_token_file: "/tmp/s/a".into(),
            token_source,
        };
        assert_eq!(
            files(TokenSource::Env).run_command("jobify"),
            format!(
                "KUBECONFIG=/tmp/s/kubeconfig BUILDKITE_API_TOKEN={API_TOKEN} jobify run -c '/tmp/my dir/jobify.toml'"
            )
        );
        assert!(
            !files(TokenSource::File)
                .run_command("jobify")
                .contains("BUILDKITE_API_TOKEN")
        );
    }
}
