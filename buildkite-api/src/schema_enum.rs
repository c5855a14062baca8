//! [`schema_enum!`]: the domain enums that mirror an enum of Buildkite's schema.

/// Declares a domain enum for an enum of one of Buildkite's APIs: one variant per known
/// value, plus `Unknown(String)` that keeps a value this version does not know (Buildkite adds
/// values over time) instead of dropping it or panicking. It gets a constructor from the API's
/// spelling (named by the caller: `from_graphql`, `from_api`), `as_str`, a `Display` that
/// prints that spelling, and a `Deserialize` from it.
macro_rules! schema_enum {
    (
        $(#[$meta:meta])*
        $name:ident ($schema:literal, $from:ident) {
            $($variant:ident => $value:literal, $doc:literal;)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                #[doc = $doc]
                $variant,
            )*
            /// A value this version of the client does not know, as Buildkite spelled it.
            Unknown(String),
        }

        impl $name {
            #[doc = concat!("Maps a `", $schema, "` value as spelled in the API.")]
            pub fn $from(value: &str) -> Self {
                match value {
                    $($value => $name::$variant,)*
                    other => $name::Unknown(other.to_owned()),
                }
            }

            /// The value as spelled in the schema.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $value,)*
                    $name::Unknown(other) => other,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(d).map(|value| $name::$from(&value))
            }
        }
    };
}

pub(crate) use schema_enum;
