//! The memory backend: each history topic's publications in a ring buffer in this process, with the
//! Redis backend's semantics (offsets from 1, a fresh epoch when a topic's state is created or has
//! expired, the history's TTL counted from the latest publication, publish ids remembered for the
//! id window). Nodes do not share it: it is for one node, and for tests.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::store::{Appended, Lifetimes, Page, Read, Store, StoreError, StoreFuture};
use super::{fresh_epoch, Position, Publication};

/// The most topics the memory backend keeps state for: a bound on what clients publishing to
/// ever new topic names can make it hold. Topics whose meta TTL has passed are forgotten first.
pub(crate) const MAX_TOPICS: usize = 100_000;
/// The most publish ids remembered per topic; the oldest are forgotten first.
pub(crate) const MAX_IDS: usize = 100_000;

/// History in this process. See the [module docs](self).
#[derive(Default)]
pub(crate) struct MemoryBackend {
    topics: Mutex<HashMap<Box<str>, Topic>>,
}

struct Topic {
    epoch: Arc<str>,
    /// The latest offset given.
    top: u64,
    /// The kept publications, oldest first, with contiguous offsets ending at `top`.
    entries: VecDeque<(u64, Publication)>,
    /// When the entries expire (the policy's TTL after the latest publication).
    entries_expire: Instant,
    /// When the epoch and the counter expire (the meta TTL after the latest use).
    meta_expires: Instant,
    ids: HashMap<String, (Position, Instant)>,
    /// Ids in the order they were given, to forget the oldest.
    id_order: VecDeque<String>,
}

impl Topic {
    fn new(now: Instant, lifetimes: Lifetimes) -> Topic {
        Topic {
            epoch: fresh_epoch(),
            top: 0,
            entries: VecDeque::new(),
            entries_expire: now,
            meta_expires: now + lifetimes.meta_ttl,
            ids: HashMap::new(),
            id_order: VecDeque::new(),
        }
    }

    /// Drops what has expired by `now`.
    fn expire(&mut self, now: Instant) {
        if now >= self.entries_expire {
            self.entries.clear();
        }
        while let Some(id) = self.id_order.front() {
            match self.ids.get(id) {
                Some((_, until)) if *until > now => break,
                _ => {
                    let id = self.id_order.pop_front().expect("checked");
                    self.ids.remove(&id);
                }
            }
        }
    }
}

impl MemoryBackend {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The state of `topic`, made (with a fresh epoch) if it has none or its meta expired.
    fn with_topic<T>(
        &self,
        topic: &str,
        lifetimes: Lifetimes,
        f: impl FnOnce(&mut Topic, Instant) -> T,
    ) -> Result<T, StoreError> {
        let now = Instant::now();
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if topics.get(topic).is_some_and(|t| t.meta_expires <= now) {
            topics.remove(topic);
        }
        if !topics.contains_key(topic) {
            if topics.len() >= MAX_TOPICS {
                topics.retain(|_, t| t.meta_expires > now);
            }
            if topics.len() >= MAX_TOPICS {
                return Err(StoreError::Refused(format!(
                    "the in-memory history holds {MAX_TOPICS} topics; use Redis for more, or a shorter meta TTL"
                )));
            }
            topics.insert(topic.into(), Topic::new(now, lifetimes));
        }
        let t = topics.get_mut(topic).expect("inserted");
        t.expire(now);
        t.meta_expires = now + lifetimes.meta_ttl;
        Ok(f(t, now))
    }

    /// Stores a publication at once.
    pub(crate) fn append_now(
        &self,
        topic: &str,
        lifetimes: Lifetimes,
        publication: Publication,
        id: Option<&str>,
    ) -> Result<Appended, StoreError> {
        self.with_topic(topic, lifetimes, |t, now| {
            if let Some((position, _)) = id.and_then(|id| t.ids.get(id)) {
                return Appended { position: position.clone(), duplicate: true };
            }
            t.top += 1;
            t.entries.push_back((t.top, publication));
            while t.entries.len() > lifetimes.policy.size {
                t.entries.pop_front();
            }
            t.entries_expire = now + lifetimes.policy.ttl;
            let position = Position { offset: t.top, epoch: t.epoch.clone() };
            if let Some(id) = id {
                if t.id_order.len() >= MAX_IDS {
                    if let Some(old) = t.id_order.pop_front() {
                        t.ids.remove(&old);
                    }
                }
                t.ids.insert(id.to_owned(), (position.clone(), now + lifetimes.id_window));
                t.id_order.push_back(id.to_owned());
            }
            Appended { position, duplicate: false }
        })
    }

