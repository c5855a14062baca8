//! Partial answers: GraphQL `errors` that name one item of a list (one job of a page, one
//! alias of a batch) cost that item, not the whole answer.

use std::collections::BTreeMap;

use graphql_client::PathFragment;

use crate::error::Error;

/// The errors of an answer, split into those about one item and the rest.
#[derive(Debug, Default)]
pub(super) struct ItemErrors {
    /// Messages by item, for errors whose path lies inside that item.
    by_item: BTreeMap<String, Vec<String>>,
}

impl ItemErrors {
    /// Attributes each error whose path starts with `prefix` (keys) and then names an item
    /// (`item` turns the next path fragment into an item key). Any other error fails the
    /// answer: [`Error::GraphQl`] with those errors and the partial `data`.
    pub(super) fn split(
        operation: &'static str,
        errors: Vec<graphql_client::Error>,
        data: &serde_json::Value,
        prefix: &[&str],
        item: impl Fn(&PathFragment) -> Option<String>,
    ) -> Result<Self, Error> {
        let mut split = ItemErrors::default();
        let mut unattributed = Vec::new();
        for error in errors {
            let key = error.path.as_deref().and_then(|path| {
                let keys_match = path.len() > prefix.len()
                    && prefix
                        .iter()
                        .zip(path)
                        .all(|(want, got)| matches!(got, PathFragment::Key(key) if key == want));
                keys_match.then(|| item(&path[prefix.len()])).flatten()
            });
            match key {
                Some(key) => split.by_item.entry(key).or_default().push(describe(&error)),
                None => unattributed.push(error),
            }
        }
        if unattributed.is_empty() {
            Ok(split)
        } else {
            Err(Error::GraphQl {
                operation,
                errors: unattributed,
                partial_data: Some(data.clone()),
            })
        }
    }

    /// What Buildkite said went wrong with `item`, if it said anything.
    pub(super) fn take(&mut self, item: &str) -> Option<String> {
        self.by_item
            .remove(item)
            .map(|messages| messages.join("; "))
    }
}

/// A list index as an item key.
pub(super) fn index(fragment: &PathFragment) -> Option<String> {
    match fragment {
        PathFragment::Index(index) => Some(index.to_string()),
        PathFragment::Key(_) => None,
    }
}

/// An alias (a key) as an item key.
pub(super) fn alias(fragment: &PathFragment) -> Option<String> {
    match fragment {
        PathFragment::Key(key) => Some(key.clone()),
        PathFragment::Index(_) => None,
    }
}

fn describe(error: &graphql_client::Error) -> String {
    let path = error
        .path
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|fragment| match fragment {
            PathFragment::Key(key) => key.clone(),
            PathFragment::Index(index) => index.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".");
    format!("Buildkite reported an error at `{path}`: {}", error.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(path: Vec<PathFragment>) -> graphql_client::Error {
        graphql_client::Error {
            message: "boom".to_owned(),
            locations: None,
            path: Some(path),
            extensions: None,
        }
    }

    const DATA: serde_json::Value = serde_json::Value::Null;

    fn key(name: &str) -> PathFragment {
        PathFragment::Key(name.to_owned())
    }

    #[test]
    fn an_error_inside_an_item_is_that_items() {
        let errors = vec![error(vec![
            key("organization"),
            key("jobs"),
            key("edges"),
            PathFragment::Index(3),
            key("node"),
        ])];
        let mut split = ItemErrors::split(
            "Op",
            errors,
            &DATA,
            &["organization", "jobs", "edges"],
            index,
        )
        .expect("every error names an item");
        let message = split.take("3").expect("attributed to item 3");
        assert!(
            message.contains("organization.jobs.edges.3.node"),
            "{message}"
        );
        assert!(message.contains("boom"));
        assert_eq!(split.take("3"), None);
    }

    #[test]
    fn an_error_on_the_list_itself_or_elsewhere_fails_the_answer() {
        for path in [
            vec![key("organization"), key("jobs"), key("edges")],
            vec![key("organization")],
            vec![],
        ] {
            let result = ItemErrors::split(
                "Op",
                vec![error(path.clone())],
                &DATA,
                &["organization", "jobs", "edges"],
                index,
            );
            assert!(
                matches!(result, Err(Error::GraphQl { ref errors, .. }) if errors.len() == 1),
                "{path:?}: {result:?}"
            );
        }
    }
}
