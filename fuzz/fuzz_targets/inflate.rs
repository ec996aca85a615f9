//! permessage-deflate decompression, through a `Connection` that negotiated it (the codec itself
//! is crate-private). The harness writes the frames, so the fuzzer spends its effort on the
//! compressed bytes, the fragmentation and the parameters rather than on frame headers.
//!
//! Input: 4 setup bytes, then records `[ctl, len, len bytes]`.
//! - byte 0: bit 0 this end is the client (else the server), bit 1 streaming, bit 2
//!   `client_no_context_takeover`, bit 3 `server_no_context_takeover`, bit 4 small
//!   `max_message_size` (byte 3), bit 5 round-trip mode, bit 6 echo messages.
//! - byte 1: window bits, client `8 + (b & 7)`, server `8 + (b >> 3 & 7)`.
//! - byte 2: read size (0: one read). byte 3: the small limit, `64 * b + 1`.
//! - record `ctl`: bit 0 FIN, bit 1 text (else binary), bit 2 the message is not compressed (no
//!   RSV1), bit 3 a ping first, bits 4-7 the masking key.
//!
//! Raw mode: each record's bytes are a frame's payload as sent, compressed bytes for a compressed
//! message; the frames go through the connection checks of `duplex_fuzz` (no panic, no event
//! after an error, `heap_size()` within the limit, valid UTF-8, same events whatever the read
//! size), so decompression bombs, corrupt streams, BFINAL, window overruns and fragment
//! boundaries inside deflate blocks are all exercised.
//!
//! Round-trip mode: each record's bytes are a fragment of plain text (made UTF-8) or binary,
//! sent by a peer `Connection` with the same parameters, which compresses them (messages under
//! 16 bytes go uncompressed); this end must receive exactly the messages sent, or fail with
//! `MessageTooBig` on the first one over the limit.
#![no_main]

use duplex_fuzz::{drain_outgoing, Run, Seen, Setup};
use duplex_proto::frame::{FrameHeader, Opcode, MAX_HEADER_LEN, RSV1};
use duplex_proto::{
    mask, Config, Connection, ConnectionError, DeflateConfig, DeflateParams, MessageKind, Role, Violation,
};
use libfuzzer_sys::fuzz_target;

struct Record<'a> {
    ctl: u8,
    payload: &'a [u8],
}

fn records(mut data: &[u8]) -> Vec<Record<'_>> {
    let mut out = Vec::new();
    while let [ctl, len, rest @ ..] = data {
        let n = (*len as usize).min(rest.len());
        out.push(Record { ctl: *ctl, payload: &rest[..n] });
        data = &rest[n..];
    }
    out
}

fn frame(wire: &mut Vec<u8>, fin: bool, rsv: u8, opcode: Opcode, key: Option<[u8; 4]>, payload: &[u8]) {
    let h = FrameHeader { fin, rsv, opcode, mask: key, payload_len: payload.len() as u64 };
    let mut hb = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut hb);
    wire.extend_from_slice(&hb[..n]);
    let start = wire.len();
    wire.extend_from_slice(payload);
    if let Some(k) = key {
        mask::apply(&mut wire[start..], k, 0);
    }
}

