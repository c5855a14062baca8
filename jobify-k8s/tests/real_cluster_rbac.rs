//! jobify under exactly the Role `examples/deploy/rbac.yaml` ships, against a real
//! kube-apiserver with RBAC enforced: everything jobify does passes with it, and removing any
//! one verb makes it fail with an error naming that verb and its resource.
//!
//! The exercise is what jobify calls: `KubeJobifier` launches (jobs `create`), watches Jobs
//! and pods (`list`, `watch`), reports a pod that cannot start with its events (events
//! `list`) and deletes its Job, cancels (jobs `delete`), stops a Job with a merge patch of
//! `spec.activeDeadlineSeconds` (jobs `patch`, as the completion watch does), launches a job
//! with its own agent token (secrets `create`, then `patch` for the Job as its owner), launches
//! it again (the Secret found: secrets `list`, which the sweep of orphaned token Secrets at
//! start uses too) and launches one the API server refuses (its Secret deleted: secrets
//! `delete`), and a `LeaderElector` gets, creates, renews and releases its Lease (leases `get`,
//! `create`, `update`), and launches a job whose step names a PodTemplate (podtemplates `get`).
//! Where jobify reports a refusal only in its log (the watchers retry on 403, the
//! events listing falls back to no events), the exercise reads jobify's log.
//!
//! Ignored by a plain `cargo test`; run with `tools/k8s/test-real-cluster.sh`.

mod support;

use std::time::Duration;

use futures::StreamExt;
use jobify_core::{Jobifier, LaunchError, Launched, ScheduledJob, WorkloadEvent};
use jobify_k8s::config::{KubernetesConfig, LeaderElectionConfig};
use jobify_k8s::{KubeJobifier, LeaderElector};
use jobify_testcluster::TestCluster;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PodTemplate, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use support::cluster::CONTROLLER;
use support::corpus::default_template;
use support::fixtures::{JobExt, scheduled};
use support::logs::Logs;
use support::real::{PATIENCE, Recording, namespace_with_token};
use tokio::sync::oneshot;

const RBAC_YAML: &str = include_str!("../../examples/deploy/rbac.yaml");

/// The three documents of `rbac.yaml`.
#[derive(Clone)]
struct Manifests {
    account: ServiceAccount,
    role: Role,
    binding: RoleBinding,
}

fn manifests() -> Manifests {
    let (mut account, mut role, mut binding) = (None, None, None);
    for document in serde_yaml::Deserializer::from_str(RBAC_YAML) {
        let value = serde_json::Value::deserialize(document).expect("a YAML document");
        match value["kind"].as_str() {
            Some("ServiceAccount") => {
                account = Some(serde_json::from_value(value.clone()).expect("ServiceAccount"));
            }
            Some("Role") => role = Some(serde_json::from_value(value.clone()).expect("Role")),
            Some("RoleBinding") => {
                binding = Some(serde_json::from_value(value.clone()).expect("RoleBinding"));
            }
            other => panic!("rbac.yaml holds an unexpected {other:?}"),
        }
    }
    Manifests {
        account: account.expect("rbac.yaml has the ServiceAccount"),
        role: role.expect("rbac.yaml has the Role"),
        binding: binding.expect("rbac.yaml has the RoleBinding"),
    }
}

impl Manifests {
    /// The same manifests in `namespace` (the only change), with these rules.
    fn adapted(&self, namespace: &str, rules: Vec<PolicyRule>) -> Manifests {
        let mut m = self.clone();
        m.account.metadata.namespace = Some(namespace.to_owned());
        m.role.metadata.namespace = Some(namespace.to_owned());
        m.role.rules = Some(rules);
        m.binding.metadata.namespace = Some(namespace.to_owned());
        for subject in m.binding.subjects.iter_mut().flatten() {
            subject.namespace = Some(namespace.to_owned());
        }
        m
    }

    fn rules(&self) -> Vec<PolicyRule> {
        self.role.rules.clone().unwrap_or_default()
    }

    fn account_name(&self) -> String {
        self.account.metadata.name.clone().expect("named")
    }
}

