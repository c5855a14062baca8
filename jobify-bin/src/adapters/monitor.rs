//! [`BuildkiteMonitor`]: what Buildkite has for us, by GraphQL.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use buildkite_api::{Client, CommandJob, JobLookup, Pacer, RateLimit, ScheduledJobsRequest};
use jobify_core::config::QueueConfig;
use jobify_core::{
    JobId, JobState, Monitor, MonitorError, PageToken, RawJob, ScheduledJob, ScheduledPage,
};
use tokio::time::Instant;

use super::monitor_error;
use crate::metrics::Metrics;

/// What to poll, from the config's `organization`, `[buildkite]` and `[[queues]]`.
#[derive(Clone, Debug)]
pub struct MonitorSettings {
    /// Organization slug.
    pub organization: String,
    /// The queues served; one request per queue (`queue=<name>`). Empty: every scheduled
    /// job of the organization, left to the policy.
    pub queues: Vec<String>,
    /// Pipeline slugs to keep; empty keeps all.
    pub pipelines: BTreeSet<String>,
    /// Cluster id filter.
    pub cluster: Option<String>,
    /// Jobs per page.
    pub page_size: u16,
    /// Requests per queue and poll, at most. Of more jobs than `page_size × max_pages`, the
    /// client fetches the oldest; the newest wait for the next poll.
    pub max_pages: u16,
    /// Share of the organization's rate-limit budget polls may spend.
    pub budget_share: f64,
}

impl MonitorSettings {
    /// Settings from the parsed config.
    pub fn from_config(config: &crate::config::Config) -> Self {
        MonitorSettings {
            organization: config.organization.clone(),
            queues: config
                .queues
                .iter()
                .map(|q: &QueueConfig| q.name.clone())
                .collect(),
            pipelines: config.buildkite.pipelines.iter().cloned().collect(),
            cluster: config.buildkite.cluster.clone(),
            page_size: u16::try_from(config.buildkite.page_size).unwrap_or(u16::MAX),
            max_pages: u16::try_from(config.buildkite.max_pages).unwrap_or(u16::MAX),
            budget_share: config.buildkite.budget_share,
        }
    }

    fn requests(&self) -> Vec<ScheduledJobsRequest> {
        let request = |rules: Vec<String>| ScheduledJobsRequest {
            organization: self.organization.clone(),
            agent_query_rules: rules,
            cluster: self.cluster.clone(),
            page_size: self.page_size,
            max_pages: self.max_pages,
            priorities: buildkite_api::Priorities::All,
        };
        if self.queues.is_empty() {
            return vec![request(Vec::new())];
        }
        self.queues
            .iter()
            .map(|queue| request(vec![format!("queue={queue}")]))
            .collect()
    }
}

/// [`Monitor`] over the Buildkite GraphQL API.
///
/// Polls are paced to `budget_share` of the organization's GraphQL budget: after each poll
/// the [`Pacer`] says how long the next must wait given what this one cost and what Buildkite
/// reported left; a poll asked for sooner waits inside [`Monitor::scheduled`]. The rate-limit
/// figure goes to [`Metrics`]; counting polls is the scheduler observer's job.
pub struct BuildkiteMonitor {
    client: Client,
    settings: MonitorSettings,
    requests: Vec<ScheduledJobsRequest>,
    metrics: Metrics,
    pacer: Pacer,
    pace: Mutex<Pace>,
}

/// What the pacer needs between calls.
#[derive(Debug, Default)]
struct Pace {
    /// No poll before this.
    next_poll: Option<Instant>,
    /// Points spent by `states` since the last poll, charged to the next.
    unbilled: u32,
}

