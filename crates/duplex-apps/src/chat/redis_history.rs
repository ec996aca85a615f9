//! Chat history in Redis (feature `redis`): one list per room, shared by every node that uses the
//! same Redis server, and kept when a node restarts.
//!
//! - **Keys.** Room `r` is the list `duplex:demos:chat.history.r` (the demos' namespace, beside
//!   the channel `duplex:demos:{t:chat.room.r}` of its topic). Each entry is one line as JSON,
//!   `{"nick":…,"text":…,"ts":…}`, oldest first.
//! - **Writing.** A line is `RPUSH`ed, the list `LTRIM`med to the last [`HISTORY`] entries and its
//!   expiry pushed back to [`EXPIRY`] in one `MULTI`/`EXEC`: a room nobody speaks in for that long
//!   is forgotten.
//! - **Reading.** Joining reads the list with `LRANGE`.
//! - **Outages**: see `redis_link.rs`; the chat then works from its memory (this node's lines).
//!
//! [`HISTORY`]: super::HISTORY

use std::time::Duration;

use super::redis_link::{Link, RedisLink};
use super::{Line, HISTORY};

/// How long a room's history is kept after its last line.
pub const EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// The Redis key of `room`'s history.
pub fn key(room: &str) -> String {
    format!("duplex:{}:chat.history.{room}", crate::NAMESPACE)
}

impl RedisLink {
    /// Appends `line` to `room`'s history. `false` if Redis could not be reached.
    pub(super) async fn push(&self, link: &mut Link, room: &str, line: &Line) -> bool {
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
        self.run(link, &pipe, "storing a line").await
    }

    /// The last [`HISTORY`] lines of `room`, oldest first; `None` if Redis could not be reached.
    pub(super) async fn recent(&self, link: &mut Link, room: &str) -> Option<Vec<Line>> {
        let mut cmd = redis::cmd("LRANGE");
        cmd.arg(key(room)).arg(-(HISTORY as i64)).arg(-1);
        let entries: Vec<String> = self.query(link, &cmd, "reading the history").await?;
        Some(parse_entries(&entries))
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
}
