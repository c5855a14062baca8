//! The `pods/{name}/log` subresource. The kubelet runs no processes, so a log is what the
//! simulated container did (the agent acquiring its job, the exit status); a container that
//! has not started answers `400` with the kubelet's wording, as a real server does.

use serde_json::Value;

use super::meta;
use super::resource::Resource;
use super::scenario;
use super::status::ApiError;

/// The log text of a container of `pod` (the only one if `container` is `None`).
pub(crate) fn pod_log(pod: &Value, container: Option<&str>) -> Result<String, ApiError> {
    let name = meta::name(pod);
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match (container, names.as_slice()) {
        (Some(c), _) => c,
        (None, [only]) => only,
        (None, _) => {
            return Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    if !names.contains(&container) {
        return Err(ApiError::BadRequest(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == container);
    let state = status.map(|s| &s["state"]).unwrap_or(&Value::Null);
    if let Some(reason) = state["waiting"]["reason"].as_str() {
        let why = match reason {
            "ErrImagePull" | "ImagePullBackOff" => "trying and failing to pull image",
            "InvalidImageName" => "image can't be pulled",
            other => other,
        };
        return Err(ApiError::BadRequest(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
        )));
    }
    let mut log = String::new();
    let agent = scenario::agent_container(pod).filter(|a| a.container == container);
    if let Some(started) = state["running"]["startedAt"]
        .as_str()
        .or_else(|| state["terminated"]["startedAt"].as_str())
    {
        match agent.as_ref().and_then(|a| a.job) {
            Some(job) => log.push_str(&format!(
                "{started} INFO   Starting buildkite-agent (simulated), acquiring job {job}\n"
            )),
            None => log.push_str(&format!(
                "{started} INFO   Container {container} started (simulated)\n"
            )),
        }
    }
    if let (Some(finished), Some(code)) = (
        state["terminated"]["finishedAt"].as_str(),
        state["terminated"]["exitCode"].as_i64(),
    ) {
        log.push_str(&format!("{finished} INFO   Exited with status {code}\n"));
    }
    Ok(log)
}

/// The pod a log request names.
pub(crate) fn find_pod(
    cluster: &super::cluster::Cluster,
    namespace: &str,
    name: &str,
) -> Result<std::sync::Arc<Value>, ApiError> {
    cluster
        .store
        .get(Resource::Pods, namespace, name)
        .ok_or_else(|| ApiError::NotFound {
            resource: Resource::Pods,
            name: name.to_string(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn waiting_containers_answer_with_the_kubelets_reason() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": "n", "containers": [{"name": "agent", "image": "x"}]},
            "status": {"containerStatuses": [{"name": "agent", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
        });
        let err = pod_log(&pod, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container \"agent\" in pod \"p\" is waiting to start: trying and failing to pull image"
        );
    }

    #[test]
    fn several_containers_need_a_name() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": "n", "containers": [{"name": "a"}, {"name": "b"}]}
        });
        assert_eq!(
            pod_log(&pod, None).unwrap_err().to_string(),
            "a container name must be specified for pod p, choose one of: [a b]"
        );
    }
}
