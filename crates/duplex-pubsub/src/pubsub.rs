//! [`PubSub`]: the handle the application publishes through and subscribes connections with.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use duplex::outbox::SendError;
use duplex::proto::encode_server_frame;
use duplex::{CloseFrame, Message, Sender, WebSocket};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;
use crate::slow_subscriber::SlowSubscriber;
use crate::subscriber::Subscriber;
use crate::table::{Member, Table};
use crate::topic::{self, Filter};

/// The default namespace: the one `duplex serve` mounts at `/pubsub`.
pub const DEFAULT_NAMESPACE: &str = "pubsub";

/// The default for [`Builder::max_subscriptions`].
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 1000;

/// A set of topics: subscribe connections, publish from anywhere. Cloning gives another handle to
/// the same topics. See the [crate docs](crate).
#[derive(Clone)]
pub struct PubSub {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) table: RwLock<Table>,
    next_id: AtomicU64,
    policy: SlowSubscriber,
    max_subscriptions: usize,
    namespace: String,
    counters: Counters,
    #[cfg(feature = "redis")]
    pub(crate) backplane: Option<Arc<crate::backplane::Backplane>>,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    received: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    closed: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        #[cfg(feature = "redis")]
        if let Some(b) = &self.backplane {
            b.shutdown();
        }
    }
}

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

/// Counters since the [`PubSub`] was built.
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
}

/// A filter and its number of local subscribers, as [`PubSub::topics`] lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicInfo {
    /// The topic or pattern.
    pub filter: Filter,
    /// Local connections subscribed to it.
    pub subscribers: usize,
}

impl fmt::Debug for PubSub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PubSub")
            .field("namespace", &self.inner.namespace)
            .field("policy", &self.inner.policy)
            .field("backplane", &self.has_backplane())
            .finish()
    }
}

impl Default for PubSub {
    fn default() -> Self {
        PubSub::new()
    }
}

/// How to build a [`PubSub`]: the slow-subscriber policy, limits, the namespace and, with the
/// `redis` feature, the Redis backplane.
#[derive(Clone, Debug)]
pub struct Builder {
    policy: SlowSubscriber,
    max_subscriptions: usize,
    namespace: String,
    #[cfg(feature = "redis")]
    redis: Option<crate::backplane::RedisOptions>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            policy: SlowSubscriber::default(),
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl Builder {
    /// What to do with subscribers that are not keeping up. Default [`SlowSubscriber::Drop`].
    pub fn slow_subscriber(mut self, policy: SlowSubscriber) -> Self {
        self.policy = policy;
        self
    }

    /// The most filters one subscriber may follow at once. Default 1000: enough for any
    /// application, and a client cannot make the server hold unbounded state.
    pub fn max_subscriptions(mut self, n: usize) -> Self {
        self.max_subscriptions = n;
        self
    }

    /// The namespace: with a backplane, the topics of this `PubSub` live under the Redis channel
    /// prefix `duplex:<namespace>:`, so two applications (say `/pubsub` and relay rooms) that
    /// both have a topic called `lobby` do not hear each other. Default `pubsub`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Scales out through Redis pub/sub: every node publishes to Redis and subscribes to the
    /// channels of the topics it has local subscribers for. `url` is `redis://host:port[/db]`
    /// (with `redis://:password@host` or `redis://user:password@host` for AUTH). The connection
    /// is made in the background: [`build`](Builder::build) does not wait for Redis, and a node
    /// without Redis goes on serving its local subscribers. See the `backplane` module docs.
    #[cfg(feature = "redis")]
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis = Some(crate::backplane::RedisOptions::new(url.into()));
        self
    }

