//! The connection state machine: bytes in, events out; messages in, bytes out.
//!
//! A [`Connection`] starts open (the opening handshake, whoever did it, is over). The driver feeds it
//! what it reads with [`Connection::receive`], takes events with [`Connection::next_event`], and
//! writes what [`Connection::outgoing`] holds. The application sends with [`Connection::send`] and
//! friends. There are no sockets, tasks or clocks here.
//!
//! Reactions the protocol requires — a pong for a ping, a close frame answering the peer's, the
//! close frame that fails a connection — are queued when the event that causes them is taken, not
//! when its bytes are parsed. So if one read holds a message and then a violation, the
//! application's reply to the message is written before the close frame (RFC 6455 §7.1.7 does not
//! require dropping data that preceded the violation, and the Autobahn suite's strict mode checks it).
//!
//! ```
//! use duplex_proto::{Connection, Config, Event, Message, Role};
//! let mut server = Connection::new(Role::Server, Config::default());
//! // A masked text frame "Hi" from a client (mask key 0).
//! server.receive(&[0x81, 0x82, 0, 0, 0, 0, b'H', b'i']);
//! match server.next_event() {
//!     Ok(Some(Event::Message(m))) => server.send(m).unwrap(),
//!     other => panic!("{other:?}"),
//! }
//! use bytes::Buf;
//! assert_eq!(server.outgoing().chunk(), &[0x81, 0x02, b'H', b'i']);
//! ```

use std::collections::VecDeque;

use bytes::{Buf, Bytes};

use crate::close::{self, CloseCode, CloseFrame, ClosePayloadError};
use crate::config::Config;
use crate::deflate::{self, Compressor, Decompressor, DeflateParams};
use crate::error::{ProtocolError, SendError, Violation};
use crate::frame::{FrameHeader, Opcode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1};
use crate::mask;
use crate::message::{Fragment, Message, MessageKind};
use crate::outgoing::Outgoing;
use crate::utf8::Utf8Validator;

/// Which end of the connection this is: it decides the masking direction (RFC 6455 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The end that sent the opening handshake: masks what it sends.
    Client,
    /// The end that accepted it: sends unmasked frames and requires masked ones.
    Server,
}

/// Where the close handshake stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// This end sent a close frame and waits for the peer's; received messages are still delivered.
    CloseSent,
    /// Both close frames have been exchanged, or the connection failed. Once [`Connection::outgoing`]
    /// is drained the transport may be closed: the server first (RFC 6455 §7.1.1).
    Closed,
}

/// Something the peer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole message (the default, [`Config::streaming`] off).
    Message(Message),
    /// A piece of a message ([`Config::streaming`] on).
    Fragment(Fragment),
    /// A ping; with [`Config::auto_pong`] the pong is already queued.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The peer's close frame (`None` if it carried no code). If this end had not sent a close
    /// frame yet, the answer echoing the code is queued; either way the state is now
    /// [`State::Closed`].
    Close(Option<CloseFrame>),
}

/// An entry of the event queue: events for the application, and reactions to queue on the way.
#[derive(Debug)]
enum Pending {
    Event(Event),
    Fail(ProtocolError),
}

/// The event queue. Its first entry is kept inline: the usual case, one event per read, never
/// touches the allocator. Later entries go to a `VecDeque`, given back once drained so that an
/// idle connection holds no heap (see `heap_size`).
#[derive(Debug, Default)]
struct Events {
    /// The front of the queue; `None` only if `rest` is empty too.
    first: Option<Pending>,
    rest: VecDeque<Pending>,
}

impl Events {
    fn push_back(&mut self, p: Pending) {
        if self.first.is_none() {
            self.first = Some(p);
        } else {
            self.rest.push_back(p);
        }
    }

