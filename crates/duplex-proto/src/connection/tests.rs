//! Unit tests of the [`Connection`] state machine, grouped by the section of RFC 6455 they check.
//!
//! Frames are built byte by byte here (not with [`FrameHeader::encode`]) so that invalid frames —
//! reserved opcodes, RSV bits, wrong masking, non-minimal lengths — can be expressed, and what a
//! connection queues for writing is decoded back into frames to assert exactly what goes on the wire.

use super::*;
use crate::close::{CloseCode, CloseInfo, Side};
use crate::error::{ProtocolError, SendError, Violation};
use crate::frame::{FrameHeader, HeaderError, Opcode};
use crate::mask;
use crate::message::MessageKind;
use crate::PreparedFrame;
use bytes::Buf;
use proptest::prelude::*;

mod lifecycle;

// ==================================================================================== helpers

/// The masking key of RFC 6455 §5.7's examples.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Any frame: `rsv` is the three RSV bits as a number 0-7, `opcode` any nibble, lengths in their
/// minimal encoding, the payload masked with `mask` if given.
fn raw_frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    assert!(rsv < 8 && opcode < 16);
    let mut v = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        v.push(mask_bit | len as u8);
    } else if len <= 0xffff {
        v.push(mask_bit | 126);
        v.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        v.push(mask_bit | 127);
        v.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            v.extend_from_slice(&key);
            v.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => v.extend_from_slice(payload),
    }
    v
}

/// A masked frame as a client sends it.
fn cf(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(fin, 0, opcode, Some(KEY), payload)
}

/// An unmasked frame as a server sends it.
fn sf(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(fin, 0, opcode, None, payload)
}

/// A close frame payload.
fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(reason);
    v
}

fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

fn client() -> Connection {
    Connection::new(Role::Client, Config::default())
}

/// Takes events until `Ok(None)` or `Err`; after an `Err`, checks that nothing more follows.
/// Everything queued for writing, taken out of the queue.
pub(crate) fn drain_outgoing(conn: &mut Connection) -> Vec<u8> {
    let n = conn.outgoing().remaining();
    conn.outgoing().copy_to_bytes(n).to_vec()
}

/// Takes events until `Ok(None)` or `Err`; after an `Err`, checks that nothing more follows. The
/// error must be a protocol violation (the tests of EOF and time are in `lifecycle`).
fn events(conn: &mut Connection) -> (Vec<Event>, Option<ProtocolError>) {
    let mut out = Vec::new();
    loop {
        match conn.next_event() {
            Ok(Some(e)) => out.push(e),
            Ok(None) => return (out, None),
            Err(ConnectionError::Protocol(e)) => {
                assert_eq!(conn.next_event(), Ok(None), "no event may follow an error");
                assert!(!conn.has_events());
                return (out, Some(e));
            }
            Err(e) => panic!("expected a protocol violation, got {e:?}"),
        }
    }
}

/// How bytes are handed to `receive`.
#[derive(Clone, Copy, Debug)]
enum Feed {
    Whole,
    Bytewise,
    Chunks(usize),
}

const FEEDS: [Feed; 5] = [Feed::Whole, Feed::Bytewise, Feed::Chunks(2), Feed::Chunks(3), Feed::Chunks(7)];

/// Feeds `data` as `feed` says, taking events after each piece as a driver would; stops feeding
/// after an error (a driver would).
fn feed(conn: &mut Connection, data: &[u8], feed: Feed) -> (Vec<Event>, Option<ProtocolError>) {
    let size = match feed {
        Feed::Whole => data.len().max(1),
        Feed::Bytewise => 1,
        Feed::Chunks(n) => n,
    };
    let mut all = Vec::new();
    for piece in data.chunks(size) {
        conn.receive(piece);
        let (evs, err) = events(conn);
        all.extend(evs);
        if err.is_some() {
            return (all, err);
        }
    }
    (all, None)
}

/// Feeds `data` at the given cut points.
fn feed_split(conn: &mut Connection, data: &[u8], cuts: &[usize]) -> (Vec<Event>, Option<ProtocolError>) {
    let mut all = Vec::new();
    let mut at = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        let c = c.clamp(at, data.len());
        conn.receive(&data[at..c]);
        at = c;
        let (evs, err) = events(conn);
        all.extend(evs);
        if err.is_some() {
            return (all, err);
        }
    }
    (all, None)
}

/// A frame as decoded from what a connection queued for writing (payload unmasked).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sent {
    fin: bool,
    rsv: u8,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
}

impl Sent {
    fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, Opcode::Close, "{self:?} is not a close frame");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Decodes a byte stream into whole frames; panics on anything malformed or left over.
fn decode_frames(mut bytes: &[u8]) -> Vec<Sent> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (h, n) = FrameHeader::decode(bytes).expect("valid header").expect("complete header");
        let len = h.payload_len as usize;
        assert!(bytes.len() >= n + len, "truncated frame");
        let mut payload = bytes[n..n + len].to_vec();
        if let Some(key) = h.mask {
            mask::apply(&mut payload, key, 0);
        }
        frames.push(Sent { fin: h.fin, rsv: h.rsv, opcode: h.opcode, mask: h.mask, payload });
        bytes = &bytes[n + len..];
    }
    frames
}

/// Drains the outgoing queue and decodes it; checks the masking direction of every frame.
fn sent(conn: &mut Connection) -> Vec<Sent> {
    let frames = decode_frames(&drain_outgoing(conn));
    for f in &frames {
        match conn.role() {
            Role::Client => assert!(f.mask.is_some(), "client frame not masked: {f:?}"),
            Role::Server => assert!(f.mask.is_none(), "server frame masked: {f:?}"),
        }
        assert_eq!(f.rsv, 0);
    }
    assert_eq!(conn.buffered_amount(), 0);
    frames
}

/// Asserts that a connection failed with `code` and queued exactly one close frame with it (after
/// whatever it queued before), and is closed for good.
fn assert_failed(conn: &mut Connection, err: Option<ProtocolError>, code: u16) -> ProtocolError {
    let err = err.expect("expected a protocol error");
    assert_eq!(err.code().0, code, "{err}");
    assert_eq!(conn.state(), State::Closed);
    assert!(!conn.wants_input());
    assert_eq!(conn.failure(), Some(&ConnectionError::Protocol(err.clone())));
    let frames = sent(conn);
    let last = frames.last().expect("a close frame was queued");
    assert_eq!(last.close_code(), Some(code));
    assert_eq!(&last.payload[2..], err.reason().as_bytes());
    assert_eq!(frames.iter().filter(|f| f.opcode == Opcode::Close).count(), 1);
    // Nothing more is accepted or sent.
    conn.receive(&cf(true, OP_TEXT, b"late"));
    assert_eq!(conn.next_event(), Ok(None));
    assert_eq!(conn.send_text("x"), Err(SendError::Closed));
    assert_eq!(conn.buffered_amount(), 0);
    err
}

/// Feeds `data` to a fresh connection of `role` in every way of [`FEEDS`]: it must fail with
/// `code` after delivering exactly `before` events. Returns the violation.
fn check_violation_with(role: Role, config: Config, data: &[u8], before: &[Event], code: u16) -> Violation {
    let mut violation = None;
    for how in FEEDS {
        let mut conn = Connection::new(role, config.clone());
        let (evs, err) = feed(&mut conn, data, how);
        assert_eq!(evs, before, "{how:?}");
        let err = assert_failed(&mut conn, err, code);
        if let Some(v) = &violation {
            assert_eq!(err.violation(), v, "{how:?}");
        }
        violation = Some(err.violation().clone());
    }
    violation.unwrap()
}

fn check_violation(data: &[u8], code: u16) -> Violation {
    check_violation_with(Role::Server, Config::default(), data, &[], code)
}

/// Feeds valid `data` in every way of [`FEEDS`]: it must produce exactly `expected`.
fn check_events_with(role: Role, config: Config, data: &[u8], expected: &[Event]) {
    for how in FEEDS {
        let mut conn = Connection::new(role, config.clone());
        let (evs, err) = feed(&mut conn, data, how);
        assert_eq!(err, None, "{how:?}");
        assert_eq!(evs, expected, "{how:?}");
    }
}

fn check_events(data: &[u8], expected: &[Event]) {
    check_events_with(Role::Server, Config::default(), data, expected)
}

fn text(s: &str) -> Event {
    Event::Message(Message::Text(s.to_owned()))
}

fn binary(b: &[u8]) -> Event {
    Event::Message(Message::Binary(Bytes::copy_from_slice(b)))
}

