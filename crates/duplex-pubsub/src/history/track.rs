//! Node-level continuity of one history topic: what this node has delivered (`epoch`, `last`),
//! and the rule that it delivers publications in offset order, each once, with no hole — or says
//! `reset`.
//!
//! A state machine without I/O or clock, driven by the node ([`super::tracks`]): live
//! publications from the link ([`Track::live`]), the answers of the reads it asks for
//! ([`Track::read_done`], [`Track::read_failed`]) and [`Track::kick`] (the link came back, or the
//! topic was idle for the position check). It answers with [`Out`]s: deliver, reset, read.
//!
//! - A live publication at `last + 1` is delivered; at or below `last` it is a duplicate (Redis
//!   sends a message once per matching subscription of the node) and dropped.
//! - One further ahead means the node missed some (a link that dropped messages, a reconnect): it
//!   is kept in a bounded buffer and the stream is read from `last`; the read's publications and
//!   the buffer are merged by offset and delivered once the hole is filled.
//! - If the stream no longer holds what is missing, local subscribers get a `reset` (`too_old`)
//!   and delivery goes on live after it; a read that shows another epoch gives a `reset`
//!   (`epoch_changed`), one whose top is below `last` (the stream lost its tail) a `reset`
//!   (`unknown_position`). A publication of another epoch is never dropped by its offset: it
//!   makes the node read the stream, which tells the new epoch.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::store::Page;
use super::NotRecovered;

/// The most live publications kept while a hole is filled; beyond, they are read from the stream
/// later (the stream has them).
pub(crate) const MAX_BUFFERED: usize = 4096;

/// What the node must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Out<T> {
    /// Deliver this publication to the local subscribers.
    Deliver(u64, T),
    /// Tell the local subscribers that continuity is lost: delivery goes on live after `offset`
    /// of `epoch`.
    Reset { offset: u64, epoch: Arc<str>, reason: NotRecovered },
    /// Read the stream: publications after `since`, or with `None` the position only.
    Read(Option<u64>),
    /// The epoch is known (the first read answered): subscribers may join.
    Ready,
}

/// One topic's delivery state on this node. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Track<T> {
    epoch: Option<Arc<str>>,
    last: u64,
    reading: bool,
    /// Live publications waiting for a hole to be filled, by offset.
    buffer: BTreeMap<u64, (Arc<str>, T)>,
    /// Something was left out of a full buffer, or came in another epoch: read again after.
    behind: bool,
    /// Publications dropped as already delivered.
    pub(crate) duplicates: u64,
    /// Holes found (and read for).
    pub(crate) gaps: u64,
}

impl<T: Clone> Default for Track<T> {
    fn default() -> Self {
        Track::new()
    }
}

impl<T: Clone> Track<T> {
    /// A track that knows nothing yet: [`kick`](Track::kick) it to read the position (once the
    /// node is sure to receive the topic's live publications).
    pub(crate) fn new() -> Self {
        Track { epoch: None, last: 0, reading: false, buffer: BTreeMap::new(), behind: false, duplicates: 0, gaps: 0 }
    }

    /// The epoch and the offset of the last publication delivered; `None` before the first read.
    pub(crate) fn position(&self) -> Option<(&Arc<str>, u64)> {
        self.epoch.as_ref().map(|e| (e, self.last))
    }

