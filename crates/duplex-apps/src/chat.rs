//! Chat: rooms, nicknames, join and leave notices, and the last [`HISTORY`] messages of a room
//! replayed to whoever joins it.
//!
//! A room is the topic `chat.room.<room>`. Requests (JSON text, one per message):
//!
//! ```text
//! → {"type":"join","room":"lobby","nick":"ann"}   join (or move to) a room, under a nickname
//! → {"type":"say","text":"hello"}                 a message to the room
//! ← {"type":"joined","room":"lobby","nick":"ann","members":["ann","bob"],"history":[{"nick":…,"text":…,"ts":…}]}
//! ← {"type":"message","room":"lobby","nick":"bob","text":"hi","ts":1700000000000}   (the sender's own too)
//! ← {"type":"join","room":"lobby","nick":"cy","members":[…]}  /  {"type":"leave",…}
//! ← {"type":"error","message":"…"}
//! ```
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
//!   the node they were said on has restarted. If Redis cannot be reached, a join waits at most
//!   one second, a warning is logged, and the history comes from this node's memory.
//! - **Members** (the `members` of `joined`, `join` and `leave`) are **per node**: the members
//!   connected to the node that sends the event. A `join` or `leave` notice from another node
//!   carries that node's list.
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

use crate::util::{self, RateLimit};

#[cfg(feature = "redis")]
mod redis_history;
#[cfg(feature = "redis")]
pub use redis_history::{key as redis_key, EXPIRY as REDIS_EXPIRY};

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
    pubsub: PubSub,
    rooms: Arc<Mutex<HashMap<String, Room>>>,
    /// The history in Redis, besides the one in memory.
    #[cfg(feature = "redis")]
    redis: Option<Arc<redis_history::RedisHistory>>,
}

#[derive(Default)]
struct Room {
    history: VecDeque<Line>,
    /// (subscriber id, nickname), in joining order.
    members: Vec<(u64, String)>,
}

