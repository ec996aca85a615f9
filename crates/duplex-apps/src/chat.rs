//! Chat: rooms, nicknames unique per room, join and leave notices with the room's member list, and
//! the last [`HISTORY`] messages of a room replayed to whoever joins it.
//!
//! A room is the topic `chat.room.<room>`. Requests (JSON text, one per message):
//!
//! ```text
//! → {"type":"join","room":"lobby","nick":"ann","key":"k3f…"}   join (or move to) a room; `key` optional
//! → {"type":"say","text":"hello","id":7}                      a message to the room; `id` optional
//! ← {"type":"joined","room":"lobby","nick":"ann","members":["bob","ann"],"version":1764150000123,"history":[{"nick":…,"text":…,"ts":…}]}
//! ← {"type":"message","room":"lobby","nick":"bob","text":"hi","ts":1764150000000}   (the sender's own too)
//! ← {"type":"sent","id":7}                                    to the sender, once its message is published
//! ← {"type":"join","room":"lobby","nick":"cy","members":[…],"version":…}  /  {"type":"leave",…}
//! ← {"type":"members","room":"lobby","members":[…],"version":…}   the list changed (or was missed)
//! ← {"type":"error","message":"…","request":"join"|"say","id":7}   a request refused (`id` if it had one)
//! ```
//!
//! # Nicknames and member lists
//!
//! A nickname is unique in its room, compared without case; a join under a nickname someone else
//! holds is refused, unless it carries the same `key` as the holder's join (a page reconnecting
//! after a restart takes its nickname back). Every member list carries a `version`: a page keeps
//! the list with the highest version, in whatever order events arrive (see `chat/presence.rs`).
//!
//! # Where rooms live
//!
//! - **Messages and notices** go through the [`PubSub`] the [`Chat`] is given: one node's alone,
//!   or, with a Redis backplane (`duplex_pubsub::Builder::redis`, what `duplex serve --redis`
//!   gives the chat), every node's: a line said on node A reaches the room's members on node B
//!   exactly once, and so do join and leave notices.
//! - **History** (the last [`HISTORY`] lines of a room) is kept in memory by [`Chat::new`], per
//!   node. `Chat::with_redis_history` (feature `redis`) also keeps it in Redis, one list per
//!   room (`duplex:demos:chat.history.<room>`, forgotten a week after its last line; see
//!   `chat/redis_history.rs`): whoever joins on any node gets the lines said on every node, also after
//!   the node they were said on has restarted.
//! - **Members**: with [`Chat::new`], this node's. With `Chat::with_redis_history`, every node's:
//!   kept in Redis per room with the node holding each, each node renewing a liveness key every
//!   few seconds, so that the members of a node that dies without a word are removed within
//!   seconds (`chat/redis_presence.rs`).
//! - **Redis away**: a join waits at most one second, a warning is logged, and the history and
//!   the members come from this node's memory; the members are written back to Redis when it
//!   answers again.
//!
//! With Redis, a line said on another node at the very moment one joins (between its history
//! being read and its node subscribing to the room) may be missing from what it receives live,
//! or, rarely, arrive both in its history and live; on one node the order is exact.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use duplex::WebSocket;
use duplex_pubsub::{PubSub, Subscriber};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::event::{self, RateLimit};

mod presence;
#[cfg(feature = "redis")]
mod redis_history;
#[cfg(feature = "redis")]
mod redis_link;
#[cfg(feature = "redis")]
mod redis_presence;

use presence::{fold, Member, Presence};
#[cfg(feature = "redis")]
pub use redis_history::{key as redis_key, EXPIRY as REDIS_EXPIRY};
#[cfg(feature = "redis")]
pub use redis_presence::{members_key as redis_members_key, HEARTBEAT as REDIS_HEARTBEAT, NODE_TTL as REDIS_NODE_TTL};
#[cfg(feature = "redis")]
use redis_presence::{Held, Listing};

/// The page, embedded from `web/chat.html`.
pub const PAGE: &str = include_str!("../../../web/chat.html");

/// Messages of a room kept and replayed on joining.
pub const HISTORY: usize = 50;
/// The longest nickname, in characters.
pub const MAX_NICK: usize = 24;
/// The longest room name: ASCII letters, digits, `-` and `_`.
pub const MAX_ROOM: usize = 32;
/// The longest message, in characters.
pub const MAX_TEXT: usize = 500;
/// The longest key a join may carry: ASCII letters, digits, `-` and `_`.
pub const MAX_KEY: usize = 64;
/// Rooms whose history is kept; past this, the history of a room nobody is in is forgotten
/// to make room for a new one.
pub const MAX_ROOMS: usize = 256;

