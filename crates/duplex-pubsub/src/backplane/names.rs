//! Every Redis name the backplane uses, made in one place.
//!
//! Topic `t` of namespace `ns` is the channel `duplex:ns:{t:t}`; a history topic's keys add a
//! suffix to it: `duplex:ns:{t:t}:meta` (a hash: `e` the epoch, `s` the last offset),
//! `duplex:ns:{t:t}:stream` (the publications) and `duplex:ns:{t:t}:id:<publish-id>`. The channel
//! and the keys of a topic share the hash tag `{t:<topic>}`, so on Redis Cluster they live in one
//! slot and the publish script (which touches them all, and publishes) can run there with
//! `SPUBLISH`; [`Names::tag`] is the one place where the tag could later become a partition
//! number. A pattern `chat.*` is `PSUBSCRIBE duplex:ns:{t:chat.*` (glob characters of the fixed
//! part escaped), which matches the channel of every topic the pattern matches and no other.

use crate::topic::{glob_escape, Filter};

/// The names of one namespace.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    /// `duplex:<namespace>:`.
    prefix: String,
}

impl Names {
    pub(crate) fn new(namespace: &str) -> Names {
        Names { prefix: format!("duplex:{namespace}:") }
    }

    /// The hash tag of a topic: `{t:<topic>}`.
    fn tag(topic: &str) -> String {
        format!("{{t:{topic}}}")
    }

    /// The channel of `topic`.
    pub(crate) fn channel(&self, topic: &str) -> String {
        format!("{}{}", self.prefix, Names::tag(topic))
    }

    /// The hash of a history topic's epoch and last offset.
    pub(crate) fn meta(&self, topic: &str) -> String {
        format!("{}:meta", self.channel(topic))
    }

    /// The stream of a history topic's publications.
    pub(crate) fn stream(&self, topic: &str) -> String {
        format!("{}:stream", self.channel(topic))
    }

    /// The key remembering a publish id (its position) for the id window.
    pub(crate) fn publish_id(&self, topic: &str, id: &str) -> String {
        format!("{}:id:{id}", self.channel(topic))
    }

    /// What to `SUBSCRIBE` (a channel) or `PSUBSCRIBE` (a glob pattern) for `filter`.
    pub(crate) fn subscription(&self, filter: &Filter) -> String {
        match filter {
            Filter::Exact(t) => self.channel(t),
            Filter::Prefix(p) => format!("{}*", glob_escape(&format!("{}{{t:{p}", self.prefix))),
        }
    }

    /// The topic a channel is of, if it is one of this namespace's.
    pub(crate) fn topic<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(self.prefix.as_str())?.strip_prefix("{t:")?.strip_suffix('}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hash_tag_per_topic() {
        let n = Names::new("pubsub");
        assert_eq!(n.channel("feed"), "duplex:pubsub:{t:feed}");
        assert_eq!(n.meta("feed"), "duplex:pubsub:{t:feed}:meta");
        assert_eq!(n.stream("feed"), "duplex:pubsub:{t:feed}:stream");
        assert_eq!(n.publish_id("feed", "c7-1042"), "duplex:pubsub:{t:feed}:id:c7-1042");
        assert_eq!(Names::new("relay").channel("/lobby"), "duplex:relay:{t:/lobby}");
        for topic in ["feed", "chat.lobby", "a}b", "/x?y"] {
            assert_eq!(n.topic(&n.channel(topic)), Some(topic));
        }
        assert_eq!(n.topic("duplex:pubsub:feed"), None, "not one of ours");
        assert_eq!(n.topic("duplex:relay:{t:feed}"), None, "another namespace");
    }

    #[test]
    fn patterns_match_the_channels_of_their_topics() {
        let n = Names::new("pubsub");
        let f = |s: &str| Filter::parse(s).unwrap();
        assert_eq!(n.subscription(&f("chat.lobby")), "duplex:pubsub:{t:chat.lobby}");
        assert_eq!(n.subscription(&f("chat.*")), "duplex:pubsub:{t:chat.*");
        assert_eq!(n.subscription(&f("*")), "duplex:pubsub:{t:*");
        // Glob characters in a topic match literally.
        assert_eq!(n.subscription(&f("a?[b].*")), "duplex:pubsub:{t:a\\?\\[b\\].*");
    }
}
