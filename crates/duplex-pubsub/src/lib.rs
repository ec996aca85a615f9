//! # duplex-pubsub: topics for duplex WebSocket connections
//!
//! Connections subscribe to topics; anything in the application publishes to them; every
//! subscriber gets the message. Like uWebSockets' topics, on [`duplex`]'s server connections.
//!
//! - [`PubSub`]: the topics. A cloneable handle: publish from a connection's task, a timer, an
//!   HTTP handler, anywhere ([`PubSub::publish`], [`PubSub::publish_json`]). In-process by
//!   default; with the `redis` feature, [`Builder::redis`] spreads every topic over all the nodes
//!   sharing a Redis server ([`backplane`](crate#scale-out-redis)).
//! - [`Subscriber`]: one connection's subscriptions, made with [`PubSub::attach`]; dropping it
//!   (when the connection's task ends) unsubscribes it from everything.
//! - [`topic`]: names, and the one wildcard — a trailing `.*` (`chat.*` matches `chat.lobby` and
//!   `chat.lobby.eu`); `*` alone matches every topic.
//! - [`SlowSubscriber`]: what a publish does for a subscriber that is not keeping up — drop the
//!   message for it, or close it with 1013 or 1008. A publish never waits.
//! - [`json`] and [`JsonEndpoint`]: the `/pubsub` JSON protocol (`{"op":"subscribe",…}`) and a
//!   handler that serves it on a connection, as `duplex serve` does.
//! - [`history`]: topic history and resume, per topic pattern ([`Builder::history`]): every
//!   publication gets a [`Position`], and a subscriber that comes back to any node gets what it
//!   missed ([`Subscriber::subscribe_with`]), nothing lost, nothing duplicated — or is told it
//!   cannot ([`NotRecovered`]).
//! - [`client`]: the other end — [`PubSubClient`], a `/pubsub` client over several nodes that
//!   resumes every topic from its position after a reconnect and retries publishes until they are
//!   acknowledged.
//!
//! ## Fan-out
//!
//! A server frame is not masked, so one broadcast frame is the same bytes for every recipient.
//! A publish encodes the frame once ([`duplex::PreparedFrame`]) and hands each
//! subscriber's [`Sender`](duplex::Sender) a clone of the same [`bytes::Bytes`]: a reference
//! count, not a copy. The connection's own task writes it with its other frames in one vectored
//! write. Nothing is allocated per recipient for the message (`tests/fan_out_allocations.rs`
//! counts it). With permessage-deflate, a connection whose server compresses without context
//! takeover (`--deflate-no-context-takeover`) gets the frame compressed once for all of them;
//! one with context takeover gets it uncompressed, which RFC 7692 §6 allows (RSV1 clear): sharing
//! a frame its own compressor did not see is impossible, and compressing per recipient would cost
//! a compressor per connection.
//!
//! ```no_run
//! use duplex_pubsub::PubSub;
//!
//! # async fn f() -> std::io::Result<()> {
//! let pubsub = PubSub::new();
//! // A ticker publishing from its own task.
//! let ticker = pubsub.clone();
//! tokio::spawn(async move {
//!     for n in 0.. {
//!         let _ = ticker.publish_json("ticks.seconds", &n);
//!         tokio::time::sleep(std::time::Duration::from_secs(1)).await;
//!     }
//! });
//! // Every connection follows the ticks and relays what it sends to `chat.lobby`.
//! let server = duplex::Server::bind("127.0.0.1:8080").await?;
//! server
//!     .serve(move |incoming| {
//!         let pubsub = pubsub.clone();
//!         async move {
//!             let Ok(req) = incoming.request().await else { return };
//!             let Ok(mut ws) = req.accept().await else { return };
//!             let me = pubsub.attach(&mut ws);
//!             let _ = me.subscribe("ticks.*");
//!             let _ = me.subscribe("chat.lobby");
//!             while let Some(Ok(msg)) = ws.recv().await {
//!                 let _ = pubsub.publish("chat.lobby", msg);
//!             }
//!         }
//!     })
//!     .await
//! # }
//! ```
//!
//! ## Scale-out (Redis)
//!
//! With the `redis` feature and [`Builder::redis`], each node publishes to Redis and subscribes
//! to the channels (and, for patterns, `PSUBSCRIBE` patterns) of the topics it has local
//! subscribers for. Local subscribers get each message exactly once: a node delivers its own
//! publishes at once and skips their echo from Redis. One publisher's messages keep their order
//! on every node. When Redis goes away, a node keeps serving its own subscribers, logs the
//! outage, reconnects with backoff and subscribes again. Details: `docs/pubsub.md`.

#[cfg(feature = "redis")]
mod backplane;
#[cfg(feature = "client")]
pub mod client;
pub mod endpoint;
pub mod error;
mod fanout;
pub mod history;
pub mod json;
pub mod metrics;
mod position;
pub mod pubsub;
pub mod slow_subscriber;
pub mod stats;
pub mod subscriber;
mod table;
pub mod topic;

#[cfg(feature = "client")]
pub use client::PubSubClient;
pub use endpoint::JsonEndpoint;
pub use error::Error;
pub use history::{
    HistoryPage, HistoryPolicy, HistoryQuery, Kind, NotRecovered, Position, Publication, PublishOptions, Published,
    Recovery, SubscribeOptions, SubscribeOutcome,
};
pub use pubsub::{Builder, Delivery, PubSub, Publishing, Stats, TopicInfo};
pub use slow_subscriber::SlowSubscriber;
pub use subscriber::Subscriber;
pub use topic::Filter;

#[cfg(feature = "redis")]
pub use backplane::redact_url;
