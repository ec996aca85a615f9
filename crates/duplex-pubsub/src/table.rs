//! The subscription table: which connections follow which filters, and the walk over everyone a
//! published topic reaches.
//!
//! Exact topics and pattern prefixes are two hash maps. A publish to `a.b.c` looks up `a.b.c`
//! among the exact topics and `""`, `"a."`, `"a.b."` among the prefixes: one hash lookup per
//! level, whatever the number of patterns. A connection that several of those filters name is
//! visited once (uWebSockets does the same: one message per connection per publish).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use duplex::Sender;

use crate::slow_subscriber::SlowSubscriber;
use crate::topic::{self, Filter};

/// One subscribed connection, as the table holds it.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) id: u64,
    pub(crate) sender: Sender,
    pub(crate) policy: SlowSubscriber,
    /// Its filters; the lock is taken before the table's.
    pub(crate) filters: Mutex<BTreeSet<Filter>>,
    /// The slow-subscriber policy closed it (or it ended): send nothing more.
    pub(crate) gone: AtomicBool,
    pub(crate) dropped: AtomicU64,
}

type Group = HashMap<u64, Arc<Member>>;

#[derive(Debug, Default)]
pub(crate) struct Table {
    exact: HashMap<Box<str>, Group>,
    prefixes: HashMap<Box<str>, Group>,
}

impl Drop for Table {
    fn drop(&mut self) {
        // The gauges count what live tables hold: a dropped `PubSub` takes its share with it.
        for group in self.exact.values().chain(self.prefixes.values()) {
            crate::metrics::subscriptions_changed(-(group.len() as f64), -1.0);
        }
    }
}

thread_local! {
    /// Connections already visited by the current walk, when more than one filter matched.
    static SEEN: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

impl Table {
    fn side<'a>(&'a mut self, filter: &'a Filter) -> (&'a mut HashMap<Box<str>, Group>, &'a str) {
        match filter {
            Filter::Exact(t) => (&mut self.exact, t),
            Filter::Prefix(p) => (&mut self.prefixes, p),
        }
    }

    /// Adds `member` under `filter`. Returns whether the filter had no subscriber before (the
    /// backplane must subscribe to it).
    pub(crate) fn insert(&mut self, filter: &Filter, member: &Arc<Member>) -> bool {
        let (map, key) = self.side(filter);
        match map.get_mut(key) {
            Some(group) => {
                if group.insert(member.id, member.clone()).is_none() {
                    crate::metrics::subscriptions_changed(1.0, 0.0);
                }
                false
            }
            None => {
                map.insert(key.into(), HashMap::from([(member.id, member.clone())]));
                crate::metrics::subscriptions_changed(1.0, 1.0);
                true
            }
        }
    }

    /// Removes member `id` from `filter`. Returns whether the filter has no subscriber left.
    pub(crate) fn remove(&mut self, filter: &Filter, id: u64) -> bool {
        let (map, key) = self.side(filter);
        let Some(group) = map.get_mut(key) else { return false };
        let removed = group.remove(&id).is_some();
        let emptied = group.is_empty();
        if emptied {
            map.remove(key);
        }
        if removed {
            crate::metrics::subscriptions_changed(-1.0, if emptied { -1.0 } else { 0.0 });
        }
        emptied
    }

    /// Subscribers of exactly this filter.
    pub(crate) fn count(&self, filter: &Filter) -> usize {
        match filter {
            Filter::Exact(t) => self.exact.get(t.as_str()).map_or(0, HashMap::len),
            Filter::Prefix(p) => self.prefixes.get(p.as_str()).map_or(0, HashMap::len),
        }
    }

    /// Every filter with its number of subscribers, sorted.
    pub(crate) fn filters(&self) -> Vec<(Filter, usize)> {
        let mut all: Vec<(Filter, usize)> = self
            .exact
            .iter()
            .map(|(t, g)| (Filter::Exact(t.to_string()), g.len()))
            .chain(self.prefixes.iter().map(|(p, g)| (Filter::Prefix(p.to_string()), g.len())))
            .collect();
        all.sort();
        all
    }

    /// The groups a message published to `topic` reaches.
    fn matching<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a Group> + 'a {
        let prefixes = (!self.prefixes.is_empty()).then(|| topic::prefixes(topic)).into_iter().flatten();
        self.exact.get(topic).into_iter().chain(prefixes.filter_map(|p| self.prefixes.get(p)))
    }

    /// Calls `f` once for every member a message published to `topic` reaches. Allocates nothing
    /// on the common path (one matching filter); with several, a per-thread set of visited ids
    /// that keeps its capacity.
    pub(crate) fn for_each_match(&self, topic: &str, mut f: impl FnMut(&Arc<Member>)) {
        let mut groups = self.matching(topic);
        let Some(first) = groups.next() else { return };
        let Some(second) = groups.next() else {
            first.values().for_each(f);
            return;
        };
        SEEN.with(|seen| {
            // A walk never starts another on the same thread (`f` only queues frames), but be
            // safe if it ever does: fall back to a private set.
            let mut private = HashSet::new();
            let mut borrowed = seen.try_borrow_mut();
            let seen = match &mut borrowed {
                Ok(s) => &mut **s,
                Err(_) => &mut private,
            };
            seen.clear();
            for group in [first, second].into_iter().chain(groups) {
                for (id, member) in group {
                    if seen.insert(*id) {
                        f(member);
                    }
                }
            }
            seen.clear();
        });
    }

    /// Calls `f` for every member subscribed to exactly `topic` (not through a pattern).
    pub(crate) fn for_each_exact(&self, topic: &str, f: impl FnMut(&Arc<Member>)) {
        if let Some(group) = self.exact.get(topic) {
            group.values().for_each(f);
        }
    }

    /// Whether someone is subscribed to exactly `topic`.
    pub(crate) fn has_exact(&self, topic: &str) -> bool {
        self.exact.contains_key(topic)
    }

    /// Whether nothing is subscribed.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}