/// The topic of a room.
pub fn topic(room: &str) -> String {
    format!("chat.room.{room}")
}

/// The chat rooms: members and history. Cloning gives another handle to the same rooms.
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

struct Inner {
    pubsub: PubSub,
    rooms: Mutex<HashMap<String, Room>>,
    /// Members and history in Redis, besides those in memory.
    #[cfg(feature = "redis")]
    redis: Option<RedisRooms>,
}

#[cfg(feature = "redis")]
struct RedisRooms {
    link: redis_link::RedisLink,
    /// This node's id in the members it writes to Redis.
    node: String,
}

#[derive(Default)]
struct Room {
    history: VecDeque<Line>,
    presence: Presence,
    /// A change of its members could not be written to Redis: the next heartbeat writes it.
    dirty: bool,
}

/// One message in a room's history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Line {
    /// Who said it.
    pub nick: String,
    /// What they said.
    pub text: String,
    /// When the server got it, in milliseconds since the Unix epoch.
    pub ts: u64,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Request {
    Join {
        room: String,
        nick: String,
        #[serde(default)]
        key: Option<String>,
    },
    Say {
        text: String,
        #[serde(default)]
        id: Option<u64>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Event<'a> {
    Joined {
        room: &'a str,
        nick: &'a str,
        members: &'a [String],
        version: u64,
        history: &'a [Line],
    },
    Message {
        room: &'a str,
        nick: &'a str,
        text: &'a str,
        ts: u64,
    },
    Sent {
        id: u64,
    },
    Join {
        room: &'a str,
        nick: &'a str,
        members: &'a [String],
        version: u64,
    },
    Leave {
        room: &'a str,
        nick: &'a str,
        members: &'a [String],
        version: u64,
    },
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Members {
        room: &'a str,
        members: &'a [String],
        version: u64,
    },
    Error {
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

/// Refuses a request of `me`'s: `{"type":"error",…}`, naming the request and its id if known.
fn refuse(me: &Subscriber, request: Option<&'static str>, id: Option<u64>, message: &str) {
    event::send(me.sender(), &Event::Error { message, request, id });
}

/// Where a connection is, or wants to be.
#[derive(Clone)]
struct Seat {
    room: String,
    nick: String,
    /// The nickname as compared.
    fold: String,
}

impl Seat {
    /// A room and a nickname from a join request, checked and tidied; the error says what is wrong.
    fn parse(room: &str, nick: &str) -> Result<Seat, String> {
        let room = room.trim().to_ascii_lowercase();
        if !valid_room(&room) {
            return Err(format!("a room name is 1 to {MAX_ROOM} letters, digits, - or _"));
        }
        let nick = event::clean(nick, MAX_NICK).ok_or_else(|| format!("a nickname is 1 to {MAX_NICK} characters"))?;
        Ok(Seat { room, fold: fold(&nick), nick })
    }

    /// Same room, same nickname (perhaps in another case).
    fn same_place(&self, other: &Seat) -> bool {
        self.room == other.room && self.fold == other.fold
    }
}

/// What Redis said about a change of a room's members.
enum Shared {
    /// No Redis: this node's members are the room's.
    Local,
    /// Redis should have been asked but did not answer: this node's members, for now.
    #[cfg(feature = "redis")]
    Unreachable,
    /// The room's members on every node.
    #[cfg(feature = "redis")]
    Redis(Listing),
}

impl Shared {
    #[cfg(feature = "redis")]
    fn from(listing: Option<Listing>) -> Shared {
        listing.map_or(Shared::Unreachable, Shared::Redis)
    }

    /// Whether Redis answered.
    fn is_redis(&self) -> bool {
        match self {
            #[cfg(feature = "redis")]
            Shared::Redis(_) => true,
            _ => false,
        }
    }

    /// Whether the nickname is someone else's (Redis's word).
    fn taken(&self) -> bool {
        match self {
            #[cfg(feature = "redis")]
            Shared::Redis(l) => l.taken,
            _ => false,
        }
    }
}

impl Room {
    /// The member list to announce after a change, and its version: Redis's, or this node's.
    fn settle(&mut self, shared: &Shared) -> (Vec<String>, u64) {
        match shared {
            #[cfg(feature = "redis")]
            Shared::Redis(l) => {
                self.presence.version = self.presence.version.max(l.version);
                (l.members.clone(), l.version)
            }
            #[cfg(feature = "redis")]
            Shared::Unreachable => {
                self.dirty = true;
                (self.presence.nicks(), self.presence.bump())
            }
            Shared::Local => (self.presence.nicks(), self.presence.bump()),
        }
    }
}

impl Chat {
    /// Rooms whose messages go through `pubsub`, with their history and members in memory.
    pub fn new(pubsub: PubSub) -> Chat {
        Chat {
            inner: Arc::new(Inner {
                pubsub,
                rooms: Mutex::default(),
                #[cfg(feature = "redis")]
                redis: None,
            }),
        }
    }

    /// Rooms whose messages go through `pubsub` (give it the same Redis backplane), with their
    /// history and members also in the Redis server at `url` (`redis://127.0.0.1:6379`), shared
    /// by every node using it. Connects on first use; while Redis is away the history and the
    /// members come from memory. Starts a task on the current tokio runtime that renews this
    /// node's liveness in Redis (ended when the last handle is dropped). The error says what is
    /// wrong with the URL, or that there is no runtime.
    #[cfg(feature = "redis")]
    pub fn with_redis_history(pubsub: PubSub, url: &str) -> Result<Chat, String> {
        let link = redis_link::RedisLink::new(url)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err("a chat with Redis must be made inside a tokio runtime".into());
        }
        let node = format!("{:016x}", rand::random::<u64>());
        let inner = Arc::new(Inner { pubsub, rooms: Mutex::default(), redis: Some(RedisRooms { link, node }) });
        tokio::spawn(heartbeat(Arc::downgrade(&inner)));
        Ok(Chat { inner })
    }

    /// The last messages of `room` this node has in memory, oldest first.
    pub fn history(&self, room: &str) -> Vec<Line> {
        self.inner.rooms().get(room).map(|r| r.history.iter().cloned().collect()).unwrap_or_default()
    }

    /// The nicknames in `room` on this node, in joining order.
    pub fn members(&self, room: &str) -> Vec<String> {
        self.inner.rooms().get(room).map(|r| r.presence.nicks()).unwrap_or_default()
    }
}

/// Every [`redis_presence::HEARTBEAT`]: renews this node's liveness in Redis and checks the rooms
/// it has members in, until the chat is dropped.
#[cfg(feature = "redis")]
async fn heartbeat(inner: std::sync::Weak<Inner>) {
    let mut every = tokio::time::interval(redis_presence::HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.sync().await;
    }
}

impl Inner {
    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves `me` into `want`'s room under its nickname, with the room's history and members from
    /// Redis if it is there.
    ///
    /// With Redis, the link to it is held from the members' change until `me` is subscribed, and
    /// [`say`](Self::say) holds it from storing a line until it is published: on this node a
    /// line is either in the history a newcomer gets or delivered to it live, never both or
    /// neither, and member lists are announced in the order Redis made them.
    async fn join(&self, me: &Subscriber, seat: &mut Option<Seat>, want: Seat, key: Option<String>) {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            let (node, id) = (redis.node.as_str(), me.id());
            let mut link = redis.link.lock().await;
            let joined =
                redis.link.join_room(&mut link, node, &want.room, &want.fold, &want.nick, id, key.as_deref()).await;
            let joined = Shared::from(joined);
            let left = match seat.as_ref().filter(|old| !old.same_place(&want)) {
                Some(old) if !joined.taken() => {
                    Shared::from(redis.link.leave_room(&mut link, node, &old.room, &old.fold, id).await)
                }
                _ => Shared::Local,
            };
            let stored = if joined.taken() { None } else { redis.link.recent(&mut link, &want.room).await };
            return self.join_with(me, seat, want, key, stored, joined, left);
        }
        self.join_with(me, seat, want, key, None, Shared::Local, Shared::Local);
    }

    /// Moves `me` into `want`'s room: unless its nickname is someone else's there (Redis's word in
    /// `joined`, or this node's members'), out of its current room first (a leave notice there,
    /// with `left`'s list), then the room's history (`stored`, or this node's) and members for it
    /// alone, its subscription, a join notice for the others. All under the rooms' lock, so that
    /// nothing said on this node meanwhile is missed or doubled.
    #[allow(clippy::too_many_arguments)]
    fn join_with(
        &self,
        me: &Subscriber,
        seat: &mut Option<Seat>,
        want: Seat,
        key: Option<String>,
        stored: Option<Vec<Line>>,
        joined: Shared,
        left: Shared,
    ) {
        let mut rooms = self.rooms();
        self.announce_gone(&want.room, &joined, Some(me));
        // Redis knows every node's members; without its word, this node's are all there is.
        let taken = if joined.is_redis() {
            joined.taken()
        } else {
            rooms.get(&want.room).is_some_and(|r| r.presence.check(&want.fold, me.id(), key.as_deref()).is_err())
        };
        if taken {
            let message = format!("the nickname {} is taken in #{}: choose another", want.nick, want.room);
            return refuse(me, Some("join"), None, &message);
        }
        let staying = seat.as_ref().is_some_and(|old| old.same_place(&want));
        if let Some(old) = seat.take().filter(|_| !staying) {
            self.leave_locked(&mut rooms, me, &old, &left);
        }
        if !rooms.contains_key(&want.room) && rooms.len() >= MAX_ROOMS {
            let empty = rooms.iter().find(|(_, r)| r.presence.members.is_empty() && !r.dirty).map(|(k, _)| k.clone());
            if let Some(empty) = empty {
                rooms.remove(&empty);
            }
        }
        let r = rooms.entry(want.room.clone()).or_default();
        let member =
            Member { id: me.id(), nick: want.nick.clone(), fold: want.fold.clone(), key, sender: me.sender().clone() };
        r.presence.admit(member);
        let (members, version) = r.settle(&joined);
        let history = stored.unwrap_or_else(|| r.history.iter().cloned().collect());
        let (room, nick) = (want.room.as_str(), want.nick.as_str());
        event::send(me.sender(), &Event::Joined { room, nick, members: &members, version, history: &history });
        let topic = topic(room);
        if let Err(e) = me.subscribe(&topic) {
            tracing::warn!("chat: cannot subscribe to {topic}: {e}");
        }
        if !staying {
            let _ = self.pubsub.publish_except(
                &topic,
                event::json(&Event::Join { room, nick, members: &members, version }),
                me,
            );
        }
        *seat = Some(want);
    }

    /// Takes `me` out of `old`'s room: unsubscribed, unlisted, and a leave notice with `left`'s
    /// list (Redis's, or this node's) if it was listed there (not if another connection took its
    /// nickname over).
    fn leave_locked(&self, rooms: &mut HashMap<String, Room>, me: &Subscriber, old: &Seat, left: &Shared) {
        let topic = topic(&old.room);
        me.unsubscribe(&topic);
        self.announce_gone(&old.room, left, None);
        let Some(r) = rooms.get_mut(&old.room) else { return };
        if !r.presence.remove(me.id()) || left.taken() {
            return;
        }
        let (members, version) = r.settle(left);
        let event = Event::Leave { room: &old.room, nick: &old.nick, members: &members, version };
        let _ = self.pubsub.publish(&topic, event::json(&event));
    }

    /// `me` leaves its room for good (its connection ended).
    async fn leave(&self, me: &Subscriber, old: Seat) {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            let mut link = redis.link.lock().await;
            let left = Shared::from(redis.link.leave_room(&mut link, &redis.node, &old.room, &old.fold, me.id()).await);
            let mut rooms = self.rooms();
            self.leave_locked(&mut rooms, me, &old, &left);
            drop(link);
            return;
        }
        let mut rooms = self.rooms();
        self.leave_locked(&mut rooms, me, &old, &Shared::Local);
    }

    /// Leave notices for the members of dead nodes that Redis just removed from `room` (to all
    /// but `except`, who has the new list already).
    fn announce_gone(&self, room: &str, shared: &Shared, except: Option<&Subscriber>) {
        #[cfg(feature = "redis")]
        if let Shared::Redis(l) = shared {
            let topic = topic(room);
            for nick in &l.gone {
                let event = event::json(&Event::Leave { room, nick, members: &l.members, version: l.version });
                let _ = match except {
                    Some(me) => self.pubsub.publish_except(&topic, event, me),
                    None => self.pubsub.publish(&topic, event),
                };
            }
        }
        #[cfg(not(feature = "redis"))]
        let _ = (room, shared, except);
    }

    /// Every heartbeat, for each room this node has members in (or could not write to Redis):
    /// renews its liveness, writes back what Redis is missing, and sends a list that changed
    /// since this node last sent one: to every node if this check changed it, else to this node's
    /// members (another node's notice may not have reached them).
    #[cfg(feature = "redis")]
    async fn sync(&self) {
        let Some(redis) = &self.redis else { return };
        let mut link = redis.link.lock().await;
        type Entry = (String, String, u64, Option<String>);
        let wanted: Vec<(String, Vec<Entry>, bool)> = self
            .rooms()
            .iter()
            .filter(|(_, r)| r.dirty || !r.presence.members.is_empty())
            .map(|(name, r)| {
                let held = r.presence.members.iter().map(|m| (m.fold.clone(), m.nick.clone(), m.id, m.key.clone()));
                (name.clone(), held.collect(), r.dirty)
            })
            .collect();
        for (room, held, dirty) in wanted {
            let held: Vec<Held<'_>> = held
                .iter()
                .map(|(fold, nick, conn, key)| Held { fold, nick, conn: *conn, key: key.as_deref() })
                .collect();
            let Some(listing) = redis.link.sync_room(&mut link, &redis.node, &room, &held, dirty).await else { return };
            let mut rooms = self.rooms();
            let Some(r) = rooms.get_mut(&room) else { continue };
            r.dirty = false;
            if listing.version != r.presence.version {
                r.presence.version = listing.version;
                let event =
                    event::json(&Event::Members { room: &room, members: &listing.members, version: listing.version });
                if listing.changed {
                    let _ = self.pubsub.publish(&topic(&room), event);
                } else {
                    for m in &r.presence.members {
                        let _ = m.sender.send(event.clone());
                    }
                }
            }
            let shared = Shared::Redis(listing);
            self.announce_gone(&room, &shared, None);
        }
    }

    /// Adds a message to the history of the seat's room (in memory, and in Redis if it is
    /// there) and publishes it to the room.
    async fn say(&self, seat: &Seat, text: String) {
        let line = Line { nick: seat.nick.clone(), text, ts: event::now_ms() };
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            let mut link = redis.link.lock().await;
            redis.link.push(&mut link, &seat.room, &line).await;
            return self.say_with(seat, line);
        }
        self.say_with(seat, line);
    }

    fn say_with(&self, seat: &Seat, line: Line) {
        let event = Event::Message { room: &seat.room, nick: &line.nick, text: &line.text, ts: line.ts };
        let text = event::json(&event);
        let mut rooms = self.rooms();
        let r = rooms.entry(seat.room.clone()).or_default();
        if r.history.len() == HISTORY {
            r.history.pop_front();
        }
        r.history.push_back(line);
        let _ = self.pubsub.publish(&topic(&seat.room), text);
    }
}

