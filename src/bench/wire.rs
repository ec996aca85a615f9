//! What every bench mode does the same way on the wire: the phase of a run, the reader that
//! takes server frames out of a read buffer, and the masked control frames a client sends.

use std::sync::atomic::{AtomicU8, Ordering};

use duplex_proto::frame::{FrameHeader, Opcode, MAX_HEADER_LEN};
use duplex_proto::mask;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;

/// Where a run is: load before measuring, the measured interval, then the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// Load running, nothing counted yet.
    Warmup = 0,
    /// The measured interval.
    Measure = 1,
    /// Stop sending; connection tasks end at their next wake-up.
    Stop = 2,
}

/// The run's [`Stage`], shared by the coordinator and every connection task.
#[derive(Debug, Default)]
pub struct Phase(AtomicU8);

impl Phase {
    /// The current stage.
    pub fn get(&self) -> Stage {
        match self.0.load(Ordering::Relaxed) {
            0 => Stage::Warmup,
            1 => Stage::Measure,
            _ => Stage::Stop,
        }
    }

    /// Moves the run to `stage`.
    pub fn set(&self, stage: Stage) {
        self.0.store(stage as u8, Ordering::Relaxed);
    }
}

/// Server frames out of one connection's read buffer: whole frames are handed out in place,
/// a partial one waits for the next read.
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Below this much room after the data, the data moves to the front before the next read.
    min_read: usize,
}

impl FrameReader {
    /// A reader whose buffer holds `capacity` bytes (the largest frame it accepts), starting with
    /// `leftover`, what arrived after the handshake's response.
    pub fn new(capacity: usize, leftover: &[u8]) -> FrameReader {
        let capacity = capacity.max(leftover.len()).max(2 * MAX_HEADER_LEN);
        let mut buf = vec![0u8; capacity];
        buf[..leftover.len()].copy_from_slice(leftover);
        FrameReader { buf, start: 0, end: leftover.len(), min_read: (capacity / 8).clamp(1024, 16 * 1024) }
    }

    /// Calls `each` with every whole frame in the buffer, in order, then makes room for the next
    /// read. A masked frame, or one larger than the buffer, is an error.
    pub fn frames(&mut self, mut each: impl FnMut(&FrameHeader, &[u8]) -> Result<(), String>) -> Result<(), String> {
        // How long the partial frame at `start` is, once its header is here.
        let mut partial = MAX_HEADER_LEN;
        loop {
            let avail = &self.buf[self.start..self.end];
            let Some((header, hlen)) = FrameHeader::decode(avail).map_err(|e| format!("bad frame: {e}"))? else {
                break;
            };
            if header.mask.is_some() {
                return Err("the server sent a masked frame".into());
            }
            let len = hlen as u64 + header.payload_len;
            if len > self.buf.len() as u64 {
                return Err(format!("a {}-byte frame is larger than expected", header.payload_len));
            }
            let len = len as usize;
            if avail.len() < len {
                partial = len;
                break;
            }
            each(&header, &avail[hlen..len])?;
            self.start += len;
        }
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.buf.len() - self.end < self.min_read || self.buf.len() - self.start < partial {
            self.buf.copy_within(self.start..self.end, 0);
            (self.end, self.start) = (self.end - self.start, 0);
        }
        Ok(())
    }

    /// Reads what the socket has into the free end of the buffer; the server's end of the TCP
    /// stream is an error (a bench connection never expects it).
    pub async fn fill(&mut self, rd: &mut OwnedReadHalf) -> Result<(), String> {
        let n = rd.read(&mut self.buf[self.end..]).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the server closed the TCP connection".into());
        }
        self.end += n;
        Ok(())
    }
}

