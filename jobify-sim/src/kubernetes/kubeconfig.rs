//! A kubeconfig pointing at the simulator.

/// The kubeconfig YAML for a cluster served at `url`.
pub(crate) fn render(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: jobify-sim
  cluster:
    server: {url}
users:
- name: jobify-sim
  user: {{}}
contexts:
- name: jobify-sim
  context:
    cluster: jobify-sim
    user: jobify-sim
    namespace: default
current-context: jobify-sim
preferences: {{}}
"
    )
}