fn raw(setup: Setup, recs: &[Record<'_>]) {
    let mut wire = Vec::new();
    let mut in_message = false;
    for r in recs {
        let key = (setup.role == Role::Server).then_some([r.ctl >> 4, 0x5a, r.ctl, 0xa5]);
        if r.ctl & 8 != 0 {
            frame(&mut wire, true, 0, Opcode::Ping, key, b"p");
        }
        let fin = r.ctl & 1 != 0;
        let (opcode, rsv) = if in_message {
            (Opcode::Continuation, 0)
        } else {
            let op = if r.ctl & 2 != 0 { Opcode::Text } else { Opcode::Binary };
            (op, if r.ctl & 4 != 0 { 0 } else { RSV1 })
        };
        frame(&mut wire, fin, rsv, opcode, key, r.payload);
        in_message = !fin;
    }
    duplex_fuzz::check_connection(setup, &wire);
}

/// Payload bytes of the data frames in `wire` (the sender's output of one fragment).
fn data_payload_len(wire: &[u8]) -> u64 {
    let (mut at, mut total) = (0, 0);
    while let Ok(Some((h, n))) = FrameHeader::decode(&wire[at..]) {
        if !h.opcode.is_control() {
            total += h.payload_len;
        }
        at += n + h.payload_len as usize;
    }
    total
}

/// The connection's bound on a compressed message's size on the wire for `limit` on its inflated
/// size (`compressed_wire_limit` in connection.rs): it refuses with `MessageTooBig` past it.
fn compressed_wire_limit(limit: usize) -> u64 {
    (limit as u64).saturating_add(limit as u64 >> 10).saturating_add(64)
}

fn round_trip(setup: Setup, recs: &[Record<'_>]) {
    let peer_role = if setup.role == Role::Server { Role::Client } else { Role::Server };
    let config = Config::default().deflate(DeflateConfig::default().min_size(16));
    let mut peer = Connection::with_deflate(peer_role, config, setup.deflate);
    // Each message sent: kind, bytes, and its payload bytes on the wire.
    let mut expected: Vec<(MessageKind, Vec<u8>, u64)> = Vec::new();
    let mut current: Option<(MessageKind, Vec<u8>, u64)> = None;
    let mut wire = Vec::new();
    for r in recs {
        let first = current.is_none();
        let (kind, buf, on_wire) = current.get_or_insert_with(|| {
            (if r.ctl & 2 != 0 { MessageKind::Text } else { MessageKind::Binary }, Vec::new(), 0)
        });
        let piece = match kind {
            MessageKind::Text => String::from_utf8_lossy(r.payload).into_owned().into_bytes(),
            MessageKind::Binary => r.payload.to_vec(),
        };
        buf.extend_from_slice(&piece);
        let last = r.ctl & 1 != 0;
        if r.ctl & 8 != 0 {
            peer.send_ping(b"p").unwrap();
        }
        wire.extend(drain_outgoing(&mut peer));
        peer.send_fragment(*kind, &piece, first, last).unwrap();
        let out = drain_outgoing(&mut peer);
        *on_wire += data_payload_len(&out);
        wire.extend(out);
        if last {
            expected.push(current.take().unwrap());
        }
    }
    // A message cut off by the end of the input may still fail the limit.
    expected.extend(current.map(|(kind, data, on_wire)| (kind, data, on_wire | 1 << 63)));
    let mut run = Run::new(setup);
    run.feed_all(&wire);
    let (seen, _) = run.finish();
    // The input ends without a close frame: the run ends with 1006, which says nothing here.
    let mut messages = seen
        .iter()
        .filter(|s| !matches!(s, Seen::Ping(_) | Seen::Pong(_) | Seen::Error(ConnectionError::AbnormalClosure)));
    let limit = setup.max_message_size;
    for (i, (kind, data, on_wire)) in expected.iter().enumerate() {
        let unfinished = on_wire >> 63 != 0;
        let on_wire = on_wire & !(1 << 63);
        match messages.next() {
            None if unfinished => break,
            Some(Seen::Message(k, d)) if !unfinished => {
                assert!(k == kind && d == data, "message {i} came back different");
                assert!(data.len() <= setup.max_message_size);
            }
            Some(Seen::Error(e)) => {
                // Over the limit: inflated (or, unfinished, what was sent so far), or on the
                // wire, where many small compressed fragments can exceed the slack.
                let over = data.len() > limit || on_wire > compressed_wire_limit(limit);
                assert!(
                    matches!(e.violation(), Some(Violation::MessageTooBig { .. })) && over,
                    "message {i} of {} bytes, {on_wire} on the wire (limit {limit}) failed: {e:?}",
                    data.len(),
                );
                return;
            }
            other => panic!("message {i}: expected it, got {other:?}"),
        }
    }
    assert_eq!(messages.next(), None, "more came out than was sent");
}

fuzz_target!(|data: &[u8]| {
    let [flags, bits, chunk, limit, rest @ ..] = data else { return };
    let params = DeflateParams {
        server_no_context_takeover: flags & 8 != 0,
        client_no_context_takeover: flags & 4 != 0,
        server_max_window_bits: 8 + ((bits >> 3) & 7),
        client_max_window_bits: 8 + (bits & 7),
    };
    let max_message_size =
        if flags & 0x10 != 0 { 64 * *limit as usize + 1 } else { Config::default().max_message_size };
    let setup = Setup {
        role: if flags & 1 != 0 { Role::Client } else { Role::Server },
        streaming: flags & 2 != 0,
        auto_pong: true,
        max_message_size,
        max_frame_size: Config::default().max_frame_size,
        deflate: Some(params),
        echo: flags & 0x40 != 0,
        close_first: false,
        chunk: *chunk as usize,
    };
    let recs = records(rest);
    if flags & 0x20 != 0 {
        round_trip(setup, &recs);
    } else {
        raw(setup, &recs);
    }
});
