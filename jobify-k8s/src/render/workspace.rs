//! The pod's shared workspace, mounted at `/workspace`: an emptyDir named `workspace` unless
//! `kubernetes.workspace_volume` names another volume (agent-stack-k8s' `workspace-volume`,
//! e.g. an ephemeral PersistentVolumeClaim), every mount of it with
//! `kubernetes.workspace_mount_sub_path_expr` as its `subPathExpr`
//! (`workspace-mount-sub-path-expr`).

use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Volume, VolumeMount};

use crate::config::KubernetesConfig;

/// Name of the default workspace volume.
pub const WORKSPACE_VOLUME: &str = "workspace";
/// Where the workspace is mounted in every container.
pub const WORKSPACE_PATH: &str = "/workspace";

/// The workspace volume of the pod: the configured one, else an emptyDir.
pub(crate) fn volume(config: &KubernetesConfig) -> Volume {
    config.workspace_volume.clone().unwrap_or_else(|| Volume {
        name: WORKSPACE_VOLUME.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    })
}

/// The mount of the workspace volume at [`WORKSPACE_PATH`], as every container jobify gives the
/// workspace has it.
pub(crate) fn mount(config: &KubernetesConfig) -> VolumeMount {
    VolumeMount {
        name: config
            .workspace_volume
            .as_ref()
            .map_or_else(|| WORKSPACE_VOLUME.to_owned(), |v| v.name.clone()),
        mount_path: WORKSPACE_PATH.to_owned(),
        sub_path_expr: config.workspace_mount_sub_path_expr.clone(),
        ..VolumeMount::default()
    }
}

/// Why `expr` cannot be the `subPathExpr` of the workspace mounts, if it cannot: Kubernetes
/// refuses an empty, absolute or `..` path, and would refuse every Job.
pub fn sub_path_expr_problem(expr: &str) -> Option<String> {
    if expr.trim().is_empty() {
        Some("is empty; leave it out to mount the whole volume".to_owned())
    } else if expr.starts_with('/') {
        Some(format!(
            "`{expr}` is an absolute path; a subPathExpr is relative to the volume's root, \
             e.g. \"$(POD_NAME)\""
        ))
    } else if expr.split('/').any(|part| part == "..") {
        Some(format!(
            "`{expr}` contains `..`, which Kubernetes refuses in a subPathExpr"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_workspace_is_an_empty_dir_mounted_whole() {
        let config = KubernetesConfig::default();
        assert!(volume(&config).empty_dir.is_some());
        let mount = mount(&config);
        assert_eq!(
            (mount.name.as_str(), mount.mount_path.as_str()),
            ("workspace", "/workspace")
        );
        assert_eq!(mount.sub_path_expr, None);
    }

    #[test]
    fn a_configured_volume_is_mounted_by_its_own_name() {
        let config = KubernetesConfig {
            workspace_volume: Some(Volume {
                name: "build".to_owned(),
                ..Volume::default()
            }),
            workspace_mount_sub_path_expr: Some("$(POD_NAME)".to_owned()),
            ..KubernetesConfig::default()
        };
        let mount = mount(&config);
        assert_eq!(mount.name, "build");
        assert_eq!(mount.sub_path_expr.as_deref(), Some("$(POD_NAME)"));
    }

    #[test]
    fn sub_path_exprs_kubernetes_refuses_are_named() {
        assert_eq!(sub_path_expr_problem("$(POD_NAME)"), None);
        assert_eq!(sub_path_expr_problem("builds/$(POD_NAME)"), None);
        assert_eq!(sub_path_expr_problem("a..b"), None);
        for bad in ["", " ", "/abs", "../up", "a/../b"] {
            assert!(sub_path_expr_problem(bad).is_some(), "{bad:?}");
        }
    }
}
