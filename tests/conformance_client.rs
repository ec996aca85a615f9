//! RFC 6455 conformance of `duplex::Client` / `duplex::connect`, checked byte by byte over real
//! sockets.
//!
//! A raw TCP listener plays the server: it reads the upgrade request, writes a hand-written
//! `101 Switching Protocols` (its `Sec-WebSocket-Accept` computed with
//! `duplex::proto::handshake::accept_key`), then sends hand-built unmasked frames and parses what
//! the client writes back. Most tests run the client as Autobahn runs clients under test: a task
//! that echoes every message it receives ([`spawn_echo`]); the rest drive `recv()`/`close()`
//! directly. Modules follow the RFC's sections; comments name the Autobahn cases covered.

mod wire;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use duplex::proto::handshake::{accept_key, HandshakeError};
use duplex::{ClientStream, CloseFrame, Message, MessageKind, WebSocket};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use wire::*;

type Ws = WebSocket<ClientStream>;

/// A TCP listener that plays the WebSocket server by hand.
struct RawServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl RawServer {
    async fn bind() -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        RawServer { listener, addr }
    }

    fn url(&self) -> String {
        format!("ws://{}/chat?room=1", self.addr)
    }

    /// Accepts one connection and reads its request head.
    async fn accept(&self) -> (Peer, String) {
        let (s, _) = timeout(WAIT, self.listener.accept()).await.expect("no connection").unwrap();
        let mut p = Peer::new(s);
        let head = p.read_head().await;
        (p, head)
    }
}

/// A header's value in a request head.
fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The exact 101 for `key`, with `extra` header lines.
fn answer(key: &str, extra: &[&str]) -> Vec<u8> {
    let mut a = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    );
    for h in extra {
        a.push_str(h);
        a.push_str("\r\n");
    }
    a.push_str("\r\n");
    a.into_bytes()
}

/// Runs `client.connect` against a raw server that answers the request with what `respond` makes
/// of its `Sec-WebSocket-Key`. Returns the client's result, the server's end and the request head.
async fn exchange(
    client: duplex::Client,
    respond: impl FnOnce(&str) -> Vec<u8>,
) -> (duplex::Result<(Ws, duplex::proto::handshake::Response)>, Peer, String) {
    let srv = RawServer::bind().await;
    let url = srv.url();
    let server_side = async {
        let (mut p, head) = srv.accept().await;
        let key = header_of(&head, "sec-websocket-key").expect("no Sec-WebSocket-Key").to_owned();
        p.write(&respond(&key)).await;
        (p, head)
    };
    let (result, (p, head)) =
        tokio::join!(async { timeout(WAIT, client.connect(&url)).await.expect("connect hung") }, server_side);
    (result, p, head)
}

/// A connected client and the raw server's end.
async fn open() -> (Ws, Peer) {
    let (r, p, _) = exchange(duplex::Client::new(), |k| answer(k, &[])).await;
    (r.expect("handshake failed").0, p)
}

/// The client under test as Autobahn drives clients: echo every message until the end.
fn spawn_echo(mut ws: Ws) -> JoinHandle<End> {
    tokio::spawn(async move {
        loop {
            match ws.recv().await {
                Some(Ok(m)) => {
                    if let Err(e) = ws.send(m).await {
                        return End::SendFailed(e);
                    }
                }
                Some(Err(e)) => return End::Failed(e),
                None => return End::Closed(ws.close_info().map(|i| i.frame)),
            }
        }
    })
}

/// How the echo client ended; panics if it panicked or did not end in time.
async fn end_of(task: JoinHandle<End>) -> End {
    timeout(WAIT, task).await.expect("the client did not end in time").expect("the client task panicked")
}

/// Reads a client frame: it must be masked (RFC 6455 §5.1, §5.3). Returns it unmasked.
async fn read_client_frame(p: &mut Peer) -> Frame {
    let f = p.read_frame().await;
    assert!(f.mask.is_some(), "client frame not masked: {f:?}");
    assert_eq!(f.rsv, 0, "{f:?}");
    // The header uses the minimal length encoding.
    assert_eq!(f.raw[..f.raw.len() - f.payload.len()], header(f.fin, 0, f.opcode, f.mask, f.payload.len() as u64));
    f
}

