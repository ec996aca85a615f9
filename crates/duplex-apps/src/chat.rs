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
//! Rooms and their history live in memory ([`Chat`]), not in Redis.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use duplex::WebSocket;
use duplex_pubsub::{PubSub, Subscriber};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::util::{self, RateLimit};

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
#[derive(Clone, Debug, Serialize)]
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
    Joined { room: &'a str, nick: &'a str, members: Vec<String>, history: &'a VecDeque<Line> },
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
    /// Rooms whose messages go through `pubsub`.
    pub fn new(pubsub: PubSub) -> Chat {
        Chat { pubsub, rooms: Arc::default() }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last messages of `room`, oldest first.
    pub fn history(&self, room: &str) -> Vec<Line> {
        self.rooms().get(room).map(|r| r.history.iter().cloned().collect()).unwrap_or_default()
    }

    /// The nicknames in `room`, in joining order.
    pub fn members(&self, room: &str) -> Vec<String> {
        self.rooms().get(room).map(Room::nicks).unwrap_or_default()
    }

    /// Moves `me` into `room` as `nick`: out of its current room first (a leave notice there),
    /// then the room's history and members for it alone, its subscription, a join notice for the
    /// others. All under the rooms' lock, so that nothing said meanwhile is missed or doubled.
    fn join(&self, me: &Subscriber, seat: &mut Option<Seat>, room: String, nick: String) {
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
        util::send(
            me.sender(),
            &Event::Joined { room: &room, nick: &nick, members: members.clone(), history: &r.history },
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

    /// Adds a message to the history of the seat's room and publishes it to the room.
    fn say(&self, seat: &Seat, text: String) {
        let line = Line { nick: seat.nick.clone(), text, ts: util::now_ms() };
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
                    chat.join(&me, &mut seat, room, nick);
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
                    chat.say(s, text);
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
