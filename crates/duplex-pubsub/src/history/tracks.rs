//! The history topics of one `PubSub` on this node: a [`Track`] per topic with local subscribers,
//! the subscribers joining it, and the store the history lives in.
//!
//! - **Publishing.** With the memory backend a publication is stored and delivered under the
//!   topic's lock, so offsets and deliveries keep one order. With Redis it is only stored (one
//!   script); every node, this one included, delivers it when it comes back through its link.
//! - **Delivering.** Everything a topic's track says to deliver goes to the local subscribers in
//!   offset order, as one frame shared by all; a subscriber still catching up is left out.
//! - **Joining.** A subscriber without a position joins at the track's position: its subscribe
//!   reply carries that position and it gets everything after. One with a position (`since`) is
//!   left out of live deliveries while it catches up from the stream — read, checked (same epoch,
//!   not too many, nothing trimmed), queued for it in order — until it reaches the track's
//!   position; then, under the topic's lock, its reply is queued and it goes live, skipping what it
//!   already has. Nothing is buffered per subscriber: the stream holds what live deliveries would.
//!
//! Locks, always in this order: the map of topics, a topic's state, a subscriber's filters, the
//! subscription table.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use duplex::{Message, PreparedFrame};
use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::memory::MemoryBackend;
use super::policy::Policies;
use super::store::{Appended, Lifetimes, Page, Read, Store, StoreError, StoreFuture};
use super::track::{Out, Track};
use super::{
    HistoryPage, HistoryQuery, Kind, NotRecovered, Position, Publication, Recovery, ReplyFn, SubscribeOutcome,
};
use crate::error::Error;
use crate::fanout::{Fanout, Gaps};
use crate::json;
use crate::stats::Counters;
use crate::table::Member;

/// How many publications one catch-up read asks for.
const CHUNK: usize = 1000;
/// How long a subscribe waits for the topic's position to be known (Redis reachable).
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How many recent publications of topics without a track are remembered, to deliver once what
/// comes through several subscriptions of the node.
const RECENT: usize = 256;
/// The first wait before a failed read is tried again (doubling to 2 s).
const RETRY_MIN: Duration = Duration::from_millis(100);

/// The history settings of a `PubSub`.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct Config {
    pub(crate) policies: Policies,
    pub(crate) meta_ttl: Duration,
    pub(crate) id_window: Duration,
    pub(crate) recover_max: usize,
    pub(crate) position_check: Duration,
}

/// The history topics of a `PubSub`. See the [module docs](self).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct Tracks {
    fanout: Arc<Fanout>,
    store: Arc<dyn Store>,
    /// The store again when it is the memory backend, for its synchronous path.
    memory: Option<Arc<MemoryBackend>>,
    config: Config,
    slots: Mutex<HashMap<Box<str>, Arc<Slot>>>,
    /// Subscribers left: topics without exact subscribers lose their track at the next use of
    /// the map (not at once: the one who left may hold a topic's lock).
    prune: AtomicBool,
    recent: Mutex<VecDeque<u64>>,
    me: Weak<Tracks>,
}

/// One topic's state.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
}

struct SlotState {
    track: Track<Publication>,
    /// Subscribers the track's deliveries leave out.
    joining: HashMap<u64, Joining>,
    /// Joins waiting for the topic's position.
    waiting: Vec<Waiter>,
    /// When a publication or a read last came: idle topics get a position check.
    active: Instant,
    /// Failed reads in a row.
    failures: u32,
}

