//! Shared driver of the connection fuzz targets: feeds wire bytes to a [`Connection`] the way a
//! transport would (in reads of some size), takes every event after each read, and checks the
//! properties that must hold whatever the peer sends:
//!
//! - no panic (including the library's `debug_assert!`s: cargo fuzz builds with them on);
//! - after `next_event` returned `Err` (or the peer's close), the state is `Closed` and no event
//!   ever follows, whatever is received later;
//! - after the events are taken and the outgoing bytes written, `heap_size()` is at most
//!   `max_message_size` plus a fixed slack (control-frame buffer, deflate codecs);
//! - every message is within `max_message_size`, text is valid UTF-8 (the library builds text
//!   with `from_utf8_unchecked`), control payloads are at most 125 bytes; streaming delivers
//!   `Fragment`s only, with `first`/`last` consistent, non-streaming `Message`s only;
//! - everything the connection writes is well-formed frames (masked iff client);
//! - the events do not depend on how the bytes were split into reads: the same input fed in
//!   one read gives the same events and the same error.
//!
//! Input layout (shared by `connection_server`, `connection_client` and, after its own
//! preamble, `inflate`): see [`Setup::from_bytes`].

use bytes::Buf;
use bytes::Bytes;
use duplex_proto::frame::{FrameHeader, Opcode, MAX_CONTROL_PAYLOAD, RSV1};
use duplex_proto::{
    CloseFrame, Config, Connection, ConnectionError, DeflateConfig, DeflateParams, Event, Message, MessageKind, Role,
    State, Transport, Violation,
};

/// Everything `conn` queued for writing, taken out of its queue.
pub fn drain_outgoing(conn: &mut Connection) -> Vec<u8> {
    let n = conn.outgoing().remaining();
    conn.outgoing().copy_to_bytes(n).to_vec()
}

/// Heap a connection may hold beyond the message limit: the control-frame buffer (125 bytes,
/// at most 250 of capacity while it arrives in pieces) and a little rounding.
pub const SLACK: usize = 256;
/// Extra slack with permessage-deflate: the two codecs (C zlib: 7.1 KiB + 2^w inflater, 6 KiB +
/// 4 · 2^w + 2^(m+9) deflater, so ~300 KiB at w = 15, m = 8; see `DeflateConfig`'s table).
pub const DEFLATE_SLACK: usize = 64 * 1024 + 400 * 1024;

/// How a run is set up, from the first three input bytes.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// This end's role.
    pub role: Role,
    /// `Config::streaming`.
    pub streaming: bool,
    /// `Config::auto_pong`.
    pub auto_pong: bool,
    /// `Config::max_message_size`.
    pub max_message_size: usize,
    /// `Config::max_frame_size`.
    pub max_frame_size: usize,
    /// permessage-deflate negotiated, with these parameters.
    pub deflate: Option<DeflateParams>,
    /// Echo every message back (exercises the send path, compression included).
    pub echo: bool,
    /// Start the close handshake from this end after the first event.
    pub close_first: bool,
    /// Size of each read; 0: everything in one read.
    pub chunk: usize,
}

impl Setup {
    /// Byte 0, flags: bit 0 streaming, bit 1 small `max_message_size` (from byte 1), bit 2
    /// auto-pong off, bit 3 permessage-deflate (default parameters), bit 4 small
    /// `max_frame_size` too, bit 5 echo messages, bit 6 close from this end after the first
    /// event. Byte 1: the small limit, `8 * byte + 1`. Byte 2: the read size (0: one read).
    /// The rest is the wire.
    pub fn from_bytes(role: Role, data: &[u8]) -> Option<(Setup, &[u8])> {
        let [flags, limit, chunk, wire @ ..] = data else { return None };
        let small = 8 * *limit as usize + 1;
        let max_message_size = if flags & 2 != 0 { small } else { Config::default().max_message_size };
        let max_frame_size = if flags & 0x10 != 0 { small } else { Config::default().max_frame_size };
        Some((
            Setup {
                role,
                streaming: flags & 1 != 0,
                auto_pong: flags & 4 == 0,
                max_message_size,
                max_frame_size,
                deflate: (flags & 8 != 0).then(DeflateParams::default),
                echo: flags & 0x20 != 0,
                close_first: flags & 0x40 != 0,
                chunk: *chunk as usize,
            },
            wire,
        ))
    }

