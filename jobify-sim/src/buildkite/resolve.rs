//! Field resolvers: how each (type, field) of the schema is answered from [`State`].
//!
//! apollo-compiler's executor walks the document (aliases, variables, fragments,
//! `__typename`, null propagation) and calls [`Obj::resolve_field`] for every field; an
//! [`Obj`] is one GraphQL object ([`Kind`]) plus the state it reads. A schema field the
//! simulator does not serve answers a field error naming it, never a made-up value.

use std::cell::RefCell;

use apollo_compiler::resolvers::{FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{JsonMap, JsonValue};
use jiff::Timestamp;
use uuid::Uuid;

use super::connection::{Page, paginate};
use super::filter::{filter_jobs, list_arg, order_jobs, str_arg};
use super::ids::{NodeKind, node_id, parse_node_id};
use super::job::{AgentRecord, Annotation, Job, JobState};
use super::state::State;

/// The state one request executes against (locked for the whole request).
pub(crate) struct Cx<'c> {
    pub(crate) state: RefCell<&'c mut State>,
}

/// A GraphQL object the simulator can return.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Query,
    Mutation,
    Organization,
    Pipeline(Uuid),
    Build(Uuid),
    Job(Uuid),
    Agent(AgentRecord),
    Step {
        key: Option<String>,
        uuid: Uuid,
    },
    Priority(i64),
    Connection(Box<Connection>),
    Edge {
        type_name: &'static str,
        cursor: String,
        node: Box<Kind>,
    },
    PageInfo {
        start: Option<String>,
        end: Option<String>,
        next: bool,
        previous: bool,
    },
    Annotation(Annotation),
    /// A mutation's payload: its type name, `clientMutationId`, and its object fields
    /// (`None`: the field is null).
    Payload {
        type_name: &'static str,
        client_mutation_id: Option<String>,
        fields: Vec<(&'static str, Option<Kind>)>,
    },
}

/// A page of a connection, named after its GraphQL types.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    type_name: &'static str,
    edge_type: &'static str,
    page: Page<Kind>,
}

impl Kind {
    fn type_name(&self) -> &'static str {
        match self {
            Kind::Query => "Query",
            Kind::Mutation => "Mutation",
            Kind::Organization => "Organization",
            Kind::Pipeline(_) => "Pipeline",
            Kind::Build(_) => "Build",
            Kind::Job(_) => "JobTypeCommand",
            Kind::Agent(_) => "Agent",
            Kind::Step { .. } => "StepCommand",
            Kind::Priority(_) => "JobPriority",
            Kind::Connection(c) => c.type_name,
            Kind::Edge { type_name, .. } => type_name,
            Kind::PageInfo { .. } => "PageInfo",
            Kind::Annotation(_) => "Annotation",
            Kind::Payload { type_name, .. } => type_name,
        }
    }
}

/// One object under resolution.
pub(crate) struct Obj<'c> {
    pub(crate) cx: &'c Cx<'c>,
    pub(crate) kind: Kind,
}

type Resolved<'a> = Result<ResolvedValue<'a>, FieldError>;

