//! Options of the commands that serve topics (`serve` for `/pubsub`, `relay` for its rooms): the
//! Redis backplane and the slow-subscriber policy.

use duplex_pubsub::{PubSub, SlowSubscriber};

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

impl PubSubOptions {
    /// The topics of `namespace` (a separate set of Redis channels per namespace). Must run inside
    /// the runtime. The error says what to fix.
    pub fn build(&self, namespace: &str) -> Result<PubSub, String> {
        let policy = match self.slow_subscriber {
            SlowPolicy::Drop => SlowSubscriber::Drop,
            SlowPolicy::Close1013 => SlowSubscriber::close_try_again_later(),
            SlowPolicy::Close1008 => SlowSubscriber::close_policy_violation(),
        };
        let builder = PubSub::builder().namespace(namespace).slow_subscriber(policy);
        match &self.redis {
            None => builder.build().map_err(|e| e.to_string()),
            #[cfg(feature = "redis")]
            Some(url) => builder.redis(url.clone()).build().map_err(|e| e.to_string()),
            #[cfg(not(feature = "redis"))]
            Some(_) => Err("--redis: this duplex was built without the `redis` feature".to_owned()),
        }
    }
}