async fn expect_client_message(p: &mut Peer, opcode: u8, payload: &[u8]) {
    let f = read_client_frame(p).await;
    assert!(
        f.fin && f.opcode == opcode && f.payload == payload,
        "expected {opcode:#x} {} bytes, got {f:?}",
        payload.len()
    );
}

async fn expect_client_close(p: &mut Peer, code: u16) -> Frame {
    let f = read_client_frame(p).await;
    assert_eq!((f.opcode, f.close_code()), (CLOSE, Some(code)), "expected close {code}, got {f:?} ({:?})", reason(&f));
    f
}

/// The raw server sends `bytes`; the client must fail the connection with `code` (a masked close
/// frame) and its `recv()` report the protocol error.
async fn client_fails_with(case: &str, bytes: &[u8], code: u16) {
    eprintln!("case: {case}");
    let (ws, mut p) = open().await;
    let client = spawn_echo(ws);
    p.write(bytes).await;
    expect_client_close(&mut p, code).await;
    drop(p);
    match end_of(client).await {
        End::Failed(duplex::Error::Protocol(e)) if e.code().0 == code => {}
        other => panic!("{case}: expected a protocol error with {code}, got {other:?}"),
    }
}

// =============================================================================================
/// RFC 6455 §4.1: the client's request and its checks of the server's answer.
mod s4_opening_handshake {
    use super::*;

    #[tokio::test]
    async fn request_is_a_valid_upgrade() {
        let client = duplex::Client::new().protocol("chat").protocol("superchat").header("X-Custom", "yes");
        let (r, _p, head) = exchange(client, |k| answer(k, &["Sec-WebSocket-Protocol: chat"])).await;
        let (ws, resp) = r.expect("handshake");
        assert!(head.starts_with("GET /chat?room=1 HTTP/1.1\r\n"), "{head}");
        let port = head.lines().find_map(|l| l.strip_prefix("Host: 127.0.0.1:")).expect("Host with the port");
        assert!(port.parse::<u16>().is_ok(), "{head}");
        assert!(header_of(&head, "upgrade").unwrap().eq_ignore_ascii_case("websocket"), "{head}");
        assert!(header_of(&head, "connection").unwrap().to_ascii_lowercase().contains("upgrade"), "{head}");
        assert_eq!(header_of(&head, "sec-websocket-version"), Some("13"));
        assert_eq!(header_of(&head, "sec-websocket-protocol"), Some("chat, superchat"));
        assert_eq!(header_of(&head, "x-custom"), Some("yes"));
        // 16 random bytes in base64: 24 characters, the last two "==".
        let key = header_of(&head, "sec-websocket-key").unwrap();
        assert!(
            key.len() == 24
                && key.ends_with("==")
                && key[..22].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'),
            "{key:?}"
        );
        assert_eq!((ws.protocol(), resp.protocol.as_deref()), (Some("chat"), Some("chat")));
    }

    #[tokio::test]
    async fn each_connection_uses_a_fresh_key() {
        let (_, _, a) = exchange(duplex::Client::new(), |k| answer(k, &[])).await;
        let (_, _, b) = exchange(duplex::Client::new(), |k| answer(k, &[])).await;
        assert_ne!(header_of(&a, "sec-websocket-key"), header_of(&b, "sec-websocket-key"));
    }

