//! Why a job could not be rendered, in the pipeline's terms.

use crate::render::plugin_keys::SUPPORTED_KEYS;

/// What was wrong with a job's pod (usually its `kubernetes` plugin configuration). The
/// message names the plugin key and field, so the scheduler can reject the job with it and the
/// pipeline's authors know what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The plugin uses a key jobify does not support.
    #[error(
        "the kubernetes plugin key `{key}` is not supported by jobify ({hint}); supported keys: {}",
        SUPPORTED_KEYS.join(", ")
    )]
    UnsupportedKey {
        /// The key, e.g. `podTemplate` or `checkout.cloneFlags`.
        key: String,
        /// What to do instead.
        hint: &'static str,
    },
    /// The job names a PodTemplate (`podTemplate`) that the renderer was not given: the
    /// caller must fetch it and use `render_job_with`.
    #[error(
        "podTemplate `{name}` was not fetched before rendering; jobify renders such jobs with \
         the PodTemplate from its namespace (this is a bug in the caller)"
    )]
    PodTemplateNotGiven {
        /// The PodTemplate's name.
        name: String,
    },
    /// The plugin's configuration could not be read (`BUILDKITE_PLUGINS` malformed).
    #[error("{0}")]
    InvalidPlugin(String),
    /// A field does not have the shape Kubernetes expects.
    #[error("{path} is not valid: {message}")]
    InvalidField {
        /// Where, e.g. `podSpec.containers[0].resources`.
        path: String,
        /// What was expected.
        message: String,
    },
    /// A field Kubernetes does not know (a typo would otherwise be dropped silently).
    #[error("{path} is not a field Kubernetes knows; check its spelling")]
    UnknownField {
        /// Where, e.g. `podSpec.containers[0].imagePullPolicyy`.
        path: String,
    },
    /// A container has no image.
    #[error("{path} has no image")]
    MissingImage {
        /// Which container, e.g. `podSpec.containers[1]`.
        path: String,
    },
    /// Two containers have the same name.
    #[error("the pod has two containers named `{name}`; container names must be unique")]
    DuplicateContainer {
        /// The repeated name.
        name: String,
    },
    /// A volume mount refers to a volume the pod does not define.
    #[error("{path} mounts volume `{volume}`, which the pod does not define under volumes")]
    MissingVolume {
        /// Which mount.
        path: String,
        /// The volume it names.
        volume: String,
    },
    /// The scheduler asked for a resource class the configuration does not define.
    #[error("resource class `{name}` is not defined under [kubernetes.resource_classes]")]
    UnknownResourceClass {
        /// The class.
        name: String,
    },
    /// The step's `resource_class` agent tag names a class the configuration does not define.
    #[error(
        "the step's agent tag resource_class={name} names no resource class of this cluster \
         (defined under [kubernetes.resource_classes]: {}); use one of those",
        if defined.is_empty() { "none".to_owned() } else { defined.join(", ") }
    )]
    UnknownResourceClassTag {
        /// The class the tag names.
        name: String,
        /// The classes defined.
        defined: Vec<String>,
    },
    /// The plugin's `metadata` tries to set a label or annotation jobify owns.
    #[error("metadata.{kind}.{key} is reserved for jobify; use a key outside jobify.dev/")]
    ReservedMetadata {
        /// `labels` or `annotations`.
        kind: &'static str,
        /// The key.
        key: String,
    },
    /// A label in the plugin's `metadata` is not a valid Kubernetes label.
    #[error("metadata.labels.{key} has value `{value}`, which is not a valid label value")]
    InvalidLabel {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}
