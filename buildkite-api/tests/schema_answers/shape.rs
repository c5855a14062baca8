//! The shape of an operation's response, read from the full schema and the operation
//! document: every response key, its type (nullable? a list?), and for composite types the
//! fields selected on the concrete type the answer uses.

use apollo_compiler::executable::{Selection, SelectionSet};
use apollo_compiler::schema::{ExtendedType, Type};
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};

/// A response field: its key (alias or name) and what it holds.
#[derive(Clone, Debug)]
pub(crate) struct Field {
    pub(crate) key: String,
    pub(crate) ty: Ty,
}

/// A response type, as the schema declares it at this position.
#[derive(Clone, Debug)]
pub(crate) enum Ty {
    /// A list; `nullable` is whether the list itself may be null.
    List { nullable: bool, item: Box<Ty> },
    /// A named type.
    Named { nullable: bool, leaf: Leaf },
}

impl Ty {
    pub(crate) fn nullable(&self) -> bool {
        match self {
            Ty::List { nullable, .. } | Ty::Named { nullable, .. } => *nullable,
        }
    }
}

/// What a named type holds.
#[derive(Clone, Debug)]
pub(crate) enum Leaf {
    /// A scalar, by name (`ID`, `String`, `DateTime`, ...).
    Scalar(String),
    /// An enum and the values the schema lists.
    Enum { name: String, values: Vec<String> },
    /// An object: the concrete type answered, whether the position is a union or interface
    /// (so another member could be answered), and the fields selected on it.
    Object {
        typename: String,
        is_abstract: bool,
        fields: Vec<Field>,
    },
}

/// The response shape of `operation` in `document` (validated against `schema`).
pub(crate) fn of_operation(
    schema: &Valid<Schema>,
    document: &Valid<ExecutableDocument>,
    operation: &str,
) -> Vec<Field> {
    let operation = document
        .operations
        .get(Some(operation))
        .unwrap_or_else(|_| panic!("the document has no operation {operation}"));
    let root = operation.selection_set.ty.to_string();
    fields(schema, document, &operation.selection_set, &root)
}

/// The fields `selections` selects on the concrete object type `typename`, in order, merged
/// by response key (fragments repeat keys).
fn fields(
    schema: &Valid<Schema>,
    document: &Valid<ExecutableDocument>,
    selections: &SelectionSet,
    typename: &str,
) -> Vec<Field> {
    let mut out: Vec<Field> = Vec::new();
    collect(schema, document, selections, typename, &mut out);
    out
}

fn collect(
    schema: &Valid<Schema>,
    document: &Valid<ExecutableDocument>,
    selections: &SelectionSet,
    typename: &str,
    out: &mut Vec<Field>,
) {
    for selection in &selections.selections {
        match selection {
            Selection::Field(field) => {
                let key = field.response_key().to_string();
                if out.iter().any(|known| known.key == key) {
                    continue;
                }
                let ty = ty(schema, document, &field.definition.ty, &field.selection_set);
                out.push(Field { key, ty });
            }
            Selection::InlineFragment(fragment) => {
                let applies = fragment
                    .type_condition
                    .as_ref()
                    .is_none_or(|condition| applies_to(schema, condition.as_str(), typename));
                if applies {
                    collect(schema, document, &fragment.selection_set, typename, out);
                }
            }
            Selection::FragmentSpread(spread) => {
                let fragment = document
                    .fragments
                    .get(&spread.fragment_name)
                    .expect("a valid document defines its fragments");
                if applies_to(schema, fragment.type_condition().as_str(), typename) {
                    collect(schema, document, &fragment.selection_set, typename, out);
                }
            }
        }
    }
}

/// Whether a fragment on `condition` applies to an object of type `typename`.
fn applies_to(schema: &Valid<Schema>, condition: &str, typename: &str) -> bool {
    if condition == typename {
        return true;
    }
    match schema.types.get(condition) {
        Some(ExtendedType::Union(union)) => union.members.iter().any(|m| m.name == typename),
        Some(ExtendedType::Interface(_)) => match schema.types.get(typename) {
            Some(ExtendedType::Object(object)) => object
                .implements_interfaces
                .iter()
                .any(|i| i.name == condition),
            _ => false,
        },
        _ => false,
    }
}

fn ty(
    schema: &Valid<Schema>,
    document: &Valid<ExecutableDocument>,
    declared: &Type,
    selections: &SelectionSet,
) -> Ty {
    match declared {
        Type::List(item) | Type::NonNullList(item) => Ty::List {
            nullable: matches!(declared, Type::List(_)),
            item: Box::new(ty(schema, document, item, selections)),
        },
        Type::Named(name) | Type::NonNullNamed(name) => Ty::Named {
            nullable: matches!(declared, Type::Named(_)),
            leaf: leaf(schema, document, name.as_str(), selections),
        },
    }
}

fn leaf(
    schema: &Valid<Schema>,
    document: &Valid<ExecutableDocument>,
    name: &str,
    selections: &SelectionSet,
) -> Leaf {
    match schema.types.get(name) {
        Some(ExtendedType::Enum(enumeration)) => Leaf::Enum {
            name: name.to_owned(),
            values: enumeration.values.keys().map(|v| v.to_string()).collect(),
        },
        Some(ExtendedType::Object(_)) => Leaf::Object {
            typename: name.to_owned(),
            is_abstract: false,
            fields: fields(schema, document, selections, name),
        },
        Some(ExtendedType::Union(_) | ExtendedType::Interface(_)) => {
            let typename = concrete_type(schema, selections, name);
            Leaf::Object {
                fields: fields(schema, document, selections, &typename),
                typename,
                is_abstract: true,
            }
        }
        _ => Leaf::Scalar(name.to_owned()),
    }
}

/// The member of an abstract type that an answer uses: the first one an inline fragment
/// selects fields on (what the operation is written for), else the first member.
fn concrete_type(schema: &Valid<Schema>, selections: &SelectionSet, name: &str) -> String {
    for selection in &selections.selections {
        if let Selection::InlineFragment(fragment) = selection
            && let Some(condition) = &fragment.type_condition
            && matches!(
                schema.types.get(condition.as_str()),
                Some(ExtendedType::Object(_))
            )
        {
            return condition.to_string();
        }
    }
    match schema.types.get(name) {
        Some(ExtendedType::Union(union)) => union
            .members
            .iter()
            .next()
            .map(|m| m.name.to_string())
            .expect("a union has members"),
        _ => schema
            .types
            .iter()
            .find_map(|(object, ty)| match ty {
                ExtendedType::Object(o)
                    if o.implements_interfaces.iter().any(|i| i.name == name) =>
                {
                    Some(object.to_string())
                }
                _ => None,
            })
            .expect("an interface has an implementation"),
    }
}
