//! Examples of the jobify crates: see the `examples/` folder.
