//! The messages of one echo connection: what it sends ([`Sender`], each connection's frame
//! masked once, only the sequence number patched per message) and how it checks what comes back
//! ([`Checker`]).

use std::collections::VecDeque;
use std::time::Instant;

use duplex_proto::frame::{FrameHeader, Opcode, MAX_HEADER_LEN};
use duplex_proto::mask;

/// What every connection sends.
pub(super) struct Plan {
    pub(super) size: usize,
    pub(super) in_flight: usize,
    pub(super) text: bool,
}

/// Frames at most this long are copied into one buffer per wake-up (one write for a burst);
/// longer ones are written straight from the connection's masked frame.
const BATCH_FRAME_MAX: usize = 4096;
/// The batch buffer's size.
const BATCH_BYTES: usize = 64 * 1024;

/// A connection's outgoing side: the masked frame, patched with each message's sequence number.
pub(super) struct Sender {
    /// Header and masked payload; the first `seq_len` payload bytes hold the sequence number.
    pub(super) frame: Vec<u8>,
    pub(super) header_len: usize,
    pub(super) seq_len: usize,
    pub(super) key: [u8; 4],
    /// Small frames: several frames copied together. Large frames: unused.
    pub(super) batch: Vec<u8>,
    /// Write position in the current buffer (`batch`, or `frame` for large frames).
    pub(super) pos: usize,
    /// The current buffer holds a frame (or batch) not yet fully written.
    pub(super) busy: bool,
    /// Frames not yet put in a buffer.
    pub(super) queued: usize,
    pub(super) next_seq: u64,
}

impl Sender {
    pub(super) fn new(plan: &Plan, conn: usize) -> Self {
        let key: [u8; 4] = rand::random();
        let payload = template(plan.size, conn);
        let opcode = if plan.text { Opcode::Text } else { Opcode::Binary };
        let header = FrameHeader { fin: true, rsv: 0, opcode, mask: Some(key), payload_len: plan.size as u64 };
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        let header_len = header.encode(&mut hbuf);
        let mut frame = Vec::with_capacity(header_len + plan.size);
        frame.extend_from_slice(&hbuf[..header_len]);
        frame.extend_from_slice(&payload);
        mask::apply(&mut frame[header_len..], key, 0);
        let batched = frame.len() <= BATCH_FRAME_MAX;
        Sender {
            frame,
            header_len,
            seq_len: plan.size.min(16),
            key,
            batch: if batched { Vec::with_capacity(BATCH_BYTES) } else { Vec::new() },
            pos: 0,
            busy: false,
            queued: 0,
            next_seq: 0,
        }
    }

    pub(super) fn batched(&self) -> bool {
        self.frame.len() <= BATCH_FRAME_MAX
    }

    /// Writes `seq` (masked) into the frame.
    pub(super) fn patch(&mut self, seq: u64) {
        let mut digits = [0u8; 16];
        seq_digits(seq, &mut digits[..self.seq_len]);
        let at = self.header_len;
        for (i, d) in digits[..self.seq_len].iter().enumerate() {
            self.frame[at + i] = d ^ self.key[i & 3];
        }
    }

    /// Fills the current buffer if it is empty; returns the send times of the frames it took.
    pub(super) fn refill(&mut self, sent: &mut VecDeque<Instant>, now: Instant) {
        if self.busy || self.queued == 0 {
            return;
        }
        if self.batched() {
            self.batch.clear();
            while self.queued > 0 && self.batch.len() + self.frame.len() <= BATCH_BYTES.max(self.frame.len()) {
                let seq = self.next_seq;
                self.patch(seq);
                self.batch.extend_from_slice(&self.frame);
                self.next_seq += 1;
                self.queued -= 1;
                sent.push_back(now);
            }
        } else {
            let seq = self.next_seq;
            self.patch(seq);
            self.next_seq += 1;
            self.queued -= 1;
            sent.push_back(now);
        }
        self.pos = 0;
        self.busy = true;
    }

    pub(super) fn pending(&self) -> &[u8] {
        if !self.busy {
            return &[];
        }
        if self.batched() {
            &self.batch[self.pos..]
        } else {
            &self.frame[self.pos..]
        }
    }

    pub(super) fn advance(&mut self, n: usize) {
        self.pos += n;
        let len = if self.batched() { self.batch.len() } else { self.frame.len() };
        if self.pos >= len {
            self.busy = false;
            self.pos = 0;
        }
    }

    pub(super) fn has_output(&self) -> bool {
        self.busy || self.queued > 0
    }
}

/// The payload a connection sends before the sequence number is written in: printable ASCII,
/// different for each connection.
pub(super) fn template(size: usize, conn: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + ((i * 7 + conn * 13) % 26) as u8).collect()
}

/// `seq` as lowercase hex, right-aligned in `out` (its low digits when `out` is short).
pub(super) fn seq_digits(mut seq: u64, out: &mut [u8]) {
    for d in out.iter_mut().rev() {
        *d = b"0123456789abcdef"[(seq & 15) as usize];
        seq >>= 4;
    }
}

/// A connection's incoming side: checks each echo against the template.
pub(super) struct Checker {
    pub(super) expected: Vec<u8>,
    pub(super) seq_len: usize,
    pub(super) opcode: Opcode,
    pub(super) next_seq: u64,
    /// Payload bytes of the current (possibly fragmented) echo checked so far.
    pub(super) offset: usize,
    pub(super) in_message: bool,
}