impl BuildkiteMonitor {
    /// A monitor polling with `client`.
    pub fn new(client: Client, settings: MonitorSettings, metrics: Metrics) -> Self {
        BuildkiteMonitor {
            requests: settings.requests(),
            pacer: Pacer::new(settings.budget_share),
            client,
            settings,
            metrics,
            pace: Mutex::default(),
        }
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        // Plain numbers: still meaningful after a panic elsewhere.
        self.pace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn observe(&self, rate_limit: Option<&RateLimit>) {
        if let Some(remaining) = rate_limit.and_then(|limit| limit.remaining) {
            self.metrics.set_rate_limit_remaining(remaining);
        }
    }

    fn keeps_pipeline(&self, job: &CommandJob) -> bool {
        self.settings.pipelines.is_empty()
            || job
                .pipeline_slug()
                .is_some_and(|slug| self.settings.pipelines.contains(slug))
    }
}

/// The job as `jobify-core` takes it in.
fn raw_job(job: CommandJob) -> RawJob {
    RawJob {
        uuid: job.uuid,
        graphql_id: job.id,
        label: job.label,
        command: job.command,
        agent_query_rules: job.agent_query_rules,
        env: job.env,
        priority: job.priority,
        scheduled_at: job.scheduled_at.or(job.runnable_at),
        url: Some(job.url).filter(|url| !url.is_empty()),
    }
}

#[async_trait]
impl Monitor for BuildkiteMonitor {
    async fn scheduled(&self, from: Option<PageToken>) -> Result<ScheduledPage, MonitorError> {
        let wait_until = self.pace().next_poll;
        if let Some(at) = wait_until {
            tokio::time::sleep_until(at).await;
        }
        let index = from
            .and_then(|token| token.as_str().parse::<usize>().ok())
            .unwrap_or(0);
        let Some(request) = self.requests.get(index) else {
            return Ok(ScheduledPage::default());
        };
        let mut jobs = Vec::new();
        let mut seen = HashSet::new();
        let fetched = match self.client.scheduled_jobs(request).await {
            Ok(fetched) => fetched,
            Err(error) => {
                if let buildkite_api::Error::RateLimited { retry_after, .. } = &error {
                    let delay = self.pacer.delay_after_rate_limited(*retry_after);
                    self.pace().next_poll = Some(Instant::now() + delay);
                }
                return Err(monitor_error(error));
            }
        };
        let cost = fetched.complexity_actual;
        self.observe(fetched.rate_limit.as_ref());
        if fetched.value.truncated {
            tracing::info!(
                rules = ?request.agent_query_rules,
                total = fetched.value.total,
                fetched = fetched.value.jobs.len(),
                "more scheduled jobs than one poll fetches; the newest wait for the next poll"
            );
        }
        for job in fetched.value.jobs {
            if !self.keeps_pipeline(&job) || !seen.insert(job.uuid.clone()) {
                continue;
            }
            let uuid = job.uuid.clone();
            match ScheduledJob::from_raw(raw_job(job)) {
                Ok(job) => jobs.push(job),
                // One job Buildkite describes oddly must not stop the others.
                Err(error) => tracing::warn!(job = %uuid, %error, "ignoring a scheduled job"),
            }
        }
        let mut pace = self.pace();
        let cost = cost.saturating_add(std::mem::take(&mut pace.unbilled));
        pace.next_poll =
            Some(Instant::now() + self.pacer.delay_after(cost, fetched.rate_limit.as_ref()));
        let next = index + 1;
        Ok(ScheduledPage {
            jobs,
            next: (next < self.requests.len()).then(|| PageToken::new(next.to_string())),
        })
    }

    async fn states(&self, jobs: &[JobId]) -> Result<Vec<(JobId, JobState)>, MonitorError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let uuids: Vec<String> = jobs.iter().map(ToString::to_string).collect();
        let fetched = self
            .client
            .job_states(&uuids)
            .await
            .map_err(monitor_error)?;
        self.observe(fetched.rate_limit.as_ref());
        let mut pace = self.pace();
        pace.unbilled = pace.unbilled.saturating_add(fetched.complexity_actual);
        drop(pace);
        let states = fetched
            .value
            .into_iter()
            .filter_map(|lookup| match lookup {
                JobLookup::Command { uuid, state, .. } => {
                    let id = uuid.parse::<JobId>().ok()?;
                    Some((id, JobState::from_graphql(state.as_str())))
                }
                JobLookup::NotCommand { .. } | JobLookup::NotFound { .. } => None,
            })
            .collect();
        Ok(states)
    }
}
