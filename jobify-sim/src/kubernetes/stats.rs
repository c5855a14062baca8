//! Counters of what clients did to the simulator.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the simulator's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KubeStats {
    /// Every HTTP request served (faulted ones included).
    pub requests: u64,
    /// Jobs created (through the API).
    pub job_creates: u64,
    /// Job creates refused with `409 AlreadyExists`.
    pub job_create_conflicts: u64,
    /// Job deletes through the API.
    pub job_deletes: u64,
    /// Pods created (by the job controller or the API).
    pub pod_creates: u64,
    /// List requests.
    pub lists: u64,
    /// Watch requests that started streaming.
    pub watches_opened: u64,
    /// Watches ended with `410 Expired` (by [`super::KubeSim::expire_watches`], a too-old
    /// resourceVersion or a watcher that fell behind) and lists refused for a too-old
    /// continue token.
    pub relists_forced: u64,
    /// `409 Conflict` answers to updates with a stale resourceVersion.
    pub update_conflicts: u64,
    /// Faults injected.
    pub faults_injected: u64,
    /// `AgentApi::acquire` calls made by simulated agents.
    pub agent_acquires: u64,
}

/// A Job the API created: where, and when the simulator stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobCreation {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// When the create was stored (the moment a watch would be told).
    pub at: tokio::time::Instant,
}

/// The most Job creations [`Stats::job_creations`] keeps; older ones are dropped.
pub(crate) const MAX_JOB_CREATIONS: usize = 100_000;

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// The last [`MAX_JOB_CREATIONS`] Jobs created through the API, oldest first.
    pub(crate) job_creations: std::sync::Mutex<std::collections::VecDeque<JobCreation>>,
    pub(crate) requests: AtomicU64,
    pub(crate) job_creates: AtomicU64,
    pub(crate) job_create_conflicts: AtomicU64,
    pub(crate) job_deletes: AtomicU64,
    pub(crate) pod_creates: AtomicU64,
    pub(crate) lists: AtomicU64,
    pub(crate) watches_opened: AtomicU64,
    pub(crate) relists_forced: AtomicU64,
    pub(crate) update_conflicts: AtomicU64,
    pub(crate) faults_injected: AtomicU64,
    pub(crate) agent_acquires: AtomicU64,
}

impl Stats {
    /// Notes that the API created Job `name` in `namespace` just now.
    pub(crate) fn job_created(&self, namespace: &str, name: &str) {
        let mut log = self
            .job_creations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if log.len() == MAX_JOB_CREATIONS {
            log.pop_front();
        }
        log.push_back(JobCreation {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            at: tokio::time::Instant::now(),
        });
    }
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub(crate) fn snapshot(&self) -> KubeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        KubeStats {
            requests: get(&self.requests),
            job_creates: get(&self.job_creates),
            job_create_conflicts: get(&self.job_create_conflicts),
            job_deletes: get(&self.job_deletes),
            pod_creates: get(&self.pod_creates),
            lists: get(&self.lists),
            watches_opened: get(&self.watches_opened),
            relists_forced: get(&self.relists_forced),
            update_conflicts: get(&self.update_conflicts),
            faults_injected: get(&self.faults_injected),
            agent_acquires: get(&self.agent_acquires),
        }
    }
}
