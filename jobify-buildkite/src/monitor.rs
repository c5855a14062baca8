//! [`BuildkiteMonitor`]: what Buildkite has for us, by GraphQL.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use buildkite_api::{
    BUDGET_WINDOW, Client, CommandJob, JobLookup, Pacer, Priorities, RateLimit,
    ScheduledJobsRequest,
};
use jobify_core::{JobId, JobState, Monitor, MonitorError, PageToken, ScheduledJob, ScheduledPage};
use tokio::time::Instant;

use crate::config::BuildkiteConfig;
use crate::intake::{job_state, raw_job};
use crate::metrics::BuildkiteMetrics;

/// What to poll, from the config's `organization`, `[buildkite]` and `[[queues]]`.
#[derive(Clone, Debug)]
pub struct MonitorSettings {
    /// Organization slug.
    pub organization: String,
    /// The queues served; one list per queue (`queue=<name>`), swept one after the other.
    /// Empty: every scheduled job of the organization, left to the policy.
    pub queues: Vec<String>,
    /// Pipeline slugs to keep; empty keeps all.
    pub pipelines: BTreeSet<String>,
    /// Cluster id filter.
    pub cluster: Option<String>,
    /// Jobs per page.
    pub page_size: u16,
    /// Share of the organization's rate-limit budget polls may spend.
    pub budget_share: f64,
}

impl MonitorSettings {
    /// Settings for `organization`'s served `queues`, the rest from `[buildkite]`.
    pub fn new<T>(organization: &str, queues: Vec<String>, buildkite: &BuildkiteConfig<T>) -> Self {
        MonitorSettings {
            organization: organization.to_owned(),
            queues,
            pipelines: buildkite.pipelines.iter().cloned().collect(),
            cluster: buildkite.cluster.clone(),
            page_size: u16::try_from(buildkite.page_size).unwrap_or(u16::MAX),
            budget_share: buildkite.budget_share,
        }
    }

