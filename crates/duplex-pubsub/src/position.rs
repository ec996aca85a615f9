//! The words a subscriber, a publisher and a topic's history share: a [`Position`] in a stream,
//! what a resume recovered or why not ([`Recovery`], [`NotRecovered`]), the options of a
//! subscribe or a publish, a [`Publication`] as stored. The engine that keeps history is
//! [`crate::history`]; the JSON protocol ([`crate::json`]) speaks these words too.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use duplex::Message;

/// The longest publish id, in bytes.
pub const MAX_PUBLISH_ID_LEN: usize = 128;

/// Where a publication sits in its topic's history: its offset in the stream named by `epoch`.
/// Written `41:k3J9` ([`Display`](fmt::Display), [`FromStr`]).
///
/// ```
/// use duplex_pubsub::Position;
/// let p: Position = "41:k3J9".parse().unwrap();
/// assert_eq!((p.offset, &*p.epoch), (41, "k3J9"));
/// assert_eq!(p.to_string(), "41:k3J9");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    /// The publication's number in its topic: 1 for the first of an epoch, +1 for each next one.
    /// A subscriber's position is the offset of the last publication it has (0: none yet).
    pub offset: u64,
    /// The stream's identity: a new one whenever the stream's state was lost.
    pub epoch: Arc<str>,
}

impl Position {
    /// A position.
    pub fn new(offset: u64, epoch: impl Into<Arc<str>>) -> Position {
        Position { offset, epoch: epoch.into() }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.offset, self.epoch)
    }
}

impl FromStr for Position {
    type Err = String;

    fn from_str(s: &str) -> Result<Position, String> {
        let (offset, epoch) = s.split_once(':').ok_or_else(|| format!("{s:?} is not a position like 41:k3J9"))?;
        let offset = offset.parse().map_err(|_| format!("{s:?}: the offset before ':' must be a number"))?;
        check_epoch(epoch).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(Position::new(offset, epoch))
    }
}

/// An epoch as a client sends it back: 1 to 64 characters, letters, digits, `-` or `_`.
pub(crate) fn check_epoch(epoch: &str) -> Result<(), &'static str> {
    if epoch.is_empty()
        || epoch.len() > 64
        || !epoch.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("an epoch is 1 to 64 letters, digits, '-' or '_'");
    }
    Ok(())
}

/// A publish id as a client gives it: 1 to [`MAX_PUBLISH_ID_LEN`] bytes without control
/// characters (it becomes part of a Redis key).
pub(crate) fn check_publish_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_PUBLISH_ID_LEN || id.chars().any(char::is_control) {
        return Err(format!("a publish id is 1 to {MAX_PUBLISH_ID_LEN} bytes without control characters"));
    }
    Ok(())
}

/// A fresh epoch: 12 random letters and digits (~71 bits), from the standard library's per-process
/// random hash keys, so the memory backend needs no random number crate.
pub(crate) fn fresh_epoch() -> Arc<str> {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bits = [0u64; 2];
    for b in &mut bits {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        *b = h.finish();
    }
    let mut n = u128::from(bits[0]) << 64 | u128::from(bits[1]);
    let s: String = (0..12)
        .map(|_| {
            let c = ALPHABET[(n % 62) as usize];
            n /= 62;
            c as char
        })
        .collect();
    s.into()
}

/// Why a resume could not be proven continuous. Nothing was replayed; the subscription is live from
/// the position the outcome gives, and the application reloads its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotRecovered {
    /// The stream's epoch is not the one of the position: its state was lost since (Redis
    /// restarted without its data, or the topic was idle past the meta TTL).
    EpochChanged,
    /// Publications after the position are no longer kept (the history's size or TTL).
    TooOld,
    /// More than `recover_max` publications are missing.
    TooMany,
    /// The topic has no history.
    HistoryOff,
    /// The position is past the end of the stream: a position made up, or the stream lost its tail
    /// (Redis restarted from an older snapshot, or failed over to a replica behind the primary).
    UnknownPosition,
}