/// Deterministic pseudo-random bytes.
fn bytes_of(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

// ============================================================================ §5.1 masking

mod masking_5_1 {
    use super::*;

    #[test]
    fn unmasked_client_data_frame_fails_with_1002() {
        let v = check_violation(&sf(true, OP_TEXT, b"hello"), 1002);
        assert_eq!(v, Violation::UnmaskedClientFrame);
    }

    #[test]
    fn unmasked_client_control_frames_fail_with_1002() {
        for op in [OP_PING, OP_PONG, OP_CLOSE] {
            let v = check_violation(&sf(true, op, b""), 1002);
            assert_eq!(v, Violation::UnmaskedClientFrame);
        }
    }

    #[test]
    fn unmasked_frame_after_valid_ones_fails_after_them() {
        let data = cat(&[cf(true, OP_TEXT, b"ok"), sf(true, OP_BINARY, b"no")]);
        check_violation_with(Role::Server, Config::default(), &data, &[text("ok")], 1002);
    }

    #[test]
    fn masked_server_frame_to_client_fails_with_1002() {
        for op in [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE] {
            let v = check_violation_with(Role::Client, Config::default(), &cf(true, op, b""), &[], 1002);
            assert_eq!(v, Violation::MaskedServerFrame);
        }
    }

    #[test]
    fn client_close_frame_for_a_violation_is_masked() {
        let mut c = client();
        c.receive(&cf(true, OP_TEXT, b"x"));
        let (_, err) = events(&mut c);
        // `sent` inside `assert_failed` checks the close frame is masked.
        assert_failed(&mut c, err, 1002);
    }

    #[test]
    fn client_receives_unmasked_frames() {
        let data = cat(&[sf(true, OP_TEXT, b"hi"), sf(true, OP_BINARY, &[0, 1, 2])]);
        check_events_with(Role::Client, Config::default(), &data, &[text("hi"), binary(&[0, 1, 2])]);
    }

    #[test]
    fn server_accepts_any_mask_key_and_offset() {
        for key in [[0, 0, 0, 0], [0xff; 4], [1, 2, 3, 4], KEY] {
            for len in [0, 1, 3, 4, 5, 31, 32, 33, 200] {
                let payload = bytes_of(len, len as u32);
                let data = raw_frame(true, 0, OP_BINARY, Some(key), &payload);
                check_events(&data, &[binary(&payload)]);
            }
        }
    }

    #[test]
    fn client_sent_frames_are_masked_and_decode_back() {
        let mut c = client();
        let big = bytes_of(70_000, 7);
        c.send_text("héllo").unwrap();
        c.send_binary(&[0, 1, 2, 3, 4]).unwrap();
        c.send(Message::Binary(Bytes::from(big.clone()))).unwrap();
        c.send(Message::Text("owned".into())).unwrap();
        c.send_fragment(MessageKind::Text, b"fra", true, false).unwrap();
        c.send_fragment(MessageKind::Text, b"g", false, true).unwrap();
        c.send_ping(b"ping").unwrap();
        c.send_pong(b"pong").unwrap();
        c.close(Some(CloseFrame::new(1000, "done"))).unwrap();
        let frames = sent(&mut c);
        let got: Vec<(bool, Opcode, Vec<u8>)> = frames.iter().map(|f| (f.fin, f.opcode, f.payload.clone())).collect();
        assert_eq!(
            got,
            vec![
                (true, Opcode::Text, "héllo".as_bytes().to_vec()),
                (true, Opcode::Binary, vec![0, 1, 2, 3, 4]),
                (true, Opcode::Binary, big),
                (true, Opcode::Text, b"owned".to_vec()),
                (false, Opcode::Text, b"fra".to_vec()),
                (true, Opcode::Continuation, b"g".to_vec()),
                (true, Opcode::Ping, b"ping".to_vec()),
                (true, Opcode::Pong, b"pong".to_vec()),
                (true, Opcode::Close, close_payload(1000, b"done")),
            ]
        );
        // A fresh key per frame (RFC 6455 §5.3): 9 random keys are not all equal.
        let first = frames[0].mask;
        assert!(frames.iter().any(|f| f.mask != first), "every frame used the same masking key");
    }

    #[test]
    fn client_frames_are_accepted_by_a_server() {
        let mut c = client();
        c.send_text("to the server").unwrap();
        c.send_ping(b"p").unwrap();
        let wire = drain_outgoing(&mut c);
        check_events(&wire, &[text("to the server"), Event::Ping(Bytes::from_static(b"p"))]);
    }

    #[test]
    fn server_sent_frames_are_unmasked() {
        let mut s = server();
        s.send_text("hi").unwrap();
        s.send_ping(b"").unwrap();
        assert_eq!(drain_outgoing(&mut s), [0x81, 0x02, b'h', b'i', 0x89, 0x00]);
    }

    #[test]
    fn client_answers_ping_and_close_with_masked_frames() {
        let mut c = client();
        c.receive(&cat(&[sf(true, OP_PING, b"abc"), sf(true, OP_CLOSE, &close_payload(1001, b""))]));
        let (evs, err) = events(&mut c);
        assert_eq!(err, None);
        assert_eq!(evs.len(), 2);
        let frames = sent(&mut c);
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].opcode, &frames[0].payload[..]), (Opcode::Pong, &b"abc"[..]));
        assert_eq!(frames[1].close_code(), Some(1001));
    }
}

// =========================================================================== §5.2 framing

mod framing_5_2 {
    use super::*;

    #[test]
    fn rsv_bits_fail_with_1002() {
        for rsv in 1..8u8 {
            for op in [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE] {
                let v = check_violation(&raw_frame(true, rsv, op, Some(KEY), b"x"), 1002);
                assert_eq!(v, Violation::ReservedBits(rsv << 4));
            }
        }
    }

    #[test]
    fn rsv_bits_on_a_continuation_fail_with_1002() {
        let data = cat(&[cf(false, OP_TEXT, b"a"), raw_frame(true, 4, OP_CONT, Some(KEY), b"b")]);
        check_violation(&data, 1002);
    }

