//! The sending direction: messages, fragments, control frames and frames encoded once for many
//! connections, framed (and compressed, and masked for a client) into the outgoing queue.

use bytes::Bytes;

use super::{Connection, Role, State};
use crate::close::{self, CloseCode, CloseFrame, Side};
use crate::error::SendError;
use crate::frame::{FrameHeader, Opcode, MAX_CONTROL_PAYLOAD, RSV1};
use crate::mask;
use crate::message::{Message, MessageKind};
use crate::prepared::PreparedFrame;

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

impl Connection {
    /// Queues a whole message as one frame.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        let opcode = Opcode::for_message(message.kind());
        self.send_frame(opcode, Payload::Owned(message.into_bytes()))
    }

    /// Queues a text message, copying it.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_frame(Opcode::Text, Payload::Borrowed(text.as_bytes()))
    }

    /// Queues a binary message, copying it.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_frame(Opcode::Binary, Payload::Borrowed(data))
    }

    /// Queues one frame of a fragmented message: `first` starts it with `kind`, `last` ends it.
    /// A message sent this way may be larger than anything held in memory at once.
    pub fn send_fragment(&mut self, kind: MessageKind, data: &[u8], first: bool, last: bool) -> Result<(), SendError> {
        // after a close frame nothing may be sent; say so (`Closed`), not `FragmentOrder`,
        // even if the close interrupted a fragmented message.
        if self.close_sent().is_some() {
            return Err(SendError::Closed);
        }
        if first == self.sending_fragmented {
            return Err(SendError::FragmentOrder);
        }
        let opcode = if first { Opcode::for_message(kind) } else { Opcode::Continuation };
        if first {
            // A fragmented message is compressed if its first fragment is large enough.
            self.sending_compressed = data.len() >= self.compress_threshold;
        }
        if self.sending_compressed {
            self.write_compressed(opcode, last, first, data);
        } else {
            self.write_frame(opcode, last, Payload::Borrowed(data));
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

    /// Queues a message framed once for many connections (fan-out): a server shares the frame's
    /// bytes with every other connection it is sent to, compressed once per window size when
    /// permessage-deflate is in force without context takeover for the server
    /// (`server_no_context_takeover`). With context takeover the frame goes uncompressed (RFC 7692
    /// §6 lets any message be sent so): a frame this connection's compressor did not see would
    /// leave the peer's window out of step, and compressing here would cost a compressor per
    /// recipient. A client masks its own copy.
    pub fn send_prepared(&mut self, frame: &PreparedFrame) -> Result<(), SendError> {
        if self.close_sent().is_some() {
            return Err(SendError::Closed);
        }
        if self.sending_fragmented {
            return Err(SendError::FragmentOrder);
        }
        let opcode = Opcode::for_message(frame.kind());
        if self.role == Role::Client {
            // RFC 6455 §5.3: a fresh masking key per frame, so nothing can be shared.
            return self.send_frame(opcode, Payload::Owned(frame.payload().clone()));
        }
        let shared = match &self.deflate {
            #[cfg(feature = "deflate")]
            Some(d) if d.params.server_no_context_takeover && frame.payload().len() >= self.compress_threshold => {
                frame.compressed(d.params.server_max_window_bits, self.config.deflate.level).clone()
            }
            _ => frame.plain().clone(),
        };
        if shared.len() <= self.config.copy_threshold {
            self.out.copy_from(&shared);
        } else {
            self.out.push(shared);
        }
        Ok(())
    }

    /// Starts the close handshake: queues a close frame (`None`: one without a status code).
    /// Messages received until the peer's close frame arrives are still delivered; if it does not
    /// arrive within [`Config::close_timeout`](crate::Config::close_timeout) the connection fails
    /// with [`TimeoutKind::Close`](crate::TimeoutKind::Close).
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), SendError> {
        if self.close_sent().is_some() {
            return Err(SendError::Closed);
        }
        let sent = match frame {
            Some(f) => {
                if !f.code.is_sendable() {
                    return Err(SendError::InvalidCloseCode(f.code));
                }
                let f = CloseFrame::new(f.code, close::truncate_reason(&f.reason));
                self.queue_close(&f);
                Some(f)
            }
            None => {
                self.queue_control(Opcode::Close, &[]);
                None
            }
        };
        self.closing_mut().sent = Some(sent.unwrap_or_else(|| CloseFrame::new(CloseCode::NO_STATUS, "")));
        self.close_initiator.get_or_insert(Side::Local);
        if self.closing.as_ref().is_some_and(|c| c.received.is_some()) {
            self.state = State::Closed;
        } else {
            self.state = State::CloseSent;
        }
        self.timers.start_close_deadline();
        Ok(())
    }

    fn send_control(&mut self, opcode: Opcode, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlFrameTooLong(payload.len()));
        }
        if self.close_sent().is_some() {
            return Err(SendError::Closed);
        }
        self.queue_control(opcode, payload);
        Ok(())
    }

    /// Queues a whole message, compressed if permessage-deflate is in force and it is large enough.
    fn send_frame(&mut self, opcode: Opcode, payload: Payload<'_>) -> Result<(), SendError> {
        // `Closed` takes precedence over `FragmentOrder` (see `send_fragment`).
        if self.close_sent().is_some() {
            return Err(SendError::Closed);
        }
        if self.sending_fragmented {
            return Err(SendError::FragmentOrder);
        }
        if payload.as_slice().len() >= self.compress_threshold {
            self.write_compressed(opcode, true, true, payload.as_slice());
        } else {
            self.write_frame(opcode, true, payload);
        }
        Ok(())
    }

    /// This end's masking key for its next frame: a client masks every frame (RFC 6455 §5.3).
    #[inline]
    fn next_mask(&mut self) -> Option<[u8; 4]> {
        match self.role {
            Role::Client => Some(self.mask_keys.next()),
            Role::Server => None,
        }
    }

    /// Compresses `data` (a message, or a fragment of one) and queues it as a frame with RSV1 on
    /// the message's first frame (RFC 7692 §6). The compressed bytes are a fresh buffer, masked
    /// in place for a client and queued without another copy when large.
    fn write_compressed(&mut self, opcode: Opcode, fin: bool, first: bool, data: &[u8]) {
        let mask = self.next_mask();
        let d = self.deflate.as_mut().expect("a finite compress_threshold implies permessage-deflate");
        let mut payload = Vec::new();
        d.compressor.compress(data, &mut payload, fin);
        let rsv = if first { RSV1 } else { 0 };
        let header = FrameHeader { fin, rsv, opcode, mask, payload_len: payload.len() as u64 };
        self.out.copy_from(&header.encoded());
        if let Some(key) = mask {
            mask::apply(&mut payload, key, 0);
        }
        if payload.len() > self.config.copy_threshold {
            self.out.push(Bytes::from(payload));
        } else {
            self.out.copy_from(&payload);
        }
        if fin {
            self.codec_used();
        }
    }

    pub(super) fn queue_close(&mut self, frame: &CloseFrame) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&frame.code.0.to_be_bytes());
        let reason = close::truncate_reason(&frame.reason).as_bytes();
        payload[2..2 + reason.len()].copy_from_slice(reason);
        self.queue_control(Opcode::Close, &payload[..2 + reason.len()]);
    }

    pub(super) fn queue_control(&mut self, opcode: Opcode, payload: &[u8]) {
        self.write_frame(opcode, true, Payload::Borrowed(payload));
    }

    /// Encodes a frame into the outgoing queue: header and small payloads copied, large ones queued
    /// as they are; client frames masked as they are copied.
    fn write_frame(&mut self, opcode: Opcode, fin: bool, payload: Payload<'_>) {
        let data = payload.as_slice();
        let mask = self.next_mask();
        let header = FrameHeader { fin, rsv: 0, opcode, mask, payload_len: data.len() as u64 };
        let header = header.encoded();
        // One reservation for header and copied payload: a small frame costs one allocation.
        let copied = match (&payload, mask) {
            (Payload::Owned(b), None) if b.len() > self.config.copy_threshold => 0,
            _ => data.len(),
        };
        self.out.reserve(header.len() + copied);
        self.out.copy_from(&header);
        match (mask, payload) {
            (Some(key), p) => self.out.copy_masked(p.as_slice(), key),
            (None, Payload::Owned(b)) if b.len() > self.config.copy_threshold => self.out.push(b),
            (None, p) => self.out.copy_from(p.as_slice()),
        }
    }
}
