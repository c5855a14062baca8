//! The resources the simulator serves and how the API names them.

use std::fmt;

/// A namespaced resource type served by the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Resource {
    /// `batch/v1` Jobs.
    Jobs,
    /// `v1` Pods.
    Pods,
    /// `v1` Events.
    Events,
    /// `coordination.k8s.io/v1` Leases.
    Leases,
    /// `v1` Secrets.
    Secrets,
    /// `v1` PodTemplates.
    PodTemplates,
}

impl Resource {
    /// Every served resource.
    pub(crate) const ALL: [Resource; 6] = [
        Resource::Jobs,
        Resource::Pods,
        Resource::Events,
        Resource::Leases,
        Resource::Secrets,
        Resource::PodTemplates,
    ];

    /// The API group (`""` for core).
    pub(crate) fn group(self) -> &'static str {
        match self {
            Resource::Jobs => "batch",
            Resource::Pods | Resource::Events | Resource::Secrets | Resource::PodTemplates => "",
            Resource::Leases => "coordination.k8s.io",
        }
    }

    /// The `apiVersion` of the resource's objects.
    pub(crate) fn api_version(self) -> &'static str {
        match self {
            Resource::Jobs => "batch/v1",
            Resource::Pods | Resource::Events | Resource::Secrets | Resource::PodTemplates => "v1",
            Resource::Leases => "coordination.k8s.io/v1",
        }
    }

    /// The object kind.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Resource::Jobs => "Job",
            Resource::Pods => "Pod",
            Resource::Events => "Event",
            Resource::Leases => "Lease",
            Resource::Secrets => "Secret",
            Resource::PodTemplates => "PodTemplate",
        }
    }

    /// The plural resource name used in paths.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            Resource::Jobs => "jobs",
            Resource::Pods => "pods",
            Resource::Events => "events",
            Resource::Leases => "leases",
            Resource::Secrets => "secrets",
            Resource::PodTemplates => "podtemplates",
        }
    }

    /// The resource from its group and plural name, as they appear in a request path.
    pub(crate) fn from_path(group: &str, plural: &str) -> Option<Resource> {
        Resource::ALL
            .into_iter()
            .find(|r| r.group() == group && r.plural() == plural)
    }

    /// `jobs.batch`, `pods`: how "not found"/"already exists" messages name the resource.
    pub(crate) fn qualified_plural(self) -> String {
        qualify(self.plural(), self.group())
    }

    /// `Job.batch`, `Pod`: how "is invalid" messages name the kind.
    pub(crate) fn qualified_kind(self) -> String {
        qualify(self.kind(), self.group())
    }

    /// Whether the object has a `status` owned by a controller (a status subresource).
    pub(crate) fn has_status(self) -> bool {
        matches!(self, Resource::Jobs | Resource::Pods)
    }
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.qualified_plural())
    }
}
