//! Answers the schema permits: a complete baseline for a response shape, and the variants
//! of it that a server following the schema may send but our simulator never does.

use std::fmt;

use serde_json::{Map, Value, json};

use crate::shape::{Field, Leaf, Ty};

/// A step in a response path: a key or a list index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path from `data` to a value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path(pub(crate) Vec<Seg>);

impl Path {
    fn key(&self, key: &str) -> Path {
        let mut next = self.clone();
        next.0.push(Seg::Key(key.to_owned()));
        next
    }

    fn index(&self, index: usize) -> Path {
        let mut next = self.clone();
        next.0.push(Seg::Index(index));
        next
    }

    /// The last key on the path: what an error about this place must name.
    pub(crate) fn last_key(&self) -> Option<&str> {
        self.0.iter().rev().find_map(|seg| match seg {
            Seg::Key(key) => Some(key.as_str()),
            Seg::Index(_) => None,
        })
    }

    /// The path as GraphQL's `errors[].path` spells it.
    pub(crate) fn to_json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|seg| match seg {
                    Seg::Key(key) => json!(key),
                    Seg::Index(index) => json!(index),
                })
                .collect(),
        )
    }

    fn get_mut<'v>(&self, mut value: &'v mut Value) -> &'v mut Value {
        for seg in &self.0 {
            value = match seg {
                Seg::Key(key) => &mut value[key.as_str()],
                Seg::Index(index) => &mut value[*index],
            };
        }
        value
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => write!(f, "{key}")?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// What a variant changes, and where.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    /// Nothing: the complete answer.
    Baseline,
    /// One nullable value is null.
    Null(Path),
    /// Every nullable value is null (the outermost on each path, as null propagates).
    AllNull,
    /// A list is empty.
    Empty(Path),
    /// An enum holds a value the schema does not list yet.
    UnknownEnum(Path),
    /// A union or interface position holds a member the schema does not list yet.
    UnknownType(Path),
    /// Every object has a field the operation did not select.
    ExtraFields,
    /// A field failed to resolve: it is null and `errors` names its path.
    ErrorAt(Path),
    /// An error without a path beside complete data (a warning-like error).
    ErrorWithoutPath,
    /// `data` is null and `errors` says why.
    ErrorsOnly,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Baseline => write!(f, "baseline"),
            Change::Null(path) => write!(f, "null {path}"),
            Change::AllNull => write!(f, "every nullable null"),
            Change::Empty(path) => write!(f, "empty {path}"),
            Change::UnknownEnum(path) => write!(f, "unknown enum value at {path}"),
            Change::UnknownType(path) => write!(f, "unknown type at {path}"),
            Change::ExtraFields => write!(f, "extra fields everywhere"),
            Change::ErrorAt(path) => write!(f, "error at {path}"),
            Change::ErrorWithoutPath => write!(f, "error without a path"),
            Change::ErrorsOnly => write!(f, "errors, data null"),
        }
    }
}

/// One answer to send: a change and the response body it makes.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub(crate) change: Change,
    pub(crate) body: Value,
}

/// The enum value no schema lists yet.
pub(crate) const UNKNOWN_ENUM: &str = "ADDED_LATER";
/// The member type no schema lists yet.
pub(crate) const UNKNOWN_TYPE: &str = "TypeAddedLater";
/// The message of a simulated resolver error.
pub(crate) const RESOLVER_ERROR: &str = "simulated resolver failure";

/// Every answer for a response shape: the baseline first, then each change.
pub(crate) fn all(shape: &[Field], overrides: &dyn Fn(&str, &str) -> Option<Value>) -> Vec<Answer> {
    let mut counter = 0;
    let baseline = object(shape, overrides, &mut counter);
    let mut sites = Vec::new();
    walk_fields(shape, &Path::default(), &mut sites);

    let mut answers = vec![answer(Change::Baseline, baseline.clone(), None)];
    for site in &sites {
        let mut data = baseline.clone();
        let change = match site {
            Site::Nullable(path) => {
                *path.get_mut(&mut data) = Value::Null;
                Change::Null(path.clone())
            }
            Site::List(path) => {
                *path.get_mut(&mut data) = json!([]);
                Change::Empty(path.clone())
            }
            Site::Enum(path) => {
                *path.get_mut(&mut data) = json!(UNKNOWN_ENUM);
                Change::UnknownEnum(path.clone())
            }
            Site::Abstract(path) => {
                *path.get_mut(&mut data) = json!({ "__typename": UNKNOWN_TYPE });
                Change::UnknownType(path.clone())
            }
        };
        answers.push(answer(change, data, None));
    }
    let mut all_null = baseline.clone();
    null_every_nullable(shape, &mut all_null);
    answers.push(answer(Change::AllNull, all_null, None));

    let mut extra = baseline.clone();
    add_fields(&mut extra);
    answers.push(answer(Change::ExtraFields, extra, None));

    for site in &sites {
        if let Site::Nullable(path) = site {
            let mut data = baseline.clone();
            *path.get_mut(&mut data) = Value::Null;
            let errors = json!([{
                "message": RESOLVER_ERROR,
                "path": path.to_json(),
                "locations": [{ "line": 1, "column": 1 }],
            }]);
            answers.push(answer(Change::ErrorAt(path.clone()), data, Some(errors)));
        }
    }
    answers.push(answer(
        Change::ErrorWithoutPath,
        baseline,
        Some(json!([{ "message": RESOLVER_ERROR }])),
    ));
    answers.push(answer(
        Change::ErrorsOnly,
        Value::Null,
        Some(json!([{ "message": RESOLVER_ERROR, "path": [] }])),
    ));
    answers
}