impl Room {
    fn nicks(&self) -> Vec<String> {
        self.members.iter().map(|(_, n)| n.clone()).collect()
    }
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
    Join { room: String, nick: String },
    Say { text: String },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Event<'a> {
    Joined { room: &'a str, nick: &'a str, members: Vec<String>, history: &'a [Line] },
    Message { room: &'a str, nick: &'a str, text: &'a str, ts: u64 },
    Join { room: &'a str, nick: &'a str, members: Vec<String> },
    Leave { room: &'a str, nick: &'a str, members: Vec<String> },
}

/// Where a connection is.
struct Seat {
    room: String,
    nick: String,
}

impl Chat {
    /// Rooms whose messages go through `pubsub`, with their history in memory.
    pub fn new(pubsub: PubSub) -> Chat {
        Chat {
            pubsub,
            rooms: Arc::default(),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    /// Rooms whose messages go through `pubsub` (give it the same Redis backplane), with their
    /// history also in the Redis server at `url` (`redis://127.0.0.1:6379`), shared by every node
    /// using it. Connects on first use; while Redis is away the history comes from memory. The
    /// error says what is wrong with the URL.
    #[cfg(feature = "redis")]
    pub fn with_redis_history(pubsub: PubSub, url: &str) -> Result<Chat, String> {
        let redis = redis_history::RedisHistory::new(url)?;
        Ok(Chat { redis: Some(Arc::new(redis)), ..Chat::new(pubsub) })
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last messages of `room` this node has in memory, oldest first.
    pub fn history(&self, room: &str) -> Vec<Line> {
        self.rooms().get(room).map(|r| r.history.iter().cloned().collect()).unwrap_or_default()
    }

    /// The nicknames in `room` on this node, in joining order.
    pub fn members(&self, room: &str) -> Vec<String> {
        self.rooms().get(room).map(Room::nicks).unwrap_or_default()
    }

    /// Moves `me` into `room` as `nick`, with the room's history from Redis if it is there.
    ///
    /// With Redis, the link to it is held from reading the history until `me` is subscribed,
    /// and [`say`](Self::say) holds it from storing a line until it is published: on this node a
    /// line is either in the history a newcomer gets or delivered to it live, never both or
    /// neither.
    async fn join(&self, me: &Subscriber, seat: &mut Option<Seat>, room: String, nick: String) {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            let mut link = redis.lock().await;
            let stored = redis.recent(&mut link, &room).await;
            return self.join_with(me, seat, room, nick, stored);
        }
        self.join_with(me, seat, room, nick, None);
    }

    /// Moves `me` into `room` as `nick`: out of its current room first (a leave notice there),
    /// then the room's history (`stored`, or this node's) and members for it alone, its
    /// subscription, a join notice for the others. All under the rooms' lock, so that nothing
    /// said on this node meanwhile is missed or doubled.
    fn join_with(
        &self,
        me: &Subscriber,
        seat: &mut Option<Seat>,
        room: String,
        nick: String,
        stored: Option<Vec<Line>>,
    ) {
        let mut rooms = self.rooms();
        if let Some(old) = seat.take() {
            self.leave_locked(&mut rooms, me, &old);
        }
        if !rooms.contains_key(&room) && rooms.len() >= MAX_ROOMS {
            if let Some(empty) = rooms.iter().find(|(_, r)| r.members.is_empty()).map(|(k, _)| k.clone()) {
                rooms.remove(&empty);
            }
        }
        let r = rooms.entry(room.clone()).or_default();
        r.members.push((me.id(), nick.clone()));
        let members = r.nicks();
        let history = stored.unwrap_or_else(|| r.history.iter().cloned().collect());
        util::send(
            me.sender(),
            &Event::Joined { room: &room, nick: &nick, members: members.clone(), history: &history },
        );
        let topic = topic(&room);
        if let Err(e) = me.subscribe(&topic) {
            tracing::warn!("chat: cannot subscribe to {topic}: {e}");
        }
        let _ = self.pubsub.publish_except(&topic, util::json(&Event::Join { room: &room, nick: &nick, members }), me);
        *seat = Some(Seat { room, nick });
    }

    fn leave_locked(&self, rooms: &mut HashMap<String, Room>, me: &Subscriber, seat: &Seat) {
        let topic = topic(&seat.room);
        me.unsubscribe(&topic);
        let Some(r) = rooms.get_mut(&seat.room) else { return };
        r.members.retain(|(id, _)| *id != me.id());
        let event = Event::Leave { room: &seat.room, nick: &seat.nick, members: r.nicks() };
        let _ = self.pubsub.publish(&topic, util::json(&event));
    }

    /// Adds a message to the history of the seat's room (in memory, and in Redis if it is
    /// there) and publishes it to the room.
    async fn say(&self, seat: &Seat, text: String) {
        let line = Line { nick: seat.nick.clone(), text, ts: util::now_ms() };
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            let mut link = redis.lock().await;
            redis.push(&mut link, &seat.room, &line).await;
            return self.say_with(seat, line);
        }
        self.say_with(seat, line);
    }

    fn say_with(&self, seat: &Seat, line: Line) {
        let event = Event::Message { room: &seat.room, nick: &line.nick, text: &line.text, ts: line.ts };
        let text = util::json(&event);
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

/// Serves one connection until it closes: joins, messages, and the leave notice at the end.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, chat: &Chat) -> duplex::Result<()> {
    let me = chat.pubsub.attach(ws);
    let mut seat: Option<Seat> = None;
    // 10 messages at once, then 2 a second: enough to talk, not to flood a room.
    let mut limit = RateLimit::new(10, 2.0);
    let result = async {
        while let Some(msg) = ws.recv().await {
            let msg = msg?;
            let Some(text) = msg.as_text() else {
                util::send_error(me.sender(), "send JSON text messages");
                continue;
            };
            match serde_json::from_str::<Request>(text) {
                Ok(Request::Join { room, nick }) => {
                    let room = room.trim().to_ascii_lowercase();
                    if !valid_room(&room) {
                        util::send_error(
                            me.sender(),
                            &format!("a room name is 1 to {MAX_ROOM} letters, digits, - or _"),
                        );
                        continue;
                    }
                    let Some(nick) = util::clean(&nick, MAX_NICK) else {
                        util::send_error(me.sender(), &format!("a nickname is 1 to {MAX_NICK} characters"));
                        continue;
                    };
                    chat.join(&me, &mut seat, room, nick).await;
                }
                Ok(Request::Say { text }) => {
                    let Some(s) = &seat else {
                        util::send_error(me.sender(), "join a room first");
                        continue;
                    };
                    let Some(text) = util::clean(&text, MAX_TEXT) else {
                        util::send_error(me.sender(), &format!("a message is 1 to {MAX_TEXT} characters"));
                        continue;
                    };
                    if !limit.allow() {
                        util::send_error(me.sender(), "slow down: at most 2 messages a second");
                        continue;
                    }
                    chat.say(s, text).await;
                }
                Err(e) => util::send_error(me.sender(), &format!("not a chat request: {e}")),
            }
        }
        Ok(())
    }
    .await;
    if let Some(old) = seat.take() {
        let mut rooms = chat.rooms();
        chat.leave_locked(&mut rooms, &me, &old);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use duplex::{Config, Message, Role};
    use serde_json::{json, Value};
    use tokio::io::DuplexStream;

    use super::*;

    type Ws = WebSocket<DuplexStream>;

    /// A client of `chat`: the client end of an in-memory connection that `handle` serves.
    fn client(chat: &Chat) -> Ws {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let chat = chat.clone();
        tokio::spawn(async move {
            let mut ws = WebSocket::from_upgraded(server, Role::Server, Config::default(), &[]);
            let _ = handle(&mut ws, &chat).await;
        });
        WebSocket::from_upgraded(client, Role::Client, Config::default(), &[])
    }

    async fn next(ws: &mut Ws) -> Value {
        match tokio::time::timeout(Duration::from_secs(10), ws.recv()).await {
            Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(&t).expect("JSON"),
            other => panic!("expected an event, got {other:?}"),
        }
    }

    async fn send(ws: &mut Ws, v: Value) {
        ws.send(v.to_string()).await.unwrap();
    }

    fn texts(joined: &Value) -> Vec<&str> {
        joined["history"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap()).collect()
    }

    /// ann says `n` lines in `room` (at most 10: the rate limit), each echoed back to her.
    async fn ann_says(chat: &Chat, room: &str, lines: &[&str]) -> Ws {
        let mut ann = client(chat);
        send(&mut ann, json!({"type":"join","room":room,"nick":"ann"})).await;
        assert_eq!(next(&mut ann).await["type"], "joined");
        for text in lines {
            send(&mut ann, json!({"type":"say","text":text})).await;
            assert_eq!(next(&mut ann).await["text"], *text);
        }
        ann
    }

    #[tokio::test]
    async fn history_keeps_the_last_lines_in_memory() {
        let chat = Chat::new(PubSub::new());
        let lines: Vec<String> = (0..HISTORY + 5).map(|n| format!("m{n}")).collect();
        let mut talkers = Vec::new();
        for chunk in lines.chunks(10) {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            talkers.push(ann_says(&chat, "lobby", &chunk).await);
        }
        let kept: Vec<String> = chat.history("lobby").into_iter().map(|l| l.text).collect();
        assert_eq!(kept, lines[5..], "the last {HISTORY}, oldest first");
        let mut bob = client(&chat);
        send(&mut bob, json!({"type":"join","room":"lobby","nick":"bob"})).await;
        let joined = next(&mut bob).await;
        assert_eq!(texts(&joined), lines[5..]);
        let members = joined["members"].as_array().unwrap();
        assert_eq!((members.len(), &members[talkers.len()]), (talkers.len() + 1, &json!("bob")), "in joining order");
    }

    /// Redis not there: joins and lines go on from memory, without waiting for long.
    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn without_redis_history_comes_from_memory() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
        let chat = Chat::with_redis_history(PubSub::new(), &format!("redis://127.0.0.1:{port}")).unwrap();
        let started = std::time::Instant::now();
        let _ann = ann_says(&chat, "lobby", &["one", "two"]).await;
        let mut bob = client(&chat);
        send(&mut bob, json!({"type":"join","room":"lobby","nick":"bob"})).await;
        let joined = next(&mut bob).await;
        assert_eq!(texts(&joined), ["one", "two"]);
        assert_eq!(joined["members"], json!(["ann", "bob"]));
        assert!(started.elapsed() < redis_history::TIMEOUT * 2, "took {:?}", started.elapsed());
    }
}
