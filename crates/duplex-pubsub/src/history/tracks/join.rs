//! Subscribers joining a history topic: at the track's position, or from their own position after
//! catching up from the stream (see the [parent module](super) for the order of locks).

use std::sync::Arc;

use duplex::{Message, PreparedFrame};
use tokio::sync::oneshot;

use super::{message, recoverable, unavailable, Joining, Slot, Tracks, Waiter, CHUNK, READY_TIMEOUT};
use crate::error::Error;
use crate::fanout::Gaps;
use crate::history::store::Read;
use crate::history::{NotRecovered, Position, Recovery, ReplyFn, SubscribeOutcome};
use crate::json;
use crate::stats::Counters;
use crate::table::Member;
use crate::topic::Filter;

impl Tracks {
    /// Subscribes `member` to the exact history topic `topic` (`insert` puts it in the table and
    /// returns whether it is new, and whether the topic is new to the table). Synchronous: what
    /// can be done at once is; [`finish`](Tracks::finish) does the rest (waiting for the topic's
    /// position, replaying what was missed after `since`).
    pub(crate) fn join(
        &self,
        member: &Arc<Member>,
        topic: &str,
        since: Option<Position>,
        reply: Option<ReplyFn>,
        insert: impl FnOnce() -> Result<(bool, bool), Error>,
    ) -> Result<Joined, Error> {
        let mut slots = self.slots();
        let created = !slots.contains_key(topic);
        let slot = slots.entry(topic.into()).or_default().clone();
        let mut st = slot.lock();
        let inserted = insert();
        let (new, table_new) = match inserted {
            Ok(n) => n,
            Err(e) => {
                if created {
                    slots.remove(topic);
                }
                return Err(e);
            }
        };
        drop(slots);
        if table_new {
            self.fanout.filters_changed();
        }
        let position = || st.track.position().map(|(e, l)| Position { offset: l, epoch: e.clone() });
        if !new {
            return Ok(Joined::Done(SubscribeOutcome { position: position(), recovery: Recovery::Live, new: false }));
        }
        if created && self.memory.is_some() {
            let outs = st.track.kick();
            self.perform(topic, &slot, &mut st, outs);
        }
        let ready = st.track.position().map(|(e, l)| Position { offset: l, epoch: e.clone() });
        let Some(since) = since else {
            if let Some(position) = ready {
                let outcome = SubscribeOutcome { position: Some(position), recovery: Recovery::Live, new: true };
                self.send_reply(member, reply, &outcome);
                return Ok(Joined::Done(outcome));
            }
            let (done, outcome) = oneshot::channel();
            st.waiting.push(Waiter::Join { member: member.clone(), reply, done: Some(done) });
            return Ok(Joined::Waiting(outcome));
        };
        st.joining.insert(member.id, Joining::CatchingUp);
        let ready = if ready.is_none() {
            let (tx, rx) = oneshot::channel();
            st.waiting.push(Waiter::Ready(tx));
            Some(rx)
        } else {
            None
        };
        drop(st);
        let guard = JoinGuard { slot: slot.clone(), member: member.id };
        Ok(Joined::CatchUp(CatchUp { topic: topic.to_owned(), slot, guard, since, reply, ready }))
    }

    /// The rest of a [`join`](Tracks::join).
    pub(crate) async fn finish(&self, member: &Arc<Member>, joined: Joined) -> Result<SubscribeOutcome, Error> {
        let unavailable = |topic: &str| Error::Unavailable(format!("the position of {topic:?} could not be read"));
        match joined {
            Joined::Done(outcome) => Ok(outcome),
            Joined::Waiting(outcome) => match tokio::time::timeout(READY_TIMEOUT, outcome).await {
                Ok(Ok(outcome)) => Ok(outcome),
                _ => Err(Error::Unavailable("the topic's position could not be read".into())),
            },
            Joined::CatchUp(c) => {
                if let Some(ready) = c.ready {
                    if !matches!(tokio::time::timeout(READY_TIMEOUT, ready).await, Ok(Ok(()))) {
                        return Err(unavailable(&c.topic));
                    }
                }
                let outcome = self.catch_up(member, &c.topic, &c.slot, c.since, c.reply).await;
                drop(c.guard);
                outcome
            }
        }
    }