/// Buildkite's `DateTime` rendering (RFC 3339, UTC, whole seconds).
pub(crate) fn date_time(ts: Option<Timestamp>) -> JsonValue {
    match ts {
        Some(ts) => JsonValue::from(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        None => JsonValue::Null,
    }
}

impl<'c> Obj<'c> {
    pub(crate) fn obj<'a>(&self, kind: Kind) -> ResolvedValue<'a>
    where
        'c: 'a,
    {
        ResolvedValue::object(Obj { cx: self.cx, kind })
    }

    fn maybe<'a>(&self, kind: Option<Kind>) -> ResolvedValue<'a>
    where
        'c: 'a,
    {
        match kind {
            Some(kind) => self.obj(kind),
            None => ResolvedValue::null(),
        }
    }

    fn connection<'a>(
        &self,
        type_name: &'static str,
        edge_type: &'static str,
        all: Vec<Kind>,
        args: &JsonMap,
    ) -> Resolved<'a>
    where
        'c: 'a,
    {
        let page = paginate(all, args)?;
        Ok(self.obj(Kind::Connection(Box::new(Connection {
            type_name,
            edge_type,
            page,
        }))))
    }

    fn query<'a>(&self, field: &str, args: &JsonMap) -> Resolved<'a>
    where
        'c: 'a,
    {
        let state = self.cx.state.borrow();
        let found = root_lookup(&state, field, args)?;
        if let Some(Kind::Job(uuid)) = &found {
            failing_job(&state, *uuid)?;
        }
        Ok(self.maybe(found))
    }

    fn organization<'a>(&self, field: &str, args: &JsonMap) -> Resolved<'a>
    where
        'c: 'a,
    {
        let state = self.cx.state.borrow();
        let org = &state.org;
        let leaf = match field {
            "id" => node_id(NodeKind::Organization, org.uuid),
            "uuid" => org.uuid.to_string(),
            "slug" => org.slug.clone(),
            "name" => org.name.clone(),
            "jobs" => {
                let mut jobs: Vec<&Job> = state
                    .job_order
                    .iter()
                    .filter_map(|u| state.jobs.get(u))
                    .collect();
                order_jobs(&mut jobs, args);
                let jobs = filter_jobs(jobs, args)?;
                drop(state);
                return self.connection("JobConnection", "JobEdge", jobs, args);
            }
            _ => return Err(not_served("Organization", field)),
        };
        Ok(ResolvedValue::leaf(leaf))
    }

    fn pipeline<'a>(&self, uuid: Uuid, field: &str, args: &JsonMap) -> Resolved<'a>
    where
        'c: 'a,
    {
        let state = self.cx.state.borrow();
        let Some(p) = state.pipeline(uuid) else {
            return Ok(ResolvedValue::null());
        };
        let leaf = match field {
            "id" => node_id(NodeKind::Pipeline, p.uuid),
            "uuid" => p.uuid.to_string(),
            "slug" | "name" => p.slug.clone(),
            "url" => state.pipeline_url(p),
            "organization" => return Ok(self.obj(Kind::Organization)),
            "builds" => {
                let states = list_arg(args, "state");
                let branches = list_arg(args, "branch");
                let commits = list_arg(args, "commit");
                let all: Vec<Kind> = p
                    .builds
                    .iter()
                    .rev()
                    .filter_map(|b| state.builds.get(b))
                    .filter(|b| {
                        states
                            .as_ref()
                            .is_none_or(|s| s.iter().any(|s| s == state.build_state(b)))
                    })
                    .filter(|b| branches.as_ref().is_none_or(|s| s.contains(&b.branch)))
                    .filter(|b| commits.as_ref().is_none_or(|s| s.contains(&b.commit)))
                    .map(|b| Kind::Build(b.uuid))
                    .collect();
                drop(state);
                return self.connection("BuildConnection", "BuildEdge", all, args);
            }
            _ => return Err(not_served("Pipeline", field)),
        };
        Ok(ResolvedValue::leaf(leaf))
    }

    fn build<'a>(&self, uuid: Uuid, field: &str, args: &JsonMap) -> Resolved<'a>
    where
        'c: 'a,
    {
        let state = self.cx.state.borrow();
        let Some(b) = state.builds.get(&uuid) else {
            return Ok(ResolvedValue::null());
        };
        let leaf: JsonValue = match field {
            "id" => node_id(NodeKind::Build, b.uuid).into(),
            "uuid" => b.uuid.to_string().into(),
            "number" => b.number.into(),
            "message" => b.message.clone().into(),
            "state" => state.build_state(b).into(),
            "commit" => b.commit.clone().into(),
            "branch" => b.branch.clone().into(),
            "url" => state.build_url(b).into(),
            "createdAt" => date_time(Some(b.created_at)),
            "triggeredFrom" => JsonValue::Null,
            "pipeline" => return Ok(self.obj(Kind::Pipeline(b.pipeline))),
            "metaData" => {
                // Nothing sets build meta-data in the simulator (jobify never does), so every
                // build answers an empty connection, as a real build without meta-data does.
                drop(state);
                return self.connection(
                    "BuildMetaDataConnection",
                    "BuildMetaDataEdge",
                    Vec::new(),
                    args,
                );
            }
            "jobs" => {
                // A build lists its jobs in step order.
                let jobs: Vec<&Job> = b.jobs.iter().filter_map(|u| state.jobs.get(u)).collect();
                let jobs = filter_jobs(jobs, args)?;
                drop(state);
                return self.connection("JobConnection", "JobEdge", jobs, args);
            }
            _ => return Err(not_served("Build", field)),
        };
        Ok(ResolvedValue::Leaf(leaf))
    }

    fn job<'a>(&self, uuid: Uuid, field: &str) -> Resolved<'a>
    where
        'c: 'a,
    {
        let state = self.cx.state.borrow();
        let Some(j) = state.jobs.get(&uuid) else {
            return Ok(ResolvedValue::null());
        };
        let leaf: JsonValue = match field {
            "id" => node_id(NodeKind::CommandJob, j.uuid).into(),
            "uuid" => j.uuid.to_string().into(),
            "label" => j.label.clone().into(),
            "state" => j.state.as_str().into(),
            "command" => j.command.clone().into(),
            "agentQueryRules" => return Ok(strings(&j.agent_query_rules)),
            "env" => return Ok(strings(&j.env)),
            "exitStatus" => j
                .exit_status
                .map_or(JsonValue::Null, |s| s.to_string().into()),
            "passed" => (j.state == JobState::Finished && j.exit_status == Some(0)).into(),
            // The simulator schedules a job the moment it is created, and nothing gates it.
            "createdAt" | "scheduledAt" | "runnableAt" => date_time(Some(j.created_at)),
            "startedAt" => date_time(j.started_at),
            "finishedAt" => date_time(j.finished_at),
            "canceledAt" => date_time(j.canceled_at),
            "url" => state.job_url(j).into(),
            "priority" => return Ok(self.obj(Kind::Priority(j.priority))),
            "agent" => return Ok(self.maybe(j.agent.clone().map(Kind::Agent))),
            "build" => return Ok(self.obj(Kind::Build(j.build))),
            "pipeline" => return Ok(self.obj(Kind::Pipeline(j.pipeline))),
            "step" => {
                let step = Kind::Step {
                    key: j.step_key.clone(),
                    uuid: j.step_uuid,
                };
                return Ok(self.obj(step));
            }
            _ => return Err(not_served("JobTypeCommand", field)),
        };
        Ok(ResolvedValue::Leaf(leaf))
    }

    fn plain<'a>(&self, field: &str) -> Resolved<'a>
    where
        'c: 'a,
    {
        let leaf: JsonValue = match (&self.kind, field) {
            (Kind::Agent(a), "id") => node_id(NodeKind::Agent, a.uuid).into(),
            (Kind::Agent(a), "uuid") => a.uuid.to_string().into(),
            (Kind::Agent(a), "name") => a.name.clone().into(),
            (Kind::Step { key, .. }, "key") => key.clone().map_or(JsonValue::Null, JsonValue::from),
            (Kind::Step { uuid, .. }, "uuid") => uuid.to_string().into(),
            (Kind::Priority(n), "number") => (*n).into(),
            (Kind::Annotation(a), "id") => node_id(NodeKind::Annotation, a.uuid).into(),
            (Kind::Annotation(a), "uuid") => a.uuid.to_string().into(),
            (Kind::Annotation(a), "context") => a.context.clone().into(),
            (Kind::Annotation(a), "style") => a.style.clone().into(),
            (Kind::PageInfo { start, .. }, "startCursor") => {
                start.clone().map_or(JsonValue::Null, JsonValue::from)
            }
            (Kind::PageInfo { end, .. }, "endCursor") => {
                end.clone().map_or(JsonValue::Null, JsonValue::from)
            }
            (Kind::PageInfo { next, .. }, "hasNextPage") => (*next).into(),
            (Kind::PageInfo { previous, .. }, "hasPreviousPage") => (*previous).into(),
            (Kind::Edge { cursor, .. }, "cursor") => cursor.clone().into(),
            (Kind::Edge { node, .. }, "node") => {
                if let Kind::Job(uuid) = **node {
                    failing_job(&self.cx.state.borrow(), uuid)?;
                }
                return Ok(self.obj((**node).clone()));
            }
            (Kind::Connection(c), "count") => c.page.count.into(),
            (Kind::Connection(c), "pageInfo") => {
                let items = &c.page.items;
                return Ok(self.obj(Kind::PageInfo {
                    start: items.first().map(|i| i.0.clone()),
                    end: items.last().map(|i| i.0.clone()),
                    next: c.page.has_next,
                    previous: c.page.has_previous,
                }));
            }
            (Kind::Connection(c), "edges") => {
                let edges: Vec<ResolvedValue<'a>> = c
                    .page
                    .items
                    .iter()
                    .map(|(cursor, node)| {
                        self.obj(Kind::Edge {
                            type_name: c.edge_type,
                            cursor: cursor.clone(),
                            node: Box::new(node.clone()),
                        })
                    })
                    .collect();
                return Ok(ResolvedValue::list(edges));
            }
            (
                Kind::Payload {
                    client_mutation_id, ..
                },
                "clientMutationId",
            ) => client_mutation_id
                .clone()
                .map_or(JsonValue::Null, JsonValue::from),
            (Kind::Payload { fields, .. }, name) => {
                let found = fields
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, k)| k.clone());
                return match found {
                    Some(kind) => Ok(self.maybe(kind)),
                    None => Err(not_served(self.kind.type_name(), field)),
                };
            }
            _ => return Err(not_served(self.kind.type_name(), field)),
        };
        Ok(ResolvedValue::Leaf(leaf))
    }
}

