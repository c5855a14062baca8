//! Computes the requested complexity of every operation document by walking it with
//! apollo-compiler under Buildkite's counting rule, and checks `cost::requested_complexity`
//! and the figures documented in docs/buildkite-api.md against it.
//!
//! Rule (Buildkite "GraphQL resource limits"): object, interface and union fields cost 1,
//! scalars and enums 0; inside a connection with `first: N` (or `last: N`, else 500) the
//! selections under `edges`/`nodes` count N times.

use std::collections::HashMap;
use std::fs;

use apollo_compiler::ast::Value;
use apollo_compiler::executable::{Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use buildkite_api::Priorities;
use buildkite_api::cost::{Operation, requested_complexity};

const ASSUMED_CONNECTION_SIZE: u32 = 500;

struct Walker<'a> {
    schema: &'a Valid<Schema>,
    document: &'a Valid<ExecutableDocument>,
    variables: &'a HashMap<&'a str, u32>,
}

impl Walker<'_> {
    /// `pending` is the size of the connection whose selection set this is: it multiplies
    /// what is under `edges`/`nodes`.
    fn cost(&self, set: &SelectionSet, multiplier: u32, pending: Option<u32>) -> u32 {
        let mut total = 0;
        for selection in &set.selections {
            match selection {
                Selection::Field(field) => {
                    let type_name = field.definition.ty.inner_named_type();
                    let composite = matches!(
                        self.schema.types.get(type_name),
                        Some(
                            ExtendedType::Object(_)
                                | ExtendedType::Interface(_)
                                | ExtendedType::Union(_)
                        )
                    );
                    if composite {
                        total += multiplier;
                    }
                    let inner_multiplier = match (pending, field.name.as_str()) {
                        (Some(size), "edges" | "nodes") => multiplier * size,
                        _ => multiplier,
                    };
                    let connection = type_name
                        .as_str()
                        .ends_with("Connection")
                        .then(|| self.page_size(field));
                    total += self.cost(&field.selection_set, inner_multiplier, connection);
                }
                Selection::InlineFragment(fragment) => {
                    total += self.cost(&fragment.selection_set, multiplier, pending);
                }
                Selection::FragmentSpread(spread) => {
                    let fragment = self
                        .document
                        .fragments
                        .get(&spread.fragment_name)
                        .expect("validated documents define their fragments");
                    total += self.cost(&fragment.selection_set, multiplier, pending);
                }
            }
        }
        total
    }

    fn page_size(&self, field: &apollo_compiler::executable::Field) -> u32 {
        let argument = field
            .arguments
            .iter()
            .find(|arg| arg.name == "first")
            .or_else(|| field.arguments.iter().find(|arg| arg.name == "last"));
        match argument.map(|arg| arg.value.as_ref()) {
            None => ASSUMED_CONNECTION_SIZE,
            Some(Value::Int(n)) => n.try_to_i32().expect("page sizes are small") as u32,
            Some(Value::Variable(name)) => *self
                .variables
                .get(name.as_str())
                .unwrap_or_else(|| panic!("no value given for ${name}")),
            Some(other) => panic!("unexpected page size {other:?}"),
        }
    }
}

/// The requested complexity of `document_text`'s only operation.
fn walk(document_text: &str, name: &str, variables: &[(&str, u32)]) -> u32 {
    walk_operation(document_text, name, None, variables)
}

/// The requested complexity of one operation of `document_text` (its only one when
/// `operation` is `None`).
fn walk_operation(
    document_text: &str,
    name: &str,
    operation: Option<&str>,
    variables: &[(&str, u32)],
) -> u32 {
    let schema_text = include_str!("../graphql/schema.graphql");
    let schema =
        Schema::parse_and_validate(schema_text, "schema.graphql").expect("valid subset schema");
    let document = ExecutableDocument::parse_and_validate(&schema, document_text, name)
        .unwrap_or_else(|errors| panic!("{errors}"));
    let variables: HashMap<&str, u32> = variables.iter().copied().collect();
    let walker = Walker {
        schema: &schema,
        document: &document,
        variables: &variables,
    };
    let operation = document
        .operations
        .get(operation)
        .unwrap_or_else(|_| panic!("{name} has no operation {operation:?}, or several"));
    walker.cost(&operation.selection_set, 1, None)
}

fn document(file: &str) -> String {
    fs::read_to_string(format!("{}/graphql/{file}", env!("CARGO_MANIFEST_DIR")))
        .expect("document exists")
}

