//! What the API server does to a `v1` Secret besides what every object gets: `stringData`
//! merged into `data` when decoding (and never stored), `data` values checked as base64 the
//! way Go's decoder reads them, `type` defaulted to `Opaque`, and the update rules of an
//! `immutable` Secret.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::status::{ApiError, FieldError};

/// The largest total size of a Secret's `data` (`core.MaxSecretSize`).
const MAX_SECRET_SIZE: usize = 1024 * 1024;

const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

const IMMUTABLE_MSG: &str = "field is immutable when `immutable` is set";

/// Decodes a Secret body as the API server's JSON decoder and conversion do: every `data`
/// value must be standard base64 (a `400` otherwise, as a `[]byte` field that does not
/// decode is), `stringData` is merged over `data` and dropped, and `data` comes out in
/// canonical base64.
pub(crate) fn decode(secret: &mut Value) -> Result<(), ApiError> {
    let undecodable = |why: String| {
        ApiError::BadRequest(format!(
            "Secret in version \"v1\" cannot be handled as a Secret: {why}"
        ))
    };
    let mut data = Map::new();
    match &secret["data"] {
        Value::Null => {}
        Value::Object(given) => {
            for (key, value) in given {
                let Value::String(text) = value else {
                    return Err(undecodable(format!(
                        "json: cannot unmarshal {} into Go struct field Secret.data of type []uint8",
                        json_type(value)
                    )));
                };
                let bytes = decode_go_base64(text.as_bytes())
                    .map_err(|at| undecodable(format!("illegal base64 data at input byte {at}")))?;
                data.insert(key.clone(), json!(encode(&bytes)));
            }
        }
        other => {
            return Err(undecodable(format!(
                "json: cannot unmarshal {} into Go struct field Secret.data of type map[string][]uint8",
                json_type(other)
            )));
        }
    }
    match &secret["stringData"] {
        Value::Null => {}
        Value::Object(given) => {
            for (key, value) in given {
                let Value::String(text) = value else {
                    return Err(undecodable(format!(
                        "json: cannot unmarshal {} into Go struct field Secret.stringData of type string",
                        json_type(value)
                    )));
                };
                data.insert(key.clone(), json!(encode(text.as_bytes())));
            }
        }
        other => {
            return Err(undecodable(format!(
                "json: cannot unmarshal {} into Go struct field Secret.stringData of type map[string]string",
                json_type(other)
            )));
        }
    }
    if let Some(fields) = secret.as_object_mut() {
        fields.remove("stringData");
        if data.is_empty() {
            fields.remove("data");
        } else {
            fields.insert("data".to_string(), Value::Object(data));
        }
    }
    if secret["type"].as_str().is_none_or(str::is_empty) {
        secret["type"] = json!("Opaque");
    }
    Ok(())
}

/// `ValidateSecret`: the keys of `data`, its total size, and the keys some types require.
pub(crate) fn validate(secret: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let data = secret["data"].as_object();
    let mut size = 0;
    for (key, value) in data.into_iter().flatten() {
        for e in key_errors(key) {
            errs.push(FieldError::invalid(format!("data[{key}]"), key, &e));
        }
        // `decode` left canonical base64: its decoded length follows from its own.
        let text = value.as_str().unwrap_or_default();
        let padding = text.bytes().rev().take_while(|b| *b == b'=').count();
        size += (text.len() / 4 * 3).saturating_sub(padding);
    }
    if size > MAX_SECRET_SIZE {
        errs.push(FieldError {
            field: "data".to_string(),
            reason: "FieldValueTooLong",
            body: format!("Too long: may not be more than {MAX_SECRET_SIZE} bytes"),
        });
    }
    let has = |key: &str| data.is_some_and(|d| d.contains_key(key));
    let required: &[&str] = match secret["type"].as_str().unwrap_or_default() {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        _ => &[],
    };
    for key in required {
        if !has(key) {
            errs.push(FieldError::required(format!("data[{key}]"), ""));
        }
    }
    if secret["type"] == "kubernetes.io/basic-auth" && !has("username") && !has("password") {
        errs.push(FieldError::required("data[username]", ""));
        errs.push(FieldError::required("data[password]", ""));
    }
    errs
}

/// `ValidateSecretUpdate` beyond metadata: `type` never changes, and an `immutable` Secret
/// keeps its `data` and stays immutable (its metadata may still change).
pub(crate) fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if new["type"] != old["type"] {
        errs.push(FieldError::immutable(
            "type",
            new["type"].as_str().unwrap_or_default(),
        ));
    }
    if old["immutable"] == json!(true) {
        if new["immutable"] != json!(true) {
            errs.push(FieldError::forbidden("immutable", IMMUTABLE_MSG));
        }
        if new["data"] != old["data"] {
            errs.push(FieldError::forbidden("data", IMMUTABLE_MSG));
        }
    }
    errs
}

