//! The `copy-agent` init container of Kubernetes-exec pods, and what the other containers run
//! from the workspace it prepares.
//!
//! As agent-stack-k8s' workspace setup: it makes `/workspace/build`, `/workspace/plugins` and
//! `/workspace/sockets` writable by any user, copies `buildkite-agent` (and `tini-static`,
//! unless `kubernetes.tini` is off) from the agent image into the workspace, and, when the
//! pod runs as a non-root user, runs as root to give that user the workspace.

use k8s_openapi::api::core::v1::Container;

use crate::config::KubernetesConfig;
use crate::render::workspace;

/// The name of the init container that prepares the workspace.
pub const COPY_AGENT_CONTAINER: &str = "copy-agent";

/// Where the agent binary lands in the workspace.
pub(crate) const AGENT_IN_WORKSPACE: &str = "/workspace/buildkite-agent";
/// Where the agent image keeps it.
const AGENT_IN_IMAGE: &str = "/usr/local/bin/buildkite-agent";
/// Where `tini-static` lands in the workspace.
pub(crate) const TINI_IN_WORKSPACE: &str = "/workspace/tini-static";
/// Where the agent images keep `tini-static`: Alpine's, then Debian's and Ubuntu's.
const TINI_IN_IMAGE: [&str; 2] = ["/sbin/tini-static", "/usr/bin/tini-static"];

/// The directory of the sockets a container's agent process opens, one per container so
/// that two containers never share a socket path, as in agent-stack-k8s.
pub(crate) fn sockets_path(container: &str) -> String {
    format!("/workspace/sockets/{container}")
}

/// The `copy-agent` container, before the pod's user is known (see `pod_user`).
pub(crate) fn container(config: &KubernetesConfig) -> Container {
    Container {
        name: COPY_AGENT_CONTAINER.to_owned(),
        image: Some(config.agent_image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        command: Some(vec!["/bin/sh".to_owned(), "-ec".to_owned()]),
        args: Some(vec![script(config.tini)]),
        volume_mounts: Some(vec![workspace::mount(config)]),
        ..Container::default()
    }
}

fn script(tini: bool) -> String {
    let dirs = ["build", "plugins", "sockets"].map(|d| format!("/workspace/{d}"));
    let dirs = dirs.join(" ");
    let mut lines = vec![
        format!("mkdir -p {dirs}"),
        format!("chmod 777 {dirs}"),
        format!("cp {AGENT_IN_IMAGE} {AGENT_IN_WORKSPACE}"),
    ];
    if tini {
        let [alpine, debian] = TINI_IN_IMAGE;
        lines.push(format!(
            "if [ -f {alpine} ]; then cp {alpine} {TINI_IN_WORKSPACE}; \
             elif [ -f {debian} ]; then cp {debian} {TINI_IN_WORKSPACE}; \
             else echo 'jobify: the agent image has no tini-static ({alpine} or {debian}); \
             use an agent image with it, or set kubernetes.tini = false' >&2; exit 1; fi"
        ));
    }
    lines.join("\n")
}

/// The command (and arguments) of a container that runs `buildkite-agent
/// kubernetes-bootstrap` from the workspace: under `tini-static` as PID 1 when
/// `kubernetes.tini` is on, so that the step's processes are reaped and signalled as
/// agent-stack-k8s' are.
pub(crate) fn bootstrap(config: &KubernetesConfig) -> (Vec<String>, Option<Vec<String>>) {
    let bootstrap = [AGENT_IN_WORKSPACE, "kubernetes-bootstrap"].map(str::to_owned);
    if config.tini {
        let args = std::iter::once("--".to_owned()).chain(bootstrap).collect();
        (vec![TINI_IN_WORKSPACE.to_owned()], Some(args))
    } else {
        (bootstrap.to_vec(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_prepared_for_any_user_and_tini_is_copied() {
        let script = script(true);
        assert!(script.starts_with(
            "mkdir -p /workspace/build /workspace/plugins /workspace/sockets\n\
             chmod 777 /workspace/build /workspace/plugins /workspace/sockets\n\
             cp /usr/local/bin/buildkite-agent /workspace/buildkite-agent\n"
        ));
        assert!(script.contains("cp /sbin/tini-static /workspace/tini-static"));
        assert!(script.contains("cp /usr/bin/tini-static /workspace/tini-static"));
        assert!(script.contains("set kubernetes.tini = false' >&2; exit 1"));
        assert!(!self::script(false).contains("tini"));
    }

    #[test]
    fn the_bootstrap_runs_under_tini_unless_it_is_off() {
        let on = KubernetesConfig::default();
        assert!(on.tini, "on by default, as in agent-stack-k8s");
        assert_eq!(
            bootstrap(&on),
            (
                vec!["/workspace/tini-static".to_owned()],
                Some(
                    ["--", "/workspace/buildkite-agent", "kubernetes-bootstrap"]
                        .map(str::to_owned)
                        .to_vec()
                )
            )
        );
        let off = KubernetesConfig {
            tini: false,
            ..KubernetesConfig::default()
        };
        assert_eq!(
            bootstrap(&off),
            (
                ["/workspace/buildkite-agent", "kubernetes-bootstrap"]
                    .map(str::to_owned)
                    .to_vec(),
                None
            )
        );
    }
}