#[test]
fn scheduled_jobs_costs_five_plus_two_per_job_and_default_priority_jobs_five_plus_one() {
    let text = document("ScheduledJobs.graphql");
    for (priorities, per_job) in [(Priorities::All, 2), (Priorities::DefaultOnly, 1)] {
        for page_size in [1_u16, 50, 100, 200] {
            // The document pages backwards: its size variable is `last`.
            let walked = walk_operation(
                &text,
                "ScheduledJobs.graphql",
                Some(priorities.operation()),
                &[("last", u32::from(page_size))],
            );
            let expected = requested_complexity(Operation::ScheduledJobs {
                page_size,
                priorities,
            });
            assert_eq!(walked, expected, "{priorities:?}, {page_size} jobs a page");
            assert_eq!(walked, 5 + per_job * u32::from(page_size));
        }
    }
    // The figures in docs/buildkite-api.md: one 100-job page, well under 500.
    let page_of_100 = |operation| {
        walk_operation(
            &text,
            "ScheduledJobs.graphql",
            Some(operation),
            &[("last", 100)],
        )
    };
    assert_eq!(page_of_100("ScheduledJobs"), 205);
    assert_eq!(page_of_100("ScheduledDefaultPriorityJobs"), 105);
}

#[test]
fn pipeline_lookup_costs_one() {
    assert_eq!(walk(&document("Pipeline.graphql"), "Pipeline", &[]), 1);
    assert_eq!(requested_complexity(Operation::Pipeline), 1);
}

#[test]
fn pipeline_builds_costs_four_plus_per_build_six_and_its_nodes() {
    let text = document("PipelineBuilds.graphql");
    for (builds, jobs, meta_data) in [(1_u16, 1_u16, 1_u16), (5, 50, 10), (10, 100, 20)] {
        let walked = walk(
            &text,
            "PipelineBuilds",
            &[
                ("buildsFirst", u32::from(builds)),
                ("jobsFirst", u32::from(jobs)),
                ("metaDataFirst", u32::from(meta_data)),
            ],
        );
        let expected = requested_complexity(Operation::PipelineBuilds {
            builds,
            jobs,
            meta_data,
        });
        assert_eq!(
            walked, expected,
            "builds {builds}, jobs {jobs}, meta-data {meta_data}"
        );
    }
    assert_eq!(
        walk(
            &text,
            "PipelineBuilds",
            &[("buildsFirst", 5), ("jobsFirst", 50), ("metaDataFirst", 10)]
        ),
        334
    );
}

#[test]
fn build_jobs_costs_four_plus_one_per_job() {
    let text = document("BuildJobs.graphql");
    assert_eq!(walk(&text, "BuildJobs", &[("first", 50)]), 54);
    assert_eq!(requested_complexity(Operation::BuildJobs { jobs: 50 }), 54);
}

#[test]
fn job_states_cost_one_per_job() {
    assert_eq!(walk(&document("JobState.graphql"), "JobState", &[]), 1);
    for jobs in [1_u16, 7, 100] {
        let batch = buildkite_api::job_states_document(usize::from(jobs));
        assert_eq!(walk(&batch, "JobStates", &[]), u32::from(jobs));
        assert_eq!(
            requested_complexity(Operation::JobStates { jobs }),
            u32::from(jobs)
        );
    }
}

#[test]
fn mutations_cost_two() {
    for (file, operation) in [
        ("CancelJob.graphql", Operation::CancelJob),
        ("AnnotateJob.graphql", Operation::AnnotateJob),
        ("AnnotateBuild.graphql", Operation::AnnotateBuild),
    ] {
        assert_eq!(walk(&document(file), file, &[]), 2, "{file}");
        assert_eq!(requested_complexity(operation), 2, "{file}");
    }
}

#[test]
fn walker_counts_a_connection_without_first_as_500_nodes() {
    // The example from Buildkite's docs: organization + pipelines + edges + 500 × node.
    let schema_doc =
        "query { organization(slug: \"acme\") { jobs { edges { node { __typename } } } } }";
    assert_eq!(walk(schema_doc, "docs-example", &[]), 503);
}

#[test]
fn walker_counts_a_connection_with_last_like_one_with_first() {
    let with = |argument: &str| {
        format!(
            "query {{ organization(slug: \"acme\") {{ jobs({argument}: 7) {{ edges {{ node {{ __typename }} }} }} }} }}"
        )
    };
    // organization + jobs + edges + 7 × node.
    assert_eq!(walk(&with("last"), "last", &[]), 10);
    assert_eq!(walk(&with("first"), "first", &[]), 10);
}
