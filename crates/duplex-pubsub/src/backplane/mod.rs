//! The Redis backplane (feature `redis`): several nodes serve one set of topics, and history
//! topics keep their publications in Redis streams.
//!
//! The backplane sees the node it serves only through the narrow [`Node`] trait (the filters its
//! subscribers follow; where to deliver what comes from Redis), so it is tested without a
//! `PubSub`, and the `PubSub` only through [`Store`] (history) and a few calls.
//!
//! - **Names.** Every channel and key comes from [`names`]: topic `t` of namespace `ns` is the
//!   channel `duplex:ns:{t:t}`, a history topic's keys add `:meta`, `:stream`, `:id:<id>`.
//!   `/pubsub` topics and relay rooms live in different namespaces, so they never meet.
//! - **The link.** One connection per node (per namespace) in subscribe mode follows the
//!   channels and patterns that have at least one local subscriber ([`link`]). A task reconciles
//!   what Redis has with what the subscription table wants (subscribing in batches), so changes
//!   made while Redis is away are caught up on reconnection; the link is probed with a `PING`
//!   when idle, so one that stays open but no longer receives is replaced.
//! - **Publishing.** One task sends what is queued as one pipeline per round trip on a second,
//!   multiplexed connection ([`publish`]): `PUBLISH` for topics without history (the node has
//!   already delivered them to its own subscribers), the publish script for history topics
//!   ([`history`]; the node delivers those when they come back through its link, with their
//!   offsets). One node's publishes keep their order: one connection, one queue.
//! - **Exactly once, topics without history.** Each message carries its node's id and a sequence
//!   number ([`wire`]). A node skips its own messages, and delivers a message that arrives through
//!   several of its subscriptions (`chat.lobby` and `chat.*`) once: Redis sends those copies one
//!   after the other, so a short memory of recent ids is enough.
//! - **History topics** carry their offset and epoch instead; the node's tracks deliver each once
//!   and in offset order, and fill holes from the stream (`crate::history::track`).
//! - **Outages.** When Redis goes away the node logs it once and reconnects with exponential
//!   backoff (100 ms doubling to 2 s, with jitter), then subscribes again to everything its
//!   subscribers follow, and every history topic reads what it missed. Meanwhile topics without
//!   history reach local subscribers only (Redis pub/sub keeps no history, and a backlog replayed
//!   minutes later would surprise more than a gap); publishes to history topics are refused at
//!   once (nothing is delivered without an offset) so that clients retry them.

mod history;
mod link;
mod names;
mod publish;
pub(crate) mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use duplex::Message;
use tokio::sync::{watch, Notify};
use tokio::time::sleep;

use crate::error::Error;
use crate::history::store::{Appended, Lifetimes, Page, Read, Store, StoreError, StoreFuture};
use crate::history::{Position, Publication};
use crate::topic::Filter;
use names::Names;

/// How long to wait for a connection (or an answer) before calling Redis unreachable.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The first and the longest wait between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What a backplane needs from the node it serves.
pub(crate) trait Node: Send + Sync {
    /// The filters with local subscribers.
    fn filters(&self) -> Vec<Filter>;
    /// A message published on another node to a topic without history.
    fn deliver(&self, topic: &str, message: &Message);
    /// A publication on a history topic, from the link (this node's own included).
    fn publication(&self, topic: &str, position: Position, publication: Publication);
    /// The link follows everything [`filters`](Node::filters) asked for.
    fn subscribed(&self);
    /// The link came back after an outage: history topics read what they missed.
    fn reconnected(&self);
    /// Called about once a second while the link is up: history topics idle for the position
    /// check read their position.
    fn tick(&self);
}

/// Where and how to reach Redis.
#[derive(Clone, Debug)]
pub(crate) struct RedisOptions {
    url: String,
}

impl RedisOptions {
    pub(crate) fn new(url: String) -> Self {
        RedisOptions { url }
    }
}

/// A namespace's link to Redis. Its two tasks hold a weak reference to the [`Node`] and end when
/// it is dropped (or at [`shutdown`](Backplane::shutdown)).
pub(crate) struct Backplane {
    node: u64,
    names: Names,
    /// The URL without its password, and the namespace, for logs: a process with several
    /// namespaces (`duplex serve --redis`: `/pubsub` and the chat demo) has one pair of
    /// connections per namespace, and each line says which it is about.
    url: String,
    client: redis::Client,
    scripts: history::Scripts,
    queue: Mutex<publish::Queue>,
    queued: Notify,
    changed: Notify,
    shutdown: watch::Sender<bool>,
    publishing: AtomicBool,
    subscribing: AtomicBool,
    seq: AtomicU64,
    /// Messages that could not be sent to other nodes (Redis away, queue full).
    lost: AtomicU64,
    /// The command connection while it is up: reads share it with the publishing task.
    conn: Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl Backplane {
    pub(crate) fn new(namespace: &str, options: RedisOptions) -> Result<Arc<Backplane>, Error> {
        let url = redact_url(&options.url);
        let client =
            redis::Client::open(options.url.as_str()).map_err(|e| Error::Backplane(format!("Redis URL {url}: {e}")))?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Backplane("a PubSub with Redis must be built inside a tokio runtime".into()));
        }
        Ok(Arc::new(Backplane {
            node: rand::random(),
            names: Names::new(namespace),
            url: format!("{url} (namespace {namespace})"),
            client,
            scripts: history::Scripts::default(),
            queue: Mutex::new(publish::Queue::default()),
            queued: Notify::new(),
            changed: Notify::new(),
            shutdown: watch::channel(false).0,
            publishing: AtomicBool::new(false),
            subscribing: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            conn: Mutex::new(None),
        }))
    }

    /// Starts the publishing and the subscribing task.
    pub(crate) fn start(self: &Arc<Self>, node: Weak<dyn Node>) {
        tokio::spawn(self.clone().publish_loop());
        tokio::spawn(self.clone().subscribe_loop(node));
    }

    pub(crate) fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.publishing.load(Ordering::Acquire) && self.subscribing.load(Ordering::Acquire)
    }

    /// The set of filters with local subscribers changed.
    pub(crate) fn filters_changed(&self) {
        self.changed.notify_one();
    }

    fn connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Store for Backplane {
    fn append(
        &self,
        topic: &str,
        lifetimes: Lifetimes,
        publication: Publication,
        id: Option<&str>,
    ) -> StoreFuture<Appended> {
        self.queue_append(topic, lifetimes, &publication, id)
    }

    fn read(&self, topic: &str, lifetimes: Lifetimes, read: Read) -> StoreFuture<Page> {
        let Some(mut conn) = self.connection() else {
            let e = StoreError::Unavailable(format!("redis {} is unreachable", self.url));
            return Box::pin(std::future::ready(Err(e)));
        };
        let (scripts, names, topic) = (self.scripts.clone(), self.names.clone(), topic.to_owned());
        Box::pin(async move { history::read(&mut conn, &scripts, &names, &topic, lifetimes, read).await })
    }
}

