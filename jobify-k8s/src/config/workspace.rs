//! Checks of `kubernetes.workspace_volume` and `kubernetes.workspace_mount_sub_path_expr`,
//! operator configuration that every Kubernetes-exec pod gets: a volume Kubernetes would
//! refuse would fail every such Job. The `[guard]` does not apply (it checks what pipelines
//! bring, and the operator chose this), but its shape is checked here.

use jobify_core::config::ConfigProblem;

use super::KubernetesConfig;
use super::agent_config::check_volume;
use crate::render::{WORKSPACE_VOLUME, sub_path_expr_problem};

/// Reports a workspace volume without a valid name or with other than one volume source,
/// and a `subPathExpr` Kubernetes refuses.
pub(super) fn check(config: &KubernetesConfig, errors: &mut Vec<ConfigProblem>) {
    let workspace = config
        .workspace_volume
        .as_ref()
        .map_or(WORKSPACE_VOLUME, |v| v.name.as_str());
    for (key, volume) in config.agent_config.volumes() {
        if volume.name == workspace {
            errors.push(ConfigProblem::new(
                format!("kubernetes.agent_config.{key}.name"),
                format!(
                    "`{workspace}` is the name of the workspace volume; give this volume \
                     another name"
                ),
            ));
        }
    }
    if let Some(volume) = &config.workspace_volume {
        check_volume("kubernetes.workspace_volume", volume, errors);
    }
    if let Some(expr) = &config.workspace_mount_sub_path_expr
        && let Some(problem) = sub_path_expr_problem(expr)
    {
        errors.push(ConfigProblem::new(
            "kubernetes.workspace_mount_sub_path_expr",
            problem,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml_text: &str) -> Vec<String> {
        let config: KubernetesConfig = toml::from_str(toml_text).expect("parses");
        let mut errors = Vec::new();
        check(&config, &mut errors);
        errors.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn an_ephemeral_claim_is_a_workspace() {
        let errors = problems(
            "workspace_mount_sub_path_expr = \"$(POD_NAME)\"\n\
             [workspace_volume]\nname = \"workspace\"\n\
             [workspace_volume.ephemeral.volumeClaimTemplate.spec]\n\
             accessModes = [\"ReadWriteOnce\"]\nresources = { requests = { storage = \"10Gi\" } }\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn a_volume_without_one_source_or_a_good_name_is_reported() {
        let errors = problems("workspace_volume = { name = \"Work space\" }\n");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("kubernetes.workspace_volume.name"),
            "{errors:?}"
        );
        assert!(errors[1].contains("found: none"), "{errors:?}");
        let errors = problems(
            "workspace_volume = { name = \"w\", emptyDir = {}, hostPath = { path = \"/x\" } }\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("found: emptyDir, hostPath"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_misspelt_volume_field_is_refused() {
        let err = toml::from_str::<KubernetesConfig>(
            "workspace_volume = { name = \"w\", emptydir = {} }\n",
        )
        .expect_err("a typo");
        assert!(err.to_string().contains("emptydir"), "{err}");
    }

    #[test]
    fn an_absolute_sub_path_expr_is_reported() {
        let errors = problems("workspace_mount_sub_path_expr = \"/$(POD_NAME)\"\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("absolute"), "{errors:?}");
    }
}
