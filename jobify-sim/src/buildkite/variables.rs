//! Variable coercion with graphql-ruby's errors: every invalid variable is reported as
//! `Variable $name of type T was provided invalid value`, with the offending value and the
//! problem in `extensions`.

use apollo_compiler::executable::Operation;
use apollo_compiler::request::coerce_variable_values;
use apollo_compiler::response::JsonMap;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use serde_json::{Value, json};

/// Coerces `raw` for `operation`; on failure, one error per invalid variable.
pub(crate) fn coerce(
    schema: &Valid<Schema>,
    document: &Valid<ExecutableDocument>,
    operation: &Operation,
    raw: &JsonMap,
) -> Result<Valid<JsonMap>, Vec<Value>> {
    let all = coerce_variable_values(schema, operation, raw);
    if let Ok(coerced) = all {
        return Ok(coerced);
    }
    // Coerce each variable alone to name every invalid one, as graphql-ruby does.
    let mut errors = Vec::new();
    for definition in &operation.variables {
        let mut alone = operation.clone();
        alone.variables = vec![definition.clone()];
        let value: JsonMap = raw
            .get_key_value(definition.name.as_str())
            .map(|(k, v)| (k.clone(), v.clone()))
            .into_iter()
            .collect();
        if let Err(e) = coerce_variable_values(schema, &alone, &value) {
            let problem = e.message().to_string();
            let explanation = if problem.contains("missing value") || problem.contains("null value")
            {
                "Expected value to not be null".to_owned()
            } else {
                problem
            };
            let given = value.values().next().map_or(Value::Null, |v| {
                serde_json::to_value(v).unwrap_or(Value::Null)
            });
            let at = definition
                .location()
                .and_then(|l| l.line_column(&document.sources));
            errors.push(json!({
                "message": format!(
                    "Variable ${} of type {} was provided invalid value",
                    definition.name, definition.ty
                ),
                "locations": at.map(|lc| vec![json!({"line": lc.line, "column": lc.column})]).unwrap_or_default(),
                "extensions": {
                    "value": given,
                    "problems": [{"path": [], "explanation": explanation}],
                },
            }));
        }
    }
    if errors.is_empty() {
        // The variables are fine alone but not together: report what apollo-compiler said.
        let message = all
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        errors.push(json!({ "message": message }));
    }
    Err(errors)
}
