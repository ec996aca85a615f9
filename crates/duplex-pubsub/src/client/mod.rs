//! A client of the `/pubsub` JSON protocol that comes back: it connects to one of several nodes,
//! keeps each topic's [`Position`], and after a drop resumes every topic on the next node from
//! where it was, so that what it hands out is contiguous and free of duplicates; publishes carry
//! ids and are sent again until acknowledged.
//!
//! It is built on [`duplex::ReconnectingSocket`] (the same backoff, classifier and keepalive
//! options as any duplex client) and is, like it, a stream of events polled with
//! [`PubSubClient::next`]: nothing happens between calls, so poll it all the time (in a
//! `select!` with the application's other work: `next` is cancel-safe).
//!
//! ```no_run
//! use duplex_pubsub::client::{ClientEvent, PubSubClient, Resumed};
//!
//! # async fn f() {
//! let mut client = PubSubClient::builder(["ws://127.0.0.1:8081/pubsub", "ws://127.0.0.1:8082/pubsub"]).build();
//! client.subscribe("feed");
//! let id = client.publish("feed", &serde_json::json!({"text": "hi"})).unwrap();
//! while let Some(event) = client.next().await {
//!     match event {
//!         ClientEvent::Message(m) => println!("{} {} at {:?}", m.topic, m.data, m.position),
//!         ClientEvent::Acked(a) if a.id == id => println!("stored at {:?}", a.position),
//!         ClientEvent::Subscribed(s) => match s.resumed {
//!             Resumed::NotRecovered { reason } => eprintln!("{}: missed messages ({reason}): reload", s.topic),
//!             Resumed::Reset { reason } => eprintln!("{}: reset ({reason}): reload", s.topic),
//!             _ => {}
//!         },
//!         ClientEvent::Disconnected(d) => eprintln!("{}; again in {:?}", d.cause, d.retry_in),
//!         _ => {}
//!     }
//! }
//! # }
//! ```
//!
//! What it guarantees, on topics with history (`duplex serve --history`): every publication is
//! handed out once, in offset order, across any number of reconnects to any node, unless the
//! server says it cannot prove it (a [`Resumed::NotRecovered`] reply to a resume, or a
//! [`Resumed::Reset`] on a live subscription), after which delivery goes on live and the
//! application reloads its state. Publications at or below the topic's position are dropped (a
//! second line of defence; the server already sends none). Patterns are live only: after a
//! reconnect they miss what was published meanwhile. A publish is held until its `ack`: sent again
//! after every reconnect and after `backplane unavailable` (the server could not store it), with
//! the same id, so the server stores it once.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use duplex::reconnect::{Backoff, Event, ReconnectingSocket};
use duplex::{Message, Sender};
use serde::Serialize;
use serde_json::Value;
use tokio::time::{Instant, Sleep};

use crate::history::Position;
use crate::topic::Filter;

mod event;

pub use event::{Acked, ClientError, ClientEvent, ClientStats, Connected, Delivery, Disconnected, Resumed, Subscribed};

/// How long a publish or a subscribe refused with `backplane unavailable` waits before it is sent
/// again, by default.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(250);

/// How many publishes may wait for their answers at once, by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Options of a [`PubSubClient`].
#[derive(Debug)]
pub struct Builder {
    urls: Vec<String>,
    client: duplex::Client,
    backoff: Backoff,
    start_at: usize,
    id_prefix: Option<String>,
    retry_delay: Duration,
    max_in_flight: usize,
}

impl Builder {
    /// The `duplex::Client` to connect with (TLS roots, headers, keepalive through its
    /// [`Config`](duplex::Config), proxy).
    pub fn client(mut self, client: duplex::Client) -> Self {
        self.client = client;
        self
    }

    /// The waits between attempts (default: [`Backoff::default`], full jitter from 0.5 s).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Starts with the URL at this index (modulo their number): clients given the same list
    /// spread over the nodes.
    pub fn start_at(mut self, index: usize) -> Self {
        self.start_at = index;
        self
    }

