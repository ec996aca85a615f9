//! [`PubSub`]: the handle the application publishes through and subscribes connections with.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use duplex::{Message, PreparedFrame};
use futures_util::FutureExt;
use serde::Serialize;

use crate::error::Error;
pub use crate::fanout::Delivery;
use crate::fanout::{Fanout, Gaps};
use crate::history::memory::MemoryBackend;
use crate::history::policy::Policies;
use crate::history::store::{Lifetimes, Store, StoreError};
use crate::history::tracks::{self, Tracks};
use crate::history::{
    HistoryPage, HistoryPolicy, HistoryQuery, Publication, PublishOptions, Published, DEFAULT_META_TTL,
    DEFAULT_POSITION_CHECK, DEFAULT_PUBLISH_ID_WINDOW, DEFAULT_RECOVER_MAX,
};
use crate::slow_subscriber::SlowSubscriber;
use crate::stats::Counters;
pub use crate::stats::Stats;
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
    pub(crate) fanout: Arc<Fanout>,
    pub(crate) policy: SlowSubscriber,
    max_subscriptions: usize,
    namespace: String,
    /// The history topics, when some pattern has a history policy.
    pub(crate) tracks: Option<Arc<Tracks>>,
    #[cfg(feature = "redis")]
    backplane: Option<Arc<crate::backplane::Backplane>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        #[cfg(feature = "redis")]
        if let Some(b) = &self.backplane {
            b.shutdown();
        }
    }
}

/// The answer to [`PubSub::publish_with`]: the publish was made when it was called; this gives its
/// outcome.
#[must_use = "the publish is made already; await this for its position or error"]
pub struct Publishing(std::pin::Pin<Box<dyn Future<Output = Result<Published, Error>> + Send>>);

impl fmt::Debug for Publishing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Publishing")
    }
}

