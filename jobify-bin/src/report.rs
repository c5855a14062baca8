//! Printing an error with its causes, once each.

use std::fmt::Write as _;

/// The error and its causes as `outer: cause: root cause`, leaving out a cause whose text its
/// parent already printed. The library errors say their source in their own message (so a
/// log line with only `%error` is complete) and also chain it as `source()`; printing the
/// whole chain naively would say every cause twice.
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut parent = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parent.is_empty() && parent.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        let _ = write!(out, "{text}");
        parent = text;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("request to http://bk/v1 failed: {source}")]
    struct Transport {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_its_parent_already_printed_is_said_once() {
        let io = std::io::Error::other("connection refused");
        let error = anyhow::Error::new(Transport { source: io }).context("cannot poll Buildkite");
        assert_eq!(
            error_chain(&error),
            "cannot poll Buildkite: request to http://bk/v1 failed: connection refused"
        );
        // What `{:#}` prints, for contrast: the root cause twice.
        assert_eq!(
            format!("{error:#}"),
            "cannot poll Buildkite: request to http://bk/v1 failed: connection refused: \
             connection refused"
        );
    }

    #[test]
    fn causes_not_in_their_parent_are_all_kept() {
        let error = anyhow::anyhow!("root").context("middle").context("outer");
        assert_eq!(error_chain(&error), "outer: middle: root");
    }
}
