//! What the API server does to an object between decoding and storing it: defaulting and,
//! for Jobs, the generated selector and the labels it puts on the pod template.

use serde_json::{Map, Value, json};

use super::meta;
use super::resource::Resource;

/// Fills defaults on a new object of `resource` whose metadata is already stamped.
pub(crate) fn default_on_create(resource: Resource, object: &mut Value) {
    match resource {
        Resource::Jobs => default_job(object),
        Resource::Pods => {
            default_pod_spec(&mut object["spec"]);
            object["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        // A PodTemplate's pod spec is defaulted as a pod's is (`restartPolicy: Always`...).
        Resource::PodTemplates => default_pod_spec(&mut object["template"]["spec"]),
        Resource::Events | Resource::Leases | Resource::Secrets => {}
    }
    object["kind"] = json!(resource.kind());
    object["apiVersion"] = json!(resource.api_version());
}

fn default_job(job: &mut Value) {
    let name = meta::name(job).to_string();
    let uid = meta::uid(job).to_string();
    let spec = &mut job["spec"];
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completions", json!(1));
    set_default(spec, "parallelism", json!(1));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    // With a pod failure policy a replacement waits for the failed pod to end.
    let replacement = if spec["podFailurePolicy"].is_object() {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(spec, "podReplacementPolicy", json!(replacement));
    // Defaulting copies the template's labels to an unlabelled Job before the selector
    // labels are generated, so the Job itself never carries `controller-uid`.
    let template_labels = spec["template"]["metadata"]["labels"].clone();
    if template_labels.as_object().is_some_and(|m| !m.is_empty())
        && job["metadata"]["labels"]
            .as_object()
            .is_none_or(Map::is_empty)
    {
        job["metadata"]["labels"] = template_labels;
    }
    let spec = &mut job["spec"];
    spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    let template = &mut spec["template"];
    if !template["metadata"].is_object() {
        template["metadata"] = json!({});
    }
    if !template["metadata"]["labels"].is_object() {
        template["metadata"]["labels"] = json!({});
    }
    let labels = &mut template["metadata"]["labels"];
    labels["batch.kubernetes.io/controller-uid"] = json!(uid);
    labels["batch.kubernetes.io/job-name"] = json!(name);
    labels["controller-uid"] = json!(uid);
    labels["job-name"] = json!(name);
    default_pod_spec(&mut template["spec"]);
    job["status"] = json!({});
}

fn set_default(object: &mut Value, key: &str, value: Value) {
    if object[key].is_null() {
        object[key] = value;
    }
}

/// Pod spec defaults, as `SetDefaults_PodSpec` and `SetDefaults_Container` apply them.
fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        *spec = json!({});
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    for kind in ["initContainers", "containers"] {
        for c in spec[kind].as_array_mut().into_iter().flatten() {
            let image = c["image"].as_str().unwrap_or_default();
            let untagged_or_latest = {
                let last = image.rsplit('/').next().unwrap_or_default();
                !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"))
            };
            let pull = if untagged_or_latest {
                "Always"
            } else {
                "IfNotPresent"
            };
            set_default(c, "imagePullPolicy", json!(pull));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
        }
    }
}