    fn pop_front(&mut self) -> Option<Pending> {
        let p = self.first.take()?;
        self.first = self.rest.pop_front();
        if self.first.is_none() && self.rest.capacity() != 0 {
            self.rest = VecDeque::new();
        }
        Some(p)
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn heap_capacity(&self) -> usize {
        self.rest.capacity()
    }
}

/// The frame being received.
#[derive(Debug)]
enum Decoder {
    /// Collecting a header; `len` bytes of it are in `buf`.
    Header { buf: [u8; MAX_HEADER_LEN], len: u8 },
    /// Receiving a payload.
    Payload(FrameInProgress),
    /// Input is no longer read: after the peer's close frame, or a violation.
    Done,
}

#[derive(Debug, Clone, Copy)]
struct FrameInProgress {
    opcode: Opcode,
    fin: bool,
    mask: Option<[u8; 4]>,
    mask_offset: usize,
    remaining: u64,
}

/// The message being received.
#[derive(Debug)]
struct Incoming {
    kind: MessageKind,
    /// The payload so far (not used when streaming).
    data: Vec<u8>,
    /// Bytes received so far, for the message size limit.
    size: u64,
    /// Streaming: no piece delivered yet.
    first: bool,
    utf8: Utf8Validator,
    /// The message is compressed (RSV1 on its first frame): `data` holds inflated bytes.
    compressed: bool,
    /// Streaming a compressed message: inflated bytes delivered so far, for the size limit.
    inflated: usize,
}

/// permessage-deflate on one connection: the agreed parameters and the two codecs, each
/// allocated on first use.
#[derive(Debug)]
struct DeflateState {
    params: DeflateParams,
    compressor: Compressor,
    decompressor: Decompressor,
}

/// The largest piece of inflated data delivered at once in streaming mode.
const STREAM_PIECE: usize = 64 * 1024;

/// The largest compressed message accepted on the wire for a `limit` on its inflated size: a
/// little more than the limit, since incompressible data grows by a few bytes per 16 KiB block.
fn compressed_wire_limit(limit: usize) -> u64 {
    (limit as u64).saturating_add(limit as u64 >> 10).saturating_add(64)
}

/// One end of a WebSocket connection, without I/O. See the [module docs](self).
#[derive(Debug)]
pub struct Connection {
    role: Role,
    state: State,
    config: Config,
    decoder: Decoder,
    message: Option<Incoming>,
    /// A control frame's payload when it arrives in pieces.
    control: Vec<u8>,
    events: Events,
    out: Outgoing,
    /// The close frame this end sent, if any.
    close_sent: Option<CloseFrame>,
    /// The close frame the peer sent: `Some(None)` for a close frame without a code.
    close_received: Option<Option<CloseFrame>>,
    /// The violation that failed the connection, if one did.
    failure: Option<ProtocolError>,
    /// An outgoing fragmented message is open.
    sending_fragmented: bool,
    /// permessage-deflate, when negotiated.
    deflate: Option<DeflateState>,
    /// Messages of at least this many bytes are compressed: `usize::MAX` without permessage-deflate,
    /// so the uncompressed path costs one comparison.
    compress_threshold: usize,
    /// The outgoing fragmented message is compressed.
    sending_compressed: bool,
}

impl Connection {
    /// A connection in the open state, after the opening handshake, without extensions.
    pub fn new(role: Role, config: Config) -> Self {
        Self::with_deflate(role, config, None)
    }

    /// A connection in the open state with the permessage-deflate parameters the handshake
    /// agreed ([`DeflateConfig::negotiate`](crate::DeflateConfig::negotiate) on a server,
    /// [`DeflateConfig::accept_response`](crate::DeflateConfig::accept_response) on a client), or
    /// `None` if it did not.
    ///
    /// With them, RSV1 is accepted on the first frame of a message and the message inflated as
    /// its bytes arrive; messages of at least [`DeflateConfig::min_size`](crate::DeflateConfig::min_size)
    /// bytes are sent compressed. The compressor and decompressor are allocated on the first
    /// compressed message of their direction, and freed after each message when that direction
    /// has no context takeover.
    ///
    /// ```
    /// use duplex_proto::{Config, Connection, DeflateParams, Event, Message, Role};
    /// let deflate = Some(DeflateParams::default());
    /// let mut client = Connection::with_deflate(Role::Client, Config::default(), deflate);
    /// let mut server = Connection::with_deflate(Role::Server, Config::default(), deflate);
    /// client.send_text(&"hello ".repeat(100)).unwrap();
    /// let wire = duplex_proto::drain_outgoing(&mut client);
    /// assert!(wire.len() < 50); // 600 bytes of text, compressed
    /// server.receive(&wire);
    /// assert_eq!(server.next_event(), Ok(Some(Event::Message(Message::Text("hello ".repeat(100))))));
    /// ```
    pub fn with_deflate(role: Role, config: Config, deflate: Option<DeflateParams>) -> Self {
        let deflate = deflate.map(|params| {
            let (own, peer) = match role {
                Role::Server => (
                    (params.server_max_window_bits, params.server_no_context_takeover),
                    (params.client_max_window_bits, params.client_no_context_takeover),
                ),
                Role::Client => (
                    (params.client_max_window_bits, params.client_no_context_takeover),
                    (params.server_max_window_bits, params.server_no_context_takeover),
                ),
            };
            DeflateState {
                params,
                compressor: Compressor::new(config.deflate.level, own.0, own.1),
                decompressor: Decompressor::new(peer.0, peer.1),
            }
        });
        let compress_threshold = if deflate.is_some() { config.deflate.min_size } else { usize::MAX };
        Connection {
            role,
            state: State::Open,
            config,
            decoder: Decoder::Header { buf: [0; MAX_HEADER_LEN], len: 0 },
            message: None,
            control: Vec::new(),
            events: Events::default(),
            out: Outgoing::default(),
            close_sent: None,
            close_received: None,
            failure: None,
            sending_fragmented: false,
            deflate,
            compress_threshold,
            sending_compressed: false,
        }
    }

    /// The permessage-deflate parameters in force, if the extension was negotiated.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.deflate.as_ref().map(|d| &d.params)
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// The options in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the connection still wants input: false once the peer's close frame arrived or
    /// the connection failed. Bytes received after that are discarded.
    pub fn wants_input(&self) -> bool {
        !matches!(self.decoder, Decoder::Done)
    }

    /// The close frame the peer sent: `None` if none yet, `Some(None)` for one with no code.
    pub fn close_received(&self) -> Option<&Option<CloseFrame>> {
        self.close_received.as_ref()
    }

