//! Who is in a room on this node: nicknames unique per room, and a version that orders member
//! lists.
//!
//! - **Unique nicknames.** Two members of a room never share a nickname, compared without case
//!   (`Sam` and `sam` are one nickname): a shared `?room=…&nick=…` link must not let someone
//!   speak as you. A join may take a nickname over only from the same connection, or with the
//!   same `key` (a random string the page keeps for the tab, so that a page reconnecting after a
//!   restart gets its nickname back while its old connection is not yet known to be gone).
//! - **Versions.** Every change of a room's members gets a version: milliseconds since the Unix
//!   epoch, and at least one more than the last. Each event with a member list carries it, and a
//!   page keeps the list with the highest version, whatever order events arrive in (notices from
//!   two nodes may cross). With Redis the versions come from Redis (`redis_presence.rs`), made the
//!   same way, so that the lists a node makes from memory while Redis is away and those from Redis
//!   compare sensibly.

use duplex::Sender;

use crate::event;

/// One connection in a room.
pub(super) struct Member {
    /// Its subscriber id.
    pub(super) id: u64,
    pub(super) nick: String,
    /// The nickname as compared ([`fold`]).
    pub(super) fold: String,
    /// What lets a later connection take the nickname over.
    pub(super) key: Option<String>,
    /// Where the room's member lists go when only this node's members need them.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) sender: Sender,
}

/// The nickname as two are compared: lowercase.
pub(super) fn fold(nick: &str) -> String {
    nick.to_lowercase()
}

/// A join was refused: the nickname is someone else's in the room.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Taken;

/// A room's members on this node, in joining order, and the version of its member list.
#[derive(Default)]
pub(super) struct Presence {
    pub(super) members: Vec<Member>,
    /// The version of the last member list this node sent for the room.
    pub(super) version: u64,
}

impl Presence {
    /// The nicknames, in joining order.
    pub(super) fn nicks(&self) -> Vec<String> {
        self.members.iter().map(|m| m.nick.clone()).collect()
    }

    /// Whether connection `id` holding `key` may take `fold` here: nobody else has it, or who has
    /// it holds the same key.
    pub(super) fn check(&self, fold: &str, id: u64, key: Option<&str>) -> Result<(), Taken> {
        match self.members.iter().find(|m| m.fold == fold && m.id != id) {
            Some(holder) if key.is_none() || holder.key.as_deref() != key => Err(Taken),
            _ => Ok(()),
        }
    }

    /// Adds `member` (in place of its own earlier entry, or of whoever held its nickname: the
    /// caller checked it may). The connection that held the nickname is returned; it stays
    /// subscribed to the room (the same person's stale tab) but is no longer listed.
    pub(super) fn admit(&mut self, member: Member) -> Option<Member> {
        let evicted = self
            .members
            .iter()
            .position(|m| m.fold == member.fold && m.id != member.id)
            .map(|i| self.members.remove(i));
        match self.members.iter_mut().find(|m| m.id == member.id) {
            Some(me) => *me = member,
            None => self.members.push(member),
        }
        evicted
    }

    /// Removes connection `id`; whether it was listed.
    pub(super) fn remove(&mut self, id: u64) -> bool {
        let before = self.members.len();
        self.members.retain(|m| m.id != id);
        self.members.len() != before
    }

    /// A new version for a change made here: now, or one more than the last.
    pub(super) fn bump(&mut self) -> u64 {
        self.version = event::now_ms().max(self.version + 1);
        self.version
    }
}

#[cfg(test)]
mod tests {
    use duplex::{Config, Role, WebSocket};

    use super::*;

    fn member(id: u64, nick: &str, key: Option<&str>) -> Member {
        let (a, _b) = tokio::io::duplex(64);
        let mut ws = WebSocket::from_upgraded(a, Role::Server, Config::default(), &[]);
        Member { id, nick: nick.into(), fold: fold(nick), key: key.map(str::to_owned), sender: ws.sender() }
    }

    #[tokio::test]
    async fn nicknames_are_unique_without_case_unless_the_key_matches() {
        let mut p = Presence::default();
        assert_eq!(p.check("sam", 1, Some("k1")), Ok(()));
        assert!(p.admit(member(1, "Sam", Some("k1"))).is_none());
        assert_eq!(p.check(&fold("SAM"), 2, None), Err(Taken), "another connection, no key");
        assert_eq!(p.check("sam", 2, Some("other")), Err(Taken), "another connection, another key");
        assert_eq!(p.check("sam", 1, None), Ok(()), "the holder itself");
        assert_eq!(p.check("sam", 3, Some("k1")), Ok(()), "the same key: a reconnected page");
        assert!(p.admit(member(2, "ann", None)).is_none());
        let evicted = p.admit(member(3, "sam", Some("k1"))).expect("the old connection is no longer listed");
        assert_eq!(evicted.id, 1);
        assert_eq!(p.nicks(), ["ann", "sam"]);
        // Renaming in place keeps the place.
        p.admit(member(2, "anne", None));
        assert_eq!(p.nicks(), ["anne", "sam"]);
        assert!(p.remove(3) && !p.remove(3));
        assert_eq!(p.nicks(), ["anne"]);
    }

    #[test]
    fn versions_grow_and_follow_the_clock() {
        let mut p = Presence::default();
        let a = p.bump();
        let b = p.bump();
        assert!(b > a && a >= event::now_ms() - 60_000);
        p.version = u64::MAX / 2;
        assert_eq!(p.bump(), u64::MAX / 2 + 1, "never back in time");
    }
}
