//! Secrets in the Kubernetes simulator against a real `kube::Client`: the calls jobify makes
//! for a job's agent token Secret (create, list by name and label, owner merge patch,
//! delete with preconditions, metadata-only list), `stringData`, `immutable`, base64, and
//! the garbage collector deleting a Secret with the Job that owns it.
#![allow(clippy::unwrap_used)]

mod kubernetes_support;

use std::collections::BTreeMap;

use jobify_sim::kubernetes::KubeSimConfig;
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use kubernetes_support::{NS, eventually, job, start};
use serde_json::json;

/// A Secret named `name` holding `token`, labelled `jobify.dev/job=<name>`.
fn token_secret(name: &str, token: &str, immutable: bool) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"jobify.dev/job": name}},
        "data": {"BUILDKITE_AGENT_TOKEN": ByteString(token.as_bytes().to_vec())},
        "immutable": immutable,
    }))
    .unwrap()
}

fn token(secret: &Secret) -> Vec<u8> {
    secret.data.as_ref().unwrap()["BUILDKITE_AGENT_TOKEN"]
        .0
        .clone()
}

fn owner_patch(job: &Job) -> Patch<serde_json::Value> {
    Patch::Merge(json!({"metadata": {"ownerReferences": [{
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job.metadata.name,
        "uid": job.metadata.uid,
        "controller": false,
        "blockOwnerDeletion": false,
    }]}}))
}

fn api_error(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn secret_is_created_listed_owned_and_deleted_as_jobify_does() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let jobs: Api<Job> = Api::namespaced(client, NS);

    let created = secrets
        .create(
            &PostParams::default(),
            &token_secret("b1-token", "bkjat_1", true),
        )
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.type_.as_deref(), Some("Opaque"), "type defaults");
    assert_eq!(token(&created), b"bkjat_1");
    let again = secrets
        .create(
            &PostParams::default(),
            &token_secret("b1-token", "bkjat_1", true),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(again).reason, "AlreadyExists");
    secrets
        .create(
            &PostParams::default(),
            &token_secret("b2-token", "bkjat_2", true),
        )
        .await
        .unwrap();

    let got = secrets.get("b1-token").await.unwrap();
    assert_eq!(token(&got), b"bkjat_1");
    let by_name = secrets
        .list(&ListParams::default().fields("metadata.name=b1-token"))
        .await
        .unwrap();
    let names: Vec<_> = by_name
        .items
        .iter()
        .map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(names, [Some("b1-token".to_string())]);
    let by_label = secrets
        .list(&ListParams::default().labels("jobify.dev/job=b2-token"))
        .await
        .unwrap();
    assert_eq!(by_label.items.len(), 1);
    assert_eq!(token(&by_label.items[0]), b"bkjat_2");
    let bad_field = secrets
        .list(&ListParams::default().fields("data.x=1"))
        .await
        .unwrap_err();
    assert_eq!(api_error(bad_field).code, 400);

    let owner = jobs
        .create(&PostParams::default(), &job("b1", "busybox"))
        .await
        .unwrap();
    let owned = secrets
        .patch("b1-token", &PatchParams::default(), &owner_patch(&owner))
        .await
        .unwrap();
    let refs = owned.metadata.owner_references.clone().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(Some(&refs[0].uid), owner.metadata.uid.as_ref());
    assert_ne!(
        owned.metadata.resource_version, created.metadata.resource_version,
        "a patch takes a new resourceVersion"
    );

    // Preconditions: a stale resourceVersion or another uid is a 409 and keeps the Secret.
    let uid = owned.metadata.uid.clone();
    for preconditions in [
        Preconditions {
            uid: uid.clone(),
            resource_version: created.metadata.resource_version.clone(),
        },
        Preconditions {
            uid: Some("not-its-uid".to_string()),
            resource_version: None,
        },
    ] {
        let dp = DeleteParams {
            preconditions: Some(preconditions),
            ..DeleteParams::default()
        };
        let refused = secrets.delete("b1-token", &dp).await.unwrap_err();
        assert_eq!(api_error(refused).code, 409);
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: owned.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    secrets.delete("b1-token", &dp).await.unwrap();
    let gone = secrets.get("b1-token").await.unwrap_err();
    assert_eq!(api_error(gone).code, 404);
    let left: Vec<_> = sim
        .secrets(NS)
        .into_iter()
        .map(|s| s.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["b2-token"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn immutable_secret_refuses_a_data_change_but_takes_labels_and_owners() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let jobs: Api<Job> = Api::namespaced(client, NS);
    secrets
        .create(
            &PostParams::default(),
            &token_secret("i-token", "bkjat_1", true),
        )
        .await
        .unwrap();
    let pp = PatchParams::default();

    for change in [
        json!({"data": {"BUILDKITE_AGENT_TOKEN": "b3RoZXI="}}),
        json!({"stringData": {"BUILDKITE_AGENT_TOKEN": "other"}}),
        json!({"data": {"EXTRA": "eA=="}}),
        json!({"immutable": false}),
    ] {
        let refused = secrets
            .patch("i-token", &pp, &Patch::Merge(change.clone()))
            .await
            .unwrap_err();
        let status = api_error(refused);
        assert_eq!(status.code, 422, "{change}");
        assert_eq!(status.reason, "Invalid", "{change}");
        assert!(
            status
                .message
                .contains("Forbidden: field is immutable when `immutable` is set"),
            "{change}: {}",
            status.message
        );
    }
    let mut replaced = secrets.get("i-token").await.unwrap();
    replaced.data = Some(BTreeMap::from([(
        "BUILDKITE_AGENT_TOKEN".to_string(),
        ByteString(b"other".to_vec()),
    )]));
    let refused = secrets
        .replace("i-token", &PostParams::default(), &replaced)
        .await
        .unwrap_err();
    assert_eq!(api_error(refused).code, 422);

    let relabelled = secrets
        .patch(
            "i-token",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"extra": "yes"}}})),
        )
        .await
        .unwrap();
    assert_eq!(relabelled.metadata.labels.unwrap()["extra"], "yes");
    let owner = jobs
        .create(&PostParams::default(), &job("i", "busybox"))
        .await
        .unwrap();
    let owned = secrets
        .patch("i-token", &pp, &owner_patch(&owner))
        .await
        .unwrap();
    assert_eq!(owned.metadata.owner_references.as_ref().unwrap().len(), 1);
    assert_eq!(token(&owned), b"bkjat_1", "the data is unchanged");
    sim.shutdown().await;
}

