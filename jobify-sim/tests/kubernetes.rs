//! The Kubernetes simulator against a real `kube::Client`: CRUD, selectors, pagination,
//! errors, deletion and the job lifecycle.
#![allow(clippy::unwrap_used)]

mod kubernetes_support;

use jobify_sim::kubernetes::KubeSimConfig;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kubernetes_support::{NS, eventually, job, start};

fn condition(job: &Job, kind: &str) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .and_then(|c| c.reason.clone())
}

#[tokio::test]
async fn job_runs_to_complete_through_its_pod() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let created = jobs
        .create(&PostParams::default(), &job("build-1", "busybox"))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some());
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    let labels = created
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(labels["job-name"], "build-1");
    assert_eq!(labels["batch.kubernetes.io/job-name"], "build-1");

    let done = eventually("job to complete", || {
        sim.jobs(NS)
            .into_iter()
            .find(|j| condition(j, "Complete").is_some())
    })
    .await;
    let status = done.status.unwrap();
    assert_eq!(status.succeeded, Some(1));
    assert!(status.completion_time.is_some());

    let pods: Api<Pod> = Api::namespaced(client, NS);
    let listed = pods
        .list(&ListParams::default().labels("job-name=build-1"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let pod = &listed.items[0];
    assert!(pod.metadata.name.as_ref().unwrap().starts_with("build-1-"));
    assert_eq!(
        pod.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Job"
    );
    let pod_status = pod.status.as_ref().unwrap();
    assert_eq!(pod_status.phase.as_deref(), Some("Succeeded"));
    let terminated = pod_status.container_statuses.as_ref().unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(terminated.exit_code, 0);
    assert_eq!(terminated.reason.as_deref(), Some("Completed"));
    let reasons: Vec<String> = sim
        .events(NS)
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for expected in [
        "SuccessfulCreate",
        "Scheduled",
        "Pulling",
        "Pulled",
        "Created",
        "Started",
        "Completed",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "{expected} in {reasons:?}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicate_create_is_409_already_exists() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    jobs.create(&PostParams::default(), &job("dup", "busybox"))
        .await
        .unwrap();
    let err = jobs
        .create(&PostParams::default(), &job("dup", "busybox"))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "AlreadyExists");
    assert_eq!(status.message, "jobs.batch \"dup\" already exists");
    assert_eq!(sim.stats().job_create_conflicts, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn job_creations_log_each_job_the_api_stored_once_in_order() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    let before = tokio::time::Instant::now();
    for name in ["first", "second"] {
        jobs.create(&PostParams::default(), &job(name, "busybox"))
            .await
            .unwrap();
    }
    jobs.create(&PostParams::default(), &job("first", "busybox"))
        .await
        .unwrap_err();
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    jobs.create(&dry_run, &job("dry", "busybox")).await.unwrap();
    let creations = sim.job_creations();
    let names: Vec<&str> = creations.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["first", "second"], "no 409, no dry run");
    assert!(
        creations
            .iter()
            .all(|c| c.namespace == NS && c.at >= before)
    );
    assert!(creations[0].at <= creations[1].at);
    sim.shutdown().await;
}

#[tokio::test]
async fn list_pages_with_limit_and_continue_and_filters_by_labels() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    for i in 0..7 {
        let mut j = job(&format!("page-{i}"), "busybox");
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        j.metadata.labels = Some([("tier".to_string(), tier.to_string())].into());
        jobs.create(&PostParams::default(), &j).await.unwrap();
    }
    let mut names = Vec::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(3);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = jobs.list(&lp).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().filter_map(|j| j.metadata.name.clone()));
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        names,
        (0..7).map(|i| format!("page-{i}")).collect::<Vec<_>>()
    );

    let even = jobs
        .list(&ListParams::default().labels("tier=even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 4);
    let odd = jobs
        .list(&ListParams::default().labels("tier notin (even),!app"))
        .await
        .unwrap();
    assert_eq!(odd.items.len(), 3);
    let named = jobs
        .list(&ListParams::default().fields("metadata.name=page-3"))
        .await
        .unwrap();
    assert_eq!(named.items.len(), 1);
    sim.shutdown().await;
}

async fn invalid_message(job: Job) -> String {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    let err = jobs.create(&PostParams::default(), &job).await.unwrap_err();
    sim.shutdown().await;
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    status.message
}

#[tokio::test]
async fn invalid_jobs_are_422_with_the_api_servers_message() {
    let msg = invalid_message(job("Bad_Name", "busybox")).await;
    assert!(
        msg.starts_with("Job.batch \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"),
        "{msg}"
    );

    let mut always = job("always", "busybox");
    always
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .restart_policy = Some("Always".into());
    assert_eq!(
        invalid_message(always).await,
        "Job.batch \"always\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
    );

    let mut no_image = job("no-image", "busybox");
    no_image
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = None;
    assert_eq!(
        invalid_message(no_image).await,
        "Job.batch \"no-image\" is invalid: spec.template.spec.containers[0].image: Required value"
    );

    let mut greedy = job("greedy", "busybox");
    greedy
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .resources = Some(
        serde_json::from_value(
            serde_json::json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
        )
        .unwrap(),
    );
    assert_eq!(
        invalid_message(greedy).await,
        "Job.batch \"greedy\" is invalid: spec.template.spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
    );

    let long = "a".repeat(64);
    let msg = invalid_message(job(&long, "busybox")).await;
    assert!(msg.contains("spec.template.labels: Invalid value"), "{msg}");
    assert!(msg.contains("must be no more than 63 characters"), "{msg}");
}

#[tokio::test]
async fn background_delete_removes_the_job_now_and_its_pods_after() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let mut long = job("del", "busybox");
    long.metadata.labels = Some(
        [(
            "sim.jobify.dev/scenario".to_string(),
            "slow-start".to_string(),
        )]
        .into(),
    );
    long.spec
        .as_mut()
        .unwrap()
        .template
        .metadata
        .as_mut()
        .unwrap()
        .labels = Some(
        [(
            "sim.jobify.dev/scenario".to_string(),
            "slow-start".to_string(),
        )]
        .into(),
    );
    jobs.create(&PostParams::default(), &long).await.unwrap();
    eventually("a pod", || (!sim.pods(NS).is_empty()).then_some(())).await;

    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    let answer = jobs.delete("del", &dp).await.unwrap();
    let status = answer
        .right()
        .expect("a background delete answers with a Status");
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    assert!(sim.jobs(NS).is_empty());
    eventually("pods to be garbage-collected", || {
        sim.pods(NS).is_empty().then_some(())
    })
    .await;

    let err = jobs.get("del").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 404 && s.message == "jobs.batch \"del\" not found")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn lease_replace_with_a_stale_resource_version_is_409_conflict() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15}
    }))
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut renewed = created.clone();
    renewed.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    let replaced = leases
        .replace("leader", &PostParams::default(), &renewed)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );

    let mut stale = created;
    stale.spec.as_mut().unwrap().holder_identity = Some("pod-c".into());
    let err = leases
        .replace("leader", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"leader\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let held = sim.lease(NS, "leader").unwrap();
    assert_eq!(held.spec.unwrap().holder_identity.as_deref(), Some("pod-b"));
    assert_eq!(sim.stats().update_conflicts, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn merge_and_json_patches_update_labels() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    jobs.create(&PostParams::default(), &job("patched", "busybox"))
        .await
        .unwrap();
    let merge = serde_json::json!({"metadata": {"labels": {"state": "seen"}}});
    let j = jobs
        .patch("patched", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .unwrap();
    assert_eq!(j.metadata.labels.as_ref().unwrap()["state"], "seen");
    let ops = serde_json::json!([
        {"op": "replace", "path": "/metadata/labels/state", "value": "done"}
    ]);
    let url = format!("{}/apis/batch/v1/namespaces/{NS}/jobs/patched", sim.url());
    let answer = reqwest::Client::new()
        .patch(url)
        .header("content-type", "application/json-patch+json")
        .body(ops.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let j: Job = answer.json().await.unwrap();
    assert_eq!(j.metadata.labels.as_ref().unwrap()["state"], "done");
    let template_change = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "other"}]}}}});
    let err = jobs
        .patch(
            "patched",
            &PatchParams::default(),
            &Patch::Merge(&template_change),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 422 && s.message.contains("spec.template: Invalid value") && s.message.contains("field is immutable"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn foreground_delete_keeps_the_job_until_its_pods_are_gone() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let jobs: Api<Job> = Api::namespaced(client, NS);
    let mut j = job("fg", "busybox");
    j.spec
        .as_mut()
        .unwrap()
        .template
        .metadata
        .as_mut()
        .unwrap()
        .labels = Some(
        [(
            "sim.jobify.dev/scenario".to_string(),
            "slow-start".to_string(),
        )]
        .into(),
    );
    jobs.create(&PostParams::default(), &j).await.unwrap();
    eventually("a bound pod", || {
        sim.pods(NS)
            .into_iter()
            .find(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
    })
    .await;
    let answer = jobs
        .delete("fg", &DeleteParams::foreground())
        .await
        .unwrap();
    let pending = answer
        .left()
        .expect("a foreground delete answers with the object");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(
        pending.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    eventually("the job to go after its pods", || {
        (sim.pods(NS).is_empty() && sim.jobs(NS).is_empty()).then_some(())
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn job_delete_without_policy_orphans_pods_and_warns_like_the_api_server() {
    let (sim, _client) = start(KubeSimConfig::default()).await;
    let http = reqwest::Client::new();
    let base = format!("{}/apis/batch/v1/namespaces/{NS}/jobs", sim.url());
    let created = http
        .post(&base)
        .json(&job("orphan", "busybox"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    eventually("a pod", || (!sim.pods(NS).is_empty()).then_some(())).await;
    let answer = http.delete(format!("{base}/orphan")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let warning = answer.headers()["warning"].to_str().unwrap().to_string();
    assert!(
        warning.contains("child pods are preserved by default when jobs are deleted"),
        "{warning}"
    );
    eventually("the job to go", || sim.jobs(NS).is_empty().then_some(())).await;
    let pods = sim.pods(NS);
    assert_eq!(pods.len(), 1);
    assert!(pods[0].metadata.owner_references.is_none());

    let list: serde_json::Value = http
        .get(format!("{}/api/v1/namespaces/{NS}/pods", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    assert!(
        list["items"][0].get("kind").is_none(),
        "list items carry no kind, as from a real server"
    );
    let missing: serde_json::Value = http
        .get(format!("{base}/nope"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        missing,
        serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "jobs.batch \"nope\" not found", "reason": "NotFound",
            "details": {"name": "nope", "group": "batch", "kind": "jobs"}, "code": 404
        })
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn kubeconfig_points_a_client_at_the_simulator() {
    let (sim, _) = start(KubeSimConfig::default()).await;
    let dir = std::env::temp_dir().join(format!("jobify-sim-kubeconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    sim.write_kubeconfig(&path).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    assert_eq!(kubeconfig.current_context.as_deref(), Some("jobify-sim"));
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, "v1.33.0");
    let jobs: Api<Job> = Api::default_namespaced(client);
    jobs.create(&PostParams::default(), &job("via-kubeconfig", "busybox"))
        .await
        .unwrap();
    assert_eq!(sim.jobs("default").len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_faults_are_deterministic_by_seed() {
    async fn outcomes(seed: u64) -> Vec<Option<u16>> {
        let config = KubeSimConfig {
            faults: jobify_sim::FaultConfig {
                seed,
                server_error: 0.3,
                malformed: 0.2,
                ..jobify_sim::FaultConfig::none()
            },
            fault_groups: vec![jobify_sim::kubernetes::EndpointGroup::Leases],
            ..KubeSimConfig::default()
        };
        let (sim, client) = start(config).await;
        let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
        let jobs: Api<Job> = Api::namespaced(client, NS);
        let mut seen = Vec::new();
        for _ in 0..30 {
            // Jobs draw no faults: only the lease group is configured.
            jobs.list(&ListParams::default()).await.unwrap();
            seen.push(match leases.list(&ListParams::default()).await {
                Ok(_) => None,
                Err(kube::Error::Api(s)) => Some(s.code),
                Err(_) => Some(0),
            });
        }
        assert_eq!(
            sim.stats().faults_injected,
            seen.iter().filter(|s| s.is_some()).count() as u64
        );
        sim.shutdown().await;
        seen
    }
    let a = outcomes(11).await;
    assert_eq!(a, outcomes(11).await);
    assert!(a.contains(&Some(500)), "{a:?}");
    assert!(
        a.contains(&Some(0)),
        "malformed bodies fail to decode: {a:?}"
    );
    assert!(a.contains(&None));
    assert_ne!(a, outcomes(12).await);
}

#[tokio::test]
async fn delete_collection_deletes_what_the_selector_matches() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    for (name, team) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"team": team}},
            "spec": {}
        }))
        .unwrap();
        leases.create(&PostParams::default(), &lease).await.unwrap();
    }
    let deleted = leases
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("team=x"),
        )
        .await
        .unwrap()
        .left()
        .expect("a list of what was deleted");
    let names: Vec<String> = deleted
        .items
        .into_iter()
        .filter_map(|l| l.metadata.name)
        .collect();
    assert_eq!(names, vec!["a".to_string(), "b".to_string()]);
    assert!(sim.lease(NS, "a").is_none());
    assert!(sim.lease(NS, "c").is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn pods_of_a_63_character_job_get_a_63_character_name() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let name = "j".repeat(63);
    Api::<Job>::namespaced(client, NS)
        .create(&PostParams::default(), &job(&name, "busybox"))
        .await
        .unwrap();
    let pod = eventually("a pod", || sim.pods(NS).into_iter().next()).await;
    let pod_name = pod.metadata.name.unwrap();
    assert_eq!(pod_name.len(), 63);
    assert!(pod_name.starts_with(&"j".repeat(58)));
    assert_eq!(pod.metadata.labels.unwrap()["job-name"], name);
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_quantity_is_400_bad_request_before_validation() {
    let (sim, _) = start(KubeSimConfig::default()).await;
    let mut body = serde_json::to_value(job("quantity", "busybox")).unwrap();
    body["spec"]["template"]["spec"]["containers"][0]["resources"] =
        serde_json::json!({"limits": {"memory": "1GB"}});
    let url = format!("{}/apis/batch/v1/namespaces/{NS}/jobs", sim.url());
    let answer = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let status: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "Job in version \"v1\" cannot be handled as a Job: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
    assert!(sim.jobs(NS).is_empty());
    sim.shutdown().await;
}