/// Every (API group, resource, verb) the rules grant.
fn grants(rules: &[PolicyRule]) -> Vec<(String, String, String)> {
    let mut grants = Vec::new();
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    grants.push((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    grants
}

/// The rules without `verb` on `resource`; a rule left with no verb goes (RBAC refuses a
/// rule without verbs).
fn without(rules: &[PolicyRule], resource: &str, verb: &str) -> Vec<PolicyRule> {
    rules
        .iter()
        .cloned()
        .filter_map(|mut rule| {
            if rule.resources.iter().flatten().any(|r| r == resource) {
                rule.verbs.retain(|v| v != verb);
            }
            (!rule.verbs.is_empty()).then_some(rule)
        })
        .collect()
}

/// Creates the manifests with `admin` and waits until the authorizer grants the Role's
/// rules to the ServiceAccount and refuses `refused` (RBAC reads Roles from a cache).
async fn apply(
    admin: &kube::Client,
    namespace: &str,
    manifests: &Manifests,
    refused: Option<(&str, &str, &str)>,
) {
    let pp = PostParams::default();
    match Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create(&pp, &manifests.account)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating the ServiceAccount: {e}"),
    }
    Api::<Role>::namespaced(admin.clone(), namespace)
        .create(&pp, &manifests.role)
        .await
        .expect("creating the Role");
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .create(&pp, &manifests.binding)
        .await
        .expect("creating the RoleBinding");
    let user = format!(
        "system:serviceaccount:{namespace}:{}",
        manifests.account_name()
    );
    let mut expected: Vec<(String, String, String, bool)> = grants(&manifests.rules())
        .into_iter()
        .map(|(g, r, v)| (g, r, v, true))
        .collect();
    if let Some((g, r, v)) = refused {
        expected.push((g.to_owned(), r.to_owned(), v.to_owned(), false));
    }
    let reviews: Api<SubjectAccessReview> = Api::all(admin.clone());
    let settled = async {
        loop {
            let mut all = true;
            for (group, resource, verb, allowed) in &expected {
                let review: SubjectAccessReview = serde_json::from_value(json!({
                    "spec": {"user": user, "resourceAttributes": {
                        "namespace": namespace, "group": group,
                        "resource": resource, "verb": verb,
                    }},
                }))
                .expect("review");
                let answer = reviews
                    .create(&pp, &review)
                    .await
                    .expect("SubjectAccessReview");
                let granted = answer.status.is_some_and(|s| s.allowed);
                all &= granted == *allowed;
            }
            if all {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(PATIENCE, settled)
        .await
        .expect("the authorizer sees the Role in time");
}

fn election() -> LeaderElectionConfig {
    LeaderElectionConfig {
        enabled: true,
        lease_name: "jobify-leader".to_owned(),
        lease_duration: Duration::from_secs(2),
        renew_interval: Duration::from_millis(200),
        identity: None,
    }
}

/// What one exercise needs.
struct Exercise<'a> {
    admin: kube::Client,
    /// A client with the ServiceAccount's token: jobify's identity.
    jobify: kube::Client,
    config: KubernetesConfig,
    account: String,
    logs: &'a Logs,
}

impl Exercise<'_> {
    fn namespace(&self) -> &str {
        &self.config.namespace
    }

    /// What jobify logged about a refusal of its identity (the API server's 403 messages
    /// name the user, `system:serviceaccount:<namespace>:<name>`).
    fn refusals(&self) -> Vec<String> {
        let user = format!(
            "system:serviceaccount:{}:{}",
            self.namespace(),
            self.account
        );
        self.logs.matching(&["forbidden", &user])
    }

    fn refused(&self) -> Option<String> {
        let lines = self.refusals();
        (!lines.is_empty()).then(|| format!("jobify logged a refusal:\n  {}", lines.join("\n  ")))
    }

    /// `what` failed with `error`; with what jobify logged about refusals.
    fn failed(&self, what: &str, error: impl std::fmt::Display) -> String {
        let lines = self.refusals();
        if lines.is_empty() {
            format!("{what}: {error}")
        } else {
            format!("{what}: {error}\njobify logged:\n  {}", lines.join("\n  "))
        }
    }

    /// Polls `check` until it holds, failing when jobify logs a refusal or after PATIENCE.
    async fn wait<F, Fut>(&self, what: &str, mut check: F) -> Result<(), String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(why) = self.refused() {
                return Err(format!("waiting for {what}: {why}"));
            }
            if check().await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "{what} did not happen within {} s",
                    PATIENCE.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything jobify does; the first failure, described.
    async fn run(&self) -> Result<(), String> {
        let mut running = Recording::start(KubeJobifier::new(
            self.jobify.clone(),
            self.config.clone(),
            CONTROLLER,
        ));
        let watched = self.jobifier_steps(&mut running).await;
        running.stop().await;
        watched?;
        self.lease_steps().await?;
        match self.refused() {
            Some(why) => Err(format!("after the exercise: {why}")),
            None => Ok(()),
        }
    }

    /// Launches `job`: a Job is created.
    async fn launch(&self, running: &Recording, job: &ScheduledJob) -> Result<(), String> {
        match running.jobifier.launch(job, &default_template()).await {
            Ok(Launched::Created) => Ok(()),
            Ok(other) => Err(self.failed("launching a Job", format!("{other:?}"))),
            Err(e) => Err(self.failed("launching a Job", e)),
        }
    }

    async fn jobifier_steps(&self, running: &mut Recording) -> Result<(), String> {
        let abort = || self.refused();
        running
            .until_or(
                "Restored",
                |e| matches!(e, WorkloadEvent::Restored(_)),
                abort,
            )
            .await?;

        // Launch, watch to completion.
        let job = scheduled("queue=kubernetes");
        let name = format!("jobify-{}", job.id);
        self.launch(running, &job).await?;
        running
            .until_or(
                "Observed",
                |e| matches!(e, WorkloadEvent::Observed(w) if w.job == job.id),
                abort,
            )
            .await?;
        running
            .until_or("Started", |e| *e == WorkloadEvent::Started(job.id), abort)
            .await?;
        running
            .until_or(
                "Succeeded",
                |e| *e == WorkloadEvent::Succeeded(job.id),
                abort,
            )
            .await?;

        // Stop a Job as the completion watch does: a merge patch of its active deadline.
        Api::<Job>::namespaced(self.jobify.clone(), self.namespace())
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"activeDeadlineSeconds": 1}})),
            )
            .await
            .map_err(|e| self.failed("patching the Job's spec.activeDeadlineSeconds", e))?;

        // Fail fast: a pod whose image cannot be pulled is reported with its events, and
        // its Job deleted.
        let unpullable = scheduled("queue=kubernetes").with_plugin(json!({
            "podSpec": {"containers": [{"image": "registry.example/does-not-exist:1"}]}
        }));
        self.launch(running, &unpullable).await?;
        let event = running
            .until_or(
                "FailedToStart",
                |e| matches!(e, WorkloadEvent::FailedToStart { job, .. } if *job == unpullable.id),
                abort,
            )
            .await?;
        let WorkloadEvent::FailedToStart { reason, .. } = event else {
            unreachable!("matched above")
        };
        if !reason.message.contains("Kubernetes events:") {
            return Err(self.failed(
                "FailedToStart without the pod's Kubernetes events",
                &reason.message,
            ));
        }
        running
            .until_or(
                "Gone after FailedToStart",
                |e| *e == WorkloadEvent::Gone(unpullable.id),
                abort,
            )
            .await?;

        // Cancel: the Job is deleted.
        let slow = scheduled("queue=kubernetes").with_plugin(json!({
            "podSpec": {"containers": [{"image": "registry.example/slow-start:1"}]}
        }));
        self.launch(running, &slow).await?;
        running
            .until_or(
                "Observed",
                |e| matches!(e, WorkloadEvent::Observed(w) if w.job == slow.id),
                abort,
            )
            .await?;
        running
            .jobifier
            .cancel(slow.id)
            .await
            .map_err(|e| self.failed("cancelling", e))?;
        running
            .until_or(
                "Gone after cancel",
                |e| *e == WorkloadEvent::Gone(slow.id),
                abort,
            )
            .await?;
        self.pod_template_steps(running).await?;
        self.token_steps(running).await
    }

    /// A job whose step names a PodTemplate (the operator's, created by the admin) is
    /// launched from it.
    async fn pod_template_steps(&self, running: &mut Recording) -> Result<(), String> {
        let template: PodTemplate = serde_json::from_value(json!({
            "metadata": {"name": "rbac-template"},
            "template": {"spec": {"containers": [{"name": "templated", "image": "alpine:3"}]}}
        }))
        .expect("a PodTemplate");
        Api::<PodTemplate>::namespaced(self.admin.clone(), self.namespace())
            .create(&PostParams::default(), &template)
            .await
            .map_err(|e| format!("the admin creating a PodTemplate: {e}"))?;
        let job =
            scheduled("queue=kubernetes").with_plugin(json!({"podTemplate": "rbac-template"}));
        self.launch(running, &job).await
    }

    /// A job with its own agent token runs, is launched again, and one the API server refuses
    /// leaves no Secret.
    async fn token_steps(&self, running: &mut Recording) -> Result<(), String> {
        let abort = || self.refused();
        let what = "launching a Job with its own agent token";
        let own = scheduled("queue=kubernetes");
        let token = SecretString::from(format!("bkjat_{}", own.id.0.simple()));
        let template = default_template();
        match running
            .jobifier
            .launch_with_token(&own, &template, &token)
            .await
        {
            Ok(Launched::Created) => {}
            Ok(other) => return Err(self.failed(what, format!("{other:?}"))),
            Err(e) => return Err(self.failed(what, e)),
        }
        running
            .until_or(
                "Succeeded with its own token",
                |e| *e == WorkloadEvent::Succeeded(own.id),
                abort,
            )
            .await?;
        let again = "launching a Job with its own agent token again";
        match running
            .jobifier
            .launch_with_token(&own, &template, &token)
            .await
        {
            Ok(Launched::AlreadyExists) => {}
            Ok(other) => return Err(self.failed(again, format!("{other:?}"))),
            Err(e) => return Err(self.failed(again, e)),
        }

        let refused = scheduled("queue=kubernetes")
            .with_plugin(json!({"metadata": {"labels": {"not a key!": "x"}}}));
        let what = "launching a Job the API server refuses, with its own agent token";
        match running
            .jobifier
            .launch_with_token(&refused, &template, &token)
            .await
        {
            Err(LaunchError::Invalid { .. }) => {}
            other => return Err(self.failed(what, format!("{other:?}"))),
        }
        let name = format!("jobify-{}-token", refused.id);
        let left = Api::<Secret>::namespaced(self.admin.clone(), self.namespace())
            .get_opt(&name)
            .await
            .map_err(|e| format!("reading Secrets as admin: {e}"))?;
        if left.is_some() {
            return Err(self.failed(what, format!("its Secret `{name}` was left behind")));
        }
        Ok(())
    }

    /// A `LeaderElector` creates the Lease, renews it, and releases it on shutdown.
    async fn lease_steps(&self) -> Result<(), String> {
        let config = election();
        let elector =
            LeaderElector::new(self.jobify.clone(), self.namespace(), &config, "replica-a");
        let leading = elector.subscribe();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(elector.run(async move {
            let _ = stopped.await;
        }));
        let leases: Api<Lease> = Api::namespaced(self.admin.clone(), self.namespace());
        let result = async {
            self.wait("the elector leads", || {
                let leading = *leading.borrow();
                async move { leading }
            })
            .await?;
            let created = leases
                .get(&config.lease_name)
                .await
                .map_err(|e| format!("reading the Lease as admin: {e}"))?;
            let version = created.metadata.resource_version.clone();
            self.wait("the Lease is renewed", || {
                let leases = leases.clone();
                let version = version.clone();
                let name = config.lease_name.clone();
                async move {
                    leases
                        .get(&name)
                        .await
                        .is_ok_and(|l| l.metadata.resource_version != version)
                }
            })
            .await
        }
        .await;
        let _ = stop.send(());
        tokio::time::timeout(PATIENCE, task)
            .await
            .map_err(|_| "the elector did not stop in time".to_owned())?
            .map_err(|e| format!("the elector panicked: {e}"))?;
        result?;
        if let Some(why) = self.refused() {
            return Err(format!("releasing the Lease: {why}"));
        }
        let released = leases
            .get(&config.lease_name)
            .await
            .map_err(|e| format!("reading the Lease as admin: {e}"))?;
        let holder = released.spec.and_then(|s| s.holder_identity);
        if holder.as_deref().is_some_and(|h| !h.is_empty()) {
            return Err(format!("the Lease was not released: held by {holder:?}"));
        }
        Ok(())
    }
}

