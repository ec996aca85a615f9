//! Multiplayer: a small shared world the server owns. Each player is a dot; clients send where
//! their pointer is, the server moves every dot towards its player's pointer at a bounded speed,
//! awards a point to whoever reaches the gem first, and publishes a snapshot of the whole world
//! [`TICK_RATE`] times a second on [`TOPIC`]. Clients only draw what the server says.
//!
//! ```text
//! ← {"type":"welcome","id":3,"name":"Player 3","color":"#e5534b","width":800,"height":500,"rate":30}
//! → {"type":"move","x":412.5,"y":230}            pointer position, in world units
//! → {"type":"name","name":"ann"}                 rename (1 to 16 characters)
//! ← {"type":"snapshot","tick":1234,"players":[{"id":3,"name":"ann","color":"#e5534b","x":398.2,"y":231.0,"score":2}],"gem":{"x":120.0,"y":80.0}}
//! ```
//!
//! With no player connected the world stands still and nothing ticks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use duplex::{CloseFrame, WebSocket};
use duplex_pubsub::{PubSub, Subscriber};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;

use crate::event;

/// The page, embedded from `web/multiplayer.html`.
pub const PAGE: &str = include_str!("../../../web/multiplayer.html");

/// The topic snapshots are published on.
pub const TOPIC: &str = "multiplayer.world";
/// Snapshots (and world steps) a second.
pub const TICK_RATE: u32 = 30;
/// The world's width, in world units.
pub const WIDTH: f64 = 800.0;
/// The world's height.
pub const HEIGHT: f64 = 500.0;
/// The most players at once; more are refused with close 1013 (try again later).
pub const MAX_PLAYERS: usize = 32;
/// How far a dot moves in a second, at most.
pub const SPEED: f64 = 600.0;
/// How close a dot's centre must come to the gem's to take it.
pub const REACH: f64 = 24.0;
/// The longest name, in characters.
pub const MAX_NAME: usize = 16;
/// How far from the gem a new dot appears, and a new gem from every dot, when the field has room:
/// nobody scores by joining, and a gem is never taken the tick it appears.
pub const CLEARANCE: f64 = 80.0;

/// The gem's colour on the page (`web/multiplayer.html` draws it): no player has it, or one
/// close to it.
pub const GEM_COLOR: &str = "#d4a72c";

/// The players' colours, in turn: far from each other and from [`GEM_COLOR`].
const COLORS: [&str; 8] = ["#e5534b", "#2f81f7", "#2da44e", "#3e4b9e", "#a371f7", "#f778ba", "#1b9aaa", "#bf3989"];

/// The world. Cloning gives another handle to the same world.
#[derive(Clone)]
pub struct World {
    pubsub: PubSub,
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// A player joined: the loop may be waiting for one.
    joined: Notify,
}

struct State {
    players: BTreeMap<u64, Player>,
    next_id: u64,
    tick: u64,
    gem: Point,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
struct Point {
    x: f64,
    y: f64,
}

impl Point {
    fn random() -> Point {
        let margin = 40.0;
        Point {
            x: rand::random_range(margin..WIDTH - margin).round(),
            y: rand::random_range(margin..HEIGHT - margin).round(),
        }
    }

    /// A random point at least [`CLEARANCE`] from each of `others`; a plain random point when a
    /// few draws find none (a crowded field).
    fn random_clear_of(others: impl Iterator<Item = Point> + Clone) -> Point {
        let mut point = Point::random();
        for _ in 0..32 {
            if others.clone().all(|o| point.distance(o) >= CLEARANCE) {
                break;
            }
            point = Point::random();
        }
        point
    }

