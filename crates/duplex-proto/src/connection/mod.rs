//! The connection state machine: bytes, end of stream and time in; events, bytes, transport
//! actions and the next deadline out.
//!
//! A [`Connection`] starts open (the opening handshake, whoever did it, is over). A driver:
//!
//! 1. feeds what it reads with [`Connection::receive`], and the end of the peer's stream (TCP FIN,
//!    HTTP/2 END_STREAM) with [`Connection::receive_eof`];
//! 2. takes events with [`Connection::next_event`];
//! 3. writes what [`Connection::outgoing`] holds;
//! 4. carries out what [`Connection::poll_transport`] asks of the transport
//!    ([`Transport::Finish`] or [`Transport::Abort`]), and stops once
//!    [`Connection::is_terminated`];
//! 5. sleeps until [`Connection::poll_timeout`], then calls [`Connection::handle_timeout`] — and
//!    calls it at once, with the current time, whenever [`Connection::needs_time`] says a deadline
//!    has just started.
//!
//! The application sends with [`Connection::send`] and friends and closes with
//! [`Connection::close`]. There are no sockets, tasks or clocks here: every rule of the protocol —
//! which close code answers what, who shuts the transport down first (RFC 6455 §7.1.1), when a
//! keepalive ping is due and when its absence of answer fails the connection — is decided here and
//! can be tested with byte arrays and a fake clock.
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

mod closing;
mod reassembly;
mod receive;
mod send;
mod timers;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use rand::RngCore;

use crate::close::{CloseCode, CloseFrame, CloseInfo, Side};
use crate::config::Config;
use crate::deflate::{self, Compressor, Decompressor, DeflateParams};
use crate::error::ConnectionError;
use crate::message::{Fragment, Message};
use crate::outgoing::Outgoing;

use self::reassembly::Incoming;
use self::receive::Decoder;
use self::timers::Timers;

pub use self::closing::Transport;

/// Which end of the connection this is: it decides the masking direction (RFC 6455 §5.1) and who
/// closes the transport first (§7.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The end that sent the opening handshake: masks what it sends, waits for the server to end
    /// the transport.
    Client,
    /// The end that accepted it: sends unmasked frames, requires masked ones, ends the transport
    /// first.
    Server,
}

/// Where the close handshake stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// This end sent a close frame and waits for the peer's; received messages are still delivered.
    CloseSent,
    /// Both close frames have been exchanged, or the connection failed. What remains is the
    /// transport's end: see [`Connection::poll_transport`] and [`Connection::is_terminated`].
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

/// An entry of the event queue: events for the application, and failures whose reactions are
/// queued on the way.
#[derive(Debug)]
enum Pending {
    Event(Event),
    Fail(ConnectionError),
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
        if !self.rest.is_empty() {
            self.first = self.rest.pop_front();
        } else if self.rest.capacity() != 0 {
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

/// permessage-deflate on one connection: the agreed parameters and the two codecs, each
/// allocated on first use.
#[derive(Debug)]
struct DeflateState {
    params: DeflateParams,
    compressor: Compressor,
    decompressor: Decompressor,
}

impl DeflateState {
    /// Whether a codec's state is allocated (what a quiet connection releases).
    fn holds_codec(&self) -> bool {
        self.compressor.is_allocated() || self.decompressor.is_allocated()
    }
}

/// How the connection is ending: what would be dead weight on every open connection.
#[derive(Debug, Default)]
struct Closing {
    /// The close frame this end sent, if any (a frame without code is kept as 1005).
    sent: Option<CloseFrame>,
    /// The close frame the peer sent, once taken: `Some(None)` for a close frame without a code.
    received: Option<Option<CloseFrame>>,
    /// What ended the connection abnormally, if anything did.
    failure: Option<ConnectionError>,
}

/// Where masking keys come from (RFC 6455 §5.3: "derived from a strong source of entropy", so that
/// a proxy cannot predict them). Only a client draws them, so a server connection never
/// allocates one.
#[derive(Default)]
struct MaskKeys(Option<Box<dyn RngCore + Send>>);

impl MaskKeys {
    /// Out of line: inlined, the generator's code would make every caller (the send path of
    /// both roles) save and restore registers that a server never uses.
    #[inline(never)]
    fn next(&mut self) -> [u8; 4] {
        let rng = self.0.get_or_insert_with(|| {
            // A generator of this connection's own (ChaCha12), seeded from the thread's CSPRNG,
            // which the OS seeds: no seed is shared between connections or set by configuration.
            use rand::SeedableRng;
            Box::new(rand::rngs::StdRng::from_rng(&mut rand::rng()))
        });
        rng.next_u32().to_ne_bytes()
    }
}

impl fmt::Debug for MaskKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "MaskKeys(drawn)" } else { "MaskKeys(not yet)" })
    }
}

