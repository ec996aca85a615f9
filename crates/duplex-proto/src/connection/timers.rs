//! Time, as the driver tells it: the keepalive ping, its pong timeout, the idle timeout and the
//! close timeout. The core reads no clock. It keeps deadlines as instants it was given, exposes
//! the earliest with [`Connection::poll_timeout`], and acts when told the time with
//! [`Connection::handle_timeout`].
//!
//! Reads and messages only set flags (no clock per message); the next deadline turns them into
//! times. A deadline that starts without a time at hand (the connection opens with keepalive on,
//! a close handshake starts) makes [`Connection::needs_time`] true until the driver calls
//! `handle_timeout` with the current time.

use std::time::Instant;

use super::{Connection, State};
use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;

/// The payload of our keepalive pings.
const KEEPALIVE_PAYLOAD: &[u8] = b"keepalive";

/// The close timeout's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CloseDeadline {
    /// No close handshake yet.
    NotStarted,
    /// Started; waits for the driver to say what time it is.
    Unarmed,
    /// Passes at this instant.
    At(Instant),
    /// Passed, or no longer needed (the connection aborted).
    Off,
}

/// When to release the codecs of a quiet connection (permessage-deflate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Release {
    /// No codec held, or no release configured.
    Off,
    /// A codec is held; waits for the driver to say what time it is.
    Unarmed,
    /// Check at this instant whether a compressed message went by since it was set.
    At(Instant),
}

/// Keepalive and idle timeout, present only when one of them is configured (their durations
/// are read from the shared configuration, not copied here).
#[derive(Debug)]
struct Liveness {
    /// When something was last read (as of the last check).
    last_read: Instant,
    /// When a message was last received (as of the last check).
    last_message: Instant,
    /// The outstanding keepalive ping, if any.
    ping_sent: Option<Instant>,
    /// When to check next.
    next_check: Option<Instant>,
}

/// The deadlines of one connection.
#[derive(Debug)]
pub(super) struct Timers {
    /// Something was read since the last check.
    pub(super) read_seen: bool,
    /// A message (or a piece of one) arrived since the last check.
    pub(super) message_seen: bool,
    /// A deadline started without a time: the driver must call `handle_timeout` now.
    needs_time: bool,
    close: CloseDeadline,
    /// Inline rather than boxed: a connection with keepalive (a server's default) would pay an
    /// allocation's overhead on top of these 64 bytes.
    liveness: Option<Liveness>,
    /// Keepalive and idle timeout are configured but have not been told the time yet.
    liveness_pending: bool,
    /// A compressed message was sent or received since the release deadline was set.
    codec_used: bool,
    release: Release,
}

impl Timers {
    pub(super) fn new(config: &Config) -> Self {
        let wanted = config.ping_interval.is_some() || config.idle_timeout.is_some();
        Timers {
            read_seen: false,
            message_seen: false,
            needs_time: wanted,
            close: CloseDeadline::NotStarted,
            liveness: None,
            liveness_pending: wanted,
            codec_used: false,
            release: Release::Off,
        }
    }

    /// The close handshake started (or the transport is ending): the close timeout runs from now.
    pub(super) fn start_close_deadline(&mut self) {
        if self.close == CloseDeadline::NotStarted {
            self.close = CloseDeadline::Unarmed;
            self.needs_time = true;
        }
    }

    /// Every deadline is over (the connection aborted).
    pub(super) fn stop(&mut self) {
        self.close = CloseDeadline::Off;
        self.liveness = None;
        self.liveness_pending = false;
        self.needs_time = false;
        self.release = Release::Off;
    }
}