    fn distance(self, other: Point) -> f64 {
        (self.x - other.x).hypot(self.y - other.y)
    }
}

struct Player {
    name: String,
    color: &'static str,
    at: Point,
    target: Point,
    score: u32,
}

/// One player in a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlayerView {
    /// The player's id (the one in its `welcome`).
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its colour, `#rrggbb`.
    pub color: &'static str,
    /// Where its dot is.
    pub x: f64,
    /// Where its dot is.
    pub y: f64,
    /// Gems taken.
    pub score: u32,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Request {
    Move { x: f64, y: f64 },
    Name { name: String },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Event<'a> {
    Welcome { id: u64, name: &'a str, color: &'a str, width: f64, height: f64, rate: u32 },
    Snapshot { tick: u64, players: Vec<PlayerView>, gem: Point },
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

impl World {
    /// Starts the world loop (a task on the current tokio runtime) publishing through `pubsub`.
    pub fn start(pubsub: PubSub) -> World {
        let world = World {
            pubsub,
            inner: Arc::new(Inner {
                state: Mutex::new(State { players: BTreeMap::new(), next_id: 0, tick: 0, gem: Point::random() }),
                joined: Notify::new(),
            }),
        };
        tokio::spawn(world.clone().run());
        world
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The players now, by id.
    pub fn players(&self) -> Vec<PlayerView> {
        Self::views(&self.state())
    }

    fn views(state: &State) -> Vec<PlayerView> {
        state
            .players
            .iter()
            .map(|(&id, p)| PlayerView {
                id,
                name: p.name.clone(),
                color: p.color,
                x: round1(p.at.x),
                y: round1(p.at.y),
                score: p.score,
            })
            .collect()
    }

    /// Adds `me` to the world: its welcome, then its subscription, under the world's lock. `None`
    /// when the world is full.
    fn join(&self, me: &Subscriber) -> Option<u64> {
        let mut state = self.state();
        if state.players.len() >= MAX_PLAYERS {
            return None;
        }
        state.next_id += 1;
        let id = state.next_id;
        let at = Point::random_clear_of(std::iter::once(state.gem));
        let player = Player {
            name: format!("Player {id}"),
            color: COLORS[(id as usize - 1) % COLORS.len()],
            at,
            target: at,
            score: 0,
        };
        let welcome = Event::Welcome {
            id,
            name: &player.name,
            color: player.color,
            width: WIDTH,
            height: HEIGHT,
            rate: TICK_RATE,
        };
        event::send(me.sender(), &welcome);
        state.players.insert(id, player);
        if let Err(e) = me.subscribe(TOPIC) {
            tracing::warn!("multiplayer: cannot subscribe: {e}");
        }
        Some(id)
    }

    /// The loop: a step and a snapshot every 1/[`TICK_RATE`] s while anyone plays.
    async fn run(self) {
        let period = Duration::from_secs(1) / TICK_RATE;
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            if self.state().players.is_empty() {
                self.inner.joined.notified().await;
                interval.reset_immediately();
                continue;
            }
            interval.tick().await;
            self.step(period.as_secs_f64());
        }
    }

    /// Moves every dot `dt` seconds further towards its target, hands out the gem, publishes the
    /// snapshot.
    fn step(&self, dt: f64) {
        let mut state = self.state();
        if state.players.is_empty() {
            return;
        }
        state.tick += 1;
        let max = SPEED * dt;
        let gem = state.gem;
        let mut taken = false;
        for p in state.players.values_mut() {
            let d = p.at.distance(p.target);
            if d <= max {
                p.at = p.target;
            } else {
                p.at.x += (p.target.x - p.at.x) * max / d;
                p.at.y += (p.target.y - p.at.y) * max / d;
            }
            if !taken && p.at.distance(gem) <= REACH {
                p.score += 1;
                taken = true;
            }
        }
        if taken {
            state.gem = Point::random_clear_of(state.players.values().map(|p| p.at));
        }
        let snapshot = Event::Snapshot { tick: state.tick, players: Self::views(&state), gem: state.gem };
        let _ = self.pubsub.publish(TOPIC, event::json(&snapshot));
    }
}

/// Serves one player until it closes: its welcome, its moves, every snapshot; it leaves the world
/// with its connection. Past [`MAX_PLAYERS`], closes with 1013.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, world: &World) -> duplex::Result<()> {
    let me = world.pubsub.attach(ws);
    let joined = world.join(&me);
    let Some(id) = joined else {
        drop(me);
        ws.close(Some(CloseFrame::new(1013, "the world is full, try again later"))).await?;
        while let Some(msg) = ws.recv().await {
            msg?;
        }
        return Ok(());
    };
    world.inner.joined.notify_one();
    let result = async {
        while let Some(msg) = ws.recv().await {
            let msg = msg?;
            let Some(text) = msg.as_text() else { continue };
            match serde_json::from_str::<Request>(text) {
                Ok(Request::Move { x, y }) if x.is_finite() && y.is_finite() => {
                    if let Some(p) = world.state().players.get_mut(&id) {
                        p.target = Point { x: x.clamp(0.0, WIDTH), y: y.clamp(0.0, HEIGHT) };
                    }
                }
                Ok(Request::Name { name }) => match event::clean(&name, MAX_NAME) {
                    Some(name) => {
                        if let Some(p) = world.state().players.get_mut(&id) {
                            p.name = name;
                        }
                    }
                    None => event::send_error(me.sender(), &format!("a name is 1 to {MAX_NAME} characters")),
                },
                Ok(Request::Move { .. }) => {}
                Err(e) => event::send_error(me.sender(), &format!("not a request: {e}")),
            }
        }
        Ok(())
    }
    .await;
    world.state().players.remove(&id);
    result
}

crate::app_from_handler!(World, handle);

#[cfg(test)]
mod tests {
    use super::*;

    /// `#rrggbb` as red, green and blue.
    fn rgb(color: &str) -> [f64; 3] {
        let c = |i: usize| u8::from_str_radix(&color[i..i + 2], 16).unwrap() as f64;
        [c(1), c(3), c(5)]
    }

    fn distance(a: &str, b: &str) -> f64 {
        let (a, b) = (rgb(a), rgb(b));
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
    }

    #[test]
    fn a_clear_point_keeps_its_distance() {
        let dots = [Point { x: 400.0, y: 250.0 }, Point { x: 100.0, y: 100.0 }];
        for _ in 0..1000 {
            let p = Point::random_clear_of(dots.iter().copied());
            assert!(dots.iter().all(|d| p.distance(*d) >= CLEARANCE), "{p:?} is too close");
        }
    }

    #[test]
    fn every_colour_stands_apart_from_the_gem_and_the_others() {
        assert!(super::PAGE.contains(GEM_COLOR), "the page draws the gem in GEM_COLOR");
        for (i, a) in COLORS.iter().enumerate() {
            assert!(distance(a, GEM_COLOR) > 85.0, "{a} looks like the gem");
            for b in &COLORS[i + 1..] {
                assert!(distance(a, b) > 70.0, "{a} and {b} look alike");
            }
        }
    }
}
