//! Our subset of Buildkite's schema (`buildkite-api/graphql/schema.graphql`) and the
//! validation of incoming documents against it, with errors shaped like graphql-ruby's
//! (Buildkite's GraphQL server): `message`, `locations`, `path` from the operation name,
//! `extensions.code`.

use std::sync::Arc;

use apollo_compiler::ast::{self, Definition, Selection};
use apollo_compiler::parser::SourceSpan;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Name, Node, Schema};
use serde_json::{Value, json};

/// The schema file shared with the `buildkite-api` crate: what jobify may ask, and so what
/// the simulator accepts.
pub(crate) const SCHEMA_SDL: &str = include_str!("../../../buildkite-api/graphql/schema.graphql");

/// Parses and validates the subset schema.
pub(crate) fn load() -> Result<Arc<Valid<Schema>>, String> {
    Schema::parse_and_validate(SCHEMA_SDL, "buildkite-api/graphql/schema.graphql")
        .map(Arc::new)
        .map_err(|e| e.errors.to_string())
}

/// Parses and validates `query`; on failure, the GraphQL `errors` array to answer with.
pub(crate) fn validate(
    schema: &Valid<Schema>,
    query: &str,
) -> Result<Valid<ExecutableDocument>, Vec<Value>> {
    let ast = match ast::Document::parse(query, "query.graphql") {
        Ok(ast) => ast,
        Err(with_errors) => {
            return Err(with_errors
                .errors
                .iter()
                .map(|d| {
                    let json = d.to_json();
                    let at = json.locations.first().map(|l| (l.line, l.column));
                    let (line, column) = at.unwrap_or((1, 1));
                    json!({
                        "message": format!("Parse error: {} at [{line}, {column}]", json.message),
                        "locations": [{"line": line, "column": column}],
                    })
                })
                .collect());
        }
    };
    let mut checker = Checker {
        schema,
        sources: &ast.sources,
        errors: Vec::new(),
    };
    checker.document(&ast);
    if !checker.errors.is_empty() {
        return Err(checker.errors);
    }
    ExecutableDocument::parse_and_validate(schema, query, "query.graphql").map_err(|with_errors| {
        with_errors
            .errors
            .iter()
            .map(|d| {
                let json = d.to_json();
                json!({
                    "message": json.message,
                    "locations": json.locations.iter()
                        .map(|l| json!({"line": l.line, "column": l.column}))
                        .collect::<Vec<_>>(),
                    "extensions": {"code": "validationFailed"},
                })
            })
            .collect()
    })
}

/// Finds the errors graphql-ruby phrases its own way (unknown fields, arguments and types),
/// so that clients matching on Buildkite's messages see them.
struct Checker<'a> {
    schema: &'a Valid<Schema>,
    sources: &'a apollo_compiler::parser::SourceMap,
    errors: Vec<Value>,
}

