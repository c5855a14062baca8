//! Query complexity by Buildkite's documented rule ("GraphQL resource limits"): object,
//! interface and union fields cost 1, scalars and enums 0.
//!
//! *Requested* complexity is computed from the document before execution: the items of a
//! connection's list field (`edges`, `nodes`) are counted `first`/`last` times, or 500 times
//! without either. *Actual* complexity is computed after execution from the response: each
//! object-valued field counts once per object it was returned in. The documented example,
//! `organization { pipelines(first: 500) { edges { node { slug } } } }`, requests
//! 1 + 1 + 1 + 500 = 503; with 10 pipelines its actual complexity is 1 + 1 + 1 + 10 = 13.

use std::collections::HashSet;

use apollo_compiler::executable::{Field, Selection, SelectionSet};
use apollo_compiler::response::JsonMap;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Node, Schema, ast};
use serde_json::Value;

use super::connection::MAX_PAGE;

/// The largest requested complexity Buildkite executes.
pub(crate) const MAX_REQUESTED: u64 = 50_000;

/// Walks documents for their complexity.
pub(crate) struct Cost<'a> {
    pub(crate) schema: &'a Valid<Schema>,
    pub(crate) document: &'a Valid<ExecutableDocument>,
    pub(crate) variables: &'a JsonMap,
}

