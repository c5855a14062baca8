//! Validation of what a real API server rejects with `422 Invalid`, with apimachinery's
//! wording.

use serde_json::Value;

use super::meta;
use super::quantity;
use super::resource::Resource;
use super::status::FieldError;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(is_dns1123_label_chars) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

fn is_dns1123_label_chars(part: &str) -> bool {
    // The subdomain regex has no per-part length limit.
    let b = part.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_label_body(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// apimachinery `IsValidLabelValue`.
pub(crate) fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_label_body(value) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// apimachinery `IsQualifiedName` (label and annotation keys).
pub(crate) fn qualified_name_errors(key: &str) -> Vec<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            errs.push("name part must be no more than 63 characters".to_string());
        }
        if !is_label_body(name) {
            errs.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain_errors(prefix)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    errs
}

/// Label keys and values under `path`.
fn validate_labels(labels: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for (key, value) in meta::string_map(labels) {
        for e in qualified_name_errors(&key) {
            errs.push(FieldError::invalid(path, &key, &e));
        }
        for e in label_value_errors(&value) {
            errs.push(FieldError::invalid(path, &value, &e));
        }
    }
}

/// `metadata` of any object: name and labels.
pub(crate) fn validate_object_meta(object: &Value, errs: &mut Vec<FieldError>) {
    let name = meta::name(object);
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for e in dns1123_subdomain_errors(name) {
            errs.push(FieldError::invalid("metadata.name", name, &e));
        }
    }
    validate_labels(&object["metadata"]["labels"], "metadata.labels", errs);
}

/// A pod spec at `path` (`spec` for pods, `spec.template.spec` for jobs).
pub(crate) fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut volumes = Vec::new();
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let name = v["name"].as_str().unwrap_or_default();
        let field = format!("{path}.volumes[{i}].name");
        if name.is_empty() {
            errs.push(FieldError::required(field, ""));
        } else if !is_dns1123_label(name) {
            errs.push(FieldError::invalid(field, name, DNS1123_LABEL_MSG));
        } else if volumes.contains(&name) {
            errs.push(FieldError::duplicate(field, name));
        }
        volumes.push(name);
    }
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let sources = v
            .as_object()
            .map_or(0, |m| m.keys().filter(|k| *k != "name").count());
        if sources == 0 {
            errs.push(FieldError::required(
                format!("{path}.volumes[{i}]"),
                "must specify a volume type",
            ));
        } else if sources > 1 {
            errs.push(FieldError {
                field: format!("{path}.volumes[{i}]"),
                reason: "FieldValueForbidden",
                body: "Forbidden: may not specify more than 1 volume type".to_string(),
            });
        }
    }
    validate_labels(&spec["nodeSelector"], &format!("{path}.nodeSelector"), errs);
    if let Some(sa) = spec["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        for e in dns1123_subdomain_errors(sa) {
            errs.push(FieldError::invalid(
                format!("{path}.serviceAccountName"),
                sa,
                &e,
            ));
        }
    }
    let containers = spec["containers"].as_array().filter(|c| !c.is_empty());
    let Some(containers) = containers else {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
        return;
    };
    let mut names = Vec::new();
    for (kind, list) in [
        ("initContainers", spec["initContainers"].as_array()),
        ("containers", Some(containers)),
    ] {
        for (i, c) in list.into_iter().flatten().enumerate() {
            let at = format!("{path}.{kind}[{i}]");
            let name = c["name"].as_str().unwrap_or_default();
            if name.is_empty() {
                errs.push(FieldError::required(format!("{at}.name"), ""));
            } else if !is_dns1123_label(name) {
                errs.push(FieldError::invalid(
                    format!("{at}.name"),
                    name,
                    DNS1123_LABEL_MSG,
                ));
            } else if names.contains(&name) {
                errs.push(FieldError::duplicate(format!("{at}.name"), name));
            }
            names.push(name);
            if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
                errs.push(FieldError::required(format!("{at}.image"), ""));
            }
            validate_ports_and_env(c, &at, errs);
            for (j, m) in c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let mount = m["name"].as_str().unwrap_or_default();
                if !volumes.contains(&mount) {
                    errs.push(FieldError::not_found(
                        format!("{at}.volumeMounts[{j}].name"),
                        mount,
                    ));
                }
                if m["mountPath"].as_str().is_none_or(str::is_empty) {
                    errs.push(FieldError::required(
                        format!("{at}.volumeMounts[{j}].mountPath"),
                        "",
                    ));
                }
            }
            validate_pull_policy_and_resources(c, &at, errs);
        }
    }
}

