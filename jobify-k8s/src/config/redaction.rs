//! Checks of `kubernetes.additional_redacted_vars`: each entry must be one name pattern the
//! agent can read from the comma-separated `BUILDKITE_REDACTED_VARS`.

use jobify_core::config::ConfigProblem;

use super::KubernetesConfig;
use crate::render::REDACTED_VARS_ENV;

/// Reports entries that are empty or would not survive the comma-joined variable, and a
/// `kubernetes.env` that sets the variable as well (one of the two would silently lose).
pub(super) fn check(config: &KubernetesConfig, errors: &mut Vec<ConfigProblem>) {
    for (index, pattern) in config.additional_redacted_vars.iter().enumerate() {
        let key = format!("kubernetes.additional_redacted_vars[{index}]");
        if pattern.trim().is_empty() {
            errors.push(ConfigProblem::new(
                key,
                "is empty; write a variable name or a pattern such as \"*_CREDENTIALS\"",
            ));
        } else if pattern.contains(',') || pattern.chars().any(char::is_whitespace) {
            errors.push(ConfigProblem::new(
                key,
                format!(
                    "`{pattern}` is not one name pattern: the agent reads {REDACTED_VARS_ENV} \
                     as a comma-separated list; give each name or pattern its own entry, \
                     without spaces"
                ),
            ));
        }
    }
    if !config.additional_redacted_vars.is_empty() && config.env.contains_key(REDACTED_VARS_ENV) {
        errors.push(ConfigProblem::new(
            format!("kubernetes.env.{REDACTED_VARS_ENV}"),
            format!(
                "is set as well as kubernetes.additional_redacted_vars, which makes \
                 {REDACTED_VARS_ENV} from the agent's defaults and those names; keep one: \
                 the whole list here, or the extra names there"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(vars: &[&str], env: &[(&str, &str)]) -> Vec<String> {
        let config = KubernetesConfig {
            additional_redacted_vars: vars.iter().map(|v| (*v).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..KubernetesConfig::default()
        };
        let mut errors = Vec::new();
        check(&config, &mut errors);
        errors.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn names_and_patterns_are_accepted() {
        assert!(problems(&["MY_SECRET_THING", "*_CREDENTIALS", "DB_*"], &[]).is_empty());
    }

    #[test]
    fn an_entry_that_is_not_one_pattern_is_reported_where_it_is() {
        let errors = problems(&["OK", "", "A,B", "A B"], &[]);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains("additional_redacted_vars[1]"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("additional_redacted_vars[2]"),
            "{errors:?}"
        );
        assert!(errors[1].contains("its own entry"), "{errors:?}");
        assert!(
            errors[2].contains("additional_redacted_vars[3]"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_variable_set_in_env_too_is_reported() {
        let errors = problems(&["X"], &[(REDACTED_VARS_ENV, "*_TOKEN")]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("kubernetes.env.BUILDKITE_REDACTED_VARS"),
            "{errors:?}"
        );
        assert!(problems(&[], &[(REDACTED_VARS_ENV, "*_TOKEN")]).is_empty());
    }
}