    /// The connection this setup describes.
    pub fn connection(&self) -> Connection {
        let config = Config::default()
            .streaming(self.streaming)
            .auto_pong(self.auto_pong)
            .max_message_size(self.max_message_size)
            .max_frame_size(self.max_frame_size)
            // Compress what we echo whatever its size, so the compressor runs too.
            .deflate(DeflateConfig::default().min_size(0));
        Connection::with_deflate(self.role, config, self.deflate)
    }

    fn heap_limit(&self) -> usize {
        let codecs = if self.deflate.is_some() { DEFLATE_SLACK } else { 0 };
        self.max_message_size.saturating_add(SLACK + codecs)
    }
}

/// What the application saw, normalized so that runs with different read sizes compare equal:
/// streamed fragments are joined into whole messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A whole message (or, streaming, the joined fragments of one).
    Message(MessageKind, Vec<u8>),
    /// A ping's payload.
    Ping(Bytes),
    /// A pong's payload.
    Pong(Bytes),
    /// The peer's close frame.
    Close(Option<CloseFrame>),
    /// What failed the connection: a violation, or the end of the input before the close handshake.
    Error(ConnectionError),
}

/// One run of a connection over `wire`, with the checks of the module docs.
pub struct Run {
    setup: Setup,
    conn: Connection,
    /// The normalized events.
    pub seen: Vec<Seen>,
    /// Streaming: the message being joined.
    partial: Option<(MessageKind, Vec<u8>)>,
    /// `next_event` returned `Err` or a close: nothing may follow.
    finished: bool,
    /// This end started the close handshake.
    closed_here: bool,
    /// A compressed data frame from this end still needs its continuation frames (for RSV1 checks).
    out_in_message: bool,
}

impl Run {
    /// A fresh connection for `setup`.
    pub fn new(setup: Setup) -> Run {
        Run {
            conn: setup.connection(),
            setup,
            seen: Vec::new(),
            partial: None,
            finished: false,
            closed_here: false,
            out_in_message: false,
        }
    }

    /// Feeds `wire` in reads of `setup.chunk` bytes (all at once for 0), taking events after each,
    /// then the end of the stream.
    pub fn feed_all(&mut self, wire: &[u8]) {
        let chunk = if self.setup.chunk == 0 { wire.len().max(1) } else { self.setup.chunk };
        for piece in wire.chunks(chunk) {
            self.feed(piece);
        }
        self.end_of_stream();
    }

    /// The peer's end of stream: the connection must end — with 1006 unless the close handshake
    /// or a failure came first — and the transport be finished exactly once.
    pub fn end_of_stream(&mut self) {
        let was_finished = self.finished;
        self.conn.receive_eof();
        self.take_events();
        if !was_finished {
            assert!(
                matches!(self.seen.last(), Some(Seen::Error(ConnectionError::AbnormalClosure))),
                "the end of the stream before the close handshake must be reported as 1006: {:?}",
                self.seen.last()
            );
        }
        self.write_out();
        assert_eq!(self.conn.poll_transport(), Some(Transport::Finish), "the transport is finished after EOF");
        assert_eq!(self.conn.poll_transport(), None, "a transport action is returned once");
        assert!(self.conn.is_terminated(), "finished and EOF: terminated");
    }

    /// One read: receive, take every event, write out what is queued, check the heap.
    pub fn feed(&mut self, piece: &[u8]) {
        self.conn.receive(piece);
        self.take_events();
        self.write_out();
        let heap = self.conn.heap_size();
        assert!(
            heap <= self.setup.heap_limit(),
            "heap_size() = {heap} after events and output were taken, over max_message_size {} + slack",
            self.setup.max_message_size
        );
    }

    fn take_events(&mut self) {
        loop {
            let ev = self.conn.next_event();
            if self.finished {
                assert_eq!(ev, Ok(None), "an event after an error or the peer's close");
                assert_eq!(self.conn.state(), State::Closed);
                assert!(!self.conn.wants_input());
                return;
            }
            match ev {
                Ok(None) => return,
                Err(e) => {
                    assert_eq!(self.conn.state(), State::Closed, "state after Err");
                    assert!(!self.conn.wants_input(), "still reading after Err");
                    assert_eq!(self.conn.failure(), Some(&e));
                    assert!(!self.conn.has_events(), "events queued after Err");
                    self.seen.push(Seen::Error(e));
                    self.finished = true;
                }
                Ok(Some(event)) => {
                    self.check_event(event);
                    if self.setup.close_first && !self.closed_here && !self.finished {
                        self.closed_here = true;
                        if self.conn.state() == State::Open {
                            self.conn.close(Some(CloseFrame::new(1000u16, "fuzz"))).expect("first close");
                            assert!(matches!(self.conn.state(), State::CloseSent | State::Closed));
                        }
                    }
                }
            }
        }
    }