#[tokio::test]
async fn mutable_secret_takes_a_data_change() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let secrets: Api<Secret> = Api::namespaced(client, NS);
    secrets
        .create(
            &PostParams::default(),
            &token_secret("m-token", "bkjat_1", false),
        )
        .await
        .unwrap();
    let patched = secrets
        .patch(
            "m-token",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"BUILDKITE_AGENT_TOKEN": "bkjat_2"}})),
        )
        .await
        .unwrap();
    assert_eq!(token(&patched), b"bkjat_2");
    assert!(patched.string_data.is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn string_data_is_merged_into_data_and_not_stored() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let secrets: Api<Secret> = Api::namespaced(client, NS);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "data": {"kept": "a2VwdA==", "over": "b2xk"},
        "stringData": {"over": "new", "plain": "text"},
    }))
    .unwrap();
    let created = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let data = created.data.clone().unwrap();
    let text = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
    assert_eq!(
        (text("kept"), text("over"), text("plain")),
        ("kept".to_string(), "new".to_string(), "text".to_string())
    );
    assert!(created.string_data.is_none(), "stringData is not answered");
    let stored = sim.secrets(NS);
    assert!(stored[0].string_data.is_none(), "stringData is not stored");
    assert_eq!(stored[0].data, created.data);
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_base64_and_bad_keys_are_refused_like_the_api_server() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    // `ByteString` always encodes: send the raw JSON a careless manifest would.
    let raw = client.clone();
    let request = http::Request::post(format!("/api/v1/namespaces/{NS}/secrets"))
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "b64"},
                "data": {"password": "wombat!"},
            }))
            .unwrap(),
        )
        .unwrap();
    let refused = raw.request::<Secret>(request).await.unwrap_err();
    let status = api_error(refused);
    // A `[]byte` that does not decode fails the decoding, before validation: a 400.
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 6"
    );

    let secrets: Api<Secret> = Api::namespaced(client, NS);
    let bad_key: Secret = serde_json::from_value(json!({
        "metadata": {"name": "k"},
        "stringData": {"not a key": "x"},
    }))
    .unwrap();
    let refused = secrets
        .create(&PostParams::default(), &bad_key)
        .await
        .unwrap_err();
    let status = api_error(refused);
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .starts_with("Secret \"k\" is invalid: data[not a key]: Invalid value"),
        "{}",
        status.message
    );
    assert!(sim.secrets(NS).is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn secret_owned_by_a_job_goes_with_a_background_delete_and_stays_with_orphan() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let jobs: Api<Job> = Api::namespaced(client, NS);
    for name in ["bg", "orphan"] {
        let owner = jobs
            .create(&PostParams::default(), &job(name, "busybox"))
            .await
            .unwrap();
        let secret = format!("{name}-token");
        secrets
            .create(&PostParams::default(), &token_secret(&secret, "t", true))
            .await
            .unwrap();
        secrets
            .patch(&secret, &PatchParams::default(), &owner_patch(&owner))
            .await
            .unwrap();
    }
    // An unowned Secret is never collected.
    secrets
        .create(
            &PostParams::default(),
            &token_secret("free-token", "t", true),
        )
        .await
        .unwrap();

    jobs.delete("bg", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the background-deleted Job's Secret to go", || {
        let names: Vec<_> = sim
            .secrets(NS)
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect();
        (!names.contains(&"bg-token".to_string())).then_some(())
    })
    .await;

    jobs.delete("orphan", &DeleteParams::orphan())
        .await
        .unwrap();
    eventually("the orphan-deleted Job to go", || {
        sim.jobs(NS)
            .iter()
            .all(|j| j.metadata.name.as_deref() != Some("orphan"))
            .then_some(())
    })
    .await;
    let kept = secrets.get("orphan-token").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "an orphaned Secret loses its owner reference"
    );
    secrets.get("free-token").await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn foreground_delete_takes_the_secret_without_waiting_on_it() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let jobs: Api<Job> = Api::namespaced(client, NS);
    let owner = jobs
        .create(&PostParams::default(), &job("fg", "busybox"))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &token_secret("fg-token", "t", true))
        .await
        .unwrap();
    secrets
        .patch("fg-token", &PatchParams::default(), &owner_patch(&owner))
        .await
        .unwrap();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..DeleteParams::default()
    };
    jobs.delete("fg", &dp).await.unwrap();
    eventually("the Job and its Secret to go", || {
        (sim.jobs(NS).is_empty() && sim.secrets(NS).is_empty()).then_some(())
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn list_metadata_answers_metadata_without_data() {
    let (sim, client) = start(KubeSimConfig::default()).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    secrets
        .create(
            &PostParams::default(),
            &token_secret("meta-token", "bkjat_x", true),
        )
        .await
        .unwrap();
    let listed = secrets
        .list_metadata(&ListParams::default().labels("jobify.dev/job=meta-token"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let item = &listed.items[0];
    assert_eq!(item.metadata.name.as_deref(), Some("meta-token"));
    assert!(item.metadata.uid.is_some() && item.metadata.resource_version.is_some());
    let types = item.types.as_ref().unwrap();
    assert_eq!(
        (types.kind.as_str(), types.api_version.as_str()),
        ("PartialObjectMetadata", "meta.k8s.io/v1")
    );

    // On the wire: the list's kind, and no item carries data.
    let request = http::Request::get(format!(
        "/api/v1/namespaces/{NS}/secrets?labelSelector=jobify.dev%2Fjob%3Dmeta-token"
    ))
    .header(
        "accept",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .body(Vec::new())
    .unwrap();
    let raw: serde_json::Value = client.request(request).await.unwrap();
    assert_eq!(raw["kind"], "PartialObjectMetadataList");
    assert_eq!(raw["apiVersion"], "meta.k8s.io/v1");
    assert!(raw["metadata"]["resourceVersion"].is_string());
    let item = raw["items"][0].as_object().unwrap();
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["apiVersion", "kind", "metadata"]);
    assert!(!raw.to_string().contains("BUILDKITE_AGENT_TOKEN"));

    let got = secrets.get_metadata("meta-token").await.unwrap();
    assert_eq!(got.metadata.name.as_deref(), Some("meta-token"));
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_metadata_shows_secrets_as_metadata_only() {
    use futures::StreamExt as _;
    use kube::api::{WatchEvent, WatchParams};

    let (sim, client) = start(KubeSimConfig::default()).await;
    let secrets: Api<Secret> = Api::namespaced(client, NS);
    secrets
        .create(&PostParams::default(), &token_secret("w-token", "t", true))
        .await
        .unwrap();
    let mut events = secrets
        .watch_metadata(&WatchParams::default().timeout(5), "0")
        .await
        .unwrap()
        .boxed();
    let Some(Ok(WatchEvent::Added(added))) = events.next().await else {
        panic!("the existing Secret is ADDED first");
    };
    assert_eq!(added.metadata.name.as_deref(), Some("w-token"));
    assert_eq!(added.types.unwrap().kind, "PartialObjectMetadata");
    sim.shutdown().await;
}
