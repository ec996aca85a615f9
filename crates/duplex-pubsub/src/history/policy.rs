//! Which topics keep a history, and how much: a [`HistoryPolicy`] per topic or pattern, the most
//! specific one winning (an exact topic, then the longest prefix, then `*`).

use std::time::Duration;

use crate::error::Error;
use crate::topic::Filter;

/// How much history a topic keeps: about `size` publications (Redis trims streams approximately,
/// so it may keep a few more), for `ttl` after its latest publication.
///
/// ```
/// use duplex_pubsub::{HistoryPolicy, PubSub};
/// use std::time::Duration;
/// let pubsub = PubSub::builder()
///     .history("chat.*", HistoryPolicy::new(200, Duration::from_secs(600)))
///     .build()
///     .unwrap();
/// # let _ = pubsub;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryPolicy {
    /// Publications kept (at least 1).
    pub size: usize,
    /// How long the history lives after the topic's latest publication (at least 1 ms).
    pub ttl: Duration,
}

impl HistoryPolicy {
    /// A policy; a size of 0 counts as 1, a TTL under 1 ms as 1 ms.
    pub fn new(size: usize, ttl: Duration) -> Self {
        HistoryPolicy { size: size.max(1), ttl: ttl.max(Duration::from_millis(1)) }
    }
}

/// The policies of a `PubSub`, by topic or pattern.
#[derive(Clone, Debug, Default)]
pub(crate) struct Policies {
    /// Sorted most specific first: exact topics, then prefixes from the longest.
    rules: Vec<(Filter, HistoryPolicy)>,
}

impl Policies {
    /// Adds (or replaces) the policy of `pattern`.
    pub(crate) fn set(&mut self, pattern: &str, policy: HistoryPolicy) -> Result<(), Error> {
        let filter = Filter::parse(pattern)?;
        self.rules.retain(|(f, _)| *f != filter);
        self.rules.push((filter, policy));
        self.rules.sort_by_key(|(f, _)| std::cmp::Reverse(specificity(f)));
        Ok(())
    }

    /// The policy of `topic`, if it keeps a history.
    pub(crate) fn get(&self, topic: &str) -> Option<HistoryPolicy> {
        self.rules.iter().find(|(f, _)| f.matches(topic)).map(|(_, p)| *p)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Exact topics first, then longer prefixes before shorter ones.
fn specificity(f: &Filter) -> (bool, usize) {
    match f {
        Filter::Exact(t) => (true, t.len()),
        Filter::Prefix(p) => (false, p.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_pattern_wins() {
        let mut p = Policies::default();
        let every = HistoryPolicy::new(1000, Duration::from_secs(120));
        let chat = HistoryPolicy::new(200, Duration::from_secs(600));
        let lobby = HistoryPolicy::new(5, Duration::from_secs(1));
        let eu = HistoryPolicy::new(7, Duration::from_secs(1));
        p.set("*", every).unwrap();
        p.set("chat.*", chat).unwrap();
        p.set("chat.lobby", lobby).unwrap();
        p.set("chat.eu.*", eu).unwrap();
        assert_eq!(p.get("chat.lobby"), Some(lobby));
        assert_eq!(p.get("chat.lobby.x"), Some(chat));
        assert_eq!(p.get("chat.eu.paris"), Some(eu));
        assert_eq!(p.get("news"), Some(every));
        // Set again: replaced.
        p.set("*", chat).unwrap();
        assert_eq!(p.get("news"), Some(chat));
        assert_eq!(p.rules.len(), 4);
        let mut none = Policies::default();
        none.set("feed", lobby).unwrap();
        assert_eq!(none.get("feed.x"), None);
        assert!(none.set("a*b", lobby).is_err());
    }
}
