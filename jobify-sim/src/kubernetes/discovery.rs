//! Minimal discovery documents (`/version`, `/api`, `/apis`, resource lists) and the
//! namespaces that exist implicitly.

use serde_json::{Value, json};

use super::meta;
use super::resource::Resource;

/// A discovery document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Doc {
    /// `/version`
    Version,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/api/v1` (`""`) or `/apis/{group}/v1`.
    Resources(&'static str),
}

/// The JSON of `doc`; `host` is the address clients reached us at.
pub(crate) fn document(doc: Doc, host: &str) -> Value {
    match doc {
        Doc::Version => json!({
            "major": "1",
            "minor": "33",
            "emulationMajor": "1",
            "emulationMinor": "33",
            "minCompatibilityMajor": "1",
            "minCompatibilityMinor": "32",
            "gitVersion": "v1.33.0",
            "gitCommit": "60a317eadfcb839692a68eab88b2096f4d708f4f",
            "gitTreeState": "clean",
            "buildDate": "2025-04-23T13:00:00Z",
            "goVersion": "go1.24.2",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
        Doc::CoreVersions => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        }),
        Doc::Groups => {
            let groups: Vec<Value> = ["batch", "coordination.k8s.io"]
                .into_iter()
                .map(|g| {
                    let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                    json!({"name": g, "versions": [gv], "preferredVersion": gv})
                })
                .collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        }
        Doc::Resources(group) => {
            let resources: Vec<Value> = Resource::ALL
                .into_iter()
                .filter(|r| r.group() == group)
                .flat_map(|r| {
                    let verbs = [
                        "create", "delete", "get", "list", "patch", "update", "watch",
                    ];
                    let main = json!({
                        "name": r.plural(),
                        "singularName": r.kind().to_lowercase(),
                        "namespaced": true,
                        "kind": r.kind(),
                        "verbs": verbs,
                    });
                    let status = r.has_status().then(|| {
                        json!({
                            "name": format!("{}/status", r.plural()),
                            "singularName": "",
                            "namespaced": true,
                            "kind": r.kind(),
                            "verbs": ["get", "patch", "update"],
                        })
                    });
                    std::iter::once(main).chain(status)
                })
                .collect();
            let group_version = if group.is_empty() {
                "v1".to_string()
            } else {
                format!("{group}/v1")
            };
            json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": resources,
            })
        }
    }
}

/// Every namespace exists and is `Active`.
pub(crate) fn namespace(name: &str) -> Value {
    json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/metadata.name": name},
            "resourceVersion": "1",
            "uid": meta::stable_hex(name, 32),
            "creationTimestamp": meta::format_time(jiff::Timestamp::UNIX_EPOCH),
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}
