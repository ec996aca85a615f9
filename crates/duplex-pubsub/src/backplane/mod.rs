//! The Redis backplane (feature `redis`): several nodes serve one set of topics.
//!
//! - **Channels.** Topic `t` of namespace `ns` is the Redis channel `duplex:ns:t`; the pattern
//!   `chat.*` is `PSUBSCRIBE duplex:ns:chat.*` (glob characters in the prefix escaped), which
//!   matches exactly the topics the pattern matches locally. `/pubsub` topics and relay rooms
//!   live in different namespaces, so they never meet.
//! - **Subscribing.** One connection per node (per namespace) in subscribe mode follows the
//!   channels and patterns that have at least one local subscriber: the first local subscriber of
//!   a filter makes the node subscribe, the last one leaving makes it unsubscribe. A task
//!   reconciles what Redis has with what the subscription table wants, so changes made while
//!   Redis is away are caught up on reconnection.
//! - **Publishing.** A publish is delivered to local subscribers at once, and queued for one
//!   task that sends the queue to Redis as a pipeline of `PUBLISH`es on a second connection: one
//!   round trip per batch, and the order of one node's messages is kept (a node publishes on one
//!   connection, and Redis delivers each connection's messages in order).
//! - **Exactly once.** Each message carries its node's id and a sequence number
//!   ([`wire`]). A node skips its own messages (it delivered them when they were published), and
//!   delivers a message that arrives through several of its subscriptions (`chat.lobby` and
//!   `chat.*`) once: Redis sends those copies one after the other, so a short memory of recent
//!   ids is enough.
//! - **Outages.** When Redis goes away the node logs it once, goes on delivering to its own
//!   subscribers, and reconnects with exponential backoff (100 ms doubling to 2 s, with jitter),
//!   then subscribes again to everything its subscribers follow. Messages published while the
//!   node has no Redis connection reach local subscribers only: Redis pub/sub is at most once
//!   and keeps no history, and a backlog replayed minutes later would surprise more than a gap.
//!   A half-open connection (Redis unreachable without a TCP reset) is found by a ping every
//!   15 s.

pub(crate) mod wire;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use duplex::Message;
use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::{watch, Notify};
use tokio::time::{sleep, timeout, Instant};

use crate::error::Error;
use crate::pubsub::Inner;
use crate::topic::{glob_escape, Filter};
use wire::Origin;

/// How long to wait for a connection (or an answer) before calling Redis unreachable.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle subscribing connection is checked.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// The first and the longest wait between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Bytes waiting to be sent to Redis beyond which new messages for other nodes are dropped: Redis
/// is slower than the node publishes, and memory must stay bounded.
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// How many recent message ids are remembered to deliver each message once.
const RECENT: usize = 64;

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

/// A namespace's link to Redis. Owned by the [`Inner`] of a `PubSub`; its two tasks hold a weak
/// reference to the `Inner` and end when it is dropped.
pub(crate) struct Backplane {
    node: u64,
    /// `duplex:<namespace>:`.
    prefix: String,
    /// The URL without its password, for logs.
    url: String,
    client: redis::Client,
    queue: Mutex<Queue>,
    queued: Notify,
    changed: Notify,
    shutdown: watch::Sender<bool>,
    publishing: AtomicBool,
    subscribing: AtomicBool,
    seq: AtomicU64,
    /// Messages that could not be sent to other nodes (Redis away, queue full).
    lost: AtomicU64,
}