/// Ports and environment of one container at `at` (validated before its mounts).
fn validate_ports_and_env(c: &Value, at: &str, errs: &mut Vec<FieldError>) {
    for (i, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
        if let Some(port) = p["containerPort"].as_i64()
            && !(1..=65535).contains(&port)
        {
            errs.push(FieldError {
                field: format!("{at}.ports[{i}].containerPort"),
                reason: "FieldValueInvalid",
                body: format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
            });
        }
    }
    for (i, e) in c["env"].as_array().into_iter().flatten().enumerate() {
        let name = e["name"].as_str().unwrap_or_default();
        let field = format!("{at}.env[{i}].name");
        if name.is_empty() {
            errs.push(FieldError::required(field, ""));
        } else if !name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
        {
            errs.push(FieldError::invalid(
                field,
                name,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
    }
}

/// Pull policy and resources of one container at `at` (validated after its mounts).
fn validate_pull_policy_and_resources(c: &Value, at: &str, errs: &mut Vec<FieldError>) {
    if let Some(policy) = c["imagePullPolicy"].as_str()
        && !["Always", "IfNotPresent", "Never"].contains(&policy)
    {
        errs.push(FieldError::not_supported(
            format!("{at}.imagePullPolicy"),
            policy,
            &["Always", "IfNotPresent", "Never"],
        ));
    }
    let limits = &c["resources"]["limits"];
    for (resource, request) in c["resources"]["requests"].as_object().into_iter().flatten() {
        let (Some(req), Some(limit)) = (
            quantity::parse_json(request),
            quantity::parse_json(&limits[resource.as_str()]),
        ) else {
            continue;
        };
        if req > limit {
            let shown = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
            errs.push(FieldError::invalid(
                format!("{at}.resources.requests"),
                &shown(request),
                &format!(
                    "must be less than or equal to {resource} limit of {}",
                    shown(&limits[resource.as_str()])
                ),
            ));
        }
    }
}

/// A decode error: what a real API server refuses with `400 BadRequest` before validating
/// (a malformed resource quantity).
pub(crate) fn decode_error(resource: Resource, object: &Value) -> Option<String> {
    let spec = match resource {
        Resource::Jobs => &object["spec"]["template"]["spec"],
        Resource::Pods => &object["spec"],
        Resource::PodTemplates => &object["template"]["spec"],
        Resource::Events | Resource::Leases | Resource::Secrets => return None,
    };
    let malformed = ["initContainers", "containers"]
        .into_iter()
        .flat_map(|k| spec[k].as_array().into_iter().flatten())
        .flat_map(|c| ["limits", "requests"].map(|k| &c["resources"][k]))
        .filter_map(Value::as_object)
        .flat_map(|m| m.values())
        .any(|q| quantity::parse_json(q).is_none());
    malformed.then(|| {
        format!(
            "{} in version \"v1\" cannot be handled as a {}: {}",
            resource.kind(),
            resource.kind(),
            quantity::QUANTITY_MSG
        )
    })
}

/// Everything the simulator validates for a create or update of `object`.
pub(crate) fn validate(resource: Resource, object: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_object_meta(object, &mut errs);
    match resource {
        Resource::Jobs => validate_job(object, &mut errs),
        Resource::Pods => {
            validate_pod_spec(&object["spec"], "spec", &mut errs);
            let policy = object["spec"]["restartPolicy"].as_str().unwrap_or("Always");
            if !["Always", "OnFailure", "Never"].contains(&policy) {
                errs.push(FieldError::not_supported(
                    "spec.restartPolicy",
                    policy,
                    &["Always", "OnFailure", "Never"],
                ));
            }
        }
        Resource::Secrets => errs.extend(super::secret::validate(object)),
        Resource::PodTemplates => {
            validate_pod_spec(&object["template"]["spec"], "template.spec", &mut errs);
        }
        Resource::Events | Resource::Leases => {}
    }
    errs
}

fn validate_job(job: &Value, errs: &mut Vec<FieldError>) {
    let spec = &job["spec"];
    let template = &spec["template"];
    validate_labels(
        &template["metadata"]["labels"],
        "spec.template.labels",
        errs,
    );
    for (field, value) in [
        ("spec.backoffLimit", &spec["backoffLimit"]),
        ("spec.activeDeadlineSeconds", &spec["activeDeadlineSeconds"]),
        (
            "spec.ttlSecondsAfterFinished",
            &spec["ttlSecondsAfterFinished"],
        ),
    ] {
        if let Some(n) = value.as_i64().filter(|n| *n < 0) {
            errs.push(FieldError {
                field: field.to_string(),
                reason: "FieldValueInvalid",
                body: format!("Invalid value: {n}: must be greater than or equal to 0"),
            });
        }
    }
    if let Some(n) = spec["activeDeadlineSeconds"].as_i64().filter(|n| *n == 0) {
        errs.push(FieldError {
            field: "spec.activeDeadlineSeconds".to_string(),
            reason: "FieldValueInvalid",
            body: format!("Invalid value: {n}: must be greater than 0"),
        });
    }
    validate_pod_spec(&template["spec"], "spec.template.spec", errs);
    // The API server defaults an unset restartPolicy to Always before validating.
    let policy = template["spec"]["restartPolicy"]
        .as_str()
        .unwrap_or("Always");
    if policy != "OnFailure" && policy != "Never" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["OnFailure", "Never"],
        ));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(name: &str, restart: &str, containers: Value) -> Value {
        json!({
            "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": restart, "containers": containers}}}
        })
    }

    #[test]
    fn valid_job_passes() {
        let j = job(
            "ok",
            "Never",
            json!([{"name": "agent", "image": "busybox"}]),
        );
        assert_eq!(validate(Resource::Jobs, &j), vec![]);
    }

    #[test]
    fn uppercase_name_is_not_a_subdomain() {
        let j = job(
            "Bad_Name",
            "Never",
            json!([{"name": "agent", "image": "busybox"}]),
        );
        let errs = validate(Resource::Jobs, &j);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().starts_with(
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
    }

    #[test]
    fn restart_policy_always_is_unsupported_for_jobs() {
        let j = job(
            "ok",
            "Always",
            json!([{"name": "agent", "image": "busybox"}]),
        );
        let errs = validate(Resource::Jobs, &j);
        assert_eq!(
            errs[0].to_string(),
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn containers_need_unique_names_images_and_known_mounts() {
        let j = job(
            "ok",
            "Never",
            json!([
                {"name": "a", "image": "x", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]},
                {"name": "a"}
            ]),
        );
        let errs: Vec<String> = validate(Resource::Jobs, &j)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"nope\"",
                "spec.template.spec.containers[1].name: Duplicate value: \"a\"",
                "spec.template.spec.containers[1].image: Required value",
            ]
        );
    }

    #[test]
    fn container_details_are_validated_like_the_api_server() {
        let j = job(
            "ok",
            "Never",
            json!([{
                "name": "a", "image": "x", "imagePullPolicy": "always",
                "env": [{"name": "A=B", "value": "1"}],
                "ports": [{"containerPort": 0}],
                "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
            }]),
        );
        let errs: Vec<String> = validate(Resource::Jobs, &j)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.template.spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
                "spec.template.spec.containers[0].imagePullPolicy: Unsupported value: \"always\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
                "spec.template.spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            ]
        );
    }

    #[test]
    fn malformed_quantity_is_a_decode_error() {
        let j = job(
            "ok",
            "Never",
            json!([{"name": "a", "image": "x", "resources": {"limits": {"memory": "1GB"}}}]),
        );
        assert_eq!(
            decode_error(Resource::Jobs, &j).unwrap(),
            "Job in version \"v1\" cannot be handled as a Job: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn volumes_need_exactly_one_source() {
        let mut j = job("ok", "Never", json!([{"name": "a", "image": "x"}]));
        j["spec"]["template"]["spec"]["volumes"] = json!([{"name": "v"}]);
        let errs = validate(Resource::Jobs, &j);
        assert_eq!(
            errs[0].to_string(),
            "spec.template.spec.volumes[0]: Required value: must specify a volume type"
        );
    }

    #[test]
    fn label_values_longer_than_63_are_rejected() {
        assert_eq!(
            label_value_errors(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(label_value_errors("a-b_c.D"), Vec::<String>::new());
        assert_eq!(label_value_errors("-a").len(), 1);
    }
}
