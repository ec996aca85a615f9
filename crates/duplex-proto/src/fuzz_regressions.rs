//! Inputs the fuzz targets (`fuzz/`, see docs/testing.md) found to fail, kept as unit tests so
//! they stay fixed without cargo-fuzz. Each test names its target and the crash artifact.

use crate::connection::tests::drain_outgoing;
use crate::{Config, Connection, DeflateConfig, DeflateParams, Event, Message, MessageKind, Role};

/// Sends `wire` to a fresh server with `deflate` and returns its events up to the first error.
fn server_events(deflate: DeflateParams, wire: &[u8]) -> Vec<Result<Event, crate::ConnectionError>> {
    let mut server = Connection::with_deflate(Role::Server, Config::default(), Some(deflate));
    server.receive(wire);
    let mut events = Vec::new();
    loop {
        match server.next_event() {
            Ok(None) => return events,
            Ok(Some(e)) => events.push(Ok(e)),
            Err(e) => {
                events.push(Err(e));
                return events;
            }
        }
    }
}

/// `inflate` (round-trip mode), crash-446acead615b4e5c80b089df083bd533519e473b: a compressed
/// fragmented message whose last fragment is empty. The compressor had nothing to emit after the
/// previous fragment's sync flush, so the last frame's payload was empty; the receiver appends
/// `00 00 ff ff` (RFC 7692 §7.2.2), which after an empty payload is the start of a stored block
/// of 0xff00 bytes, not an empty one. That message still came out right, but the peer's inflater
/// was left inside that block and the *next* compressed message failed with 1007 ("invalid
/// stored block lengths").
#[test]
fn compressed_message_with_empty_last_fragment() {
    let deflate = DeflateParams::default();
    let mut client = Connection::with_deflate(Role::Client, Config::default(), Some(deflate));
    let first = vec![b'a'; 100];
    client.send_fragment(MessageKind::Binary, &first, true, false).unwrap();
    client.send_fragment(MessageKind::Binary, b"", false, true).unwrap();
    client.send_binary(&[b'b'; 100]).unwrap();
    let events = server_events(deflate, &drain_outgoing(&mut client));
    assert_eq!(
        events,
        vec![Ok(Event::Message(Message::from(first))), Ok(Event::Message(Message::from(vec![b'b'; 100])))]
    );
}

/// The same cause without fragments: with `min_size(0)` an empty message is compressed, and after
/// a previous compressed message (context takeover) it compressed to nothing.
#[test]
fn empty_compressed_message_after_another() {
    let deflate = DeflateParams::default();
    let config = Config::default().deflate(DeflateConfig::default().min_size(0));
    let mut client = Connection::with_deflate(Role::Client, config, Some(deflate));
    client.send_text("hello").unwrap();
    client.send_text("").unwrap();
    client.send_text("hello again").unwrap();
    let events = server_events(deflate, &drain_outgoing(&mut client));
    let texts = ["hello", "", "hello again"].map(|t| Ok(Event::Message(Message::from(t))));
    assert_eq!(events, texts);
}

/// `connection_client` crash-fccd566e81d3ba5180c18b1e1db5e1be8c4f14b3 and `connection_server`
/// crash-f8ed671f7b4b38e53ff9164c6eb0ebda8dba8b22: a header with a reserved opcode failed the
/// connection at once when its first two bytes came in one read, but when they came in two
/// reads and the header was longer than two bytes (a mask or an extended length), the opcode was
/// not checked until the whole header had arrived, which a peer need never send.
#[test]
fn reserved_opcode_fails_whatever_the_reads() {
    use crate::frame::HeaderError;
    use crate::Violation;
    for (role, b1) in [(Role::Server, 0x80), (Role::Client, 0x7e), (Role::Client, 0x7f)] {
        for split in [false, true] {
            let mut conn = Connection::new(role, Config::default());
            if split {
                conn.receive(&[0xf5]);
                conn.receive(&[b1]);
            } else {
                conn.receive(&[0xf5, b1]);
            }
            let err = conn.next_event().expect_err("a reserved opcode");
            assert_eq!(
                err.violation(),
                Some(&Violation::BadHeader(HeaderError::ReservedOpcode(5))),
                "{role:?} {split}"
            );
            assert!(!conn.wants_input());
        }
    }
}

/// A masked client frame (key 0, so the payload goes as it is).
fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![b0];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(payload);
    f
}

/// `heap_size()` stays within `max_message_size` (+ the 250 bytes a control frame may take) while
/// a message arrives in fragments. `Vec::reserve` for a continuation frame doubled the buffer:
/// with a 10,000-byte limit, 6,000 bytes then a 1,000-byte continuation held 12,000 bytes.
#[test]
fn fragmented_message_stays_within_the_limit() {
    let mut server = Connection::new(Role::Server, Config::default().max_message_size(10_000));
    server.receive(&client_frame(0x02, &[1; 6000]));
    let cont = client_frame(0x80, &[2; 1000]);
    server.receive(&cont[..cont.len() - 500]);
    assert!(server.heap_size() <= 10_000 + 256, "heap_size {} for a 10,000-byte limit", server.heap_size());
}

/// The same for one large frame read in 16 KiB pieces: past what the header reserves, the buffer
/// grew by `Vec`'s doubling, so 3 MiB under a 3 MiB limit held 4 MiB.
#[test]
fn large_frame_stays_within_the_limit() {
    let limit = 3 << 20;
    let mut server = Connection::new(Role::Server, Config::default().max_message_size(limit));
    let frame = client_frame(0x82, &vec![7; limit]);
    for piece in frame[..frame.len() - 1].chunks(16 << 10) {
        server.receive(piece);
    }
    assert!(server.heap_size() <= limit + 256, "heap_size {} for a {limit}-byte limit", server.heap_size());
}

/// `extended_connect`, crash-f78e9e8bb49896a9571bb588081b9fff0b1d1393 (a fault of the target's
/// property, not of the library): the server answered a bare `permessage-deflate` offer with its
/// own 10-bit window, and the target checked that answer with the *default* client, which asks
/// for a 12-bit server window and an 11-bit client window. That client reads an answer that does
/// not name the client window as "11 bits", while the server, never asked, put 15 in force. An
/// answer is only meaningful to the client whose offer it answers; a client that demands nothing
/// accepts every answer to every offer with the server's parameters.
#[test]
#[cfg(feature = "deflate")]
fn deflate_answer_read_by_a_client_demanding_nothing() {
    let server = DeflateConfig::default()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true)
        .server_max_window_bits(10)
        .client_max_window_bits(8);
    let undemanding = DeflateConfig::default().server_max_window_bits(15).client_max_window_bits(15);
    for offer in [
        "permeow_bits=10, permessage-deflate",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; client_max_window_bits=9; server_max_window_bits=14",
        "permessage-deflate; server_no_context_takeover",
    ] {
        let (params, answer) = server.negotiate([offer]).expect(offer);
        assert_eq!(undemanding.accept_response(&answer), Ok(Some(params)), "{offer:?} answered {answer:?}");
    }
    // The default client is not that client: it reads the bare offer's answer differently.
    let (params, answer) = server.negotiate(["permessage-deflate"]).unwrap();
    assert_ne!(DeflateConfig::default().accept_response(&answer), Ok(Some(params)));
}
