//! The config file as text: byte spans to `line:col`, key paths to spans and back, and
//! rendering a problem as `path:line:col: message` with the offending line and a caret.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step in a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A key in a table, e.g. `buildkite`.
    Key(String),
    /// An index in an array, e.g. the third `[[queues]]`.
    Index(usize),
}

/// A dotted path to a value in the config, e.g. `policy.rules[2].template`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The empty path: the document itself.
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// This path extended by a key.
    #[must_use]
    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        KeyPath(segments)
    }

    /// This path extended by an array index.
    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        KeyPath(segments)
    }

    /// Parses a dotted path as the library crates write them: `queues[0].rules[2]`,
    /// `kubernetes.client.burst`. Keys containing `.` or `[` cannot be told apart; such a
    /// path still resolves to its nearest ancestor.
    pub fn parse(dotted: &str) -> Self {
        let mut segments = Vec::new();
        for part in dotted.split('.').filter(|p| !p.is_empty()) {
            let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
            if !key.is_empty() {
                segments.push(Segment::Key(key.to_owned()));
            }
            while let Some((index, after)) = rest.split_once(']') {
                match index.parse() {
                    Ok(index) => segments.push(Segment::Index(index)),
                    Err(_) => segments.push(Segment::Key(index.to_owned())),
                }
                rest = after.strip_prefix('[').unwrap_or(after);
            }
        }
        KeyPath(segments)
    }

    /// The path's segments.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A 1-based line and column (in characters) in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, counted in characters.
    pub column: usize,
}

/// The config file's text and where it came from.
#[derive(Clone, Debug)]
pub struct Source {
    path: PathBuf,
    text: String,
}

impl Source {
    /// Wraps `text` read from `path`.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Source {
            path: path.into(),
            text: text.into(),
        }
    }

    /// Where the text came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The line and column of a byte offset (clamped to the text, and to a char boundary).
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// The span of the value at `path` (or, for a table, of its header or key), if the
    /// document has it. Falls back to the nearest ancestor that exists.
    pub fn span_of(&self, path: &KeyPath) -> Option<Range<usize>> {
        let document = DeTable::parse(&self.text).ok()?;
        let mut best = None;
        let mut current: Option<&Spanned<DeValue<'_>>> = None;
        let mut table: Option<&DeTable<'_>> = Some(document.get_ref());
        for segment in path.segments() {
            let next = match (segment, table, current.map(Spanned::get_ref)) {
                (Segment::Key(key), Some(table), _) => {
                    let entry = table.get_key_value(key.as_str());
                    if let Some((key, _)) = entry {
                        best = Some(key.span());
                    }
                    entry.map(|(_, value)| value)
                }
                (Segment::Index(index), None, Some(DeValue::Array(array))) => array.get(*index),
                _ => None,
            };
            let Some(next) = next else { break };
            if !matches!(next.get_ref(), DeValue::Table(_)) {
                best = Some(next.span());
            }
            table = match next.get_ref() {
                DeValue::Table(table) => Some(table),
                _ => None,
            };
            current = Some(next);
        }
        best
    }

    /// The key path of the innermost key or value whose span contains `span`: which key a
    /// deserialisation error is about.
    pub fn path_at(&self, span: &Range<usize>) -> KeyPath {
        let Ok(document) = DeTable::parse(&self.text) else {
            return KeyPath::root();
        };
        // Tables opened by a `[header]` do not span their body, so search every entry
        // rather than descending only into tables that contain the span.
        let mut entries = Vec::new();
        collect_table(document.get_ref(), &KeyPath::root(), &mut entries);
        // On a tie (an array and its only table share a span) the deeper path wins.
        entries
            .into_iter()
            .rev()
            .filter(|(_, candidate)| contains(candidate, span))
            .min_by_key(|(_, candidate)| candidate.end - candidate.start)
            .map_or_else(KeyPath::root, |(path, _)| path)
    }

    /// Renders a problem at `span` as `path:line:col: message`, then the line and a caret.
    /// With `redact`, the characters under the span are masked (a secret must not be echoed).
    pub fn render(&self, span: Option<Range<usize>>, message: &str, redact: bool) -> String {
        let Some(span) = span else {
            return format!("{}: {message}", self.path.display());
        };
        let position = self.position(span.start);
        let line_text = self.text.lines().nth(position.line - 1).unwrap_or_default();
        let line_chars = line_text.chars().count();
        let width = self.text[span.start.min(self.text.len())..span.end.min(self.text.len())]
            .chars()
            .take_while(|&c| c != '\n')
            .count()
            .clamp(1, (line_chars + 1).saturating_sub(position.column).max(1));
        let shown: String = if redact {
            line_text
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    let inside = i + 1 >= position.column && i + 1 < position.column + width;
                    if inside && c != '"' && c != '\'' {
                        '*'
                    } else {
                        c
                    }
                })
                .collect()
        } else {
            line_text.to_owned()
        };
        let gutter = position.line.to_string().len();
        format!(
            "{}:{}:{}: {message}\n{:gutter$} |\n{} | {shown}\n{:gutter$} | {}{}",
            self.path.display(),
            position.line,
            position.column,
            "",
            position.line,
            "",
            " ".repeat(position.column - 1),
            "^".repeat(width),
        )
    }
}

