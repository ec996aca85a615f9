//! [`Subscriber`]: one connection's subscriptions.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use duplex::Sender;

use crate::error::Error;
use crate::pubsub::PubSub;
use crate::table::Member;
use crate::topic::Filter;
use std::collections::BTreeSet;

/// One connection's place in a [`PubSub`]: what it follows. Made by [`PubSub::attach`] or
/// [`PubSub::subscriber`], kept by the connection's task; dropping it unsubscribes the connection
/// from everything, and so does a publish that finds the connection closed.
///
/// ```no_run
/// # async fn f(mut ws: duplex::WebSocket<duplex::ServerStream>, pubsub: duplex_pubsub::PubSub) {
/// let me = pubsub.attach(&mut ws);
/// me.subscribe("prices.*").unwrap();          // every topic under `prices.`
/// me.subscribe("news").unwrap();              // one topic
/// assert_eq!(pubsub.subscriber_count("news"), 1);
/// me.unsubscribe("news");
/// # }
/// ```
pub struct Subscriber {
    pub(crate) member: Arc<Member>,
    pub(crate) pubsub: PubSub,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber").field("id", &self.member.id).field("filters", &*self.filters()).finish()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.pubsub.inner.remove_member(&self.member);
    }
}

impl Subscriber {
    /// An id, unique within its [`PubSub`].
    pub fn id(&self) -> u64 {
        self.member.id
    }

    /// The connection's sender.
    pub fn sender(&self) -> &Sender {
        &self.member.sender
    }

    fn filters(&self) -> MutexGuard<'_, BTreeSet<Filter>> {
        self.member.filters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows a topic (`chat.lobby`) or a pattern (`chat.*`, see [`crate::topic`]). Returns
    /// `false` if it already did. A connection that follows several filters matching one topic
    /// still receives each message once.
    pub fn subscribe(&self, filter: &str) -> Result<bool, Error> {
        let filter = Filter::parse(filter)?;
        let inner = &self.pubsub.inner;
        let mut filters = self.filters();
        if filters.contains(&filter) {
            return Ok(false);
        }
        if filters.len() >= inner.max_subscriptions() {
            return Err(Error::TooManySubscriptions { limit: inner.max_subscriptions() });
        }
        // A connection that a publish found closed (or the slow-subscriber policy closed) stays
        // out: it would never be removed again.
        if self.member.gone.load(Ordering::Relaxed) || self.member.sender.is_closed() {
            return Ok(false);
        }
        let new = inner.write().insert(&filter, &self.member);
        filters.insert(filter);
        drop(filters);
        if new {
            inner.filters_changed();
        }
        Ok(true)
    }

    /// Stops following a topic or pattern. Returns `false` if it did not follow it.
    pub fn unsubscribe(&self, filter: &str) -> bool {
        let Ok(filter) = Filter::parse(filter) else { return false };
        let inner = &self.pubsub.inner;
        let mut filters = self.filters();
        if !filters.remove(&filter) {
            return false;
        }
        let emptied = inner.write().remove(&filter, self.member.id);
        drop(filters);
        if emptied {
            inner.filters_changed();
        }
        true
    }

    /// Stops following everything (what dropping the subscriber does).
    pub fn unsubscribe_all(&self) {
        self.pubsub.inner.remove_member(&self.member);
    }

    /// Whether it follows exactly this topic or pattern.
    pub fn is_subscribed(&self, filter: &str) -> bool {
        Filter::parse(filter).is_ok_and(|f| self.filters().contains(&f))
    }

    /// The topics and patterns it follows, sorted.
    pub fn subscriptions(&self) -> Vec<Filter> {
        self.filters().iter().cloned().collect()
    }

    /// Messages dropped for this subscriber because it was not keeping up.
    pub fn dropped(&self) -> u64 {
        self.member.dropped.load(Ordering::Relaxed)
    }

    /// The [`PubSub`] it belongs to.
    pub fn pubsub(&self) -> &PubSub {
        &self.pubsub
    }
}