/// One end of a WebSocket connection, without I/O. See the [module docs](self).
#[derive(Debug)]
pub struct Connection {
    role: Role,
    state: State,
    /// Shared: a server's connections all point at its one configuration.
    config: Arc<Config>,
    decoder: Decoder,
    message: Option<Incoming>,
    /// A control frame's payload when it arrives in pieces.
    control: Vec<u8>,
    events: Events,
    out: Outgoing,
    /// The close frames and the failure, allocated when the close handshake starts or the
    /// connection fails: an open connection holds none of it.
    closing: Option<Box<Closing>>,
    /// Which end sent the first close frame.
    close_initiator: Option<Side>,
    /// The peer's close frame has been parsed (its event may not be taken yet).
    peer_close_parsed: bool,
    /// An outgoing fragmented message is open.
    sending_fragmented: bool,
    /// permessage-deflate, when negotiated.
    deflate: Option<DeflateState>,
    /// Messages of at least this many bytes are compressed: `usize::MAX` without permessage-deflate,
    /// so the uncompressed path costs one comparison.
    compress_threshold: usize,
    /// The outgoing fragmented message is compressed.
    sending_compressed: bool,
    /// The transport's end, as far as it has gone.
    transport: closing::TransportState,
    /// Keepalive, idle and close deadlines.
    timers: Timers,
    mask_keys: MaskKeys,
}

