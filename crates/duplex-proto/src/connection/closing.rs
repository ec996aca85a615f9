//! The end of a connection: the close handshake's reactions, the end of the peer's stream, and
//! what the driver must do with the transport, decided by role and state as RFC 6455 §7.1 says.
//!
//! Who does what when is the table on [`Transport`].
//!
//! RFC 6455 §7.1.1: "the underlying TCP connection, in most normal cases, SHOULD be closed first by
//! the server, so that it holds the TIME_WAIT state and not the client". After the close frames,
//! whatever the peer still sends is read and discarded (§1.4), so that unread bytes never turn an
//! orderly close into a reset that would destroy the close frame in flight.

use super::{Connection, Role, State};
use crate::close::{CloseCode, CloseFrame, Side};
use crate::error::{ConnectionError, TimeoutKind};
use crate::frame::Opcode;

/// What the driver must do with the transport, from [`Connection::poll_transport`].
///
/// | situation | server | client |
/// |---|---|---|
/// | both close frames exchanged, or the connection failed | [`Transport::Finish`] once the close frame is written, then wait for the peer's end of stream | wait for the server's end of stream, then [`Transport::Finish`] |
/// | the peer's end of stream before the close handshake | 1006 ([`ConnectionError::AbnormalClosure`]); [`Transport::Finish`] once what is queued is written | the same |
/// | no close frame from the peer within the close timeout | [`TimeoutKind::Close`]; [`Transport::Abort`] | the same |
/// | no end of stream within the close timeout after the handshake | [`Transport::Abort`] | the same (§7.1.1: a client MAY close first when the server does not) |
/// | no sign of life within the pong timeout of a keepalive ping | [`TimeoutKind::Keepalive`] (1006); [`Transport::Abort`] | the same |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// End the sending direction in order, after everything written so far: TCP FIN
    /// (`shutdown(SHUT_WR)`), a TLS close_notify, an HTTP/2 or HTTP/3 stream's END_STREAM / FIN.
    /// Keep reading (and feeding [`Connection::receive`] / [`Connection::receive_eof`]) until
    /// [`Connection::is_terminated`].
    Finish,
    /// Give the transport up now, without an orderly end: close the socket (TCP sends a reset if
    /// unread bytes remain), reset the stream (HTTP/2 RST_STREAM, HTTP/3 RESET_STREAM). Nothing
    /// queued is written any more; the connection is terminated.
    Abort,
}

/// How far the transport's end has gone.
#[derive(Debug, Default)]
pub(super) struct TransportState {
    /// The peer's end of stream arrived.
    eof: bool,
    /// [`Transport::Finish`] was handed to the driver.
    finished: bool,
    /// [`Transport::Abort`] is due (`Some(false)`) or was handed to the driver (`Some(true)`).
    abort: Option<bool>,
}

impl Connection {
    /// Feeds the end of the peer's stream: its TCP FIN (a read of 0 bytes), the END_STREAM of an
    /// HTTP/2 stream. Before the close handshake that is an abnormal closure (1006), reported by
    /// [`next_event`](Connection::next_event) after the events already received; after it, the
    /// normal end.
    pub fn receive_eof(&mut self) {
        if self.transport.eof {
            return;
        }
        self.transport.eof = true;
        // The decoder is done after the peer's close frame or a violation; anything else that
        // ends here (a partial frame, an open message) is lost with the connection.
        let expected = self.peer_close_parsed || self.decoder.is_done() || self.failure().is_some();
        self.stop_input();
        if !expected {
            // RFC 6455 §7.1.5: the connection closed without a close frame: 1006, never sent.
            self.push_failure(ConnectionError::AbnormalClosure);
        }
        // Whatever is still queued for the peer must leave within the close timeout, or never.
        self.timers.start_close_deadline();
    }

    /// What the driver must do with the transport now, if anything: each action is returned once.
    /// Call it after writing what [`outgoing`](Connection::outgoing) holds; [`Transport`] has
    /// the table of who does what when.
    pub fn poll_transport(&mut self) -> Option<Transport> {
        let t = &mut self.transport;
        if t.abort == Some(false) {
            t.abort = Some(true);
            return Some(Transport::Abort);
        }
        if t.finished || t.abort.is_some() || self.state != State::Closed || !self.out.is_empty() {
            return None;
        }
        // RFC 6455 §7.1.1: the server ends the transport first; the client waits for it (and
        // ends its own once the server's end arrived), unless the peer ended it already.
        if self.role == Role::Client && !t.eof {
            return None;
        }
        t.finished = true;
        Some(Transport::Finish)
    }

    /// Whether the connection is over: the transport was finished and the peer's end of stream
    /// received, or it was aborted. The driver may drop the transport.
    pub fn is_terminated(&self) -> bool {
        let t = &self.transport;
        t.abort == Some(true) || (t.finished && t.eof)
    }

    /// Whether the peer's end of stream has been received.
    pub fn eof_received(&self) -> bool {
        self.transport.eof
    }

    /// Asks the driver to abort the transport (at its next [`poll_transport`](Connection::poll_transport)).
    pub(super) fn abort(&mut self) {
        if self.transport.abort.is_none() {
            self.transport.abort = Some(false);
        }
        self.timers.stop();
    }

    /// A failure is taken by the application: queue its close frame if it calls for one.
    pub(super) fn take_failure(&mut self, e: &ConnectionError) {
        if let ConnectionError::Protocol(p) = e {
            if self.close_sent().is_none() {
                // RFC 6455 §7.1.7: fail the connection with a close frame carrying the code.
                let frame = CloseFrame::new(p.code(), p.reason());
                self.queue_close(&frame);
                self.closing_mut().sent = Some(frame);
                self.close_initiator.get_or_insert(Side::Local);
            }
        }
        self.state = State::Closed;
        self.closing_mut().failure = Some(e.clone());
        self.events = Default::default();
        self.timers.start_close_deadline();
    }

    /// The peer's close frame is taken by the application: answer it unless we closed first.
    pub(super) fn take_peer_close(&mut self, frame: &Option<CloseFrame>) {
        if self.close_sent().is_none() {
            // RFC 6455 §5.5.1: answer with a close frame, typically echoing the code.
            let reply = match frame {
                Some(f) => {
                    let reply = CloseFrame::new(f.code, "");
                    self.queue_close(&reply);
                    reply
                }
                None => {
                    self.queue_control(Opcode::Close, &[]);
                    CloseFrame::new(CloseCode::NO_STATUS, "")
                }
            };
            self.closing_mut().sent = Some(reply);
            self.close_initiator = Some(Side::Remote);
        }
        self.closing_mut().received = Some(frame.clone());
        self.state = State::Closed;
        self.timers.start_close_deadline();
    }

    /// The close deadline passed: before the peer's close frame that fails the connection; after
    /// it, the transport's end took too long and is given up.
    pub(super) fn close_deadline_passed(&mut self) {
        if self.is_terminated() {
            return;
        }
        if self.state == State::CloseSent {
            self.stop_input();
            self.push_failure(ConnectionError::Timeout(TimeoutKind::Close));
        }
        self.abort();
    }

    /// No sign of life after a keepalive ping: the peer is gone; no close frame would reach it.
    pub(super) fn keepalive_failed(&mut self) {
        self.stop_input();
        self.push_failure(ConnectionError::Timeout(TimeoutKind::Keepalive));
        self.abort();
    }
}