    fn requests(&self) -> Vec<ScheduledJobsRequest> {
        let request = |rules: Vec<String>| ScheduledJobsRequest {
            organization: self.organization.clone(),
            agent_query_rules: rules,
            cluster: self.cluster.clone(),
            page_size: self.page_size,
            max_pages: 1,
            priorities: Priorities::All,
            overlap: page_overlap(self.page_size),
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

/// How many jobs each page repeats of the one before: a tenth of a page (at least one, and
/// less than a page). Buildkite's cursors may be offsets into its newest-first list, so jobs
/// scheduled between two page requests shift it and the next page would skip as many jobs;
/// the overlap absorbs that many arrivals (a tenth of a page in a page's round trip) for a
/// tenth more points. The scheduler plans a job listed twice in one sweep once.
fn page_overlap(page_size: u16) -> u16 {
    (page_size / 10).max(1).min(page_size.saturating_sub(1))
}

/// [`Monitor`] over the Buildkite GraphQL API.
///
/// A sweep lists each served queue's scheduled jobs in turn, oldest first, one GraphQL page
/// per [`Monitor::scheduled`] call; the [`PageToken`] holds the queue, the list and the
/// cursor. Each queue is listed the cheap way ([`Priorities::DefaultOnly`]: only jobs of the
/// default priority 0, 1 point a job) while Buildkite counts no scheduled job of another
/// priority there, and with priorities ([`Priorities::All`], 2 points a job) while it does.
/// Every page says which applies, and the queue's next sweep follows it: a job given another
/// priority while the queue was listed the cheap way is picked up one sweep later.
///
/// Requests are paced to `budget_share` of the organization's GraphQL budget: after each
/// page the [`Pacer`] says how long the next request must wait given what this one cost and
/// what Buildkite reported left; a page asked for sooner waits inside
/// [`Monitor::scheduled`]. The rate-limit figure goes to [`BuildkiteMetrics`]; counting
/// polls is the scheduler observer's job.
pub struct BuildkiteMonitor {
    client: Client,
    settings: MonitorSettings,
    requests: Vec<ScheduledJobsRequest>,
    metrics: BuildkiteMetrics,
    pacer: Pacer,
    pace: Mutex<Pace>,
}

/// What the pacer and the priority choice need between calls.
#[derive(Debug, Default)]
struct Pace {
    /// No request before this.
    next_request: Option<Instant>,
    /// Points spent by `states` since the last page, charged to the next.
    unbilled: u32,
    /// Per queue: whether its last page counted scheduled jobs of another priority than 0.
    prioritized: Vec<bool>,
}

/// Where a page starts: the queue, the list it is swept in, and the cursor within it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Position {
    queue: usize,
    priorities: Priorities,
    before: Option<String>,
}

impl Position {
    fn token(&self) -> PageToken {
        let list = match self.priorities {
            Priorities::All => 'a',
            Priorities::DefaultOnly => 'd',
        };
        PageToken::new(format!(
            "{}:{list}:{}",
            self.queue,
            self.before.as_deref().unwrap_or_default()
        ))
    }

    /// The position `token` holds; `None` for a token this monitor did not make.
    fn from_token(token: &PageToken) -> Option<Self> {
        let (queue, rest) = token.as_str().split_once(':')?;
        let (list, before) = rest.split_once(':')?;
        let priorities = match list {
            "a" => Priorities::All,
            "d" => Priorities::DefaultOnly,
            _ => return None,
        };
        Some(Position {
            queue: queue.parse().ok()?,
            priorities,
            before: Some(before.to_owned()).filter(|b| !b.is_empty()),
        })
    }
}

impl BuildkiteMonitor {
    /// A monitor polling with `client`. Its rate-limit figure goes nowhere until
    /// [`BuildkiteMonitor::with_metrics`].
    pub fn new(client: Client, settings: MonitorSettings) -> Self {
        let requests = settings.requests();
        BuildkiteMonitor {
            // Sweeps are spaced by the scheduler's poll interval; the pacer only spreads
            // pages so that they stay within the budget share.
            pacer: Pacer::new(settings.budget_share)
                .with_interval_bounds(Duration::ZERO, BUDGET_WINDOW),
            pace: Mutex::new(Pace {
                // Until a page says otherwise, list with priorities: never order a backlog
                // by a priority we did not read.
                prioritized: vec![true; requests.len()],
                ..Pace::default()
            }),
            requests,
            client,
            settings,
            metrics: BuildkiteMetrics::default(),
        }
    }

    /// The monitor, reporting the rate limit to `metrics`.
    pub fn with_metrics(self, metrics: BuildkiteMetrics) -> Self {
        BuildkiteMonitor { metrics, ..self }
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

    /// Where queue `queue`'s sweep starts: its oldest page, in the list its last page chose.
    fn start_of(&self, queue: usize) -> Position {
        let prioritized = self.pace().prioritized.get(queue).copied().unwrap_or(true);
        Position {
            queue,
            priorities: if prioritized {
                Priorities::All
            } else {
                Priorities::DefaultOnly
            },
            before: None,
        }
    }

    /// Where the queue after `at`'s starts, if there is one.
    fn next_queue(&self, at: &Position) -> Option<Position> {
        let next = at.queue + 1;
        (next < self.requests.len()).then(|| self.start_of(next))
    }
}

/// Sorts a client error the way the scheduler acts on it.
fn monitor_error(error: buildkite_api::Error) -> MonitorError {
    match error {
        buildkite_api::Error::RateLimited { retry_after, .. } => MonitorError::RateLimited {
            // Without a hint, wait out the shortest sensible window rather than hammering.
            retry_after: retry_after.unwrap_or(Duration::from_secs(10)),
        },
        buildkite_api::Error::Unauthorized { .. } => MonitorError::Unauthorized(Box::new(error)),
        other => MonitorError::Transient(Box::new(other)),
    }
}

#[async_trait]
impl Monitor for BuildkiteMonitor {
    async fn scheduled(&self, from: Option<PageToken>) -> Result<ScheduledPage, MonitorError> {
        let wait_until = self.pace().next_request;
        if let Some(at) = wait_until {
            tokio::time::sleep_until(at).await;
        }
        let at = match from.as_ref().map(Position::from_token) {
            None => self.start_of(0),
            Some(Some(at)) if at.queue < self.requests.len() => at,
            Some(_) => {
                tracing::warn!(token = ?from, "a page token this monitor did not make; starting the sweep over");
                self.start_of(0)
            }
        };
        let request = ScheduledJobsRequest {
            priorities: at.priorities,
            ..self.requests[at.queue].clone()
        };
        let fetched = match self
            .client
            .scheduled_jobs_page(&request, at.before.as_deref())
            .await
        {
            Ok(fetched) => fetched,
            Err(error) => {
                if let buildkite_api::Error::RateLimited { retry_after, .. } = &error {
                    let delay = self.pacer.delay_after_rate_limited(*retry_after);
                    self.pace().next_request = Some(Instant::now() + delay);
                }
                return Err(monitor_error(error));
            }
        };
        self.observe(fetched.rate_limit.as_ref());
        let page = fetched.value;
        if page.truncated {
            tracing::warn!(
                rules = ?request.agent_query_rules,
                "Buildkite said newer scheduled jobs exist but gave no cursor; they wait for the next poll"
            );
        }
        // Further in this queue's list, else the next queue's first page.
        let next_list = self.next_queue(&at);
        let next = match &page.newer {
            Some(before) => Some(Position {
                before: Some(before.clone()),
                ..at.clone()
            }),
            None => next_list.clone(),
        };
        {
            let mut pace = self.pace();
            if let Some(prioritized) = pace.prioritized.get_mut(at.queue) {
                *prioritized = page.other_priorities > 0;
            }
            let cost = fetched
                .complexity_actual
                .saturating_add(std::mem::take(&mut pace.unbilled));
            pace.next_request =
                Some(Instant::now() + self.pacer.delay_after(cost, fetched.rate_limit.as_ref()));
        }
        let mut seen = HashSet::new();
        let mut jobs = Vec::with_capacity(page.jobs.len());
        for job in page.jobs {
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
        Ok(ScheduledPage {
            jobs,
            next: next.as_ref().map(Position::token),
            next_list: next_list.as_ref().map(Position::token),
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
                    Some((id, job_state(&state)))
                }
                JobLookup::NotCommand { .. }
                | JobLookup::NotFound { .. }
                | JobLookup::Unreadable { .. } => None,
            })
            .collect();
        Ok(states)
    }
}
