//! The receiving direction: frame headers and payloads decoded from whatever pieces the transport
//! reads, checked against RFC 6455 §5 and the configured limits, and turned into events.

use bytes::Bytes;

use super::reassembly::{compressed_wire_limit, grow_within, initial_reservation, Incoming};
use super::{Connection, Event, Pending, Role};
use crate::close::{self, ClosePayloadError};
use crate::error::{ConnectionError, ProtocolError, Violation};
use crate::frame::{FrameHeader, Opcode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1};
use crate::mask;
use crate::message::MessageKind;

/// The frame being received.
#[derive(Debug)]
pub(super) enum Decoder {
    /// Collecting a header; `len` bytes of it are in `buf`.
    Header { buf: [u8; MAX_HEADER_LEN], len: u8 },
    /// Receiving a payload.
    Payload(FrameInProgress),
    /// Input is no longer parsed: after the peer's close frame, a violation, or the end of the
    /// transport.
    Done,
}

impl Decoder {
    pub(super) fn new() -> Self {
        Decoder::Header { buf: [0; MAX_HEADER_LEN], len: 0 }
    }

    pub(super) fn is_done(&self) -> bool {
        matches!(self, Decoder::Done)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct FrameInProgress {
    pub(super) opcode: Opcode,
    pub(super) fin: bool,
    pub(super) mask: Option<[u8; 4]>,
    pub(super) mask_offset: usize,
    pub(super) remaining: u64,
}

impl Connection {
    /// Feeds bytes read from the transport. All of `data` is consumed: what belongs to an incomplete
    /// frame is kept (only the payload bytes a message needs, never a copy of the read buffer).
    /// Bytes after the peer's close frame or a violation are discarded.
    pub fn receive(&mut self, mut data: &[u8]) {
        // A sign of life for the keepalive: a flag, turned into a time at the next deadline, so
        // no clock is read per read.
        self.timers.read_seen = true;
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
                self.decoder = Decoder::new();
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
                    self.message = Some(Incoming::new(kind, h.payload_len, compressed, self.config.streaming));
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
            self.decoder = Decoder::new();
            self.end_frame(frame, false);
        }
        rest
    }

    /// A frame's payload is complete; `empty` if it had none.
    fn end_frame(&mut self, frame: FrameInProgress, empty: bool) {
        match frame.opcode {
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                if frame.fin {
                    self.end_message(empty);
                }
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
                        // RFC 6455 §1.4: after the peer's close frame, further data is discarded.
                        self.decoder = Decoder::Done;
                        self.peer_close_parsed = true;
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
    pub(super) fn fail(&mut self, violation: Violation) {
        self.stop_input();
        self.push_failure(ConnectionError::Protocol(ProtocolError::new(violation)));
    }

    /// Stops parsing input and drops what a partial message or control frame held.
    pub(super) fn stop_input(&mut self) {
        self.decoder = Decoder::Done;
        self.message = None;
        self.control = Vec::new();
    }
}
