//! Options of the commands that serve topics (`serve` for `/pubsub`, `relay` for its rooms): the
//! Redis backplane and the slow-subscriber policy; for `serve`, topic history.

use std::time::Duration;

use duplex_pubsub::{HistoryPolicy, PubSub, SlowSubscriber};

use crate::parse_duration;

/// How topics are shared between nodes and what happens to subscribers that fall behind.
#[derive(clap::Args, Debug, Clone)]
pub struct PubSubOptions {
    /// Share topics with every node using the same Redis server, through Redis pub/sub
    /// (`redis://127.0.0.1:6379`, `redis://:password@host:6379/0`). The node starts without
    /// waiting for Redis and keeps serving its own clients while Redis is away. With `serve`, the
    /// chat demo's rooms are shared too, and their history is kept in Redis.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// What to do with a subscriber whose connection has more than the write buffer limit (1 MiB)
    /// waiting when a message for it comes: drop the message for it, or close it with 1013 (try
    /// again later) or 1008 (policy violation). Publishing never waits for one slow client.
    #[arg(long, value_enum, default_value_t = SlowPolicy::Drop, value_name = "POLICY")]
    pub slow_subscriber: SlowPolicy,
}

/// `--slow-subscriber` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowPolicy {
    /// Skip the message for that subscriber.
    Drop,
    /// Close it with 1013 (try again later).
    #[value(name = "close-1013")]
    Close1013,
    /// Close it with 1008 (policy violation).
    #[value(name = "close-1008")]
    Close1008,
}

/// Topic history and resume for `/pubsub` (docs/pubsub.md, "History and resume").
#[derive(clap::Args, Debug, Clone)]
pub struct HistoryOptions {
    /// Keep a history for the topics PATTERN matches (`feed`, `chat.*`, `*` for all): SIZE
    /// publications for TTL after the latest, e.g. `chat.*=200,10m` or `*=1000,120s`. Clients can
    /// then resume after a reconnect (to any node) without loss or duplicates. Repeatable; the
    /// most specific pattern wins. Off by default: with --redis, publishes to history topics are
    /// refused while Redis is unreachable instead of being delivered locally.
    #[arg(long = "history", value_name = "PATTERN=SIZE,TTL", value_parser = parse_history)]
    pub history: Vec<(String, HistoryPolicy)>,
    /// How long a history topic's epoch and offset counter live after their last use; after
    /// that, resuming clients are told `epoch_changed`.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub history_meta_ttl: Duration,
    /// The most messages a resume replays; with more missing, it is not recovered (`too_many`).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub recover_max: usize,
    /// How long a publish id is remembered: a retry with the same id within it is acknowledged
    /// again but not published twice.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
    pub publish_id_window: Duration,
    /// With --redis: how long a history topic may receive nothing before this node checks its
    /// position in Redis (so a lost message is found even when nothing else is published).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub position_check: Duration,
}

/// `PATTERN=SIZE,TTL`.
fn parse_history(s: &str) -> Result<(String, HistoryPolicy), String> {
    let (pattern, policy) =
        s.split_once('=').ok_or_else(|| format!("{s:?} is not PATTERN=SIZE,TTL like chat.*=200,10m"))?;
    let (size, ttl) = policy.split_once(',').ok_or_else(|| format!("{s:?}: SIZE,TTL like 200,10m after '='"))?;
    let size: usize = size.trim().parse().map_err(|_| format!("{s:?}: the size must be a number"))?;
    let ttl = parse_duration(ttl)?;
    if size == 0 || ttl.is_zero() {
        return Err(format!("{s:?}: a history keeps at least 1 message for more than 0s"));
    }
    duplex_pubsub::Filter::parse(pattern.trim()).map_err(|e| e.to_string())?;
    Ok((pattern.trim().to_owned(), HistoryPolicy::new(size, ttl)))
}

impl HistoryOptions {
    fn apply(&self, mut builder: duplex_pubsub::Builder) -> duplex_pubsub::Builder {
        for (pattern, policy) in &self.history {
            builder = builder.history(pattern.clone(), *policy);
        }
        builder
            .history_meta_ttl(self.history_meta_ttl)
            .recover_max(self.recover_max)
            .publish_id_window(self.publish_id_window)
            .position_check(self.position_check)
    }
}

impl PubSubOptions {
    /// The topics of `namespace` (a separate set of Redis channels per namespace). Must run inside
    /// the runtime. The error says what to fix.
    pub fn build(&self, namespace: &str) -> Result<PubSub, String> {
        self.build_with(namespace, None)
    }

    /// [`build`](Self::build) with topic history.
    pub fn build_with(&self, namespace: &str, history: Option<&HistoryOptions>) -> Result<PubSub, String> {
        let policy = match self.slow_subscriber {
            SlowPolicy::Drop => SlowSubscriber::Drop,
            SlowPolicy::Close1013 => SlowSubscriber::close_try_again_later(),
            SlowPolicy::Close1008 => SlowSubscriber::close_policy_violation(),
        };
        let mut builder = PubSub::builder().namespace(namespace).slow_subscriber(policy);
        if let Some(h) = history {
            builder = h.apply(builder);
        }
        match &self.redis {
            None => builder.build().map_err(|e| e.to_string()),
            #[cfg(feature = "redis")]
            Some(url) => builder.redis(url.clone()).build().map_err(|e| e.to_string()),
            #[cfg(not(feature = "redis"))]
            Some(_) => Err("--redis: this duplex was built without the `redis` feature".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_options() {
        let (p, h) = parse_history("chat.*=200,10m").unwrap();
        assert_eq!((p.as_str(), h), ("chat.*", HistoryPolicy::new(200, Duration::from_secs(600))));
        assert_eq!(parse_history("*=1000,120s").unwrap().1.size, 1000);
        for bad in ["chat.*", "chat.*=200", "a*b=1,1s", "x=0,1s", "x=5,0", "x=a,1s", "x=5,1y"] {
            assert!(parse_history(bad).is_err(), "{bad}");
        }
    }
}