impl Checker {
    /// Checks a data frame's payload; returns whether it completed a message.
    pub(super) fn data(&mut self, header: &FrameHeader, payload: &[u8]) -> Result<bool, String> {
        let first = !self.in_message;
        match (first, header.opcode) {
            (true, op) if op == self.opcode => {}
            (false, Opcode::Continuation) => {}
            (_, op) => return Err(format!("unexpected {op:?} frame (expected {:?})", self.opcode)),
        }
        if header.rsv != 0 {
            return Err("reserved bits set on an echo (no extension was negotiated)".into());
        }
        let end = self.offset + payload.len();
        if end > self.expected.len() {
            return Err(format!("echo {} longer than the {} bytes sent", self.next_seq, self.expected.len()));
        }
        if first {
            let mut digits = [0u8; 16];
            seq_digits(self.next_seq, &mut digits[..self.seq_len]);
            self.expected[..self.seq_len].copy_from_slice(&digits[..self.seq_len]);
        }
        if payload != &self.expected[self.offset..end] {
            let at = payload.iter().zip(&self.expected[self.offset..end]).position(|(a, b)| a != b).unwrap_or(0);
            return Err(format!("echo {} differs from what was sent at byte {}", self.next_seq, self.offset + at));
        }
        self.offset = end;
        self.in_message = true;
        if header.fin {
            if self.offset != self.expected.len() {
                return Err(format!("echo {} has {} bytes, sent {}", self.next_seq, self.offset, self.expected.len()));
            }
            self.offset = 0;
            self.in_message = false;
            self.next_seq += 1;
            return Ok(true);
        }
        Ok(false)
    }
}

/// Drives one connection until the run stops or something fails.
#[cfg(test)]
mod tests {
    use super::*;

    fn unmask(frame: &[u8]) -> (FrameHeader, Vec<u8>) {
        let (h, hlen) = FrameHeader::decode(frame).unwrap().unwrap();
        let mut p = frame[hlen..].to_vec();
        mask::apply(&mut p, h.mask.unwrap(), 0);
        (h, p)
    }

    #[test]
    fn sender_patches_sequence_numbers_into_masked_frames() {
        let plan = Plan { size: 20, in_flight: 3, text: true };
        let mut s = Sender::new(&plan, 7);
        let mut sent = VecDeque::new();
        s.queued = 3;
        s.refill(&mut sent, Instant::now());
        assert_eq!(sent.len(), 3);
        let batch = s.pending().to_vec();
        let flen = s.frame.len();
        assert_eq!(batch.len(), 3 * flen);
        for (i, f) in batch.chunks(flen).enumerate() {
            let (h, p) = unmask(f);
            assert_eq!(h.opcode, Opcode::Text);
            assert_eq!(&p[..16], format!("{i:016x}").as_bytes());
            assert_eq!(&p[16..], &template(20, 7)[16..]);
        }
    }

    #[test]
    fn large_frames_are_written_one_at_a_time() {
        let plan = Plan { size: 1 << 20, in_flight: 2, text: false };
        let mut s = Sender::new(&plan, 0);
        let mut sent = VecDeque::new();
        s.queued = 2;
        s.refill(&mut sent, Instant::now());
        assert_eq!(sent.len(), 1);
        let flen = s.frame.len();
        assert_eq!(s.pending().len(), flen);
        s.advance(flen - 1);
        assert!(s.busy);
        s.advance(1);
        assert!(!s.busy);
        s.refill(&mut sent, Instant::now());
        let (_, p) = unmask(s.pending());
        assert_eq!(&p[..16], b"0000000000000001");
    }

    #[test]
    fn checker_accepts_echoes_and_fragments_and_rejects_changes() {
        let size = 40;
        let mut c = Checker {
            expected: template(size, 1),
            seq_len: 16,
            opcode: Opcode::Binary,
            next_seq: 0,
            offset: 0,
            in_message: false,
        };
        let mut msg = template(size, 1);
        seq_digits(0, &mut msg[..16]);
        let whole = FrameHeader { fin: true, rsv: 0, opcode: Opcode::Binary, mask: None, payload_len: 40 };
        assert_eq!(c.data(&whole, &msg), Ok(true));
        // The next echo in two fragments.
        seq_digits(1, &mut msg[..16]);
        let first = FrameHeader { fin: false, payload_len: 10, ..whole };
        let cont = FrameHeader { fin: true, opcode: Opcode::Continuation, payload_len: 30, ..whole };
        assert_eq!(c.data(&first, &msg[..10]), Ok(false));
        assert_eq!(c.data(&cont, &msg[10..]), Ok(true));
        // A changed byte, a stale sequence number, a short echo.
        seq_digits(2, &mut msg[..16]);
        let mut bad = msg.clone();
        bad[30] ^= 1;
        assert!(c.data(&whole, &bad).unwrap_err().contains("at byte 30"));
        let mut c2 = Checker { next_seq: 3, offset: 0, in_message: false, expected: template(size, 1), ..c };
        assert!(c2.data(&whole, &msg).is_err());
        let short = FrameHeader { payload_len: 39, ..whole };
        let mut c3 = Checker { next_seq: 2, offset: 0, in_message: false, expected: template(size, 1), ..c2 };
        assert!(c3.data(&short, &msg[..39]).unwrap_err().contains("has 39 bytes"));
    }
}
