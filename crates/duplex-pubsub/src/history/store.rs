//! What a history backend does: store a publication and give it its position, and read a topic's
//! position and publications. Two backends: [`memory`](super::memory) (this process) and the
//! Redis one (`backplane::history`, feature `redis`), shared by every node.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::{HistoryPolicy, Position, Publication};

/// A backend's answer, later (Redis) or at once (memory: a ready future).
pub(crate) type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

/// Why the backend could not answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum StoreError {
    /// The backend cannot be reached (Redis down): the publish was refused or its outcome is
    /// unknown; retry with the same id.
    Unavailable(String),
    /// The backend refused (the memory backend is full of topics).
    Refused(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(e) | StoreError::Refused(e) => f.write_str(e),
        }
    }
}

/// How long what is stored lives: the topic's policy, the meta TTL and the id window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lifetimes {
    pub(crate) policy: HistoryPolicy,
    /// How long a topic's epoch and offset counter live after its last use.
    pub(crate) meta_ttl: Duration,
    /// How long a publish id is remembered.
    pub(crate) id_window: Duration,
}

/// A publication stored: its position, or the position of the first publish with the same id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) position: Position,
    pub(crate) duplicate: bool,
}

/// What to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Read {
    /// Publications after this offset; `None`: the position only, no publications.
    pub(crate) since: Option<u64>,
    /// At most this many.
    pub(crate) count: usize,
    /// The newest first (with `count`: the latest ones).
    pub(crate) reverse: bool,
}

impl Read {
    /// The topic's position only.
    pub(crate) fn position() -> Read {
        Read { since: None, count: 0, reverse: false }
    }

    /// Up to `count` publications after `since`, oldest first.
    pub(crate) fn after(since: u64, count: usize) -> Read {
        Read { since: Some(since), count, reverse: false }
    }
}

/// A read's answer, taken atomically: the epoch, the offset of the latest publication, and the
/// publications asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Page<T = Publication> {
    pub(crate) epoch: Arc<str>,
    pub(crate) top: u64,
    pub(crate) entries: Vec<(u64, T)>,
}

/// A history backend. Reads of a topic never published make its epoch (offset 0), so a
/// subscriber's position always names a stream.
pub(crate) trait Store: Send + Sync + 'static {
    /// Stores `publication` on `topic` (idempotently with an `id`) and gives its position.
    fn append(
        &self,
        topic: &str,
        lifetimes: Lifetimes,
        publication: Publication,
        id: Option<&str>,
    ) -> StoreFuture<Appended>;

    /// Reads `topic`.
    fn read(&self, topic: &str, lifetimes: Lifetimes, read: Read) -> StoreFuture<Page>;
}