impl ObjectValue for Obj<'_> {
    fn type_name(&self) -> &str {
        self.kind.type_name()
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        let field = info.field_name();
        let args = info.arguments();
        match &self.kind {
            Kind::Query => self.query(field, args),
            Kind::Mutation => super::mutation::resolve(self, field, args),
            Kind::Organization => self.organization(field, args),
            Kind::Pipeline(uuid) => self.pipeline(*uuid, field, args),
            Kind::Build(uuid) => self.build(*uuid, field, args),
            Kind::Job(uuid) => self.job(*uuid, field),
            _ => self.plain(field),
        }
    }
}

/// A job switched to fail to resolve ([`super::SchemaAnswers::failing_jobs`]) is a field
/// error: its node is null and `errors` names the path.
fn failing_job(state: &State, uuid: Uuid) -> Result<(), FieldError> {
    if state.answers.failing_jobs.contains(&uuid) {
        return Err(FieldError {
            message: super::answers::FAILING_JOB.to_owned(),
        });
    }
    Ok(())
}

/// What a `Query` field finds: `organization`, `node`, `job`, `pipeline`, `build`.
fn root_lookup(state: &State, field: &str, args: &JsonMap) -> Result<Option<Kind>, FieldError> {
    Ok(match field {
        "organization" => {
            let org = &state.org;
            let by_slug = str_arg(args, "slug").is_some_and(|s| s == org.slug);
            let by_uuid = str_arg(args, "uuid").is_some_and(|u| u == org.uuid.to_string());
            (by_slug || by_uuid).then_some(Kind::Organization)
        }
        "node" => str_arg(args, "id")
            .and_then(parse_node_id)
            .and_then(|(kind, uuid)| match kind {
                NodeKind::Organization => (uuid == state.org.uuid).then_some(Kind::Organization),
                NodeKind::Pipeline => state.pipeline(uuid).map(|_| Kind::Pipeline(uuid)),
                NodeKind::Build => state.builds.get(&uuid).map(|_| Kind::Build(uuid)),
                NodeKind::CommandJob => state.jobs.get(&uuid).map(|_| Kind::Job(uuid)),
                NodeKind::Agent | NodeKind::Cluster | NodeKind::Annotation => None,
            }),
        "job" => str_arg(args, "uuid")
            .and_then(|u| Uuid::parse_str(u).ok())
            .filter(|u| state.jobs.contains_key(u))
            .map(Kind::Job),
        _ => return Err(not_served("Query", field)),
    })
}

/// The error for a schema field the simulator does not serve.
pub(crate) fn not_served(type_name: &str, field: &str) -> FieldError {
    FieldError {
        message: format!(
            "Field '{field}' on type '{type_name}' is not implemented by the Buildkite simulator"
        ),
    }
}

/// A `[String!]` value: apollo's executor takes lists item by item.
fn strings<'a>(values: &[String]) -> ResolvedValue<'a> {
    let items: Vec<ResolvedValue<'a>> = values
        .iter()
        .map(|v| ResolvedValue::leaf(v.clone()))
        .collect();
    ResolvedValue::list(items)
}
