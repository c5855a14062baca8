//! One GraphQL request, HTTP aside: validate the document, pick the operation, coerce the
//! variables, check the requested complexity, execute against the state, measure the actual
//! complexity.

use std::cell::RefCell;

use apollo_compiler::Schema;
use apollo_compiler::executable::OperationType;
use apollo_compiler::request::coerce_variable_values;
use apollo_compiler::resolvers::Execution;
use apollo_compiler::response::JsonMap;
use apollo_compiler::validation::Valid;
use serde::Deserialize;
use serde_json::{Value, json};

use super::cost::{Cost, MAX_REQUESTED};
use super::resolve::{Cx, Kind, Obj};
use super::schema;
use super::state::State;

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
    let variables = match coerce_variable_values(schema, operation, &raw) {
        Ok(variables) => variables,
        Err(e) => {
            let error = e.to_graphql_error(&document.sources);
            return errors_only(vec![serde_json::to_value(error).unwrap_or(Value::Null)]);
        }
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
    let body = serde_json::to_value(&response).unwrap_or(Value::Null);
    let actual = cost.actual(&operation.selection_set, &body["data"]);
    Answer {
        body,
        requested,
        actual,
    }
}
