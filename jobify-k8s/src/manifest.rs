//! Manifests as YAML that every Kubernetes tool reads back as written.
//!
//! kubectl (`sigs.k8s.io/yaml`) and Python's PyYAML read YAML 1.1, where the plain scalars
//! `yes`, `no`, `on`, `off`, `y` and `n` are booleans and `0x1F` or `1_000` are numbers. A YAML
//! 1.2 writer leaves such strings unquoted, so an environment variable `value: yes` written
//! that way comes back as `true` and the object is refused. This writer leaves a string plain
//! only when it is a word no YAML version reads as anything else, and quotes every other
//! string the way JSON does (a JSON string is a YAML double-quoted scalar in both versions).

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

/// `value` as a YAML document (block style, two-space indent, ending in a newline), with
/// every string that is not a plain word double-quoted.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = String::new();
    match &value {
        Value::Object(map) if !map.is_empty() => block(&value, 0, &mut out),
        Value::Array(items) if !items.is_empty() => block(&value, 0, &mut out),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    Ok(out)
}

/// A non-empty map or list, one entry per line at `indent`.
fn block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let key = string(key);
                if is_block(value) {
                    let _ = writeln!(out, "{pad}{key}:");
                    // A list under a key is written at the key's indent, as kubectl does.
                    let inner = if value.is_array() { indent } else { indent + 2 };
                    block(value, inner, out);
                } else {
                    let _ = writeln!(out, "{pad}{key}: {}", inline(value));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if is_block(item) {
                    // The item's first line follows the dash; the rest line up under it.
                    let mut item_text = String::new();
                    block(item, indent + 2, &mut item_text);
                    let first = indent + 2;
                    let text = item_text.get(first..).unwrap_or_default();
                    let _ = write!(out, "{pad}- {text}");
                } else {
                    let _ = writeln!(out, "{pad}- {}", inline(item));
                }
            }
        }
        scalar => {
            let _ = writeln!(out, "{pad}{}", inline(scalar));
        }
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
    }
}

/// `s` plain when it is a word both YAML versions read as that string, else JSON-quoted.
fn string(s: &str) -> String {
    if is_plain_word(s) {
        s.to_owned()
    } else {
        serde_json::Value::String(s.to_owned()).to_string()
    }
}

/// Starts with a letter or `/`, holds only letters, digits and `-._/`, and is none of YAML
/// 1.1's booleans and nulls (in any case).
fn is_plain_word(s: &str) -> bool {
    const SPECIAL: [&str; 12] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf", "~",
    ];
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/'))
        && !SPECIAL.contains(&s.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn words_a_yaml_1_1_reader_would_misread_are_quoted() {
        for tricky in [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "n",
            "true",
            "Null",
            "~",
            "0x1F",
            "1_000",
            "1e3",
            "010",
            "1:20",
            ".inf",
            "-",
            "",
            " lead",
            "a: b",
            "#c",
            "*alias",
            "!tag",
            "2026-12-04",
        ] {
            let text = to_yaml(&json!({ "value": tricky })).expect("yaml");
            assert!(text.starts_with("value: \""), "{tricky:?}: {text}");
        }
        for word in [
            "Never",
            "batch/v1",
            "jobify-0190",
            "/workspace/tini-static",
            "a.b_c",
        ] {
            assert_eq!(
                to_yaml(&json!({ "value": word })).expect("yaml"),
                format!("value: {word}\n")
            );
        }
    }

    #[test]
    fn the_yaml_reads_back_as_the_value() {
        let value = json!({
            "apiVersion": "batch/v1",
            "metadata": {"labels": {"a": "yes"}, "annotations": {}},
            "spec": {"template": {"spec": {
                "containers": [
                    {"name": "agent", "env": [{"name": "ON", "value": "on"}], "args": []},
                    {"name": "build", "command": ["/bin/sh", "-c"],
                     "args": ["set -eu\necho \"$1\" 'x'\n", "tab\there"]}
                ],
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 60,
                "hostNetwork": false,
                "nested": [[1, 2], [], {"k": null}]
            }}}
        });
        let text = to_yaml(&value).expect("yaml");
        let back: Value = serde_yaml::from_str(&text).expect("reads back");
        assert_eq!(back, value, "{text}");
        assert!(
            text.contains(
                "\n      containers:\n      - args: []\n        env:\n        - name: \"ON\"\n"
            ),
            "{text}"
        );
    }
}
