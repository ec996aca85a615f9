//! What a [`PubSubClient`](super::PubSubClient) hands out: its events, its counters, why a publish
//! could not be queued.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::history::Position;

/// Why a publish could not be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The topic is not a valid topic (or is a pattern, which cannot be published to).
    InvalidTopic(String),
    /// The data could not be serialized to JSON.
    Json(String),
    /// The client was closed.
    Closed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidTopic(e) => write!(f, "cannot publish there: {e}"),
            ClientError::Json(e) => write!(f, "the data is not serializable to JSON: {e}"),
            ClientError::Closed => f.write_str("the client is closed: make a new one"),
        }
    }
}

impl std::error::Error for ClientError {}

/// What a [`PubSubClient`](super::PubSubClient) reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A connection opened (its subscriptions and unacknowledged publishes were sent again).
    Connected(Connected),
    /// A publication on a subscribed topic, in order, once.
    Message(Delivery),
    /// A subscription is in place: the answer to a subscribe or a resume, or a `reset` of a
    /// live subscription.
    Subscribed(Subscribed),
    /// A publish was stored (or, `duplicate`, had already been).
    Acked(Acked),
    /// A publish was refused for good (the server said why); it is not sent again.
    PublishFailed {
        /// Its id.
        id: String,
        /// The server's error.
        error: String,
    },
    /// A publish or subscribe was refused for now (`backplane unavailable`) and will be sent
    /// again after the retry delay.
    Refused {
        /// The publish's id, or the topic of a subscribe.
        what: String,
        /// The server's error.
        error: String,
    },
    /// Another error reply from the server (a bad request of the application's).
    ServerError(String),
    /// The connection ended or an attempt failed; the next attempt (to the next URL) follows.
    Disconnected(Disconnected),
    /// No further attempt: why. The stream ends after this.
    Stopped(String),
}

/// A connection opened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Connected {
    /// The URL (node) it connected to.
    pub url: Arc<str>,
    /// Which connection this is, counting from 1.
    pub connection: u64,
}

/// The connection ended or an attempt failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Disconnected {
    /// Why, in words.
    pub cause: String,
    /// When the next attempt starts.
    pub retry_in: Duration,
    /// The URL of the next attempt.
    pub next_url: Arc<str>,
    /// Whether a connection was open (false: an attempt failed).
    pub was_connected: bool,
}

/// A publication.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Delivery {
    /// The topic it was published to.
    pub topic: String,
    /// What was published.
    pub data: Value,
    /// Its position, on a history topic.
    pub position: Option<Position>,
}

/// A subscription in place.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Subscribed {
    /// The topic or pattern.
    pub topic: String,
    /// The topic's position now (history topics): what follows it comes next.
    pub position: Option<Position>,
    /// What became of the past.
    pub resumed: Resumed,
}

/// What a subscription did about what was published while the client was away.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resumed {
    /// The first subscribe (or a pattern, or a topic without a position yet): live from now.
    Live,
    /// Resumed from the topic's position: `replayed` publications were handed out before this.
    Recovered {
        /// How many.
        replayed: usize,
    },
    /// The server could not prove continuity (`epoch_changed`, `too_old`, `too_many`,
    /// `history_off`, `unknown_position`): nothing was replayed, delivery is live from the new
    /// position; reload the state.
    NotRecovered {
        /// The server's reason.
        reason: String,
    },
    /// The server found a loss on the live subscription it could not repair (`op: reset`):
    /// delivery goes on live from the new position; reload the state.
    Reset {
        /// The server's reason.
        reason: String,
    },
}

/// A publish was stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Acked {
    /// Its id.
    pub id: String,
    /// Its position (history topics).
    pub position: Option<Position>,
    /// The server had stored this id already (a retry after a lost ack).
    pub duplicate: bool,
}

/// Counters of one client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Connections opened.
    pub connections: u64,
    /// Publications handed out.
    pub delivered: u64,
    /// Publications dropped because the topic's position was already past them.
    pub duplicates_dropped: u64,
    /// Resumes the server proved continuous.
    pub recovered: u64,
    /// Resumes it could not, and resets.
    pub not_recovered: u64,
    /// Publishes sent again (after a reconnect or a refusal).
    pub publishes_resent: u64,
    /// Acknowledgements of publishes (duplicates included).
    pub acked: u64,
}