    #[test]
    fn reserved_opcodes_fail_with_1002() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            let v = check_violation(&raw_frame(true, 0, op, Some(KEY), b"payload"), 1002);
            assert_eq!(v, Violation::BadHeader(HeaderError::ReservedOpcode(op)));
            // And for a client, on unmasked frames.
            let v = check_violation_with(Role::Client, Config::default(), &sf(true, op, b""), &[], 1002);
            assert_eq!(v, Violation::BadHeader(HeaderError::ReservedOpcode(op)));
        }
    }

    #[test]
    fn reserved_opcode_fails_before_the_payload_arrives() {
        let mut s = server();
        s.receive(&[0x83, 0x80 | 100]); // only the first two header bytes
        let (_, err) = events(&mut s);
        assert_failed(&mut s, err, 1002);
    }

    #[test]
    fn reserved_opcode_inside_a_fragmented_message_fails() {
        let data = cat(&[cf(false, OP_TEXT, b"a"), raw_frame(true, 0, 0x3, Some(KEY), b"")]);
        check_violation(&data, 1002);
    }

    #[test]
    fn length_encodings_7_16_64_bit() {
        for (len, header_len) in [(0, 2), (1, 2), (125, 2), (126, 4), (127, 4), (65535, 4), (65536, 10), (70000, 10)] {
            let payload = bytes_of(len, len as u32);
            let frame = cf(true, OP_BINARY, &payload);
            assert_eq!(frame.len(), header_len + 4 + len);
            for how in [Feed::Whole, Feed::Bytewise, Feed::Chunks(5), Feed::Chunks(4096)] {
                let mut s = server();
                let (evs, err) = feed(&mut s, &frame, how);
                assert_eq!(err, None);
                assert_eq!(evs, [binary(&payload)], "len {len} {how:?}");
            }
            // The same for a client receiving unmasked frames, and text.
            let text_payload: String = payload.iter().map(|b| char::from(b'a' + b % 26)).collect();
            check_events_with(
                Role::Client,
                Config::default(),
                &sf(true, OP_TEXT, text_payload.as_bytes()),
                &[text(&text_payload)],
            );
        }
    }

    #[test]
    fn sent_lengths_use_minimal_encodings() {
        for (len, header) in
            [(125usize, vec![0x82, 125]), (126, vec![0x82, 126, 0, 126]), (65535, vec![0x82, 126, 0xff, 0xff])]
        {
            let mut s = server();
            s.send_binary(&vec![7; len]).unwrap();
            let wire = drain_outgoing(&mut s);
            assert_eq!(&wire[..header.len()], &header[..]);
            assert_eq!(wire.len(), header.len() + len);
        }
        let mut s = server();
        s.send(Message::Binary(Bytes::from(vec![7; 65536]))).unwrap();
        let wire = drain_outgoing(&mut s);
        assert_eq!(&wire[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(wire.len(), 10 + 65536);
    }

    #[test]
    fn non_minimal_lengths_fail_with_1002() {
        // 16-bit length holding 5.
        let mut frame = vec![0x82, 0x80 | 126, 0, 5];
        frame.extend_from_slice(&KEY);
        frame.extend_from_slice(&[0; 5]);
        let v = check_violation(&frame, 1002);
        assert_eq!(v, Violation::BadHeader(HeaderError::NonMinimalLength));
        // 64-bit length holding 65535.
        let mut frame = vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        frame.extend_from_slice(&KEY);
        let v = check_violation(&frame, 1002);
        assert_eq!(v, Violation::BadHeader(HeaderError::NonMinimalLength));
    }

    #[test]
    fn length_with_top_bit_set_fails_with_1002() {
        let mut frame = vec![0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        frame.extend_from_slice(&KEY);
        let v = check_violation(&frame, 1002);
        assert_eq!(v, Violation::BadHeader(HeaderError::LengthTooLarge));
    }

    #[test]
    fn many_frames_in_one_read() {
        let mut frames = Vec::new();
        let mut expected = Vec::new();
        for i in 0..50u32 {
            let payload = bytes_of((i * 37 % 300) as usize, i);
            frames.push(cf(true, OP_BINARY, &payload));
            expected.push(binary(&payload));
        }
        check_events(&cat(&frames), &expected);
    }

    #[test]
    fn header_split_at_every_point_across_two_reads() {
        let payload = bytes_of(300, 1);
        let frame = cat(&[cf(true, OP_BINARY, &payload), cf(true, OP_TEXT, b"next")]);
        for cut in 0..=frame.len() {
            let mut s = server();
            let (evs, err) = feed_split(&mut s, &frame, &[cut]);
            assert_eq!(err, None);
            assert_eq!(evs, [binary(&payload), text("next")], "cut at {cut}");
        }
    }

    #[test]
    fn nothing_is_delivered_before_a_frame_is_complete() {
        let frame = cf(true, OP_TEXT, b"hello");
        let mut s = server();
        s.receive(&frame[..frame.len() - 1]);
        assert!(!s.has_events());
        assert_eq!(s.next_event(), Ok(None));
        s.receive(&frame[frame.len() - 1..]);
        assert_eq!(s.next_event(), Ok(Some(text("hello"))));
    }

    #[test]
    fn receive_of_nothing_is_harmless() {
        let mut s = server();
        s.receive(&[]);
        assert_eq!(s.next_event(), Ok(None));
        let frame = cf(true, OP_TEXT, b"x");
        s.receive(&frame[..3]);
        s.receive(&[]);
        s.receive(&frame[3..]);
        assert_eq!(s.next_event(), Ok(Some(text("x"))));
    }

    // -------------------------------------------------------------- property: random chunkings

    /// One message of the random stream: cut into frames at `cuts`, optionally with a ping
    /// after the frame `ping.0 % frames` (inside the message unless it lands after the last one).
    #[derive(Clone, Debug)]
    struct Item {
        message: Message,
        cuts: Vec<prop::sample::Index>,
        ping: Option<(prop::sample::Index, Vec<u8>)>,
        key: [u8; 4],
    }

    fn payload() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => prop::collection::vec(any::<u8>(), 0..200),
            1 => prop::collection::vec(any::<u8>(), 60_000..70_000),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            any::<String>().prop_map(Message::Text),
            "[a-zé€😀]{100,300}".prop_map(Message::Text),
            payload().prop_map(|v| Message::Binary(Bytes::from(v))),
        ]
    }

    fn item() -> impl Strategy<Value = Item> {
        (
            message(),
            prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            proptest::option::of((any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 0..=125))),
            any::<[u8; 4]>(),
        )
            .prop_map(|(message, cuts, ping, key)| Item { message, cuts, ping, key })
    }

    /// Encodes the items as frames (masked if `masked`), and the events they must produce.
    fn encode(items: &[Item], masked: bool) -> (Vec<u8>, Vec<Event>, Vec<Vec<u8>>) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        let mut pings = Vec::new();
        for it in items {
            let data = it.message.as_bytes();
            let mut cuts: Vec<usize> = it.cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut bounds = vec![0];
            bounds.extend(cuts);
            bounds.push(data.len());
            let n = bounds.len() - 1;
            let ping_after = it.ping.as_ref().map(|(i, p)| (i.index(n), p));
            let mask = masked.then_some(it.key);
            for f in 0..n {
                let opcode = match (f, &it.message) {
                    (0, Message::Text(_)) => OP_TEXT,
                    (0, Message::Binary(_)) => OP_BINARY,
                    _ => OP_CONT,
                };
                wire.extend(raw_frame(f == n - 1, 0, opcode, mask, &data[bounds[f]..bounds[f + 1]]));
                if let Some((at, p)) = ping_after {
                    if at == f && f < n - 1 {
                        wire.extend(raw_frame(true, 0, OP_PING, mask, p));
                        expected.push(Event::Ping(Bytes::copy_from_slice(p)));
                        pings.push(p.clone());
                    }
                }
            }
            expected.push(Event::Message(it.message.clone()));
        }
        (wire, expected, pings)
    }

    fn split_points(len: usize, idx: &[prop::sample::Index]) -> Vec<usize> {
        let mut cuts: Vec<usize> = idx.iter().map(|i| i.index(len + 1)).collect();
        cuts.sort_unstable();
        cuts
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn random_messages_random_chunks_server(items in prop::collection::vec(item(), 0..8),
                                                splits in prop::collection::vec(any::<prop::sample::Index>(), 0..30)) {
            let (wire, expected, pings) = encode(&items, true);
            let mut s = server();
            let (evs, err) = feed_split(&mut s, &wire, &split_points(wire.len(), &splits));
            prop_assert_eq!(err, None);
            prop_assert_eq!(evs, expected);
            let pongs: Vec<Vec<u8>> = sent(&mut s).into_iter().map(|f| {
                assert_eq!(f.opcode, Opcode::Pong);
                f.payload
            }).collect();
            prop_assert_eq!(pongs, pings);
            prop_assert_eq!(s.state(), State::Open);
            prop_assert!(s.wants_input());
            prop_assert_eq!(s.heap_size(), 0, "idle connection holds heap memory");
        }

        #[test]
        fn random_messages_random_chunks_client(items in prop::collection::vec(item(), 0..8),
                                                splits in prop::collection::vec(any::<prop::sample::Index>(), 0..30)) {
            let (wire, expected, _) = encode(&items, false);
            let mut c = client();
            let (evs, err) = feed_split(&mut c, &wire, &split_points(wire.len(), &splits));
            prop_assert_eq!(err, None);
            prop_assert_eq!(evs, expected);
        }

        #[test]
        fn small_messages_byte_by_byte(items in prop::collection::vec(item(), 0..4)) {
            let items: Vec<Item> = items.into_iter().filter(|i| i.message.len() < 1000).collect();
            let (wire, expected, _) = encode(&items, true);
            let mut s = server();
            let (evs, err) = feed(&mut s, &wire, Feed::Bytewise);
            prop_assert_eq!(err, None);
            prop_assert_eq!(evs, expected);
        }

        /// What one `Connection` sends, another of the other role receives intact.
        #[test]
        fn loopback_between_roles(messages in prop::collection::vec(message(), 0..6),
                                  splits in prop::collection::vec(any::<prop::sample::Index>(), 0..10)) {
            for (from, to) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
                let mut a = Connection::new(from, Config::default());
                let mut b = Connection::new(to, Config::default());
                for m in &messages {
                    a.send(m.clone()).unwrap();
                }
                let wire = drain_outgoing(&mut a);
                let (evs, err) = feed_split(&mut b, &wire, &split_points(wire.len(), &splits));
                prop_assert_eq!(err, None);
                let expected: Vec<Event> = messages.iter().cloned().map(Event::Message).collect();
                prop_assert_eq!(evs, expected);
            }
        }
    }
}

// ===================================================================== §5.4 fragmentation

mod fragmentation_5_4 {
    use super::*;

    #[test]
    fn text_in_three_fragments() {
        let data = cat(&[cf(false, OP_TEXT, b"Hel"), cf(false, OP_CONT, b"lo, "), cf(true, OP_CONT, b"world")]);
        check_events(&data, &[text("Hello, world")]);
    }

    #[test]
    fn binary_in_three_fragments() {
        let data = cat(&[cf(false, OP_BINARY, &[1]), cf(false, OP_CONT, &[2, 3]), cf(true, OP_CONT, &[4, 5, 6])]);
        check_events(&data, &[binary(&[1, 2, 3, 4, 5, 6])]);
    }

    #[test]
    fn many_fragments_of_one_byte() {
        let msg = bytes_of(500, 3);
        let mut frames = vec![cf(false, OP_BINARY, &msg[..1])];
        for i in 1..msg.len() {
            frames.push(cf(i == msg.len() - 1, OP_CONT, &msg[i..i + 1]));
        }
        check_events(&cat(&frames), &[binary(&msg)]);
    }

