//! [`Stats`]: what a [`PubSub`](crate::PubSub) has done since it was built.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::position::NotRecovered;

/// Counters since the [`PubSub`](crate::PubSub) was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages published on this node.
    pub published: u64,
    /// Messages received from other nodes through the backplane.
    pub received: u64,
    /// Messages queued for local subscribers (one per subscriber).
    pub delivered: u64,
    /// Messages dropped for slow local subscribers.
    pub dropped: u64,
    /// Local subscribers closed for being slow.
    pub closed: u64,
    /// History topics: resumes that replayed what the subscriber missed (or found nothing
    /// missing).
    pub resumes_recovered: u64,
    /// History topics: resumes that could not be proven continuous, by reason.
    pub resumes_not_recovered: NotRecoveredCounts,
    /// History topics: publications replayed to resuming subscribers.
    pub replayed: u64,
    /// History topics: holes in what this node received, filled from the stream.
    pub gaps_repaired: u64,
    /// History topics: `reset`s (continuity lost on this node), sent to its subscribers.
    pub resets: u64,
    /// History topics: publishes whose id was already stored (not published again).
    pub duplicate_publishes: u64,
    /// History topics: publishes refused because the history could not be written (Redis
    /// unreachable).
    pub refused_publishes: u64,
}

/// Resumes not recovered, per [`NotRecovered`] reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotRecoveredCounts {
    /// [`NotRecovered::EpochChanged`].
    pub epoch_changed: u64,
    /// [`NotRecovered::TooOld`].
    pub too_old: u64,
    /// [`NotRecovered::TooMany`].
    pub too_many: u64,
    /// [`NotRecovered::HistoryOff`].
    pub history_off: u64,
    /// [`NotRecovered::UnknownPosition`].
    pub unknown_position: u64,
}

impl NotRecoveredCounts {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.epoch_changed + self.too_old + self.too_many + self.history_off + self.unknown_position
    }
}

/// The live counters behind [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) resumes_recovered: AtomicU64,
    /// By [`reason_index`].
    pub(crate) not_recovered: [AtomicU64; 5],
    pub(crate) replayed: AtomicU64,
    pub(crate) gaps_repaired: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) duplicate_publishes: AtomicU64,
    pub(crate) refused_publishes: AtomicU64,
}

fn reason_index(r: NotRecovered) -> usize {
    match r {
        NotRecovered::EpochChanged => 0,
        NotRecovered::TooOld => 1,
        NotRecovered::TooMany => 2,
        NotRecovered::HistoryOff => 3,
        NotRecovered::UnknownPosition => 4,
    }
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn not_recovered(&self, reason: NotRecovered) {
        Self::add(&self.not_recovered[reason_index(reason)], 1);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let nr = |r| get(&self.not_recovered[reason_index(r)]);
        Stats {
            published: get(&self.published),
            received: get(&self.received),
            delivered: get(&self.delivered),
            dropped: get(&self.dropped),
            closed: get(&self.closed),
            resumes_recovered: get(&self.resumes_recovered),
            resumes_not_recovered: NotRecoveredCounts {
                epoch_changed: nr(NotRecovered::EpochChanged),
                too_old: nr(NotRecovered::TooOld),
                too_many: nr(NotRecovered::TooMany),
                history_off: nr(NotRecovered::HistoryOff),
                unknown_position: nr(NotRecovered::UnknownPosition),
            },
            replayed: get(&self.replayed),
            gaps_repaired: get(&self.gaps_repaired),
            resets: get(&self.resets),
            duplicate_publishes: get(&self.duplicate_publishes),
            refused_publishes: get(&self.refused_publishes),
        }
    }
}