impl NotRecovered {
    /// The name used on the wire: `epoch_changed`, `too_old`, `too_many`, `history_off`,
    /// `unknown_position`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotRecovered::EpochChanged => "epoch_changed",
            NotRecovered::TooOld => "too_old",
            NotRecovered::TooMany => "too_many",
            NotRecovered::HistoryOff => "history_off",
            NotRecovered::UnknownPosition => "unknown_position",
        }
    }
}

impl fmt::Display for NotRecovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a subscribe did about the past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recovery {
    /// No position was given: live from now.
    Live,
    /// `replayed` publications the subscriber missed were queued for it, in order, before anything
    /// live.
    Recovered {
        /// How many.
        replayed: usize,
    },
    /// Continuity could not be proven; nothing was replayed.
    NotRecovered(NotRecovered),
}

/// What [`Subscriber::subscribe_with`](crate::Subscriber::subscribe_with) did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeOutcome {
    /// On a history topic, the position the subscription is live from: it receives every
    /// publication after it. `None` for a topic without history or a pattern.
    pub position: Option<Position>,
    /// What became of the position given in [`SubscribeOptions::since`].
    pub recovery: Recovery,
    /// `false` if the connection already followed this filter (nothing changed).
    pub new: bool,
}

/// Builds the message queued for the subscriber at the moment its subscription goes live: after
/// the replayed publications and before any live one (the `/pubsub` endpoint's
/// `{"subscribed":…}` reply).
pub type ReplyFn = Box<dyn FnOnce(&SubscribeOutcome) -> Option<Message> + Send>;

/// How to subscribe: [`Subscriber::subscribe_with`](crate::Subscriber::subscribe_with).
#[derive(Default)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Resume after this position: replay what came after it, then go live. Exact topics only.
    pub since: Option<Position>,
    /// A message to queue when the subscription goes live (see [`ReplyFn`]).
    pub reply: Option<ReplyFn>,
}

impl fmt::Debug for SubscribeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscribeOptions").field("since", &self.since).field("reply", &self.reply.is_some()).finish()
    }
}

impl SubscribeOptions {
    /// Live from now, no reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resume after `position` (or live from now with `None`).
    pub fn since(mut self, position: impl Into<Option<Position>>) -> Self {
        self.since = position.into();
        self
    }

    /// Queue the message `reply` builds when the subscription goes live.
    pub fn reply(mut self, reply: impl FnOnce(&SubscribeOutcome) -> Option<Message> + Send + 'static) -> Self {
        self.reply = Some(Box::new(reply));
        self
    }
}

/// How to publish: [`PubSub::publish_with`](crate::PubSub::publish_with).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishOptions {
    /// An id that makes the publish idempotent on a history topic: the same id again within the
    /// publish-id window stores nothing and gets the first publish's position back, marked
    /// [`Published::duplicate`]. 1 to 128 bytes, no control characters.
    pub id: Option<String>,
}

impl PublishOptions {
    /// No id.
    pub fn new() -> Self {
        Self::default()
    }

    /// With this id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// What a publish with [`PubSub::publish_with`](crate::PubSub::publish_with) did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// Its position, on a history topic.
    pub position: Option<Position>,
    /// The id was seen within the window: nothing was published again, `position` is the first
    /// publish's.
    pub duplicate: bool,
}

/// What to read with [`PubSub::history`](crate::PubSub::history).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryQuery {
    /// At most this many items (capped at `recover_max`).
    pub limit: usize,
    /// Only publications after this position (of the same epoch).
    pub since: Option<Position>,
    /// Newest first: with a limit, the latest publications ("the last 50 messages").
    pub reverse: bool,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery { limit: 50, since: None, reverse: false }
    }
}

impl HistoryQuery {
    /// The oldest `limit` publications kept (newest first with [`reverse`](Self::reverse)).
    pub fn limit(limit: usize) -> Self {
        HistoryQuery { limit, ..Self::default() }
    }

    /// Only after `position`.
    pub fn since(mut self, position: impl Into<Option<Position>>) -> Self {
        self.since = position.into();
        self
    }

    /// Newest first.
    pub fn reverse(mut self, reverse: bool) -> Self {
        self.reverse = reverse;
        self
    }
}

