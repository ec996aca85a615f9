//! [`PreparedFrame`]: a message framed once and sent to many connections (fan-out, broadcast).
//!
//! A server's frames are not masked (RFC 6455 §5.1), so the bytes of one message's frame are the
//! same for every recipient: they are built on the first send and shared (a reference count, no
//! copy) by every connection after it. With permessage-deflate the same holds for a compressed
//! frame when the server compresses every message on its own (`server_no_context_takeover`,
//! RFC 7692 §7.1.1.1): the message is compressed once per window size, not once per recipient.
//! A connection whose compressor keeps its context compresses the message itself.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

#[cfg(feature = "deflate")]
use crate::deflate::Compressor;
#[cfg(feature = "deflate")]
use crate::frame::RSV1;
use crate::frame::{FrameHeader, Opcode};
use crate::message::{Message, MessageKind};

/// A message framed once for many server connections; cloning it is cheap (a reference count).
/// Send it with [`Connection::send_prepared`](crate::Connection::send_prepared).
///
/// ```
/// use bytes::Buf;
/// use duplex_proto::{Config, Connection, Message, PreparedFrame, Role};
/// let frame = PreparedFrame::new(Message::Text("tick".into()));
/// let mut a = Connection::new(Role::Server, Config::default());
/// let mut b = Connection::new(Role::Server, Config::default());
/// a.send_prepared(&frame).unwrap();
/// b.send_prepared(&frame).unwrap();
/// assert_eq!(a.outgoing().chunk(), b"\x81\x04tick");
/// assert_eq!(frame.plain(), &b"\x81\x04tick"[..]);
/// ```
#[derive(Clone)]
pub struct PreparedFrame(Arc<Inner>);

struct Inner {
    kind: MessageKind,
    payload: Bytes,
    /// The uncompressed frame, built on first use.
    plain: OnceLock<Bytes>,
    /// The compressed frames, by codec window bits 9..=15 (8 is served by 9), built on first use.
    #[cfg(feature = "deflate")]
    compressed: [OnceLock<Bytes>; 7],
}

impl PreparedFrame {
    /// Prepares `message`; nothing is encoded until a connection sends it.
    pub fn new(message: impl Into<Message>) -> Self {
        let message = message.into();
        PreparedFrame(Arc::new(Inner {
            kind: message.kind(),
            payload: message.into_bytes(),
            plain: OnceLock::new(),
            #[cfg(feature = "deflate")]
            compressed: Default::default(),
        }))
    }

    /// The message's kind.
    pub fn kind(&self) -> MessageKind {
        self.0.kind
    }

    /// The message's payload.
    pub fn payload(&self) -> &Bytes {
        &self.0.payload
    }

    /// The whole uncompressed frame: header and payload, encoded on the first call.
    pub fn plain(&self) -> &Bytes {
        self.0.plain.get_or_init(|| frame_of(Opcode::for_message(self.0.kind), 0, &self.0.payload))
    }

    /// The whole frame compressed on its own (no context) with a `window_bits` window (8..=15)
    /// at `level`, RSV1 set: valid on every connection whose server compresses without context
    /// takeover with a window at least as large. Compressed on the first call for each window; the
    /// level of that first call is kept. Needs the cargo feature `deflate`.
    #[cfg(feature = "deflate")]
    pub fn compressed(&self, window_bits: u8, level: u32) -> &Bytes {
        let bits = crate::deflate::codec_window_bits(window_bits);
        self.0.compressed[usize::from(bits - 9)].get_or_init(|| {
            let mut payload = Vec::new();
            Compressor::new(level, bits, true).compress(&self.0.payload, &mut payload, true);
            frame_of(Opcode::for_message(self.0.kind), RSV1, &payload)
        })
    }
}

impl fmt::Debug for PreparedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedFrame").field("kind", &self.0.kind).field("len", &self.0.payload.len()).finish()
    }
}

impl From<Message> for PreparedFrame {
    fn from(m: Message) -> Self {
        PreparedFrame::new(m)
    }
}

/// A whole unmasked frame: header and payload in one buffer.
fn frame_of(opcode: Opcode, rsv: u8, payload: &[u8]) -> Bytes {
    let header = FrameHeader { fin: true, rsv, opcode, mask: None, payload_len: payload.len() as u64 }.encoded();
    let mut v = Vec::with_capacity(header.len() + payload.len());
    v.extend_from_slice(&header);
    v.extend_from_slice(payload);
    Bytes::from(v)
}