    /// The close frame this end sent.
    pub fn close_sent(&self) -> Option<&CloseFrame> {
        self.close_sent.as_ref()
    }

    /// The violation that failed the connection, if any.
    pub fn failure(&self) -> Option<&ProtocolError> {
        self.failure.as_ref()
    }

    /// Whether events are waiting in [`Connection::next_event`].
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// What is waiting to be written. Write from it and [`Buf::advance`] by what was written.
    pub fn outgoing(&mut self) -> &mut Outgoing {
        &mut self.out
    }

    /// Unwritten bytes (`bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.out.len()
    }

    /// Approximate heap bytes this connection holds right now, beyond `size_of::<Connection>()`.
    pub fn heap_size(&self) -> usize {
        self.message.as_ref().map_or(0, |m| m.data.capacity())
            + self.control.capacity()
            + self.events.heap_capacity() * std::mem::size_of::<Pending>()
            + self.out.len()
            + self.deflate.as_ref().map_or(0, |d| {
                let c = if d.compressor.is_allocated() {
                    deflate::compressor_heap_size(d.compressor.window_bits())
                } else {
                    0
                };
                let i = if d.decompressor.is_allocated() { deflate::DECOMPRESSOR_HEAP_SIZE } else { 0 };
                c + i
            })
    }

    // ---------------------------------------------------------------- receiving