    #[tokio::test]
    async fn wrong_accept_is_refused() {
        let (r, _, _) = exchange(duplex::Client::new(), |_| answer(RFC_KEY, &[])).await;
        match r {
            Err(duplex::Error::Handshake(HandshakeError::BadAccept)) => {}
            other => panic!("expected BadAccept, got {:?}", other.map(|_| ())),
        }
        // The accept of the right key, but cut short.
        let (r, _, _) = exchange(duplex::Client::new(), |k| {
            let full = accept_key(k);
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                &full[..full.len() - 1]
            )
            .into_bytes()
        })
        .await;
        assert!(matches!(r, Err(duplex::Error::Handshake(HandshakeError::BadAccept))));
    }

    #[tokio::test]
    async fn non_101_status_is_refused_naming_the_status() {
        for (status, reason) in [(403, "Forbidden"), (200, "OK"), (426, "Upgrade Required"), (302, "Found")] {
            eprintln!("case: {status}");
            let (r, _, _) = exchange(duplex::Client::new(), |_| {
                format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno").into_bytes()
            })
            .await;
            match r {
                Err(duplex::Error::Refused(r)) => {
                    assert_eq!((r.status, r.reason.as_str(), r.body.as_slice()), (status, reason, &b"no"[..]));
                    assert_eq!(r.headers.get("connection"), Some("close"));
                    let e = duplex::Error::Refused(r);
                    assert!(e.to_string().contains(&format!("{status} {reason}: no")), "{e}");
                }
                other => panic!("expected Refused({status}), got {:?}", other.map(|_| ())),
            }
        }
    }

    #[tokio::test]
    async fn unoffered_subprotocol_is_refused() {
        let client = duplex::Client::new().protocol("chat");
        let (r, _, _) = exchange(client, |k| answer(k, &["Sec-WebSocket-Protocol: superchat"])).await;
        assert!(
            matches!(&r, Err(duplex::Error::Handshake(HandshakeError::UnofferedProtocol(p))) if p == "superchat"),
            "{:?}",
            r.map(|_| ())
        );
        // A subprotocol when none was offered.
        let (r, _, _) = exchange(duplex::Client::new(), |k| answer(k, &["Sec-WebSocket-Protocol: chat"])).await;
        assert!(matches!(r, Err(duplex::Error::Handshake(HandshakeError::UnofferedProtocol(_)))));
    }

    #[tokio::test]
    async fn unoffered_extension_is_refused() {
        let (r, _, _) =
            exchange(duplex::Client::new(), |k| answer(k, &["Sec-WebSocket-Extensions: x-never-offered"])).await;
        assert!(
            matches!(r, Err(duplex::Error::Handshake(HandshakeError::UnofferedExtension(_)))),
            "{:?}",
            r.map(|_| ())
        );
    }

    #[tokio::test]
    async fn answer_without_upgrade_or_connection_is_refused() {
        let (r, _, _) = exchange(duplex::Client::new(), |k| {
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                accept_key(k)
            )
            .into_bytes()
        })
        .await;
        assert!(matches!(r, Err(duplex::Error::Handshake(HandshakeError::NotWebSocketUpgrade))));
        let (r, _, _) = exchange(duplex::Client::new(), |k| {
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                accept_key(k)
            )
            .into_bytes()
        })
        .await;
        assert!(matches!(r, Err(duplex::Error::Handshake(HandshakeError::MissingConnectionUpgrade))));
    }

    #[tokio::test]
    async fn server_closing_during_the_handshake_is_an_error() {
        let srv = RawServer::bind().await;
        let url = srv.url();
        let (r, ()) = tokio::join!(duplex::connect(&url), async {
            let (p, _) = srv.accept().await;
            drop(p);
        });
        match r {
            Err(duplex::Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    #[tokio::test]
    async fn silent_server_hits_the_handshake_timeout() {
        let srv = RawServer::bind().await;
        let url = srv.url();
        let client =
            duplex::Client::new().config(duplex::Config::default().handshake_timeout(Duration::from_millis(300)));
        let start = Instant::now();
        let (r, _held) = tokio::join!(async { timeout(WAIT, client.connect(&url)).await.expect("hung") }, srv.accept());
        let took = start.elapsed();
        assert!(matches!(r, Err(duplex::Error::Timeout(_))), "{:?}", r.map(|_| ()));
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "{took:?}");
    }

    /// Frames the server sends in the same write as its 101 are delivered.
    #[tokio::test]
    async fn frames_in_the_same_write_as_the_101_are_delivered() {
        let (r, _p, _) = exchange(duplex::Client::new(), |k| {
            concat(&[&answer(k, &[]), &server_frame(TEXT, b"right away"), &server_frame(BINARY, &[1, 2, 3])])
        })
        .await;
        let (mut ws, _) = r.expect("handshake");
        let m = timeout(WAIT, ws.recv()).await.unwrap().unwrap().unwrap();
        assert_eq!(m, Message::Text("right away".into()));
        let m = timeout(WAIT, ws.recv()).await.unwrap().unwrap().unwrap();
        assert_eq!(m.as_bytes(), &[1, 2, 3]);
    }
}

// =============================================================================================
/// RFC 6455 §5.1-§5.3: everything a client sends is masked, with a fresh key per frame.
mod s5_3_client_masking {
    use super::*;

    /// Autobahn 1.1.x/1.2.x, from the client's side: every length form, masked, minimal length.
    #[tokio::test]
    async fn client_frames_are_masked_at_every_length() {
        let (mut ws, mut p) = open().await;
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 100_000] {
            ws.send(Message::Text(String::from_utf8(ascii(len)).unwrap())).await.unwrap();
            expect_client_message(&mut p, TEXT, &ascii(len)).await;
            ws.send(Message::Binary(pattern(len).into())).await.unwrap();
            expect_client_message(&mut p, BINARY, &pattern(len)).await;
        }
    }

    /// RFC 6455 §5.3: the masking key is fresh for each frame, so payloads are not predictable.
    #[tokio::test]
    async fn masking_keys_change_from_frame_to_frame() {
        let (mut ws, mut p) = open().await;
        let mut keys = std::collections::HashSet::new();
        for _ in 0..20 {
            ws.send("same text").await.unwrap();
            let f = read_client_frame(&mut p).await;
            assert_eq!(f.payload, b"same text");
            keys.insert(f.mask.unwrap());
        }
        // 20 random 32-bit keys: all equal with probability 2^-608.
        assert!(keys.len() > 1, "the client reuses one masking key: {keys:?}");
    }

    /// Control frames and fragments are masked too.
    #[tokio::test]
    async fn control_frames_and_fragments_are_masked() {
        let (mut ws, mut p) = open().await;
        ws.ping(b"client ping").await.unwrap();
        let f = read_client_frame(&mut p).await;
        assert!(f.fin && f.opcode == PING && f.payload == b"client ping", "{f:?}");

        ws.send_fragment(MessageKind::Text, b"frag", true, false).await.unwrap();
        ws.send_fragment(MessageKind::Text, b"men", false, false).await.unwrap();
        ws.send_fragment(MessageKind::Text, b"ted", false, true).await.unwrap();
        for (fin, opcode, payload) in [(false, TEXT, &b"frag"[..]), (false, CONT, b"men"), (true, CONT, b"ted")] {
            let f = read_client_frame(&mut p).await;
            assert_eq!((f.fin, f.opcode, f.payload.as_slice()), (fin, opcode, payload), "{f:?}");
        }

        ws.close(Some(CloseFrame::new(1000, "done"))).await.unwrap();
        let f = expect_client_close(&mut p, 1000).await;
        assert_eq!(f.payload, close_payload(1000, b"done"));
    }
}