impl Default for SlotState {
    fn default() -> Self {
        SlotState {
            track: Track::new(),
            joining: HashMap::new(),
            waiting: Vec::new(),
            active: Instant::now(),
            failures: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Joining {
    /// Catching up from the stream: no live delivery yet.
    CatchingUp,
    /// Live, but it already has everything up to this offset.
    After(u64),
}

enum Waiter {
    Join { member: Arc<Member>, reply: Option<ReplyFn>, done: Option<oneshot::Sender<SubscribeOutcome>> },
    Ready(oneshot::Sender<()>),
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The message a subscriber gets for a publication on a history topic: the `/pubsub` envelope with
/// its position for JSON data, the message as it is otherwise.
pub(crate) fn message(topic: &str, offset: u64, epoch: &str, publication: &Publication) -> Message {
    match (publication.kind(), publication.as_str()) {
        (Kind::Json, Some(data)) => Message::Text(json::history_delivery(topic, offset, epoch, data)),
        (Kind::Text, Some(text)) => Message::Text(text.to_owned()),
        _ => Message::Binary(publication.bytes().clone()),
    }
}

fn frame(topic: &str, offset: u64, epoch: &str, publication: &Publication) -> PreparedFrame {
    PreparedFrame::new(message(topic, offset, epoch, publication))
}

/// Whether a resume from `since` can be proven continuous with what `page` (a read of up to
/// `recover_max + 1` publications after it) holds.
pub(crate) fn recoverable(since: &Position, page: &Page, recover_max: usize) -> Result<(), NotRecovered> {
    if page.epoch != since.epoch {
        return Err(NotRecovered::EpochChanged);
    }
    if since.offset > page.top {
        return Err(NotRecovered::UnknownPosition);
    }
    if page.top - since.offset > recover_max as u64 {
        return Err(NotRecovered::TooMany);
    }
    if page.top > since.offset && page.entries.first().map(|(o, _)| *o) != Some(since.offset + 1) {
        return Err(NotRecovered::TooOld);
    }
    Ok(())
}

fn unavailable(e: StoreError) -> Error {
    match e {
        StoreError::Unavailable(e) => Error::Unavailable(e),
        StoreError::Refused(e) => Error::Backplane(e),
    }
}

impl Tracks {
    pub(crate) fn new(
        fanout: Arc<Fanout>,
        store: Arc<dyn Store>,
        memory: Option<Arc<MemoryBackend>>,
        config: Config,
    ) -> Arc<Tracks> {
        Arc::new_cyclic(|me| Tracks {
            fanout,
            store,
            memory,
            config,
            slots: Mutex::new(HashMap::new()),
            prune: AtomicBool::new(false),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            me: me.clone(),
        })
    }

    /// What `topic` keeps, if it has a history.
    pub(crate) fn lifetimes(&self, topic: &str) -> Option<Lifetimes> {
        let policy = self.config.policies.get(topic)?;
        Some(Lifetimes { policy, meta_ttl: self.config.meta_ttl, id_window: self.config.id_window })
    }

    fn counters(&self) -> &Counters {
        &self.fanout.counters
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<Box<str>, Arc<Slot>>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if self.prune.swap(false, Ordering::AcqRel) {
            let table = self.fanout.read();
            slots.retain(|topic, _| table.has_exact(topic));
        }
        slots
    }

    /// The set of filters with local subscribers changed.
    pub(crate) fn filters_changed(&self) {
        self.prune.store(true, Ordering::Release);
    }

    // -----------------------------------------------------------------------------------------
    // Publishing

    /// Stores a publication on a history topic (with the memory backend, delivers it too). The
    /// store is asked now, in call order; the future gives its position.
    pub(crate) fn publish(
        &self,
        topic: &str,
        lifetimes: Lifetimes,
        publication: Publication,
        id: Option<&str>,
    ) -> StoreFuture<Appended> {
        let Some(memory) = &self.memory else {
            return self.store.append(topic, lifetimes, publication, id);
        };
        let slots = self.slots();
        let result = match slots.get(topic).cloned() {
            Some(slot) => {
                drop(slots);
                let mut st = slot.lock();
                let result = memory.append_now(topic, lifetimes, publication.clone(), id);
                if let Ok(a) = &result {
                    if !a.duplicate {
                        st.active = Instant::now();
                        let outs = st.track.live(&a.position.epoch, a.position.offset, publication);
                        self.perform(topic, &slot, &mut st, outs);
                    }
                }
                result
            }
            None => {
                // No track can be made meanwhile: this holds the map.
                let result = memory.append_now(topic, lifetimes, publication.clone(), id);
                if let Ok(a) = &result {
                    if !a.duplicate {
                        self.deliver_untracked(topic, &a.position, &publication);
                    }
                }
                result
            }
        };
        Box::pin(std::future::ready(result))
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// A publication that came through the link (Redis pub/sub).
    pub(crate) fn live(&self, topic: &str, position: Position, publication: Publication) {
        let slot = self.slots().get(topic).cloned();
        match slot {
            Some(slot) => {
                let mut st = slot.lock();
                st.active = Instant::now();
                let outs = st.track.live(&position.epoch, position.offset, publication);
                self.perform(topic, &slot, &mut st, outs);
            }
            None if self.first_time(topic, &position) => self.deliver_untracked(topic, &position, &publication),
            None => {}
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// Whether this publication of a topic without a track was not seen just before (Redis sends
    /// it once per matching subscription of the node, one after the other).
    fn first_time(&self, topic: &str, position: &Position) -> bool {
        let mut h = DefaultHasher::new();
        (topic, &*position.epoch, position.offset).hash(&mut h);
        let key = h.finish();
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.contains(&key) {
            return false;
        }
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(key);
        true
    }

    /// Delivers a publication of a topic without a track (only pattern subscribers here): live,
    /// as it comes.
    fn deliver_untracked(&self, topic: &str, position: &Position, publication: &Publication) {
        let make = || frame(topic, position.offset, &position.epoch, publication);
        self.fanout.deliver(topic, make, None, |_| false, false, Gaps::Never);
    }

    // -----------------------------------------------------------------------------------------
    // What a track says

    fn perform(&self, topic: &str, slot: &Arc<Slot>, st: &mut SlotState, outs: Vec<Out<Publication>>) {
        let gaps = st.track.gaps;
        for out in outs {
            match out {
                Out::Deliver(offset, publication) => {
                    let epoch = st.track.position().map(|(e, _)| e.clone()).expect("delivering: the epoch is known");
                    let joining = &st.joining;
                    let skip = |id: u64| match joining.get(&id) {
                        Some(Joining::CatchingUp) => true,
                        Some(Joining::After(floor)) => offset <= *floor,
                        None => false,
                    };
                    let make = || frame(topic, offset, &epoch, &publication);
                    self.fanout.deliver(topic, make, None, skip, false, Gaps::Never);
                    if !st.joining.is_empty() {
                        st.joining.retain(|_, j| !matches!(j, Joining::After(f) if *f <= offset));
                    }
                }
                Out::Reset { offset, epoch, reason } => {
                    Counters::add(&self.counters().resets, 1);
                    tracing::info!(%topic, %reason, "history: continuity lost on this node at {offset}:{epoch}; subscribers reset");
                    let text = json::reset(topic, &Position { offset, epoch }, reason.as_str());
                    let joining = &st.joining;
                    let skip = |id: u64| matches!(joining.get(&id), Some(Joining::CatchingUp));
                    let make = || PreparedFrame::new(Message::Text(text));
                    self.fanout.deliver(topic, make, None, skip, true, Gaps::Never);
                    // What subscribers had is of the stream before the reset.
                    st.joining.retain(|_, j| *j == Joining::CatchingUp);
                }
                Out::Read(since) => self.read(topic, slot, st, since),
                Out::Ready => self.ready(st),
            }
        }
        if st.track.gaps > gaps {
            Counters::add(&self.counters().gaps_repaired, st.track.gaps - gaps);
            tracing::info!(%topic, "history: a gap in what this node received; reading it from the stream");
        }
    }

    /// The topic's position is known: the joins that waited for it go live.
    fn ready(&self, st: &mut SlotState) {
        let (epoch, last) = match st.track.position() {
            Some((e, l)) => (e.clone(), l),
            None => return,
        };
        for waiter in std::mem::take(&mut st.waiting) {
            match waiter {
                Waiter::Ready(tx) => {
                    let _ = tx.send(());
                }
                Waiter::Join { member, reply, done } => {
                    let outcome = SubscribeOutcome {
                        position: Some(Position { offset: last, epoch: epoch.clone() }),
                        recovery: Recovery::Live,
                        new: true,
                    };
                    self.send_reply(&member, reply, &outcome);
                    if let Some(done) = done {
                        let _ = done.send(outcome);
                    }
                }
            }
        }
    }

    fn send_reply(&self, member: &Arc<Member>, reply: Option<ReplyFn>, outcome: &SubscribeOutcome) {
        if let Some(message) = reply.and_then(|f| f(outcome)) {
            self.fanout.send_to(member, &PreparedFrame::new(message), Gaps::Never);
        }
    }

    /// Starts a read for a track: at once with the memory backend, in a task with Redis.
    fn read(&self, topic: &str, slot: &Arc<Slot>, st: &mut SlotState, since: Option<u64>) {
        let Some(lifetimes) = self.lifetimes(topic) else { return };
        let read = match since {
            None => Read::position(),
            Some(s) => Read::after(s, CHUNK),
        };
        let answer = self.store.read(topic, lifetimes, read);
        if self.memory.is_some() {
            let result = answer.now_or_never().expect("the memory backend answers at once");
            return self.read_answered(topic, slot, st, result);
        }
        let (me, slot, topic) = (self.me.clone(), slot.clone(), topic.to_owned());
        tokio::spawn(async move {
            let result = answer.await;
            if let Some(me) = me.upgrade() {
                let mut st = slot.lock();
                me.read_answered(&topic, &slot, &mut st, result);
            }
        });
    }

    fn read_answered(&self, topic: &str, slot: &Arc<Slot>, st: &mut SlotState, result: Result<Page, StoreError>) {
        match result {
            Ok(page) => {
                st.failures = 0;
                st.active = Instant::now();
                let outs = st.track.read_done(page);
                self.perform(topic, slot, st, outs);
            }
            Err(e) if self.memory.is_some() => {
                // Only a full memory backend refuses: the next publication tries again.
                st.track.read_failed();
                tracing::warn!(%topic, "history: {e}");
            }
            Err(e) => {
                st.track.read_failed();
                st.failures += 1;
                let delay = (RETRY_MIN * 2u32.saturating_pow(st.failures.min(5) - 1)).min(Duration::from_secs(2));
                tracing::debug!(%topic, "history: a read failed ({e}); again in {delay:?}");
                let (me, slot, topic) = (self.me.clone(), slot.clone(), topic.to_owned());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Some(me) = me.upgrade() {
                        me.kick(&topic, &slot);
                    }
                });
            }
        }
    }

    fn kick(&self, topic: &str, slot: &Arc<Slot>) {
        let mut st = slot.lock();
        let outs = st.track.kick();
        self.perform(topic, slot, &mut st, outs);
    }

    fn each_slot(&self, mut f: impl FnMut(&str, &Arc<Slot>)) {
        let slots: Vec<(Box<str>, Arc<Slot>)> = self.slots().iter().map(|(t, s)| (t.clone(), s.clone())).collect();
        for (topic, slot) in &slots {
            f(topic, slot);
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// The link (re)subscribed: tracks that do not know their position yet read it.
    pub(crate) fn link_subscribed(&self) {
        self.each_slot(|topic, slot| {
            let unknown = slot.lock().track.position().is_none();
            if unknown {
                self.kick(topic, slot);
            }
        });
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// The link came back after an outage: every track reads what it missed.
    pub(crate) fn link_reconnected(&self) {
        let mut n = 0;
        self.each_slot(|topic, slot| {
            n += 1;
            self.kick(topic, slot);
        });
        if n > 0 {
            tracing::info!("history: the link is back; {n} topics read what they missed");
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// Reads the stream of every topic idle for the position check, so a loss is found even when
    /// nothing else is published. Returns how many were checked.
    pub(crate) fn check_idle(&self) -> usize {
        let idle_since = Instant::now().checked_sub(self.config.position_check);
        let mut n = 0;
        self.each_slot(|topic, slot| {
            let idle = {
                let st = slot.lock();
                idle_since.is_some_and(|t| st.active <= t) && !st.track.is_reading()
            };
            if idle {
                n += 1;
                slot.lock().active = Instant::now();
                self.kick(topic, slot);
            }
        });
        n
    }

    // -----------------------------------------------------------------------------------------
    // Reading

    /// Reads a topic's history.
    pub(crate) async fn history(&self, topic: &str, query: HistoryQuery) -> Result<HistoryPage, Error> {
        let lifetimes = self.lifetimes(topic).ok_or_else(|| Error::HistoryOff(topic.to_owned()))?;
        let count = query.limit.min(self.config.recover_max);
        let since = query.since.as_ref().map_or(0, |p| p.offset);
        let read = Read { since: Some(since), count, reverse: query.reverse };
        let page = self.store.read(topic, lifetimes, read).await.map_err(unavailable)?;
        let top = Position { offset: page.top, epoch: page.epoch.clone() };
        if query.since.as_ref().is_some_and(|p| p.epoch != page.epoch) {
            return Ok(HistoryPage { top, items: Vec::new(), not_recovered: Some(NotRecovered::EpochChanged) });
        }
        Ok(HistoryPage { top, items: page.entries, not_recovered: None })
    }
}

mod join;

pub(crate) use join::Joined;

#[cfg(test)]
#[path = "tracks_tests.rs"]
mod tests;
