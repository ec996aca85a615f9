//! The frame header (RFC 6455 §5.2): FIN, RSV1-3, opcode, mask bit, payload length, masking key.
//!
//! This module knows the wire format and nothing about the connection's state: which frames are
//! allowed when is [`crate::connection`]'s business.

use std::fmt;

/// A frame's opcode (RFC 6455 §5.2, §11.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// 0x0: the next fragment of a fragmented message.
    Continuation,
    /// 0x1: the first (or only) frame of a text message.
    Text,
    /// 0x2: the first (or only) frame of a binary message.
    Binary,
    /// 0x8: the close frame.
    Close,
    /// 0x9: a ping; the peer answers with a pong carrying the same payload.
    Ping,
    /// 0xA: a pong.
    Pong,
}

impl Opcode {
    /// Parses the low nibble of the first header byte; `None` for the reserved opcodes 3-7, B-F.
    pub fn from_u8(v: u8) -> Option<Opcode> {
        Some(match v {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    /// The opcode's value on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// The opcode of the first frame of a message of this kind.
    #[inline]
    pub fn for_message(kind: crate::message::MessageKind) -> Opcode {
        match kind {
            crate::message::MessageKind::Text => Opcode::Text,
            crate::message::MessageKind::Binary => Opcode::Binary,
        }
    }

    /// Close, ping and pong are control frames (RFC 6455 §5.5): at most 125 bytes, never fragmented.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// RSV1: set on the first frame of a message compressed with permessage-deflate (RFC 7692 §6).
pub const RSV1: u8 = 0x40;
/// RSV2: no extension of ours uses it.
pub const RSV2: u8 = 0x20;
/// RSV3: no extension of ours uses it.
pub const RSV3: u8 = 0x10;

/// The largest header: 2 bytes, an 8-byte extended length and a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// The three reserved bits as they stand in the first byte (`RSV1 | RSV2 | RSV3` mask).
    pub rsv: u8,
    /// The opcode.
    pub opcode: Opcode,
    /// The masking key, if the mask bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

/// Why a header could not be decoded. Each maps to close code 1002 (protocol error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// An opcode of the reserved ranges 0x3-0x7 or 0xB-0xF.
    ReservedOpcode(u8),
    /// A 64-bit length with the most significant bit set (RFC 6455 §5.2).
    LengthTooLarge,
    /// A 16- or 64-bit length that could have been written shorter (RFC 6455 §5.2: "the minimal number
    /// of bytes MUST be used").
    NonMinimalLength,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            HeaderError::LengthTooLarge => f.write_str("64-bit payload length with the top bit set"),
            HeaderError::NonMinimalLength => f.write_str("payload length not in its minimal encoding"),
        }
    }
}

impl FrameHeader {
    /// How many header bytes a frame needs, judged from its first two bytes.
    #[inline]
    pub fn len_from_prefix(b1: u8) -> usize {
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + mask
    }

    /// Decodes a header from the front of `buf`.
    ///
    /// Returns `Ok(None)` if `buf` does not yet hold the whole header, otherwise the header and its
    /// length in bytes.
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, HeaderError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let opcode = Opcode::from_u8(b0 & 0x0f).ok_or(HeaderError::ReservedOpcode(b0 & 0x0f))?;
        let len = Self::len_from_prefix(b1);
        if buf.len() < len {
            return Ok(None);
        }
        let (payload_len, mut at) = match b1 & 0x7f {
            126 => {
                let n = u16::from_be_bytes([buf[2], buf[3]]) as u64;
                if n < 126 {
                    return Err(HeaderError::NonMinimalLength);
                }
                (n, 4)
            }
            127 => {
                let n = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
                if n >> 63 != 0 {
                    return Err(HeaderError::LengthTooLarge);
                }
                if n <= 0xffff {
                    return Err(HeaderError::NonMinimalLength);
                }
                (n, 10)
            }
            n => (n as u64, 2),
        };
        let mask = if b1 & 0x80 != 0 {
            let k = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
            at += 4;
            Some(k)
        } else {
            None
        };
        debug_assert_eq!(at, len);
        Ok(Some((FrameHeader { fin: b0 & 0x80 != 0, rsv: b0 & (RSV1 | RSV2 | RSV3), opcode, mask, payload_len }, len)))
    }

    /// Writes the header into `out` and returns how many bytes it took (2 to 14).
    #[inline]
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (if self.fin { 0x80 } else { 0 }) | (self.rsv & 0x70) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = if self.payload_len < 126 {
            out[1] = mask_bit | self.payload_len as u8;
            2
        } else if self.payload_len <= 0xffff {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
            4
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            10
        };
        if let Some(key) = self.mask {
            out[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        at
    }

    /// The header's bytes, ready to copy in front of its payload.
    ///
    /// ```
    /// use duplex_proto::frame::{FrameHeader, Opcode};
    /// let h = FrameHeader { fin: true, rsv: 0, opcode: Opcode::Text, mask: None, payload_len: 2 };
    /// assert_eq!(&*h.encoded(), &[0x81, 0x02]);
    /// ```
    #[inline]
    pub fn encoded(&self) -> EncodedHeader {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let len = self.encode(&mut buf) as u8;
        EncodedHeader { buf, len }
    }

    /// The encoded length of this header.
    pub fn encoded_len(&self) -> usize {
        let ext = if self.payload_len < 126 {
            0
        } else if self.payload_len <= 0xffff {
            2
        } else {
            8
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(h: FrameHeader) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut buf);
        assert_eq!(n, h.encoded_len());
        assert_eq!(FrameHeader::len_from_prefix(buf[1]), n);
        for short in 0..n {
            assert_eq!(FrameHeader::decode(&buf[..short]), Ok(None));
        }
        assert_eq!(FrameHeader::decode(&buf[..n]), Ok(Some((h, n))));
    }

    #[test]
    fn rfc_examples() {
        // RFC 6455 §5.7: a single-frame unmasked text message "Hello".
        let (h, n) = FrameHeader::decode(&[0x81, 0x05]).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode, h.payload_len, h.mask, n), (true, Opcode::Text, 5, None, 2));
        // 256 bytes binary message in a single unmasked frame.
        let (h, n) = FrameHeader::decode(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.opcode, h.payload_len, n), (Opcode::Binary, 256, 4));
        // 64 KiB.
        let buf = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        let (h, n) = FrameHeader::decode(&buf).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn rejects_reserved_opcodes_and_bad_lengths() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(FrameHeader::decode(&[0x80 | op, 0]), Err(HeaderError::ReservedOpcode(op)));
        }
        let top = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::decode(&top), Err(HeaderError::LengthTooLarge));
        assert_eq!(FrameHeader::decode(&[0x82, 0x7E, 0, 5]), Err(HeaderError::NonMinimalLength));
    }

    proptest! {
        #[test]
        fn encode_decode_roundtrip(fin: bool, rsv in 0u8..8, op in prop::sample::select(vec![0u8, 1, 2, 8, 9, 10]),
                                   mask: Option<[u8; 4]>, len in prop_oneof![0u64..200, 100u64..70000, 65536u64..(1u64 << 63)]) {
            roundtrip(FrameHeader { fin, rsv: rsv << 4, opcode: Opcode::from_u8(op).unwrap(), mask, payload_len: len });
        }
    }
}

/// An encoded frame header (2 to 14 bytes), from [`FrameHeader::encoded`].
#[derive(Clone, Copy, Debug)]
pub struct EncodedHeader {
    buf: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl std::ops::Deref for EncodedHeader {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}