// =============================================================================================
/// RFC 6455 §5.2, §5.4, §8.1 from the client's side: what it accepts from a server. Autobahn
/// 1.x, 3.x, 4.x, 5.x, 6.x with the client under test.
mod s5_receiving {
    use super::*;

    #[tokio::test]
    async fn messages_of_every_length_are_received() {
        let (ws, mut p) = open().await;
        let client = spawn_echo(ws);
        for len in [0usize, 125, 126, 65535, 65536, 100_000] {
            p.write(&server_frame(TEXT, &ascii(len))).await;
            expect_client_message(&mut p, TEXT, &ascii(len)).await;
            p.write(&server_frame(BINARY, &pattern(len))).await;
            expect_client_message(&mut p, BINARY, &pattern(len)).await;
        }
        // The 64 KiB frame again, in chops of 997 octets (Autobahn 1.1.8).
        p.write_chopped(&server_frame(BINARY, &pattern(65536)), 997).await;
        expect_client_message(&mut p, BINARY, &pattern(65536)).await;
        p.write(&server_frame(CLOSE, &close_payload(1000, b""))).await;
        expect_client_close(&mut p, 1000).await;
        drop(p);
        assert!(matches!(end_of(client).await, End::Closed(Some(Some(_)))));
    }

    /// Autobahn 5.3-5.7 and 5.19: a fragmented message arrives as one; a ping between its
    /// fragments is answered before the message is complete.
    #[tokio::test]
    async fn fragmented_message_with_a_ping_inside() {
        let (ws, mut p) = open().await;
        let client = spawn_echo(ws);
        p.write(&frame(false, 0, TEXT, None, b"fragment1 ")).await;
        p.write(&server_frame(PING, b"in the middle")).await;
        let pong = read_client_frame(&mut p).await;
        assert!(pong.fin && pong.opcode == PONG && pong.payload == b"in the middle", "{pong:?}");
        p.write(&frame(true, 0, CONT, None, b"fragment2")).await;
        expect_client_message(&mut p, TEXT, b"fragment1 fragment2").await;
        // Text split inside a character, across fragments.
        let text = "κόσμε".as_bytes();
        p.write(&concat(&[&frame(false, 0, TEXT, None, &text[..3]), &frame(true, 0, CONT, None, &text[3..])])).await;
        expect_client_message(&mut p, TEXT, text).await;
        drop(p);
        // The server vanished without a close frame: 1006.
        assert!(matches!(end_of(client).await, End::Failed(duplex::Error::AbnormalClosure)));
    }

