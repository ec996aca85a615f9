//! # duplex-apps: the four classic pub/sub use cases, as live demos
//!
//! Each module is one demo: its page (plain HTML and JavaScript from `web/`, embedded here), the
//! state it shares between connections, any background task it needs, and `handle`, which serves
//! one WebSocket connection until it closes; each state is an [`router::App`]. `duplex serve`
//! mounts them by path on a [`router::Router`] ([`demos::Demos::mount`]: `/chat`, `/feed`,
//! `/multiplayer`, `/progress`, each with its socket at `<path>/ws`), and `examples/<demo>.rs`
//! runs each alone ([`standalone::serve`]). Both use this code.
//!
//! | demo | state | fan-out (duplex-pubsub topics) |
//! | --- | --- | --- |
//! | [`chat`] | rooms: members, the last 50 messages (in Redis too with `--redis`) | `chat.room.<room>`: messages, join and leave notices |
//! | [`feed`] | a simulated ticker (+ `/proc/loadavg`), sampled 4 times a second | `feed.ticks` |
//! | [`multiplayer`] | a shared world the server owns and steps 30 times a second | `multiplayer.world`: snapshots |
//! | [`progress`] | one job at a time, from a list fixed at start-up | `progress.jobs`: lines, progress, start and end |
//!
//! Every message to many connections goes through [`duplex_pubsub::PubSub::publish`]: encoded
//! once, shared by every subscriber. What a connection alone must see (a room's history, the
//! ticker's backlog, a job's log so far) is queued on its [`duplex::Sender`] while the demo's
//! lock is held, before it subscribes, so it can neither miss nor see twice a message published
//! meanwhile, and it arrives in order with the published ones (one queue per connection).
//!
//! The feed, the world and the jobs keep their state in memory, per process: they use a `PubSub`
//! of their own without a Redis backplane (a ticker or a world per node would otherwise be heard
//! twice). The chat can span nodes: given a `PubSub` with the Redis backplane and
//! `chat::Chat::with_redis_history` (feature `redis`; what `duplex serve --redis` does), its
//! messages and notices cross nodes and its history is kept in Redis.
//!
//! Features: `redis` (off by default) adds `chat::Chat::with_redis_history`.
//!
//! Protocols: one JSON text message per event, `{"type": …, …}`; see each module and
//! `docs/demos.md`.

pub mod chat;
pub mod demos;
mod event;
pub mod feed;
pub mod multiplayer;
pub mod progress;
pub mod router;
pub mod standalone;

/// The pages' WebSocket that reconnects with backoff and shows its state (`web/reconnect.js`, a
/// JavaScript module). Each page imports it from `reconnect.js` beside itself (`/chat` from
/// `/chat/reconnect.js`, a standalone demo's page at `/` from `/reconnect.js`): serve it there
/// with [`SCRIPT_TYPE`].
pub const RECONNECT_JS: &str = include_str!("../../../web/reconnect.js");

/// The browser client of the `/pubsub` protocol over several nodes (`web/duplex-pubsub.js`, a
/// JavaScript module importing `./reconnect.js`): positions kept per topic, resume after a
/// reconnect, publishes retried until acknowledged. `duplex serve` serves it at
/// `/duplex-pubsub.js`.
pub const DUPLEX_PUBSUB_JS: &str = include_str!("../../../web/duplex-pubsub.js");

/// The `Content-Type` of [`RECONNECT_JS`].
pub const SCRIPT_TYPE: &str = "text/javascript; charset=utf-8";

/// The namespace of the demos' topics ([`duplex_pubsub::Builder::namespace`]).
pub const NAMESPACE: &str = "demos";