impl Future for Publishing {
    type Output = Result<Published, Error>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
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

/// How to build a [`PubSub`]: the slow-subscriber policy, limits, the namespace, history and,
/// with the `redis` feature, the Redis backplane.
#[derive(Clone, Debug)]
pub struct Builder {
    policy: SlowSubscriber,
    max_subscriptions: usize,
    namespace: String,
    history: Vec<(String, HistoryPolicy)>,
    meta_ttl: Duration,
    recover_max: usize,
    publish_id_window: Duration,
    position_check: Duration,
    #[cfg(feature = "redis")]
    redis: Option<crate::backplane::RedisOptions>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            policy: SlowSubscriber::default(),
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            history: Vec::new(),
            meta_ttl: DEFAULT_META_TTL,
            recover_max: DEFAULT_RECOVER_MAX,
            publish_id_window: DEFAULT_PUBLISH_ID_WINDOW,
            position_check: DEFAULT_POSITION_CHECK,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl Builder {
    /// What to do with subscribers that are not keeping up. Default [`SlowSubscriber::Drop`].
    /// History topics never skip a message for one subscriber: they close it with 1013.
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

    /// The namespace: with a backplane, the topics of this `PubSub` live under the Redis names
    /// `duplex:<namespace>:…`, so two applications (say `/pubsub` and relay rooms) that both have a
    /// topic called `lobby` do not hear each other. Default `pubsub`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Keeps a history for the topics `pattern` matches (a topic, `chat.*`, or `*` for all):
    /// publications get positions, subscribers can resume ([`crate::history`]). Repeatable; for a
    /// topic matched by several, the most specific pattern wins. Off by default: it changes what
    /// happens during a Redis outage (publishes to history topics are refused rather than
    /// delivered locally). An invalid pattern fails [`build`](Builder::build).
    pub fn history(mut self, pattern: impl Into<String>, policy: HistoryPolicy) -> Self {
        self.history.push((pattern.into(), policy));
        self
    }

    /// How long a history topic's epoch and offset counter live after their last use. Default 24
    /// hours; after that, the topic starts a new epoch and resumes get `epoch_changed`.
    pub fn history_meta_ttl(mut self, ttl: Duration) -> Self {
        self.meta_ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// The most publications a resume replays; with more missing, it is not recovered
    /// (`too_many`) and the application reloads. Default 1000.
    pub fn recover_max(mut self, n: usize) -> Self {
        self.recover_max = n.max(1);
        self
    }

    /// How long a publish id is remembered (a retry with the same id within it is not published
    /// again). Default 5 minutes.
    pub fn publish_id_window(mut self, window: Duration) -> Self {
        self.publish_id_window = window.max(Duration::from_millis(1));
        self
    }

    /// How long a history topic may receive nothing before the node reads its position in Redis
    /// (to find a loss even when nothing else is published). Default 10 s.
    pub fn position_check(mut self, interval: Duration) -> Self {
        self.position_check = interval.max(Duration::from_millis(100));
        self
    }

    /// Scales out through Redis: every node publishes to Redis and subscribes to the channels of
    /// the topics it has local subscribers for, and history topics keep their history in Redis.
    /// `url` is `redis://host:port[/db]` (with `redis://:password@host` or
    /// `redis://user:password@host` for AUTH). The connection is made in the background:
    /// [`build`](Builder::build) does not wait for Redis, and a node without Redis goes on serving
    /// its local subscribers (of topics without history). See the `backplane` module docs.
    #[cfg(feature = "redis")]
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis = Some(crate::backplane::RedisOptions::new(url.into()));
        self
    }

    /// Builds the `PubSub`. With a backplane, this must run inside a tokio runtime (it starts the
    /// tasks that talk to Redis), and fails on a malformed URL.
    pub fn build(self) -> Result<PubSub, Error> {
        if self.namespace.is_empty() || self.namespace.contains(['*', '?', '[', ']', '\\', '{', '}']) {
            return Err(Error::Backplane(format!(
                "namespace {:?} must be non-empty, without glob characters or braces",
                self.namespace
            )));
        }
        let mut policies = Policies::default();
        for (pattern, policy) in &self.history {
            policies.set(pattern, *policy)?;
        }
        #[cfg(feature = "redis")]
        let backplane = match self.redis {
            Some(options) => Some(crate::backplane::Backplane::new(&self.namespace, options)?),
            None => None,
        };
        let fanout = Arc::new(Fanout::default());
        let tracks = (!policies.is_empty()).then(|| {
            let config = tracks::Config {
                policies,
                meta_ttl: self.meta_ttl,
                id_window: self.publish_id_window,
                recover_max: self.recover_max,
                position_check: self.position_check,
            };
            #[cfg(feature = "redis")]
            if let Some(b) = &backplane {
                return Tracks::new(fanout.clone(), b.clone() as Arc<dyn Store>, None, config);
            }
            let memory = Arc::new(MemoryBackend::new());
            Tracks::new(fanout.clone(), memory.clone() as Arc<dyn Store>, Some(memory), config)
        });
        let inner = Arc::new(Inner {
            fanout: fanout.clone(),
            policy: self.policy,
            max_subscriptions: self.max_subscriptions,
            namespace: self.namespace,
            tracks: tracks.clone(),
            #[cfg(feature = "redis")]
            backplane: backplane.clone(),
        });
        let weak_tracks = tracks.as_ref().map(Arc::downgrade);
        #[cfg(feature = "redis")]
        let weak_backplane = backplane.as_ref().map(Arc::downgrade);
        fanout.on_filters_changed(move || {
            if let Some(t) = weak_tracks.as_ref().and_then(|t| t.upgrade()) {
                t.filters_changed();
            }
            #[cfg(feature = "redis")]
            if let Some(b) = weak_backplane.as_ref().and_then(|b| b.upgrade()) {
                b.filters_changed();
            }
        });
        #[cfg(feature = "redis")]
        if let Some(b) = backplane {
            let node: std::sync::Weak<dyn crate::backplane::Node> = Arc::downgrade(&inner) as _;
            b.start(node);
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

    /// Publishes a message (text or binary, sent as it is) to every subscriber of `topic`, on this
    /// node and, with a backplane, on every other. The frame is encoded once and its bytes shared
    /// by all local recipients; a subscriber that is not keeping up is handled by its policy,
    /// never waited for. Fails for an invalid topic or a pattern, and on a history topic while
    /// Redis is unreachable ([`Error::Unavailable`]); [`publish_with`](PubSub::publish_with) tells
    /// a history topic's outcome.
    ///
    /// ```
    /// let pubsub = duplex_pubsub::PubSub::new();
    /// let delivery = pubsub.publish("news.sports", "kick-off").unwrap();
    /// assert_eq!(delivery.delivered, 0); // nobody is subscribed yet
    /// ```
    pub fn publish(&self, topic: &str, message: impl Into<Message>) -> Result<Delivery, Error> {
        self.publish_inner(topic, message.into(), None)
    }

    /// Publishes `data` as JSON in the envelope the `/pubsub` endpoint delivers:
    /// `{"topic":"<topic>","data":<data>}` (on a history topic with `"offset"` and `"epoch"`). For
    /// server code that feeds browser pages subscribed through `/pubsub` (see [`crate::json`]).
    ///
    /// ```
    /// # #[derive(serde::Serialize)] struct Price { symbol: &'static str, bid: f64 }
    /// let pubsub = duplex_pubsub::PubSub::new();
    /// pubsub.publish_json("prices.eur", &Price { symbol: "EURUSD", bid: 1.0841 }).unwrap();
    /// ```
    pub fn publish_json<T: Serialize + ?Sized>(&self, topic: &str, data: &T) -> Result<Delivery, Error> {
        topic::check_topic(topic)?;
        if let Some(lifetimes) = self.lifetimes(topic) {
            let publication = Publication::json(serde_json::to_string(data)?);
            return self.publish_history_now(topic, lifetimes, publication);
        }
        let text = crate::json::delivery(topic, data)?;
        self.publish_inner(topic, Message::Text(text), None)
    }

    pub(crate) fn publish_inner(&self, topic: &str, message: Message, except: Option<u64>) -> Result<Delivery, Error> {
        topic::check_topic(topic)?;
        if let Some(lifetimes) = self.lifetimes(topic) {
            return self.publish_history_now(topic, lifetimes, Publication::message(message));
        }
        Ok(self.publish_live(topic, message, except))
    }

    /// A topic without history: delivered here at once, forwarded to the other nodes.
    fn publish_live(&self, topic: &str, message: Message, except: Option<u64>) -> Delivery {
        Counters::add(&self.inner.fanout.counters.published, 1);
        crate::metrics::published();
        let delivery = self.inner.deliver(topic, &message, except);
        #[cfg(feature = "redis")]
        if let Some(b) = &self.inner.backplane {
            b.forward(topic, message);
        }
        delivery
    }

    /// A history topic, without waiting for Redis: only a refusal at once is an error.
    fn publish_history_now(
        &self,
        topic: &str,
        lifetimes: Lifetimes,
        publication: Publication,
    ) -> Result<Delivery, Error> {
        match self.publish_history(topic, lifetimes, publication, None).now_or_never() {
            Some(Err(e)) => Err(e),
            _ => Ok(Delivery::default()),
        }
    }

    /// Stores a publication on a history topic: asked now (so one caller's publishes keep their
    /// order), answered by the future.
    fn publish_history(
        &self,
        topic: &str,
        lifetimes: Lifetimes,
        publication: Publication,
        id: Option<&str>,
    ) -> impl Future<Output = Result<Published, Error>> + Send + 'static {
        let tracks = self.inner.tracks.as_ref().expect("a history topic has tracks");
        let fanout = self.inner.fanout.clone();
        Counters::add(&fanout.counters.published, 1);
        crate::metrics::published();
        let appended = tracks.publish(topic, lifetimes, publication, id);
        let topic = topic.to_owned();
        async move {
            match appended.await {
                Ok(a) => {
                    if a.duplicate {
                        Counters::add(&fanout.counters.duplicate_publishes, 1);
                        tracing::info!(%topic, "history: a publish id seen before; not published again");
                    }
                    Ok(Published { position: Some(a.position), duplicate: a.duplicate })
                }
                Err(e) => {
                    Counters::add(&fanout.counters.refused_publishes, 1);
                    tracing::info!(%topic, "history: a publish refused: {e}");
                    Err(match e {
                        StoreError::Unavailable(e) => Error::Unavailable(e),
                        StoreError::Refused(e) => Error::Backplane(e),
                    })
                }
            }
        }
    }

    /// Publishes with options, and tells what became of it: on a history topic its position once
    /// it is stored (in Redis, one round trip), or [`Error::Unavailable`] if it could not be
    /// (retry with the same [`PublishOptions::id`]: it is stored once). On a topic without
    /// history, the message is delivered as [`publish`](PubSub::publish) does and the answer
    /// comes at once, without a position.
    ///
    /// The publish is made when this is called, not when the future is first polled: one
    /// caller's publishes keep their order even when their answers are awaited together.
    ///
    /// ```
    /// # async fn f() -> Result<(), duplex_pubsub::Error> {
    /// use duplex_pubsub::{HistoryPolicy, PubSub, PublishOptions};
    /// let pubsub = PubSub::builder().history("feed", HistoryPolicy::new(100, std::time::Duration::from_secs(60))).build()?;
    /// let first = pubsub.publish_with("feed", "hello", PublishOptions::new().id("c7-1")).await?;
    /// let again = pubsub.publish_with("feed", "hello", PublishOptions::new().id("c7-1")).await?;
    /// assert_eq!(first.position.unwrap().offset, 1);
    /// assert!(again.duplicate);
    /// # Ok(()) }
    /// ```
    pub fn publish_with(&self, topic: &str, message: impl Into<Message>, options: PublishOptions) -> Publishing {
        let publication = Ok(Publication::message(message.into()));
        self.publish_with_inner(topic, options, publication)
    }

    /// [`publish_with`](PubSub::publish_with) for JSON `data`, delivered in the `/pubsub`
    /// envelope (see [`publish_json`](PubSub::publish_json)).
    pub fn publish_json_with<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &T,
        options: PublishOptions,
    ) -> Publishing {
        let publication = match self.has_history(topic) {
            true => serde_json::to_string(data).map(Publication::json),
            false => crate::json::delivery(topic, data).map(|t| Publication::message(Message::Text(t))),
        };
        self.publish_with_inner(topic, options, publication.map_err(Error::from))
    }

    fn publish_with_inner(
        &self,
        topic: &str,
        options: PublishOptions,
        publication: Result<Publication, Error>,
    ) -> Publishing {
        let started = (|| {
            topic::check_topic(topic)?;
            if let Some(id) = &options.id {
                crate::history::check_publish_id(id).map_err(Error::InvalidPublishId)?;
            }
            Ok((self.lifetimes(topic), publication?))
        })();
        let (lifetimes, publication) = match started {
            Ok(x) => x,
            Err(e) => return Publishing(Box::pin(std::future::ready(Err(e)))),
        };
        let Some(lifetimes) = lifetimes else {
            let message = match (publication.kind(), publication.as_str()) {
                (crate::history::Kind::Binary, _) | (_, None) => Message::Binary(publication.bytes().clone()),
                (_, Some(text)) => Message::Text(text.to_owned()),
            };
            self.publish_live(topic, message, None);
            let published = Published { position: None, duplicate: false };
            return Publishing(Box::pin(std::future::ready(Ok(published))));
        };
        Publishing(Box::pin(self.publish_history(topic, lifetimes, publication, options.id.as_deref())))
    }

    /// Reads a history topic: its position and up to `query.limit` publications.
    ///
    /// ```
    /// # async fn f() -> Result<(), duplex_pubsub::Error> {
    /// use duplex_pubsub::{HistoryPolicy, HistoryQuery, PubSub};
    /// let pubsub = PubSub::builder().history("chat.*", HistoryPolicy::new(50, std::time::Duration::from_secs(600))).build()?;
    /// pubsub.publish_json("chat.lobby", &"hi")?;
    /// let last = pubsub.history("chat.lobby", HistoryQuery::limit(50).reverse(true)).await?;
    /// assert_eq!(last.items.len(), 1);
    /// # Ok(()) }
    /// ```
    pub async fn history(&self, topic: &str, query: HistoryQuery) -> Result<HistoryPage, Error> {
        topic::check_topic(topic)?;
        match &self.inner.tracks {
            Some(t) => t.history(topic, query).await,
            None => Err(Error::HistoryOff(topic.to_owned())),
        }
    }

    /// Whether `topic` keeps a history ([`Builder::history`]).
    pub fn has_history(&self, topic: &str) -> bool {
        self.lifetimes(topic).is_some()
    }

    pub(crate) fn lifetimes(&self, topic: &str) -> Option<Lifetimes> {
        self.inner.tracks.as_ref()?.lifetimes(topic)
    }

    /// Local subscribers of exactly this topic or pattern (`chat.lobby`, or `chat.*` for those
    /// subscribed to the pattern). With a backplane, other nodes' subscribers are not counted.
    pub fn subscriber_count(&self, filter: &str) -> usize {
        match Filter::parse(filter) {
            Ok(f) => self.inner.fanout.read().count(&f),
            Err(_) => 0,
        }
    }

    /// Every topic and pattern with local subscribers, sorted.
    pub fn topics(&self) -> Vec<TopicInfo> {
        let filters = self.inner.fanout.read().filters();
        filters.into_iter().map(|(filter, subscribers)| TopicInfo { filter, subscribers }).collect()
    }

    /// Counters since the `PubSub` was built.
    pub fn stats(&self) -> Stats {
        self.inner.fanout.counters.snapshot()
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
    pub(crate) fn max_subscriptions(&self) -> usize {
        self.max_subscriptions
    }

    /// Queues `message` for every local subscriber of `topic` (a topic without history): the
    /// frame is encoded on the first recipient and its bytes shared by all.
    fn deliver(&self, topic: &str, message: &Message, except: Option<u64>) -> Delivery {
        self.fanout.deliver(topic, || PreparedFrame::new(message.clone()), except, |_| false, false, Gaps::Policy)
    }
}

#[cfg(feature = "redis")]
impl crate::backplane::Node for Inner {
    fn filters(&self) -> Vec<Filter> {
        self.fanout.read().filters().into_iter().map(|(f, _)| f).collect()
    }

    fn deliver(&self, topic: &str, message: &Message) {
        Counters::add(&self.fanout.counters.received, 1);
        Inner::deliver(self, topic, message, None);
    }

    fn publication(&self, topic: &str, position: crate::history::Position, publication: Publication) {
        match &self.tracks {
            Some(t) if t.lifetimes(topic).is_some() => t.live(topic, position, publication),
            // Published by a node with a history for it, not this one: delivered as it comes.
            _ => {
                let message = tracks::message(topic, position.offset, &position.epoch, &publication);
                self.fanout.deliver(topic, || PreparedFrame::new(message), None, |_| false, false, Gaps::Never);
            }
        }
    }

    fn subscribed(&self) {
        if let Some(t) = &self.tracks {
            t.link_subscribed();
        }
    }

    fn reconnected(&self) {
        if let Some(t) = &self.tracks {
            t.link_reconnected();
        }
    }

    fn tick(&self) {
        if let Some(t) = &self.tracks {
            t.check_idle();
        }
    }
}

#[cfg(test)]
#[path = "pubsub_tests.rs"]
mod tests;
