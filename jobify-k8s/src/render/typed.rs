//! Turning a pipeline's JSON (pod specs, containers, volume mounts) into Kubernetes types
//! without losing typos: k8s-openapi ignores fields it does not know, so the JSON is compared
//! with its typed round trip and any field that did not survive is reported.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::render::RenderError;

/// Parses `value` as a `T`, reporting a wrong shape or an unknown field at `path`.
pub(crate) fn from_json<T>(value: &Value, path: &str) -> Result<T, RenderError>
where
    T: DeserializeOwned + Serialize,
{
    let typed: T = serde_path_to_error::deserialize(value).map_err(|err| {
        let at = err.path().to_string();
        RenderError::InvalidField {
            path: join(path, if at == "." { "" } else { &at }),
            message: err.into_inner().to_string(),
        }
    })?;
    let round_trip = serde_json::to_value(&typed).map_err(|err| RenderError::InvalidField {
        path: path.to_owned(),
        message: err.to_string(),
    })?;
    if let Some(unknown) = first_unknown(value, &round_trip, path) {
        return Err(RenderError::UnknownField { path: unknown });
    }
    Ok(typed)
}

/// The first field present (and not null) in `input` but missing from `typed`.
fn first_unknown(input: &Value, typed: &Value, path: &str) -> Option<String> {
    match (input, typed) {
        (Value::Object(input), Value::Object(typed)) => input.iter().find_map(|(key, value)| {
            let here = join(path, key);
            match typed.get(key) {
                None if !value.is_null() => Some(here),
                None => None,
                Some(typed_value) => first_unknown(value, typed_value, &here),
            }
        }),
        (Value::Array(input), Value::Array(typed)) => input
            .iter()
            .zip(typed)
            .enumerate()
            .find_map(|(i, (a, b))| first_unknown(a, b, &format!("{path}[{i}]"))),
        _ => None,
    }
}

fn join(path: &str, field: &str) -> String {
    match (path.is_empty(), field.is_empty() || field.starts_with('[')) {
        (true, _) => field.to_owned(),
        (false, true) => format!("{path}{field}"),
        (false, false) => format!("{path}.{field}"),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_misspelt_field_is_reported_with_its_path() {
        let spec = json!({"containers": [{"name": "a", "image": "x"},
                                         {"name": "b", "image": "y", "imagePullPolicyy": "Always"}]});
        let err = from_json::<PodSpec>(&spec, "podSpec").expect_err("typo");
        assert_eq!(
            err,
            RenderError::UnknownField {
                path: "podSpec.containers[1].imagePullPolicyy".to_owned()
            }
        );
    }

    #[test]
    fn a_wrong_type_is_reported_with_its_path() {
        let spec = json!({"containers": [{"name": "a", "command": "make test"}]});
        let err = from_json::<PodSpec>(&spec, "podSpec").expect_err("wrong type");
        let RenderError::InvalidField { path, .. } = err else {
            panic!("expected InvalidField, got {err:?}")
        };
        assert_eq!(path, "podSpec.containers[0].command");
    }

    #[test]
    fn valid_json_parses_and_nulls_are_allowed() {
        let container: Container = from_json(
            &json!({"name": "a", "image": "x", "args": null}),
            "sidecars[0]",
        )
        .expect("valid");
        assert_eq!(container.image.as_deref(), Some("x"));
    }
}
