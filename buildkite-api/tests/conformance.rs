//! Checks the GraphQL documents in `graphql/` against Buildkite's schema.
//!
//! - every operation document validates against our subset schema (`graphql/schema.graphql`);
//! - every operation document validates against the full published schema
//!   (`../shared/buildkite/schema.graphql`, beside the repository; the tests fail when it is
//!   absent rather than pass without checking anything);
//! - the documents checked are exactly the ones the `graphql_client` derives compile, and
//!   each derive's operation (named like its struct) is in its document, so a document with
//!   several operations has every one of them checked;
//! - a document naming a field or argument the full schema lacks is rejected (the check
//!   can fail);
//! - every type, field, argument, enum value and input field of the subset exists in the full
//!   schema with the same type, so the subset never drifts from what Buildkite serves.

use std::fs;
use std::path::{Path, PathBuf};

use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};

const SUBSET_SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/graphql/schema.graphql");
const FULL_SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/buildkite/schema.graphql"
);

fn operation_documents() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("graphql");
    let mut documents: Vec<(PathBuf, String)> = fs::read_dir(&dir)
        .expect("graphql/ is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "graphql")
                && path
                    .file_name()
                    .is_some_and(|name| name != "schema.graphql")
        })
        .map(|path| {
            let text = fs::read_to_string(&path).expect("operation document is readable");
            (path, text)
        })
        .collect();
    documents.sort();
    let compiled = compiled_operations();
    assert!(
        !compiled.is_empty(),
        "found no `query_path = \"graphql/...\"` in src/operation/*.rs"
    );
    for (query_path, _) in &compiled {
        assert!(
            documents.iter().any(|(path, _)| path.ends_with(query_path)),
            "{query_path} is compiled by a graphql_client derive but was not checked"
        );
    }
    documents
}

/// The operations the `graphql_client` derives in `src/operation/` compile, as
/// `(query_path, operation)`: graphql_client picks the operation named like the struct the
/// derive is on, the first `struct` after the `query_path`.
fn compiled_operations() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/operation");
    let mut operations = Vec::new();
    for entry in fs::read_dir(&dir).expect("src/operation/ is readable") {
        let source = fs::read_to_string(entry.expect("directory entry").path())
            .expect("operation source is readable");
        let mut query_path = None;
        for line in source.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("query_path = \"") {
                query_path = Some(rest.split('"').next().unwrap_or_default().to_owned());
            } else if let Some(path) = query_path.take_if(|_| line.contains("struct ")) {
                let name = line
                    .split("struct ")
                    .nth(1)
                    .unwrap_or_default()
                    .trim_end_matches(';')
                    .trim();
                operations.push((path, name.to_owned()));
            }
        }
    }
    operations
}

