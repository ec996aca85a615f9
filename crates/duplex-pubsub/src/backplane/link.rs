//! The link: the node's connection in subscribe mode. It follows the channels and patterns its
//! local subscribers need, hands what arrives to the [`Node`], and is replaced when it breaks or
//! stops answering.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::time::{timeout, Instant};

use super::history::parse_message;
use super::names::Names;
use super::wire::{self, Origin};
use super::{wait_or_shutdown, Backoff, Backplane, Node, TIMEOUT};
use crate::topic::Filter;

/// How long the link may stay silent before it is probed with a `PING`.
const PROBE_IDLE: Duration = Duration::from_secs(2);
/// How long a probe may take before the link is replaced.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How many `SUBSCRIBE`s are in flight at once when subscribing again after an outage.
const BATCH: usize = 100;
/// How many recent message ids are remembered to deliver each message once.
const RECENT: usize = 64;

/// What the link follows in Redis now, or should.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Subscribed {
    pub(crate) channels: HashSet<String>,
    pub(crate) patterns: HashSet<String>,
}

impl Subscribed {
    fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty()
    }

    /// What the link should follow for these filters.
    pub(crate) fn wanted(names: &Names, filters: &[Filter]) -> Subscribed {
        let mut want = Subscribed::default();
        for filter in filters {
            match filter {
                Filter::Exact(_) => want.channels.insert(names.subscription(filter)),
                Filter::Prefix(_) => want.patterns.insert(names.subscription(filter)),
            };
        }
        want
    }
}

/// Runs `f` for each name, `BATCH` at a time on clones of the sink (one channel per command: a
/// `SUBSCRIBE` of several channels gets one reply per channel, which the client library would
/// match against later requests).
async fn each<'a, F, Fut>(sink: &PubSubSink, names: Vec<String>, f: F) -> redis::RedisResult<Vec<String>>
where
    F: Fn(PubSubSink, String) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<String>> + 'a,
{
    let mut done = Vec::with_capacity(names.len());
    for chunk in names.chunks(BATCH) {
        let results = join_all(chunk.iter().map(|n| f(sink.clone(), n.clone()))).await;
        for r in results {
            done.push(r?);
        }
    }
    Ok(done)
}

