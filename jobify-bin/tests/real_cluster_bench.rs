//! `jobify-bench`'s real-cluster mode: a `jobify run` process dispatching into a real
//! kube-apiserver (with the real Job controller and the simulated kubelet of
//! `jobify-testcluster`), beside a raw `Api<Job>::create` loop over the same manifests in the
//! same run, and the latency from a job scheduled in Buildkite to its Job created and to its
//! pod running.
//!
//! It measures and prints; it asserts only what must hold whatever the speed (every job has
//! exactly one Job). Run it with the tier:
//!
//! ```text
//! tools/k8s/test-real-cluster.sh -p jobify --test real_cluster_bench -- --nocapture
//! ```
//!
//! `JOBIFY_REAL_BENCH_JOBS` sets the dispatch size (default 500); docs/performance.md has the
//! figures of a run.

mod process;
mod real_cluster_support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jobify_testcluster::TestCluster;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use real_cluster_support::{
    Replica, Seen, agents, buildkite, eventually, namespace_for_jobify, patience, step,
};
use uuid::Uuid;

fn dispatch_size() -> usize {
    std::env::var("JOBIFY_REAL_BENCH_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(500)
}

/// Jobs scheduled one by one for the latency figures, and how fast.
const LATENCY_JOBS: usize = 200;
const LATENCY_RATE: u32 = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn latencies(
    scheduled: &BTreeMap<Uuid, Instant>,
    reached: &BTreeMap<Uuid, Instant>,
) -> Vec<Duration> {
    let mut all: Vec<Duration> = scheduled
        .iter()
        .filter_map(|(job, at)| Some(reached.get(job)?.saturating_duration_since(*at)))
        .collect();
    all.sort();
    all
}

/// The manifests jobify created in `namespace`, made new: no server-set fields, fresh names.
async fn fresh_copies(jobs: &Api<Job>) -> Vec<Job> {
    let listed = jobs.list(&ListParams::default()).await.expect("list Jobs");
    listed
        .items
        .into_iter()
        .map(|job| {
            let mut spec = job.spec.expect("spec");
            // The selector and its label are the Job controller's to set again.
            spec.selector = None;
            if let Some(labels) = spec
                .template
                .metadata
                .as_mut()
                .and_then(|m| m.labels.as_mut())
            {
                labels.retain(|k, _| !k.contains("controller-uid") && !k.ends_with("job-name"));
            }
            Job {
                metadata: ObjectMeta {
                    name: Some(format!("raw-{}", Uuid::new_v4())),
                    labels: job.metadata.labels,
                    annotations: job.metadata.annotations,
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
                status: None,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real control plane: tools/k8s/test-real-cluster.sh"]
async fn dispatch_rate_and_latency_against_the_real_api_server() {
    let n = dispatch_size();
    let cluster = TestCluster::shared();
    let (namespace, kubeconfig, admin) = namespace_for_jobify(cluster, "bench").await;
    let buildkite = buildkite(0.0).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watching = agents(
        admin.clone(),
        &namespace,
        buildkite.agent_api(),
        Arc::clone(&seen),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let max_in_flight = u32::try_from(n).expect("size") + 1;
    let replica = Replica::start(
        dir.path(),
        "bench",
        &buildkite,
        &namespace,
        &kubeconfig,
        max_in_flight,
        // The same concurrency as the raw loop (jobify-bench does the same); the default
        // `launch_concurrency` of 10 is discussed in docs/performance.md.
        "[scheduler]\nlaunch_concurrency = 64\n",
    );
    eventually("jobify polls", Duration::from_secs(60), async || {
        if replica.polled().await {
            Ok(())
        } else {
            Err("no poll yet".to_owned())
        }
    })
    .await;

    // Dispatch: n jobs at once.
    let started = Instant::now();
    let dispatched: Vec<Uuid> = (0..n)
        .map(|i| buildkite.schedule_job(step(&format!("dispatch {i}"))).uuid)
        .collect();
    let scheduled_all = started.elapsed();
    eventually(
        "every dispatched job has its Job",
        patience(n),
        async || {
            let have = seen.lock().expect("seen").job_seen_at.len();
            if have >= n {
                Ok(())
            } else {
                Err(format!("{have} of {n}"))
            }
        },
    )
    .await;
    let dispatch = {
        let seen = seen.lock().expect("seen");
        let last = dispatched
            .iter()
            .filter_map(|j| seen.job_seen_at.get(j))
            .max()
            .copied()
            .expect("Jobs seen");
        last.saturating_duration_since(started)
    };
    eventually("every dispatched job finishes", patience(n), async || {
        let done = dispatched
            .iter()
            .filter(|j| buildkite.job(**j).is_some_and(|s| s.state == "FINISHED"))
            .count();
        if done == n {
            Ok(())
        } else {
            Err(format!("{done} of {n} finished"))
        }
    })
    .await;

    // The raw loop: the same manifests, created as fast as 64 concurrent creates go, in a
    // namespace of their own (their pods run too, as jobify's did).
    // As the same ServiceAccount and Role as jobify, so both pay the same authentication
    // and authorization.
    let (raw_namespace, raw_kubeconfig, _) = namespace_for_jobify(cluster, "bench-raw").await;
    let copies = fresh_copies(&Api::namespaced(admin.clone(), &namespace)).await;
    let raw_client = jobify_testcluster::client_from(&raw_kubeconfig)
        .await
        .expect("the ServiceAccount's client");
    let raw_api: Api<Job> = Api::namespaced(raw_client, &raw_namespace);
    let raw_started = Instant::now();
    let created = futures::stream::iter(copies.iter())
        .map(|job| {
            let api = raw_api.clone();
            async move { api.create(&PostParams::default(), job).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let raw = raw_started.elapsed();
    let refused: Vec<String> = created
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(
        refused.is_empty(),
        "every raw create succeeds: {:?}",
        refused.first()
    );

    eventually("the raw Jobs complete", patience(n), async || {
        let jobs = raw_api
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let done = jobs
            .items
            .iter()
            .filter(|j| {
                j.status
                    .as_ref()
                    .and_then(|s| s.completion_time.as_ref())
                    .is_some()
            })
            .count();
        if done == copies.len() {
            Ok(())
        } else {
            Err(format!("{done} of {} complete", copies.len()))
        }
    })
    .await;

    // Latency: jobs scheduled one by one at a fixed rate, on an otherwise idle cluster.
    let mut scheduled_at = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / LATENCY_RATE);
    for i in 0..LATENCY_JOBS {
        tick.tick().await;
        let job = buildkite.schedule_job(step(&format!("latency {i}"))).uuid;
        scheduled_at.insert(job, Instant::now());
    }
    eventually(
        "every latency job's pod runs",
        patience(LATENCY_JOBS),
        async || {
            let seen = seen.lock().expect("seen");
            let running = scheduled_at
                .keys()
                .filter(|j| seen.running_at.contains_key(j))
                .count();
            if running == LATENCY_JOBS {
                Ok(())
            } else {
                Err(format!("{running} of {LATENCY_JOBS} running"))
            }
        },
    )
    .await;
    let (to_created, to_running, one_job_each) = {
        let seen = seen.lock().expect("seen");
        let one_job_each = dispatched
            .iter()
            .chain(scheduled_at.keys())
            .all(|j| seen.jobs.get(j).map(std::collections::BTreeSet::len) == Some(1));
        (
            latencies(&scheduled_at, &seen.job_seen_at),
            latencies(&scheduled_at, &seen.running_at),
            one_job_each,
        )
    };
    assert!(one_job_each, "every job has exactly one Kubernetes Job");

    let rate = |count: usize, d: Duration| count as f64 / d.as_secs_f64().max(f64::EPSILON);
    let jobify_rate = rate(n, dispatch);
    let raw_rate = rate(copies.len(), raw);
    let mut report = String::new();
    let _ = writeln!(
        report,
        "real-cluster bench ({n} jobs; latency: {LATENCY_JOBS} jobs at {LATENCY_RATE}/s)"
    );
    let _ = writeln!(report, "| Figure | Value |\n|---|---|");
    let _ = writeln!(
        report,
        "| dispatch {n}: scheduled → all Jobs seen | {jobify_rate:.0} jobs/s ({}; scheduling took {}) |",
        ms(dispatch),
        ms(scheduled_all)
    );
    let _ = writeln!(
        report,
        "| raw create loop, 64 at once, same manifests and ServiceAccount | {raw_rate:.0} jobs/s ({}) |",
        ms(raw)
    );
    let _ = writeln!(
        report,
        "| jobify / raw loop | {:.0}% |",
        100.0 * jobify_rate / raw_rate.max(f64::EPSILON)
    );
    for (what, values) in [
        ("scheduled → Job seen", &to_created),
        ("scheduled → pod running", &to_running),
    ] {
        let _ = writeln!(
            report,
            "| latency {what}, p50 / p99 / max | {} / {} / {} |",
            ms(percentile(values, 0.50)),
            ms(percentile(values, 0.99)),
            ms(values.last().copied().unwrap_or_default())
        );
    }
    println!("{report}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let _ = std::fs::create_dir_all(&target);
    let _ = std::fs::write(target.join("real-cluster-bench.md"), &report);

    assert_eq!(replica.stop(), Some(0));
    // JOBIFY_REAL_BENCH_KEEP=1 keeps jobify's config and log.
    if std::env::var_os("JOBIFY_REAL_BENCH_KEEP").is_some() {
        println!("jobify's config and log: {}", dir.keep().display());
    }
    watching.abort();
    buildkite.shutdown().await;
}