/// A masked control frame (pong, close); the payload is cut at the 125 bytes a control frame holds.
pub fn masked_control(opcode: Opcode, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(125)];
    let header = FrameHeader { fin: true, rsv: 0, opcode, mask: Some(key), payload_len: payload.len() as u64 };
    let mut hbuf = [0u8; MAX_HEADER_LEN];
    let hlen = header.encode(&mut hbuf);
    let mut v = Vec::with_capacity(hlen + payload.len());
    v.extend_from_slice(&hbuf[..hlen]);
    v.extend_from_slice(payload);
    mask::apply(&mut v[hlen..], key, 0);
    v
}

/// A close frame's payload, for an error message.
pub fn close_reason(payload: &[u8]) -> String {
    match payload {
        [a, b, rest @ ..] => format!("close {} {:?}", u16::from_be_bytes([*a, *b]), String::from_utf8_lossy(rest)),
        _ => "close without a code".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader { fin: true, rsv: 0, opcode, mask: None, payload_len: payload.len() as u64 };
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        let hlen = header.encode(&mut hbuf);
        [&hbuf[..hlen], payload].concat()
    }

    fn collect(reader: &mut FrameReader) -> Result<Vec<(Opcode, Vec<u8>)>, String> {
        let mut out = Vec::new();
        reader.frames(|h, p| {
            out.push((h.opcode, p.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn whole_frames_out_partial_frames_kept() {
        let a = server_frame(Opcode::Text, b"hello");
        let b = server_frame(Opcode::Binary, &[7u8; 300]);
        let mut bytes = [a.clone(), b.clone()].concat();
        let tail = bytes.split_off(a.len() + 10);
        let mut reader = FrameReader::new(4096, &bytes);
        assert_eq!(collect(&mut reader).unwrap(), vec![(Opcode::Text, b"hello".to_vec())]);
        // The rest of the binary frame arrives.
        let at = reader.end;
        reader.buf[at..at + tail.len()].copy_from_slice(&tail);
        reader.end += tail.len();
        assert_eq!(collect(&mut reader).unwrap(), vec![(Opcode::Binary, vec![7u8; 300])]);
        assert_eq!((reader.start, reader.end), (0, 0));
    }

    #[test]
    fn a_partial_frame_moves_to_the_front_when_it_would_not_fit() {
        let small = server_frame(Opcode::Binary, &[1u8; 3000]);
        let big = server_frame(Opcode::Binary, &[2u8; 3000]);
        let bytes = [small, big[..100].to_vec()].concat();
        let mut reader = FrameReader::new(4096, &bytes);
        assert_eq!(collect(&mut reader).unwrap().len(), 1);
        assert_eq!(reader.start, 0, "the partial frame starts the buffer again");
        let at = reader.end;
        reader.buf[at..at + big.len() - 100].copy_from_slice(&big[100..]);
        reader.end += big.len() - 100;
        assert_eq!(collect(&mut reader).unwrap(), vec![(Opcode::Binary, vec![2u8; 3000])]);
    }

    #[test]
    fn masked_or_oversized_frames_are_errors() {
        let masked = masked_control(Opcode::Ping, b"x", [1, 2, 3, 4]);
        assert!(collect(&mut FrameReader::new(4096, &masked)).unwrap_err().contains("masked"));
        let huge = server_frame(Opcode::Binary, &[0u8; 5000]);
        assert!(collect(&mut FrameReader::new(4096, &huge[..20])).unwrap_err().contains("larger"));
    }

    #[test]
    fn control_frames_are_masked_and_cut_to_125_bytes() {
        let frame = masked_control(Opcode::Close, &[0u8; 200], [9, 9, 9, 9]);
        let (header, hlen) = FrameHeader::decode(&frame).unwrap().unwrap();
        assert_eq!((header.opcode, header.payload_len, header.mask), (Opcode::Close, 125, Some([9, 9, 9, 9])));
        assert_eq!(frame.len(), hlen + 125);
        assert_eq!(close_reason(&[0x03, 0xe8, b'o', b'k']), "close 1000 \"ok\"");
    }
}