impl Cost<'_> {
    fn is_composite(&self, field: &Field) -> bool {
        matches!(
            self.schema
                .types
                .get(field.definition.ty.inner_named_type()),
            Some(ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_))
        )
    }

    /// The selected fields of `set`, fragments flattened, one per response key.
    fn fields<'s>(
        &'s self,
        set: &'s SelectionSet,
        out: &mut Vec<&'s Node<Field>>,
        seen: &mut HashSet<String>,
    ) {
        for selection in &set.selections {
            match selection {
                Selection::Field(field) => {
                    if seen.insert(field.response_key().to_string()) {
                        out.push(field);
                    }
                }
                Selection::InlineFragment(inline) => self.fields(&inline.selection_set, out, seen),
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = self.document.fragments.get(&spread.fragment_name) {
                        self.fields(&fragment.selection_set, out, seen);
                    }
                }
            }
        }
    }

    /// The page size a connection field asks for: `first` or `last`, the larger when both
    /// are given (as graphql-ruby's complexity counts it), else 500.
    fn page_size(&self, field: &Field) -> u64 {
        ["first", "last"]
            .into_iter()
            .filter_map(|name| {
                let value = field.arguments.iter().find(|a| a.name == name)?;
                let n = match &*value.value {
                    ast::Value::Int(i) => i.try_to_i32().ok().map(i64::from),
                    ast::Value::Variable(v) => {
                        self.variables.get(v.as_str()).and_then(|v| v.as_i64())
                    }
                    _ => None,
                }?;
                Some(u64::try_from(n).unwrap_or(0))
            })
            .max()
            .unwrap_or(MAX_PAGE as u64)
    }

    fn is_connection(field: &Field) -> bool {
        field
            .definition
            .ty
            .inner_named_type()
            .ends_with("Connection")
    }

    /// Requested complexity of `set` when it is selected `times` times; `page` is the page
    /// size when `set` is a connection's selection.
    fn requested_in(&self, set: &SelectionSet, times: u64, page: Option<u64>) -> u64 {
        let mut fields = Vec::new();
        self.fields(set, &mut fields, &mut HashSet::new());
        let mut total = 0u64;
        for field in fields {
            if !self.is_composite(field) {
                continue;
            }
            total = total.saturating_add(times);
            let inner = match page {
                Some(n) if field.definition.ty.is_list() => times.saturating_mul(n),
                _ => times,
            };
            let page = Self::is_connection(field).then(|| self.page_size(field));
            total = total.saturating_add(self.requested_in(&field.selection_set, inner, page));
        }
        total
    }

    /// Requested complexity of the operation.
    pub(crate) fn requested(&self, selection_set: &SelectionSet) -> u64 {
        self.requested_in(selection_set, 1, None)
    }

    /// Actual complexity of `data`, the response to `selection_set`.
    pub(crate) fn actual(&self, selection_set: &SelectionSet, data: &Value) -> u64 {
        let mut fields = Vec::new();
        self.fields(selection_set, &mut fields, &mut HashSet::new());
        let Some(object) = data.as_object() else {
            return 0;
        };
        let mut total = 0u64;
        for field in fields {
            if !self.is_composite(field) {
                continue;
            }
            let value = object
                .get(field.response_key().as_str())
                .unwrap_or(&Value::Null);
            if value.is_null() {
                continue;
            }
            // The field counts once where it is returned, a list field too; the objects in
            // a list are counted through their own object fields (an edge's `node`).
            total += 1;
            let items: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for item in items {
                total += self.actual(&field.selection_set, item);
            }
        }
        total
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use serde_json::json;

    use super::*;

    const SDL: &str = "
        type Query { organization(slug: ID): Organization }
        type Organization { pipelines(first: Int, last: Int, after: String): PipelineConnection }
        type PipelineConnection { count: Int! edges: [PipelineEdge] }
        type PipelineEdge { node: Pipeline }
        type Pipeline { slug: String! }
    ";
    const QUERY: &str = "query RecentPipelineSlugs {
        organization(slug: \"organization-slug\") { pipelines(first: 500) { edges { node { slug } } } }
    }";

    #[test]
    fn the_documented_example_requests_503_and_costs_13_for_10_pipelines() {
        let schema = Schema::parse_and_validate(SDL, "schema.graphql").unwrap();
        let document = ExecutableDocument::parse_and_validate(&schema, QUERY, "q.graphql").unwrap();
        let variables = JsonMap::new();
        let cost = Cost {
            schema: &schema,
            document: &document,
            variables: &variables,
        };
        let operation = document.operations.get(None).unwrap();
        assert_eq!(cost.requested(&operation.selection_set), 503);
        let edges: Vec<_> = (0..10)
            .map(|n| json!({"node": {"slug": format!("p{n}")}}))
            .collect();
        let data = json!({"organization": {"pipelines": {"edges": edges}}});
        assert_eq!(cost.actual(&operation.selection_set, &data), 13);
        let none = json!({"organization": null});
        assert_eq!(cost.actual(&operation.selection_set, &none), 0);
    }

    fn requested(query: &str, variables: serde_json::Value) -> u64 {
        let schema = Schema::parse_and_validate(SDL, "schema.graphql").unwrap();
        let document = ExecutableDocument::parse_and_validate(&schema, query, "q.graphql").unwrap();
        let variables: JsonMap = serde_json::from_value(variables).unwrap();
        let cost = Cost {
            schema: &schema,
            document: &document,
            variables: &variables,
        };
        cost.requested(&document.operations.get(None).unwrap().selection_set)
    }

    #[test]
    fn a_connection_given_first_and_last_is_charged_the_larger_like_graphql_ruby() {
        let query = |first: &str, last: &str| {
            let declared = if first == "$n" { "($n: Int)" } else { "" };
            format!(
                "query Q{declared} {{ organization(slug: \"acme\") {{
                    pipelines(first: {first}, last: {last}) {{ edges {{ node {{ slug }} }} }}
                }} }}"
            )
        };
        // organization + pipelines + edges + N × node.
        assert_eq!(requested(&query("2", "40"), json!({})), 43);
        assert_eq!(requested(&query("40", "2"), json!({})), 43);
        assert_eq!(requested(&query("$n", "3"), json!({"n": 70})), 73);
        assert_eq!(requested(&query("$n", "3"), json!({"n": 1})), 6);
        let only_last =
            "{ organization(slug: \"acme\") { pipelines(last: 9) { edges { node { slug } } } } }";
        assert_eq!(requested(only_last, json!({})), 12);
        let neither = "{ organization(slug: \"acme\") { pipelines(after: \"c\") { edges { node { slug } } } } }";
        assert_eq!(requested(neither, json!({})), 503);
    }
}
