//! One GraphQL request, HTTP aside: validate the document, pick the operation, coerce the
//! variables, check the requested complexity, execute against the state, measure the actual
//! complexity.

use std::cell::RefCell;

use apollo_compiler::Schema;
use apollo_compiler::executable::OperationType;
use apollo_compiler::resolvers::Execution;
use apollo_compiler::response::JsonMap;
use apollo_compiler::validation::Valid;
use serde::Deserialize;
use serde_json::{Value, json};

use super::cost::{Cost, MAX_REQUESTED};
use super::resolve::{Cx, Kind, Obj};
use super::schema;
use super::state::State;
use super::variables;

/// The JSON body of `POST /v1`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Request {
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) variables: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub(crate) operation_name: Option<String>,
}

/// The answer to a request (always HTTP 200 from here).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Answer {
    pub(crate) body: Value,
    pub(crate) requested: u64,
    pub(crate) actual: u64,
}

fn errors_only(errors: Vec<Value>) -> Answer {
    Answer {
        body: json!({ "errors": errors }),
        requested: 0,
        actual: 0,
    }
}

/// Runs `request` against `state`.
pub(crate) fn run(schema: &Valid<Schema>, state: &mut State, request: &Request) -> Answer {
    let document = match schema::validate(schema, &request.query) {
        Ok(document) => document,
        Err(errors) => return errors_only(errors),
    };
    let operation = match document.operations.get(request.operation_name.as_deref()) {
        Ok(operation) => operation,
        Err(_) => {
            let message = match &request.operation_name {
                Some(name) => format!("No operation named \"{name}\""),
                None => "An operation name is required".to_owned(),
            };
            return errors_only(vec![json!({ "message": message })]);
        }
    };
    let raw: JsonMap = match serde_json::from_value(Value::Object(
        request.variables.clone().unwrap_or_default(),
    )) {
        Ok(raw) => raw,
        Err(e) => {
            return errors_only(vec![
                json!({ "message": format!("Invalid variables: {e}") }),
            ]);
        }
    };
    let variables = match variables::coerce(schema, &document, operation, &raw) {
        Ok(variables) => variables,
        Err(errors) => return errors_only(errors),
    };
    let cost = Cost {
        schema,
        document: &document,
        variables: &variables,
    };
    let requested = cost.requested(&operation.selection_set);
    if requested > MAX_REQUESTED {
        let message = format!(
            "Query has complexity of {requested}, which exceeds max complexity of {MAX_REQUESTED}"
        );
        return Answer {
            requested,
            ..errors_only(vec![json!({ "message": message })])
        };
    }
    let cx = Cx {
        state: RefCell::new(state),
    };
    let root = Obj {
        cx: &cx,
        kind: match operation.operation_type {
            OperationType::Mutation => Kind::Mutation,
            _ => Kind::Query,
        },
    };
    let executed = Execution::new(schema, &document)
        .operation(operation)
        .coerced_variable_values(&variables)
        .enable_schema_introspection(true)
        .execute_sync(&root);
    let response = match executed {
        Ok(response) => response,
        Err(e) => {
            let error = e.to_graphql_error(&document.sources);
            return errors_only(vec![serde_json::to_value(error).unwrap_or(Value::Null)]);
        }
    };
    // The response types serialize infallibly (strings, numbers, maps).
    let mut body = serde_json::to_value(&response).unwrap_or(Value::Null);
    strip_resolver_prefix(&mut body);
    let actual = cost.actual(&operation.selection_set, &body["data"]);
    Answer {
        body,
        requested,
        actual,
    }
}

