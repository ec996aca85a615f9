//! Chat history in Redis (feature `redis`): one list per room, shared by every node that uses the
//! same Redis server, and kept when a node restarts.
//!
//! - **Keys.** Room `r` is the list `duplex:demos:chat.history.r` (the demos' namespace, beside
//!   the channels `duplex:demos:chat.room.r` of its topic). Each entry is one line as JSON,
//!   `{"nick":…,"text":…,"ts":…}`, oldest first.
//! - **Writing.** A line is `RPUSH`ed, the list `LTRIM`med to the last [`HISTORY`] entries and its
//!   expiry pushed back to [`EXPIRY`] in one `MULTI`/`EXEC`: a room nobody speaks in for that long
//!   is forgotten.
//! - **Reading.** Joining reads the list with `LRANGE`.
//! - **Outages.** Every command is bounded by [`TIMEOUT`]. A failure is logged once (a warning)
//!   and Redis is then left alone for [`RETRY_AFTER`], so that while it is away a join or a line
//!   waits at most [`TIMEOUT`] once per [`RETRY_AFTER`], not on every request; the chat then
//!   works from its memory (this node's lines only). Its return is logged too.
//!
//! [`HISTORY`]: super::HISTORY

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::{Mutex, MutexGuard};
use tokio::time::{timeout, Instant};

use super::{Line, HISTORY};

/// How long a room's history is kept after its last line.
pub const EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest a join or a line waits for Redis.
pub const TIMEOUT: Duration = Duration::from_millis(1000);
/// How long Redis is left alone after a failure.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The Redis key of `room`'s history.
pub fn key(room: &str) -> String {
    format!("duplex:{}:chat.history.{room}", crate::NAMESPACE)
}

/// The link to Redis. Its lock is also what orders, on one node, the lines written to Redis and
/// the joins that read them (see [`super::Chat`]).
pub(super) struct RedisHistory {
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
    down: bool,
}

impl RedisHistory {
    /// Checks the URL; connects on first use.
    pub(super) fn new(url: &str) -> Result<RedisHistory, String> {
        let shown = duplex_pubsub::redact_url(url);
        let client = redis::Client::open(url).map_err(|e| format!("Redis URL {shown}: {e}"))?;
        Ok(RedisHistory { client, url: shown, link: Mutex::new(Link::default()) })
    }

    /// Takes the link: one Redis operation and what depends on its order at a time.
    pub(super) async fn lock(&self) -> MutexGuard<'_, Link> {
        self.link.lock().await
    }

    /// Appends `line` to `room`'s history. `false` if Redis could not be reached.
    pub(super) async fn push(&self, link: &mut Link, room: &str, line: &Line) -> bool {
        let Some(mut conn) = self.connection(link).await else { return false };
        let entry = serde_json::to_string(line).expect("a line serializes");
        let key = key(room);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("RPUSH")
            .arg(&key)
            .arg(entry)
            .ignore()
            .cmd("LTRIM")
            .arg(&key)
            .arg(-(HISTORY as i64))
            .arg(-1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(EXPIRY.as_secs())
            .ignore();
        let result = timeout(TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
        self.done(link, result, "storing a line").is_some()
    }

    /// The last [`HISTORY`] lines of `room`, oldest first; `None` if Redis could not be reached.
    pub(super) async fn recent(&self, link: &mut Link, room: &str) -> Option<Vec<Line>> {
        let mut conn = self.connection(link).await?;
        let mut cmd = redis::cmd("LRANGE");
        cmd.arg(key(room)).arg(-(HISTORY as i64)).arg(-1);
        let result = timeout(TIMEOUT, cmd.query_async::<Vec<String>>(&mut conn)).await;
        let entries = self.done(link, result, "reading the history")?;
        Some(parse_entries(&entries))
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
                    tracing::info!("redis {}: chat history is back in Redis", self.url);
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
                "redis {}: chat history unavailable ({doing}: {error}); using this node's memory, retrying",
                self.url
            );
        }
        None
    }
}

/// The lines of a history list; entries that are not lines (written by something else) are
/// skipped.
fn parse_entries(entries: &[String]) -> Vec<Line> {
    entries.iter().filter_map(|e| serde_json::from_str(e).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_in_the_demos_namespace() {
        assert_eq!(key("lobby"), "duplex:demos:chat.history.lobby");
    }

    #[test]
    fn entries_round_trip_and_foreign_ones_are_skipped() {
        let line = Line { nick: "ann".into(), text: "hi \"there\"".into(), ts: 1_700_000_000_000 };
        let entries = vec![serde_json::to_string(&line).unwrap(), "not a line".into(), "{\"nick\":1}".into()];
        let parsed = parse_entries(&entries);
        assert_eq!(parsed.len(), 1);
        assert_eq!((parsed[0].nick.as_str(), parsed[0].text.as_str(), parsed[0].ts), ("ann", "hi \"there\"", line.ts));
    }

    #[test]
    fn a_bad_url_is_refused_without_its_password() {
        let e = RedisHistory::new("redis://:secret@host:notaport").err().expect("refused");
        assert!(!e.contains("secret"), "{e}");
        assert!(RedisHistory::new("not a url").is_err());
    }

    /// A port nothing listens on: bound, then released.
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
    }

    #[tokio::test]
    async fn unreachable_redis_answers_none_quickly_then_stays_quiet() {
        let history = RedisHistory::new(&format!("redis://127.0.0.1:{}", closed_port())).unwrap();
        let line = Line { nick: "ann".into(), text: "hi".into(), ts: 1 };
        let started = std::time::Instant::now();
        let mut link = history.lock().await;
        assert!(history.recent(&mut link, "lobby").await.is_none());
        assert!(link.down && link.quiet_until.is_some());
        // Within RETRY_AFTER, Redis is not tried again: no wait at all.
        let quiet = std::time::Instant::now();
        assert!(!history.push(&mut link, "lobby", &line).await);
        assert!(history.recent(&mut link, "lobby").await.is_none());
        assert!(quiet.elapsed() < Duration::from_millis(50), "took {:?}", quiet.elapsed());
        assert!(started.elapsed() <= TIMEOUT + Duration::from_millis(500), "took {:?}", started.elapsed());
    }
}