/// Reconnection delays, and logging of outages: one warning when a connection is lost or cannot
/// be made, one line when it is back; attempts in between at debug level.
#[derive(Default)]
struct Backoff {
    next: Option<Duration>,
    down_since: Option<std::time::Instant>,
    ever_connected: bool,
}

impl Backoff {
    fn delay(&mut self) -> Duration {
        let d = self.next.unwrap_or(BACKOFF_MIN);
        self.next = Some((d * 2).min(BACKOFF_MAX));
        let jitter = rand::random_range(0..=d.as_millis() as u64 / 5);
        d + Duration::from_millis(jitter)
    }

    fn failed(&mut self, url: &str, role: &str, error: &dyn std::fmt::Display) {
        crate::metrics::redis_link(role, false, false);
        if self.down_since.is_none() {
            self.down_since = Some(std::time::Instant::now());
            tracing::warn!(
                "redis {url}: cannot connect ({role}): {error}; serving local subscribers only, retrying in the background"
            );
        } else {
            tracing::debug!("redis {url}: still cannot connect ({role}): {error}");
        }
    }

    fn lost(&mut self, url: &str, role: &str, error: &dyn std::fmt::Display) {
        crate::metrics::redis_link(role, false, false);
        self.down_since = Some(std::time::Instant::now());
        tracing::warn!(
            "redis {url}: lost the {role} connection: {error}; serving local subscribers only, reconnecting"
        );
    }

    /// Returns whether this is a reconnection (it was connected before).
    fn connected(&mut self, url: &str, role: &str) -> bool {
        let again = self.ever_connected;
        crate::metrics::redis_link(role, true, again);
        match self.down_since.take() {
            Some(since) if again => {
                tracing::info!("redis {url}: reconnected ({role}) after {:.1}s", since.elapsed().as_secs_f64())
            }
            _ => tracing::info!("redis {url}: connected ({role})"),
        }
        self.ever_connected = true;
        self.next = None;
        again
    }
}

/// Sleeps for `d`; returns `true` if the backplane was shut down meanwhile.
async fn wait_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// A Redis URL fit for a log line: `url` without the password of its user info
/// (`redis://user:secret@host` -> `redis://user:***@host`).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_namespace_is_a_channel_prefix() {
        let b = Backplane::new("relay", RedisOptions::new("redis://127.0.0.1:1".into())).unwrap();
        assert_eq!(b.names.channel("x"), "duplex:relay:{t:x}");
        assert!(Backplane::new("x", RedisOptions::new("not a url".into())).is_err());
    }

    #[test]
    fn building_needs_a_runtime() {
        let e = Backplane::new("x", RedisOptions::new("redis://127.0.0.1:1".into())).err().expect("an error");
        assert!(e.to_string().contains("tokio runtime"), "{e}");
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact_url("redis://:secret@host:6379/0"), "redis://:***@host:6379/0");
        assert_eq!(redact_url("redis://user:secret@host"), "redis://user:***@host");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..8).map(|_| b.delay()).collect();
        assert!(delays[0] >= BACKOFF_MIN && delays[0] <= BACKOFF_MIN * 6 / 5);
        assert!(delays[1] >= BACKOFF_MIN * 2);
        assert!(delays.iter().all(|d| *d <= BACKOFF_MAX * 6 / 5));
        assert!(!b.connected("redis://x", "test"), "the first connection");
        assert!(b.delay() <= BACKOFF_MIN * 6 / 5);
        assert!(b.connected("redis://x", "test"), "a reconnection");
    }

    #[tokio::test]
    async fn history_fails_fast_while_redis_is_away() {
        let b = Backplane::new("x", RedisOptions::new("redis://127.0.0.1:1".into())).unwrap();
        let lifetimes = Lifetimes {
            policy: crate::HistoryPolicy::new(10, Duration::from_secs(10)),
            meta_ttl: Duration::from_secs(10),
            id_window: Duration::from_secs(10),
        };
        let appended = b.append("t", lifetimes, Publication::json("1".into()), Some("id")).await;
        assert!(matches!(appended, Err(StoreError::Unavailable(_))), "{appended:?}");
        let read = b.read("t", lifetimes, Read::position()).await;
        assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    }
}