#[derive(Default)]
struct Queue {
    messages: VecDeque<(String, Vec<u8>)>,
    bytes: usize,
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
            prefix: format!("duplex:{namespace}:"),
            url,
            client,
            queue: Mutex::new(Queue::default()),
            queued: Notify::new(),
            changed: Notify::new(),
            shutdown: watch::channel(false).0,
            publishing: AtomicBool::new(false),
            subscribing: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }))
    }

    /// Starts the publishing and the subscribing task.
    pub(crate) fn start(self: &Arc<Self>, inner: Weak<Inner>) {
        tokio::spawn(self.clone().publish_loop());
        tokio::spawn(self.clone().subscribe_loop(inner));
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a message published on this node to the other nodes (without waiting).
    pub(crate) fn forward(&self, topic: &str, message: Message) {
        if !self.publishing.load(Ordering::Acquire) {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let origin = Origin { node: self.node, seq: self.seq.fetch_add(1, Ordering::Relaxed) };
        let payload = wire::encode(origin, &message);
        let mut queue = self.lock();
        if queue.bytes + payload.len() > MAX_QUEUED_BYTES {
            drop(queue);
            if self.lost.fetch_add(1, Ordering::Relaxed) % 10_000 == 0 {
                tracing::warn!("redis {}: publishing falls behind; dropping messages for other nodes", self.url);
            }
            return;
        }
        queue.bytes += payload.len();
        queue.messages.push_back((channel(&self.prefix, topic), payload));
        drop(queue);
        self.queued.notify_one();
    }

    fn take_queue(&self) -> VecDeque<(String, Vec<u8>)> {
        let mut queue = self.lock();
        queue.bytes = 0;
        std::mem::take(&mut queue.messages)
    }

    async fn publish_loop(self: Arc<Self>) {
        let mut shutdown = self.shutdown.subscribe();
        let mut backoff = Backoff::default();
        let config = redis::AsyncConnectionConfig::new().set_connection_timeout(TIMEOUT).set_response_timeout(TIMEOUT);
        loop {
            let connecting = self.client.get_multiplexed_async_connection_with_config(&config);
            let mut conn = tokio::select! {
                r = connecting => match r {
                    Ok(c) => c,
                    Err(e) => {
                        backoff.failed(&self.url, "publishing", &e);
                        if wait_or_shutdown(backoff.delay(), &mut shutdown).await { return }
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            backoff.connected(&self.url, "publishing");
            // Whatever was queued before an outage was for a connection that is gone.
            self.take_queue();
            self.publishing.store(true, Ordering::Release);
            let error = loop {
                let batch = self.take_queue();
                if batch.is_empty() {
                    tokio::select! {
                        _ = self.queued.notified() => continue,
                        _ = shutdown.changed() => return,
                    }
                }
                let mut pipe = redis::pipe();
                for (channel, payload) in &batch {
                    pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
                }
                if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                    self.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    break e;
                }
            };
            self.publishing.store(false, Ordering::Release);
            backoff.lost(&self.url, "publishing", &error);
            if wait_or_shutdown(backoff.delay(), &mut shutdown).await {
                return;
            }
        }
    }

    async fn subscribe_loop(self: Arc<Self>, inner: Weak<Inner>) {
        let mut shutdown = self.shutdown.subscribe();
        let mut backoff = Backoff::default();
        loop {
            let connecting = timeout(TIMEOUT, self.client.get_async_pubsub());
            let pubsub = tokio::select! {
                r = connecting => match r {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => {
                        backoff.failed(&self.url, "subscribing", &e);
                        if wait_or_shutdown(backoff.delay(), &mut shutdown).await { return }
                        continue;
                    }
                    Err(_) => {
                        backoff.failed(&self.url, "subscribing", &"timed out");
                        if wait_or_shutdown(backoff.delay(), &mut shutdown).await { return }
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let (mut sink, mut stream) = pubsub.split();
            let mut have = Subscribed::default();
            let mut recent = VecDeque::with_capacity(RECENT);
            let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
            let mut first = true;
            let error: String = loop {
                if first {
                    first = false;
                    let Some(inner) = inner.upgrade() else { return };
                    match self.reconcile(&inner, &mut sink, &mut have).await {
                        Ok(()) => {
                            backoff.connected(&self.url, "subscribing");
                            if !have.is_empty() {
                                tracing::info!(
                                    "redis {}: subscribed to {} channels and {} patterns",
                                    self.url,
                                    have.channels.len(),
                                    have.patterns.len()
                                );
                            }
                            self.subscribing.store(true, Ordering::Release);
                        }
                        Err(e) => break e.to_string(),
                    }
                }
                tokio::select! {
                    msg = stream.next() => match msg {
                        Some(msg) => {
                            let Some(inner) = inner.upgrade() else { return };
                            self.receive(&inner, &msg, &mut recent);
                        }
                        None => break "the connection closed".to_owned(),
                    },
                    _ = self.changed.notified() => {
                        let Some(inner) = inner.upgrade() else { return };
                        if let Err(e) = self.reconcile(&inner, &mut sink, &mut have).await {
                            break e.to_string();
                        }
                    }
                    _ = ping.tick() => match timeout(TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => break e.to_string(),
                        Err(_) => break "no answer to a ping".to_owned(),
                    },
                    _ = shutdown.changed() => return,
                }
            };
            self.subscribing.store(false, Ordering::Release);
            backoff.lost(&self.url, "subscribing", &error);
            if wait_or_shutdown(backoff.delay(), &mut shutdown).await {
                return;
            }
        }
    }

    /// Brings Redis's subscriptions in line with the filters that have local subscribers.
    async fn reconcile(&self, inner: &Inner, sink: &mut PubSubSink, have: &mut Subscribed) -> redis::RedisResult<()> {
        let mut channels = HashSet::new();
        let mut patterns = HashSet::new();
        for (filter, _) in inner.read().filters() {
            match &filter {
                Filter::Exact(_) => channels.insert(redis_name(&self.prefix, &filter)),
                Filter::Prefix(_) => patterns.insert(redis_name(&self.prefix, &filter)),
            };
        }
        // One channel per command: a SUBSCRIBE of several channels gets one reply per channel,
        // which the client library would match against later requests.
        for c in channels.difference(&have.channels).cloned().collect::<Vec<_>>() {
            sink.subscribe(&c).await?;
            have.channels.insert(c);
        }
        for c in have.channels.difference(&channels).cloned().collect::<Vec<_>>() {
            sink.unsubscribe(&c).await?;
            have.channels.remove(&c);
        }
        for p in patterns.difference(&have.patterns).cloned().collect::<Vec<_>>() {
            sink.psubscribe(&p).await?;
            have.patterns.insert(p);
        }
        for p in have.patterns.difference(&patterns).cloned().collect::<Vec<_>>() {
            sink.punsubscribe(&p).await?;
            have.patterns.remove(&p);
        }
        Ok(())
    }

    /// A message from Redis: deliver it to local subscribers, unless this node published it or
    /// already delivered it.
    fn receive(&self, inner: &Inner, msg: &redis::Msg, recent: &mut VecDeque<Origin>) {
        let Some(topic) = msg.get_channel_name().strip_prefix(self.prefix.as_str()) else { return };
        let Some((origin, message)) = wire::decode(msg.get_payload_bytes()) else {
            tracing::debug!(channel = msg.get_channel_name(), "ignored a message not published by duplex");
            return;
        };
        if origin.node == self.node || recent.contains(&origin) {
            return;
        }
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(origin);
        inner.deliver_remote(topic, &message);
    }
}

/// The Redis channel of `topic` under `prefix` (`duplex:<namespace>:`).
fn channel(prefix: &str, topic: &str) -> String {
    format!("{prefix}{topic}")
}

/// What to `SUBSCRIBE` (a channel) or `PSUBSCRIBE` (a glob pattern) for `filter`.
fn redis_name(prefix: &str, filter: &Filter) -> String {
    match filter {
        Filter::Exact(t) => channel(prefix, t),
        Filter::Prefix(p) => format!("{}*", glob_escape(&channel(prefix, p))),
    }
}

/// What the subscribing connection follows in Redis now.
#[derive(Default)]
struct Subscribed {
    channels: HashSet<String>,
    patterns: HashSet<String>,
}

impl Subscribed {
    fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty()
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
        self.down_since = Some(std::time::Instant::now());
        tracing::warn!(
            "redis {url}: lost the {role} connection: {error}; serving local subscribers only, reconnecting"
        );
    }

    fn connected(&mut self, url: &str, role: &str) {
        match self.down_since.take() {
            Some(since) if self.ever_connected => {
                tracing::info!("redis {url}: reconnected ({role}) after {:.1}s", since.elapsed().as_secs_f64())
            }
            _ => tracing::info!("redis {url}: connected ({role})"),
        }
        self.ever_connected = true;
        self.next = None;
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

    #[test]
    fn channels_and_patterns_per_namespace() {
        let f = |s: &str| Filter::parse(s).unwrap();
        assert_eq!(redis_name("duplex:pubsub:", &f("chat.lobby")), "duplex:pubsub:chat.lobby");
        assert_eq!(redis_name("duplex:relay:", &f("/lobby")), "duplex:relay:/lobby");
        assert_eq!(redis_name("duplex:pubsub:", &f("chat.*")), "duplex:pubsub:chat.*");
        assert_eq!(redis_name("duplex:pubsub:", &f("*")), "duplex:pubsub:*");
        // Glob characters in a topic match literally.
        assert_eq!(redis_name("duplex:pubsub:", &f("a?[b].*")), "duplex:pubsub:a\\?\\[b\\].*");
    }

    #[tokio::test]
    async fn a_namespace_is_a_channel_prefix() {
        let b = Backplane::new("relay", RedisOptions::new("redis://127.0.0.1:1".into())).unwrap();
        assert_eq!(b.prefix, "duplex:relay:");
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
        b.connected("redis://x", "test");
        assert!(b.delay() <= BACKOFF_MIN * 6 / 5);
    }
}