fn answer(change: Change, data: Value, errors: Option<Value>) -> Answer {
    let mut body = json!({ "data": data });
    if let Some(errors) = errors {
        body["errors"] = errors;
    }
    Answer { change, body }
}

/// A place a change can be made.
enum Site {
    Nullable(Path),
    List(Path),
    Enum(Path),
    Abstract(Path),
}

fn walk_fields(fields: &[Field], path: &Path, sites: &mut Vec<Site>) {
    for field in fields {
        walk_ty(&field.ty, &path.key(&field.key), sites);
    }
}

fn walk_ty(ty: &Ty, path: &Path, sites: &mut Vec<Site>) {
    if ty.nullable() {
        sites.push(Site::Nullable(path.clone()));
    }
    match ty {
        Ty::List { item, .. } => {
            sites.push(Site::List(path.clone()));
            walk_ty(item, &path.index(0), sites);
        }
        Ty::Named {
            leaf: Leaf::Enum { .. },
            ..
        } => sites.push(Site::Enum(path.clone())),
        Ty::Named {
            leaf:
                Leaf::Object {
                    is_abstract,
                    fields,
                    ..
                },
            ..
        } => {
            if *is_abstract {
                sites.push(Site::Abstract(path.clone()));
            }
            walk_fields(fields, path, sites);
        }
        Ty::Named {
            leaf: Leaf::Scalar(_),
            ..
        } => {}
    }
}

fn null_every_nullable(fields: &[Field], value: &mut Value) {
    for field in fields {
        null_ty(&field.ty, &mut value[field.key.as_str()]);
    }
}

fn null_ty(ty: &Ty, value: &mut Value) {
    if ty.nullable() {
        *value = Value::Null;
        return;
    }
    match (ty, value) {
        (Ty::List { item, .. }, Value::Array(items)) => {
            for element in items {
                null_ty(item, element);
            }
        }
        (
            Ty::Named {
                leaf: Leaf::Object { fields, .. },
                ..
            },
            value,
        ) => null_every_nullable(fields, value),
        _ => {}
    }
}

fn add_fields(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for member in map.values_mut() {
                add_fields(member);
            }
            map.insert(
                "fieldAddedLater".to_owned(),
                json!({ "addedLater": [1, "two", null] }),
            );
        }
        Value::Array(items) => items.iter_mut().for_each(add_fields),
        _ => {}
    }
}

fn object(
    fields: &[Field],
    overrides: &dyn Fn(&str, &str) -> Option<Value>,
    counter: &mut u32,
) -> Value {
    let mut map = Map::new();
    for field in fields {
        map.insert(
            field.key.clone(),
            value(&field.key, &field.ty, overrides, counter),
        );
    }
    Value::Object(map)
}

fn value(
    key: &str,
    ty: &Ty,
    overrides: &dyn Fn(&str, &str) -> Option<Value>,
    counter: &mut u32,
) -> Value {
    match ty {
        Ty::List { item, .. } => {
            // Two objects, so a change to the first leaves one to show what was kept.
            let items = match item.as_ref() {
                Ty::Named {
                    leaf: Leaf::Object { .. },
                    ..
                } => 2,
                _ => 1,
            };
            Value::Array(
                (0..items)
                    .map(|_| value(key, item, overrides, counter))
                    .collect(),
            )
        }
        Ty::Named { leaf, .. } => match leaf {
            Leaf::Object {
                typename, fields, ..
            } => {
                let mut object = object(fields, overrides, counter);
                if object.get("__typename").is_some() {
                    object["__typename"] = json!(typename);
                }
                object
            }
            Leaf::Enum { name, values } => overrides(key, name)
                .unwrap_or_else(|| json!(values.first().expect("an enum has values"))),
            Leaf::Scalar(name) => {
                *counter += 1;
                overrides(key, name).unwrap_or_else(|| scalar(key, name, *counter))
            }
        },
    }
}

/// A plausible value of a scalar, unique per position where the type allows.
fn scalar(key: &str, name: &str, n: u32) -> Value {
    match name {
        "Int" => json!(n),
        "Float" => json!(f64::from(n) / 2.0),
        "Boolean" => json!(false),
        "DateTime" => json!(format!("2026-12-01T10:{:02}:00Z", n % 60)),
        "JSON" => json!({}),
        _ if key == "uuid" => json!(format!("018f0000-0000-4000-8000-{n:012}")),
        _ => json!(format!("{key}-{n}")),
    }
}