fn collect_table(table: &DeTable<'_>, at: &KeyPath, out: &mut Vec<(KeyPath, Range<usize>)>) {
    for (key, value) in table.iter() {
        let path = at.key(key.get_ref());
        out.push((path.clone(), key.span()));
        collect_value(value, &path, out);
    }
}

fn collect_value(
    value: &Spanned<DeValue<'_>>,
    at: &KeyPath,
    out: &mut Vec<(KeyPath, Range<usize>)>,
) {
    out.push((at.clone(), value.span()));
    match value.get_ref() {
        DeValue::Table(table) => collect_table(table, at, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_value(item, &at.index(i), out);
            }
        }
        _ => {}
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "organization = \"acme\"\n\n[buildkite]\npage_size = 9000\n\n[[queues]]\nname = \"a\"\n\n[[queues]]\nname = \"b\"\nrules = []\n";

    fn source() -> Source {
        Source::new("jobify.toml", DOC)
    }

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let source = source();
        assert_eq!(source.position(0), Position { line: 1, column: 1 });
        let offset = DOC.find("9000").expect("in doc");
        assert_eq!(
            source.position(offset),
            Position {
                line: 4,
                column: 13
            }
        );
    }

    #[test]
    fn finds_the_span_of_nested_keys_and_array_items() {
        let source = source();
        let span = source
            .span_of(&KeyPath::root().key("buildkite").key("page_size"))
            .expect("span");
        assert_eq!(&DOC[span], "9000");
        let span = source
            .span_of(&KeyPath::root().key("queues").index(1).key("rules"))
            .expect("span");
        assert_eq!(&DOC[span], "[]");
    }

    #[test]
    fn missing_key_falls_back_to_its_nearest_ancestor() {
        let source = source();
        let span = source
            .span_of(&KeyPath::root().key("queues").index(0).key("rules"))
            .expect("span");
        assert_eq!(source.position(span.start).line, 6);
    }

    #[test]
    fn dotted_paths_parse_into_keys_and_indices() {
        let path = KeyPath::parse("queues[0].rules[2]");
        assert_eq!(
            path,
            KeyPath::root().key("queues").index(0).key("rules").index(2)
        );
        assert_eq!(path.to_string(), "queues[0].rules[2]");
        assert_eq!(
            KeyPath::parse("kubernetes.client.burst").to_string(),
            "kubernetes.client.burst"
        );
    }

    #[test]
    fn path_at_names_the_key_under_a_span() {
        let source = source();
        let start = DOC.find("9000").expect("in doc");
        let path = source.path_at(&(start..start + 4));
        assert_eq!(path.to_string(), "buildkite.page_size");
        let start = DOC.find("[]").expect("in doc");
        assert_eq!(
            source.path_at(&(start..start + 2)).to_string(),
            "queues[1].rules"
        );
    }

    #[test]
    fn render_points_a_caret_at_the_value() {
        let source = source();
        let start = DOC.find("9000").expect("in doc");
        let rendered = source.render(Some(start..start + 4), "too big", false);
        assert_eq!(
            rendered,
            "jobify.toml:4:13: too big\n  |\n4 | page_size = 9000\n  |             ^^^^"
        );
    }

    #[test]
    fn render_masks_a_redacted_value() {
        let source = Source::new("j.toml", "api_token = \"bkua_secret\"\n");
        let rendered = source.render(Some(12..25), "no literals", true);
        assert!(!rendered.contains("bkua_secret"), "{rendered}");
        assert!(rendered.contains("api_token = \"*********"), "{rendered}");
    }
}