/// apollo-compiler prefixes field errors with "resolver error: "; Buildkite's messages are
/// the resolvers' own.
fn strip_resolver_prefix(body: &mut Value) {
    let Some(errors) = body.get_mut("errors").and_then(Value::as_array_mut) else {
        return;
    };
    for error in errors {
        let stripped = error["message"]
            .as_str()
            .and_then(|m| m.strip_prefix("resolver error: "))
            .map(str::to_owned);
        if let Some(message) = stripped {
            error["message"] = Value::String(message);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use super::*;
    use crate::buildkite::JobSpec;

    fn request(query: &str, variables: Value) -> Request {
        Request {
            query: query.to_owned(),
            variables: variables.as_object().cloned(),
            operation_name: None,
        }
    }

    #[test]
    fn a_missing_variable_is_reported_like_graphql_ruby() {
        let schema = schema::load().unwrap();
        let mut state = State::new("acme");
        let query = "query J($uuid: ID!) { job(uuid: $uuid) { __typename } }";
        let answer = run(&schema, &mut state, &request(query, json!({})));
        assert_eq!(
            answer.body,
            json!({"errors": [{
                "message": "Variable $uuid of type ID! was provided invalid value",
                "locations": [{"line": 1, "column": 9}],
                "extensions": {
                    "value": null,
                    "problems": [{"path": [], "explanation": "Expected value to not be null"}],
                },
            }]})
        );
    }

    #[test]
    fn a_schema_field_the_simulator_does_not_serve_is_an_error_naming_it() {
        let sdl = format!(
            "{}\nextend type Organization {{ repositoryProviders: [String] }}",
            schema::SCHEMA_SDL
        );
        let schema = Schema::parse_and_validate(sdl, "schema.graphql").unwrap();
        let mut state = State::new("acme");
        let query = "{ organization(slug: \"acme\") { slug repositoryProviders } }";
        let answer = run(&schema, &mut state, &request(query, json!({})));
        assert_eq!(
            answer.body["data"],
            json!({"organization": {"slug": "acme", "repositoryProviders": null}})
        );
        let error = &answer.body["errors"][0];
        assert_eq!(
            error["message"],
            "Field 'repositoryProviders' on type 'Organization' is not implemented by the Buildkite simulator"
        );
        assert_eq!(
            error["path"],
            json!(["organization", "repositoryProviders"])
        );
    }

    #[test]
    fn fragments_aliases_and_typename_resolve() {
        let schema = schema::load().unwrap();
        let mut state = State::new("acme");
        let (job, _) = state.schedule(JobSpec::command("make"));
        let query = "query Q($u: ID!) { a: job(uuid: $u) { __typename ...F } }
            fragment F on JobTypeCommand { s: state label }";
        let answer = run(&schema, &mut state, &request(query, json!({"u": job})));
        assert_eq!(
            answer.body,
            json!({"data": {"a": {"__typename": "JobTypeCommand", "s": "SCHEDULED", "label": "make"}}})
        );
        // `job` 1 requested; one job returned.
        assert_eq!((answer.requested, answer.actual), (1, 1));
    }

    /// Fields the brief expects that `buildkite-api` does not select yet, declared as in
    /// Buildkite's published schema.
    const BEYOND_SUBSET: &str = "
        extend type JobTypeCommand {
          agent: Agent build: Build pipeline: Pipeline step: StepCommand passed: Boolean!
          startedAt: DateTime finishedAt: DateTime
        }
        type Agent implements Node { id: ID! name: String! uuid: String! }
        type StepCommand { key: String uuid: String! }
        extend type Build { number: Int! branch: String! url: String! pipeline: Pipeline! }
        extend type Organization {
          name: String! uuid: String! pipelines(first: Int, after: String): PipelineConnection
        }
        type PipelineConnection { count: Int! edges: [PipelineEdge] pageInfo: PageInfo }
        type PipelineEdge { cursor: String! node: Pipeline }
    ";

    #[test]
    fn fields_beyond_the_subset_resolve_from_the_state() {
        let sdl = format!("{}\n{BEYOND_SUBSET}", schema::SCHEMA_SDL);
        let schema = Schema::parse_and_validate(sdl, "schema.graphql").unwrap();
        let mut state = State::new("acme");
        let spec = JobSpec {
            step_key: Some("unit".to_owned()),
            branch: "feature".to_owned(),
            ..JobSpec::command("make").on_pipeline("app")
        };
        let (job, number) = state.schedule(spec);
        state.acquire(job, &["queue=default".to_owned()]).unwrap();
        state.finish(job, 0);
        let query = "query Q($u: ID!) {
            job(uuid: $u) { ... on JobTypeCommand {
                agent { name } step { key } passed pipeline { slug }
                build { number branch url pipeline { name } }
            } }
            organization(slug: \"acme\") {
                name
                jobs(first: 1, state: [FINISHED]) {
                    count edges { cursor node { ... on JobTypeCommand { uuid } } }
                    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
                }
            }
        }";
        let answer = run(&schema, &mut state, &request(query, json!({"u": job})));
        assert_eq!(answer.body.get("errors"), None, "{}", answer.body);
        let data = &answer.body["data"];
        assert_eq!(
            data["job"],
            json!({
                "agent": {"name": "sim-agent-1"},
                "step": {"key": "unit"},
                "passed": true,
                "pipeline": {"slug": "app"},
                "build": {
                    "number": number,
                    "branch": "feature",
                    "url": format!("https://buildkite.com/acme/app/builds/{number}"),
                    "pipeline": {"name": "app"},
                },
            })
        );
        let jobs = &data["organization"]["jobs"];
        let cursor = jobs["edges"][0]["cursor"].clone();
        assert!(cursor.is_string(), "{jobs}");
        assert_eq!(jobs["count"], 1);
        assert_eq!(jobs["edges"][0]["node"]["uuid"], job.to_string());
        assert_eq!(
            jobs["pageInfo"],
            json!({"hasNextPage": false, "hasPreviousPage": false, "startCursor": cursor, "endCursor": cursor})
        );
    }
}
