//! Sorting pods into scenarios, and reading what a pod's agent container would do.

use serde_json::Value;
use uuid::Uuid;

use super::config::{Scenario, Scenarios};
use super::meta;

/// The scenario of `pod` under `config` (see [`Scenarios`] for the rules).
pub(crate) fn classify(pod: &Value, config: &Scenarios) -> Scenario {
    if let Some(named) = meta::labels(pod).get(&config.label) {
        let missing = config.missing_secrets.first().cloned().unwrap_or_default();
        match named.as_str() {
            "image-pull-failure" => return Scenario::ImagePullFailure,
            "invalid-image-name" => return Scenario::InvalidImageName,
            "create-container-config-error" => {
                return Scenario::CreateContainerConfigError(format!(
                    "secret \"{missing}\" not found"
                ));
            }
            "unschedulable" => return Scenario::Unschedulable,
            "slow-start" => return Scenario::SlowStart,
            "oom-killed" => return Scenario::OomKilled,
            "normal" => return Scenario::Normal,
            _ => {}
        }
    }
    let containers = all_containers(pod);
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c["image"].as_str().unwrap_or_default())
        .collect();
    if images.iter().any(|i| !is_valid_reference(i)) {
        return Scenario::InvalidImageName;
    }
    if images
        .iter()
        .any(|i| i.contains(&config.missing_image_marker))
    {
        return Scenario::ImagePullFailure;
    }
    if let Some(missing) = missing_reference(&containers, config) {
        return Scenario::CreateContainerConfigError(missing);
    }
    let selector = meta::string_map(&pod["spec"]["nodeSelector"]);
    if selector
        .iter()
        .any(|(k, v)| config.node_labels.get(k) != Some(v))
    {
        return Scenario::Unschedulable;
    }
    if images.iter().any(|i| i.contains(&config.oom_image_marker)) {
        return Scenario::OomKilled;
    }
    if images.iter().any(|i| i.contains(&config.slow_image_marker)) {
        return Scenario::SlowStart;
    }
    Scenario::Normal
}

/// Init containers then containers.
pub(crate) fn all_containers(pod: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(|k| pod["spec"][k].as_array().into_iter().flatten())
        .collect()
}

/// The kubelet's message for the first reference to a missing secret or config map.
fn missing_reference(containers: &[&Value], config: &Scenarios) -> Option<String> {
    let secret = |name: &str| {
        config
            .missing_secrets
            .iter()
            .any(|s| s == name)
            .then(|| format!("secret \"{name}\" not found"))
    };
    let config_map = |name: &str| {
        config
            .missing_config_maps
            .iter()
            .any(|s| s == name)
            .then(|| format!("configmap \"{name}\" not found"))
    };
    for c in containers {
        for e in c["env"].as_array().into_iter().flatten() {
            let from = &e["valueFrom"];
            if let Some(found) = from["secretKeyRef"]["name"].as_str().and_then(secret) {
                return Some(found);
            }
            if let Some(found) = from["configMapKeyRef"]["name"]
                .as_str()
                .and_then(config_map)
            {
                return Some(found);
            }
        }
        for e in c["envFrom"].as_array().into_iter().flatten() {
            if let Some(found) = e["secretRef"]["name"].as_str().and_then(secret) {
                return Some(found);
            }
            if let Some(found) = e["configMapRef"]["name"].as_str().and_then(config_map) {
                return Some(found);
            }
        }
    }
    None
}

/// Whether `image` parses as a container image reference (docker's reference grammar:
/// lowercase path components, optional registry host and port, tag, digest): what a kubelet
/// refuses with `InvalidImageName`.
pub fn is_valid_reference(image: &str) -> bool {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest
        && !d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty() && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        })
    {
        return false;
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return false;
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let host_ok = first
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
            if !host_ok {
                return false;
            }
            parts.remove(0);
        }
    }
    !parts.is_empty() && parts.iter().all(|p| is_path_component(p))
}