/// Every compiled operation is defined in its document.
fn check_compiled_operations_exist(schema: &Valid<Schema>) {
    let mut missing = Vec::new();
    for (query_path, operation) in compiled_operations() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(&query_path);
        let text = fs::read_to_string(&path).expect("compiled document is readable");
        let document = ExecutableDocument::parse_and_validate(schema, text, &path)
            .unwrap_or_else(|errors| panic!("{errors}"));
        if document.operations.get(Some(&operation)).is_err() {
            missing.push(format!("{query_path} has no operation {operation}"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The full schema, or a failure saying how to provide it: skipping would let the
/// conformance check pass without checking anything.
fn full_schema() -> Valid<Schema> {
    assert!(
        Path::new(FULL_SCHEMA).exists(),
        "{FULL_SCHEMA} is absent: check out the shared folder beside the repository \
         (`../shared/buildkite/schema.graphql`); the conformance tests need Buildkite's full schema"
    );
    load_schema(FULL_SCHEMA)
}

fn load_schema(path: &str) -> Valid<Schema> {
    let text = fs::read_to_string(path).expect("schema is readable");
    Schema::parse_and_validate(text, path).unwrap_or_else(|errors| panic!("{errors}"))
}

fn validate_all(schema: &Valid<Schema>, schema_name: &str) {
    let mut failures = Vec::new();
    for (path, text) in operation_documents() {
        if let Err(errors) = ExecutableDocument::parse_and_validate(schema, text, &path) {
            failures.push(format!(
                "{} against {schema_name}:\n{errors}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The batched job-state query is built at run time; it must be as valid as the files.
fn validate_batched_job_states(schema: &Valid<Schema>) {
    let document = buildkite_api::job_states_document(3);
    if let Err(errors) = ExecutableDocument::parse_and_validate(schema, document, "JobStates") {
        panic!("the batched JobStates document is invalid:\n{errors}");
    }
}

#[test]
fn operations_validate_against_subset_schema() {
    let schema = load_schema(SUBSET_SCHEMA);
    validate_all(&schema, "graphql/schema.graphql");
    validate_batched_job_states(&schema);
    check_compiled_operations_exist(&schema);
}

#[test]
fn scheduled_jobs_document_holds_both_operations_and_both_are_compiled() {
    let compiled = compiled_operations();
    for operation in ["ScheduledJobs", "ScheduledDefaultPriorityJobs"] {
        assert!(
            compiled.contains(&(
                "graphql/ScheduledJobs.graphql".to_owned(),
                operation.to_owned()
            )),
            "{operation} is not compiled from graphql/ScheduledJobs.graphql: {compiled:?}"
        );
    }
}

#[test]
fn operations_validate_against_full_buildkite_schema() {
    let schema = full_schema();
    validate_all(&schema, "the full Buildkite schema");
    validate_batched_job_states(&schema);
    check_compiled_operations_exist(&schema);
}

#[test]
fn full_schema_rejects_a_field_or_argument_buildkite_lacks() {
    let schema = full_schema();
    for (what, document) in [
        (
            "unknown field",
            "query Q($slug: ID!) { organization(slug: $slug) { jobz { count } } }",
        ),
        (
            "unknown argument",
            "query Q($slug: ID!) { organization(slug: $slug) { jobs(queue: \"k8s\") { count } } }",
        ),
    ] {
        assert!(
            ExecutableDocument::parse_and_validate(&schema, document, "bad.graphql").is_err(),
            "a document with an {what} validated against the full schema"
        );
    }
}

#[test]
fn subset_schema_is_a_faithful_subset_of_full_schema() {
    let subset = load_schema(SUBSET_SCHEMA);
    let full = full_schema();
    let mut problems = Vec::new();
    for (name, ty) in &subset.types {
        if ty.is_built_in() {
            continue;
        }
        let Some(full_ty) = full.types.get(name) else {
            problems.push(format!("type {name} is not in the full schema"));
            continue;
        };
        compare_type(name, ty, full_ty, &mut problems);
    }
    for (root, subset_root, full_root) in [
        (
            "query",
            &subset.schema_definition.query,
            &full.schema_definition.query,
        ),
        (
            "mutation",
            &subset.schema_definition.mutation,
            &full.schema_definition.mutation,
        ),
    ] {
        let subset_name = subset_root.as_ref().map(|n| n.name.as_str());
        let full_name = full_root.as_ref().map(|n| n.name.as_str());
        if subset_name != full_name {
            problems.push(format!(
                "{root} root is {subset_name:?}, full schema says {full_name:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn compare_type(name: &str, ty: &ExtendedType, full_ty: &ExtendedType, problems: &mut Vec<String>) {
    match (ty, full_ty) {
        (ExtendedType::Object(ours), ExtendedType::Object(theirs)) => {
            for interface in &ours.implements_interfaces {
                if !theirs.implements_interfaces.contains(interface) {
                    problems.push(format!(
                        "{name} does not implement {interface} in the full schema"
                    ));
                }
            }
            compare_fields(name, &ours.fields, &theirs.fields, problems);
        }
        (ExtendedType::Interface(ours), ExtendedType::Interface(theirs)) => {
            compare_fields(name, &ours.fields, &theirs.fields, problems);
        }
        (ExtendedType::Union(ours), ExtendedType::Union(theirs)) => {
            if ours.members != theirs.members {
                problems.push(format!("union {name} members differ from the full schema"));
            }
        }
        (ExtendedType::Enum(ours), ExtendedType::Enum(theirs)) => {
            for value in ours.values.keys() {
                if !theirs.values.contains_key(value) {
                    problems.push(format!(
                        "enum {name} has no value {value} in the full schema"
                    ));
                }
            }
        }
        (ExtendedType::InputObject(ours), ExtendedType::InputObject(theirs)) => {
            for (field, def) in &ours.fields {
                match theirs.fields.get(field) {
                    None => {
                        problems.push(format!("input {name}.{field} is not in the full schema"))
                    }
                    Some(full_def) => {
                        if def.ty != full_def.ty || def.default_value != full_def.default_value {
                            problems.push(format!(
                                "input {name}.{field}: {} differs from the full schema's {}",
                                def.ty, full_def.ty
                            ));
                        }
                    }
                }
            }
        }
        (ExtendedType::Scalar(_), ExtendedType::Scalar(_)) => {}
        _ => problems.push(format!(
            "{name} is a different kind of type in the full schema"
        )),
    }
}

fn compare_fields(
    type_name: &str,
    ours: &apollo_compiler::collections::IndexMap<
        apollo_compiler::Name,
        apollo_compiler::schema::Component<apollo_compiler::schema::FieldDefinition>,
    >,
    theirs: &apollo_compiler::collections::IndexMap<
        apollo_compiler::Name,
        apollo_compiler::schema::Component<apollo_compiler::schema::FieldDefinition>,
    >,
    problems: &mut Vec<String>,
) {
    for (field, def) in ours {
        let Some(full_def) = theirs.get(field) else {
            problems.push(format!("{type_name}.{field} is not in the full schema"));
            continue;
        };
        if def.ty != full_def.ty {
            problems.push(format!(
                "{type_name}.{field}: {} but the full schema says {}",
                def.ty, full_def.ty
            ));
        }
        for arg in &def.arguments {
            match full_def.arguments.iter().find(|a| a.name == arg.name) {
                None => problems.push(format!(
                    "{type_name}.{field}({}) is not an argument in the full schema",
                    arg.name
                )),
                Some(full_arg) => {
                    if arg.ty != full_arg.ty || arg.default_value != full_arg.default_value {
                        problems.push(format!(
                            "{type_name}.{field}({}): {} differs from the full schema's {}",
                            arg.name, arg.ty, full_arg.ty
                        ));
                    }
                }
            }
        }
    }
}