impl Backplane {
    pub(super) async fn subscribe_loop(self: Arc<Self>, node: Weak<dyn Node>) {
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
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            let mut heard = Instant::now();
            let error: String = 'link: {
                let Some(n) = node.upgrade() else { return };
                if let Err(e) = self.reconcile(&*n, &mut sink, &mut have).await {
                    break 'link e.to_string();
                }
                let again = backoff.connected(&self.url, "subscribing");
                if !have.is_empty() {
                    tracing::info!(
                        "redis {}: subscribed to {} channels and {} patterns",
                        self.url,
                        have.channels.len(),
                        have.patterns.len()
                    );
                }
                self.subscribing.store(true, Ordering::Release);
                if again {
                    n.reconnected();
                }
                drop(n);
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => {
                                heard = Instant::now();
                                let Some(n) = node.upgrade() else { return };
                                self.receive(&*n, msg.get_channel_name(), msg.get_payload_bytes(), &mut recent);
                            }
                            None => break 'link "the connection closed".to_owned(),
                        },
                        _ = self.changed.notified() => {
                            let Some(n) = node.upgrade() else { return };
                            if let Err(e) = self.reconcile(&*n, &mut sink, &mut have).await {
                                break 'link e.to_string();
                            }
                        }
                        _ = ticks.tick() => {
                            let Some(n) = node.upgrade() else { return };
                            n.tick();
                            drop(n);
                            if heard.elapsed() >= PROBE_IDLE {
                                // A link that stays open but no longer receives answers no ping.
                                match timeout(PROBE_TIMEOUT, sink.ping::<redis::Value>()).await {
                                    Ok(Ok(_)) => heard = Instant::now(),
                                    Ok(Err(e)) => break 'link e.to_string(),
                                    Err(_) => break 'link "no answer to a ping".to_owned(),
                                }
                            }
                        }
                        _ = shutdown.changed() => return,
                    }
                }
            };
            self.subscribing.store(false, Ordering::Release);
            backoff.lost(&self.url, "subscribing", &error);
            if wait_or_shutdown(backoff.delay(), &mut shutdown).await {
                return;
            }
        }
    }

    /// Brings Redis's subscriptions in line with the filters that have local subscribers, then
    /// tells the node.
    async fn reconcile(&self, node: &dyn Node, sink: &mut PubSubSink, have: &mut Subscribed) -> redis::RedisResult<()> {
        let want = Subscribed::wanted(&self.names, &node.filters());
        let add: Vec<String> = want.channels.difference(&have.channels).cloned().collect();
        for c in each(sink, add, |mut s, c| async move { s.subscribe(&c).await.map(|_| c) }).await? {
            have.channels.insert(c);
        }
        let gone: Vec<String> = have.channels.difference(&want.channels).cloned().collect();
        for c in each(sink, gone, |mut s, c| async move { s.unsubscribe(&c).await.map(|_| c) }).await? {
            have.channels.remove(&c);
        }
        let add: Vec<String> = want.patterns.difference(&have.patterns).cloned().collect();
        for p in each(sink, add, |mut s, p| async move { s.psubscribe(&p).await.map(|_| p) }).await? {
            have.patterns.insert(p);
        }
        let gone: Vec<String> = have.patterns.difference(&want.patterns).cloned().collect();
        for p in each(sink, gone, |mut s, p| async move { s.punsubscribe(&p).await.map(|_| p) }).await? {
            have.patterns.remove(&p);
        }
        node.subscribed();
        Ok(())
    }

    /// A message from Redis. On a history topic, to the node's track with its position; otherwise
    /// delivered to local subscribers unless this node published it or already delivered it.
    pub(crate) fn receive(&self, node: &dyn Node, channel: &str, payload: &[u8], recent: &mut VecDeque<Origin>) {
        let Some(topic) = self.names.topic(channel) else { return };
        if let Some((position, publication)) = parse_message(payload) {
            node.publication(topic, position, publication);
            return;
        }
        let Some((origin, message)) = wire::decode(payload) else {
            tracing::debug!(%channel, "ignored a message not published by duplex");
            return;
        };
        if origin.node == self.node || recent.contains(&origin) {
            return;
        }
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(origin);
        node.deliver(topic, &message);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use duplex::Message;

    use super::super::RedisOptions;
    use super::*;
    use crate::history::{Position, Publication};

    /// A node that records what the backplane hands it.
    #[derive(Default)]
    struct Recorder {
        filters: Vec<Filter>,
        got: Mutex<Vec<String>>,
    }

    impl Node for Recorder {
        fn filters(&self) -> Vec<Filter> {
            self.filters.clone()
        }
        fn deliver(&self, topic: &str, message: &Message) {
            self.got.lock().unwrap().push(format!("{topic} {message:?}"));
        }
        fn publication(&self, topic: &str, position: Position, publication: Publication) {
            self.got.lock().unwrap().push(format!("{topic} {position} {publication:?}"));
        }
        fn subscribed(&self) {}
        fn reconnected(&self) {}
        fn tick(&self) {}
    }

    #[tokio::test]
    async fn what_the_link_receives_goes_to_the_node_once() {
        let b = Backplane::new("pubsub", RedisOptions::new("redis://127.0.0.1:1".into())).unwrap();
        let node = Recorder::default();
        let mut recent = VecDeque::new();
        let other = Origin { node: b.node.wrapping_add(1), seq: 7 };
        let text = wire::encode(other, &Message::Text("hi".into()));
        b.receive(&node, "duplex:pubsub:{t:chat.lobby}", &text, &mut recent);
        // The same message again through a pattern subscription: delivered once.
        b.receive(&node, "duplex:pubsub:{t:chat.lobby}", &text, &mut recent);
        // This node's own message: it delivered it when it was published.
        let own = wire::encode(Origin { node: b.node, seq: 1 }, &Message::Text("mine".into()));
        b.receive(&node, "duplex:pubsub:{t:chat.lobby}", &own, &mut recent);
        // A history topic: to the node with its position, every copy (the track sorts them out).
        b.receive(&node, "duplex:pubsub:{t:feed}", b"42:k3J9:d:{\"seq\":1}", &mut recent);
        // Not ours: another namespace, another format.
        b.receive(&node, "duplex:relay:{t:chat.lobby}", &text, &mut recent);
        b.receive(&node, "duplex:pubsub:{t:x}", b"hello from redis-cli", &mut recent);
        assert_eq!(*node.got.lock().unwrap(), ["chat.lobby Text(\"hi\")", "feed 42:k3J9 Json(\"{\\\"seq\\\":1}\")"]);
    }

    #[test]
    fn the_link_follows_the_filters_of_the_node() {
        let names = Names::new("pubsub");
        let filters: Vec<Filter> = ["feed", "chat.*", "*"].iter().map(|f| Filter::parse(f).unwrap()).collect();
        let want = Subscribed::wanted(&names, &filters);
        assert_eq!(want.channels, HashSet::from(["duplex:pubsub:{t:feed}".to_owned()]));
        assert_eq!(
            want.patterns,
            HashSet::from(["duplex:pubsub:{t:chat.*".to_owned(), "duplex:pubsub:{t:*".to_owned()])
        );
    }
}