    /// Feeds bytes read from the transport. All of `data` is consumed: what belongs to an incomplete
    /// frame is kept (only the payload bytes a message needs, never a copy of the read buffer).
    pub fn receive(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.decoder {
                Decoder::Done => return,
                Decoder::Header { .. } => data = self.receive_header(data),
                Decoder::Payload(_) => data = self.receive_payload(data),
            }
        }
    }

    fn receive_header<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let Decoder::Header { buf, len } = &mut self.decoder else { unreachable!() };
        let decoded = if *len == 0 {
            // Fast path: the whole header is in this read.
            FrameHeader::decode(data).map(|h| h.map(|(h, n)| (h, &data[n..])))
        } else {
            // Complete the header kept from the previous read.
            let have = *len as usize;
            let need = if have < 2 { 2 } else { FrameHeader::len_from_prefix(buf[1]) };
            let take = (need - have).min(data.len());
            buf[have..have + take].copy_from_slice(&data[..take]);
            *len += take as u8;
            let rest = &data[take..];
            if (*len as usize) < need {
                return rest;
            }
            if need == 2 && FrameHeader::len_from_prefix(buf[1]) > 2 && FrameHeader::decode(&buf[..2]).is_ok() {
                return rest; // now we know the full length (and the opcode is valid); loop again
            }
            FrameHeader::decode(&buf[..*len as usize]).map(|h| h.map(|(h, _)| (h, rest)))
        };
        match decoded {
            Err(e) => {
                self.fail(Violation::BadHeader(e));
                &[]
            }
            Ok(None) => {
                // Keep the partial header (fewer than 14 bytes).
                let Decoder::Header { buf, len } = &mut self.decoder else { unreachable!() };
                if *len == 0 {
                    buf[..data.len()].copy_from_slice(data);
                    *len = data.len() as u8;
                }
                &[]
            }
            Ok(Some((header, rest))) => {
                self.decoder = Decoder::Header { buf: [0; MAX_HEADER_LEN], len: 0 };
                match self.start_frame(header) {
                    Ok(()) => rest,
                    Err(v) => {
                        self.fail(v);
                        &[]
                    }
                }
            }
        }
    }

    /// Checks a new frame's header against the protocol and the connection's state.
    fn start_frame(&mut self, h: FrameHeader) -> Result<(), Violation> {
        let mut compressed = false;
        if h.rsv != 0 {
            // RFC 7692 §6: with permessage-deflate, RSV1 marks the first frame of a compressed
            // message, and only that frame: on a continuation or control frame it is an error.
            if h.rsv == RSV1 && self.deflate.is_some() && matches!(h.opcode, Opcode::Text | Opcode::Binary) {
                compressed = true;
            } else {
                // RFC 6455 §5.2: nonzero RSV bits without a negotiated extension that defines them.
                return Err(Violation::ReservedBits(h.rsv));
            }
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(Violation::UnmaskedClientFrame),
            (Role::Client, true) => return Err(Violation::MaskedServerFrame),
            _ => {}
        }
        if h.opcode.is_control() {
            if !h.fin {
                return Err(Violation::FragmentedControlFrame);
            }
            if h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(Violation::ControlFrameTooLong(h.payload_len));
            }
        } else {
            if h.payload_len > self.config.max_frame_size as u64 {
                return Err(Violation::FrameTooBig { size: h.payload_len, limit: self.config.max_frame_size });
            }
            match (h.opcode, &mut self.message) {
                (Opcode::Continuation, None) => return Err(Violation::UnexpectedContinuation),
                (Opcode::Continuation, Some(m)) => {
                    m.size += h.payload_len;
                    // A compressed message's inflated size is checked as it is inflated; its wire
                    // size only needs to be bounded.
                    let limit = if m.compressed {
                        compressed_wire_limit(self.config.max_message_size)
                    } else {
                        self.config.max_message_size as u64
                    };
                    if m.size > limit {
                        return Err(Violation::MessageTooBig { size: m.size, limit: self.config.max_message_size });
                    }
                    if !self.config.streaming && !m.compressed {
                        grow_within(&mut m.data, initial_reservation(h.payload_len), m.size as usize);
                    }
                }
                (_, Some(_)) => return Err(Violation::ExpectedContinuation),
                (op, None) => {
                    let limit = if compressed {
                        compressed_wire_limit(self.config.max_message_size)
                    } else {
                        self.config.max_message_size as u64
                    };
                    if h.payload_len > limit {
                        return Err(Violation::MessageTooBig {
                            size: h.payload_len,
                            limit: self.config.max_message_size,
                        });
                    }
                    let kind = if op == Opcode::Text { MessageKind::Text } else { MessageKind::Binary };
                    // A compressed message's buffer grows with what is inflated, not with what
                    // the header announces.
                    let data = if self.config.streaming || compressed {
                        Vec::new()
                    } else {
                        Vec::with_capacity(initial_reservation(h.payload_len))
                    };
                    self.message = Some(Incoming {
                        kind,
                        data,
                        size: h.payload_len,
                        first: true,
                        utf8: Utf8Validator::default(),
                        compressed,
                        inflated: 0,
                    });
                }
            }
        }
        let frame =
            FrameInProgress { opcode: h.opcode, fin: h.fin, mask: h.mask, mask_offset: 0, remaining: h.payload_len };
        if h.payload_len == 0 {
            self.end_frame(frame, true);
        } else {
            self.decoder = Decoder::Payload(frame);
        }
        Ok(())
    }

    fn receive_payload<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let Decoder::Payload(frame) = &mut self.decoder else { unreachable!() };
        let n = (frame.remaining.min(data.len() as u64)) as usize;
        let (chunk, rest) = data.split_at(n);
        frame.remaining -= n as u64;
        let mask_offset = frame.mask_offset;
        frame.mask_offset = (frame.mask_offset + n) & 3;
        let frame = *frame;
        let done = frame.remaining == 0;
        if frame.opcode.is_control() {
            if done && self.control.is_empty() {
                // The whole payload is in this read.
                let mut payload = chunk.to_vec();
                if let Some(key) = frame.mask {
                    mask::apply(&mut payload, key, mask_offset);
                }
                self.control = payload;
            } else {
                let start = self.control.len();
                self.control.extend_from_slice(chunk);
                if let Some(key) = frame.mask {
                    mask::apply(&mut self.control[start..], key, mask_offset);
                }
            }
        } else if let Err(v) = self.data_payload(chunk, frame, mask_offset, done) {
            self.fail(v);
            return &[];
        }
        if done {
            self.decoder = Decoder::Header { buf: [0; MAX_HEADER_LEN], len: 0 };
            self.end_frame(frame, false);
        }
        rest
    }

    /// Appends (or, streaming, delivers) a piece of a data frame's payload, unmasked and validated.
    fn data_payload(
        &mut self,
        chunk: &[u8],
        frame: FrameInProgress,
        mask_offset: usize,
        frame_done: bool,
    ) -> Result<(), Violation> {
        let m = self.message.as_mut().expect("a data frame belongs to a message");
        if m.compressed {
            return self.compressed_payload(chunk, frame, mask_offset);
        }
        if self.config.streaming {
            let mut piece = Vec::new();
            mask::extend_unmasked(&mut piece, chunk, frame.mask, mask_offset);
            if m.kind == MessageKind::Text {
                m.utf8.feed(&piece).map_err(|_| Violation::InvalidUtf8)?;
            }
            let last = frame_done && frame.fin;
            if last && m.kind == MessageKind::Text {
                m.utf8.finish().map_err(|_| Violation::InvalidUtf8)?;
            }
            let first = std::mem::replace(&mut m.first, false);
            self.events.push_back(Pending::Event(Event::Fragment(Fragment {
                kind: m.kind,
                data: Bytes::from(piece),
                first,
                last,
            })));
            return Ok(());
        }
        let start = m.data.len();
        // Grow by doubling, but never past the bytes the message's headers announced (at most
        // max_message_size): the buffer stays within the limit it enforces.
        grow_within(&mut m.data, chunk.len(), m.size as usize);
        mask::extend_unmasked(&mut m.data, chunk, frame.mask, mask_offset);
        if m.kind == MessageKind::Text {
            // Validate as the bytes stream in, so invalid text fails before the frame ends.
            m.utf8.feed(&m.data[start..]).map_err(|_| Violation::InvalidUtf8)?;
        }
        Ok(())
    }

    /// Inflates a piece of a compressed message's payload, unmasking it first (in a stack buffer:
    /// the compressed bytes are never stored).
    fn compressed_payload(
        &mut self,
        chunk: &[u8],
        frame: FrameInProgress,
        mask_offset: usize,
    ) -> Result<(), Violation> {
        let Some(key) = frame.mask else {
            return self.inflate_message(chunk, false);
        };
        let mut buf = [0u8; 8192];
        let mut offset = mask_offset;
        for piece in chunk.chunks(buf.len()) {
            let b = &mut buf[..piece.len()];
            b.copy_from_slice(piece);
            offset = mask::apply(b, key, offset);
            self.inflate_message(b, false)?;
        }
        Ok(())
    }

    /// Inflates `input`, compressed bytes of the current message, into it (or, streaming, into
    /// fragments), validating text as it comes out and enforcing
    /// [`Config::max_message_size`] on the inflated size before the bytes are stored. `end`: the
    /// message is complete; inflate the trailer `00 00 ff ff` that the sender removed (RFC 7692
    /// §7.2.2) and, streaming, deliver the last fragment.
    fn inflate_message(&mut self, mut input: &[u8], end: bool) -> Result<(), Violation> {
        let limit = self.config.max_message_size;
        let (Some(d), Some(m)) = (self.deflate.as_mut(), self.message.as_mut()) else {
            unreachable!("a compressed message needs permessage-deflate and a message in progress")
        };
        let mut trailer: &[u8] = if end { &deflate::TRAILER } else { &[] };
        if !self.config.streaming {
            loop {
                let start = m.data.len();
                // Never more than one byte past the limit: a decompression bomb stops there.
                let r = d
                    .decompressor
                    .inflate(input, &mut m.data, limit.saturating_add(1))
                    .map_err(Violation::BadCompression)?;
                input = &input[r.consumed..];
                if m.data.len() > limit {
                    return Err(Violation::MessageTooBig { size: m.data.len() as u64, limit });
                }
                if m.kind == MessageKind::Text {
                    m.utf8.feed(&m.data[start..]).map_err(|_| Violation::InvalidUtf8)?;
                }
                debug_assert!(input.is_empty() && !r.full);
                if trailer.is_empty() {
                    return Ok(());
                }
                input = std::mem::take(&mut trailer);
            }
        }
        let mut piece = Vec::new();
        loop {
            let before = piece.len();
            let cap = STREAM_PIECE.min(before + (limit - m.inflated) + 1);
            let r = d.decompressor.inflate(input, &mut piece, cap).map_err(Violation::BadCompression)?;
            input = &input[r.consumed..];
            m.inflated += piece.len() - before;
            if m.inflated > limit {
                return Err(Violation::MessageTooBig { size: m.inflated as u64, limit });
            }
            if m.kind == MessageKind::Text {
                m.utf8.feed(&piece[before..]).map_err(|_| Violation::InvalidUtf8)?;
            }
            let drained = input.is_empty() && !r.full;
            if drained && !trailer.is_empty() {
                input = std::mem::take(&mut trailer);
                continue;
            }
            if r.full || drained {
                let last = drained && end;
                if last && m.kind == MessageKind::Text {
                    m.utf8.finish().map_err(|_| Violation::InvalidUtf8)?;
                }
                if !piece.is_empty() || last {
                    let first = std::mem::replace(&mut m.first, false);
                    let data = Bytes::from(std::mem::take(&mut piece));
                    self.events.push_back(Pending::Event(Event::Fragment(Fragment {
                        kind: m.kind,
                        data,
                        first,
                        last,
                    })));
                }
                if drained {
                    return Ok(());
                }
            }
        }
    }

    /// A frame's payload is complete; `empty` if it had none.
    fn end_frame(&mut self, frame: FrameInProgress, empty: bool) {
        match frame.opcode {
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                if !frame.fin {
                    return;
                }
                if self.message.as_ref().is_some_and(|m| m.compressed) {
                    if let Err(v) = self.inflate_message(&[], true) {
                        self.fail(v);
                        return;
                    }
                    if let Some(d) = &mut self.deflate {
                        d.decompressor.end_message();
                    }
                    if self.config.streaming {
                        // `inflate_message` delivered the last piece.
                        self.message = None;
                        return;
                    }
                }
                let m = self.message.take().expect("a data frame belongs to a message");
                if self.config.streaming {
                    // A final frame with payload delivered its last piece in `data_payload`; an
                    // empty one still owes the application the end of the message.
                    if empty {
                        let mut utf8 = m.utf8;
                        if m.kind == MessageKind::Text && utf8.finish().is_err() {
                            self.fail(Violation::InvalidUtf8);
                            return;
                        }
                        self.events.push_back(Pending::Event(Event::Fragment(Fragment {
                            kind: m.kind,
                            data: Bytes::new(),
                            first: m.first,
                            last: true,
                        })));
                    }
                    return;
                }
                let mut utf8 = m.utf8;
                let message = match m.kind {
                    MessageKind::Text => {
                        if utf8.finish().is_err() {
                            self.fail(Violation::InvalidUtf8);
                            return;
                        }
                        // SAFETY: every byte of `m.data` went through `utf8.feed` as it arrived, and
                        // `finish` confirmed the message does not end inside a character. The
                        // validator is property-tested against `std::str::from_utf8`.
                        Message::Text(unsafe { String::from_utf8_unchecked(m.data) })
                    }
                    MessageKind::Binary => Message::Binary(Bytes::from(m.data)),
                };
                self.events.push_back(Pending::Event(Event::Message(message)));
            }
            Opcode::Ping => {
                let payload = Bytes::from(std::mem::take(&mut self.control));
                self.events.push_back(Pending::Event(Event::Ping(payload)));
            }
            Opcode::Pong => {
                let payload = Bytes::from(std::mem::take(&mut self.control));
                self.events.push_back(Pending::Event(Event::Pong(payload)));
            }
            Opcode::Close => {
                let payload = std::mem::take(&mut self.control);
                match close::parse_payload(&payload) {
                    Ok(frame) => {
                        self.decoder = Decoder::Done;
                        // a close frame may arrive inside a fragmented message (§5.4); its
                        // unfinished payload can never complete, so release it now rather than
                        // holding it until the connection is dropped.
                        self.message = None;
                        self.events.push_back(Pending::Event(Event::Close(frame)));
                    }
                    Err(ClosePayloadError::BadCode) => self.fail(Violation::InvalidCloseCode),
                    Err(ClosePayloadError::BadReason) => self.fail(Violation::InvalidUtf8),
                }
            }
        }
    }

    /// Fails the connection: stop reading, and (when the event is taken) send a close frame with the
    /// RFC's code for the violation.
    fn fail(&mut self, violation: Violation) {
        self.decoder = Decoder::Done;
        self.message = None;
        self.control = Vec::new();
        self.events.push_back(Pending::Fail(ProtocolError::new(violation)));
    }

    /// Takes the next event, queueing the reaction the protocol requires for it.
    ///
    /// `Err` reports a violation by the peer: the close frame with its code is queued, the
    /// connection is [`State::Closed`], and no more events follow. `Ok(None)`: nothing to report
    /// until more bytes are received.
    pub fn next_event(&mut self) -> Result<Option<Event>, ProtocolError> {
        match self.events.pop_front() {
            None => Ok(None),
            Some(Pending::Fail(e)) => {
                if self.close_sent.is_none() {
                    let frame = CloseFrame::new(e.code(), e.reason());
                    self.queue_close(&frame);
                    self.close_sent = Some(frame);
                }
                self.state = State::Closed;
                self.failure = Some(e.clone());
                self.events = Events::default();
                Err(e)
            }
            Some(Pending::Event(event)) => {
                match &event {
                    Event::Ping(payload) if self.config.auto_pong && self.close_sent.is_none() => {
                        self.queue_control(Opcode::Pong, payload);
                    }
                    Event::Close(frame) => {
                        if self.close_sent.is_none() {
                            // RFC 6455 §5.5.1: answer with a close frame, typically echoing the code.
                            let reply = match frame {
                                Some(f) => CloseFrame::new(f.code, ""),
                                None => CloseFrame::new(CloseCode::NO_STATUS, ""),
                            };
                            if frame.is_some() {
                                self.queue_close(&reply);
                            } else {
                                self.queue_control(Opcode::Close, &[]);
                            }
                            self.close_sent = Some(reply);
                        }
                        self.close_received = Some(frame.clone());
                        self.state = State::Closed;
                    }
                    _ => {}
                }
                Ok(Some(event))
            }
        }
    }

    // ---------------------------------------------------------------- sending

    /// Queues a whole message as one frame.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        match message {
            Message::Text(s) => self.send_frame(Opcode::Text, true, Payload::Owned(Bytes::from(s.into_bytes()))),
            Message::Binary(b) => self.send_frame(Opcode::Binary, true, Payload::Owned(b)),
        }
    }

    /// Queues a text message, copying it.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_frame(Opcode::Text, true, Payload::Borrowed(text.as_bytes()))
    }

    /// Queues a binary message, copying it.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_frame(Opcode::Binary, true, Payload::Borrowed(data))
    }

    /// Queues one frame of a fragmented message: `first` starts it with `kind`, `last` ends it.
    /// A message sent this way may be larger than anything held in memory at once.
    pub fn send_fragment(&mut self, kind: MessageKind, data: &[u8], first: bool, last: bool) -> Result<(), SendError> {
        // after a close frame nothing may be sent; say so (`Closed`), not `FragmentOrder`,
        // even if the close interrupted a fragmented message.
        if self.close_sent.is_some() {
            return Err(SendError::Closed);
        }
        if first == self.sending_fragmented {
            return Err(SendError::FragmentOrder);
        }
        let opcode = match (first, kind) {
            (false, _) => Opcode::Continuation,
            (true, MessageKind::Text) => Opcode::Text,
            (true, MessageKind::Binary) => Opcode::Binary,
        };
        if first {
            // A fragmented message is compressed if its first fragment is large enough.
            self.sending_compressed = data.len() >= self.compress_threshold;
        }
        if self.sending_compressed {
            self.write_compressed(opcode, last, first, data);
        } else {
            self.send_frame_inner(opcode, last, Payload::Borrowed(data))?;
        }
        self.sending_fragmented = !last;
        Ok(())
    }

    /// Queues a ping (at most 125 bytes).
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(Opcode::Ping, payload)
    }

    /// Queues an unsolicited pong (at most 125 bytes), a one-way heartbeat.
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(Opcode::Pong, payload)
    }

    /// Queues a frame encoded beforehand — the same bytes for many connections (fan-out). Only for
    /// the server role, whose frames are not masked; see [`encode_server_frame`].
    pub fn send_encoded(&mut self, frame: Bytes) -> Result<(), SendError> {
        debug_assert_eq!(self.role, Role::Server, "client frames must be masked per connection");
        if self.close_sent.is_some() {
            return Err(SendError::Closed);
        }
        if self.sending_fragmented {
            return Err(SendError::FragmentOrder);
        }
        if frame.len() <= self.config.copy_threshold {
            self.out.copy_from(&frame);
        } else {
            self.out.push(frame);
        }
        Ok(())
    }

    /// Starts the close handshake: queues a close frame. Messages received until the peer's close
    /// frame arrives are still delivered.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), SendError> {
        if self.close_sent.is_some() {
            return Err(SendError::Closed);
        }
        match &frame {
            Some(f) => {
                if !f.code.is_sendable() {
                    return Err(SendError::InvalidCloseCode(f.code));
                }
                let f = CloseFrame::new(f.code, close::truncate_reason(&f.reason));
                self.queue_close(&f);
                self.close_sent = Some(f);
            }
            None => {
                self.queue_control(Opcode::Close, &[]);
                self.close_sent = Some(CloseFrame::new(CloseCode::NO_STATUS, ""));
            }
        }
        self.state = if self.close_received.is_some() { State::Closed } else { State::CloseSent };
        Ok(())
    }

    fn send_control(&mut self, opcode: Opcode, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlFrameTooLong(payload.len()));
        }
        if self.close_sent.is_some() {
            return Err(SendError::Closed);
        }
        self.queue_control(opcode, payload);
        Ok(())
    }

    fn send_frame(&mut self, opcode: Opcode, fin: bool, payload: Payload<'_>) -> Result<(), SendError> {
        // `Closed` takes precedence over `FragmentOrder` (see `send_fragment`).
        if self.close_sent.is_some() {
            return Err(SendError::Closed);
        }
        if self.sending_fragmented {
            return Err(SendError::FragmentOrder);
        }
        if payload.as_slice().len() >= self.compress_threshold {
            self.write_compressed(opcode, fin, true, payload.as_slice());
            return Ok(());
        }
        self.send_frame_inner(opcode, fin, payload)
    }

    /// Compresses `data` (a message, or a fragment of one) and queues it as a frame with RSV1 on
    /// the message's first frame (RFC 7692 §6). The compressed bytes are a fresh buffer, masked
    /// in place for a client and queued without another copy when large.
    fn write_compressed(&mut self, opcode: Opcode, fin: bool, first: bool, data: &[u8]) {
        let d = self.deflate.as_mut().expect("a finite compress_threshold implies permessage-deflate");
        let mut payload = Vec::new();
        d.compressor.compress(data, &mut payload, fin);
        let mask = match self.role {
            Role::Client => Some(rand::random::<[u8; 4]>()),
            Role::Server => None,
        };
        let rsv = if first { RSV1 } else { 0 };
        let header = FrameHeader { fin, rsv, opcode, mask, payload_len: payload.len() as u64 };
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        let hlen = header.encode(&mut hbuf);
        self.out.copy_from(&hbuf[..hlen]);
        if let Some(key) = mask {
            mask::apply(&mut payload, key, 0);
        }
        if payload.len() > self.config.copy_threshold {
            self.out.push(Bytes::from(payload));
        } else {
            self.out.copy_from(&payload);
        }
    }

    fn send_frame_inner(&mut self, opcode: Opcode, fin: bool, payload: Payload<'_>) -> Result<(), SendError> {
        if self.close_sent.is_some() {
            return Err(SendError::Closed);
        }
        self.write_frame(opcode, fin, payload);
        Ok(())
    }

    fn queue_close(&mut self, frame: &CloseFrame) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&frame.code.0.to_be_bytes());
        let reason = close::truncate_reason(&frame.reason).as_bytes();
        payload[2..2 + reason.len()].copy_from_slice(reason);
        self.queue_control(Opcode::Close, &payload[..2 + reason.len()]);
    }

    fn queue_control(&mut self, opcode: Opcode, payload: &[u8]) {
        self.write_frame(opcode, true, Payload::Borrowed(payload));
    }

    /// Encodes a frame into the outgoing queue: header and small payloads copied, large ones queued
    /// as they are; client frames masked as they are copied.
    fn write_frame(&mut self, opcode: Opcode, fin: bool, payload: Payload<'_>) {
        let data = payload.as_slice();
        let mask = match self.role {
            Role::Client => Some(rand::random::<[u8; 4]>()),
            Role::Server => None,
        };
        let header = FrameHeader { fin, rsv: 0, opcode, mask, payload_len: data.len() as u64 };
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        let hlen = header.encode(&mut hbuf);
        // One reservation for header and copied payload: a small frame costs one allocation.
        let copied = match (&payload, mask) {
            (Payload::Owned(b), None) if b.len() > self.config.copy_threshold => 0,
            _ => data.len(),
        };
        self.out.reserve(hlen + copied);
        self.out.copy_from(&hbuf[..hlen]);
        match (mask, payload) {
            (Some(key), p) => self.out.fill_with(p.as_slice().len(), |dst| mask::copy_masked(dst, p.as_slice(), key)),
            (None, Payload::Owned(b)) if b.len() > self.config.copy_threshold => self.out.push(b),
            (None, p) => self.out.copy_from(p.as_slice()),
        }
    }
}