    #[test]
    fn ping_inside_a_fragmented_message_is_answered_before_it_completes() {
        let mut s = server();
        s.receive(&cat(&[
            cf(false, OP_TEXT, b"frag"),
            cf(false, OP_CONT, b"ment"),
            cf(true, OP_PING, b"are you there"),
        ]));
        let (evs, err) = events(&mut s);
        assert_eq!(err, None);
        assert_eq!(evs, [Event::Ping(Bytes::from_static(b"are you there"))]);
        // The pong is queued while the message is still open.
        let frames = sent(&mut s);
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].fin, frames[0].opcode), (true, Opcode::Pong));
        assert_eq!(frames[0].payload, b"are you there");
        // The message then completes with both halves.
        s.receive(&cf(true, OP_CONT, b"ed"));
        assert_eq!(events(&mut s), (vec![text("fragmented")], None));
    }

    #[test]
    fn control_frames_interleaved_in_one_read() {
        let data = cat(&[
            cf(false, OP_TEXT, b"a"),
            cf(true, OP_PING, b"1"),
            cf(false, OP_CONT, b"b"),
            cf(true, OP_PONG, b"2"),
            cf(true, OP_PING, b"3"),
            cf(true, OP_CONT, b"c"),
        ]);
        let expected = [
            Event::Ping(Bytes::from_static(b"1")),
            Event::Pong(Bytes::from_static(b"2")),
            Event::Ping(Bytes::from_static(b"3")),
            text("abc"),
        ];
        check_events(&data, &expected);
        let mut s = server();
        s.receive(&data);
        let (evs, _) = events(&mut s);
        assert_eq!(evs, expected);
        let pongs: Vec<(Opcode, Vec<u8>)> = sent(&mut s).into_iter().map(|f| (f.opcode, f.payload)).collect();
        assert_eq!(pongs, [(Opcode::Pong, b"1".to_vec()), (Opcode::Pong, b"3".to_vec())]);
    }

    #[test]
    fn continuation_without_an_open_message_fails_with_1002() {
        for fin in [true, false] {
            let v = check_violation(&cf(fin, OP_CONT, b"orphan"), 1002);
            assert_eq!(v, Violation::UnexpectedContinuation);
        }
    }

    #[test]
    fn continuation_after_a_finished_message_fails_with_1002() {
        let data = cat(&[cf(false, OP_TEXT, b"a"), cf(true, OP_CONT, b"b"), cf(true, OP_CONT, b"c")]);
        let v = check_violation_with(Role::Server, Config::default(), &data, &[text("ab")], 1002);
        assert_eq!(v, Violation::UnexpectedContinuation);
    }

    #[test]
    fn new_data_frame_while_a_fragmented_message_is_open_fails_with_1002() {
        for (first, second) in [(OP_TEXT, OP_TEXT), (OP_TEXT, OP_BINARY), (OP_BINARY, OP_TEXT), (OP_BINARY, OP_BINARY)]
        {
            for fin in [true, false] {
                let data = cat(&[cf(false, first, b"open"), cf(fin, second, b"new")]);
                let v = check_violation(&data, 1002);
                assert_eq!(v, Violation::ExpectedContinuation);
            }
        }
    }

    #[test]
    fn new_data_frame_inside_a_message_fails_even_after_a_ping() {
        let data = cat(&[cf(false, OP_TEXT, b"open"), cf(true, OP_PING, b""), cf(true, OP_TEXT, b"new")]);
        check_violation_with(Role::Server, Config::default(), &data, &[Event::Ping(Bytes::new())], 1002);
    }

    #[test]
    fn empty_fragments() {
        let data = cat(&[
            cf(false, OP_TEXT, b""),
            cf(false, OP_CONT, b"abc"),
            cf(false, OP_CONT, b""),
            cf(true, OP_CONT, b""),
        ]);
        check_events(&data, &[text("abc")]);
        let data = cat(&[cf(false, OP_BINARY, b""), cf(false, OP_CONT, b""), cf(true, OP_CONT, b"")]);
        check_events(&data, &[binary(b"")]);
        check_events(&cf(true, OP_TEXT, b""), &[text("")]);
        check_events(&cf(true, OP_BINARY, b""), &[binary(b"")]);
    }

    #[test]
    fn close_inside_a_fragmented_message_closes() {
        // Control frames may be interleaved (§5.4); the unfinished message is dropped.
        let data = cat(&[cf(false, OP_TEXT, b"never finished"), cf(true, OP_CLOSE, &close_payload(1000, b""))]);
        let mut s = server();
        s.receive(&data);
        let (evs, err) = events(&mut s);
        assert_eq!(err, None);
        assert_eq!(evs, [Event::Close(Some(CloseFrame::new(1000, "")))]);
        assert_eq!(sent(&mut s)[0].close_code(), Some(1000));
        assert_eq!(s.state(), State::Closed);
    }

    #[test]
    fn messages_after_a_fragmented_one_start_fresh() {
        let data = cat(&[
            cf(false, OP_BINARY, &[1]),
            cf(true, OP_CONT, &[2]),
            cf(true, OP_TEXT, b"t"),
            cf(false, OP_TEXT, "é".as_bytes()),
            cf(true, OP_CONT, b"!"),
        ]);
        check_events(&data, &[binary(&[1, 2]), text("t"), text("é!")]);
    }
}

// ==================================================================== §5.5 control frames

mod control_5_5 {
    use super::*;

    #[test]
    fn ping_of_125_bytes_is_echoed_in_a_pong() {
        let payload = bytes_of(125, 9);
        for how in FEEDS {
            let mut s = server();
            let (evs, err) = feed(&mut s, &cf(true, OP_PING, &payload), how);
            assert_eq!(err, None);
            assert_eq!(evs, [Event::Ping(Bytes::from(payload.clone()))]);
            let frames = sent(&mut s);
            assert_eq!(frames.len(), 1);
            assert_eq!((frames[0].fin, frames[0].opcode), (true, Opcode::Pong));
            assert_eq!(frames[0].payload, payload);
        }
    }

    #[test]
    fn empty_ping_gets_an_empty_pong() {
        let mut s = server();
        s.receive(&cf(true, OP_PING, b""));
        assert_eq!(events(&mut s), (vec![Event::Ping(Bytes::new())], None));
        assert_eq!(drain_outgoing(&mut s), [0x8A, 0x00]);
    }

    #[test]
    fn control_frame_of_126_bytes_fails_with_1002() {
        for op in [OP_PING, OP_PONG, OP_CLOSE] {
            let v = check_violation(&cf(true, op, &[b'a'; 126]), 1002);
            assert_eq!(v, Violation::ControlFrameTooLong(126));
        }
    }

    #[test]
    fn oversized_control_frame_fails_at_header_time() {
        let frame = cf(true, OP_PING, &[0; 126]);
        let mut s = server();
        s.receive(&frame[..8]); // 2 + 2 (length) + 4 (key): the header only
        let (_, err) = events(&mut s);
        assert_failed(&mut s, err, 1002);
    }

    #[test]
    fn fragmented_control_frames_fail_with_1002() {
        for op in [OP_PING, OP_PONG, OP_CLOSE] {
            let v = check_violation(&cf(false, op, b"x"), 1002);
            assert_eq!(v, Violation::FragmentedControlFrame);
        }
    }

    #[test]
    fn unsolicited_pong_is_reported_and_not_answered() {
        let mut s = server();
        s.receive(&cf(true, OP_PONG, b"heartbeat"));
        assert_eq!(events(&mut s), (vec![Event::Pong(Bytes::from_static(b"heartbeat"))], None));
        assert_eq!(s.buffered_amount(), 0);
        assert_eq!(s.state(), State::Open);
    }

    #[test]
    fn auto_pong_off_reports_the_ping_only() {
        let mut s = Connection::new(Role::Server, Config::default().auto_pong(false));
        s.receive(&cf(true, OP_PING, b"p"));
        assert_eq!(events(&mut s), (vec![Event::Ping(Bytes::from_static(b"p"))], None));
        assert_eq!(s.buffered_amount(), 0);
        // The application answers itself.
        s.send_pong(b"p").unwrap();
        assert_eq!(drain_outgoing(&mut s), [0x8A, 0x01, b'p']);
    }

    #[test]
    fn pongs_follow_pings_in_order() {
        let data = cat(&(0..10u8).map(|i| cf(true, OP_PING, &[i; 3])).collect::<Vec<_>>());
        let mut s = server();
        let (evs, err) = feed(&mut s, &data, Feed::Chunks(5));
        assert_eq!((evs.len(), err), (10, None));
        let payloads: Vec<Vec<u8>> = sent(&mut s).into_iter().map(|f| f.payload).collect();
        assert_eq!(payloads, (0..10u8).map(|i| vec![i; 3]).collect::<Vec<_>>());
    }

    #[test]
    fn no_pong_is_queued_until_the_ping_is_taken() {
        let mut s = server();
        s.receive(&cf(true, OP_PING, b"x"));
        assert_eq!(s.buffered_amount(), 0);
        assert!(s.next_event().unwrap().is_some());
        assert_eq!(s.buffered_amount(), 3);
    }

    #[test]
    fn ping_after_our_close_is_not_answered() {
        let mut s = server();
        s.close(Some(CloseFrame::new(1000, ""))).unwrap();
        drain_outgoing(&mut s);
        s.receive(&cf(true, OP_PING, b"late"));
        assert_eq!(events(&mut s), (vec![Event::Ping(Bytes::from_static(b"late"))], None));
        assert_eq!(s.buffered_amount(), 0, "no frame may follow a close frame");
    }

    #[test]
    fn sending_oversized_control_frames_is_refused() {
        let mut s = server();
        assert_eq!(s.send_ping(&[0; 126]), Err(SendError::ControlFrameTooLong(126)));
        assert_eq!(s.send_pong(&[0; 200]), Err(SendError::ControlFrameTooLong(200)));
        assert!(s.send_ping(&[0; 125]).is_ok());
        assert!(s.send_pong(&[0; 125]).is_ok());
        let frames = sent(&mut s);
        assert_eq!(frames.iter().map(|f| f.payload.len()).collect::<Vec<_>>(), [125, 125]);
    }
}

// ===================================================================== §5.5.1 close

mod close_5_5_1 {
    use super::*;

