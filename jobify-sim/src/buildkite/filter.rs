//! The arguments that select and order jobs: `state`, `type`, `agentQueryRules`,
//! `cluster`, `priority { number }`, `step { key }` and `order`, as `Organization.jobs` and
//! `Build.jobs` take them.

use apollo_compiler::resolvers::FieldError;
use apollo_compiler::response::JsonMap;

use super::ids::{NodeKind, parse_node_id};
use super::job::Job;
use super::resolve::Kind;

/// A string (or enum, or ID) argument.
pub(crate) fn str_arg<'a>(args: &'a JsonMap, name: &str) -> Option<&'a str> {
    args.get(name).and_then(|v| v.as_str())
}

/// A list-of-strings argument (enum values included).
pub(crate) fn list_arg(args: &JsonMap, name: &str) -> Option<Vec<String>> {
    let list = args.get(name)?.as_array()?;
    Some(
        list.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
    )
}

/// `order`: RECENTLY_CREATED (the default) lists the newest job first; RECENTLY_ASSIGNED
/// the most recently started.
pub(crate) fn order_jobs(jobs: &mut Vec<&Job>, args: &JsonMap) {
    match str_arg(args, "order") {
        Some("RECENTLY_ASSIGNED") => jobs.sort_by_key(|j| std::cmp::Reverse(j.started_at)),
        _ => jobs.reverse(),
    }
}

/// The `Organization.jobs` / `Build.jobs` filters: `state`, `type`, `agentQueryRules`,
/// `cluster`, `priority { number }`, `step { key }`.
pub(crate) fn filter_jobs(jobs: Vec<&Job>, args: &JsonMap) -> Result<Vec<Kind>, FieldError> {
    let states = list_arg(args, "state");
    let types = list_arg(args, "type");
    let rules = list_arg(args, "agentQueryRules");
    let cluster = match str_arg(args, "cluster") {
        None => None,
        Some(id) => match parse_node_id(id) {
            Some((NodeKind::Cluster, uuid)) => Some(uuid),
            _ => {
                return Err(FieldError {
                    message: format!("Cluster {id:?} not found"),
                });
            }
        },
    };
    let priorities: Option<Vec<i64>> = args
        .get("priority")
        .and_then(|p| p.as_object()?.get("number")?.as_array().cloned())
        .map(|l| l.iter().filter_map(|v| v.as_i64()).collect());
    let step_keys: Option<Vec<String>> = args
        .get("step")
        .and_then(|s| s.as_object()?.get("key")?.as_array().cloned())
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        });
    // Every job in the simulator is a command job.
    if types
        .as_ref()
        .is_some_and(|t| !t.iter().any(|t| t == "COMMAND"))
    {
        return Ok(Vec::new());
    }
    Ok(jobs
        .into_iter()
        .filter(|j| {
            states
                .as_ref()
                .is_none_or(|s| s.iter().any(|s| s == j.state.as_str()))
        })
        .filter(|j| {
            rules
                .as_ref()
                .is_none_or(|r| r.iter().all(|r| j.agent_query_rules.contains(r)))
        })
        .filter(|j| cluster.is_none_or(|c| j.cluster == Some(c)))
        .filter(|j| priorities.as_ref().is_none_or(|p| p.contains(&j.priority)))
        .filter(|j| {
            step_keys
                .as_ref()
                .is_none_or(|k| j.step_key.as_ref().is_some_and(|s| k.contains(s)))
        })
        .map(|j| Kind::Job(j.uuid))
        .collect())
}