/// How much to reserve for a frame's payload before its bytes arrive: all of it for frames up to
/// 64 KiB (one allocation, no regrowth), then 64 KiB and growth as bytes actually arrive, so a
/// peer that sends only headers announcing large frames cannot make us reserve their declared
/// sizes (1,000 such connections cost 64 MiB of reservations, not gigabytes).
fn initial_reservation(payload_len: u64) -> usize {
    payload_len.min(64 << 10) as usize
}

/// Makes room for `additional` more bytes in `data`, doubling its capacity as `Vec` would but
/// never beyond `bound` (unless the bytes themselves need more, which the size checks prevent).
fn grow_within(data: &mut Vec<u8>, additional: usize, bound: usize) {
    let needed = data.len() + additional;
    if needed <= data.capacity() {
        return;
    }
    let target = (data.capacity() * 2).max(needed).min(bound.max(needed));
    data.reserve_exact(target - data.len());
}

/// A payload to send: borrowed (copied into the queue) or owned (queued without a copy if large).
enum Payload<'a> {
    Borrowed(&'a [u8]),
    Owned(Bytes),
}

impl Payload<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Borrowed(s) => s,
            Payload::Owned(b) => b,
        }
    }
}

/// Encodes a whole unmasked (server) frame once, to send the same bytes to many connections with
/// [`Connection::send_encoded`].
///
/// ```
/// use duplex_proto::{encode_server_frame, Message};
/// let frame = encode_server_frame(&Message::Text("hi".into()));
/// assert_eq!(&frame[..], &[0x81, 0x02, b'h', b'i']);
/// ```
pub fn encode_server_frame(message: &Message) -> Bytes {
    let opcode = match message.kind() {
        MessageKind::Text => Opcode::Text,
        MessageKind::Binary => Opcode::Binary,
    };
    let data = message.as_bytes();
    let header = FrameHeader { fin: true, rsv: 0, opcode, mask: None, payload_len: data.len() as u64 };
    let mut hbuf = [0u8; MAX_HEADER_LEN];
    let hlen = header.encode(&mut hbuf);
    let mut v = Vec::with_capacity(hlen + data.len());
    v.extend_from_slice(&hbuf[..hlen]);
    v.extend_from_slice(data);
    Bytes::from(v)
}