    fn check_event(&mut self, event: Event) {
        let limit = self.setup.max_message_size;
        match event {
            Event::Message(m) => {
                assert!(!self.setup.streaming, "a whole message in streaming mode");
                assert!(m.len() <= limit, "message of {} bytes over the limit {limit}", m.len());
                if let Message::Text(s) = &m {
                    assert!(std::str::from_utf8(s.as_bytes()).is_ok(), "text message is not UTF-8");
                }
                self.seen.push(Seen::Message(m.kind(), m.as_bytes().to_vec()));
                if self.setup.echo {
                    // Err(Closed) once this end sent its close frame: fine.
                    let _ = self.conn.send(m);
                }
            }
            Event::Fragment(f) => {
                assert!(self.setup.streaming, "a fragment without streaming mode");
                assert_eq!(f.first, self.partial.is_none(), "Fragment::first inconsistent");
                let (kind, buf) = self.partial.get_or_insert_with(|| (f.kind, Vec::new()));
                assert_eq!(*kind, f.kind, "fragment kind changed inside a message");
                buf.extend_from_slice(&f.data);
                assert!(buf.len() <= limit, "streamed message of {} bytes over the limit {limit}", buf.len());
                if f.last {
                    let (kind, buf) = self.partial.take().expect("just inserted");
                    if kind == MessageKind::Text {
                        assert!(std::str::from_utf8(&buf).is_ok(), "streamed text message is not UTF-8");
                    }
                    if self.setup.echo {
                        let _ = match kind {
                            MessageKind::Text => self.conn.send_text(std::str::from_utf8(&buf).unwrap()),
                            MessageKind::Binary => self.conn.send_binary(&buf),
                        };
                    }
                    self.seen.push(Seen::Message(kind, buf));
                }
            }
            Event::Ping(p) => {
                assert!(p.len() <= MAX_CONTROL_PAYLOAD);
                self.seen.push(Seen::Ping(p));
            }
            Event::Pong(p) => {
                assert!(p.len() <= MAX_CONTROL_PAYLOAD);
                self.seen.push(Seen::Pong(p));
            }
            Event::Close(c) => {
                assert_eq!(self.conn.state(), State::Closed, "state after the peer's close");
                assert!(!self.conn.wants_input());
                assert!(self.conn.close_info().is_some(), "the peer's close was not answered");
                self.seen.push(Seen::Close(c));
                self.finished = true;
            }
        }
    }

    /// Writes out what is queued and checks that it is well-formed frames.
    fn write_out(&mut self) {
        let out = drain_outgoing(&mut self.conn);
        assert_eq!(self.conn.buffered_amount(), 0);
        let mut at = 0;
        while at < out.len() {
            let (h, n) = match FrameHeader::decode(&out[at..]) {
                Ok(Some(x)) => x,
                other => panic!("bad outgoing frame header at {at}: {other:?} in {:02x?}", &out[at..]),
            };
            assert_eq!(h.mask.is_some(), self.setup.role == Role::Client, "outgoing masking");
            if h.rsv != 0 {
                assert_eq!(h.rsv, RSV1, "outgoing RSV bits");
                assert!(self.setup.deflate.is_some(), "RSV1 without permessage-deflate");
                assert!(matches!(h.opcode, Opcode::Text | Opcode::Binary), "RSV1 on {:?}", h.opcode);
                assert!(!self.out_in_message, "RSV1 on a continuation");
            }
            if h.opcode.is_control() {
                assert!(h.fin && h.payload_len <= MAX_CONTROL_PAYLOAD as u64, "bad outgoing control frame {h:?}");
            } else {
                self.out_in_message = !h.fin;
            }
            at += n;
            let len = usize::try_from(h.payload_len).unwrap();
            assert!(out.len() - at >= len, "outgoing frame cut short");
            at += len;
        }
    }

    /// The normalized events, with a streamed message still in progress at the end.
    pub fn finish(mut self) -> (Vec<Seen>, Option<(MessageKind, Vec<u8>)>) {
        (std::mem::take(&mut self.seen), self.partial.take())
    }
}

