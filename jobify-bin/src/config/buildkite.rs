//! `[buildkite]` as the loader sees it: `jobify-buildkite`'s section with the binary's
//! [`SecretRef`]s for its tokens, which only the loader checks and resolves.

use jobify_buildkite::TokenRef;
use jobify_core::config::Validate;

use super::secret::SecretRef;
use super::source::KeyPath;
use super::validate::Problems;

/// `[buildkite]`: API access, what to watch, polling.
pub type BuildkiteConfig = jobify_buildkite::BuildkiteConfig<SecretRef>;

impl TokenRef for SecretRef {
    fn env(var: &str) -> Self {
        SecretRef::env(var)
    }
}

/// The agent token to use for `/v3/metrics`, if any: the configured one, or
/// `BUILDKITE_AGENT_TOKEN` when set.
pub fn agent_token_ref(config: &BuildkiteConfig) -> Option<SecretRef> {
    match &config.agent_token {
        Some(reference) => Some(reference.clone()),
        None => {
            let default = SecretRef::env("BUILDKITE_AGENT_TOKEN");
            default.is_available().then_some(default)
        }
    }
}

/// Checks the section: the adapter's own checks, then the token references.
pub(super) fn validate(config: &BuildkiteConfig, at: &KeyPath, problems: &mut Problems) {
    problems.extend(config.validate());
    if config.source == jobify_buildkite::Source::Stacks && agent_token_ref(config).is_none() {
        problems.push(
            at.key("agent_token"),
            "`source = \"stacks\"` needs a cluster agent token: set agent_token (e.g. \
             { env = \"BUILDKITE_AGENT_TOKEN\" }) or export BUILDKITE_AGENT_TOKEN",
        );
    }
    for (key, reference) in [
        ("api_token", Some(&config.api_token)),
        ("agent_token", config.agent_token.as_ref()),
    ] {
        match reference {
            Some(SecretRef::Env(var)) if var.trim().is_empty() => {
                problems.push(at.key(key), "the environment variable name is empty")
            }
            Some(SecretRef::File(path)) if path.as_os_str().is_empty() => {
                problems.push(at.key(key), "the file path is empty")
            }
            _ => {}
        }
    }
}