    /// Autobahn 2.1-2.4, 2.10: pings are answered with pongs of the same payload, masked.
    #[tokio::test]
    async fn pings_are_answered_with_masked_pongs() {
        let (ws, mut p) = open().await;
        let _client = spawn_echo(ws);
        let max = pattern(125);
        for payload in [&b""[..], b"ping", &max] {
            p.write(&server_frame(PING, payload)).await;
            let f = read_client_frame(&mut p).await;
            assert!(f.fin && f.opcode == PONG && f.payload == payload, "{f:?}");
        }
        let ten: Vec<u8> = (0..10u8).flat_map(|i| server_frame(PING, &[i])).collect();
        p.write(&ten).await;
        for i in 0..10u8 {
            let f = read_client_frame(&mut p).await;
            assert_eq!((f.opcode, f.payload.as_slice()), (PONG, &[i][..]));
        }
        // An unsolicited pong gets no answer.
        p.write(&server_frame(PONG, b"unsolicited")).await;
        p.expect_silence(Duration::from_millis(100)).await;
    }

    /// RFC 6455 §5.1: "a client MUST close a connection if it detects a masked frame".
    #[tokio::test]
    async fn masked_server_frame_fails_with_1002() {
        client_fails_with("masked text", &client_frame(TEXT, b"masked"), 1002).await;
        client_fails_with("masked ping", &client_frame(PING, b""), 1002).await;
    }

    /// Autobahn 3.x, 4.x: reserved bits and opcodes.
    #[tokio::test]
    async fn reserved_bits_and_opcodes_fail_with_1002() {
        client_fails_with("rsv 1", &frame(true, 1, TEXT, None, b"x"), 1002).await;
        client_fails_with("rsv 4 (no deflate negotiated)", &frame(true, 4, BINARY, None, b"x"), 1002).await;
        client_fails_with("opcode 3", &server_frame(3, b""), 1002).await;
        client_fails_with("opcode 0xb", &server_frame(0xb, b"x"), 1002).await;
    }

    /// Autobahn 2.5, 5.1-5.2, 5.9, 5.16.
    #[tokio::test]
    async fn control_and_fragmentation_violations_fail_with_1002() {
        client_fails_with("ping of 126 bytes", &server_frame(PING, &[0; 126]), 1002).await;
        client_fails_with("fragmented ping", &frame(false, 0, PING, None, b"x"), 1002).await;
        client_fails_with("continuation without start", &frame(true, 0, CONT, None, b"x"), 1002).await;
        let interleaved = concat(&[&frame(false, 0, TEXT, None, b"a"), &server_frame(TEXT, b"b")]);
        client_fails_with("new message inside a fragmented one", &interleaved, 1002).await;
    }

    /// Autobahn 6.x: invalid UTF-8 from the server, whole and split across fragments.
    #[tokio::test]
    async fn invalid_utf8_fails_with_1007() {
        client_fails_with("0xff", &server_frame(TEXT, &[b'a', 0xff]), 1007).await;
        client_fails_with("surrogate", &server_frame(TEXT, &[0xed, 0xa0, 0x80]), 1007).await;
        let split = concat(&[&frame(false, 0, TEXT, None, &[0xf4]), &frame(false, 0, CONT, None, &[0x90, 0x80])]);
        client_fails_with("F4 | 90 across fragments, no final fragment", &split, 1007).await;
    }

    /// What came before a violation is handled first (Autobahn strict 3.2, 4.1.3): the echo of the
    /// valid message, then the close frame for the violation.
    #[tokio::test]
    async fn message_before_a_violation_is_echoed_before_the_close() {
        let (ws, mut p) = open().await;
        let client = spawn_echo(ws);
        p.write(&concat(&[&server_frame(TEXT, b"valid"), &frame(true, 2, TEXT, None, b"rsv2")])).await;
        expect_client_message(&mut p, TEXT, b"valid").await;
        expect_client_close(&mut p, 1002).await;
        drop(p);
        assert!(matches!(end_of(client).await, End::Failed(duplex::Error::Protocol(_))));
    }