/// apimachinery `IsConfigMapKey`.
fn key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        errs.push(KEY_MSG.to_string());
    }
    if key == "." {
        errs.push("must not be '.'".to_string());
    } else if key == ".." {
        errs.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard, padded base64 as Go's `base64.StdEncoding.Decode` does (which
/// `encoding/json` uses for `[]byte`): `\r` and `\n` are skipped, unused trailing bits are
/// ignored, and a failure names the offset Go's `CorruptInputError` would.
fn decode_go_base64(src: &[u8]) -> Result<Vec<u8>, usize> {
    fn sextet(b: u8) -> Option<u8> {
        match b {
            b'A'..=b'Z' => Some(b - b'A'),
            b'a'..=b'z' => Some(b - b'a' + 26),
            b'0'..=b'9' => Some(b - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let skip_newlines = |mut at: usize| {
        while at < src.len() && matches!(src[at], b'\n' | b'\r') {
            at += 1;
        }
        at
    };
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    loop {
        let mut quantum = [0u8; 4];
        let mut len = 4;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                // A padded encoding: a short final quantum is corrupt.
                return Err(si - j);
            }
            let byte = src[si];
            si += 1;
            if let Some(v) = sextet(byte) {
                quantum[j] = v;
                j += 1;
                continue;
            }
            if matches!(byte, b'\n' | b'\r') {
                continue;
            }
            if byte != b'=' {
                return Err(si - 1);
            }
            match j {
                0 | 1 => return Err(si - 1),
                2 => {
                    si = skip_newlines(si);
                    if si == src.len() {
                        return Err(src.len());
                    }
                    if src[si] != b'=' {
                        return Err(si - 1);
                    }
                    si += 1;
                }
                _ => {}
            }
            si = skip_newlines(si);
            if si < src.len() {
                return Err(si);
            }
            len = j;
            break;
        }
        let value = (u32::from(quantum[0]) << 18)
            | (u32::from(quantum[1]) << 12)
            | (u32::from(quantum[2]) << 6)
            | u32::from(quantum[3]);
        let bytes = value.to_be_bytes();
        out.extend_from_slice(&bytes[1..len]);
        if len < 4 {
            return Ok(out);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_read_as_go_reads_it() {
        assert_eq!(decode_go_base64(b"aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_go_base64(b"aGVs\nbG8=").unwrap(), b"hello");
        assert_eq!(decode_go_base64(b"").unwrap(), b"");
        // The offsets Go's decoder reports (see kubernetes/kubernetes#7817, #31548).
        assert_eq!(decode_go_base64(b"admin"), Err(4));
        assert_eq!(decode_go_base64(b"billy"), Err(4));
        assert_eq!(decode_go_base64(b"<foo>"), Err(0));
        assert_eq!(decode_go_base64(b"aGVsbG8"), Err(4));
        assert_eq!(decode_go_base64(b"aGVsbG8=x"), Err(8));
    }

    #[test]
    fn string_data_is_merged_over_data_and_dropped() {
        let mut s = json!({"data": {"a": "YQ==", "b": "Yg=="}, "stringData": {"b": "B", "c": "C"}});
        decode(&mut s).unwrap();
        assert_eq!(
            s,
            json!({"data": {"a": "YQ==", "b": "Qg==", "c": "Qw=="}, "type": "Opaque"})
        );
    }

    #[test]
    fn invalid_base64_is_a_bad_request() {
        let mut s = json!({"data": {"password": "wombat!"}});
        let e = decode(&mut s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 6"
        );
        assert_eq!(e.code(), 400);
    }

    #[test]
    fn keys_and_required_keys_are_validated() {
        let errs = validate(&json!({"type": "kubernetes.io/tls", "data": {"bad key": "YQ=="}}));
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["data[bad key]", "data[tls.crt]", "data[tls.key]"]);
    }

    #[test]
    fn an_immutable_secret_keeps_its_data_but_not_its_metadata() {
        let old = json!({"type": "Opaque", "immutable": true, "data": {"a": "YQ=="}});
        let mut relabelled = old.clone();
        relabelled["metadata"] = json!({"labels": {"x": "y"}});
        assert!(validate_update(&old, &relabelled).is_empty());
        let mut changed = old.clone();
        changed["data"]["a"] = json!("Yg==");
        changed["immutable"] = json!(false);
        let errs: Vec<String> = validate_update(&old, &changed)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
    }
}
