//! Topic history and resume: every publication on a history topic gets a position, and a
//! subscriber that comes back (to this node or any other) gets what it missed — in order, once —
//! or is told plainly that it cannot.
//!
//! - **Position.** A publication on a history topic has an `offset` (1, 2, 3, … per topic) and
//!   belongs to a stream named by its `epoch`, a random string that changes whenever the stream's
//!   state is lost (Redis restarted without its data, the topic idle past the meta TTL). A client
//!   holds its own [`Position`]; the server keeps none per client.
//! - **Opt-in, by pattern.** History is off unless a [`HistoryPolicy`] (how many publications, for
//!   how long) is set for a pattern ([`Builder::history`](crate::Builder::history)); the most
//!   specific pattern wins. Topics without history behave exactly as before.
//! - **Storage.** Without Redis, a ring buffer per topic in this process (the epoch is random per
//!   process). With [`Builder::redis`](crate::Builder::redis), a Redis stream per topic, written by
//!   one Lua script per publish, shared by every node.
//! - **Resume.** [`Subscriber::subscribe_with`](crate::Subscriber::subscribe_with) with
//!   [`SubscribeOptions::since`] replays what the subscriber missed, then goes live: the whole
//!   sequence contiguous, without duplicates. When that cannot be proven (another epoch, the
//!   missing part no longer kept, more missing than `recover_max`), nothing is replayed and the
//!   outcome says why ([`NotRecovered`]).
//! - **Continuity on the node.** Each node delivers a history topic in offset order: a gap (a
//!   message lost between Redis and the node) is filled from the stream before anything newer is
//!   delivered; if the stream no longer holds it, local subscribers get a `reset` — never silence.
//! - **Idempotent publish.** A publish with an id ([`PublishOptions::id`]) is stored once within
//!   the id window; a retry gets the first one's position, marked `duplicate`.
//!
//! Slow subscribers: on a history topic a message is never silently skipped for one subscriber
//! (it could not tell): a subscriber that cannot keep up is closed with 1013 whatever its
//! [`SlowSubscriber`](crate::SlowSubscriber) policy, and resumes from its position when it
//! reconnects.

pub(crate) mod memory;
pub(crate) mod policy;
pub(crate) mod store;
pub(crate) mod track;
pub(crate) mod tracks;

use std::time::Duration;

pub(crate) use crate::position::{check_publish_id, fresh_epoch};
pub use crate::position::{
    HistoryPage, HistoryQuery, Kind, NotRecovered, Position, Publication, PublishOptions, Published, Recovery, ReplyFn,
    SubscribeOptions, SubscribeOutcome, MAX_PUBLISH_ID_LEN,
};
pub use policy::HistoryPolicy;

/// The default for [`Builder::history_meta_ttl`](crate::Builder::history_meta_ttl): 24 hours.
pub const DEFAULT_META_TTL: Duration = Duration::from_secs(24 * 3600);
/// The default for [`Builder::recover_max`](crate::Builder::recover_max).
pub const DEFAULT_RECOVER_MAX: usize = 1000;
/// The default for [`Builder::publish_id_window`](crate::Builder::publish_id_window): 5 minutes.
pub const DEFAULT_PUBLISH_ID_WINDOW: Duration = Duration::from_secs(300);
/// The default for [`Builder::position_check`](crate::Builder::position_check): 10 seconds.
pub const DEFAULT_POSITION_CHECK: Duration = Duration::from_secs(10);