    /// Autobahn 7.3.2, 7.5.1, 7.9.x from the client's side.
    #[tokio::test]
    async fn invalid_close_frames_fail() {
        client_fails_with("one-byte close", &server_frame(CLOSE, &[0x03]), 1002).await;
        client_fails_with("close 1005", &server_frame(CLOSE, &close_payload(1005, b"")), 1002).await;
        client_fails_with("close 999", &server_frame(CLOSE, &close_payload(999, b"")), 1002).await;
        client_fails_with("close reason 0xff", &server_frame(CLOSE, &close_payload(1000, &[0xff])), 1007).await;
    }
}

// =============================================================================================
/// RFC 6455 §5.5.1, §7: the close handshake from the client's side. Autobahn 7.x.
mod s7_close {
    use super::*;

    /// The server's close 1000 is answered with a masked close 1000, and `recv()` returns `None`
    /// with the server's close frame available.
    #[tokio::test]
    async fn server_close_is_answered_and_recv_returns_none() {
        let (mut ws, mut p) = open().await;
        let server_side = async {
            p.write(&server_frame(CLOSE, &close_payload(1000, b"server done"))).await;
            let f = expect_client_close(&mut p, 1000).await;
            assert_eq!(f.payload, [0x03, 0xe8], "the answer echoes the code: {f:?}");
            // The server closes TCP first (RFC 6455 §7.1.1).
            drop(p);
        };
        let (r, ()) = tokio::join!(async { timeout(WAIT, ws.recv()).await.expect("recv hung") }, server_side);
        assert!(r.is_none(), "{r:?}");
        assert_eq!(ws.close_info().and_then(|i| i.frame), Some(CloseFrame::new(1000, "server done")));
        assert!(ws.is_closed());
        assert!(timeout(WAIT, ws.recv()).await.unwrap().is_none());
    }

    /// An empty close frame is answered with an empty one (Autobahn 7.3.1).
    #[tokio::test]
    async fn empty_server_close_is_answered_empty() {
        let (ws, mut p) = open().await;
        let client = spawn_echo(ws);
        p.write(&server_frame(CLOSE, b"")).await;
        let f = read_client_frame(&mut p).await;
        assert_eq!((f.opcode, f.payload.len()), (CLOSE, 0), "{f:?}");
        drop(p);
        assert!(matches!(end_of(client).await, End::Closed(Some(None))));
    }

    /// A message and the close frame in one write: the message, then `None`.
    #[tokio::test]
    async fn message_and_close_in_one_write() {
        let (mut ws, mut p) = open().await;
        p.write(&concat(&[&server_frame(TEXT, b"last words"), &server_frame(CLOSE, &close_payload(1000, b""))])).await;
        let m = timeout(WAIT, ws.recv()).await.unwrap();
        assert_eq!(m.unwrap().unwrap(), Message::Text("last words".into()));
        let server_side = async {
            expect_client_close(&mut p, 1000).await;
            drop(p);
        };
        let (r, ()) = tokio::join!(async { timeout(WAIT, ws.recv()).await.expect("recv hung") }, server_side);
        assert!(r.is_none(), "{r:?}");
    }

    /// Autobahn 7.1.x: after the server's close, nothing more is delivered.
    #[tokio::test]
    async fn frames_after_the_server_close_are_ignored() {
        let (mut ws, mut p) = open().await;
        p.write(&concat(&[
            &server_frame(CLOSE, &close_payload(1001, b"")),
            &server_frame(TEXT, b"after close"),
            &server_frame(PING, b"after close"),
        ]))
        .await;
        let server_side = async {
            let f = expect_client_close(&mut p, 1001).await;
            assert_eq!(f.payload, [0x03, 0xe9]);
            // No pong, no echo: the next thing is the client's TCP close or nothing.
            match p.next_frame_within(Duration::from_millis(200)).await {
                Ok(None) => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                other => panic!("unexpected {other:?}"),
            }
            drop(p);
        };
        let (r, ()) = tokio::join!(async { timeout(WAIT, ws.recv()).await.expect("recv hung") }, server_side);
        assert!(r.is_none(), "{r:?}");
    }