    #[test]
    fn peer_close_is_answered_echoing_the_code() {
        for how in FEEDS {
            let mut s = server();
            let (evs, err) = feed(&mut s, &cf(true, OP_CLOSE, &close_payload(1000, b"bye")), how);
            assert_eq!(err, None);
            assert_eq!(evs, [Event::Close(Some(CloseFrame::new(1000, "bye")))]);
            assert_eq!(s.state(), State::Closed);
            assert!(!s.wants_input());
            let info = CloseInfo { frame: Some(CloseFrame::new(1000, "bye")), initiator: Side::Remote };
            assert_eq!(s.close_info(), Some(info));
            assert_eq!(s.failure(), None);
            assert_eq!(drain_outgoing(&mut s), [0x88, 0x02, 0x03, 0xe8]);
            // Later bytes are ignored.
            s.receive(&cat(&[cf(true, OP_TEXT, b"after"), cf(true, OP_PING, b""), vec![0xff; 20]]));
            assert_eq!(s.next_event(), Ok(None));
            assert_eq!(s.buffered_amount(), 0);
            assert_eq!(s.send_text("too late"), Err(SendError::Closed));
        }
    }

    #[test]
    fn bytes_after_close_in_the_same_read_are_ignored() {
        let data =
            cat(&[cf(true, OP_CLOSE, &close_payload(1001, b"")), cf(true, OP_TEXT, b"ignored"), vec![0x83, 0x00]]);
        check_events(&data, &[Event::Close(Some(CloseFrame::new(1001, "")))]);
    }

    #[test]
    fn empty_close_gets_an_empty_close() {
        let mut s = server();
        s.receive(&cf(true, OP_CLOSE, b""));
        assert_eq!(events(&mut s), (vec![Event::Close(None)], None));
        assert_eq!(s.close_info(), Some(CloseInfo { frame: None, initiator: Side::Remote }));
        assert_eq!(s.state(), State::Closed);
        assert_eq!(drain_outgoing(&mut s), [0x88, 0x00]);
    }

    #[test]
    fn close_with_a_one_byte_payload_fails_with_1002() {
        let v = check_violation(&cf(true, OP_CLOSE, &[0x03]), 1002);
        assert_eq!(v, Violation::InvalidCloseCode);
    }

    #[test]
    fn invalid_close_codes_fail_with_1002() {
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            let v = check_violation(&cf(true, OP_CLOSE, &close_payload(code, b"")), 1002);
            assert_eq!(v, Violation::InvalidCloseCode, "code {code}");
        }
    }

    #[test]
    fn valid_close_codes_are_accepted_and_echoed() {
        let codes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
        for code in codes {
            let mut s = server();
            s.receive(&cf(true, OP_CLOSE, &close_payload(code, b"why")));
            assert_eq!(events(&mut s), (vec![Event::Close(Some(CloseFrame::new(code, "why")))], None));
            let frames = sent(&mut s);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].close_code(), Some(code));
        }
    }

    #[test]
    fn invalid_utf8_in_the_reason_fails_with_1007() {
        for reason in [&[0xff][..], &[b'o', b'k', 0xc3], &[0xed, 0xa0, 0x80]] {
            let v = check_violation(&cf(true, OP_CLOSE, &close_payload(1000, reason)), 1007);
            assert_eq!(v, Violation::InvalidUtf8);
        }
    }

    #[test]
    fn reason_of_123_bytes_is_accepted() {
        let reason = "r".repeat(120) + "é!";
        assert_eq!(reason.len(), 123);
        let data = cf(true, OP_CLOSE, &close_payload(4000, reason.as_bytes()));
        check_events(&data, &[Event::Close(Some(CloseFrame::new(4000, reason)))]);
    }

    #[test]
    fn we_close_first_then_the_peer_answers() {
        let mut s = server();
        s.close(Some(CloseFrame::new(1001, "going"))).unwrap();
        assert_eq!(s.state(), State::CloseSent);
        assert!(s.wants_input());
        let frames = sent(&mut s);
        assert_eq!(frames[0].close_code(), Some(1001));
        assert_eq!(frames[0].payload[2..], *b"going");
        // Messages still arrive until the peer's close.
        s.receive(&cat(&[cf(true, OP_TEXT, b"in flight"), cf(true, OP_CLOSE, &close_payload(1001, b""))]));
        let (evs, err) = events(&mut s);
        assert_eq!(err, None);
        assert_eq!(evs, [text("in flight"), Event::Close(Some(CloseFrame::new(1001, "")))]);
        assert_eq!(s.state(), State::Closed);
        assert!(!s.wants_input());
        assert_eq!(s.buffered_amount(), 0, "no second close frame");
    }

    #[test]
    fn close_called_before_the_pending_peer_close_is_taken() {
        let mut s = server();
        s.receive(&cf(true, OP_CLOSE, &close_payload(1000, b"")));
        s.close(Some(CloseFrame::new(1001, ""))).unwrap();
        assert_eq!(s.state(), State::CloseSent);
        assert_eq!(events(&mut s), (vec![Event::Close(Some(CloseFrame::new(1000, "")))], None));
        assert_eq!(s.state(), State::Closed);
        let frames = sent(&mut s);
        assert_eq!(frames.len(), 1, "exactly one close frame: {frames:?}");
        assert_eq!(frames[0].close_code(), Some(1001));
    }

    #[test]
    fn close_after_the_peer_closed_is_refused() {
        let mut s = server();
        s.receive(&cf(true, OP_CLOSE, b""));
        events(&mut s);
        assert_eq!(s.close(None), Err(SendError::Closed));
    }

    #[test]
    fn sending_after_close_is_refused() {
        for role in [Role::Server, Role::Client] {
            let mut c = Connection::new(role, Config::default());
            c.close(None).unwrap();
            assert_eq!(c.state(), State::CloseSent);
            let wire = sent(&mut c);
            assert_eq!((wire.len(), wire[0].close_code()), (1, None));
            assert_eq!(c.send(Message::Text("x".into())), Err(SendError::Closed));
            assert_eq!(c.send_text("x"), Err(SendError::Closed));
            assert_eq!(c.send_binary(b"x"), Err(SendError::Closed));
            assert_eq!(c.send_fragment(MessageKind::Text, b"x", true, false), Err(SendError::Closed));
            assert_eq!(c.send_ping(b""), Err(SendError::Closed));
            assert_eq!(c.send_pong(b""), Err(SendError::Closed));
            assert_eq!(c.close(None), Err(SendError::Closed));
            assert_eq!(c.close(Some(CloseFrame::new(1000, ""))), Err(SendError::Closed));
            if role == Role::Server {
                assert_eq!(c.send_prepared(&PreparedFrame::new("x")), Err(SendError::Closed));
            }
            assert_eq!(c.buffered_amount(), 0);
        }
    }

    #[test]
    fn sending_after_close_during_a_fragmented_send_is_refused_as_closed() {
        let mut s = server();
        s.send_fragment(MessageKind::Binary, b"a", true, false).unwrap();
        s.close(Some(CloseFrame::new(1000, ""))).unwrap();
        drain_outgoing(&mut s);
        assert_eq!(s.send_fragment(MessageKind::Binary, b"b", false, true), Err(SendError::Closed));
        assert_eq!(s.send_fragment(MessageKind::Binary, b"b", true, true), Err(SendError::Closed));
        assert_eq!(s.send_text("x"), Err(SendError::Closed));
        assert_eq!(s.send_binary(b"x"), Err(SendError::Closed));
        assert_eq!(s.send_prepared(&PreparedFrame::new("x")), Err(SendError::Closed));
        assert_eq!(s.buffered_amount(), 0);
    }

    #[test]
    fn sending_after_the_peer_closed_is_refused() {
        let mut s = server();
        s.receive(&cf(true, OP_CLOSE, &close_payload(1000, b"")));
        events(&mut s);
        drain_outgoing(&mut s);
        assert_eq!(s.send_text("x"), Err(SendError::Closed));
        assert_eq!(s.send_ping(b""), Err(SendError::Closed));
        assert_eq!(s.buffered_amount(), 0);
    }

    #[test]
    fn closing_with_an_unsendable_code_is_refused() {
        let mut s = server();
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert_eq!(s.close(Some(CloseFrame::new(code, ""))), Err(SendError::InvalidCloseCode(CloseCode(code))));
        }
        assert_eq!(s.state(), State::Open);
        assert_eq!(s.buffered_amount(), 0);
        assert!(s.send_text("still open").is_ok());
    }

    #[test]
    fn long_close_reasons_are_truncated_at_a_char_boundary() {
        let mut s = server();
        // 100 two-byte characters: 123 bytes would cut the 62nd in half, so 61 remain.
        s.close(Some(CloseFrame::new(4001, "é".repeat(100)))).unwrap();
        let frames = sent(&mut s);
        assert_eq!(frames[0].payload.len(), 2 + 122);
        assert_eq!(std::str::from_utf8(&frames[0].payload[2..]).unwrap(), "é".repeat(61));
        assert_eq!(s.close_info().unwrap().reason(), "é".repeat(61));
        // A reason that fits exactly is kept whole.
        let mut s = server();
        s.close(Some(CloseFrame::new(4001, "€".repeat(41)))).unwrap();
        assert_eq!(sent(&mut s)[0].payload.len(), 125);
    }

    #[test]
    fn violation_after_our_close_sends_no_second_close_frame() {
        let mut s = server();
        s.close(Some(CloseFrame::new(1000, ""))).unwrap();
        drain_outgoing(&mut s);
        s.receive(&sf(true, OP_TEXT, b"unmasked"));
        let (evs, err) = events(&mut s);
        assert!(evs.is_empty());
        assert_eq!(err.unwrap().code(), CloseCode::PROTOCOL_ERROR);
        assert_eq!(s.state(), State::Closed);
        assert_eq!(s.buffered_amount(), 0);
    }

    #[test]
    fn close_frame_split_across_reads() {
        let data = cf(true, OP_CLOSE, &close_payload(3001, b"split reason"));
        check_events(&data, &[Event::Close(Some(CloseFrame::new(3001, "split reason")))]);
    }
}

