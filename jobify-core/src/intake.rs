//! Building a [`ScheduledJob`] from the raw parts Buildkite's APIs hand out: strings for the
//! uuid, the agent query rules and the `KEY=VALUE` environment. Organization, pipeline, build
//! and step key come from the `BUILDKITE_*` variables, the plugin from `BUILDKITE_PLUGINS`.

use jiff::Timestamp;

use crate::job::{BuildInfo, Env, JobId, ScheduledJob};
use crate::plugin::PluginConfig;
use crate::rules::AgentQueryRules;

/// A job as Buildkite describes it, before it is checked and typed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawJob {
    /// The job's uuid, e.g. `0190b5d0-6b6e-4c8a-9c53-1a2b3c4d5e6f`.
    pub uuid: String,
    /// The key the job's source addresses the job by (see [`ScheduledJob::source_key`]),
    /// e.g. a GraphQL node id.
    pub source_key: String,
    /// The step's label.
    pub label: Option<String>,
    /// The step's command.
    pub command: Option<String>,
    /// Agent query rules, `key=value` each.
    pub agent_query_rules: Vec<String>,
    /// The environment, `KEY=VALUE` each.
    pub env: Vec<String>,
    /// Buildkite priority.
    pub priority: i32,
    /// When the job became scheduled.
    pub scheduled_at: Option<Timestamp>,
    /// Web URL of the job.
    pub url: Option<String>,
}

