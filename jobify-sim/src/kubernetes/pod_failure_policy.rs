//! The Job controller's `podFailurePolicy`: what a failed pod means to its Job, by the first
//! rule that matches its containers' exit codes or its conditions (as the real controller
//! reads them: every container, init containers included, that terminated; `In` matches an
//! exit code in the set, `NotIn` one outside it, exit code 0 never matching `NotIn`).

use serde_json::Value;

/// What a failed pod does to its Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The Job fails at once; the message says which rule matched.
    FailJob(String),
    /// The failure is not counted towards `backoffLimit`.
    Ignore,
    /// Counted towards `backoffLimit` (also when no rule matches, or there is no policy).
    Count,
}

/// The verdict of `job`'s policy on its failed `pod`.
pub(crate) fn verdict(job: &Value, pod: &Value) -> Verdict {
    let rules = job["spec"]["podFailurePolicy"]["rules"].as_array();
    for (index, rule) in rules.into_iter().flatten().enumerate() {
        let matched = if rule["onExitCodes"].is_object() {
            exit_code_match(&rule["onExitCodes"], pod)
        } else {
            conditions_match(&rule["onPodConditions"], pod).then(String::new)
        };
        let Some(container) = matched else {
            continue;
        };
        return match rule["action"].as_str() {
            Some("FailJob") => Verdict::FailJob(if container.is_empty() {
                format!(
                    "Pod {}/{} has condition matching FailJob rule at index {index}",
                    pod["metadata"]["namespace"].as_str().unwrap_or_default(),
                    pod["metadata"]["name"].as_str().unwrap_or_default(),
                )
            } else {
                format!(
                    "Container {container} for pod {}/{} failed with exit code matching FailJob \
                     rule at index {index}",
                    pod["metadata"]["namespace"].as_str().unwrap_or_default(),
                    pod["metadata"]["name"].as_str().unwrap_or_default(),
                )
            }),
            Some("Ignore") => Verdict::Ignore,
            _ => Verdict::Count,
        };
    }
    Verdict::Count
}

/// The first terminated container whose exit code matches `requirement`.
fn exit_code_match(requirement: &Value, pod: &Value) -> Option<String> {
    let only = requirement["containerName"].as_str();
    let values: Vec<i64> = requirement["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    let not_in = requirement["operator"] == "NotIn";
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .flat_map(|key| pod["status"][key].as_array().into_iter().flatten())
        .filter(|status| only.is_none_or(|name| status["name"] == name))
        .find_map(|status| {
            let code = status["state"]["terminated"]["exitCode"].as_i64()?;
            let matches = if not_in {
                code != 0 && !values.contains(&code)
            } else {
                values.contains(&code)
            };
            matches.then(|| status["name"].as_str().unwrap_or_default().to_owned())
        })
}

fn conditions_match(patterns: &Value, pod: &Value) -> bool {
    patterns.as_array().into_iter().flatten().any(|pattern| {
        let status = pattern["status"].as_str().unwrap_or("True");
        pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == pattern["type"] && c["status"] == status)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job() -> Value {
        json!({"spec": {"podFailurePolicy": {"rules": [
            {"action": "Count", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [0]}},
        ]}}})
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let evicted = json!({"metadata": {"name": "p", "namespace": "ci"}, "status": {
            "conditions": [{"type": "DisruptionTarget", "status": "True"}],
            "containerStatuses": [{"name": "agent", "state": {"terminated": {"exitCode": 137}}}]}});
        assert_eq!(verdict(&job(), &evicted), Verdict::Count);
        let failed = json!({"metadata": {"name": "p", "namespace": "ci"}, "status": {
            "initContainerStatuses": [{"name": "checkout", "state": {"terminated": {"exitCode": 0}}}],
            "containerStatuses": [{"name": "agent", "state": {"terminated": {"exitCode": 1}}}]}});
        assert!(matches!(verdict(&job(), &failed), Verdict::FailJob(m) if m.contains("agent")));
        let nothing_ran = json!({"metadata": {"name": "p"}, "status": {"phase": "Failed"}});
        assert_eq!(verdict(&job(), &nothing_ran), Verdict::Count);
        assert_eq!(
            verdict(&json!({"spec": {}}), &failed),
            Verdict::Count,
            "no policy"
        );
    }
}
