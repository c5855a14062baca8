//! Watching the controller's Jobs and pods and turning what happens to them into
//! `WorkloadEvent`s, giving up on pods that can never start.

pub mod fail_fast;
pub(crate) mod run;
pub mod summary;
pub mod tracker;
#[cfg(test)]
mod tracker_props;
mod waiting;