    /// Whether a read is in flight.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn is_reading(&self) -> bool {
        self.reading
    }

    fn read(&mut self, out: &mut Vec<Out<T>>) {
        self.reading = true;
        out.push(Out::Read(self.epoch.is_some().then_some(self.last)));
    }

    /// Read the stream now unless a read is in flight: the link came back, the topic was idle for
    /// the position check, or a failed read is retried.
    pub(crate) fn kick(&mut self) -> Vec<Out<T>> {
        let mut out = Vec::new();
        if !self.reading {
            self.read(&mut out);
        }
        out
    }

    /// A publication from the link.
    pub(crate) fn live(&mut self, epoch: &Arc<str>, offset: u64, item: T) -> Vec<Out<T>> {
        let mut out = Vec::new();
        let same_epoch = self.epoch.as_ref() == Some(epoch);
        if same_epoch && offset <= self.last {
            self.duplicates += 1;
            return out;
        }
        if self.reading || self.epoch.is_none() {
            self.keep(epoch, offset, item);
            return out;
        }
        if !same_epoch {
            // Another epoch: the read tells which is current, and the buffer is merged after it.
            self.keep(epoch, offset, item);
            self.read(&mut out);
            return out;
        }
        if offset == self.last + 1 {
            self.last = offset;
            out.push(Out::Deliver(offset, item));
            self.drain(&mut out);
        } else {
            self.gaps += 1;
            self.keep(epoch, offset, item);
            self.read(&mut out);
        }
        out
    }

    fn keep(&mut self, epoch: &Arc<str>, offset: u64, item: T) {
        if self.epoch.is_some() && self.epoch.as_ref() != Some(epoch) {
            // Kept apart from this epoch's offsets: only a read can order the two epochs.
            self.behind = true;
            return;
        }
        if self.buffer.len() >= MAX_BUFFERED && !self.buffer.contains_key(&offset) {
            self.behind = true;
            return;
        }
        self.buffer.entry(offset).or_insert((epoch.clone(), item));
    }

    /// A read answered.
    pub(crate) fn read_done(&mut self, page: Page<T>) -> Vec<Out<T>> {
        let mut out = Vec::new();
        self.reading = false;
        match &self.epoch {
            None => {
                self.epoch = Some(page.epoch.clone());
                self.last = page.top;
                out.push(Out::Ready);
            }
            Some(current) if *current != page.epoch => {
                self.epoch = Some(page.epoch.clone());
                self.last = page.top;
                self.behind = false;
                out.push(Out::Reset {
                    offset: page.top,
                    epoch: page.epoch.clone(),
                    reason: NotRecovered::EpochChanged,
                });
            }
            Some(current) if page.top < self.last => {
                let epoch = current.clone();
                self.last = page.top;
                // What is buffered may be of the lost tail: only the stream can say what follows.
                self.buffer.clear();
                out.push(Out::Reset { offset: page.top, epoch, reason: NotRecovered::UnknownPosition });
            }
            Some(current) => {
                let epoch = current.clone();
                let after = self.last;
                let mut entries = page.entries.into_iter().filter(move |(o, _)| *o > after).peekable();
                if page.top > self.last && entries.peek().is_none_or(|(o, _)| *o != self.last + 1) {
                    // The stream no longer holds `last + 1`: live again from what it still has.
                    let from = entries.peek().map_or(page.top, |(o, _)| o - 1);
                    self.last = from;
                    out.push(Out::Reset { offset: from, epoch: epoch.clone(), reason: NotRecovered::TooOld });
                }
                for (offset, item) in entries {
                    if offset != self.last + 1 {
                        break;
                    }
                    self.last = offset;
                    out.push(Out::Deliver(offset, item));
                }
                if self.last < page.top {
                    // The read was cut at its count: read on.
                    self.read(&mut out);
                    return out;
                }
            }
        }
        self.drain(&mut out);
        out
    }

    /// A read failed: the node retries later with [`kick`](Track::kick).
    pub(crate) fn read_failed(&mut self) {
        self.reading = false;
    }

    /// Delivers what the buffer holds in order; reads again at a hole, or if something was left
    /// out of the buffer.
    fn drain(&mut self, out: &mut Vec<Out<T>>) {
        let Some(epoch) = self.epoch.clone() else { return };
        while let Some(entry) = self.buffer.first_entry() {
            let (offset, (e, _)) = (*entry.key(), entry.get());
            if *e != epoch {
                entry.remove();
                self.behind = true;
                continue;
            }
            if offset <= self.last {
                entry.remove();
                self.duplicates += 1;
                continue;
            }
            if offset != self.last + 1 {
                self.gaps += 1;
                self.read(out);
                return;
            }
            let (_, item) = entry.remove();
            self.last = offset;
            out.push(Out::Deliver(offset, item));
        }
        if std::mem::take(&mut self.behind) {
            self.read(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn e(s: &str) -> Arc<str> {
        s.into()
    }

    fn page(epoch: &str, top: u64, entries: &[u64]) -> Page<u64> {
        Page { epoch: e(epoch), top, entries: entries.iter().map(|o| (*o, *o)).collect() }
    }

    fn delivered(out: &[Out<u64>]) -> Vec<u64> {
        out.iter().filter_map(|o| if let Out::Deliver(n, _) = o { Some(*n) } else { None }).collect()
    }

    #[test]
    fn in_order_and_once() {
        let mut t = Track::new();
        assert_eq!(t.kick(), [Out::Read(None)]);
        assert!(t.live(&e("A"), 5, 5).is_empty(), "kept until the position is known");
        assert_eq!(t.read_done(page("A", 4, &[])), [Out::Ready, Out::Deliver(5, 5)]);
        assert_eq!(t.live(&e("A"), 6, 6), [Out::Deliver(6, 6)]);
        assert!(t.live(&e("A"), 6, 6).is_empty(), "a duplicate");
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.position(), Some((&e("A"), 6)));
    }

    #[test]
    fn a_hole_is_filled_from_the_stream_before_anything_newer() {
        let mut t = Track::new();
        t.kick();
        t.read_done(page("A", 10, &[]));
        assert_eq!(t.live(&e("A"), 13, 13), [Out::Read(Some(10))]);
        assert!(t.live(&e("A"), 14, 14).is_empty(), "held while reading");
        let out = t.read_done(page("A", 14, &[11, 12, 13, 14]));
        assert_eq!(delivered(&out), [11, 12, 13, 14]);
        assert_eq!(t.gaps, 1);
        assert_eq!(t.live(&e("A"), 15, 15), [Out::Deliver(15, 15)]);
    }

    #[test]
    fn what_the_stream_no_longer_holds_is_a_reset() {
        let mut t = Track::new();
        t.kick();
        t.read_done(page("A", 10, &[]));
        t.live(&e("A"), 20, 20);
        let out = t.read_done(page("A", 20, &[15, 16, 17, 18, 19, 20]));
        assert_eq!(out[0], Out::Reset { offset: 14, epoch: e("A"), reason: NotRecovered::TooOld });
        assert_eq!(delivered(&out), [15, 16, 17, 18, 19, 20]);
        // Nothing kept at all.
        t.live(&e("A"), 30, 30);
        let out = t.read_done(page("A", 30, &[]));
        assert_eq!(out, [Out::Reset { offset: 30, epoch: e("A"), reason: NotRecovered::TooOld }]);
    }

    #[test]
    fn another_epoch_is_read_then_reset() {
        let mut t = Track::new();
        t.kick();
        t.read_done(page("A", 500, &[]));
        // Redis restarted without its data: offsets start again at 1.
        assert_eq!(t.live(&e("B"), 1, 1), [Out::Read(Some(500))]);
        let out = t.read_done(page("B", 2, &[]));
        assert_eq!(out, [Out::Reset { offset: 2, epoch: e("B"), reason: NotRecovered::EpochChanged }]);
        assert_eq!(t.live(&e("B"), 3, 3), [Out::Deliver(3, 3)]);
        // A stream that lost its tail.
        let out = t.kick();
        assert_eq!(out, [Out::Read(Some(3))]);
        let out = t.read_done(page("B", 1, &[]));
        assert_eq!(out, [Out::Reset { offset: 1, epoch: e("B"), reason: NotRecovered::UnknownPosition }]);
    }

    #[test]
    fn a_long_hole_is_read_in_pieces() {
        let mut t = Track::new();
        t.kick();
        t.read_done(page("A", 0, &[]));
        t.live(&e("A"), 5, 5);
        let out = t.read_done(page("A", 5, &[1, 2]));
        assert_eq!(delivered(&out), [1, 2]);
        assert_eq!(out.last(), Some(&Out::Read(Some(2))));
        assert_eq!(delivered(&t.read_done(page("A", 5, &[3, 4, 5]))), [3, 4, 5]);
    }

    /// What the link does with publication `n` of the stream.
    #[derive(Clone, Copy, Debug)]
    enum Link {
        Deliver,
        Lose,
        Twice,
    }

    /// A step of the node: the link delivers the next publication, or a pending read is answered
    /// (with the stream as it is then), or the track is kicked (reconnect, position check).
    #[derive(Clone, Copy, Debug)]
    enum Step {
        Link(Link),
        Answer,
        Kick,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => Just(Step::Link(Link::Deliver)),
            1 => Just(Step::Link(Link::Lose)),
            1 => Just(Step::Link(Link::Twice)),
            3 => Just(Step::Answer),
            1 => Just(Step::Kick),
        ]
    }

    proptest! {
        /// Every interleaving of live publications (lost, duplicated) and reads (answered late,
        /// cut at a count): what is delivered is 1..=n in order, each once, with no reset while
        /// the stream keeps everything.
        #[test]
        fn delivers_everything_once_in_order(n in 1u64..60, steps in prop::collection::vec(step(), 1..200), chunk in 1usize..8) {
            let epoch = e("A");
            let mut t: Track<u64> = Track::new();
            let mut reads: Vec<Option<u64>> = Vec::new();
            let mut out = t.kick();
            let mut got = Vec::new();
            let mut start = None; // the first publication after the position the track started from
            let mut next = 1u64; // the next publication the link carries
            let mut top = 0u64; // what the stream holds: 1..=top
            let read = |since: Option<u64>, top: u64| -> Page<u64> {
                let entries = match since {
                    None => vec![],
                    Some(s) => (s + 1..=top).take(chunk).map(|o| (o, o)).collect(),
                };
                Page { epoch: e("A"), top, entries }
            };
            let mut steps = steps.into_iter();
            // Takes in what the track said: deliveries, reads to answer; no reset may come.
            let take = |out: &mut Vec<Out<u64>>, got: &mut Vec<u64>, reads: &mut Vec<Option<u64>>| {
                for o in out.drain(..) {
                    match o {
                        Out::Deliver(n, _) => got.push(n),
                        Out::Read(since) => reads.push(since),
                        Out::Ready => {}
                        Out::Reset { .. } => return Err(TestCaseError::fail(format!("no reset expected: {got:?}"))),
                    }
                }
                Ok(())
            };
            loop {
                take(&mut out, &mut got, &mut reads)?;
                match steps.next() {
                    Some(Step::Link(l)) if next <= n => {
                        top = next; // stored, then published
                        match l {
                            Link::Deliver => out = t.live(&epoch, next, next),
                            Link::Lose => {}
                            Link::Twice => {
                                out = t.live(&epoch, next, next);
                                out.extend(t.live(&epoch, next, next));
                            }
                        }
                        next += 1;
                    }
                    Some(Step::Answer) if !reads.is_empty() => {
                        let since = reads.remove(0);
                        if since.is_none() {
                            start = Some(top + 1);
                        }
                        out = t.read_done(read(since, top));
                    }
                    Some(Step::Kick) => out = t.kick(),
                    Some(_) => {}
                    None => break,
                }
            }
            // Then the rest is published and delivered, reads answered, and a last position check.
            while next <= n {
                top = next;
                out.extend(t.live(&epoch, next, next));
                next += 1;
            }
            for _ in 0..1000 {
                take(&mut out, &mut got, &mut reads)?;
                if reads.is_empty() {
                    if t.position().map(|p| p.1) == Some(top) { break }
                    out = t.kick();
                    continue;
                }
                let since = reads.remove(0);
                if since.is_none() {
                    start = Some(top + 1);
                }
                out = t.read_done(read(since, top));
            }
            let want: Vec<u64> = (start.expect("the position was read")..=top).collect();
            prop_assert_eq!(got, want);
        }
    }
}