/// Whether `room` is a valid room name (lowercased by the server).
pub fn valid_room(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= MAX_ROOM
        && room.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A join's key: `None` if absent or empty; an error if it is not 1 to [`MAX_KEY`] letters,
/// digits, `-` or `_`.
fn parse_key(key: Option<String>) -> Result<Option<String>, String> {
    match key.filter(|k| !k.is_empty()) {
        Some(k) if k.len() > MAX_KEY || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
            Err(format!("a key is 1 to {MAX_KEY} letters, digits, - or _"))
        }
        k => Ok(k),
    }
}

/// Why a message cannot be said as it is.
fn bad_text(text: &str) -> String {
    match text.trim().chars().count() {
        0 => "an empty message: type something first".to_owned(),
        n => format!("this message has {n} characters; at most {MAX_TEXT}: shorten it or split it"),
    }
}

/// Serves one connection until it closes: joins, messages, and the leave notice at the end.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, chat: &Chat) -> duplex::Result<()> {
    let chat = &*chat.inner;
    let me = chat.pubsub.attach(ws);
    let mut seat: Option<Seat> = None;
    // 10 messages at once, then 2 a second: enough to talk, not to flood a room.
    let mut limit = RateLimit::new(10, 2.0);
    let result = async {
        while let Some(msg) = ws.recv().await {
            let msg = msg?;
            let Some(text) = msg.as_text() else {
                refuse(&me, None, None, "send JSON text messages");
                continue;
            };
            match serde_json::from_str::<Request>(text) {
                Ok(Request::Join { room, nick, key }) => match (Seat::parse(&room, &nick), parse_key(key)) {
                    (Ok(want), Ok(key)) => chat.join(&me, &mut seat, want, key).await,
                    (Err(e), _) | (_, Err(e)) => refuse(&me, Some("join"), None, &e),
                },
                Ok(Request::Say { text, id }) => {
                    let Some(s) = &seat else {
                        refuse(&me, Some("say"), id, "join a room first");
                        continue;
                    };
                    let Some(text) = event::clean(&text, MAX_TEXT) else {
                        refuse(&me, Some("say"), id, &bad_text(&text));
                        continue;
                    };
                    if !limit.allow() {
                        refuse(&me, Some("say"), id, "slow down: at most 2 messages a second");
                        continue;
                    }
                    chat.say(s, text).await;
                    if let Some(id) = id {
                        event::send(me.sender(), &Event::Sent { id });
                    }
                }
                Err(e) => refuse(&me, None, None, &format!("not a chat request: {e}")),
            }
        }
        Ok(())
    }
    .await;
    if let Some(old) = seat.take() {
        chat.leave(&me, old).await;
    }
    result
}

crate::app_from_handler!(Chat, handle);

#[cfg(test)]
mod tests;