    /// The prefix of generated publish ids (`<prefix>-1`, `<prefix>-2`, …). Default: random.
    /// Ids must be unique among every client publishing to a topic within the server's
    /// publish-id window.
    pub fn id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.id_prefix = Some(prefix.into());
        self
    }

    /// How long a refused publish or subscribe waits before it is sent again (default 250 ms).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// At most this many publishes wait for their answers at once (default 256); later ones
    /// are sent as answers come. The server answers at most 1024 pipelined requests per
    /// connection and refuses more.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// The client. It connects when first polled.
    pub fn build(self) -> PubSubClient {
        let mut urls = self.urls.into_iter();
        let first = urls.next().unwrap_or_default();
        let socket = ReconnectingSocket::new(self.client, first.clone())
            .urls(std::iter::once(first).chain(urls))
            .backoff(self.backoff)
            .start_at(self.start_at);
        let id_prefix = self.id_prefix.unwrap_or_else(|| format!("c{:08x}", random_u32()));
        PubSubClient {
            socket,
            sender: None,
            connection: 0,
            topics: BTreeMap::new(),
            patterns: BTreeSet::new(),
            outstanding: VecDeque::new(),
            pending: BTreeMap::new(),
            pending_ids: HashMap::new(),
            next_number: 0,
            next_order: 0,
            in_flight: 0,
            waiting: 0,
            max_in_flight: self.max_in_flight.max(1),
            id_prefix,
            retry_delay: self.retry_delay,
            retry: None,
            stats: ClientStats::default(),
            events: VecDeque::new(),
            closed: false,
        }
    }
}

/// A random number without a dependency: the standard library's per-process hasher keys.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish() as u32
}

/// One exact topic followed.
#[derive(Debug, Default)]
struct TopicState {
    /// The position of the last publication handed out (or given by the server).
    position: Option<Position>,
    /// Whether the subscribe for the current connection still waits to be sent (after a
    /// refusal).
    resend: bool,
}

/// A publish waiting for its acknowledgement.
#[derive(Debug)]
struct Pending {
    /// The request, as sent.
    text: String,
    /// Whether it is on the current connection waiting for its answer (false: waits to be sent).
    in_flight: bool,
    /// Whether it was ever sent (a later send is a resend).
    sent_before: bool,
}

/// A client of the `/pubsub` protocol over several nodes: see the [module docs](self).
pub struct PubSubClient {
    socket: ReconnectingSocket,
    sender: Option<Sender>,
    connection: u64,
    topics: BTreeMap<String, TopicState>,
    patterns: BTreeSet<String>,
    /// Subscribes sent on this connection, waiting for their replies (in order).
    outstanding: VecDeque<String>,
    /// Publishes waiting for their acks, in the order they were made.
    pending: BTreeMap<u64, Pending>,
    pending_ids: HashMap<String, u64>,
    next_number: u64,
    /// The key of the next publish in `pending`.
    next_order: u64,
    /// Publishes sent on this connection and not yet answered.
    in_flight: usize,
    /// Publishes waiting to be sent.
    waiting: usize,
    max_in_flight: usize,
    id_prefix: String,
    retry_delay: Duration,
    retry: Option<Pin<Box<Sleep>>>,
    stats: ClientStats,
    events: VecDeque<ClientEvent>,
    closed: bool,
}