    /// The client starts the close: its frame is masked and carries code and reason; the
    /// server's answer ends the connection.
    #[tokio::test]
    async fn client_initiated_close() {
        let (mut ws, mut p) = open().await;
        ws.close(Some(CloseFrame::new(4000, "client done"))).await.unwrap();
        let f = expect_client_close(&mut p, 4000).await;
        assert_eq!(reason(&f), "client done");
        p.write(&server_frame(CLOSE, &close_payload(4000, b""))).await;
        drop(p);
        let r = timeout(WAIT, ws.recv()).await.expect("recv hung");
        assert!(r.is_none(), "{r:?}");
        // The close information names the frame that started the handshake: ours.
        let info = ws.close_info().expect("closed");
        assert_eq!((info.frame, info.initiator), (Some(CloseFrame::new(4000, "client done")), duplex::Side::Local));
        // Nothing can be sent after the close.
        assert!(ws.send("late").await.is_err());
    }

    /// RFC 6455 §7.1.2-§7.1.3: after sending its close frame the client still receives what the
    /// server sent before answering it.
    #[tokio::test]
    async fn messages_sent_before_the_server_answers_our_close_are_delivered() {
        let (mut ws, mut p) = open().await;
        ws.close(Some(CloseFrame::new(1000, ""))).await.unwrap();
        expect_client_close(&mut p, 1000).await;
        p.write(&concat(&[
            &server_frame(TEXT, b"in flight"),
            &server_frame(PING, b"no pong after close"),
            &server_frame(CLOSE, &close_payload(1000, b"")),
        ]))
        .await;
        let m = timeout(WAIT, ws.recv()).await.expect("recv hung");
        assert_eq!(m.unwrap().unwrap(), Message::Text("in flight".into()));
        let (r, ()) = tokio::join!(async { timeout(WAIT, ws.recv()).await.expect("recv hung") }, async {
            // No pong: a close frame was sent, nothing may follow it (RFC 6455 §5.5.1).
            match p.next_frame_within(Duration::from_millis(200)).await {
                Ok(None) => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                other => panic!("unexpected {other:?}"),
            }
            drop(p);
        });
        assert!(r.is_none(), "{r:?}");
    }

    /// A server that never answers our close frame: `recv()` gives up at the close timeout.
    #[tokio::test]
    async fn unanswered_close_ends_at_the_close_timeout() {
        let client = duplex::Client::new().config(duplex::Config::default().close_timeout(Duration::from_millis(300)));
        let (r, mut p, _) = exchange(client, |k| answer(k, &[])).await;
        let (mut ws, _) = r.unwrap();
        ws.close(Some(CloseFrame::new(1000, ""))).await.unwrap();
        expect_client_close(&mut p, 1000).await;
        // `p` stays open and silent.
        let start = Instant::now();
        let r = timeout(WAIT, ws.recv()).await.expect("recv did not return after the close timeout");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(2), "recv returned after {took:?}");
        assert!(matches!(r, Some(Err(duplex::Error::Timeout(_)))), "{r:?}");
        assert!(timeout(WAIT, ws.recv()).await.unwrap().is_none());
        drop(p);
    }

    /// A server that answers the close frame but never closes TCP: the client still finishes
    /// within the close timeout.
    #[tokio::test]
    async fn answered_close_without_tcp_close_ends_at_the_close_timeout() {
        let client = duplex::Client::new().config(duplex::Config::default().close_timeout(Duration::from_millis(300)));
        let (r, mut p, _) = exchange(client, |k| answer(k, &[])).await;
        let (mut ws, _) = r.unwrap();
        let start = Instant::now();
        ws.close(None).await.unwrap();
        let f = read_client_frame(&mut p).await;
        assert_eq!((f.opcode, f.payload.len()), (CLOSE, 0));
        p.write(&server_frame(CLOSE, b"")).await;
        let r = timeout(WAIT, ws.recv()).await.expect("recv hung");
        assert!(r.is_none(), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        drop(p);
    }

    /// The server drops TCP without a close frame: 1006, reported as `AbnormalClosure`.
    #[tokio::test]
    async fn tcp_close_without_close_frame_is_abnormal() {
        let (mut ws, p) = open().await;
        drop(p);
        let r = timeout(WAIT, ws.recv()).await.unwrap();
        match r {
            Some(Err(e @ duplex::Error::AbnormalClosure)) => assert_eq!(e.close_code().0, 1006),
            other => panic!("{other:?}"),
        }
        assert!(timeout(WAIT, ws.recv()).await.unwrap().is_none());
    }
}