/// Why Buildkite's description of a job could not be turned into a [`ScheduledJob`].
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The uuid is not a uuid.
    #[error("job uuid {value:?} is not a UUID: {source}")]
    InvalidUuid {
        /// The value given.
        value: String,
        /// What the parser said.
        #[source]
        source: uuid::Error,
    },
    /// The source key is empty, so the job could not be cancelled or annotated.
    #[error("job {job} has an empty source key (the id its job source addresses it by)")]
    MissingSourceKey {
        /// The job.
        job: JobId,
    },
    /// A `BUILDKITE_*` variable every job carries is missing or empty.
    #[error("job {job} lacks the environment variable {key}; is this a command job?")]
    MissingEnv {
        /// The job.
        job: JobId,
        /// The variable.
        key: &'static str,
    },
    /// A `BUILDKITE_*` variable has a value of the wrong form.
    #[error("job {job} has {key}={value:?}, expected {expected}")]
    InvalidEnv {
        /// The job.
        job: JobId,
        /// The variable.
        key: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl ScheduledJob {
    /// Builds a job from Buildkite's raw parts. The plugin configuration is read from
    /// `BUILDKITE_PLUGINS`; a malformed one is kept as [`PluginConfig::Invalid`] (the policy
    /// rejects the job with the parser's message) rather than failing here.
    pub fn from_raw(raw: RawJob) -> Result<ScheduledJob, JobError> {
        let id: JobId = raw
            .uuid
            .trim()
            .parse()
            .map_err(|source| JobError::InvalidUuid {
                value: raw.uuid.clone(),
                source,
            })?;
        if raw.source_key.trim().is_empty() {
            return Err(JobError::MissingSourceKey { job: id });
        }
        let env = Env::from_pairs(&raw.env);
        let required = |key: &'static str| {
            env.non_empty(key)
                .map(str::to_owned)
                .ok_or(JobError::MissingEnv { job: id, key })
        };
        let organization = required("BUILDKITE_ORGANIZATION_SLUG")?;
        let pipeline = required("BUILDKITE_PIPELINE_SLUG")?;
        let number_text = required("BUILDKITE_BUILD_NUMBER")?;
        let number = number_text
            .parse::<u64>()
            .map_err(|_| JobError::InvalidEnv {
                job: id,
                key: "BUILDKITE_BUILD_NUMBER",
                value: number_text.clone(),
                expected: "a build number such as 42",
            })?;
        let optional = |key: &str| env.non_empty(key).map(str::to_owned);
        let build = BuildInfo {
            number,
            branch: optional("BUILDKITE_BRANCH").unwrap_or_default(),
            commit: optional("BUILDKITE_COMMIT").unwrap_or_default(),
            url: optional("BUILDKITE_BUILD_URL"),
        };
        let step_key = optional("BUILDKITE_STEP_KEY");
        let label = raw.label.or_else(|| optional("BUILDKITE_LABEL"));
        let command = raw.command.or_else(|| optional("BUILDKITE_COMMAND"));
        let plugin = PluginConfig::from_env(&env);
        Ok(ScheduledJob {
            id,
            source_key: raw.source_key,
            organization,
            pipeline,
            build,
            step_key,
            label,
            command,
            rules: AgentQueryRules::parse(&raw.agent_query_rules),
            env,
            plugin,
            priority: raw.priority,
            scheduled_at: raw.scheduled_at,
            url: raw.url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawJob {
        RawJob {
            uuid: "0190b5d0-6b6e-4c8a-9c53-1a2b3c4d5e6f".into(),
            source_key: "Sm9iLS0tMDE5MA==".into(),
            label: Some(":rust: test".into()),
            command: None,
            agent_query_rules: vec!["queue=kubernetes".into(), "os=linux".into()],
            env: vec![
                "BUILDKITE_ORGANIZATION_SLUG=acme".into(),
                "BUILDKITE_PIPELINE_SLUG=app".into(),
                "BUILDKITE_BUILD_NUMBER=42".into(),
                "BUILDKITE_BRANCH=main".into(),
                "BUILDKITE_COMMIT=abc123".into(),
                "BUILDKITE_STEP_KEY=test".into(),
                "BUILDKITE_COMMAND=cargo test".into(),
                r#"BUILDKITE_PLUGINS=[{"kubernetes#v1.2.3":{"podSpec":{"containers":[]}}}]"#.into(),
            ],
            priority: 3,
            scheduled_at: None,
            url: Some("https://buildkite.com/acme/app/builds/42#job".into()),
        }
    }

    #[test]
    fn derives_build_and_plugin_from_the_environment() {
        let job = ScheduledJob::from_raw(raw()).expect("valid");
        assert_eq!(job.organization, "acme");
        assert_eq!(job.pipeline, "app");
        assert_eq!(job.build.number, 42);
        assert_eq!(job.build.branch, "main");
        assert_eq!(job.build.commit, "abc123");
        assert_eq!(job.step_key.as_deref(), Some("test"));
        assert_eq!(job.label.as_deref(), Some(":rust: test"));
        assert_eq!(job.command.as_deref(), Some("cargo test"));
        assert_eq!(job.queue(), Some("kubernetes"));
        assert_eq!(job.priority, 3);
        assert!(job.plugin.present().is_some());
    }

    #[test]
    fn non_uuid_is_named_in_the_error() {
        let err = ScheduledJob::from_raw(RawJob {
            uuid: "job-1".into(),
            ..raw()
        })
        .expect_err("invalid");
        assert!(matches!(err, JobError::InvalidUuid { .. }));
        assert!(err.to_string().contains("\"job-1\" is not a UUID"), "{err}");
    }

    #[test]
    fn missing_pipeline_slug_is_named_in_the_error() {
        let mut parts = raw();
        parts
            .env
            .retain(|pair| !pair.starts_with("BUILDKITE_PIPELINE_SLUG"));
        let err = ScheduledJob::from_raw(parts).expect_err("invalid");
        assert!(
            err.to_string()
                .contains("lacks the environment variable BUILDKITE_PIPELINE_SLUG"),
            "{err}"
        );
    }

    #[test]
    fn malformed_build_number_and_empty_source_key_are_errors() {
        let mut parts = raw();
        parts.env.push("BUILDKITE_BUILD_NUMBER=forty-two".into());
        let err = ScheduledJob::from_raw(parts).expect_err("invalid");
        assert!(
            err.to_string()
                .contains("BUILDKITE_BUILD_NUMBER=\"forty-two\""),
            "{err}"
        );
        let err = ScheduledJob::from_raw(RawJob {
            source_key: " ".into(),
            ..raw()
        })
        .expect_err("invalid");
        assert!(matches!(err, JobError::MissingSourceKey { .. }));
    }

    #[test]
    fn malformed_plugins_are_kept_for_the_policy_to_reject() {
        let mut parts = raw();
        parts.env.push("BUILDKITE_PLUGINS=[{".into());
        let job = ScheduledJob::from_raw(parts).expect("job is still valid");
        assert!(matches!(job.plugin, PluginConfig::Invalid(_)));
    }
}
