//! The order in which runnable jobs get slots: Buildkite priority first (higher first); at
//! equal priority, round robin between pipelines (the one that launched least recently goes
//! first), and within a pipeline the oldest scheduled job first.

use std::cmp::Reverse;
use std::collections::VecDeque;

use crate::book::Book;
use crate::job::ScheduledJob;

/// Sorts `items` into launch order; `job` says which job an item is about.
pub fn launch_order<T>(
    mut items: Vec<T>,
    book: &Book,
    job: impl Fn(&T) -> &ScheduledJob,
) -> Vec<T> {
    // Oldest first; jobs without a scheduled time after those with one; then by id so the
    // order is total and stable across polls.
    items.sort_by(|a, b| {
        let (a, b) = (job(a), job(b));
        Reverse(a.priority)
            .cmp(&Reverse(b.priority))
            .then_with(|| a.pipeline.cmp(&b.pipeline))
            .then_with(|| {
                (a.scheduled_at.is_none(), a.scheduled_at)
                    .cmp(&(b.scheduled_at.is_none(), b.scheduled_at))
            })
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut ordered = Vec::with_capacity(items.len());
    let mut rest = items.into_iter().peekable();
    while let Some(first) = rest.next() {
        // One priority level, as a queue per pipeline.
        let priority = job(&first).priority;
        let mut lanes: Vec<VecDeque<T>> = vec![VecDeque::from([first])];
        while let Some(next) = rest.next_if(|item| job(item).priority == priority) {
            let same_lane = lanes
                .last()
                .and_then(|lane| lane.front())
                .is_some_and(|head| job(head).pipeline == job(&next).pipeline);
            if same_lane {
                if let Some(lane) = lanes.last_mut() {
                    lane.push_back(next);
                }
            } else {
                lanes.push(VecDeque::from([next]));
            }
        }
        lanes.sort_by(|a, b| {
            let key = |lane: &VecDeque<T>| {
                lane.front().map(|head| {
                    let head = job(head);
                    (
                        book.last_turn(&head.pipeline),
                        head.scheduled_at.is_none(),
                        head.scheduled_at,
                    )
                })
            };
            key(a).cmp(&key(b))
        });
        while !lanes.is_empty() {
            for lane in &mut lanes {
                if let Some(item) = lane.pop_front() {
                    ordered.push(item);
                }
            }
            lanes.retain(|lane| !lane.is_empty());
        }
    }
    ordered
}
