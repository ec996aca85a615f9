//! Fan-out: the subscription table, and queueing one encoded frame for every local subscriber a
//! topic reaches, with the slow-subscriber policy applied. Used for live publishes and for the
//! deliveries, replays and resets of history topics.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use duplex::{CloseCode, CloseFrame, PreparedFrame, TrySendError};

use crate::slow_subscriber::SlowSubscriber;
use crate::stats::Counters;
use crate::table::{Member, Table};

/// What one publish did on this node. With a backplane, other nodes deliver too; they are not
/// counted here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// Local subscribers the message was queued for.
    pub delivered: usize,
    /// Local subscribers it was dropped for, because they are not keeping up
    /// ([`SlowSubscriber::Drop`]).
    pub dropped: usize,
    /// Local subscribers closed because they are not keeping up ([`SlowSubscriber::Close`]).
    pub closed: usize,
}

/// How a frame is queued for one subscriber that is not keeping up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gaps {
    /// Its [`SlowSubscriber`] policy decides (topics without history).
    Policy,
    /// Never a silent gap (history topics): a subscriber that cannot take the frame is closed
    /// with 1013 and resumes from its position when it comes back.
    Never,
}

/// The table and the counters, with a hook for the backplane and the history: the set of filters
/// with local subscribers changed.
#[derive(Default)]
pub(crate) struct Fanout {
    table: RwLock<Table>,
    pub(crate) counters: Counters,
    changed: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Fanout {
    /// Sets what to call when the set of filters with local subscribers changes (once).
    pub(crate) fn on_filters_changed(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.changed.set(Box::new(f));
    }

    pub(crate) fn filters_changed(&self) {
        if let Some(f) = self.changed.get() {
            f();
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `frame` (made on the first recipient, then shared by all: a reference count, no
    /// copy) for every local subscriber of `topic` but `except` and those `skip` names;
    /// with `exact_only`, for subscribers of the topic itself, not of patterns. Subscribers found
    /// closed are unsubscribed.
    pub(crate) fn deliver(
        &self,
        topic: &str,
        frame: impl FnOnce() -> PreparedFrame,
        except: Option<u64>,
        skip: impl Fn(u64) -> bool,
        exact_only: bool,
        gaps: Gaps,
    ) -> Delivery {
        let started = crate::metrics::broadcast_start();
        let mut frame = Some(frame);
        let mut encoded: Option<PreparedFrame> = None;
        let mut delivery = Delivery::default();
        let mut gone: Vec<Arc<Member>> = Vec::new();
        let mut each = |member: &Arc<Member>| {
            if except == Some(member.id) || member.gone.load(Ordering::Relaxed) || skip(member.id) {
                return;
            }
            let prepared = encoded.get_or_insert_with(|| (frame.take().expect("made once"))());
            self.push(member, prepared, gaps, &mut delivery, &mut gone);
        };
        let table = self.read();
        if exact_only {
            table.for_each_exact(topic, &mut each);
        } else {
            table.for_each_match(topic, &mut each);
        }
        drop(table);
        crate::metrics::broadcast_done(started);
        self.count(&delivery);
        for member in gone {
            self.remove_member(&member);
        }
        delivery
    }

    /// Queues `frame` for one subscriber, with the same rules as [`deliver`](Fanout::deliver).
    /// Returns whether it was queued.
    pub(crate) fn send_to(&self, member: &Arc<Member>, frame: &PreparedFrame, gaps: Gaps) -> bool {
        if member.gone.load(Ordering::Relaxed) {
            return false;
        }
        let mut delivery = Delivery::default();
        let mut gone = Vec::new();
        self.push(member, frame, gaps, &mut delivery, &mut gone);
        self.count(&delivery);
        for member in gone {
            self.remove_member(&member);
        }
        delivery.delivered == 1
    }

    fn count(&self, delivery: &Delivery) {
        let c = &self.counters;
        Counters::add(&c.delivered, delivery.delivered as u64);
        Counters::add(&c.dropped, delivery.dropped as u64);
        Counters::add(&c.closed, delivery.closed as u64);
        crate::metrics::delivered(delivery.delivered, delivery.dropped, delivery.closed);
    }

    fn push(
        &self,
        member: &Arc<Member>,
        frame: &PreparedFrame,
        gaps: Gaps,
        delivery: &mut Delivery,
        gone: &mut Vec<Arc<Member>>,
    ) {
        let close_with = match member.sender.send_prepared(frame) {
            Ok(()) => {
                delivery.delivered += 1;
                return;
            }
            Err(TrySendError::Closed) => {
                member.gone.store(true, Ordering::Relaxed);
                gone.push(member.clone());
                return;
            }
            Err(_) if gaps == Gaps::Never => CloseCode::TRY_AGAIN_LATER,
            Err(TrySendError::Full { .. }) => match member.policy {
                SlowSubscriber::Close(code) => code,
                _ => {
                    member.dropped.fetch_add(1, Ordering::Relaxed);
                    delivery.dropped += 1;
                    return;
                }
            },
            // The connection's own slow-consumer policy dropped it.
            Err(_) => {
                member.dropped.fetch_add(1, Ordering::Relaxed);
                delivery.dropped += 1;
                return;
            }
        };
        member.gone.store(true, Ordering::Relaxed);
        let reason = "too slow: messages were waiting over the write buffer limit";
        let _ = member.sender.close(Some(CloseFrame::new(close_with, reason)));
        tracing::debug!(subscriber = member.id, "slow subscriber closed with {close_with}");
        delivery.closed += 1;
        gone.push(member.clone());
    }

    /// Unsubscribes `member` from everything.
    pub(crate) fn remove_member(&self, member: &Member) {
        let mut filters = member.filters.lock().unwrap_or_else(|p| p.into_inner());
        if filters.is_empty() {
            return;
        }
        let mut changed = false;
        {
            let mut table = self.write();
            for f in filters.iter() {
                changed |= table.remove(f, member.id);
            }
        }
        filters.clear();
        drop(filters);
        if changed {
            self.filters_changed();
        }
    }
}