impl fmt::Debug for PubSubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PubSubClient")
            .field("socket", &self.socket)
            .field("topics", &self.topics)
            .field("patterns", &self.patterns)
            .field("pending", &self.pending.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl PubSubClient {
    /// A client of these `/pubsub` URLs (the nodes of one service; `ws://…/pubsub`), with default
    /// options: see [`builder`](Self::builder).
    pub fn new<I, U>(urls: I) -> PubSubClient
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        Self::builder(urls).build()
    }

    /// Options: the connecting client, backoff, first URL, id prefix, retry delay.
    pub fn builder<I, U>(urls: I) -> Builder
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        Builder {
            urls: urls.into_iter().map(Into::into).collect(),
            client: duplex::Client::new(),
            backoff: Backoff::default(),
            start_at: 0,
            id_prefix: None,
            retry_delay: DEFAULT_RETRY_DELAY,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }

    /// Follows a topic from now (or, if it was followed before, from its position), or a
    /// pattern (live only). Returns false if already followed.
    pub fn subscribe(&mut self, filter: &str) -> bool {
        if filter.ends_with('*') {
            if !self.patterns.insert(filter.to_owned()) {
                return false;
            }
            self.send_subscribe(filter, None);
            return true;
        }
        if self.topics.contains_key(filter) {
            return false;
        }
        self.topics.insert(filter.to_owned(), TopicState::default());
        self.send_subscribe(filter, None);
        true
    }

    /// Follows a topic from a position (one saved from an earlier run): what was published after
    /// it comes first, or a [`Resumed::NotRecovered`] says it cannot.
    pub fn subscribe_since(&mut self, topic: &str, since: Position) -> bool {
        if self.topics.contains_key(topic) {
            return false;
        }
        self.topics.insert(topic.to_owned(), TopicState { position: Some(since.clone()), resend: false });
        self.send_subscribe(topic, Some(&since));
        true
    }

    /// Stops following a topic or pattern.
    pub fn unsubscribe(&mut self, filter: &str) -> bool {
        let was = self.topics.remove(filter).is_some() | self.patterns.remove(filter);
        if was {
            self.send(serde_json::json!({"op":"unsubscribe","topic":filter}).to_string());
        }
        was
    }

    /// The position of a followed topic: the last publication handed out (or the server's top).
    pub fn position(&self, topic: &str) -> Option<&Position> {
        self.topics.get(topic).and_then(|t| t.position.as_ref())
    }

    /// Publishes `data` with a generated id, returned; held and sent again until acknowledged
    /// ([`ClientEvent::Acked`]).
    pub fn publish<T: Serialize + ?Sized>(&mut self, topic: &str, data: &T) -> Result<String, ClientError> {
        self.next_number += 1;
        let id = format!("{}-{}", self.id_prefix, self.next_number);
        self.publish_with_id(topic, data, id.clone())?;
        Ok(id)
    }

    /// Publishes with the application's own id (1 to 128 bytes, unique within the server's
    /// publish-id window), held and sent again until acknowledged.
    pub fn publish_with_id<T: Serialize + ?Sized>(
        &mut self,
        topic: &str,
        data: &T,
        id: String,
    ) -> Result<(), ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        match Filter::parse(topic) {
            Ok(f) if !f.is_pattern() => {}
            Ok(_) => return Err(ClientError::InvalidTopic(format!("{topic:?} is a pattern"))),
            Err(e) => return Err(ClientError::InvalidTopic(e.to_string())),
        }
        #[derive(Serialize)]
        struct Publish<'a, T: ?Sized> {
            op: &'static str,
            topic: &'a str,
            data: &'a T,
            id: &'a str,
        }
        let text = serde_json::to_string(&Publish { op: "publish", topic, data, id: &id })
            .map_err(|e| ClientError::Json(e.to_string()))?;
        self.next_order += 1;
        let number = self.next_order;
        self.pending_ids.insert(id, number);
        self.pending.insert(number, Pending { text, in_flight: false, sent_before: false });
        self.waiting += 1;
        self.fill();
        Ok(())
    }

    /// Publishes not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.pending.len()
    }

    /// Counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        self.socket.is_connected()
    }

    /// The URL of the current connection (or of the next attempt).
    pub fn url(&self) -> &str {
        self.socket.url()
    }

    /// Closes the connection and stops; poll until [`ClientEvent::Stopped`] to finish.
    pub async fn close(&mut self) {
        self.closed = true;
        let _ = self.socket.close(None).await;
    }

    /// The next event; `None` after [`ClientEvent::Stopped`]. Cancel-safe.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// Polls for the next event: see [`next`](Self::next).
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Poll::Ready(Some(e));
            }
            if let Some(timer) = &mut self.retry {
                if timer.as_mut().poll(cx).is_ready() {
                    self.retry = None;
                    self.resend_refused();
                    continue;
                }
            }
            match self.socket.poll_event(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(event)) => self.on_socket_event(event),
            }
        }
    }

    fn on_socket_event(&mut self, event: Event) {
        match event {
            Event::Connected(c) => {
                self.connection = c.connection;
                self.stats.connections += 1;
                self.sender = self.socket.sender();
                self.outstanding.clear();
                self.events.push_back(ClientEvent::Connected(Connected { url: c.url, connection: c.connection }));
                // Every topic from its position, every pattern, then every publish not acknowledged.
                let topics: Vec<(String, Option<Position>)> =
                    self.topics.iter().map(|(t, s)| (t.clone(), s.position.clone())).collect();
                for (topic, since) in topics {
                    self.send_subscribe(&topic, since.as_ref());
                }
                for p in self.patterns.clone() {
                    self.send_subscribe(&p, None);
                }
                for p in self.pending.values_mut() {
                    p.in_flight = false;
                }
                self.waiting = self.pending.len();
                self.in_flight = 0;
                self.fill();
            }
            Event::Message(Message::Text(text)) => self.on_text(&text),
            Event::Message(_) => self.events.push_back(ClientEvent::ServerError("a binary message".into())),
            Event::Disconnected(d) => {
                let was_connected = self.sender.take().is_some();
                self.outstanding.clear();
                self.in_flight = 0;
                self.events.push_back(ClientEvent::Disconnected(Disconnected {
                    cause: d.cause.to_string(),
                    retry_in: d.retry_in,
                    next_url: self.socket.url().into(),
                    was_connected,
                }));
            }
            Event::Stopped(s) => {
                self.sender = None;
                self.events.push_back(ClientEvent::Stopped(s.to_string()));
            }
            _ => {}
        }
    }

    /// Sends on the current connection; false when none is open (it is sent at the next one).
    fn send(&mut self, text: String) -> bool {
        match &self.sender {
            Some(s) => s.send(text).is_ok(),
            None => false,
        }
    }

    fn send_subscribe(&mut self, filter: &str, since: Option<&Position>) {
        let mut req = serde_json::json!({"op":"subscribe","topic":filter});
        if let Some(p) = since {
            req["since"] = serde_json::json!({"offset":p.offset,"epoch":&*p.epoch});
        }
        if self.send(req.to_string()) {
            self.outstanding.push_back(filter.to_owned());
        }
    }

    fn schedule_retry(&mut self) {
        if self.retry.is_none() {
            self.retry = Some(Box::pin(tokio::time::sleep_until(Instant::now() + self.retry_delay)));
        }
    }

    /// After the retry delay: the refused publishes and subscribes again.
    fn resend_refused(&mut self) {
        if self.sender.is_none() {
            return; // all of it goes at the next connection
        }
        let topics: Vec<(String, Option<Position>)> = self
            .topics
            .iter_mut()
            .filter(|(_, s)| s.resend)
            .map(|(t, s)| {
                s.resend = false;
                (t.clone(), s.position.clone())
            })
            .collect();
        for (t, since) in topics {
            self.send_subscribe(&t, since.as_ref());
        }
        self.fill();
    }

    /// Drops publish `n` (answered, or refused for good) and its place in the in-flight or
    /// waiting count.
    fn forget_publish(&mut self, n: u64) {
        if let Some(p) = self.pending.remove(&n) {
            if p.in_flight {
                self.in_flight = self.in_flight.saturating_sub(1);
            } else {
                self.waiting = self.waiting.saturating_sub(1);
            }
        }
    }

    /// Sends the publishes waiting to be sent, in order, while fewer than the window wait for
    /// their answers (the server answers at most 1024 pipelined requests; more are refused).
    /// Nothing while a refused publish waits for the retry delay: it goes first.
    fn fill(&mut self) {
        if self.waiting == 0 || self.sender.is_none() || self.retry.is_some() {
            return;
        }
        let room = self.max_in_flight.saturating_sub(self.in_flight);
        if room == 0 {
            return;
        }
        let Some(sender) = self.sender.clone() else { return };
        let mut sent = 0;
        for p in self.pending.values_mut().filter(|p| !p.in_flight).take(room) {
            if sender.send(p.text.clone()).is_err() {
                break; // the connection ended: everything goes again at the next one
            }
            if p.sent_before {
                self.stats.publishes_resent += 1;
            }
            p.in_flight = true;
            p.sent_before = true;
            sent += 1;
        }
        self.in_flight += sent;
        self.waiting -= sent;
    }

    fn on_text(&mut self, text: &str) {
        let Ok(Value::Object(mut v)) = serde_json::from_str::<Value>(text) else {
            self.events.push_back(ClientEvent::ServerError(format!("not a JSON object: {text}")));
            return;
        };
        let position = position_of(&v);
        if let Some(Value::String(topic)) = v.get("subscribed") {
            let topic = topic.clone();
            if let Some(i) = self.outstanding.iter().position(|t| *t == topic) {
                self.outstanding.remove(i);
            }
            let resumed = match v.get("recovered") {
                Some(Value::Bool(true)) => {
                    self.stats.recovered += 1;
                    Resumed::Recovered { replayed: v.get("replayed").and_then(Value::as_u64).unwrap_or(0) as usize }
                }
                Some(Value::Bool(false)) => {
                    self.stats.not_recovered += 1;
                    Resumed::NotRecovered { reason: v.get("reason").and_then(Value::as_str).unwrap_or("").to_owned() }
                }
                _ => Resumed::Live,
            };
            if let Some(state) = self.topics.get_mut(&topic) {
                if position.is_some() {
                    state.position = position.clone();
                }
            }
            self.events.push_back(ClientEvent::Subscribed(Subscribed { topic, position, resumed }));
            return;
        }
        if let Some(Value::String(topic)) = v.get("topic") {
            match v.get("op").and_then(Value::as_str) {
                None => {
                    let topic = topic.clone();
                    if let (Some(state), Some(p)) = (self.topics.get_mut(&topic), &position) {
                        if let Some(have) = &state.position {
                            if have.epoch == p.epoch && p.offset <= have.offset {
                                self.stats.duplicates_dropped += 1;
                                return;
                            }
                        }
                        state.position = Some(p.clone());
                    }
                    self.stats.delivered += 1;
                    let data = v.remove("data").unwrap_or(Value::Null);
                    self.events.push_back(ClientEvent::Message(Delivery { topic, data, position }));
                    return;
                }
                Some("reset") => {
                    let topic = topic.clone();
                    self.stats.not_recovered += 1;
                    if let (Some(state), Some(p)) = (self.topics.get_mut(&topic), &position) {
                        state.position = Some(p.clone());
                    }
                    let reason = v.get("reason").and_then(Value::as_str).unwrap_or("").to_owned();
                    self.events.push_back(ClientEvent::Subscribed(Subscribed {
                        topic,
                        position,
                        resumed: Resumed::Reset { reason },
                    }));
                    return;
                }
                _ => {}
            }
        }
        if v.get("op").and_then(Value::as_str) == Some("ack") {
            let id = v.get("id").map(id_text).unwrap_or_default();
            if let Some(n) = self.pending_ids.remove(&id) {
                self.forget_publish(n);
                self.fill();
            }
            self.stats.acked += 1;
            let duplicate = v.get("duplicate").and_then(Value::as_bool).unwrap_or(false);
            self.events.push_back(ClientEvent::Acked(Acked { id, position, duplicate }));
            return;
        }
        if let Some(error) = v.get("error").and_then(Value::as_str) {
            let error = error.to_owned();
            let retry = error.starts_with("backplane unavailable");
            match v.get("id").map(id_text) {
                Some(id) => {
                    let Some(&n) = self.pending_ids.get(&id) else { return };
                    if retry {
                        if let Some(p) = self.pending.get_mut(&n) {
                            if p.in_flight {
                                p.in_flight = false;
                                self.in_flight = self.in_flight.saturating_sub(1);
                                self.waiting += 1;
                            }
                        }
                        self.schedule_retry();
                        self.events.push_back(ClientEvent::Refused { what: id, error });
                    } else {
                        self.pending_ids.remove(&id);
                        self.forget_publish(n);
                        self.fill();
                        self.events.push_back(ClientEvent::PublishFailed { id, error });
                    }
                }
                None if retry && !self.outstanding.is_empty() => {
                    // Replies come in request order, and only subscribes are answered without
                    // an id: this one's subscribe was refused.
                    let topic = self.outstanding.pop_front().unwrap_or_default();
                    if let Some(state) = self.topics.get_mut(&topic) {
                        state.resend = true;
                    }
                    self.schedule_retry();
                    self.events.push_back(ClientEvent::Refused { what: topic, error });
                }
                None => self.events.push_back(ClientEvent::ServerError(error)),
            }
            return;
        }
        // `{"unsubscribed":…}`, history pages: nothing to do.
        if v.get("unsubscribed").is_none() {
            self.events.push_back(ClientEvent::ServerError(format!("unexpected: {text}")));
        }
    }
}

fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn position_of(v: &serde_json::Map<String, Value>) -> Option<Position> {
    let offset = v.get("offset")?.as_u64()?;
    let epoch = v.get("epoch")?.as_str()?;
    Some(Position::new(offset, epoch))
}
