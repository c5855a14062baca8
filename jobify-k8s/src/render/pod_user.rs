//! Non-root pods: what the pod's user needs before a non-root checkout and command can work,
//! as agent-stack-k8s prepares it.
//!
//! Read from the pod's final `securityContext`, after every patch (agent-stack-k8s reads it
//! before its patches, its issue #326). When it sets a `runAsUser` other than 0:
//!
//! - `copy-agent` runs as root and ends with `chown -R <user>[:<group>] /workspace`;
//! - `checkout` runs as root to add a user `buildkite-agent` of that uid (and a group
//!   `buildkite-agent` of that gid, unless the group is root), whose home is `/workspace`,
//!   then runs its command as that user with `su`, so git finds a user, a home and a
//!   writable global configuration.
//!
//! A container that a patch gave a `securityContext` of its own is left as it is: only root
//! may give files away or add users, and that container was told to run otherwise.

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext};

use crate::render::command::quote_words;
use crate::render::copy_agent::COPY_AGENT_CONTAINER;
use crate::render::pod::CHECKOUT_CONTAINER;
use crate::render::workspace::WORKSPACE_PATH;

/// The user the checkout runs as in a non-root pod.
pub const CHECKOUT_USER: &str = "buildkite-agent";

/// The pod's user and group, when the user is not root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PodUser {
    uid: i64,
    /// `0` when unset or root.
    gid: i64,
}

impl PodUser {
    fn of(spec: &PodSpec) -> Option<PodUser> {
        let security = spec.security_context.as_ref()?;
        let uid = security.run_as_user.filter(|uid| *uid != 0)?;
        Some(PodUser {
            uid,
            gid: security.run_as_group.unwrap_or(0),
        })
    }

    /// `uid[:gid]`, as `chown` takes it.
    fn owner(self) -> String {
        if self.gid == 0 {
            self.uid.to_string()
        } else {
            format!("{}:{}", self.uid, self.gid)
        }
    }

    /// The group the checkout user gets: its own for a non-root gid, else `root`.
    fn group_name(self) -> &'static str {
        if self.gid == 0 { "root" } else { CHECKOUT_USER }
    }

    /// Adds the checkout user (and group) with BusyBox' `adduser` (Alpine) or shadow's
    /// `useradd` (Debian, Ubuntu, RHEL), failing with a message when the image has neither.
    fn create_user_script(self) -> String {
        let PodUser { uid, gid } = self;
        let group = self.group_name();
        let own_group = gid != 0;
        let mut lines = vec![
            "if command -v adduser >/dev/null 2>&1 && adduser --help 2>&1 | grep -q BusyBox; then"
                .to_owned(),
        ];
        if own_group {
            lines.push(format!("  addgroup -g {gid} {group} 2>/dev/null || true"));
        }
        lines.push(format!(
            "  adduser -D -u {uid} -G {group} -h {WORKSPACE_PATH} {CHECKOUT_USER}"
        ));
        lines.push("elif command -v useradd >/dev/null 2>&1; then".to_owned());
        if own_group {
            lines.push(format!("  groupadd -g {gid} {group} 2>/dev/null || true"));
        }
        lines.push(format!(
            "  useradd -M -u {uid} -g {group} -d {WORKSPACE_PATH} -s /bin/sh {CHECKOUT_USER}"
        ));
        lines.push("else".to_owned());
        lines.push(format!(
            "  echo 'jobify: the checkout image has neither adduser nor useradd to add the \
             user {uid} the pod runs as; use an agent image with one' >&2; exit 1"
        ));
        lines.push("fi".to_owned());
        lines.join("\n")
    }
}

/// Prepares `spec` for its user (see the module documentation). Nothing for a root pod.
pub(crate) fn apply(spec: &mut PodSpec) {
    let Some(user) = PodUser::of(spec) else {
        return;
    };
    let unpatched = |name: &'static str| {
        move |c: &&mut Container| c.name == name && c.security_context.is_none()
    };
    if let Some(copy_agent) = spec
        .init_containers
        .iter_mut()
        .flatten()
        .find(unpatched(COPY_AGENT_CONTAINER))
    {
        if let Some(script) = copy_agent.args.as_mut().and_then(|args| args.last_mut()) {
            script.push_str(&format!("\nchown -R {} {WORKSPACE_PATH}", user.owner()));
        }
        copy_agent.security_context = Some(as_root());
    }
    if let Some(checkout) = spec
        .containers
        .iter_mut()
        .find(unpatched(CHECKOUT_CONTAINER))
    {
        check_out_as(checkout, user);
    }
}

/// Makes `checkout` add the user as root, then run what it ran as that user.
fn check_out_as(checkout: &mut Container, user: PodUser) {
    let command = checkout.command.take().unwrap_or_default();
    let args = checkout.args.take().unwrap_or_default();
    // What it ran, as one script: its own when it is a `/bin/sh -c` script already.
    let script = match (command.as_slice(), args.as_slice()) {
        ([shell, flag], [script]) if shell == "/bin/sh" && flag == "-c" => script.clone(),
        _ => {
            let words: Vec<String> = command.into_iter().chain(args).collect();
            format!("exec {}", quote_words(&words))
        }
    };
    let outer = [
        "set -eu".to_owned(),
        user.create_user_script(),
        // The script is `$1`, so `su` hands it to the user's shell as one word, unquoted.
        format!("exec su {CHECKOUT_USER} -c \"$1\""),
    ]
    .join("\n");
    checkout.command = Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]);
    checkout.args = Some(vec![outer, "jobify-checkout".to_owned(), script]);
    checkout.security_context = Some(as_root());
}

