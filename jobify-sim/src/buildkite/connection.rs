//! Relay connections as Buildkite serves them: `first`/`after` and `last`/`before` over an
//! ordered list, opaque cursors, `count` of everything that matched.

use apollo_compiler::resolvers::FieldError;
use apollo_compiler::response::JsonMap;

use super::ids::{cursor, parse_cursor};

/// The largest page Buildkite serves; also what a connection without `first`/`last` gets
/// (and what the requested-complexity rule assumes for it).
pub(crate) const MAX_PAGE: usize = 500;

/// One page of a connection.
#[derive(Clone, Debug)]
pub(crate) struct Page<T> {
    /// The page's items with their cursors.
    pub(crate) items: Vec<(String, T)>,
    /// How many items matched in total (`count`).
    pub(crate) count: usize,
    pub(crate) has_next: bool,
    pub(crate) has_previous: bool,
}

fn int_arg(args: &JsonMap, name: &str) -> Result<Option<usize>, FieldError> {
    match args.get(name).and_then(|v| v.as_i64()) {
        None => Ok(None),
        Some(n) if n < 0 => Err(FieldError {
            message: format!("Argument '{name}' on Field must be a non-negative number"),
        }),
        Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
    }
}

fn cursor_arg(args: &JsonMap, name: &str) -> Result<Option<usize>, FieldError> {
    match args.get(name).and_then(|v| v.as_str()) {
        None => Ok(None),
        Some(raw) => parse_cursor(raw).map(Some).ok_or_else(|| FieldError {
            message: format!("Invalid cursor {raw:?} for argument '{name}'"),
        }),
    }
}

/// Slices `all` by the connection arguments in `args`.
pub(crate) fn paginate<T>(all: Vec<T>, args: &JsonMap) -> Result<Page<T>, FieldError> {
    let count = all.len();
    let first = int_arg(args, "first")?;
    let last = int_arg(args, "last")?;
    let after = cursor_arg(args, "after")?;
    let before = cursor_arg(args, "before")?;
    // The window [start, end) after the cursors, then cut to `first` or `last`.
    let start = after.map_or(0, |a| a.saturating_add(1)).min(count);
    let end = before.map_or(count, |b| b.min(count)).max(start);
    let (from, to) = match (first, last) {
        (Some(f), _) => (start, end.min(start.saturating_add(f.min(MAX_PAGE)))),
        (None, Some(l)) => (end.saturating_sub(l.min(MAX_PAGE)).max(start), end),
        (None, None) => (start, end.min(start + MAX_PAGE)),
    };
    let items = all
        .into_iter()
        .enumerate()
        .skip(from)
        .take(to - from)
        .map(|(offset, item)| (cursor(offset), item))
        .collect();
    // As graphql-ruby's connections: there is a next (previous) page whenever items exist
    // after (before) this one, whichever way the client is paging.
    Ok(Page {
        items,
        count,
        has_next: to < count,
        has_previous: from > 0,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use apollo_compiler::response::JsonValue;

    use super::*;

    fn args(pairs: &[(&str, JsonValue)]) -> JsonMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect()
    }

    #[test]
    fn first_and_after_walk_the_list_in_pages() {
        let all: Vec<u32> = (0..5).collect();
        let page = paginate(all.clone(), &args(&[("first", 2.into())]))
            .ok()
            .unwrap();
        assert_eq!(page.items.iter().map(|i| i.1).collect::<Vec<_>>(), [0, 1]);
        assert!(page.has_next);
        assert!(!page.has_previous);
        assert_eq!(page.count, 5);
        let after = page.items[1].0.clone();
        let page = paginate(
            all.clone(),
            &args(&[("first", 2.into()), ("after", after.into())]),
        )
        .ok()
        .unwrap();
        assert_eq!(page.items.iter().map(|i| i.1).collect::<Vec<_>>(), [2, 3]);
        let after = page.items[1].0.clone();
        let page = paginate(all, &args(&[("first", 2.into()), ("after", after.into())]))
            .ok()
            .unwrap();
        assert_eq!(page.items.iter().map(|i| i.1).collect::<Vec<_>>(), [4]);
        assert!(!page.has_next);
        assert!(page.has_previous);
    }

    #[test]
    fn last_takes_the_tail() {
        let page = paginate((0..5).collect::<Vec<u32>>(), &args(&[("last", 2.into())]))
            .ok()
            .unwrap();
        assert_eq!(page.items.iter().map(|i| i.1).collect::<Vec<_>>(), [3, 4]);
        assert!(page.has_previous);
    }

    #[test]
    fn last_and_before_walk_the_list_backwards_until_no_previous_page() {
        let all: Vec<u32> = (0..5).collect();
        let values = |page: &Page<u32>| page.items.iter().map(|i| i.1).collect::<Vec<_>>();
        let mut pages = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut pairs = vec![("last", 2.into())];
            if let Some(cursor) = before.take() {
                pairs.push(("before", cursor.into()));
            }
            let page = paginate(all.clone(), &args(&pairs)).ok().unwrap();
            pages.push((values(&page), page.has_previous));
            if !page.has_previous {
                break;
            }
            // The start cursor: the page's first item.
            before = Some(page.items[0].0.clone());
        }
        // Each page keeps the list's order; hasPreviousPage is false only at the start.
        assert_eq!(
            pages,
            [(vec![3, 4], true), (vec![1, 2], true), (vec![0], false)]
        );
    }

    #[test]
    fn last_larger_than_the_list_takes_all_without_a_previous_page() {
        let page = paginate((0..3).collect::<Vec<u32>>(), &args(&[("last", 5.into())]))
            .ok()
            .unwrap();
        assert_eq!(
            page.items.iter().map(|i| i.1).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(!page.has_previous);
    }

    #[test]
    fn garbage_cursors_are_field_errors() {
        assert!(paginate(vec![1], &args(&[("after", "nope".into())])).is_err());
    }
}