    /// Replays what `member` missed after `since`, then makes it live.
    async fn catch_up(
        &self,
        member: &Arc<Member>,
        topic: &str,
        slot: &Arc<Slot>,
        since: Position,
        reply: Option<ReplyFn>,
    ) -> Result<SubscribeOutcome, Error> {
        let lifetimes = self.lifetimes(topic).ok_or_else(|| Error::Backplane(format!("{topic:?} has no history")))?;
        let max = self.config.recover_max;
        let page = self.store.read(topic, lifetimes, Read::after(since.offset, max + 1)).await.map_err(unavailable)?;
        if let Err(reason) = recoverable(&since, &page, max) {
            let mut st = slot.lock();
            let position = st.track.position().map(|(e, l)| Position { offset: l, epoch: e.clone() });
            let outcome = SubscribeOutcome { position, recovery: Recovery::NotRecovered(reason), new: true };
            self.send_reply(member, reply, &outcome);
            st.joining.remove(&member.id);
            self.counters().not_recovered(reason);
            tracing::info!(%topic, %reason, "history: a resume from {since} not recovered");
            return Ok(outcome);
        }
        let epoch = since.epoch.clone();
        let mut last = since.offset;
        let mut replayed = 0usize;
        let mut entries = page.entries;
        let mut hole = false;
        loop {
            for (offset, publication) in entries {
                if offset != last + 1 {
                    hole = true;
                    break;
                }
                let message = message(topic, offset, &epoch, &publication);
                if member.sender.send_wait(message).await.is_err() {
                    return Err(Error::Unavailable("the connection closed while catching up".into()));
                }
                last = offset;
                replayed += 1;
            }
            if hole {
                break;
            }
            // Up to the track's position: what live deliveries left out meanwhile.
            let behind = match slot.lock().track.position() {
                Some((e, l)) if *e == epoch && l > last => Some(l),
                _ => None,
            };
            let Some(until) = behind else { break };
            let count = usize::try_from(until - last).unwrap_or(usize::MAX).min(CHUNK);
            let page = self.store.read(topic, lifetimes, Read::after(last, count)).await.map_err(unavailable)?;
            if page.epoch != epoch {
                hole = true;
                break;
            }
            entries = page.entries;
            if entries.first().map(|(o, _)| *o) != Some(last + 1) {
                hole = true;
                break;
            }
        }
        let mut st = slot.lock();
        let outcome = SubscribeOutcome {
            position: Some(Position { offset: last, epoch: epoch.clone() }),
            recovery: Recovery::Recovered { replayed },
            new: true,
        };
        if member.filters.lock().unwrap_or_else(|p| p.into_inner()).contains(&Filter::Exact(topic.to_owned())) {
            self.send_reply(member, reply, &outcome);
        }
        let current = st.track.position().map(|(e, l)| (e.clone(), l));
        match current {
            Some((e, l)) if e == epoch && !hole && l < last => {
                st.joining.insert(member.id, Joining::After(last));
            }
            Some((e, _)) if e == epoch && !hole => {
                st.joining.remove(&member.id);
            }
            Some((e, l)) => {
                // The stream moved on (trimmed while replaying, or another epoch): this
                // subscriber is told, like every live one would be.
                st.joining.remove(&member.id);
                let reason = if e == epoch { NotRecovered::TooOld } else { NotRecovered::EpochChanged };
                let text = json::reset(topic, &Position { offset: l, epoch: e }, reason.as_str());
                Counters::add(&self.counters().resets, 1);
                self.fanout.send_to(member, &PreparedFrame::new(Message::Text(text)), Gaps::Never);
            }
            None => {
                st.joining.remove(&member.id);
            }
        }
        drop(st);
        Counters::add(&self.counters().resumes_recovered, 1);
        Counters::add(&self.counters().replayed, replayed as u64);
        if replayed > 0 {
            tracing::info!(%topic, "history: a resume from {since} recovered, {replayed} replayed");
        }
        Ok(outcome)
    }
}

/// What [`Tracks::join`] did at once, and what is left for [`Tracks::finish`].
pub(crate) enum Joined {
    /// Live: the outcome.
    Done(SubscribeOutcome),
    /// Live once the topic's position is known (Redis answers).
    Waiting(oneshot::Receiver<SubscribeOutcome>),
    /// Catching up from `since`.
    CatchUp(CatchUp),
}

/// A resume in progress.
pub(crate) struct CatchUp {
    topic: String,
    slot: Arc<Slot>,
    guard: JoinGuard,
    since: Position,
    reply: Option<ReplyFn>,
    ready: Option<oneshot::Receiver<()>>,
}

/// Takes a subscriber out of the catching-up set when its join ends, however it ends (the
/// connection's task may drop the join midway).
struct JoinGuard {
    slot: Arc<Slot>,
    member: u64,
}

impl Drop for JoinGuard {
    fn drop(&mut self) {
        let mut st = self.slot.lock();
        if st.joining.get(&self.member) == Some(&Joining::CatchingUp) {
            st.joining.remove(&self.member);
        }
    }
}
