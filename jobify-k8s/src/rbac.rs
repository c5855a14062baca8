//! The permissions jobify needs, in its own namespace (docs/kubernetes.md, "RBAC";
//! `examples/deploy/rbac.yaml` grants exactly these, and a test keeps the three in step).

/// Verbs on one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// API group (`""` is the core group).
    pub api_group: &'static str,
    /// Resource (plural).
    pub resource: &'static str,
    /// Verbs.
    pub verbs: &'static [&'static str],
}

/// Everything jobify calls. Nothing cluster-scoped.
pub const PERMISSIONS: &[Permission] = &[
    Permission {
        api_group: "batch",
        resource: "jobs",
        verbs: &["create", "list", "watch", "patch", "delete"],
    },
    Permission {
        api_group: "",
        resource: "pods",
        verbs: &["list", "watch"],
    },
    Permission {
        api_group: "",
        resource: "events",
        verbs: &["list"],
    },
    Permission {
        api_group: "",
        resource: "secrets",
        verbs: &["create", "patch", "delete", "list"],
    },
    Permission {
        api_group: "",
        resource: "podtemplates",
        verbs: &["get"],
    },
    Permission {
        api_group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
    },
];