/// Runs `wire` in reads as `setup` says and, if that is not one read, again in one read; the
/// normalized events must be the same.
pub fn check_connection(setup: Setup, wire: &[u8]) {
    let mut run = Run::new(setup);
    run.feed_all(wire);
    let (seen, partial) = run.finish();
    if setup.chunk != 0 && setup.chunk < wire.len() {
        let mut whole = Run::new(Setup { chunk: 0, ..setup });
        whole.feed_all(wire);
        let (seen_whole, partial_whole) = whole.finish();
        if setup.deflate.is_some() && (too_far_back(&seen) || too_far_back(&seen_whole)) {
            // A distance beyond the negotiated window: zlib checks a distance against the window
            // it kept *and* what it has output in the same call, so a message inflated in one
            // call may reach further back than the window and come out whole, while the same
            // bytes in smaller reads fail. Such a stream breaks the peer's promise (RFC 7692
            // §7.1.2) and no zlib-style compressor writes one (its distances stay 262 bytes
            // inside its window); either outcome is acceptable, but what came before must agree.
            let before = |s: &[Seen]| s.iter().take_while(|e| !matches!(e, Seen::Error(_))).count();
            let n = before(&seen).min(before(&seen_whole));
            assert_eq!(seen[..n], seen_whole[..n], "events depend on how the input was split into reads");
            return;
        }
        if setup.deflate.is_some() {
            // A compressed message can break two rules at once (a corrupt stream whose output so
            // far is invalid UTF-8, or too large): which is seen first depends on how much was
            // inflated before the check, so only whether it failed must match.
            let failed = |s: &[Seen]| matches!(s.last(), Some(Seen::Error(_)));
            let upto = |s: &[Seen]| s.len() - failed(s) as usize;
            assert_eq!(failed(&seen), failed(&seen_whole), "failure depends on how the input was split into reads");
            assert_eq!(
                seen[..upto(&seen)],
                seen_whole[..upto(&seen_whole)],
                "events depend on how the input was split into reads"
            );
        } else {
            assert_eq!(seen, seen_whole, "events depend on how the input was split into reads");
        }
        // A streamed message cut short by a violation may legitimately have delivered more of
        // its valid prefix when the bytes came in smaller reads; otherwise the same must be out.
        if !matches!(seen.last(), Some(Seen::Error(e)) if e.violation().is_some()) {
            assert_eq!(partial, partial_whole, "streamed data depends on how the input was split into reads");
        }
    }
}

/// The run failed on a compressed message whose distance reaches back beyond the window zlib
/// kept (see `check_connection`).
fn too_far_back(seen: &[Seen]) -> bool {
    matches!(seen.last(), Some(Seen::Error(e))
        if matches!(e.violation(), Some(Violation::BadCompression(m)) if m.contains("too far back")))
}

/// The entry point of `connection_server` and `connection_client`.
pub fn fuzz_connection(role: Role, data: &[u8]) {
    if let Some((setup, wire)) = Setup::from_bytes(role, data) {
        check_connection(setup, wire);
    }
}

/// A permessage-deflate configuration from one fuzz byte: bit 0 `server_no_context_takeover`,
/// bit 1 `client_no_context_takeover`, bits 2-4 and 5-7 the server's and client's window bits
/// (8 + n, with 7 meaning 15).
pub fn deflate_config(b: u8) -> DeflateConfig {
    let bits = |n: u8| if n == 7 { 15 } else { 8 + n };
    DeflateConfig::default()
        .server_no_context_takeover(b & 1 != 0)
        .client_no_context_takeover(b & 2 != 0)
        .server_max_window_bits(bits((b >> 2) & 7))
        .client_max_window_bits(bits(b >> 5))
}

/// A client whose offer demands nothing (both windows 15 bits, context takeover allowed): any
/// answer a server may give to any offer is one it accepts, and it reads the same parameters
/// the server put in force. The default client would not do: it asks for 12- and 11-bit windows,
/// so it refuses an answer without `server_max_window_bits` and assumes 11 bits for a client
/// window the answer does not name, whatever offer the server was answering.
pub fn undemanding_client() -> DeflateConfig {
    DeflateConfig::default().server_max_window_bits(15).client_max_window_bits(15)
}

/// Window bits of negotiated parameters are within RFC 7692's 8..=15.
pub fn check_params(p: &DeflateParams) {
    assert!((8..=15).contains(&p.server_max_window_bits), "{p:?}");
    assert!((8..=15).contains(&p.client_max_window_bits), "{p:?}");
}