    /// Reads at once.
    pub(crate) fn read_now(&self, topic: &str, lifetimes: Lifetimes, read: Read) -> Result<Page, StoreError> {
        self.with_topic(topic, lifetimes, |t, _| {
            let entries = match read.since {
                None => Vec::new(),
                Some(since) => {
                    let after = t.entries.iter().filter(|(o, _)| *o > since);
                    if read.reverse {
                        after.rev().take(read.count).cloned().collect()
                    } else {
                        after.take(read.count).cloned().collect()
                    }
                }
            };
            Page { epoch: t.epoch.clone(), top: t.top, entries }
        })
    }
}

impl Store for MemoryBackend {
    fn append(
        &self,
        topic: &str,
        lifetimes: Lifetimes,
        publication: Publication,
        id: Option<&str>,
    ) -> StoreFuture<Appended> {
        Box::pin(std::future::ready(self.append_now(topic, lifetimes, publication, id)))
    }

    fn read(&self, topic: &str, lifetimes: Lifetimes, read: Read) -> StoreFuture<Page> {
        Box::pin(std::future::ready(self.read_now(topic, lifetimes, read)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::history::HistoryPolicy;

    fn lifetimes(size: usize, ttl_secs: u64) -> Lifetimes {
        Lifetimes {
            policy: HistoryPolicy::new(size, Duration::from_secs(ttl_secs)),
            meta_ttl: Duration::from_secs(100),
            id_window: Duration::from_secs(10),
        }
    }

    fn text(s: &str) -> Publication {
        Publication::message(s.into())
    }

    fn offsets(p: &Page) -> Vec<u64> {
        p.entries.iter().map(|(o, _)| *o).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn offsets_count_from_one_in_a_ring() {
        let m = MemoryBackend::new();
        let l = lifetimes(3, 60);
        let first = m.read_now("t", l, Read::position()).unwrap();
        assert_eq!(first.top, 0, "a read makes the epoch");
        for i in 1..=5 {
            let a = m.append_now("t", l, text(&i.to_string()), None).unwrap();
            assert_eq!(a.position, Position { offset: i, epoch: first.epoch.clone() });
        }
        let page = m.read_now("t", l, Read::after(0, 10)).unwrap();
        assert_eq!((page.top, offsets(&page)), (5, vec![3, 4, 5]));
        assert_eq!(offsets(&m.read_now("t", l, Read::after(3, 1)).unwrap()), [4]);
        let latest = m.read_now("t", l, Read { since: Some(0), count: 2, reverse: true }).unwrap();
        assert_eq!(offsets(&latest), [5, 4]);
        assert_eq!(latest.entries[0].1, text("5"));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl_and_the_epoch_after_the_meta_ttl() {
        let m = MemoryBackend::new();
        let l = lifetimes(10, 5);
        let a = m.append_now("t", l, text("a"), None).unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        let page = m.read_now("t", l, Read::after(0, 10)).unwrap();
        assert_eq!((page.top, page.entries.len()), (1, 0), "expired entries, the counter kept");
        tokio::time::advance(Duration::from_secs(101)).await;
        let page = m.read_now("t", l, Read::after(0, 10)).unwrap();
        assert_ne!(page.epoch, a.position.epoch, "a new epoch");
        assert_eq!(page.top, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_publish_id_is_stored_once_within_the_window() {
        let m = MemoryBackend::new();
        let l = lifetimes(10, 60);
        let first = m.append_now("t", l, text("x"), Some("c7-1")).unwrap();
        let again = m.append_now("t", l, text("x"), Some("c7-1")).unwrap();
        assert_eq!((again.position.clone(), again.duplicate), (first.position.clone(), true));
        assert_eq!(m.read_now("t", l, Read::position()).unwrap().top, 1);
        // Another topic has its own ids.
        assert!(!m.append_now("u", l, text("x"), Some("c7-1")).unwrap().duplicate);
        tokio::time::advance(Duration::from_secs(11)).await;
        let later = m.append_now("t", l, text("x"), Some("c7-1")).unwrap();
        assert!(!later.duplicate, "forgotten after the window");
        assert_eq!(later.position.offset, 2);
    }
}