/// Why `image` does not parse, worded like `github.com/distribution/reference`.
pub(crate) fn reference_error(image: &str) -> String {
    let lower = image.to_lowercase();
    if lower != image && is_valid_reference(&lower) {
        let name = image.split(['@']).next().unwrap_or_default();
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let name = match name[last_slash..].rfind(':') {
            Some(i) => &name[..last_slash + i],
            None => name,
        };
        let first = name.split('/').next().unwrap_or_default();
        let remote = if !name.contains('/') {
            format!("library/{name}")
        } else if first.contains('.') || first.contains(':') || first == "localhost" {
            name[first.len() + 1..].to_string()
        } else {
            name.to_string()
        };
        return format!("invalid reference format: repository name ({remote}) must be lowercase");
    }
    "invalid reference format".to_string()
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn is_path_component(p: &str) -> bool {
    let b = p.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// What a pod's agent container would do against Buildkite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AgentContainer {
    /// The container's name.
    pub(crate) container: String,
    /// The job it acquires (`--acquire-job` or `BUILDKITE_AGENT_ACQUIRE_JOB`), if any.
    pub(crate) job: Option<Uuid>,
    /// Its tags (`BUILDKITE_AGENT_TAGS`, comma-separated `k=v`).
    pub(crate) tags: Vec<String>,
}

/// The pod's agent container: the one acquiring a job, else the one named `agent`.
pub(crate) fn agent_container(pod: &Value) -> Option<AgentContainer> {
    let containers = pod["spec"]["containers"].as_array()?;
    let acquiring = containers
        .iter()
        .find_map(|c| acquire_job(c).map(|j| (c, Some(j))));
    let (c, job) = acquiring.or_else(|| {
        containers
            .iter()
            .find(|c| c["name"] == "agent")
            .map(|c| (c, None))
    })?;
    let tags = env_value(c, "BUILDKITE_AGENT_TAGS")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(AgentContainer {
        container: c["name"].as_str().unwrap_or_default().to_string(),
        job,
        tags,
    })
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
}

fn acquire_job(container: &Value) -> Option<Uuid> {
    let words: Vec<&str> = ["command", "args"]
        .into_iter()
        .flat_map(|k| container[k].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .flat_map(str::split_whitespace)
        .collect();
    let from_args = words.iter().enumerate().find_map(|(i, w)| {
        if let Some(v) = w.strip_prefix("--acquire-job=") {
            return Uuid::parse_str(v).ok();
        }
        (*w == "--acquire-job")
            .then(|| words.get(i + 1))
            .flatten()
            .and_then(|v| Uuid::parse_str(v).ok())
    });
    from_args.or_else(|| {
        env_value(container, "BUILDKITE_AGENT_ACQUIRE_JOB").and_then(|v| Uuid::parse_str(v).ok())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn image_references_parse_like_docker() {
        for ok in [
            "busybox",
            "busybox:1.36",
            "ghcr.io/org/img:v1",
            "localhost:5000/a/b",
            "a__b/c-d.e",
            "img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_valid_reference(ok), "{ok}");
        }
        assert_eq!(
            reference_error("Busybox"),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert_eq!(
            reference_error("ghcr.io/Org/img:1"),
            "invalid reference format: repository name (Org/img) must be lowercase"
        );
        assert_eq!(reference_error("bad image"), "invalid reference format");
        for bad in ["Busybox", "bad image", "img:", "img:-x", "a//b", "-a", ""] {
            assert!(!is_valid_reference(bad), "{bad}");
        }
    }

    #[test]
    fn scenarios_follow_image_env_and_node_selector() {
        let c = Scenarios::default();
        let p = pod(json!([{"name": "a", "image": "Upper"}]));
        assert_eq!(classify(&p, &c), Scenario::InvalidImageName);
        let p = pod(json!([{"name": "a", "image": "org/does-not-exist:1"}]));
        assert_eq!(classify(&p, &c), Scenario::ImagePullFailure);
        let p = pod(json!([{"name": "a", "image": "x", "env": [
            {"name": "T", "valueFrom": {"secretKeyRef": {"name": "missing-secret", "key": "k"}}}
        ]}]));
        assert_eq!(
            classify(&p, &c),
            Scenario::CreateContainerConfigError("secret \"missing-secret\" not found".into())
        );
        let mut p = pod(json!([{"name": "a", "image": "x"}]));
        assert_eq!(classify(&p, &c), Scenario::Normal);
        p["spec"]["nodeSelector"] = json!({"gpu": "true"});
        assert_eq!(classify(&p, &c), Scenario::Unschedulable);
        p["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        assert_eq!(classify(&p, &c), Scenario::Normal);
        p["metadata"]["labels"] = json!({"sim.jobify.dev/scenario": "oom-killed"});
        assert_eq!(classify(&p, &c), Scenario::OomKilled);
    }

    #[test]
    fn agent_container_reads_acquire_job_and_tags() {
        let job = Uuid::new_v4();
        let p = pod(json!([
            {"name": "sidecar", "image": "x"},
            {"name": "main", "image": "agent", "args": ["start", "--acquire-job", job.to_string()],
             "env": [{"name": "BUILDKITE_AGENT_TAGS", "value": "queue=k8s, os=linux"}]}
        ]));
        assert_eq!(
            agent_container(&p),
            Some(AgentContainer {
                container: "main".into(),
                job: Some(job),
                tags: vec!["queue=k8s".into(), "os=linux".into()],
            })
        );
        let p = pod(json!([{"name": "agent", "image": "x",
            "env": [{"name": "BUILDKITE_AGENT_ACQUIRE_JOB", "value": job.to_string()}]}]));
        assert_eq!(agent_container(&p).and_then(|a| a.job), Some(job));
    }
}