impl Connection {
    /// A connection in the open state, after the opening handshake, without extensions. Pass an
    /// `Arc<Config>` to share one configuration between many connections (a server's), or a
    /// `Config`.
    pub fn new(role: Role, config: impl Into<Arc<Config>>) -> Self {
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
    /// has no context takeover. Built without the cargo feature `deflate` (no codec), the
    /// parameters are ignored and the connection runs without the extension; the handshake of
    /// such a build never agrees to it.
    ///
    /// ```
    /// # #[cfg(feature = "deflate")] {
    /// use bytes::Buf;
    /// use duplex_proto::{Config, Connection, DeflateParams, Event, Message, Role};
    /// let params = DeflateParams::default();
    /// let mut client = Connection::with_deflate(Role::Client, Config::default(), Some(params.clone()));
    /// let mut server = Connection::with_deflate(Role::Server, Config::default(), Some(params));
    /// client.send(Message::Text("hello ".repeat(100))).unwrap();
    /// let n = client.outgoing().remaining();
    /// let wire = client.outgoing().copy_to_bytes(n);
    /// assert!(wire.len() < 50); // 600 bytes of text, compressed
    /// server.receive(&wire);
    /// assert_eq!(server.next_event(), Ok(Some(Event::Message(Message::Text("hello ".repeat(100))))));
    /// # }
    /// ```
    pub fn with_deflate(role: Role, config: impl Into<Arc<Config>>, deflate: Option<DeflateParams>) -> Self {
        let config = config.into();
        // Without the codec (cargo feature `deflate` off) there is no state to build: the
        // connection runs without the extension.
        let deflate = deflate.and_then(|params| {
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
            let (compressor, decompressor) =
                deflate::codecs(config.deflate.level, config.deflate.mem_level, own, peer)?;
            Some(DeflateState { params, compressor, decompressor })
        });
        let compress_threshold = if deflate.is_some() { config.deflate.min_size } else { usize::MAX };
        let timers = Timers::new(&config);
        Connection {
            role,
            state: State::Open,
            config,
            decoder: Decoder::new(),
            message: None,
            control: Vec::new(),
            events: Events::default(),
            out: Outgoing::default(),
            closing: None,
            close_initiator: None,
            peer_close_parsed: false,
            sending_fragmented: false,
            deflate,
            compress_threshold,
            sending_compressed: false,
            transport: closing::TransportState::default(),
            timers,
            mask_keys: MaskKeys::default(),
        }
    }

    /// Draws this connection's masking keys from `rng` instead of its own generator: for tests
    /// that replay a session byte for byte with a seeded generator. Only a client draws keys.
    ///
    /// Leave the default in production: RFC 6455 §5.3 requires keys a proxy cannot predict, which
    /// a generator of known seed does not give. The default is a ChaCha12 generator per
    /// connection, seeded from the operating system's entropy (through the thread's CSPRNG).
    ///
    /// ```
    /// use bytes::Buf;
    /// use duplex_proto::{Config, Connection, Role};
    /// use rand::SeedableRng;
    /// let wire = || {
    ///     let rng = rand::rngs::StdRng::seed_from_u64(7);
    ///     let mut c = Connection::new(Role::Client, Config::default()).with_rng(rng);
    ///     c.send_text("same bytes every time").unwrap();
    ///     let n = c.outgoing().remaining();
    ///     c.outgoing().copy_to_bytes(n)
    /// };
    /// assert_eq!(wire(), wire());
    /// ```
    pub fn with_rng(mut self, rng: impl RngCore + Send + 'static) -> Self {
        self.mask_keys = MaskKeys(Some(Box::new(rng)));
        self
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

    /// Whether bytes received now are still parsed: false once the peer's close frame arrived,
    /// the connection failed or the transport ended. Bytes received after that are discarded (the
    /// driver still reads them, to see the transport's end).
    pub fn wants_input(&self) -> bool {
        !self.decoder.is_done()
    }

    /// How the close handshake went: the close frame that started it and which end sent it.
    /// `None` until a close frame has been sent or received (and its event taken).
    pub fn close_info(&self) -> Option<CloseInfo> {
        let frame = match self.close_initiator? {
            Side::Local => self.close_sent().cloned().filter(|f| f.code != CloseCode::NO_STATUS),
            Side::Remote => self.closing.as_ref().and_then(|c| c.received.clone().flatten()),
        };
        Some(CloseInfo { frame, initiator: self.close_initiator? })
    }

    /// What ended the connection abnormally — a violation, the transport's end before the close
    /// handshake, a timeout — once [`next_event`](Connection::next_event) has reported it.
    pub fn failure(&self) -> Option<&ConnectionError> {
        self.closing.as_ref().and_then(|c| c.failure.as_ref())
    }

    /// Whether events are waiting in [`Connection::next_event`].
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// What is waiting to be written. Write from it and [`bytes::Buf::advance`] by what was
    /// written.
    pub fn outgoing(&mut self) -> &mut Outgoing {
        &mut self.out
    }

    /// Unwritten bytes (`bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.out.len()
    }

    /// Approximate heap bytes this connection holds right now, beyond `size_of::<Connection>()`.
    pub fn heap_size(&self) -> usize {
        self.message.as_ref().map_or(0, Incoming::heap_size)
            + self.control.capacity()
            + self.events.heap_capacity() * std::mem::size_of::<Pending>()
            + self.out.len()
            + self.deflate.as_ref().map_or(0, |d| {
                let c = if d.compressor.is_allocated() {
                    deflate::compressor_heap_size(d.compressor.window_bits(), d.compressor.memory_level())
                } else {
                    0
                };
                let i = if d.decompressor.is_allocated() {
                    deflate::decompressor_heap_size(d.decompressor.window_bits())
                } else {
                    d.decompressor.history_len()
                };
                c + i
            })
    }

    /// Takes the next event, queueing the reaction the protocol requires for it.
    ///
    /// `Err` reports why the connection ended abnormally: a violation by the peer (the close frame
    /// with its code is queued), the transport's end before the close handshake, or a timeout.
    /// The connection is then [`State::Closed`] and no more events follow. `Ok(None)`: nothing to
    /// report until more bytes, the end of the stream or a deadline arrive.
    #[inline]
    pub fn next_event(&mut self) -> Result<Option<Event>, ConnectionError> {
        // A driver asks at least twice per message, the second time to find nothing: that
        // answer is a test in the caller, not a call.
        if self.events.is_empty() {
            return Ok(None);
        }
        self.next_queued_event()
    }

    fn next_queued_event(&mut self) -> Result<Option<Event>, ConnectionError> {
        match self.events.pop_front() {
            None => Ok(None),
            Some(Pending::Fail(e)) => {
                self.take_failure(&e);
                Err(e)
            }
            Some(Pending::Event(event)) => {
                match &event {
                    Event::Ping(payload) if self.config.auto_pong && self.close_sent().is_none() => {
                        self.queue_control(crate::frame::Opcode::Pong, payload);
                    }
                    Event::Close(frame) => self.take_peer_close(frame),
                    _ => {}
                }
                Ok(Some(event))
            }
        }
    }

    /// The close frame this end sent.
    fn close_sent(&self) -> Option<&CloseFrame> {
        self.closing.as_ref().and_then(|c| c.sent.as_ref())
    }

    /// The closing state, allocated on first use.
    fn closing_mut(&mut self) -> &mut Closing {
        self.closing.get_or_insert_with(Default::default)
    }

    /// Queues a failure, reported by `next_event` after the events before it.
    fn push_failure(&mut self, e: ConnectionError) {
        self.events.push_back(Pending::Fail(e));
    }
}

#[cfg(test)]
pub(crate) mod tests;