// ========================================================================= §8.1 UTF-8

mod utf8_8_1 {
    use super::*;

    #[test]
    fn invalid_text_fails_with_1007() {
        for bad in [&[0xff][..], &[b'a', 0xc0, 0xaf], &[0xed, 0xa0, 0x80], &[0xf4, 0x90, 0x80, 0x80], &[0x80]] {
            let v = check_violation(&cf(true, OP_TEXT, bad), 1007);
            assert_eq!(v, Violation::InvalidUtf8);
        }
    }

    #[test]
    fn invalid_utf8_in_binary_is_fine() {
        check_events(&cf(true, OP_BINARY, &[0xff, 0xfe]), &[binary(&[0xff, 0xfe])]);
    }

    #[test]
    fn text_ending_mid_character_fails_with_1007() {
        let euro = "€".as_bytes();
        check_violation(&cf(true, OP_TEXT, &euro[..2]), 1007);
        let data = cat(&[cf(false, OP_TEXT, b"ab"), cf(true, OP_CONT, &euro[..1])]);
        check_violation(&data, 1007);
        // Cut off, then an empty final frame.
        let data = cat(&[cf(false, OP_TEXT, &euro[..2]), cf(true, OP_CONT, b"")]);
        check_violation(&data, 1007);
    }

    #[test]
    fn valid_multibyte_characters_split_across_fragments() {
        let euro = "€".as_bytes();
        for cut in 1..3 {
            let data = cat(&[cf(false, OP_TEXT, &euro[..cut]), cf(true, OP_CONT, &euro[cut..])]);
            check_events(&data, &[text("€")]);
        }
        // A 4-byte character over three fragments, with an empty one in between.
        let smile = "😀".as_bytes();
        let data = cat(&[
            cf(false, OP_TEXT, &smile[..1]),
            cf(false, OP_CONT, &smile[1..3]),
            cf(false, OP_CONT, b""),
            cf(true, OP_CONT, &smile[3..]),
        ]);
        check_events(&data, &[text("😀")]);
    }

    #[test]
    fn invalid_sequence_across_fragments_fails_at_the_fragment_that_makes_it_invalid() {
        // Autobahn 6.4.x: "κόσμε" then 0xf4 is still valid; 0x90 after it never can be.
        let mut first = "κόσμε".as_bytes().to_vec();
        first.push(0xf4);
        let mut s = server();
        s.receive(&cf(false, OP_TEXT, &first));
        assert_eq!(events(&mut s), (vec![], None));
        // The second fragment: its header and one payload byte are enough.
        let second = cf(true, OP_CONT, &[0x90, 0x80, 0x80, b'a', b'b', b'c', b'd', b'e']);
        s.receive(&second[..6]);
        assert!(!s.has_events());
        s.receive(&second[6..7]);
        let (_, err) = events(&mut s);
        let err = assert_failed(&mut s, err, 1007);
        assert_eq!(err.violation(), &Violation::InvalidUtf8);
    }

    #[test]
    fn invalid_text_fails_before_the_frame_is_complete() {
        let mut payload = b"valid prefix ".to_vec();
        payload.push(0xff);
        payload.extend_from_slice(&[b'x'; 10_000]);
        let frame = cf(true, OP_TEXT, &payload);
        for streaming in [false, true] {
            let mut s = Connection::new(Role::Server, Config::default().streaming(streaming));
            // Header (2 + 2 + 4) and the payload up to and including the bad byte.
            s.receive(&frame[..8 + 14]);
            let (evs, err) = events(&mut s);
            if streaming {
                assert!(evs.is_empty(), "the invalid piece must not be delivered: {evs:?}");
            }
            assert_failed(&mut s, err, 1007);
        }
    }

    #[test]
    fn invalid_utf8_in_streaming_mode_fails_with_1007() {
        let config = Config::default().streaming(true);
        check_violation_with(Role::Server, config.clone(), &cf(true, OP_TEXT, &[0xff, 0x28]), &[], 1007);
        let euro = "€".as_bytes();
        let data = cat(&[cf(false, OP_TEXT, &euro[..2]), cf(true, OP_CONT, b"")]);
        let mut s = Connection::new(Role::Server, config);
        s.receive(&data);
        let (evs, err) = events(&mut s);
        assert_eq!(evs.len(), 1, "the valid first piece is delivered: {evs:?}");
        assert_failed(&mut s, err, 1007);
    }

    #[test]
    fn every_split_of_a_multilingual_text_is_accepted() {
        let s = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 😀 €";
        let b = s.as_bytes();
        for i in 0..=b.len() {
            for j in i..=b.len() {
                let data =
                    cat(&[cf(false, OP_TEXT, &b[..i]), cf(false, OP_CONT, &b[i..j]), cf(true, OP_CONT, &b[j..])]);
                let mut conn = server();
                conn.receive(&data);
                assert_eq!(events(&mut conn), (vec![text(s)], None), "cuts {i} {j}");
            }
        }
    }
}

// ============================================================================= limits

mod limits {
    use super::*;

    #[test]
    fn frame_over_max_frame_size_fails_with_1009_at_header_time() {
        let config = Config::default().max_frame_size(1000);
        for (op, len) in [(OP_BINARY, 1001usize), (OP_TEXT, 70_000)] {
            let frame = cf(true, op, &vec![b'a'; len]);
            let header_len = frame.len() - len;
            let mut s = Connection::new(Role::Server, config.clone());
            s.receive(&frame[..header_len]); // no payload byte
            let (evs, err) = events(&mut s);
            assert!(evs.is_empty());
            let err = assert_failed(&mut s, err, 1009);
            assert_eq!(err.violation(), &Violation::FrameTooBig { size: len as u64, limit: 1000 });
            assert_eq!(s.heap_size(), 0, "no buffer was reserved for the refused frame");
        }
        // A continuation frame over the limit, too.
        let data = cat(&[cf(false, OP_BINARY, b"a"), cf(true, OP_CONT, &[0; 1001])]);
        let v = check_violation_with(Role::Server, config, &data, &[], 1009);
        assert!(matches!(v, Violation::FrameTooBig { size: 1001, .. }));
    }

    #[test]
    fn frame_of_exactly_max_frame_size_is_accepted() {
        let config = Config::default().max_frame_size(1000);
        let payload = bytes_of(1000, 5);
        check_events_with(Role::Server, config, &cf(true, OP_BINARY, &payload), &[binary(&payload)]);
    }

    #[test]
    fn message_over_max_message_size_summed_over_fragments_fails_with_1009() {
        let config = Config::default().max_message_size(100);
        let data = cat(&[cf(false, OP_BINARY, &[1; 40]), cf(false, OP_CONT, &[2; 40]), cf(true, OP_CONT, &[3; 21])]);
        let v = check_violation_with(Role::Server, config.clone(), &data, &[], 1009);
        assert_eq!(v, Violation::MessageTooBig { size: 101, limit: 100 });
        // Refused at the header of the fragment that overflows, before its payload.
        let mut s = Connection::new(Role::Server, config.clone());
        s.receive(&data[..(6 + 40) * 2 + 6]);
        let (_, err) = events(&mut s);
        assert_failed(&mut s, err, 1009);
        // Exactly at the limit is fine.
        let ok = cat(&[cf(false, OP_BINARY, &[1; 40]), cf(false, OP_CONT, &[2; 40]), cf(true, OP_CONT, &[3; 20])]);
        let mut expected = vec![1; 40];
        expected.extend([2; 40]);
        expected.extend([3; 20]);
        check_events_with(Role::Server, config, &ok, &[binary(&expected)]);
    }

    #[test]
    fn single_frame_over_max_message_size_fails_with_1009() {
        let config = Config::default().max_message_size(10);
        let v = check_violation_with(Role::Server, config, &cf(true, OP_TEXT, &[b'a'; 11]), &[], 1009);
        assert_eq!(v, Violation::MessageTooBig { size: 11, limit: 10 });
    }

    #[test]
    fn message_limit_applies_per_message() {
        let config = Config::default().max_message_size(10);
        let data = cat(&(0..5).map(|_| cf(true, OP_BINARY, &[0; 10])).collect::<Vec<_>>());
        let expected: Vec<Event> = (0..5).map(|_| binary(&[0; 10])).collect();
        check_events_with(Role::Server, config, &data, &expected);
    }

    #[test]
    fn huge_declared_length_fails_without_allocating() {
        // A 64-bit length of 2^62 (valid encoding) against the default limits.
        let mut frame = vec![0x82, 0x80 | 127];
        frame.extend_from_slice(&(1u64 << 62).to_be_bytes());
        frame.extend_from_slice(&KEY);
        let v = check_violation(&frame, 1009);
        assert!(matches!(v, Violation::FrameTooBig { size, .. } if size == 1 << 62));
    }
}

// =========================================================================== ordering

mod ordering {
    use super::*;