    /// Builds the `PubSub`. With a backplane, this must run inside a tokio runtime (it starts the
    /// tasks that talk to Redis), and fails on a malformed URL.
    pub fn build(self) -> Result<PubSub, Error> {
        if self.namespace.is_empty() || self.namespace.contains(['*', '?', '[', ']', '\\']) {
            return Err(Error::Backplane(format!(
                "namespace {:?} must be non-empty, without glob characters",
                self.namespace
            )));
        }
        #[cfg(feature = "redis")]
        let backplane = match self.redis {
            Some(options) => Some(crate::backplane::Backplane::new(&self.namespace, options)?),
            None => None,
        };
        let inner = Arc::new(Inner {
            table: RwLock::new(Table::default()),
            next_id: AtomicU64::new(0),
            policy: self.policy,
            max_subscriptions: self.max_subscriptions,
            namespace: self.namespace,
            counters: Counters::default(),
            #[cfg(feature = "redis")]
            backplane: backplane.clone(),
        });
        #[cfg(feature = "redis")]
        if let Some(b) = backplane {
            b.start(Arc::downgrade(&inner));
        }
        Ok(PubSub { inner })
    }
}

impl PubSub {
    /// Topics within this process only, with the default policy and limits.
    pub fn new() -> PubSub {
        Builder::default().build().expect("the default namespace is valid")
    }

    /// A builder for the policy, the limits and the backplane.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The namespace ([`Builder::namespace`]).
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Makes a subscriber of the connection behind `sender`, with the `PubSub`'s policy. It
    /// follows nothing until [`Subscriber::subscribe`]; dropping it unsubscribes it from
    /// everything.
    pub fn subscriber(&self, sender: Sender) -> Subscriber {
        self.subscriber_with(sender, self.inner.policy)
    }

    /// [`subscriber`](PubSub::subscriber) with its own slow-subscriber policy.
    pub fn subscriber_with(&self, sender: Sender, policy: SlowSubscriber) -> Subscriber {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let member = Arc::new(Member {
            id,
            sender,
            policy,
            filters: Default::default(),
            gone: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        Subscriber { member, pubsub: self.clone() }
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

    /// Publishes a message (text or binary, sent as it is) to every subscriber of `topic`, on this
    /// node and, with a backplane, on every other. The frame is encoded once and its bytes shared
    /// by all local recipients; a subscriber that is not keeping up is handled by its policy,
    /// never waited for. Fails only for an invalid topic or a pattern.
    ///
    /// ```
    /// let pubsub = duplex_pubsub::PubSub::new();
    /// let delivery = pubsub.publish("news.sports", "kick-off").unwrap();
    /// assert_eq!(delivery.delivered, 0); // nobody is subscribed yet
    /// ```
    pub fn publish(&self, topic: &str, message: impl Into<Message>) -> Result<Delivery, Error> {
        self.publish_inner(topic, message.into(), None)
    }

    /// [`publish`](PubSub::publish) to everyone but `except` (a relay without echo: the sender
    /// does not get its own message back).
    pub fn publish_except(
        &self,
        topic: &str,
        message: impl Into<Message>,
        except: &Subscriber,
    ) -> Result<Delivery, Error> {
        self.publish_inner(topic, message.into(), Some(except.id()))
    }

    /// Publishes `data` as JSON in the envelope the `/pubsub` endpoint delivers:
    /// `{"topic":"<topic>","data":<data>}`. For server code that feeds browser pages subscribed
    /// through `/pubsub` (see [`crate::json`]).
    ///
    /// ```
    /// # #[derive(serde::Serialize)] struct Price { symbol: &'static str, bid: f64 }
    /// let pubsub = duplex_pubsub::PubSub::new();
    /// pubsub.publish_json("prices.eur", &Price { symbol: "EURUSD", bid: 1.0841 }).unwrap();
    /// ```
    pub fn publish_json<T: Serialize + ?Sized>(&self, topic: &str, data: &T) -> Result<Delivery, Error> {
        topic::check_topic(topic)?;
        let text = crate::json::delivery(topic, data)?;
        self.publish_inner(topic, Message::Text(text), None)
    }

    fn publish_inner(&self, topic: &str, message: Message, except: Option<u64>) -> Result<Delivery, Error> {
        topic::check_topic(topic)?;
        self.inner.counters.published.fetch_add(1, Ordering::Relaxed);
        let delivery = self.inner.deliver(topic, &message, except);
        #[cfg(feature = "redis")]
        if let Some(b) = &self.inner.backplane {
            b.forward(topic, message);
        }
        Ok(delivery)
    }

    /// Local subscribers of exactly this topic or pattern (`chat.lobby`, or `chat.*` for those
    /// subscribed to the pattern). With a backplane, other nodes' subscribers are not counted.
    pub fn subscriber_count(&self, filter: &str) -> usize {
        match Filter::parse(filter) {
            Ok(f) => self.inner.read().count(&f),
            Err(_) => 0,
        }
    }

    /// Every topic and pattern with local subscribers, sorted.
    pub fn topics(&self) -> Vec<TopicInfo> {
        self.inner.read().filters().into_iter().map(|(filter, subscribers)| TopicInfo { filter, subscribers }).collect()
    }

    /// Counters since the `PubSub` was built.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            published: c.published.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            closed: c.closed.load(Ordering::Relaxed),
        }
    }

    /// Whether a backplane (Redis) was configured.
    pub fn has_backplane(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.inner.backplane.is_some();
        #[cfg(not(feature = "redis"))]
        false
    }

    /// Whether the backplane is connected now (both its subscribing and its publishing
    /// connection); `false` without one.
    pub fn backplane_connected(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.inner.backplane.as_ref().is_some_and(|b| b.is_connected());
        #[cfg(not(feature = "redis"))]
        false
    }
}

impl Inner {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn max_subscriptions(&self) -> usize {
        self.max_subscriptions
    }

