//! [`Subscriber`]: one connection's subscriptions.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};

use duplex::{Message, Sender, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;
use crate::history::tracks::Joined;
use crate::history::{NotRecovered, Recovery, SubscribeOptions, SubscribeOutcome};
use crate::pubsub::{Delivery, PubSub};
use crate::slow_subscriber::SlowSubscriber;
use crate::table::Member;
use crate::topic::Filter;

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

/// How a connection becomes a subscriber, and publishes past itself: kept beside [`Subscriber`].
impl PubSub {
    /// Makes a subscriber of the connection behind `sender`, with the `PubSub`'s policy. It
    /// follows nothing until [`Subscriber::subscribe`]; dropping it unsubscribes it from
    /// everything.
    pub fn subscriber(&self, sender: Sender) -> Subscriber {
        self.subscriber_with(sender, self.inner.policy)
    }

    /// [`subscriber`](PubSub::subscriber) with its own slow-subscriber policy.
    ///
    /// A subscriber goes by its connection's id ([`Sender::id`]): make one per connection and
    /// `PubSub`.
    pub fn subscriber_with(&self, sender: Sender, policy: SlowSubscriber) -> Subscriber {
        // The connection's own id: the same as in the server's connections and logs.
        let member = Arc::new(Member {
            id: sender.id(),
            sender,
            policy,
            filters: Default::default(),
            gone: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        Subscriber { member, pubsub: self.clone() }
    }

    /// [`publish`](PubSub::publish) to everyone but `except` (a relay without echo: the sender
    /// does not get its own message back). On a history topic every subscriber gets every
    /// publication (a position has no holes): `except` is not left out there.
    pub fn publish_except(
        &self,
        topic: &str,
        message: impl Into<Message>,
        except: &Subscriber,
    ) -> Result<Delivery, Error> {
        self.publish_inner(topic, message.into(), Some(except.id()))
    }

    /// Makes a subscriber of a server connection: [`subscriber`](PubSub::subscriber) with
    /// [`WebSocket::sender`]. Messages published to it are written while the connection's task
    /// is polled (while it awaits `recv`).
    ///
    /// ```no_run
    /// # async fn f(mut ws: duplex::WebSocket<duplex::ServerStream>, pubsub: duplex_pubsub::PubSub) {
    /// let me = pubsub.attach(&mut ws);
    /// me.subscribe("chat.lobby").unwrap();
    /// while let Some(Ok(msg)) = ws.recv().await {
    ///     let _ = pubsub.publish("chat.lobby", msg);
    /// }
    /// // `me` drops here: unsubscribed from everything.
    /// # }
    /// ```
    pub fn attach<S: AsyncRead + AsyncWrite + Unpin>(&self, ws: &mut WebSocket<S>) -> Subscriber {
        self.subscriber(ws.sender())
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber").field("id", &self.member.id).field("filters", &*self.filters()).finish()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.pubsub.inner.fanout.remove_member(&self.member);
    }
}

impl Subscriber {
    /// Its connection's id ([`Sender::id`](duplex::Sender::id)), unique in the process: the same
    /// as in the server's connections and logs.
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
    /// still receives each message once. On a history topic, live from the topic's position (with
    /// Redis, from when it is known: [`subscribe_with`](Subscriber::subscribe_with) tells which).
    pub fn subscribe(&self, filter: &str) -> Result<bool, Error> {
        let filter = Filter::parse(filter)?;
        if let (Filter::Exact(topic), Some(tracks)) = (&filter, self.history(&filter)) {
            return match tracks.join(&self.member, topic, None, None, || self.insert(&filter))? {
                Joined::Done(outcome) => Ok(outcome.new),
                // Live once Redis tells the topic's position.
                _ => Ok(true),
            };
        }
        let (new, table_new) = self.insert(&filter)?;
        if table_new {
            self.pubsub.inner.fanout.filters_changed();
        }
        Ok(new)
    }

    /// Follows a topic or a pattern, with options; on an exact history topic, resumes after
    /// [`SubscribeOptions::since`]: what the subscriber missed is queued for it in order, then
    /// the reply ([`SubscribeOptions::reply`]), then live publications — contiguous, without
    /// duplicates — or, when that cannot be proven, nothing is replayed and the outcome says why.
    ///
    /// The replayed messages are queued as the connection takes them (waiting when it is over its
    /// write buffer limit): the connection's own task must keep running (awaiting `recv`) while
    /// this is awaited, as the `/pubsub` endpoint does. Fails with [`Error::Unavailable`] (and
    /// does not subscribe) when Redis cannot tell the topic's position.
    ///
    /// ```no_run
    /// # async fn f(me: duplex_pubsub::Subscriber, since: duplex_pubsub::Position) -> Result<(), duplex_pubsub::Error> {
    /// use duplex_pubsub::{Recovery, SubscribeOptions};
    /// let outcome = me.subscribe_with("feed", SubscribeOptions::new().since(since)).await?;
    /// match outcome.recovery {
    ///     Recovery::Recovered { replayed } => println!("{replayed} missed messages replayed"),
    ///     Recovery::NotRecovered(reason) => println!("reload the state: {reason}"),
    ///     _ => {}
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn subscribe_with(&self, filter: &str, options: SubscribeOptions) -> Result<SubscribeOutcome, Error> {
        let filter = Filter::parse(filter)?;
        let SubscribeOptions { since, reply } = options;
        if since.is_some() && filter.is_pattern() {
            return Err(Error::ResumeNeedsTopic(filter.to_string()));
        }
        if let (Filter::Exact(topic), Some(tracks)) = (&filter, self.history(&filter)) {
            let joined = tracks.join(&self.member, topic, since, reply, || self.insert(&filter))?;
            let outcome = tracks.finish(&self.member, joined).await;
            if outcome.is_err() {
                self.unsubscribe(topic);
            }
            return outcome;
        }
        let (new, table_new) = self.insert(&filter)?;
        if table_new {
            self.pubsub.inner.fanout.filters_changed();
        }
        let recovery = match since {
            Some(_) => {
                self.pubsub.inner.fanout.counters.not_recovered(NotRecovered::HistoryOff);
                Recovery::NotRecovered(NotRecovered::HistoryOff)
            }
            None => Recovery::Live,
        };
        let outcome = SubscribeOutcome { position: None, recovery, new };
        if let Some(message) = reply.and_then(|f| f(&outcome)) {
            let _ = self.member.sender.send(message);
        }
        Ok(outcome)
    }

    /// The history topics, if `filter` is one.
    fn history(&self, filter: &Filter) -> Option<&std::sync::Arc<crate::history::tracks::Tracks>> {
        let tracks = self.pubsub.inner.tracks.as_ref()?;
        match filter {
            Filter::Exact(topic) if tracks.lifetimes(topic).is_some() => Some(tracks),
            _ => None,
        }
    }

    /// Puts the subscriber in the table under `filter`. Returns whether it is new to the
    /// subscriber, and whether the filter is new to the table (the caller then tells the backplane,
    /// outside any lock).
    fn insert(&self, filter: &Filter) -> Result<(bool, bool), Error> {
        let inner = &self.pubsub.inner;
        let mut filters = self.filters();
        if filters.contains(filter) {
            return Ok((false, false));
        }
        if filters.len() >= inner.max_subscriptions() {
            return Err(Error::TooManySubscriptions { limit: inner.max_subscriptions() });
        }
        // A connection that a publish found closed (or the slow-subscriber policy closed) stays
        // out: it would never be removed again.
        if self.member.gone.load(Ordering::Relaxed) || self.member.sender.is_closed() {
            return Ok((false, false));
        }
        let table_new = inner.fanout.write().insert(filter, &self.member);
        filters.insert(filter.clone());
        Ok((true, table_new))
    }

    /// Stops following a topic or pattern. Returns `false` if it did not follow it.
    pub fn unsubscribe(&self, filter: &str) -> bool {
        let Ok(filter) = Filter::parse(filter) else { return false };
        let inner = &self.pubsub.inner;
        let mut filters = self.filters();
        if !filters.remove(&filter) {
            return false;
        }
        let emptied = inner.fanout.write().remove(&filter, self.member.id);
        drop(filters);
        if emptied {
            inner.fanout.filters_changed();
        }
        true
    }

    /// Stops following everything (what dropping the subscriber does).
    pub fn unsubscribe_all(&self) {
        self.pubsub.inner.fanout.remove_member(&self.member);
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
