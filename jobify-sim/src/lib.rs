//! Placeholder crate root, replaced as the crate lands.
