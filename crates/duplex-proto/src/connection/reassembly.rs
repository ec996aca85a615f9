//! Messages put back together from their frames: unmasked, validated as UTF-8 as the bytes stream
//! in, inflated when compressed (RFC 7692), delivered whole or, in streaming mode, piece by piece —
//! always within [`Config::max_message_size`](crate::Config::max_message_size).

use bytes::Bytes;

use super::receive::FrameInProgress;
use super::{Connection, Event, Pending};
use crate::deflate;
use crate::error::Violation;
use crate::mask;
use crate::message::{Fragment, Message, MessageKind};
use crate::utf8::Utf8Validator;

/// The largest piece of inflated data delivered at once in streaming mode.
const STREAM_PIECE: usize = 64 * 1024;

/// Compressed bytes are unmasked this many at a time before they are inflated.
const UNMASK_PIECE: usize = 8192;

thread_local! {
    /// Where a compressed frame's bytes are unmasked before they are inflated: one buffer per
    /// thread (at most [`UNMASK_PIECE`] bytes), so no connection holds one, and nothing to zero
    /// per frame as a stack array would be.
    static UNMASKED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The message being received.
#[derive(Debug)]
pub(super) struct Incoming {
    pub(super) kind: MessageKind,
    /// The payload so far (not used when streaming).
    pub(super) data: Vec<u8>,
    /// Bytes received so far, for the message size limit.
    pub(super) size: u64,
    /// Streaming: no piece delivered yet.
    first: bool,
    utf8: Utf8Validator,
    /// The message is compressed (RSV1 on its first frame): `data` holds inflated bytes.
    pub(super) compressed: bool,
    /// Streaming a compressed message: inflated bytes delivered so far, for the size limit.
    inflated: usize,
}

impl Incoming {
    /// A message whose first frame announced `len` bytes.
    #[inline]
    pub(super) fn new(kind: MessageKind, len: u64, compressed: bool, streaming: bool) -> Self {
        // A compressed message's buffer grows with what is inflated, not with what the header
        // announces; a streamed one has no buffer.
        let data = if streaming || compressed { Vec::new() } else { Vec::with_capacity(initial_reservation(len)) };
        Incoming { kind, data, size: len, first: true, utf8: Utf8Validator::default(), compressed, inflated: 0 }
    }

    pub(super) fn heap_size(&self) -> usize {
        self.data.capacity()
    }
}

/// The largest compressed message accepted on the wire for a `limit` on its inflated size: a
/// little more than the limit, since incompressible data grows by a few bytes per 16 KiB block.
pub(super) fn compressed_wire_limit(limit: usize) -> u64 {
    (limit as u64).saturating_add(limit as u64 >> 10).saturating_add(64)
}

/// How much to reserve for a frame's payload before its bytes arrive: all of it for frames up to
/// 64 KiB (one allocation, no regrowth), then 64 KiB and growth as bytes actually arrive, so a
/// peer that sends only headers announcing large frames cannot make us reserve their declared
/// sizes (1,000 such connections cost 64 MiB of reservations, not gigabytes).
pub(super) fn initial_reservation(payload_len: u64) -> usize {
    payload_len.min(64 << 10) as usize
}

/// Makes room for `additional` more bytes in `data`, doubling its capacity as `Vec` would but
/// never beyond `bound` (unless the bytes themselves need more, which the size checks prevent).
pub(super) fn grow_within(data: &mut Vec<u8>, additional: usize, bound: usize) {
    let needed = data.len() + additional;
    if needed <= data.capacity() {
        return;
    }
    let target = (data.capacity() * 2).max(needed).min(bound.max(needed));
    data.reserve_exact(target - data.len());
}

impl Connection {
    /// Queues a message or a piece of one for the application.
    fn deliver(&mut self, event: Event) {
        // Activity for the idle timeout (pings and pongs do not count); a flag, as for reads.
        self.timers.message_seen = true;
        self.events.push_back(Pending::Event(event));
    }

    /// Appends (or, streaming, delivers) a piece of a data frame's payload, unmasked and validated.
    pub(super) fn data_payload(
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
            let kind = m.kind;
            self.deliver(Event::Fragment(Fragment { kind, data: Bytes::from(piece), first, last }));
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
        UNMASKED.with(|cell| {
            // Only a nested call on this thread (none today) would find it taken: then a buffer
            // of its own.
            let mut own = Vec::new();
            let mut shared = cell.try_borrow_mut();
            let buf = shared.as_deref_mut().unwrap_or(&mut own);
            let mut offset = mask_offset;
            for piece in chunk.chunks(UNMASK_PIECE) {
                buf.clear();
                offset = mask::extend_unmasked(buf, piece, Some(key), offset);
                self.inflate_message(buf, false)?;
            }
            Ok(())
        })
    }

    /// Inflates `input`, compressed bytes of the current message, into it (or, streaming, into
    /// fragments), validating text as it comes out and enforcing
    /// [`Config::max_message_size`](crate::Config::max_message_size) on the inflated size before
    /// the bytes are stored. `end`: the message is complete; inflate the trailer `00 00 ff ff`
    /// that the sender removed (RFC 7692 §7.2.2) and, streaming, deliver the last fragment.
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
                    // `deliver`, with the fields borrowed apart (the codec and message are in use).
                    self.timers.message_seen = true;
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

    /// The last frame of a data message is complete; `empty` if it had no payload.
    pub(super) fn end_message(&mut self, empty: bool) {
        if self.message.as_ref().is_some_and(|m| m.compressed) {
            if let Err(v) = self.inflate_message(&[], true) {
                self.fail(v);
                return;
            }
            if let Some(d) = &mut self.deflate {
                d.decompressor.end_message();
            }
            self.codec_used();
            if self.config.streaming {
                // `inflate_message` delivered the last piece.
                self.message = None;
                return;
            }
        }
        let m = self.message.take().expect("a data frame belongs to a message");
        if self.config.streaming {
            // A final frame with payload delivered its last piece in `data_payload`; an empty one
            // still owes the application the end of the message.
            if empty {
                let mut utf8 = m.utf8;
                if m.kind == MessageKind::Text && utf8.finish().is_err() {
                    self.fail(Violation::InvalidUtf8);
                    return;
                }
                self.deliver(Event::Fragment(Fragment {
                    kind: m.kind,
                    data: Bytes::new(),
                    first: m.first,
                    last: true,
                }));
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
                // `finish` confirmed the message does not end inside a character. The validator
                // is property-tested against `std::str::from_utf8`.
                Message::Text(unsafe { String::from_utf8_unchecked(m.data) })
            }
            MessageKind::Binary => Message::Binary(Bytes::from(m.data)),
        };
        self.deliver(Event::Message(message));
    }
}
