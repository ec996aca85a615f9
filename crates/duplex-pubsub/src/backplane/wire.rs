//! How a published message travels through Redis: the payload of a `PUBLISH` on channel
//! `duplex:<namespace>:<topic>` is an 18-byte header, then the message's bytes as they are.
//!
//! ```text
//! byte 0      format version (1)
//! byte 1      0 text, 1 binary: the opcode the subscribers receive
//! bytes 2-9   the publishing node's id (big-endian): a node skips its own messages, which it
//!             delivered locally when they were published
//! bytes 10-17 the node's sequence number for the message (big-endian): a message that reaches a
//!             node through several of its subscriptions (a channel and a pattern) is delivered
//!             once
//! bytes 18-   the payload
//! ```

use bytes::Bytes;
use duplex::Message;

/// The header's length.
pub(crate) const HEADER_LEN: usize = 18;

const VERSION: u8 = 1;
const TEXT: u8 = 0;
const BINARY: u8 = 1;

/// Where a message came from: the node and its sequence number there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) node: u64,
    pub(crate) seq: u64,
}

/// The payload to publish for `message`.
pub(crate) fn encode(origin: Origin, message: &Message) -> Vec<u8> {
    let kind = match message {
        Message::Text(_) => TEXT,
        Message::Binary(_) => BINARY,
    };
    let data = message.as_bytes();
    let mut v = Vec::with_capacity(HEADER_LEN + data.len());
    v.push(VERSION);
    v.push(kind);
    v.extend_from_slice(&origin.node.to_be_bytes());
    v.extend_from_slice(&origin.seq.to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// Reads a payload; `None` if it is not one of ours (another program publishing on our
/// channels, another format version, text that is not UTF-8).
pub(crate) fn decode(payload: &[u8]) -> Option<(Origin, Message)> {
    if payload.len() < HEADER_LEN || payload[0] != VERSION {
        return None;
    }
    let node = u64::from_be_bytes(payload[2..10].try_into().ok()?);
    let seq = u64::from_be_bytes(payload[10..18].try_into().ok()?);
    let data = &payload[HEADER_LEN..];
    let message = match payload[1] {
        TEXT => Message::Text(std::str::from_utf8(data).ok()?.to_owned()),
        BINARY => Message::Binary(Bytes::copy_from_slice(data)),
        _ => return None,
    };
    Some((Origin { node, seq }, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let origin = Origin { node: 0x0102_0304_0506_0708, seq: 42 };
        for m in
            [Message::Text("héllo".into()), Message::Binary(Bytes::from_static(&[0, 255, 7])), Message::Text("".into())]
        {
            let payload = encode(origin, &m);
            assert_eq!(payload.len(), HEADER_LEN + m.len());
            assert_eq!(decode(&payload), Some((origin, m)));
        }
    }

    #[test]
    fn foreign_payloads_are_ignored() {
        assert_eq!(decode(b"hello from redis-cli"), None);
        assert_eq!(decode(&[]), None);
        let mut bad_utf8 = encode(Origin { node: 1, seq: 1 }, &Message::Text("x".into()));
        bad_utf8[HEADER_LEN] = 0xff;
        assert_eq!(decode(&bad_utf8), None);
        let mut other_version = encode(Origin { node: 1, seq: 1 }, &Message::Text("x".into()));
        other_version[0] = 2;
        assert_eq!(decode(&other_version), None);
    }
}
