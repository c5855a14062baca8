//! `jobify.toml`: the binary owns the file and its top-level keys; each section deserialises
//! straight into the config type of the crate that uses it.
//!
//! Loading is strict. Unknown keys and wrong types are errors that point at `file:line:col`
//! and name the valid keys; a literal token where a secret reference belongs is refused; after
//! parsing, [`Config::validate`] checks what types cannot (ranges, cross-references) and
//! reports every problem at once. Start with [`load`].

mod buildkite;
mod scheduler;
mod secret;
mod server;
mod source;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use jobify_core::config::{GuardConfig, LimitsConfig, PolicyConfig, QueueConfig, Validate};
use jobify_k8s::config::{KubernetesConfig, LeaderElectionConfig};
use serde::Deserialize;

pub use buildkite::{BuildkiteConfig, agent_token_ref};
pub use scheduler::{MAX_LAUNCH_CONCURRENCY, SchedulerSettings};
pub use secret::{SecretError, SecretRef};
pub use server::ServerConfig;
pub use source::{KeyPath, Position, Segment, Source};
pub use validate::{Problem, Problems};

/// The whole `jobify.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Buildkite organization slug, e.g. `acme`.
    pub organization: String,
    /// Marks the Jobs this controller owns (label `jobify.dev/controller`); defaults to the
    /// organization slug. Give two controllers sharing a namespace different ids.
    #[serde(default)]
    pub controller_id: Option<String>,
    /// `[buildkite]`: API access, what to watch, polling.
    #[serde(default)]
    pub buildkite: BuildkiteConfig,
    /// `[scheduler]`: how the scheduler paces launches, cancellation checks, poll backoff
    /// and shutdown.
    #[serde(default)]
    pub scheduler: SchedulerSettings,
    /// `[[queues]]`: the Buildkite queues this controller serves, with their limits.
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    /// `[limits]`: workloads in flight overall and per pipeline.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[policy]`: which jobs run, in which pod, and which are skipped or rejected.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[guard]`: the admission guard for pod specs jobs bring along.
    #[serde(default)]
    pub guard: GuardConfig,
    /// `[kubernetes]`: where and how Jobs are created (with `[kubernetes.fail_fast]`).
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
    /// `[leader_election]`: which replica launches Jobs.
    #[serde(default)]
    pub leader_election: LeaderElectionConfig,
    /// `[server]`: the metrics and health listener.
    #[serde(default)]
    pub server: ServerConfig,
}

impl Config {
    /// The controller id: `controller_id`, or the organization slug.
    pub fn controller_id(&self) -> String {
        self.controller_id
            .clone()
            .unwrap_or_else(|| self.organization.clone())
    }

    /// Checks what deserialisation cannot, returning every problem found.
    pub fn validate(&self) -> Problems {
        let mut problems = Problems::default();
        let root = KeyPath::root();
        let slug_ok = !self.organization.is_empty()
            && self
                .organization
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !slug_ok {
            problems.push(
                root.key("organization"),
                format!(
                    "must be the organization's slug as in its Buildkite URL \
                     (lowercase letters, digits, `-`), not `{}`",
                    self.organization
                ),
            );
        }
        if let Some(id) = &self.controller_id
            && (id.is_empty() || !jobify_k8s::labels::is_label_value(id))
        {
            problems.push(
                root.key("controller_id"),
                format!(
                    "`{id}` is not a valid label value: use at most 63 letters, digits, `-`, `_` \
                     or `.`, starting and ending with a letter or digit"
                ),
            );
        }
        buildkite::validate(&self.buildkite, &root.key("buildkite"), &mut problems);
        self.scheduler.validate(
            &root.key("scheduler"),
            self.buildkite.poll_interval,
            &mut problems,
        );

        problems.extend(self.queues.validate());
        problems.extend(self.limits.validate());
        problems.extend(self.policy.validate());
        problems.extend(self.guard.validate());
        problems.extend(self.kubernetes.validate());
        problems.extend(self.leader_election.validate());

        // Templates live in `[kubernetes]`, the policy in `[policy]`: only the binary sees both.
        for (key, template) in self.policy.template_references() {
            if !self.kubernetes.resource_classes.contains_key(template) {
                let known: Vec<&str> = self
                    .kubernetes
                    .resource_classes
                    .keys()
                    .map(String::as_str)
                    .collect();
                let hint = if known.is_empty() {
                    "no resource classes are defined".to_owned()
                } else {
                    format!("defined: {}", known.join(", "))
                };
                problems.push(
                    KeyPath::parse(&key),
                    format!(
                        "template `{template}` is not defined ({hint}); add \
                         [kubernetes.resource_classes.{template}] or name a defined one"
                    ),
                );
            }
        }
        problems
    }
}

/// One problem in the config file, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The key it is about (empty when it is about the whole file).
    pub path: KeyPath,
    /// Where in the file, when known.
    pub position: Option<Position>,
    /// What is wrong, naming the key.
    pub message: String,
    /// `file:line:col: message`, the offending line and a caret.
    pub rendered: String,
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file has problems; each is located and explained.
    #[error("{}", Rendered(.0))]
    Invalid(Vec<Diagnostic>),
}

struct Rendered<'a>(&'a [Diagnostic]);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in self.0 {
            writeln!(f, "{}\n", diagnostic.rendered)?;
        }
        let count = self.0.len();
        write!(
            f,
            "{count} problem{} in the config file",
            if count == 1 { "" } else { "s" }
        )
    }
}

/// Reads, parses and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&Source::new(path, text))
}