    /// The backplane must follow a change in the set of filters with local subscribers.
    pub(crate) fn filters_changed(&self) {
        #[cfg(feature = "redis")]
        if let Some(b) = &self.backplane {
            b.filters_changed();
        }
    }

    /// A message that came from another node.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn deliver_remote(&self, topic: &str, message: &Message) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        self.deliver(topic, message, None);
    }

    /// Queues `message` for every local subscriber of `topic`: the frame is encoded on the first
    /// recipient and its bytes shared by all (a reference count, no copy, no allocation per
    /// recipient).
    fn deliver(&self, topic: &str, message: &Message, except: Option<u64>) -> Delivery {
        let mut frame: Option<Bytes> = None;
        let mut delivery = Delivery::default();
        let mut gone: Vec<Arc<Member>> = Vec::new();
        self.read().for_each_match(topic, |member| {
            if except == Some(member.id) || member.gone.load(Ordering::Relaxed) {
                return;
            }
            let frame = frame.get_or_insert_with(|| encode_server_frame(message)).clone();
            match member.sender.send_encoded(frame) {
                Ok(()) => delivery.delivered += 1,
                Err(SendError::Closed) => {
                    member.gone.store(true, Ordering::Relaxed);
                    gone.push(member.clone());
                }
                Err(SendError::Full { .. }) => match member.policy {
                    SlowSubscriber::Close(code) => {
                        member.gone.store(true, Ordering::Relaxed);
                        let reason = "too slow: messages were waiting over the write buffer limit";
                        let _ = member.sender.close(Some(CloseFrame::new(code, reason)));
                        tracing::debug!(subscriber = member.id, %topic, "slow subscriber closed with {code}");
                        delivery.closed += 1;
                        gone.push(member.clone());
                    }
                    _ => {
                        member.dropped.fetch_add(1, Ordering::Relaxed);
                        delivery.dropped += 1;
                    }
                },
                // The connection's own slow-consumer policy dropped it.
                Err(_) => {
                    member.dropped.fetch_add(1, Ordering::Relaxed);
                    delivery.dropped += 1;
                }
            }
        });
        for member in gone {
            self.remove_member(&member);
        }
        let c = &self.counters;
        c.delivered.fetch_add(delivery.delivered as u64, Ordering::Relaxed);
        c.dropped.fetch_add(delivery.dropped as u64, Ordering::Relaxed);
        c.closed.fetch_add(delivery.closed as u64, Ordering::Relaxed);
        delivery
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

#[cfg(test)]
#[path = "pubsub_tests.rs"]
mod tests;