/// A namespace bound to `rules` (the file's manifests otherwise), and the exercise's outcome.
async fn exercise_with(
    cluster: &'static TestCluster,
    admin: &kube::Client,
    hint: &str,
    rules: Vec<PolicyRule>,
    refused: Option<(&str, &str, &str)>,
    logs: &Logs,
) -> Result<(), String> {
    let mut config = namespace_with_token(cluster, admin, hint).await;
    // On a real cluster the pull error comes a few hundred milliseconds after the pod: the
    // pending timeout must outlast it plus the pull grace.
    config.fail_fast.pending_timeout = Duration::from_secs(10);
    let file = manifests();
    let adapted = file.adapted(&config.namespace, rules);
    apply(admin, &config.namespace, &adapted, refused).await;
    let account = file.account_name();
    let jobify = cluster
        .service_account_client(&config.namespace, &account)
        .await
        .expect("the ServiceAccount's client");
    Exercise {
        admin: admin.clone(),
        jobify,
        config,
        account,
        logs,
    }
    .run()
    .await
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn jobify_does_everything_it_does_under_the_shipped_role() {
    let (logs, _guard) = Logs::capture();
    let cluster = TestCluster::shared();
    let admin = cluster.client().await.expect("admin client");
    let outcome = exercise_with(
        cluster,
        &admin,
        "rbac-full",
        manifests().rules(),
        None,
        &logs,
    )
    .await;
    if let Err(why) = outcome {
        panic!("under exactly the Role of examples/deploy/rbac.yaml: {why}");
    }
}

#[tokio::test]
#[ignore = "real-cluster tier: run tools/k8s/test-real-cluster.sh"]
async fn removing_any_one_verb_fails_with_an_error_naming_it() {
    let (logs, _guard) = Logs::capture();
    let cluster = TestCluster::shared();
    let admin = cluster.client().await.expect("admin client");
    let rules = manifests().rules();
    let removals = grants(&rules);
    assert_eq!(
        removals.len(),
        16,
        "the Role's verbs: {removals:?} (update this count with the Role)"
    );
    let outcomes: Vec<(String, Result<(), String>)> = futures::stream::iter(removals)
        .map(|(group, resource, verb)| {
            let (admin, logs, rules) = (admin.clone(), logs.clone(), rules.clone());
            async move {
                let label = format!("{verb} on {resource} (API group {group:?})");
                let outcome = exercise_with(
                    cluster,
                    &admin,
                    &format!("rbac-no-{resource}-{verb}"),
                    without(&rules, &resource, &verb),
                    Some((&group, &resource, &verb)),
                    &logs,
                )
                .await;
                let named = format!("cannot {verb} resource \"{resource}\"");
                eprintln!(
                    "--- without {label}: {}",
                    outcome
                        .as_ref()
                        .err()
                        .map_or("the exercise passed", String::as_str)
                );
                let verdict = match outcome {
                    Ok(()) => Err(format!(
                        "without {label} the exercise did not fail: no test would notice the \
                         verb missing"
                    )),
                    Err(why) if why.contains(&named) => Ok(()),
                    Err(why) => Err(format!(
                        "without {label} the exercise failed, but the failure does not name \
                         the verb and resource ({named:?}):\n{why}"
                    )),
                };
                (label, verdict)
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let problems: Vec<String> = outcomes
        .iter()
        .filter_map(|(_, verdict)| verdict.as_ref().err().cloned())
        .collect();
    assert!(
        problems.is_empty(),
        "{} of {} removals:\n\n{}",
        problems.len(),
        outcomes.len(),
        problems.join("\n\n")
    );
}
