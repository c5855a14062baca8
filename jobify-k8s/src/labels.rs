//! The labels and annotations jobify puts on its Jobs and pods, and making values label-safe.
//!
//! Labels are for selecting (the controller's selector, the job uuid, pipeline and queue for
//! `kubectl get -l`); label values are at most 63 characters of `[A-Za-z0-9._-]`, starting
//! and ending alphanumeric, so free-form values are sanitised there and kept verbatim in an
//! annotation.

/// Label: the controller that owns the Job (its controller id). The watchers select on it.
pub const CONTROLLER: &str = "jobify.dev/controller";
/// Label: the Buildkite job uuid.
pub const JOB_UUID: &str = "jobify.dev/job-uuid";
/// Label: the pipeline slug, made label-safe.
pub const PIPELINE: &str = "jobify.dev/pipeline";
/// Label: the queue, made label-safe.
pub const QUEUE: &str = "jobify.dev/queue";

/// Annotation: the pipeline slug verbatim.
pub const PIPELINE_ANNOTATION: &str = "jobify.dev/pipeline";
/// Annotation: the queue verbatim.
pub const QUEUE_ANNOTATION: &str = "jobify.dev/queue";
/// Annotation: the build's web URL.
pub const BUILD_URL: &str = "jobify.dev/build-url";
/// Annotation: the job's web URL.
pub const JOB_URL: &str = "jobify.dev/job-url";
/// Annotation: the build's branch.
pub const BRANCH: &str = "jobify.dev/branch";
/// Annotation: the job's Buildkite priority.
pub const PRIORITY: &str = "jobify.dev/priority";
/// Annotation: the Buildkite organization.
pub const ORGANIZATION: &str = "jobify.dev/organization";
/// Annotation jobify sets when it stops a Job whose agent has ended while other containers
/// kept its pod running: why, naming those containers.
pub const STOPPED_ANNOTATION: &str = "jobify.dev/stopped";

/// Annotation on a Job whose pod started from a PodTemplate (the plugin's `podTemplate`): the
/// PodTemplate's name (agent-stack-k8s sets `buildkite.com/pod-template-name`).
pub const POD_TEMPLATE: &str = "jobify.dev/pod-template";

/// Annotation on a Job whose agent has a token of its own (a Buildkite job acquisition
/// token): the name of the Secret holding it, which the Job owns.
pub const AGENT_TOKEN_SECRET: &str = "jobify.dev/agent-token-secret";

/// Longest label value (and DNS-1123 label).
const MAX_LABEL_LEN: usize = 63;

/// The label selector of everything one controller owns.
pub fn controller_selector(controller_id: &str) -> String {
    format!("{CONTROLLER}={}", label_value(controller_id))
}

/// `value` made into a valid label value: characters outside `[A-Za-z0-9._-]` become `_`,
/// the result is cut to 63 characters and trimmed so it starts and ends alphanumeric. Two
/// different values may map to the same label; the annotation keeps the original.
pub fn label_value(value: &str) -> String {
    let mapped: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_LABEL_LEN)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// Whether `value` is already a valid label value.
pub fn is_label_value(value: &str) -> bool {
    label_value(value) == value
}

/// Whether `key` is a valid label key: an optional DNS-subdomain prefix and `/`, then a name
/// of 1-63 of `[A-Za-z0-9._-]` starting and ending alphanumeric.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(|p| !p.is_empty() && is_dns1123_subdomain(p))
        && !name.is_empty()
        && is_label_value(name)
}

/// Whether `name` is a DNS-1123 label: 1-63 of `[a-z0-9-]`, alphanumeric at both ends.
pub fn is_dns1123_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LABEL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `name` is a DNS-1123 subdomain (most object names): dot-separated labels, at most
/// 253 characters.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_sanitised_and_cut() {
        assert_eq!(label_value("my-pipeline"), "my-pipeline");
        assert_eq!(label_value("queue=gpu large"), "queue_gpu_large");
        assert_eq!(label_value("-ünicode-"), "nicode");
        assert_eq!(label_value(""), "");
        let long = "a".repeat(70) + "b";
        assert_eq!(label_value(&long).len(), 63);
        let cut_on_dash = format!("{}-tail", "a".repeat(62));
        assert_eq!(label_value(&cut_on_dash), "a".repeat(62));
        assert!(is_label_value(&label_value("__x/y__")));
    }

    #[test]
    fn label_keys_are_checked() {
        for good in [
            "pool",
            "kubernetes.io/os",
            "node.kubernetes.io/instance-type",
            "a_b.c",
        ] {
            assert!(is_label_key(good), "{good}");
        }
        for bad in [
            "",
            "/os",
            "Kubernetes.io/os",
            "a b",
            "x/",
            "-a",
            &"a".repeat(64),
        ] {
            assert!(!is_label_key(bad), "{bad}");
        }
    }

    #[test]
    fn dns_names_are_checked() {
        assert!(is_dns1123_label("jobify-0a"));
        assert!(!is_dns1123_label("Jobify"));
        assert!(!is_dns1123_label("a-"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("jobify.leader"));
        assert!(!is_dns1123_subdomain("jobify..leader"));
    }
}