fn as_root() -> SecurityContext {
    SecurityContext {
        run_as_user: Some(0),
        run_as_group: Some(0),
        run_as_non_root: Some(false),
        ..SecurityContext::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSecurityContext;

    use super::*;
    use crate::config::KubernetesConfig;
    use crate::render::copy_agent;

    fn pod(user: Option<i64>, group: Option<i64>) -> PodSpec {
        PodSpec {
            security_context: Some(PodSecurityContext {
                run_as_user: user,
                run_as_group: group,
                ..PodSecurityContext::default()
            }),
            init_containers: Some(vec![copy_agent::container(&KubernetesConfig::default())]),
            containers: vec![Container {
                name: CHECKOUT_CONTAINER.to_owned(),
                command: Some(
                    ["/workspace/buildkite-agent", "kubernetes-bootstrap"]
                        .map(str::to_owned)
                        .to_vec(),
                ),
                ..Container::default()
            }],
            ..PodSpec::default()
        }
    }

    fn copy_agent(spec: &PodSpec) -> &Container {
        &spec.init_containers.as_ref().expect("init")[0]
    }

    fn script(container: &Container) -> &str {
        container.args.as_ref().expect("args")[0].as_str()
    }

    #[test]
    fn a_non_root_pod_gets_its_workspace_from_a_root_copy_agent() {
        let mut spec = pod(Some(1000), Some(2000));
        apply(&mut spec);
        let c = copy_agent(&spec);
        assert!(
            script(c).ends_with("\nchown -R 1000:2000 /workspace"),
            "{}",
            script(c)
        );
        assert_eq!(c.security_context, Some(as_root()));

        let mut user_only = pod(Some(1000), None);
        apply(&mut user_only);
        let c = copy_agent(&user_only);
        assert!(script(c).ends_with("\nchown -R 1000 /workspace"));
    }

    #[test]
    fn the_checkout_adds_the_pod_s_user_and_runs_as_it() {
        let mut spec = pod(Some(1000), Some(2000));
        apply(&mut spec);
        let checkout = &spec.containers[0];
        assert_eq!(checkout.security_context, Some(as_root()));
        assert_eq!(
            checkout.command.as_deref(),
            Some(&["/bin/sh".to_owned(), "-c".to_owned()][..])
        );
        let args = checkout.args.as_ref().expect("args");
        assert_eq!(args.len(), 3);
        let outer = &args[0];
        assert!(
            outer.contains("addgroup -g 2000 buildkite-agent"),
            "{outer}"
        );
        assert!(
            outer.contains("adduser -D -u 1000 -G buildkite-agent -h /workspace buildkite-agent"),
            "{outer}"
        );
        assert!(
            outer.contains("groupadd -g 2000 buildkite-agent"),
            "{outer}"
        );
        assert!(
            outer.contains(
                "useradd -M -u 1000 -g buildkite-agent -d /workspace -s /bin/sh buildkite-agent"
            ),
            "{outer}"
        );
        assert!(
            outer.ends_with("\nexec su buildkite-agent -c \"$1\""),
            "{outer}"
        );
        assert_eq!(
            args[2],
            "exec /workspace/buildkite-agent kubernetes-bootstrap"
        );
    }

    #[test]
    fn a_root_group_is_not_created_and_a_shell_script_is_run_as_it_is() {
        let mut spec = pod(Some(1000), None);
        spec.containers[0].command = Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]);
        spec.containers[0].args = Some(vec!["set -eu\ngit config --global x y".to_owned()]);
        apply(&mut spec);
        let args = spec.containers[0].args.as_ref().expect("args");
        assert!(!args[0].contains("addgroup") && !args[0].contains("groupadd"));
        assert!(
            args[0].contains("adduser -D -u 1000 -G root"),
            "{}",
            args[0]
        );
        assert_eq!(args[2], "set -eu\ngit config --global x y");
    }

    #[test]
    fn a_root_pod_and_patched_containers_are_left_as_they_are() {
        for (user, group) in [(None, None), (Some(0), Some(1000)), (None, Some(1000))] {
            let mut spec = pod(user, group);
            let before = spec.clone();
            apply(&mut spec);
            assert_eq!(spec, before, "{user:?}:{group:?}");
        }
        let mut patched = pod(Some(1000), None);
        let own = SecurityContext {
            run_as_user: Some(1000),
            ..SecurityContext::default()
        };
        patched.init_containers.as_mut().expect("init")[0].security_context = Some(own.clone());
        patched.containers[0].security_context = Some(own.clone());
        let before = patched.clone();
        apply(&mut patched);
        assert_eq!(patched, before);
    }
}