    #[test]
    fn reply_to_a_message_goes_out_before_the_close_for_a_later_violation() {
        let mut s = server();
        s.receive(&cat(&[cf(true, OP_TEXT, b"echo me"), sf(true, OP_TEXT, b"unmasked")]));
        assert_eq!(s.buffered_amount(), 0, "nothing is queued before events are taken");
        let Ok(Some(Event::Message(m))) = s.next_event() else { panic!("expected the message first") };
        s.send(m).unwrap();
        let err = s.next_event().unwrap_err();
        assert_eq!(err.code(), CloseCode::PROTOCOL_ERROR);
        let frames = sent(&mut s);
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].opcode, &frames[0].payload[..]), (Opcode::Text, &b"echo me"[..]));
        assert_eq!(frames[1].close_code(), Some(1002));
    }

    #[test]
    fn pong_goes_out_before_the_close_for_a_later_violation() {
        let mut s = server();
        s.receive(&cat(&[cf(true, OP_PING, b"p"), cf(true, 0x5, b"")]));
        let (evs, err) = events(&mut s);
        assert_eq!(evs, [Event::Ping(Bytes::from_static(b"p"))]);
        let frames = decode_frames(&drain_outgoing(&mut s));
        assert_eq!(frames.iter().map(|f| f.opcode).collect::<Vec<_>>(), [Opcode::Pong, Opcode::Close]);
        assert_eq!(err.unwrap().code(), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn reply_to_a_message_goes_out_before_the_close_reply() {
        let mut s = server();
        s.receive(&cat(&[cf(true, OP_BINARY, &[1, 2]), cf(true, OP_CLOSE, &close_payload(1000, b""))]));
        let Ok(Some(Event::Message(m))) = s.next_event() else { panic!() };
        s.send(m).unwrap();
        assert!(matches!(s.next_event(), Ok(Some(Event::Close(_)))));
        let frames = sent(&mut s);
        assert_eq!(frames.iter().map(|f| f.opcode).collect::<Vec<_>>(), [Opcode::Binary, Opcode::Close]);
    }

    #[test]
    fn state_changes_when_the_event_is_taken() {
        let mut s = server();
        s.receive(&cf(true, OP_CLOSE, b""));
        assert_eq!(s.state(), State::Open);
        assert!(!s.wants_input());
        assert!(s.has_events());
        s.next_event().unwrap();
        assert_eq!(s.state(), State::Closed);

        let mut s = server();
        s.receive(&sf(true, OP_TEXT, b""));
        assert_eq!(s.state(), State::Open);
        assert_eq!(s.failure(), None);
        assert!(s.next_event().is_err());
        assert_eq!(s.state(), State::Closed);
    }

    #[test]
    fn events_of_several_reads_queue_up_in_order() {
        let mut s = server();
        s.receive(&cf(true, OP_TEXT, b"1"));
        s.receive(&cf(true, OP_PING, b"2"));
        s.receive(&cf(true, OP_BINARY, b"3"));
        let (evs, err) = events(&mut s);
        assert_eq!(err, None);
        assert_eq!(evs, [text("1"), Event::Ping(Bytes::from_static(b"2")), binary(b"3")]);
    }
}

// ========================================================================== streaming

mod streaming {
    use super::*;

    fn streaming_server() -> Connection {
        Connection::new(Role::Server, Config::default().streaming(true))
    }

    fn pieces(evs: &[Event]) -> Vec<&Fragment> {
        evs.iter()
            .map(|e| match e {
                Event::Fragment(f) => f,
                other => panic!("expected a fragment, got {other:?}"),
            })
            .collect()
    }

    /// Checks the pieces form exactly one message of `kind` and returns its bytes.
    fn reassemble(kind: MessageKind, pieces: &[&Fragment]) -> Vec<u8> {
        assert!(!pieces.is_empty());
        for (i, p) in pieces.iter().enumerate() {
            assert_eq!(p.kind, kind);
            assert_eq!(p.first, i == 0, "piece {i}: {pieces:?}");
            assert_eq!(p.last, i == pieces.len() - 1, "piece {i}: {pieces:?}");
        }
        pieces.iter().flat_map(|p| p.data.iter().copied()).collect()
    }

    #[test]
    fn three_fragments_delivered_as_pieces() {
        let data = cat(&[cf(false, OP_TEXT, b"Hel"), cf(false, OP_CONT, b"lo, "), cf(true, OP_CONT, b"world")]);
        for how in FEEDS {
            let mut s = streaming_server();
            let (evs, err) = feed(&mut s, &data, how);
            assert_eq!(err, None);
            assert_eq!(reassemble(MessageKind::Text, &pieces(&evs)), b"Hello, world", "{how:?}");
        }
        // Whole: one piece per frame.
        let mut s = streaming_server();
        s.receive(&data);
        let (evs, _) = events(&mut s);
        let data: Vec<&[u8]> = pieces(&evs).iter().map(|p| &p.data[..]).collect();
        assert_eq!(data, [&b"Hel"[..], b"lo, ", b"world"]);
    }

    #[test]
    fn empty_final_fragment_ends_the_message() {
        let data = cat(&[cf(false, OP_BINARY, &[1, 2]), cf(false, OP_CONT, &[3]), cf(true, OP_CONT, b"")]);
        for how in FEEDS {
            let mut s = streaming_server();
            let (evs, err) = feed(&mut s, &data, how);
            assert_eq!(err, None);
            let p = pieces(&evs);
            assert_eq!(reassemble(MessageKind::Binary, &p), [1, 2, 3]);
            let last = p.last().unwrap();
            assert!(last.data.is_empty() && last.last && !last.first);
        }
    }

    #[test]
    fn zero_length_message_is_one_empty_piece() {
        for op in [OP_TEXT, OP_BINARY] {
            let mut s = streaming_server();
            s.receive(&cf(true, op, b""));
            let (evs, err) = events(&mut s);
            assert_eq!(err, None);
            let kind = if op == OP_TEXT { MessageKind::Text } else { MessageKind::Binary };
            assert_eq!(evs, [Event::Fragment(Fragment { kind, data: Bytes::new(), first: true, last: true })]);
        }
        // All-empty fragments: one piece too.
        let mut s = streaming_server();
        s.receive(&cat(&[cf(false, OP_TEXT, b""), cf(false, OP_CONT, b""), cf(true, OP_CONT, b"")]));
        let (evs, _) = events(&mut s);
        assert_eq!(
            evs,
            [Event::Fragment(Fragment { kind: MessageKind::Text, data: Bytes::new(), first: true, last: true })]
        );
    }

    #[test]
    fn empty_first_fragment() {
        let data = cat(&[cf(false, OP_TEXT, b""), cf(true, OP_CONT, b"x")]);
        let mut s = streaming_server();
        s.receive(&data);
        let (evs, _) = events(&mut s);
        assert_eq!(reassemble(MessageKind::Text, &pieces(&evs)), b"x");
    }

    #[test]
    fn messages_and_pings_interleave() {
        let data = cat(&[
            cf(false, OP_BINARY, &[1]),
            cf(true, OP_PING, b"p"),
            cf(true, OP_CONT, &[2]),
            cf(true, OP_TEXT, "é".as_bytes()),
        ]);
        let mut s = streaming_server();
        s.receive(&data);
        let (evs, err) = events(&mut s);
        assert_eq!(err, None);
        assert_eq!(evs.len(), 4);
        assert_eq!(evs[1], Event::Ping(Bytes::from_static(b"p")));
        let first = [pieces(&evs[..1])[0], pieces(&evs[2..3])[0]];
        assert_eq!(reassemble(MessageKind::Binary, &first), [1, 2]);
        assert_eq!(reassemble(MessageKind::Text, &pieces(&evs[3..])), "é".as_bytes());
        assert_eq!(sent(&mut s).len(), 1, "the ping was answered");
    }

    #[test]
    fn pieces_of_a_large_frame_arrive_as_bytes_do() {
        let payload = bytes_of(10_000, 11);
        let frame = cf(true, OP_BINARY, &payload);
        let mut s = streaming_server();
        s.receive(&frame[..8 + 3000]);
        let (evs, _) = events(&mut s);
        let p = pieces(&evs);
        assert_eq!(p.len(), 1);
        assert!(p[0].first && !p[0].last);
        assert_eq!(p[0].data[..], payload[..3000]);
        assert_eq!(s.heap_size(), 0, "streaming buffers nothing");
        s.receive(&frame[8 + 3000..]);
        let (evs, _) = events(&mut s);
        let p = pieces(&evs);
        assert!(!p[0].first && p[0].last);
        assert_eq!(p[0].data[..], payload[3000..]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn random_fragments_and_chunks(messages in prop::collection::vec((any::<String>(), prop::collection::vec(any::<prop::sample::Index>(), 0..4)), 1..5),
                                       splits in prop::collection::vec(any::<prop::sample::Index>(), 0..20)) {
            let mut wire = Vec::new();
            for (m, cuts) in &messages {
                let b = m.as_bytes();
                let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(b.len() + 1)).collect();
                cuts.sort_unstable();
                let mut bounds = vec![0];
                bounds.extend(cuts);
                bounds.push(b.len());
                let n = bounds.len() - 1;
                for f in 0..n {
                    wire.extend(cf(f == n - 1, if f == 0 { OP_TEXT } else { OP_CONT }, &b[bounds[f]..bounds[f + 1]]));
                }
            }
            let mut cuts: Vec<usize> = splits.iter().map(|i| i.index(wire.len() + 1)).collect();
            cuts.sort_unstable();
            let mut s = streaming_server();
            let (evs, err) = feed_split(&mut s, &wire, &cuts);
            prop_assert_eq!(err, None);
            let p = pieces(&evs);
            let mut at = 0;
            for (m, _) in &messages {
                let end = at + p[at..].iter().position(|f| f.last).expect("a last piece") + 1;
                prop_assert_eq!(reassemble(MessageKind::Text, &p[at..end]), m.as_bytes().to_vec());
                at = end;
            }
            prop_assert_eq!(at, p.len());
        }
    }
}

// ============================================================================ sending

mod sending {
    use super::*;

    #[test]
    fn send_fragment_frames_and_order_errors() {
        let mut s = server();
        assert_eq!(s.send_fragment(MessageKind::Text, b"x", false, false), Err(SendError::FragmentOrder));
        assert_eq!(s.send_fragment(MessageKind::Text, b"x", false, true), Err(SendError::FragmentOrder));
        s.send_fragment(MessageKind::Text, b"one ", true, false).unwrap();
        assert_eq!(s.send_fragment(MessageKind::Text, b"x", true, false), Err(SendError::FragmentOrder));
        assert_eq!(s.send_fragment(MessageKind::Binary, b"x", true, true), Err(SendError::FragmentOrder));
        assert_eq!(s.send_text("whole"), Err(SendError::FragmentOrder));
        assert_eq!(s.send(Message::Binary(Bytes::new())), Err(SendError::FragmentOrder));
        assert_eq!(s.send_prepared(&PreparedFrame::new("x")), Err(SendError::FragmentOrder));
        // Control frames may be interleaved.
        s.send_ping(b"p").unwrap();
        s.send_fragment(MessageKind::Text, b"two ", false, false).unwrap();
        s.send_fragment(MessageKind::Text, b"three", false, true).unwrap();
        // And then whole messages again.
        s.send_text("next").unwrap();
        assert_eq!(s.send_fragment(MessageKind::Text, b"x", false, true), Err(SendError::FragmentOrder));
        let frames: Vec<(bool, Opcode, Vec<u8>)> =
            sent(&mut s).into_iter().map(|f| (f.fin, f.opcode, f.payload)).collect();
        assert_eq!(
            frames,
            [
                (false, Opcode::Text, b"one ".to_vec()),
                (true, Opcode::Ping, b"p".to_vec()),
                (false, Opcode::Continuation, b"two ".to_vec()),
                (true, Opcode::Continuation, b"three".to_vec()),
                (true, Opcode::Text, b"next".to_vec()),
            ]
        );
    }

    #[test]
    fn single_fragment_message() {
        let mut s = server();
        s.send_fragment(MessageKind::Binary, &[9], true, true).unwrap();
        s.send_binary(&[8]).unwrap();
        assert_eq!(drain_outgoing(&mut s), [0x82, 0x01, 9, 0x82, 0x01, 8]);
    }

    #[test]
    fn fragments_sent_by_a_client_reassemble_on_a_server() {
        let mut c = client();
        c.send_fragment(MessageKind::Text, "€"[..].as_bytes().split_at(1).0, true, false).unwrap();
        c.send_fragment(MessageKind::Text, "€".as_bytes().split_at(1).1, false, true).unwrap();
        let wire = drain_outgoing(&mut c);
        check_events(&wire, &[text("€")]);
    }

    #[test]
    fn send_prepared_fans_out_the_same_bytes() {
        for len in [3usize, 5000] {
            let msg = Message::Binary(Bytes::from(bytes_of(len, 1)));
            let prepared = PreparedFrame::new(msg.clone());
            let frame = prepared.plain().clone();
            let mut conns: Vec<Connection> = (0..3).map(|_| server()).collect();
            for c in &mut conns {
                c.send_text("before").unwrap();
                c.send_prepared(&prepared).unwrap();
                c.send_text("after").unwrap();
            }
            for c in &mut conns {
                let mut expected = vec![0x81, 6];
                expected.extend_from_slice(b"before");
                expected.extend_from_slice(&frame);
                expected.extend_from_slice(&[0x81, 5]);
                expected.extend_from_slice(b"after");
                assert_eq!(c.buffered_amount(), expected.len());
                assert_eq!(drain_outgoing(c), expected);
            }
            // And a client decodes it.
            let mut cl = client();
            cl.receive(&frame);
            assert_eq!(events(&mut cl), (vec![Event::Message(msg)], None));
        }
    }

    #[test]
    fn a_prepared_frame_matches_send() {
        for m in
            [Message::Text("héllo".into()), Message::Binary(Bytes::from(vec![1; 300])), Message::Binary(Bytes::new())]
        {
            let mut s = server();
            s.send(m.clone()).unwrap();
            assert_eq!(drain_outgoing(&mut s), PreparedFrame::new(m.clone()).plain()[..]);
            // A client masks its own copy.
            let mut c = client();
            c.send_prepared(&PreparedFrame::new(m.clone())).unwrap();
            let mut srv = server();
            srv.receive(&drain_outgoing(&mut c));
            assert_eq!(srv.next_event(), Ok(Some(Event::Message(m))));
        }
    }

    #[test]
    fn large_owned_payloads_are_sent_intact() {
        let mut s = Connection::new(Role::Server, Config::default().copy_threshold(16));
        let big = Bytes::from(bytes_of(100, 2));
        s.send_text("a").unwrap();
        s.send(Message::Binary(big.clone())).unwrap();
        s.send_text("b").unwrap();
        let frames = sent(&mut s);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[1].payload, big);
    }

    #[test]
    fn buffered_amount_follows_writes() {
        let mut s = server();
        assert_eq!(s.buffered_amount(), 0);
        s.send_text("hello").unwrap(); // 2 + 5
        assert_eq!(s.buffered_amount(), 7);
        s.send(Message::Binary(Bytes::from(vec![0; 5000]))).unwrap(); // 4 + 5000, pushed as is
        assert_eq!(s.buffered_amount(), 7 + 4 + 5000);
        s.outgoing().advance(3);
        assert_eq!(s.buffered_amount(), 4 + 4 + 5000);
        s.send_ping(b"").unwrap();
        assert_eq!(s.buffered_amount(), 4 + 4 + 5000 + 2);
        assert_eq!(s.outgoing().remaining(), s.buffered_amount());
        let rest = drain_outgoing(&mut s);
        assert_eq!(rest.len(), 5010);
        assert_eq!(&rest[..4], b"ello");
        assert_eq!(s.buffered_amount(), 0);
        assert_eq!(s.heap_size(), 0);
    }

    #[test]
    fn partial_writes_via_chunks_reassemble() {
        let mut s = Connection::new(Role::Server, Config::default().copy_threshold(8));
        s.send_text("small").unwrap();
        s.send(Message::Binary(Bytes::from(vec![7; 100]))).unwrap();
        s.send_text("tail").unwrap();
        let total = s.buffered_amount();
        let mut wire = Vec::new();
        let out = s.outgoing();
        while out.has_remaining() {
            let c = out.chunk();
            let n = c.len().min(3);
            wire.extend_from_slice(&c[..n]);
            out.advance(n);
        }
        assert_eq!(wire.len(), total);
        assert_eq!(decode_frames(&wire).len(), 3);
    }

    #[test]
    fn idle_connection_holds_no_heap_after_draining() {
        let mut s = server();
        assert_eq!(s.heap_size(), 0);
        let data = cat(&[
            cf(false, OP_TEXT, b"frag"),
            cf(true, OP_PING, b"p"),
            cf(true, OP_CONT, b"ment"),
            cf(true, OP_BINARY, &[0; 3000]),
            cf(true, OP_PONG, b""),
        ]);
        s.receive(&data[..10]);
        s.receive(&data[10..]);
        let (evs, err) = events(&mut s);
        assert_eq!((evs.len(), err), (4, None));
        for e in evs {
            if let Event::Message(m) = e {
                s.send(m).unwrap();
            }
        }
        assert!(s.heap_size() > 0);
        drain_outgoing(&mut s);
        assert_eq!(s.heap_size(), 0, "idle connection after an exchange: {s:?}");
    }

    #[test]
    fn closed_connection_holds_no_heap_after_draining() {
        // A close frame in the middle of a fragmented message.
        let mut s = server();
        s.receive(&cat(&[cf(false, OP_BINARY, &[0; 1000]), cf(true, OP_CLOSE, b"")]));
        events(&mut s);
        drain_outgoing(&mut s);
        assert_eq!(s.heap_size(), 0, "closed connection still holds the unfinished message");
        // A violation in the middle of one.
        let mut s = server();
        s.receive(&cat(&[cf(false, OP_BINARY, &[0; 1000]), sf(true, OP_CONT, b"")]));
        events(&mut s);
        drain_outgoing(&mut s);
        assert_eq!(s.heap_size(), 0);
    }

    #[test]
    fn size_of_connection_stays_small() {
        let size = std::mem::size_of::<Connection>();
        println!("size_of::<Connection>() = {size} bytes");
        assert!(size < 512, "Connection grew to {size} bytes");
    }
}
