//! Jobs that read like sentences: `scheduled("queue=kubernetes").on_pipeline("app")`.

use jobify_core::{AgentQueryRules, BuildInfo, Env, JobId, PluginConfig, ScheduledJob};
use uuid::Uuid;

/// A scheduled job with these agent query rules, on pipeline `app`.
pub fn scheduled(rules: &str) -> ScheduledJob {
    ScheduledJob {
        id: JobId(Uuid::new_v4()),
        source_key: "Sm9iLS0t".to_owned(),
        organization: "acme".to_owned(),
        pipeline: "app".to_owned(),
        build: BuildInfo {
            number: 42,
            branch: "main".to_owned(),
            commit: "abc123".to_owned(),
            url: Some("https://buildkite.com/acme/app/builds/42".to_owned()),
        },
        step_key: None,
        label: Some("test".to_owned()),
        command: Some("make test".to_owned()),
        rules: AgentQueryRules::parse(rules.split(',').filter(|r| !r.is_empty())),
        env: Env::default(),
        plugin: PluginConfig::Absent,
        priority: 0,
        scheduled_at: None,
        url: Some("https://buildkite.com/acme/app/builds/42#job".to_owned()),
    }
}

/// Builder methods on jobs.
pub trait JobExt {
    /// On this pipeline.
    fn on_pipeline(self, pipeline: &str) -> Self;
    /// With this `kubernetes` plugin configuration (JSON).
    fn with_plugin(self, config: serde_json::Value) -> Self;
    /// With this id.
    fn with_id(self, id: Uuid) -> Self;
}

impl JobExt for ScheduledJob {
    fn on_pipeline(mut self, pipeline: &str) -> Self {
        self.pipeline = pipeline.to_owned();
        self
    }

    fn with_plugin(mut self, config: serde_json::Value) -> Self {
        let plugins = serde_json::json!([{ "github.com/buildkite-plugins/kubernetes-buildkite-plugin#v1.0.0": config }]);
        self.env.insert("BUILDKITE_PLUGINS", plugins.to_string());
        self.plugin = PluginConfig::from_env(&self.env);
        self
    }

    fn with_id(mut self, id: Uuid) -> Self {
        self.id = JobId(id);
        self
    }
}
