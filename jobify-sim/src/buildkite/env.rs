//! The environment Buildkite gives a command job (`JobTypeCommand.env`): the `BUILDKITE_*`
//! variables of its organization, pipeline, build and step, then the step's own `env`.

use uuid::Uuid;

use super::job::JobSpec;
use super::state::State;

impl State {
    /// The `BUILDKITE_*` environment Buildkite gives a command job, in the order of the real
    /// example (`examples/graphql-get-builds-response.json`), then the step's own `env`.
    pub(crate) fn job_env(
        &self,
        job: Uuid,
        step: Uuid,
        build: Uuid,
        spec: &JobSpec,
    ) -> Vec<String> {
        let org = &self.org.slug;
        let (pipeline_uuid, number, build_url) = match self.builds.get(&build) {
            Some(b) => (b.pipeline, b.number, self.build_url(b)),
            None => (Uuid::nil(), 0, String::new()),
        };
        let slug = &spec.pipeline;
        let mut env = vec![
            ("CI", "true".to_owned()),
            ("BUILDKITE", "true".to_owned()),
            ("BUILDKITE_ORGANIZATION_SLUG", org.clone()),
            ("BUILDKITE_PIPELINE_SLUG", slug.clone()),
            ("BUILDKITE_PIPELINE_NAME", slug.clone()),
            ("BUILDKITE_PIPELINE_ID", pipeline_uuid.to_string()),
            ("BUILDKITE_PIPELINE_PROVIDER", "github".to_owned()),
            ("BUILDKITE_PIPELINE_DEFAULT_BRANCH", "main".to_owned()),
            ("BUILDKITE_REPO", format!("https://github.com/{org}/{slug}")),
            ("BUILDKITE_BUILD_ID", build.to_string()),
            ("BUILDKITE_BUILD_NUMBER", number.to_string()),
            ("BUILDKITE_BUILD_URL", build_url),
            ("BUILDKITE_BRANCH", spec.branch.clone()),
            ("BUILDKITE_TAG", String::new()),
            ("BUILDKITE_COMMIT", spec.commit.clone()),
            ("BUILDKITE_MESSAGE", spec.message.clone()),
            ("BUILDKITE_SOURCE", "api".to_owned()),
            ("BUILDKITE_BUILD_AUTHOR", String::new()),
            ("BUILDKITE_BUILD_AUTHOR_EMAIL", String::new()),
            ("BUILDKITE_BUILD_CREATOR", "Simulated User".to_owned()),
            (
                "BUILDKITE_BUILD_CREATOR_EMAIL",
                "sim@example.com".to_owned(),
            ),
            ("BUILDKITE_REBUILT_FROM_BUILD_ID", String::new()),
            ("BUILDKITE_REBUILT_FROM_BUILD_NUMBER", String::new()),
            ("BUILDKITE_PULL_REQUEST", "false".to_owned()),
            ("BUILDKITE_PULL_REQUEST_BASE_BRANCH", String::new()),
            ("BUILDKITE_PULL_REQUEST_REPO", String::new()),
            ("BUILDKITE_TRIGGERED_FROM_BUILD_ID", String::new()),
            ("BUILDKITE_TRIGGERED_FROM_BUILD_NUMBER", String::new()),
            (
                "BUILDKITE_TRIGGERED_FROM_BUILD_PIPELINE_SLUG",
                String::new(),
            ),
            ("BUILDKITE_JOB_ID", job.to_string()),
            ("BUILDKITE_LABEL", spec.label.clone()),
            ("BUILDKITE_COMMAND", spec.command.clone()),
            ("BUILDKITE_ARTIFACT_PATHS", String::new()),
            ("BUILDKITE_RETRY_COUNT", "0".to_owned()),
            ("BUILDKITE_TIMEOUT", "false".to_owned()),
            (
                "BUILDKITE_STEP_KEY",
                spec.step_key.clone().unwrap_or_default(),
            ),
            ("BUILDKITE_STEP_ID", step.to_string()),
            ("BUILDKITE_PROJECT_SLUG", format!("{org}/{slug}")),
            ("BUILDKITE_PROJECT_PROVIDER", "github".to_owned()),
            ("BUILDKITE_SCRIPT_PATH", spec.command.clone()),
        ];
        if let Some(plugins) = &spec.plugins {
            env.push(("BUILDKITE_PLUGINS", plugins.to_string()));
        }
        let mut out: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
        out
    }
}