impl Checker<'_> {
    fn document(&mut self, doc: &ast::Document) {
        for definition in &doc.definitions {
            match definition {
                Definition::OperationDefinition(op) => {
                    let kind = match op.operation_type {
                        ast::OperationType::Query => "query",
                        ast::OperationType::Mutation => "mutation",
                        ast::OperationType::Subscription => "subscription",
                    };
                    let root = self.schema.root_operation(op.operation_type).cloned();
                    let head = match &op.name {
                        Some(name) => format!("{kind} {name}"),
                        None => kind.to_owned(),
                    };
                    match root {
                        Some(root) => self.selections(&root, &op.selection_set, &[head]),
                        None => self.errors.push(json!({
                            "message": format!("Schema is not configured for {kind}s"),
                            "locations": self.locations(op.location()),
                            "path": [head],
                            "extensions": {"code": "missingMutationConfiguration"},
                        })),
                    }
                }
                Definition::FragmentDefinition(fragment) => {
                    let head = format!("fragment {}", fragment.name);
                    if self.schema.types.contains_key(&fragment.type_condition) {
                        let ty = fragment.type_condition.clone();
                        self.selections(&ty, &fragment.selection_set, &[head]);
                    } else {
                        self.undefined_type(&fragment.type_condition, fragment.location(), &[head]);
                    }
                }
                _ => {}
            }
        }
    }

    fn selections(&mut self, parent: &Name, selections: &[Selection], path: &[String]) {
        for selection in selections {
            match selection {
                Selection::Field(field) => self.field(parent, field, path),
                Selection::InlineFragment(inline) => {
                    let ty = inline
                        .type_condition
                        .clone()
                        .unwrap_or_else(|| parent.clone());
                    let mut path = path.to_vec();
                    path.push(match &inline.type_condition {
                        Some(t) => format!("... on {t}"),
                        None => "...".to_owned(),
                    });
                    if self.schema.types.contains_key(&ty) {
                        self.selections(&ty, &inline.selection_set, &path);
                    } else {
                        self.undefined_type(&ty, inline.location(), &path);
                    }
                }
                Selection::FragmentSpread(_) => {}
            }
        }
    }

    fn field(&mut self, parent: &Name, field: &Node<ast::Field>, path: &[String]) {
        let mut path = path.to_vec();
        path.push(field.response_name().to_string());
        if field.name.starts_with("__") {
            return;
        }
        if let Some(ExtendedType::Union(_)) = self.schema.types.get(parent) {
            self.errors.push(json!({
                "message": format!("Selections can't be made directly on unions (see selections on {parent})"),
                "locations": self.locations(field.location()),
                "path": path,
                "extensions": {"code": "selectionMismatch", "nodeName": parent.as_str()},
            }));
            return;
        }
        let Ok(definition) = self.schema.type_field(parent, &field.name) else {
            self.errors.push(json!({
                "message": format!("Field '{}' doesn't exist on type '{parent}'", field.name),
                "locations": self.locations(field.location()),
                "path": path,
                "extensions": {
                    "code": "undefinedField",
                    "typeName": parent.as_str(),
                    "fieldName": field.name.as_str(),
                },
            }));
            return;
        };
        for argument in &field.arguments {
            if definition.argument_by_name(&argument.name).is_none() {
                let mut arg_path = path.clone();
                arg_path.push(argument.name.to_string());
                self.errors.push(json!({
                    "message": format!("Field '{}' doesn't accept argument '{}'", field.name, argument.name),
                    "locations": self.locations(argument.location()),
                    "path": arg_path,
                    "extensions": {
                        "code": "argumentNotAccepted",
                        "name": field.name.as_str(),
                        "typeName": "Field",
                        "argumentName": argument.name.as_str(),
                    },
                }));
            }
        }
        let inner = definition.ty.inner_named_type().clone();
        self.selections(&inner, &field.selection_set, &path);
    }

    fn undefined_type(&mut self, ty: &Name, at: Option<SourceSpan>, path: &[String]) {
        self.errors.push(json!({
            "message": format!("No such type {ty}, so it can't be a fragment condition"),
            "locations": self.locations(at),
            "path": path,
            "extensions": {"code": "undefinedType", "typeName": ty.as_str()},
        }));
    }

    fn locations(&self, at: Option<SourceSpan>) -> Value {
        let at = at.and_then(|span| span.line_column(self.sources));
        Value::Array(
            at.into_iter()
                .map(|lc| json!({"line": lc.line, "column": lc.column}))
                .collect(),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use super::*;

    #[test]
    fn the_shared_subset_schema_is_valid() {
        load().unwrap();
    }

    #[test]
    fn unknown_fields_are_reported_like_graphql_ruby() {
        let schema = load().unwrap();
        let errors = validate(
            &schema,
            "query Q { job(uuid: \"x\") { ... on JobTypeCommand { foo } } }",
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0]["message"],
            "Field 'foo' doesn't exist on type 'JobTypeCommand'"
        );
        assert_eq!(
            errors[0]["path"],
            json!(["query Q", "job", "... on JobTypeCommand", "foo"])
        );
        assert_eq!(errors[0]["extensions"]["code"], "undefinedField");
        assert_eq!(errors[0]["locations"], json!([{"line": 1, "column": 52}]));
    }

    #[test]
    fn unknown_arguments_are_reported_like_graphql_ruby() {
        let schema = load().unwrap();
        let errors =
            validate(&schema, "{ organization(slug: \"a\", bogus: 1) { slug } }").unwrap_err();
        assert_eq!(
            errors[0]["message"],
            "Field 'organization' doesn't accept argument 'bogus'"
        );
        assert_eq!(errors[0]["extensions"]["code"], "argumentNotAccepted");
    }

    #[test]
    fn other_invalid_documents_still_fail() {
        let schema = load().unwrap();
        // A required argument is missing: apollo-compiler's rules catch it.
        assert!(validate(&schema, "{ job { __typename } }").is_err());
        assert!(validate(&schema, "{ job(uuid: \"x\") { __typename } }").is_ok());
        assert!(validate(&schema, "{ job(uuid: ").is_err());
    }
}
