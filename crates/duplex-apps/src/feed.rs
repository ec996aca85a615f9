//! Live feed: a server-side source sampled [`RATE`] times a second and published on [`TOPIC`],
//! drawn by the page as a live chart.
//!
//! The source is a simulated price (a random walk around 100) with the machine's 1-minute load
//! average from `/proc/loadavg` beside it. Nobody watching, nothing ticks: the sampler waits
//! until a viewer comes. Each viewer first gets the backlog (the last [`BACKLOG`] samples) so its
//! chart starts filled, then every new sample.
//!
//! ```text
//! ← {"type":"backlog","rate":4,"ticks":[{"seq":1,"t":1700000000000,"price":100.0,"load":0.42},…]}
//! ← {"type":"tick","seq":2,"t":1700000000250,"price":100.07,"load":0.42}      (4 a second)
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use duplex::WebSocket;
use duplex_pubsub::PubSub;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;

use crate::event;

/// The page, embedded from `web/feed.html`.
pub const PAGE: &str = include_str!("../../../web/feed.html");

/// The topic samples are published on.
pub const TOPIC: &str = "feed.ticks";
/// Samples a second.
pub const RATE: u32 = 4;
/// Samples kept for new viewers: one minute.
pub const BACKLOG: usize = 60 * RATE as usize;

/// One sample.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Tick {
    /// Its number, from 1.
    pub seq: u64,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub t: u64,
    /// The simulated price.
    pub price: f64,
    /// The 1-minute load average of the machine, where `/proc/loadavg` exists.
    pub load: Option<f64>,
}

/// The feed: its backlog and the sampler's wake-up. Cloning gives another handle to the same
/// feed.
#[derive(Clone)]
pub struct Feed {
    pubsub: PubSub,
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// A viewer came: the sampler may be waiting for one.
    viewer: Notify,
}

struct State {
    backlog: VecDeque<Tick>,
    seq: u64,
    price: f64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Event<'a> {
    Backlog { rate: u32, ticks: &'a VecDeque<Tick> },
    Tick(&'a Tick),
}

impl Feed {
    /// Starts the sampler (a task on the current tokio runtime) publishing through `pubsub`.
    pub fn start(pubsub: PubSub) -> Feed {
        let feed = Feed {
            pubsub,
            inner: Arc::new(Inner {
                state: Mutex::new(State { backlog: VecDeque::new(), seq: 0, price: 100.0 }),
                viewer: Notify::new(),
            }),
        };
        tokio::spawn(feed.clone().run());
        feed
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The samples a new viewer would get, oldest first.
    pub fn backlog(&self) -> Vec<Tick> {
        self.state().backlog.iter().copied().collect()
    }

    /// The sampler: a sample every 1/[`RATE`] s while anyone watches.
    async fn run(self) {
        let period = Duration::from_secs(1) / RATE;
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            if self.pubsub.subscriber_count(TOPIC) == 0 {
                self.inner.viewer.notified().await;
                interval.reset_immediately();
                continue;
            }
            interval.tick().await;
            self.sample();
        }
    }

    /// Takes one sample, keeps it, publishes it.
    fn sample(&self) {
        let load = read_load();
        let mut state = self.state();
        state.seq += 1;
        // A random walk with a pull back towards 100, in steps of about 0.1%.
        let noise: f64 = (0..3).map(|_| rand::random_range(-1.0..1.0)).sum::<f64>() / 3.0;
        state.price = (state.price * (1.0 + 0.0025 * noise) + (100.0 - state.price) * 0.002).max(1.0);
        let tick = Tick { seq: state.seq, t: event::now_ms(), price: (state.price * 100.0).round() / 100.0, load };
        if state.backlog.len() == BACKLOG {
            state.backlog.pop_front();
        }
        state.backlog.push_back(tick);
        let _ = self.pubsub.publish(TOPIC, event::json(&Event::Tick(&tick)));
    }
}

/// The 1-minute load average, from `/proc/loadavg` (Linux).
fn read_load() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Serves one viewer until it closes: the backlog, then every sample. What it sends is ignored.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, feed: &Feed) -> duplex::Result<()> {
    let me = feed.pubsub.attach(ws);
    {
        let state = feed.state();
        event::send(me.sender(), &Event::Backlog { rate: RATE, ticks: &state.backlog });
        if let Err(e) = me.subscribe(TOPIC) {
            tracing::warn!("feed: cannot subscribe: {e}");
        }
    }
    feed.inner.viewer.notify_one();
    while let Some(msg) = ws.recv().await {
        msg?;
    }
    Ok(())
}

crate::app_from_handler!(Feed, handle);
