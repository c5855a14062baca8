//! Variables of the `agent` container that come from controller settings rather than from the
//! job: the redacted-variable patterns (`kubernetes.additional_redacted_vars`) and the agent's
//! cancel and signal grace periods, derived from the pod's `terminationGracePeriodSeconds` as
//! agent-stack-k8s derives them (v0.33.1, `scheduler.go` `Build`).

use k8s_openapi::api::core::v1::{EnvVar, PodSpec};

use crate::config::KubernetesConfig;
use crate::render::pod::AGENT_CONTAINER;

/// The agent's variable of name patterns whose values it redacts from job logs.
pub const REDACTED_VARS_ENV: &str = "BUILDKITE_REDACTED_VARS";
/// How long the agent gives a cancelled job in all, in seconds.
pub const CANCEL_GRACE_PERIOD_ENV: &str = "BUILDKITE_CANCEL_GRACE_PERIOD";
/// How long the agent waits after interrupting a cancelled job before it terminates it.
pub const SIGNAL_GRACE_PERIOD_ENV: &str = "BUILDKITE_SIGNAL_GRACE_PERIOD_SECONDS";

/// buildkite-agent's default `--redacted-vars` (v3.136, `clicommand/global.go`), which a
/// `BUILDKITE_REDACTED_VARS` replaces rather than extends; agent-stack-k8s starts from the
/// same list, that of the agent it is built with.
pub const AGENT_DEFAULT_REDACTED_VARS: &[&str] = &[
    "*_PASSWORD",
    "*_SECRET",
    "*_TOKEN",
    "*_PRIVATE_KEY",
    "*_SSH_KEY",
    "*_ACCESS_KEY",
    "*_SECRET_KEY",
    "*_CONNECTION_STRING",
    "*_API_KEY",
];

/// Seconds of the pod's grace the agent keeps, after terminating the job, to upload the rest of
/// its log and finish the job in Buildkite.
const FINISH_MARGIN_SECONDS: i64 = 10;

/// `BUILDKITE_REDACTED_VARS` for the agent container, when the configuration adds patterns:
/// the agent's defaults, then the added ones. Without added patterns the variable is left
/// unset, so the agent in the image uses its own (possibly newer) defaults.
pub(crate) fn redacted_vars(config: &KubernetesConfig) -> Option<EnvVar> {
    if config.additional_redacted_vars.is_empty() {
        return None;
    }
    let patterns: Vec<&str> = AGENT_DEFAULT_REDACTED_VARS
        .iter()
        .copied()
        .chain(config.additional_redacted_vars.iter().map(String::as_str))
        .collect();
    Some(EnvVar {
        name: REDACTED_VARS_ENV.to_owned(),
        value: Some(patterns.join(",")),
        value_from: None,
    })
}

/// The agent's (cancel, signal) grace periods, in seconds, for a pod whose
/// `terminationGracePeriodSeconds` is `grace`: the job is interrupted at once, terminated
/// [`FINISH_MARGIN_SECONDS`] before the kubelet kills the pod, and the agent knows the whole
/// grace. The agent needs the cancel grace longer than the signal grace, so both have a floor.
pub fn grace_periods(grace: i64) -> (i64, i64) {
    let cancel = grace.max(1);
    let signal = (grace - FINISH_MARGIN_SECONDS).max(0);
    (cancel, signal)
}

/// Gives the `agent` container the grace periods that fit the pod's final
/// `terminationGracePeriodSeconds` (after every patch), unless the container already sets
/// them (from `kubernetes.env` or a patch), which wins.
pub(crate) fn add_grace_periods(spec: &mut PodSpec) {
    let Some(grace) = spec.termination_grace_period_seconds else {
        return;
    };
    let Some(agent) = spec
        .containers
        .iter_mut()
        .find(|c| c.name == AGENT_CONTAINER)
    else {
        return;
    };
    let (cancel, signal) = grace_periods(grace);
    let env = agent.env.get_or_insert_with(Vec::new);
    for (name, seconds) in [
        (CANCEL_GRACE_PERIOD_ENV, cancel),
        (SIGNAL_GRACE_PERIOD_ENV, signal),
    ] {
        if !env.iter().any(|var| var.name == name) {
            env.push(EnvVar {
                name: name.to_owned(),
                value: Some(seconds.to_string()),
                value_from: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_terminates_the_job_ten_seconds_before_the_pod_is_killed() {
        assert_eq!(grace_periods(60), (60, 50));
        assert_eq!(grace_periods(300), (300, 290));
    }

    #[test]
    fn short_graces_keep_the_cancel_grace_above_the_signal_grace() {
        assert_eq!(grace_periods(10), (10, 0));
        assert_eq!(grace_periods(5), (5, 0));
        assert_eq!(grace_periods(0), (1, 0));
    }

    #[test]
    fn without_added_patterns_the_agent_keeps_its_own_defaults() {
        assert_eq!(redacted_vars(&KubernetesConfig::default()), None);
    }

    #[test]
    fn added_patterns_follow_the_agent_defaults() {
        let config = KubernetesConfig {
            additional_redacted_vars: vec!["MY_VAR".to_owned(), "*_PAT".to_owned()],
            ..KubernetesConfig::default()
        };
        let value = redacted_vars(&config).and_then(|var| var.value);
        assert_eq!(
            value.as_deref(),
            Some(
                "*_PASSWORD,*_SECRET,*_TOKEN,*_PRIVATE_KEY,*_SSH_KEY,*_ACCESS_KEY,*_SECRET_KEY,\
                 *_CONNECTION_STRING,*_API_KEY,MY_VAR,*_PAT"
            )
        );
    }
}
