//! The Stacks API source: jobs listed, reserved and checked with only a cluster agent
//! token, each reserved just before it launches and, by default, given a token of its own.
//!
//! ```text
//!  register_stack ─▶ StacksMonitor::scheduled ── list (+ details once per job) ──▶ Scheduler
//!                       ▲  still reserved: states, extend   Monitor::reserve ─▶ batch-reserve
//!                       └──────────── Reservations ◀────────────────────────── + job tokens
//! ```

mod intake;
mod monitor;
mod reservations;
mod settings;
mod stack;
mod timeline;

pub use monitor::StacksMonitor;
pub use settings::StacksSettings;
pub use stack::{StackError, register_stack};
pub use timeline::{StacksTimeline, timeline_note};
