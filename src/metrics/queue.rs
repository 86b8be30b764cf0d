//! The queue's metrics: depth, oldest pending, delivery attempts, outcomes
//! owed to the store.

use std::time::Duration;

use super::labels::{RouteLabel, RouteResult, RouteState};
use super::Metrics;

impl Metrics {
    /// A route's queue: pending and dead counts, age of the oldest pending callback.
    pub(crate) fn queue_depth(&self, route: &str, pending: u64, dead: u64, oldest: Duration) {
        let label = |state| RouteState {
            route: route.to_owned(),
            state,
        };
        self.queue_depth
            .get_or_create(&label("pending"))
            .set(pending as i64);
        self.queue_depth
            .get_or_create(&label("dead"))
            .set(dead as i64);
        self.queue_oldest
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .set(oldest.as_secs_f64());
    }

    /// One queued delivery attempt and what came of it.
    pub(crate) fn delivery_attempt(&self, route: &str, result: &'static str) {
        self.delivery_attempts
            .get_or_create(&RouteResult {
                route: route.to_owned(),
                result,
            })
            .inc();
    }

    /// How many outcomes a route's worker owes the store.
    pub(crate) fn queue_unrecorded(&self, route: &str, owed: usize) {
        self.queue_unrecorded
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .set(owed as i64);
    }
}