/// A topic's history as [`PubSub::history`](crate::PubSub::history) read it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryPage {
    /// The stream's epoch, and the offset of its latest publication (0: none yet).
    pub top: Position,
    /// The publications read, each with its offset.
    pub items: Vec<(u64, Publication)>,
    /// Set when `since` was of another epoch: no items, the application reloads.
    pub not_recovered: Option<NotRecovered>,
}

/// What a publication carries, as stored: JSON `data` of the `/pubsub` protocol (delivered in the
/// `{"topic":…,"data":…,"offset":…,"epoch":…}` envelope), or a message sent as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// JSON text: the `data` of a `/pubsub` publish ([`PubSub::publish_json`](crate::PubSub::publish_json)).
    Json,
    /// A text message, delivered as it is.
    Text,
    /// A binary message, delivered as it is.
    Binary,
}

impl Kind {
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// The one-letter tag stored with it: `d` (JSON data), `t` or `b`.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Kind::Json => "d",
            Kind::Text => "t",
            Kind::Binary => "b",
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn from_tag(tag: &[u8]) -> Option<Kind> {
        match tag {
            b"d" => Some(Kind::Json),
            b"t" => Some(Kind::Text),
            b"b" => Some(Kind::Binary),
            _ => None,
        }
    }
}

/// One publication's content. Text kinds are valid UTF-8 (checked when made).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Publication {
    kind: Kind,
    data: Bytes,
}

impl fmt::Debug for Publication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => write!(f, "{:?}({s:?})", self.kind),
            None => write!(f, "{:?}({} bytes)", self.kind, self.data.len()),
        }
    }
}

impl Publication {
    /// A message to deliver as it is.
    pub fn message(message: Message) -> Publication {
        match message {
            Message::Text(t) => Publication { kind: Kind::Text, data: Bytes::from(t) },
            Message::Binary(b) => Publication { kind: Kind::Binary, data: b },
        }
    }

    /// JSON `data` for the `/pubsub` envelope. The text must be one JSON value (not checked here:
    /// [`PubSub::publish_json`](crate::PubSub::publish_json) serializes it).
    pub fn json(text: String) -> Publication {
        Publication { kind: Kind::Json, data: Bytes::from(text) }
    }

    /// From storage: `None` if a text kind is not UTF-8.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn from_stored(kind: Kind, data: Bytes) -> Option<Publication> {
        if kind != Kind::Binary && std::str::from_utf8(&data).is_err() {
            return None;
        }
        Some(Publication { kind, data })
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Its bytes, shared.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// Its text, for the text kinds.
    pub fn as_str(&self) -> Option<&str> {
        match self.kind {
            Kind::Binary => None,
            // Checked when made.
            _ => std::str::from_utf8(&self.data).ok(),
        }
    }

    /// How many bytes it holds.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_and_write() {
        assert_eq!("0:a".parse::<Position>().unwrap(), Position::new(0, "a"));
        for bad in ["41", "x:k3", "41:", "41:a b", "-1:a", "1:a:b"] {
            assert!(bad.parse::<Position>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fresh_epochs_differ() {
        let a = fresh_epoch();
        let b = fresh_epoch();
        assert_ne!(a, b);
        assert_eq!(a.len(), 12);
        assert!(check_epoch(&a).is_ok());
    }

    #[test]
    fn publish_ids() {
        assert!(check_publish_id("c7-1042").is_ok());
        assert!(check_publish_id("").is_err());
        assert!(check_publish_id(&"x".repeat(129)).is_err());
        assert!(check_publish_id("a\nb").is_err());
    }

    #[test]
    fn stored_text_must_be_utf8() {
        assert!(Publication::from_stored(Kind::Text, Bytes::from_static(b"\xff")).is_none());
        assert!(Publication::from_stored(Kind::Binary, Bytes::from_static(b"\xff")).is_some());
        assert_eq!(Publication::json("[1]".into()).as_str(), Some("[1]"));
        assert_eq!(Kind::from_tag(b"d"), Some(Kind::Json));
        assert_eq!(Kind::from_tag(Kind::Binary.tag().as_bytes()), Some(Kind::Binary));
    }
}
