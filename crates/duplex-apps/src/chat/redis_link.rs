//! The chat's own link to Redis (feature `redis`), for its history (`redis_history.rs`) and its
//! members (`redis_presence.rs`); its messages go through the backplane of the chat's `PubSub`.
//!
//! - **One connection, one at a time.** A multiplexed connection, made on first use; its lock is
//!   also what orders, on one node, the Redis commands and what the chat does after each (see
//!   [`super::Chat`]).
//! - **Outages.** Every command is bounded by [`TIMEOUT`]. A failure is logged once (a warning)
//!   and Redis is then left alone for [`RETRY_AFTER`], so that while it is away a join or a line
//!   waits at most [`TIMEOUT`] once per [`RETRY_AFTER`], not on every request; the chat then
//!   works from its memory (this node's lines and members only). Its return is logged too.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::{Mutex, MutexGuard};
use tokio::time::{timeout, Instant};

/// The longest a join, a line or a leave waits for Redis.
pub const TIMEOUT: Duration = Duration::from_millis(1000);
/// How long Redis is left alone after a failure.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The link to Redis.
pub(super) struct RedisLink {
    client: redis::Client,
    /// The URL without its password, for logs.
    url: String,
    link: Mutex<Link>,
}

#[derive(Default)]
pub(super) struct Link {
    conn: Option<MultiplexedConnection>,
    /// No attempt before this (after a failure).
    quiet_until: Option<Instant>,
    /// A failure was logged and Redis has not answered since.
    pub(super) down: bool,
}

impl RedisLink {
    /// Checks the URL; connects on first use.
    pub(super) fn new(url: &str) -> Result<RedisLink, String> {
        let shown = duplex_pubsub::redact_url(url);
        let client = redis::Client::open(url).map_err(|e| format!("Redis URL {shown}: {e}"))?;
        Ok(RedisLink { client, url: shown, link: Mutex::new(Link::default()) })
    }

    /// Takes the link: one Redis operation and what depends on its order at a time.
    pub(super) async fn lock(&self) -> MutexGuard<'_, Link> {
        self.link.lock().await
    }

    /// Runs `cmd` (bounded by [`TIMEOUT`]); `None` if Redis could not be reached. `doing` is for
    /// the log.
    pub(super) async fn query<T: redis::FromRedisValue>(
        &self,
        link: &mut Link,
        cmd: &redis::Cmd,
        doing: &str,
    ) -> Option<T> {
        let mut conn = self.connection(link).await?;
        let result = timeout(TIMEOUT, cmd.query_async::<T>(&mut conn)).await;
        self.done(link, result, doing)
    }

    /// Runs `pipe` (bounded by [`TIMEOUT`]); whether Redis answered.
    pub(super) async fn run(&self, link: &mut Link, pipe: &redis::Pipeline, doing: &str) -> bool {
        let Some(mut conn) = self.connection(link).await else { return false };
        let result = timeout(TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
        self.done(link, result, doing).is_some()
    }

    async fn connection(&self, link: &mut Link) -> Option<MultiplexedConnection> {
        if let Some(conn) = &link.conn {
            return Some(conn.clone());
        }
        if link.quiet_until.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let config = redis::AsyncConnectionConfig::new().set_connection_timeout(TIMEOUT).set_response_timeout(TIMEOUT);
        let result = timeout(TIMEOUT, self.client.get_multiplexed_async_connection_with_config(&config)).await;
        let conn = self.done(link, result, "connecting")?;
        link.conn = Some(conn.clone());
        Some(conn)
    }

    /// Notes how an operation went: the first failure is logged and quiets Redis for a while, the
    /// first success after one is logged too.
    fn done<T>(
        &self,
        link: &mut Link,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
        doing: &str,
    ) -> Option<T> {
        let error = match result {
            Ok(Ok(value)) => {
                link.quiet_until = None;
                if link.down {
                    link.down = false;
                    tracing::info!("redis {}: chat history and members are back in Redis", self.url);
                }
                return Some(value);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {TIMEOUT:?}"),
        };
        link.conn = None;
        link.quiet_until = Some(Instant::now() + RETRY_AFTER);
        if !link.down {
            link.down = true;
            tracing::warn!(
                "redis {}: chat history and members unavailable ({doing}: {error}); using this node's memory, retrying",
                self.url
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_refused_without_its_password() {
        let e = RedisLink::new("redis://:secret@host:notaport").err().expect("refused");
        assert!(!e.contains("secret"), "{e}");
        assert!(RedisLink::new("not a url").is_err());
    }

    /// A port nothing listens on: bound, then released.
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
    }

    #[tokio::test]
    async fn unreachable_redis_answers_none_quickly_then_stays_quiet() {
        let redis = RedisLink::new(&format!("redis://127.0.0.1:{}", closed_port())).unwrap();
        let started = std::time::Instant::now();
        let mut link = redis.lock().await;
        assert!(redis.query::<String>(&mut link, &redis::cmd("PING"), "pinging").await.is_none());
        assert!(link.down && link.quiet_until.is_some());
        // Within RETRY_AFTER, Redis is not tried again: no wait at all.
        let quiet = std::time::Instant::now();
        assert!(!redis.run(&mut link, &redis::pipe(), "nothing").await);
        assert!(redis.query::<String>(&mut link, &redis::cmd("PING"), "pinging").await.is_none());
        assert!(quiet.elapsed() < Duration::from_millis(50), "took {:?}", quiet.elapsed());
        assert!(started.elapsed() <= TIMEOUT + Duration::from_millis(500), "took {:?}", started.elapsed());
    }
}
