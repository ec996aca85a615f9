//! What pub/sub reports through the [`metrics`](https://docs.rs/metrics) facade (cargo feature
//! `metrics`): filters and subscriptions, publishes, deliveries and their duration, slow
//! subscribers, the Redis link. docs/metrics.md lists every metric.
//!
//! As in [`duplex::metrics`], nothing is counted until [`register`] has run: install the recorder,
//! then call it before the first subscription. No label carries a topic or a filter (their number is
//! up to the clients). Without the feature every function here is empty.

#[cfg(feature = "metrics")]
mod imp {
    use std::sync::OnceLock;

    use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
    use metrics::{Counter, Gauge, Histogram};

    pub(super) struct Handles {
        pub(super) filters: Gauge,
        pub(super) subscriptions: Gauge,
        pub(super) publishes: Counter,
        pub(super) deliveries: Counter,
        pub(super) dropped: Counter,
        pub(super) closed: Counter,
        pub(super) broadcast_seconds: Histogram,
        #[cfg_attr(not(feature = "redis"), allow(dead_code))]
        pub(super) redis_up: [Gauge; 2],
        #[cfg_attr(not(feature = "redis"), allow(dead_code))]
        pub(super) redis_reconnects: [Counter; 2],
    }

    static HANDLES: OnceLock<Handles> = OnceLock::new();

    /// The handles, once [`register`](super::register) has run: until then nothing is counted,
    /// at the cost of one load and branch per call.
    #[inline]
    pub(super) fn handles() -> Option<&'static Handles> {
        HANDLES.get()
    }

    pub(super) fn register_all() {
        HANDLES.get_or_init(register);
    }

    fn register() -> Handles {
        describe_gauge!("duplex_pubsub_filters", "Topics and patterns with at least one local subscriber");
        describe_gauge!("duplex_pubsub_subscriptions", "Local subscriptions (a connection to a topic or pattern)");
        describe_counter!("duplex_pubsub_publishes_total", "Messages published on this node");
        describe_counter!(
            "duplex_pubsub_deliveries_total",
            "Messages queued for local subscribers, one per subscriber"
        );
        describe_counter!(
            "duplex_pubsub_slow_subscribers_total",
            "Messages dropped for, and subscribers closed for, not keeping up, by action"
        );
        describe_histogram!(
            "duplex_pubsub_broadcast_duration_seconds",
            Unit::Seconds,
            "Time to queue one message for every local subscriber of its topic"
        );
        describe_gauge!("duplex_pubsub_redis_up", "1 while the Redis link (subscribe, publish) is connected, else 0");
        describe_counter!("duplex_pubsub_redis_reconnects_total", "Redis connections made again after a loss, by link");
        const LINKS: [&str; 2] = ["subscribe", "publish"];
        Handles {
            filters: gauge!("duplex_pubsub_filters"),
            subscriptions: gauge!("duplex_pubsub_subscriptions"),
            publishes: counter!("duplex_pubsub_publishes_total"),
            deliveries: counter!("duplex_pubsub_deliveries_total"),
            dropped: counter!("duplex_pubsub_slow_subscribers_total", "action" => "dropped"),
            closed: counter!("duplex_pubsub_slow_subscribers_total", "action" => "closed"),
            broadcast_seconds: histogram!("duplex_pubsub_broadcast_duration_seconds"),
            redis_up: LINKS.map(|l| gauge!("duplex_pubsub_redis_up", "link" => l)),
            redis_reconnects: LINKS.map(|l| counter!("duplex_pubsub_redis_reconnects_total", "link" => l)),
        }
    }
}

/// Starts counting: registers every metric with the recorder installed now, so that a scrape
/// shows them before any traffic. Call it after installing the recorder and before the first
/// subscription; nothing is counted before. Returns whether the feature is on.
pub fn register() -> bool {
    #[cfg(feature = "metrics")]
    {
        imp::register_all();
        true
    }
    #[cfg(not(feature = "metrics"))]
    false
}

#[cfg_attr(not(feature = "metrics"), allow(unused_variables, dead_code))]
mod record {
    #[inline]
    pub(crate) fn published() {
        #[cfg(feature = "metrics")]
        if let Some(h) = super::imp::handles() {
            h.publishes.increment(1);
        }
    }

    #[inline]
    pub(crate) fn delivered(delivered: usize, dropped: usize, closed: usize) {
        #[cfg(feature = "metrics")]
        {
            let Some(h) = super::imp::handles() else { return };
            h.deliveries.increment(delivered as u64);
            if dropped > 0 {
                h.dropped.increment(dropped as u64);
            }
            if closed > 0 {
                h.closed.increment(closed as u64);
            }
        }
    }

    /// A clock reading to time a broadcast with, when metrics are on.
    #[inline]
    pub(crate) fn broadcast_start() -> Option<std::time::Instant> {
        #[cfg(feature = "metrics")]
        return super::imp::handles().map(|_| std::time::Instant::now());
        #[cfg(not(feature = "metrics"))]
        None
    }

    #[inline]
    pub(crate) fn broadcast_done(start: Option<std::time::Instant>) {
        #[cfg(feature = "metrics")]
        if let Some(start) = start {
            if let Some(h) = super::imp::handles() {
                h.broadcast_seconds.record(start.elapsed().as_secs_f64());
            }
        }
    }

    /// Subscriptions and filters with subscribers were added (positive) or removed (negative).
    #[inline]
    pub(crate) fn subscriptions_changed(subscriptions: f64, filters: f64) {
        #[cfg(feature = "metrics")]
        {
            let Some(h) = super::imp::handles() else { return };
            h.subscriptions.increment(subscriptions);
            if filters != 0.0 {
                h.filters.increment(filters);
            }
        }
    }

    /// The Redis link `role` ("subscribing" or "publishing") is up or down; `again`: a
    /// reconnection.
    #[inline]
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn redis_link(role: &str, up: bool, again: bool) {
        #[cfg(feature = "metrics")]
        {
            let i = usize::from(role != "subscribing");
            let Some(h) = super::imp::handles() else { return };
            h.redis_up[i].set(if up { 1.0 } else { 0.0 });
            if again {
                h.redis_reconnects[i].increment(1);
            }
        }
    }
}

pub(crate) use record::*;
