//! Chat members in Redis (feature `redis`): one list per room for every node, kept by a Lua
//! script (`presence.lua`) that changes and reads it in one atomic step.
//!
//! - **Keys.** Room `r`'s members are the hash `duplex:demos:chat.members.r` (field: the nickname
//!   in lowercase, which makes nicknames unique per room across nodes; value: the nickname, the
//!   node and connection holding it, the page's key, its joining order as JSON), the version of
//!   its list is `duplex:demos:chat.version.r`. Both expire [`ROOM_EXPIRY`] after the last change.
//! - **Liveness.** Each node has a key `duplex:demos:chat.node.<id>` that lives [`NODE_TTL`];
//!   every script a node runs renews it, and the node runs one for each room it has members in
//!   every [`HEARTBEAT`] (`sync`). A member whose node's key has expired (the node was killed,
//!   or lost Redis for that long) is removed by the next script that touches its room and
//!   reported as gone, so that the node running it announces that it left.
//! - **Healing.** `sync` also puts back this node's members that are missing (Redis restarted
//!   empty, or a join was made from memory while Redis was away) and removes entries of this node
//!   that it no longer has (a leave made while Redis was away). Its version tells the node whether
//!   the list changed since it last sent it to its members (a notice from another node may have
//!   been missed while this node's subscription to the room was being set up in Redis).
//! - **Versions.** Like the memory's (`presence.rs`): Redis's clock in milliseconds, and at least
//!   one more than the room's last.
//!
//! One script per request, `EVAL`ed with its text (Redis caches it): no `SCRIPT LOAD` state to
//! lose when Redis restarts. The script reads keys it is not given (other nodes' liveness keys),
//! which Redis Cluster does not allow: the chat needs a single Redis server (or a primary with
//! replicas), as the backplane does.

use std::time::Duration;

use super::redis_link::{Link, RedisLink};

/// How long a node's liveness key lives without being renewed.
pub const NODE_TTL: Duration = Duration::from_secs(10);
/// How often a node renews it and checks the rooms it has members in.
pub const HEARTBEAT: Duration = Duration::from_secs(3);
/// How long a room's members are kept after their last change (members of a node that died
/// alone in a room stay listed this long in Redis, and are removed by the next join there).
pub const ROOM_EXPIRY: Duration = Duration::from_secs(24 * 3600);

const SCRIPT: &str = include_str!("presence.lua");

/// The Redis key of `room`'s members.
pub fn members_key(room: &str) -> String {
    format!("duplex:{}:chat.members.{room}", crate::NAMESPACE)
}

fn version_key(room: &str) -> String {
    format!("duplex:{}:chat.version.{room}", crate::NAMESPACE)
}

fn node_prefix() -> String {
    format!("duplex:{}:chat.node.", crate::NAMESPACE)
}

/// A room's members as Redis has them after a script.
#[derive(Debug)]
pub(super) struct Listing {
    /// The nickname is someone else's: a join is refused; a leave finds that another
    /// connection took the nickname over (with the page's key) and removes nothing.
    pub(super) taken: bool,
    pub(super) version: u64,
    /// Nicknames, in joining order.
    pub(super) members: Vec<String>,
    /// Members whose node is gone, removed by this script.
    pub(super) gone: Vec<String>,
    /// Whether the script changed the list.
    pub(super) changed: bool,
}

/// One of this node's members of a room, for `sync`.
pub(super) struct Held<'a> {
    pub(super) fold: &'a str,
    pub(super) nick: &'a str,
    pub(super) conn: u64,
    pub(super) key: Option<&'a str>,
}

impl RedisLink {
    /// Connection `conn` of `node` joins `room` as `nick` (folded: `fold`), unless the nickname is
    /// someone else's (`taken`). `None` if Redis could not be reached.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn join_room(
        &self,
        link: &mut Link,
        node: &str,
        room: &str,
        fold: &str,
        nick: &str,
        conn: u64,
        key: Option<&str>,
    ) -> Option<Listing> {
        let mut cmd = script(node, room, "join");
        cmd.arg(fold).arg(nick).arg(conn.to_string()).arg(key.unwrap_or(""));
        self.presence(link, &cmd, "joining a room").await
    }

    /// Connection `conn` of `node` leaves `room`, if it still holds `fold` there.
    pub(super) async fn leave_room(
        &self,
        link: &mut Link,
        node: &str,
        room: &str,
        fold: &str,
        conn: u64,
    ) -> Option<Listing> {
        let mut cmd = script(node, room, "leave");
        cmd.arg(fold).arg(conn.to_string());
        self.presence(link, &cmd, "leaving a room").await
    }

    /// Renews `node`'s liveness and brings its entries in `room` in line with `held`; `touch`
    /// gives the list a new version even if nothing changed (after this node made lists from
    /// memory).
    pub(super) async fn sync_room(
        &self,
        link: &mut Link,
        node: &str,
        room: &str,
        held: &[Held<'_>],
        touch: bool,
    ) -> Option<Listing> {
        let mut cmd = script(node, room, "sync");
        cmd.arg(if touch { "1" } else { "0" });
        for h in held {
            cmd.arg(h.fold).arg(h.nick).arg(h.conn.to_string()).arg(h.key.unwrap_or(""));
        }
        self.presence(link, &cmd, "checking a room's members").await
    }

    async fn presence(&self, link: &mut Link, cmd: &redis::Cmd, doing: &str) -> Option<Listing> {
        let (status, version, members, gone, changed): (String, u64, Vec<String>, Vec<String>, u8) =
            self.query(link, cmd, doing).await?;
        Some(Listing { taken: status == "taken", version, members, gone, changed: changed == 1 })
    }
}

/// `EVAL` of the script for `op` in `room`, with the arguments every operation has.
fn script(node: &str, room: &str, op: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(SCRIPT)
        .arg(2)
        .arg(members_key(room))
        .arg(version_key(room))
        .arg(node_prefix())
        .arg(node)
        .arg(NODE_TTL.as_millis() as u64)
        .arg(ROOM_EXPIRY.as_secs())
        .arg(op);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_in_the_demos_namespace() {
        assert_eq!(members_key("lobby"), "duplex:demos:chat.members.lobby");
        assert_eq!(version_key("lobby"), "duplex:demos:chat.version.lobby");
        assert_eq!(node_prefix(), "duplex:demos:chat.node.");
    }

    #[test]
    fn a_node_renews_its_liveness_well_before_it_expires() {
        assert!(HEARTBEAT * 3 <= NODE_TTL);
    }
}