impl Connection {
    /// The earliest instant at which [`handle_timeout`](Connection::handle_timeout) must be called,
    /// if any deadline is running: the next keepalive or idle check, the close timeout, or the
    /// check for quiet permessage-deflate codecs
    /// ([`DeflateConfig::release_after`](crate::DeflateConfig::release_after)). A driver
    /// keeps at most one timer per connection, set to this.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.timers;
        let close = match t.close {
            CloseDeadline::At(at) => Some(at),
            _ => None,
        };
        let check = t.liveness.as_ref().and_then(|l| l.next_check);
        let release = match t.release {
            Release::At(at) => Some(at),
            _ => None,
        };
        [close, check, release].into_iter().flatten().min()
    }

    /// Whether a deadline has just started without a time (the connection opened with keepalive
    /// or an idle timeout, a close handshake began): the driver calls
    /// [`handle_timeout`](Connection::handle_timeout) with the current time before it sleeps.
    /// Cheap, so a driver can ask on every wake-up and read the clock only when it is true.
    pub fn needs_time(&self) -> bool {
        self.timers.needs_time
    }

    /// When the outstanding keepalive ping was sent, if one is waiting for its answer: a driver
    /// that sees a pong arrive can tell the round-trip time from it (the core forgets the ping at
    /// its next deadline).
    pub fn keepalive_ping_sent(&self) -> Option<Instant> {
        self.timers.liveness.as_ref().and_then(|l| l.ping_sent)
    }

    /// Tells the connection the time: deadlines that just started are set from it, and those that
    /// passed take effect — a keepalive ping is queued, the connection fails
    /// ([`TimeoutKind::Keepalive`](crate::TimeoutKind::Keepalive),
    /// [`TimeoutKind::Close`](crate::TimeoutKind::Close)) or starts closing (1001 after
    /// [`Config::idle_timeout`](crate::Config::idle_timeout)). Calling it early, or more often
    /// than needed, is harmless.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use duplex_proto::{Config, Connection, Role, Transport};
    /// let config = Config::default().keepalive(Some(Duration::from_secs(30)), Duration::from_secs(10));
    /// let mut conn = Connection::new(Role::Server, config);
    /// let t0 = Instant::now();
    /// assert!(conn.needs_time());
    /// conn.handle_timeout(t0);
    /// assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    /// conn.handle_timeout(t0 + Duration::from_secs(30)); // silence: a ping is queued
    /// assert!(conn.buffered_amount() > 0);
    /// conn.handle_timeout(t0 + Duration::from_secs(40)); // and not answered
    /// assert!(conn.next_event().is_err());
    /// assert_eq!(conn.poll_transport(), Some(Transport::Abort));
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        self.timers.needs_time = false;
        if std::mem::take(&mut self.timers.liveness_pending) {
            let c = &self.config;
            // Reads and messages before the first check count from now.
            self.timers.read_seen = false;
            self.timers.message_seen = false;
            let next_check = [c.ping_interval, c.idle_timeout].into_iter().flatten().min().map(|d| now + d);
            self.timers.liveness = Some(Liveness { last_read: now, last_message: now, ping_sent: None, next_check });
        } else {
            self.check_liveness(now);
        }
        match self.timers.close {
            CloseDeadline::Unarmed => self.timers.close = CloseDeadline::At(now + self.config.close_timeout),
            CloseDeadline::At(at) if now >= at => {
                self.timers.close = CloseDeadline::Off;
                self.close_deadline_passed();
            }
            _ => {}
        }
        self.check_codec_release(now);
    }

    /// A compressed message was sent or received in full: the codecs are in use. Starts the
    /// release deadline if none is running (one request for the time per quiet period, not per
    /// message).
    pub(super) fn codec_used(&mut self) {
        self.timers.codec_used = true;
        if self.timers.release == Release::Off
            && self.state == State::Open
            && self.config.deflate.release_after.is_some()
            && self.deflate.as_ref().is_some_and(|d| d.holds_codec())
        {
            self.timers.release = Release::Unarmed;
            self.timers.needs_time = true;
        }
    }

    /// permessage-deflate's codecs, when their release deadline is due: released if no
    /// compressed message went by since it was set and none is half done, else checked again a
    /// period later.
    fn check_codec_release(&mut self, now: Instant) {
        let Some(quiet) = self.config.deflate.release_after else { return };
        match self.timers.release {
            Release::Off => {}
            Release::Unarmed => {
                self.timers.codec_used = false;
                self.timers.release = Release::At(now + quiet);
            }
            Release::At(at) if now >= at => {
                let inflating = self.message.as_ref().is_some_and(|m| m.compressed);
                let used = std::mem::take(&mut self.timers.codec_used);
                let Some(d) = self.deflate.as_mut() else { return };
                if !used {
                    if !self.sending_fragmented {
                        d.compressor.release();
                    }
                    if !inflating {
                        d.decompressor.release();
                    }
                }
                self.timers.release = if d.holds_codec() { Release::At(now + quiet) } else { Release::Off };
            }
            Release::At(_) => {}
        }
    }

    /// Keepalive and idle timeout, when their check is due.
    fn check_liveness(&mut self, now: Instant) {
        let Some(l) = self.timers.liveness.as_mut() else { return };
        let c = &self.config;
        if l.next_check.is_some_and(|t| now < t) {
            return;
        }
        if std::mem::take(&mut self.timers.read_seen) {
            // The read happened since the last check. After a ping it came after the ping (and
            // the next ping is due an interval after it); otherwise count it as now, so a busy
            // connection is never pinged.
            l.last_read = l.ping_sent.take().unwrap_or(now);
        }
        if std::mem::take(&mut self.timers.message_seen) {
            l.last_message = now;
        }
        if self.state != State::Open {
            // The close handshake has started: the close timeout governs from here.
            self.timers.liveness = None;
            return;
        }
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        let mut ping = false;
        if let Some(sent) = l.ping_sent {
            if now >= sent + c.pong_timeout {
                self.keepalive_failed();
                return;
            }
            at(sent + c.pong_timeout);
        } else if let Some(interval) = c.ping_interval {
            if now >= l.last_read + interval {
                ping = true;
                l.ping_sent = Some(now);
                at(now + c.pong_timeout);
            } else {
                at(l.last_read + interval);
            }
        }
        let mut idle = false;
        if let Some(limit) = c.idle_timeout {
            if now >= l.last_message + limit {
                idle = true;
            } else {
                at(l.last_message + limit);
            }
        }
        l.next_check = next;
        if ping {
            let _ = self.send_ping(KEEPALIVE_PAYLOAD);
        }
        if idle {
            // RFC 6455 §7.4.1: 1001, the endpoint is going away.
            let _ = self.close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "idle timeout")));
            self.timers.liveness = None;
            // The close deadline starts now: no need to ask the driver for the time again.
            if self.timers.close == CloseDeadline::Unarmed {
                self.timers.close = CloseDeadline::At(now + self.config.close_timeout);
                self.timers.needs_time = false;
            }
        }
    }
}
