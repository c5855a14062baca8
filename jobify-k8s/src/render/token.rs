//! A job with its own agent token (a Buildkite job acquisition token, `bkjat_...`): the
//! immutable Secret that holds it, and the checks that keep the pod on it.
//!
//! The token lives only in the Secret: the Job and its pod name the Secret, never the token,
//! so a rendered Job, a validation error or a log line cannot carry it. Only the `agent`
//! container reads it, and nothing in the pod may reach the cluster's shared agent token
//! (`kubernetes.agent_token_secret`): a job pod never holds a credential for other jobs.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PodSpec, Secret, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use secrecy::{ExposeSecret as _, SecretString};

use crate::render::{AGENT_CONTAINER, AGENT_TOKEN_ENV, RenderError};

/// The key of the token in a job's token Secret (agent-stack-k8s uses the same).
pub const AGENT_TOKEN_SECRET_KEY: &str = "BUILDKITE_AGENT_TOKEN";

/// What a job's token Secret's name ends with.
pub const TOKEN_SECRET_SUFFIX: &str = "-token";

/// The name of the Secret holding the agent token of the Job `job_name`: `<job name>-token`.
/// A Job name is a DNS-1123 label of at most 63 characters (the configuration checks
/// `job_name_prefix` for it), so this is a valid Secret name (a DNS subdomain of at most
/// 253).
pub fn token_secret_name(job_name: &str) -> String {
    format!("{job_name}{TOKEN_SECRET_SUFFIX}")
}

/// Where the agent container of a job with its own token reads it from.
pub(crate) fn token_selector(job_name: &str) -> SecretKeySelector {
    SecretKeySelector {
        name: token_secret_name(job_name),
        key: AGENT_TOKEN_SECRET_KEY.to_owned(),
        optional: None,
    }
}

/// The immutable Secret holding `token` for the Job `job` (rendered by
/// [`render_job_with_own_token`](crate::render::render_job_with_own_token)): named by
/// [`token_secret_name`], in the Job's namespace, with the Job's `jobify.dev/` labels (the
/// controller and the job uuid among them). It has no owner yet: the Job's uid is known only
/// once the Job is created, and the launcher then makes the Job its owner.
///
/// The one place the token is exposed. Never log or `Debug`-print the answer.
pub fn render_token_secret(job: &Job, token: &SecretString) -> Secret {
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let labels: BTreeMap<String, String> = job
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(key, _)| key.starts_with("jobify.dev/"))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(token_secret_name(name)),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            AGENT_TOKEN_SECRET_KEY.to_owned(),
            ByteString(token.expose_secret().as_bytes().to_vec()),
        )])),
        immutable: Some(true),
        type_: Some("Opaque".to_owned()),
        string_data: None,
    }
}

/// Checks the final pod of a job with its own token: the agent container still reads
/// `BUILDKITE_AGENT_TOKEN` from `own` (a patch may not point it elsewhere), no other container
/// or volume reads `own`, and nothing at all refers to `shared`, the cluster's agent token
/// Secret.
pub(crate) fn check_token_refs(
    spec: &PodSpec,
    after: &str,
    own: &SecretKeySelector,
    shared: &str,
) -> Result<(), RenderError> {
    let shared_ref = |path: String| RenderError::InvalidField {
        path,
        message: format!(
            "refers to the Secret `{shared}`, the cluster's shared agent token \
             (kubernetes.agent_token_secret), in the pod of a job that has an agent token of \
             its own: no job pod may hold a token for other jobs; remove the reference"
        ),
    };
    let own_ref = |path: String| RenderError::InvalidField {
        path,
        message: format!(
            "refers to the Secret `{}`, which holds this job's agent token: only the \
             `{AGENT_CONTAINER}` container may read it",
            own.name
        ),
    };
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("initContainers[{i}]"), c));
    let main = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("containers[{i}]"), c));
    for (at, container) in init.chain(main) {
        let here = format!("{at} (`{}`){after}", container.name);
        let agent = at.starts_with("containers") && container.name == AGENT_CONTAINER;
        for (path, secret) in secrets_read(container) {
            let path = format!("{here}.{path}");
            if secret == shared {
                return Err(shared_ref(path));
            }
            if secret == own.name && !agent {
                return Err(own_ref(path));
            }
        }
        if agent {
            check_agent_reads_own(container, &here, own)?;
        }
    }
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let here = format!("volumes[{i}] (`{}`){after}", volume.name);
        let mut names: Vec<(String, &str)> = Vec::new();
        if let Some(name) = volume
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref())
        {
            names.push((format!("{here}.secret.secretName"), name));
        }
        let sources = volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten());
        for (j, source) in sources.enumerate() {
            if let Some(secret) = &source.secret {
                names.push((
                    format!("{here}.projected.sources[{j}].secret.name"),
                    &secret.name,
                ));
            }
        }
        for (path, name) in names {
            if name == shared {
                return Err(shared_ref(path));
            }
            if name == own.name {
                return Err(own_ref(path));
            }
        }
    }
    Ok(())
}

/// The Secrets a container reads, with where: `env[i]` and `envFrom[i]`.
fn secrets_read(container: &Container) -> Vec<(String, &str)> {
    let env = container
        .env
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, var)| {
            let secret = var.value_from.as_ref()?.secret_key_ref.as_ref()?;
            Some((format!("env[{i}] ({})", var.name), secret.name.as_str()))
        });
    let env_from = container
        .env_from
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, source)| {
            let secret = source.secret_ref.as_ref()?;
            Some((format!("envFrom[{i}]"), secret.name.as_str()))
        });
    env.chain(env_from).collect()
}

fn check_agent_reads_own(
    agent: &Container,
    here: &str,
    own: &SecretKeySelector,
) -> Result<(), RenderError> {
    let mut vars = agent
        .env
        .iter()
        .flatten()
        .filter(|var| var.name == AGENT_TOKEN_ENV)
        .peekable();
    let reads = vars.peek().is_some()
        && vars.all(|var| {
            var.value_from
                .as_ref()
                .and_then(|from| from.secret_key_ref.as_ref())
                .is_some_and(|secret| secret.name == own.name && secret.key == own.key)
        });
    if reads {
        return Ok(());
    }
    Err(RenderError::InvalidField {
        path: format!("{here}.env ({AGENT_TOKEN_ENV})"),
        message: format!(
            "changes where the agent reads its token; this job's agent token is in the Secret \
             `{}` (key {}), which jobify creates for it: do not patch {AGENT_TOKEN_ENV}",
            own.name, own.key
        ),
    })
}