/// Encodes a whole message once as a **compressed** unmasked (server) frame, RSV1 set, to send the
/// same bytes to many connections with [`Connection::send_encoded`] (relay, fan-out).
///
/// The message is compressed on its own, with a `window_bits` window (8..=15), so the frame is
/// valid only on connections where [`DeflateParams::shares_server_frames`] says so: the server
/// agreed `server_no_context_takeover` (with context takeover, a frame the connection's own
/// compressor did not see would shift the peer's window under it) and a window at least as large.
/// [`DeflateConfig::server_no_context_takeover`](crate::DeflateConfig::server_no_context_takeover)
/// makes a server agree it with every client.
///
/// ```
/// use duplex_proto::{deflate, Config, Connection, DeflateParams, Event, Message, Role};
/// let text = Message::Text("tick ".repeat(40));
/// let frame = duplex_proto::encode_compressed_server_frame(&text, 1, 15);
/// let params = DeflateParams { server_no_context_takeover: true, ..DeflateParams::default() };
/// assert!(params.shares_server_frames(15));
/// let mut client = Connection::with_deflate(Role::Client, Config::default(), Some(params));
/// client.receive(&frame);
/// assert_eq!(client.next_event(), Ok(Some(Event::Message(text))));
/// ```
pub fn encode_compressed_server_frame(message: &Message, level: u32, window_bits: u8) -> Bytes {
    let opcode = match message.kind() {
        MessageKind::Text => Opcode::Text,
        MessageKind::Binary => Opcode::Binary,
    };
    let mut payload = Vec::new();
    Compressor::new(level, window_bits, true).compress(message.as_bytes(), &mut payload, true);
    let header = FrameHeader { fin: true, rsv: RSV1, opcode, mask: None, payload_len: payload.len() as u64 };
    let mut hbuf = [0u8; MAX_HEADER_LEN];
    let hlen = header.encode(&mut hbuf);
    let mut v = Vec::with_capacity(hlen + payload.len());
    v.extend_from_slice(&hbuf[..hlen]);
    v.extend_from_slice(&payload);
    Bytes::from(v)
}

/// Reads everything queued in `conn`'s outgoing buffer into one `Vec` (tests and simple drivers).
pub fn drain_outgoing(conn: &mut Connection) -> Vec<u8> {
    let out = conn.outgoing();
    let mut v = Vec::with_capacity(out.remaining());
    while out.has_remaining() {
        let c = out.chunk();
        v.extend_from_slice(c);
        let n = c.len();
        out.advance(n);
    }
    v
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
