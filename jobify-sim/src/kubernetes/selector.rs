//! `labelSelector` and `fieldSelector` query parameters, parsed like apimachinery does.

use std::collections::BTreeMap;

use serde_json::Value;

use super::meta;
use super::resource::Resource;
use super::status::ApiError;
use super::validate;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    /// The key and values, which apimachinery checks as a label key and label values.
    fn parts(&self) -> (&str, &[String]) {
        match self {
            Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => {
                (k, std::slice::from_ref(v))
            }
            Requirement::In(k, vs) | Requirement::NotIn(k, vs) => (k, vs),
            Requirement::Exists(k) | Requirement::DoesNotExist(k) => (k, &[]),
        }
    }

    /// Refuses a key that is not a qualified name or a value that is not a label value
    /// (`a=b c`, `a in (-x)`), as apimachinery's `NewRequirement` does.
    fn checked(self) -> Result<Requirement, ApiError> {
        let (key, values) = self.parts();
        let invalid = |what: &str, errs: Vec<String>| {
            ApiError::BadRequest(format!(
                "unable to parse requirement: <nil>: Invalid value: \"{what}\": {}",
                errs.join("; ")
            ))
        };
        let errs = validate::qualified_name_errors(key);
        if !errs.is_empty() {
            return Err(invalid(key, errs));
        }
        for value in values {
            let errs = validate::label_value_errors(value);
            if !errs.is_empty() {
                return Err(invalid(value, errs));
            }
        }
        Ok(self)
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            // As in apimachinery: `!=` and `notin` also match objects without the key.
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A parsed `labelSelector` (all requirements must hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`. An empty (or all-blank) text selects
    /// everything; an empty requirement (`a,`, `,a`, `a,,b`) is refused, as apimachinery's
    /// parser refuses it.
    pub(crate) fn parse(text: &str) -> Result<Self, ApiError> {
        if text.trim().is_empty() {
            return Ok(LabelSelector::default());
        }
        split_top_level(text)
            .into_iter()
            .map(str::trim)
            .map(|part| {
                if part.is_empty() {
                    Err(ApiError::BadRequest(format!(
                        "unable to parse requirement: found '', expected: identifier after ',' in \"{text}\""
                    )))
                } else {
                    parse_requirement(part).and_then(Requirement::checked)
                }
            })
            .collect::<Result<_, _>>()
            .map(LabelSelector)
    }

    /// Whether `object`'s labels satisfy every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = meta::labels(object);
        self.0.iter().all(|r| r.matches(&labels))
    }

    /// Whether the selector selects everything.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits at commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, ApiError> {
    let bad = |why: &str| {
        ApiError::BadRequest(format!(
            "unable to parse requirement: <nil>: Invalid value: \"{part}\": {why}"
        ))
    };
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(checked_key(key.trim(), part)?));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(
            checked_key(k.trim(), part)?,
            v.trim().to_string(),
        ));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(
            checked_key(k.trim(), part)?,
            v.trim().to_string(),
        ));
    }
    let words: Vec<&str> = part.splitn(3, char::is_whitespace).collect();
    match words.as_slice() {
        [key] => Ok(Requirement::Exists(checked_key(key, part)?)),
        [key, op, rest] if *op == "in" || *op == "notin" => {
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| bad("found '', expected: '('"))?;
            let values = inner.split(',').map(|v| v.trim().to_string()).collect();
            let key = checked_key(key, part)?;
            Ok(if *op == "in" {
                Requirement::In(key, values)
            } else {
                Requirement::NotIn(key, values)
            })
        }
        _ => Err(bad("found unexpected operator")),
    }
}

fn checked_key(key: &str, part: &str) -> Result<String, ApiError> {
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(ApiError::BadRequest(format!(
            "unable to parse requirement: found '{part}', expected: identifier"
        )));
    }
    Ok(key.to_string())
}

/// A parsed `fieldSelector`: `field=value` / `field==value` / `field!=value` terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

/// The fields each resource can be selected by (as the real registries allow).
fn supported_fields(resource: Resource) -> &'static [&'static str] {
    match resource {
        Resource::Jobs => &["metadata.name", "metadata.namespace", "status.successful"],
        Resource::Pods => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Resource::Events => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        Resource::Leases | Resource::PodTemplates => &["metadata.name", "metadata.namespace"],
        Resource::Secrets => &["metadata.name", "metadata.namespace", "type"],
    }
}

impl FieldSelector {
    /// Parses a field selector for `resource`; unsupported fields are a 400 like the real
    /// server's `field label not supported`.
    pub(crate) fn parse(resource: Resource, text: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !supported_fields(resource).contains(&field) {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    /// Whether `object` satisfies every term.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = field_value(object, field);
            (actual == *value) == *equal
        })
    }

    /// Whether the selector selects everything.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn field_value(object: &Value, field: &str) -> String {
    if field == "source" {
        return object["source"]["component"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    let mut v = object;
    for part in field.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "labels": labels}})
    }

    #[test]
    fn label_selector_supports_every_operator() {
        let o = obj(json!({"app": "web", "tier": "a"}));
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "app in (web, db)",
            "app notin (db)",
            "tier",
            "!missing",
            "app=web,tier in (a,b)",
            "missing!=x",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(&o), "{s}");
        }
        let no = [
            "app=db",
            "app in (db)",
            "!tier",
            "missing",
            "app notin (web)",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(&o), "{s}");
        }
    }

    #[test]
    fn empty_label_selector_selects_everything() {
        let o = obj(json!({"app": "web"}));
        for s in ["", "  "] {
            assert!(LabelSelector::parse(s).unwrap().matches(&o), "{s:?}");
        }
    }

    #[test]
    fn empty_requirement_between_commas_is_a_bad_request() {
        for s in ["app=web,", ",app=web", "app=web,,tier", "app=web, "] {
            let e = LabelSelector::parse(s).unwrap_err();
            assert!(matches!(e, ApiError::BadRequest(_)), "{s:?}: {e}");
            assert!(e.to_string().contains("expected: identifier"), "{s:?}: {e}");
        }
    }

    #[test]
    fn invalid_label_key_or_value_is_a_bad_request() {
        let bad = [
            "app=web tier",
            "app=-web",
            "app in (web, db x)",
            "app notin (web_)",
            "-app",
            "!app_",
            "example.com/=x",
            "Bad_Prefix/app=x",
        ];
        for s in bad {
            let e = LabelSelector::parse(s).unwrap_err();
            assert!(matches!(e, ApiError::BadRequest(_)), "{s:?}: {e}");
            assert!(e.to_string().contains("Invalid value"), "{s:?}: {e}");
        }
        let o = obj(json!({"example.com/app": "web", "tier": ""}));
        for s in [
            "example.com/app=web",
            "tier=",
            "tier in (a, )",
            "app.kubernetes.io/x!=y",
        ] {
            assert!(LabelSelector::parse(s).unwrap().matches(&o), "{s:?}");
        }
    }

    #[test]
    fn unsupported_field_is_a_bad_request() {
        let e = FieldSelector::parse(Resource::Jobs, "spec.foo=1").unwrap_err();
        assert_eq!(e.to_string(), "field label not supported: spec.foo");
    }

    #[test]
    fn event_field_selector_matches_involved_object() {
        let ev = json!({"involvedObject": {"name": "p", "kind": "Pod"}, "metadata": {"name": "e"}});
        let s = FieldSelector::parse(
            Resource::Events,
            "involvedObject.name=p,involvedObject.kind=Pod",
        )
        .unwrap();
        assert!(s.matches(&ev));
        let s = FieldSelector::parse(Resource::Events, "involvedObject.name!=p").unwrap();
        assert!(!s.matches(&ev));
    }
}
