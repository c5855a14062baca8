//! Reading request bodies the way the Stacks API validates them: 400 for a body or field of
//! the wrong shape (e.g. `job_uuids` not an array), before any rule about the jobs applies.

use serde_json::{Map, Value};

use super::config::OverMaximum;
use super::refusal::Refusal;

/// The body as a JSON object (an empty body counts as `{}`).
pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Refusal::bad_request(
            "The request body must be a JSON object",
        )),
        Err(e) => Err(Refusal::bad_request(format!(
            "The request body is not valid JSON: {e}"
        ))),
    }
}

/// `field`: a required array of at most `max` strings.
pub(crate) fn strings(
    body: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Vec<String>, Refusal> {
    let Some(Value::Array(items)) = body.get(field) else {
        return Err(Refusal::bad_request(format!("{field} must be an array")));
    };
    if items.len() > max {
        return Err(Refusal::bad_request(format!(
            "{field} must contain at most {max} items"
        )));
    }
    items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Refusal::bad_request(format!("{field} must be an array of strings")))
        })
        .collect()
}

/// `field`: an optional positive number of seconds, `default` when absent (or 0, which the Go
/// client means as "the server's default"), at most `max` (clamped or refused).
pub(crate) fn seconds(
    body: &Map<String, Value>,
    field: &str,
    default: u64,
    max: u64,
    over: OverMaximum,
) -> Result<u64, Refusal> {
    let value = match body.get(field) {
        None | Some(Value::Null) => return Ok(default),
        Some(v) => v,
    };
    let Some(n) = value.as_i64() else {
        return Err(Refusal::bad_request(format!("{field} must be an integer")));
    };
    match u64::try_from(n) {
        Ok(0) => Ok(default),
        Ok(n) if n <= max => Ok(n),
        Ok(_) if over == OverMaximum::Clamp => Ok(max),
        Ok(_) => Err(Refusal::bad_request(format!(
            "{field} must be at most {max}"
        ))),
        Err(_) => Err(Refusal::bad_request(format!(
            "{field} must be a positive integer"
        ))),
    }
}