/// Parses and validates config text.
pub fn parse(source: &Source) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(source.text())
        .map_err(|err| ConfigError::Invalid(vec![syntax_diagnostic(source, &err)]))?;
    let problems = config.validate();
    if problems.is_empty() {
        return Ok(config);
    }
    let mut diagnostics = problems
        .into_vec()
        .into_iter()
        .map(|problem| {
            let span = source.span_of(&problem.path);
            Diagnostic {
                position: span.as_ref().map(|s| source.position(s.start)),
                rendered: source.render(span, &problem.message, false),
                path: problem.path,
                message: problem.message,
            }
        })
        .collect::<Vec<_>>();
    diagnostics.sort_by_key(|d| d.position.map(|p| (p.line, p.column)));
    Err(ConfigError::Invalid(diagnostics))
}

fn syntax_diagnostic(source: &Source, err: &toml::de::Error) -> Diagnostic {
    // toml reports a key missing from the document itself at the empty span `0..0`: it is
    // about the whole file, not its first line.
    let span = err.span().filter(|span| *span != (0..0));
    let path = span
        .as_ref()
        .map_or_else(KeyPath::root, |span| source.path_at(span));
    let mut message = err.message().trim_end().to_owned();
    if message.ends_with("expected a duration") {
        // humantime says what it wanted, not how to write it.
        message.push_str(" such as \"30s\", \"5m\" or \"1h 30m\"");
    }
    let redact = message.starts_with(secret::LITERAL_SECRET);
    let message = if path.segments().is_empty() {
        message
    } else {
        format!("{path}: {message}")
    };
    Diagnostic {
        position: span.as_ref().map(|s| source.position(s.start)),
        rendered: source.render(span, &message, redact),
        path,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_in(text: &str) -> Vec<Diagnostic> {
        match parse(&Source::new("jobify.toml", text)) {
            Err(ConfigError::Invalid(diagnostics)) => diagnostics,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = parse(&Source::new("j.toml", "organization = \"acme\"\n")).expect("valid");
        assert_eq!(
            config.buildkite.api_token,
            SecretRef::env("BUILDKITE_API_TOKEN")
        );
        assert_eq!(config.buildkite.page_size, 100);
        assert_eq!(config.server.listen.port(), 8080);
    }

    #[test]
    fn unknown_key_is_located_and_valid_keys_named() {
        let found = problems_in("organization = \"acme\"\n[buildkite]\npagesize = 5\n");
        let [diagnostic] = found.as_slice() else {
            panic!("{found:?}")
        };
        assert_eq!(diagnostic.position, Some(Position { line: 3, column: 1 }));
        assert!(
            diagnostic
                .rendered
                .starts_with("jobify.toml:3:1: buildkite.pagesize: unknown field `pagesize`")
        );
        assert!(
            diagnostic.message.contains("`page_size`"),
            "{}",
            diagnostic.message
        );
    }

    #[test]
    fn literal_token_is_refused_and_masked() {
        let found =
            problems_in("organization = \"acme\"\n[buildkite]\napi_token = \"bkua_abcdef\"\n");
        let rendered = &found[0].rendered;
        assert!(
            rendered.starts_with("jobify.toml:3:13: buildkite.api_token: a literal secret"),
            "{rendered}"
        );
        assert!(
            rendered.contains("{ env = \\\"BUILDKITE_API_TOKEN\\\" }")
                || rendered.contains("{ env = \"BUILDKITE_API_TOKEN\" }"),
            "{rendered}"
        );
        assert!(!rendered.contains("bkua_abcdef"), "{rendered}");
    }

    #[test]
    fn semantic_problems_are_all_reported_with_positions() {
        let found = problems_in(
            "organization = \"Acme Inc\"\n[buildkite]\npage_size = 900\nbudget_share = 1.5\n",
        );
        let located: Vec<_> = found
            .iter()
            .map(|d| (d.path.to_string(), d.position.map(|p| p.line)))
            .collect();
        assert_eq!(
            located,
            [
                ("organization".to_owned(), Some(1)),
                ("buildkite.page_size".to_owned(), Some(3)),
                ("buildkite.budget_share".to_owned(), Some(4)),
            ]
        );
    }

    #[test]
    fn missing_top_level_key_is_about_the_whole_file() {
        let found = problems_in("[buildkite]\npage_size = 5\n");
        assert_eq!(found[0].path, KeyPath::root());
        assert_eq!(found[0].position, None);
        assert_eq!(
            found[0].rendered,
            "jobify.toml: missing field `organization`"
        );
    }

    #[test]
    fn scheduler_settings_are_read_and_checked() {
        let config = parse(&Source::new(
            "j.toml",
            "organization = \"acme\"\n[scheduler]\nlaunch_concurrency = 3\nshutdown_grace = \"25s\"\n",
        ))
        .expect("valid");
        let core = config
            .scheduler
            .scheduler_config(config.buildkite.poll_interval);
        assert_eq!(core.launch_concurrency, 3);
        assert_eq!(core.shutdown_grace, std::time::Duration::from_secs(25));
        assert_eq!(core.poll_interval, config.buildkite.poll_interval);

        let found = problems_in(
            "organization = \"acme\"\n[buildkite]\npoll_interval = \"10s\"\n[scheduler]\nmax_poll_backoff = \"5s\"\n",
        );
        assert!(
            found[0]
                .rendered
                .starts_with("jobify.toml:5:20: scheduler.max_poll_backoff: must be at least"),
            "{}",
            found[0].rendered
        );
    }

    #[test]
    fn bad_duration_names_the_key() {
        let found =
            problems_in("organization = \"acme\"\n[buildkite]\npoll_interval = \"5 parsecs\"\n");
        assert!(
            found[0]
                .rendered
                .starts_with("jobify.toml:3:17: buildkite.poll_interval:"),
            "{}",
            found[0].rendered
        );
    }
}
