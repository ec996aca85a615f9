//! RFC 6455 conformance of `duplex::Server`, checked byte by byte over real sockets.
//!
//! An echo server built with the library runs in-process ([`wire::EchoServer`]: `Server::bind`,
//! `request()`, `accept()`, then `recv()`/`send()` until the end). A raw TCP client does the
//! opening handshake by hand and sends hand-built masked frames; the tests check the exact bytes
//! and close codes that come back, then how the server's `recv()` ended.
//!
//! Modules follow the RFC's sections; comments name the Autobahn|TestSuite cases (sections 1-10)
//! each test covers: 1 framing, 2 ping/pong, 3 reserved bits, 4 opcodes, 5 fragmentation,
//! 6 UTF-8, 7 close, 9 sizes (here scaled down), 10 misc.

mod wire;

use std::time::{Duration, Instant};

use duplex::CloseFrame;
use wire::*;

/// Opens a fresh connection, sends `bytes` in one write, and expects the server to fail the
/// connection with `code` (close frame, then TCP close) and its `recv()` to report it.
async fn fails_with(server: &mut EchoServer, case: &str, bytes: &[u8], code: u16) {
    eprintln!("case: {case}");
    let mut p = Peer::open(server.addr).await;
    p.write(bytes).await;
    p.expect_fail(code).await;
    server.expect_failed(p, code).await;
}

/// Closes `p` cleanly (close 1000, its echo, the server's TCP close) and checks the server saw it.
async fn close_cleanly(server: &mut EchoServer, mut p: Peer) {
    p.write(&client_frame(CLOSE, &close_payload(1000, b""))).await;
    let f = p.expect_close(1000).await;
    assert_eq!(f.raw, [0x88, 0x02, 0x03, 0xe8]);
    p.expect_eof().await;
    drop(p);
    match server.next_end().await {
        End::Closed(Some(Some(f))) if f.code.0 == 1000 => {}
        other => panic!("expected a clean close, got {other:?}"),
    }
    assert_eq!(server.panics(), 0);
}

mod wire_self_check {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_examples() {
        assert_eq!(duplex::proto::handshake::accept_key(RFC_KEY), RFC_ACCEPT);
        // RFC 6455 §1.2.
        assert_eq!(duplex::proto::handshake::accept_key("x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    }

    #[test]
    fn frames_are_built_as_in_rfc_6455_section_5_7() {
        // "A single-frame masked text message" containing "Hello".
        assert_eq!(client_frame(TEXT, b"Hello"), [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        // "A fragmented unmasked text message".
        assert_eq!(frame(false, 0, TEXT, None, b"Hel"), [0x01, 0x03, 0x48, 0x65, 0x6c]);
        assert_eq!(frame(true, 0, CONT, None, b"lo"), [0x80, 0x02, 0x6c, 0x6f]);
        // "Unmasked Ping request and masked Ping response".
        assert_eq!(frame(true, 0, PING, None, b"Hello"), [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        // 256 bytes and 64 KiB binary messages.
        assert_eq!(header(true, 0, BINARY, None, 256), [0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(header(true, 0, BINARY, None, 65536), [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
        let (f, n) = parse_frame(&client_frame(TEXT, b"Hello")).unwrap();
        assert_eq!((f.payload.as_slice(), f.mask, n), (&b"Hello"[..], Some(MASK_KEY), 11));
        assert!(parse_frame(&client_frame(TEXT, b"Hello")[..10]).is_none());
    }
}

// =============================================================================================
/// RFC 6455 §4.2: the server's side of the opening handshake.
mod s4_opening_handshake {
    use super::*;

    /// A request head from its lines.
    fn head(lines: &[&str]) -> Vec<u8> {
        format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes()
    }

    /// The lines of a valid request, to alter one at a time.
    fn valid_lines() -> Vec<String> {
        [
            "GET /chat HTTP/1.1",
            "Host: server.example.com",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Origin: http://example.com",
            "Sec-WebSocket-Version: 13",
        ]
        .map(String::from)
        .to_vec()
    }

    /// The valid request with line `i` replaced (or removed, with `None`).
    fn altered(i: usize, with: Option<&str>) -> Vec<u8> {
        let mut lines = valid_lines();
        match with {
            Some(l) => lines[i] = l.to_owned(),
            None => {
                lines.remove(i);
            }
        }
        head(&lines.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Sends `raw` and expects an HTTP error answer with `status`, then the TCP close; the
    /// server's handshake reports an error.
    async fn refused(raw: &[u8], status: u16) -> HttpResponse {
        let mut server = EchoServer::start().await;
        let mut p = Peer::connect(server.addr).await;
        p.write(raw).await;
        let resp = p.read_response().await;
        assert_eq!(resp.status, status, "{resp:?}");
        assert!(resp.head.starts_with(&format!("HTTP/1.1 {status} ")), "{resp:?}");
        assert_eq!(resp.header("connection"), Some("close"), "{resp:?}");
        assert!(resp.header("sec-websocket-accept").is_none(), "{resp:?}");
        p.expect_eof().await;
        match server.next_end().await {
            End::Handshake(duplex::Error::Handshake(e)) => assert_eq!(e.status(), status),
            other => panic!("expected a handshake error, got {other:?}"),
        }
        assert_eq!(server.panics(), 0);
        resp
    }

    /// Sends `raw` and expects exactly the 101 for the RFC's key, then a working connection.
    async fn accepted(raw: &[u8]) {
        let mut server = EchoServer::start().await;
        let mut p = Peer::connect(server.addr).await;
        p.write(raw).await;
        let head = p.read_head().await;
        assert_eq!(
            head,
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n\r\n"
            )
        );
        p.write(&client_frame(TEXT, b"after the handshake")).await;
        p.expect_message(TEXT, b"after the handshake").await;
        close_cleanly(&mut server, p).await;
    }

    #[tokio::test]
    async fn valid_request_gets_the_exact_101() {
        accepted(&head(&valid_lines().iter().map(String::as_str).collect::<Vec<_>>())).await;
    }

    #[tokio::test]
    async fn accept_key_is_computed_from_the_request_key() {
        // RFC 6455 §1.2's other example key.
        let raw = altered(4, Some("Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw=="));
        let mut server = EchoServer::start().await;
        let mut p = Peer::connect(server.addr).await;
        p.write(&raw).await;
        let resp = p.read_response().await;
        assert_eq!(resp.status, 101);
        assert_eq!(resp.header("sec-websocket-accept"), Some("HSmrc0sMlYUkAGmm5OPpG2HaGWk="));
        assert!(resp.header("sec-websocket-protocol").is_none(), "no subprotocol was chosen: {resp:?}");
        assert!(resp.header("sec-websocket-extensions").is_none(), "no extension was negotiated: {resp:?}");
        close_cleanly(&mut server, p).await;
    }

    #[tokio::test]
    async fn connection_header_with_several_tokens_is_accepted() {
        accepted(&altered(3, Some("Connection: keep-alive, Upgrade"))).await;
    }

    #[tokio::test]
    async fn upgrade_and_connection_tokens_are_case_insensitive() {
        accepted(&altered(2, Some("Upgrade: WebSocket"))).await;
        accepted(&altered(3, Some("Connection: UPGRADE"))).await;
    }

    #[tokio::test]
    async fn header_names_are_case_insensitive() {
        let raw = head(&[
            "GET /chat HTTP/1.1",
            "host: server.example.com",
            "UPGRADE: websocket",
            "connection: Upgrade",
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
            "SEC-WEBSOCKET-VERSION: 13",
        ]);
        accepted(&raw).await;
    }

    #[tokio::test]
    async fn missing_host_is_400() {
        refused(&altered(1, None), 400).await;
    }

    #[tokio::test]
    async fn wrong_version_is_426_naming_version_13() {
        for version in [Some("Sec-WebSocket-Version: 8"), Some("Sec-WebSocket-Version: 14"), None] {
            eprintln!("case: {version:?}");
            let resp = refused(&altered(6, version), 426).await;
            assert_eq!(resp.header("sec-websocket-version"), Some("13"), "{resp:?}");
        }
    }

    #[tokio::test]
    async fn bad_or_missing_key_is_400() {
        // "c2hvcnQ=" is base64 for "short": not 16 bytes. "!!" is not base64.
        for key in [Some("Sec-WebSocket-Key: c2hvcnQ="), Some("Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!!!"), None] {
            eprintln!("case: {key:?}");
            refused(&altered(4, key), 400).await;
        }
    }

    #[tokio::test]
    async fn method_other_than_get_is_405() {
        refused(&altered(0, Some("POST /chat HTTP/1.1")), 405).await;
    }

    #[tokio::test]
    async fn http_1_0_is_505() {
        refused(&altered(0, Some("GET /chat HTTP/1.0")), 505).await;
    }

    #[tokio::test]
    async fn connection_without_upgrade_token_is_400() {
        refused(&altered(3, Some("Connection: keep-alive")), 400).await;
    }

    #[tokio::test]
    async fn missing_upgrade_header_is_426() {
        let resp = refused(&altered(2, None), 426).await;
        assert_eq!(resp.header("sec-websocket-version"), Some("13"), "{resp:?}");
    }

    #[tokio::test]
    async fn oversized_head_is_431() {
        // Exactly one byte over the default 8 KiB limit, and never finished: the server reads all
        // of it (so its close is a FIN, not a reset that could destroy the answer) and answers 431.
        let mut raw = b"GET /chat HTTP/1.1\r\nHost: x\r\nX-Padding: ".to_vec();
        raw.resize(8 * 1024 + 1, b'a');
        refused(&raw, 431).await;
    }

    #[tokio::test]
    async fn too_many_headers_is_431() {
        let mut lines = valid_lines();
        for i in 0..64 {
            lines.push(format!("X-Extra-{i}: {i}"));
        }
        refused(&head(&lines.iter().map(String::as_str).collect::<Vec<_>>()), 431).await;
    }

    #[tokio::test]
    async fn frames_in_the_same_write_as_the_request_are_processed() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::connect(server.addr).await;
        let raw = concat(&[&request(server.addr, &[]), &client_frame(TEXT, b"early"), &client_frame(PING, b"p")]);
        p.write(&raw).await;
        assert_eq!(p.read_response().await.status, 101);
        p.expect_message(TEXT, b"early").await;
        let pong = p.read_frame().await;
        assert_eq!(pong.raw, [0x8a, 0x01, b'p']);
        close_cleanly(&mut server, p).await;
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_request_is_dropped_at_the_handshake_timeout() {
        let config = duplex::Config::default().handshake_timeout(Duration::from_millis(300));
        let mut server = EchoServer::with_config(config).await;
        let mut p = Peer::connect(server.addr).await;
        let start = Instant::now();
        p.write(b"GET /chat HTTP/1.1\r\nHost: x\r\n").await;
        p.expect_eof().await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "dropped after {took:?}");
        assert!(matches!(server.next_end().await, End::Handshake(duplex::Error::Timeout(_))));
    }
}

// =============================================================================================
/// RFC 6455 §5.2: base framing. Autobahn 1.x (lengths), 3.x (reserved bits), 4.x (opcodes).
mod s5_2_framing {
    use super::*;

    /// Autobahn 1.1.1-1.1.7, 1.2.1-1.2.7: every length encoding, both data opcodes; the echo uses
    /// the minimal length encoding and no mask.
    #[tokio::test]
    async fn seven_sixteen_and_sixtyfour_bit_lengths_echo_exactly() {
        let mut server = EchoServer::start().await;
        for opcode in [TEXT, BINARY] {
            let mut p = Peer::open(server.addr).await;
            for len in [0usize, 1, 125, 126, 127, 128, 1000, 65535, 65536, 100_000] {
                let payload = if opcode == TEXT { ascii(len) } else { pattern(len) };
                p.write(&client_frame(opcode, &payload)).await;
                let f = p.read_frame().await;
                assert_eq!(f.raw, frame(true, 0, opcode, None, &payload), "echo of a {len}-byte frame: {f:?}");
            }
            close_cleanly(&mut server, p).await;
        }
    }

    /// Autobahn 1.1.8, 1.2.8: a 64 KiB message delivered in chops of 997 octets.
    #[tokio::test]
    async fn frame_delivered_in_chops_echoes() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        for (opcode, payload) in [(TEXT, ascii(65536)), (BINARY, pattern(65536))] {
            p.write_chopped(&client_frame(opcode, &payload), 997).await;
            p.expect_message(opcode, &payload).await;
        }
        close_cleanly(&mut server, p).await;
    }

    /// A header may arrive one byte at a time: each of the 2-, 4- and 10-byte length forms, with
    /// the masking key, split at every byte.
    #[tokio::test]
    async fn header_split_at_every_byte_echoes() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        for len in [5usize, 300, 70_000] {
            let f = client_frame(BINARY, &pattern(len));
            let hlen = f.len() - len;
            p.write_chopped(&f[..hlen], 1).await;
            p.write_chopped(&f[hlen..], 4096).await;
            p.expect_message(BINARY, &pattern(len)).await;
        }
        close_cleanly(&mut server, p).await;
    }

    /// Autobahn 3.1-3.7: RSV1, RSV2, RSV3 and their combinations, on text, binary, ping and close.
    #[tokio::test]
    async fn reserved_bits_fail_with_1002() {
        let mut server = EchoServer::start().await;
        for rsv in 1..=7u8 {
            fails_with(&mut server, &format!("text, rsv {rsv}"), &frame(true, rsv, TEXT, Some(MASK_KEY), b"x"), 1002)
                .await;
        }
        fails_with(&mut server, "binary, rsv 4", &frame(true, 4, BINARY, Some(MASK_KEY), &[0xff; 8]), 1002).await;
        fails_with(&mut server, "ping, rsv 2", &frame(true, 2, PING, Some(MASK_KEY), b"p"), 1002).await;
        fails_with(&mut server, "close, rsv 1", &frame(true, 1, CLOSE, Some(MASK_KEY), &[0x03, 0xe8]), 1002).await;
        fails_with(&mut server, "continuation, rsv 3", &frame(true, 3, CONT, Some(MASK_KEY), b"x"), 1002).await;
    }

    /// Autobahn 4.1.1-4.1.2, 4.2.1-4.2.2: reserved data opcodes 3-7 and control opcodes B-F, empty
    /// and with a payload.
    #[tokio::test]
    async fn reserved_opcodes_fail_with_1002() {
        let mut server = EchoServer::start().await;
        for opcode in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            fails_with(&mut server, &format!("opcode {opcode:#x}"), &client_frame(opcode, b""), 1002).await;
            fails_with(&mut server, &format!("opcode {opcode:#x} + payload"), &client_frame(opcode, b"reserved"), 1002)
                .await;
        }
    }

    /// RFC 6455 §5.1: a server MUST close the connection upon receiving an unmasked frame.
    #[tokio::test]
    async fn unmasked_client_frames_fail_with_1002() {
        let mut server = EchoServer::start().await;
        fails_with(&mut server, "unmasked text", &server_frame(TEXT, b"Hello"), 1002).await;
        fails_with(&mut server, "unmasked empty binary", &server_frame(BINARY, b""), 1002).await;
        fails_with(&mut server, "unmasked ping", &server_frame(PING, b""), 1002).await;
        fails_with(&mut server, "unmasked close", &server_frame(CLOSE, &[0x03, 0xe8]), 1002).await;
    }

    /// RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length", and the
    /// most significant bit of a 64-bit length MUST be 0.
    #[tokio::test]
    async fn bad_length_encodings_fail_with_1002() {
        let mut server = EchoServer::start().await;
        let mut short_in_16 = vec![0x82, 0xfe, 0x00, 0x05];
        short_in_16.extend_from_slice(&MASK_KEY);
        short_in_16.extend_from_slice(&[0; 5]);
        fails_with(&mut server, "5 in the 16-bit form", &short_in_16, 1002).await;
        let mut short_in_64 = vec![0x82, 0xff, 0, 0, 0, 0, 0, 0, 0x01, 0x00];
        short_in_64.extend_from_slice(&MASK_KEY);
        short_in_64.extend_from_slice(&[0; 256]);
        fails_with(&mut server, "256 in the 64-bit form", &short_in_64, 1002).await;
        let mut top_bit = vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0x01];
        top_bit.extend_from_slice(&MASK_KEY);
        fails_with(&mut server, "64-bit length with the top bit set", &top_bit, 1002).await;
    }
}

// =============================================================================================
/// RFC 6455 §5.4: fragmentation. Autobahn 5.x.
mod s5_4_fragmentation {
    use super::*;

    /// Autobahn 5.3, 5.4 (text), 5.5-ish (binary): fragments are echoed as one message.
    #[tokio::test]
    async fn fragmented_message_is_echoed_as_one() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        let parts = concat(&[
            &client_fragment(false, TEXT, b"frag"),
            &client_fragment(false, CONT, b"men"),
            &client_fragment(true, CONT, b"ted"),
        ]);
        p.write(&parts).await;
        p.expect_message(TEXT, b"fragmented").await;
        // The same, one fragment per write.
        p.write_chopped(&parts, 7).await;
        p.expect_message(TEXT, b"fragmented").await;
        // Binary, with empty fragments at the start, middle and end (Autobahn 6.1.2-6.1.3 for text).
        let parts = concat(&[
            &client_fragment(false, BINARY, b""),
            &client_fragment(false, CONT, &[1, 2, 3]),
            &client_fragment(false, CONT, b""),
            &client_fragment(false, CONT, &[4]),
            &client_fragment(true, CONT, b""),
        ]);
        p.write(&parts).await;
        p.expect_message(BINARY, &[1, 2, 3, 4]).await;
        // All fragments empty.
        p.write(&concat(&[&client_fragment(false, TEXT, b""), &client_fragment(true, CONT, b"")])).await;
        p.expect_message(TEXT, b"").await;
        // 200 one-byte fragments.
        let text = ascii(200);
        let mut many = client_fragment(false, TEXT, &text[..1]);
        for (i, b) in text.iter().enumerate().skip(1) {
            many.extend_from_slice(&client_fragment(i == 199, CONT, &[*b]));
        }
        p.write(&many).await;
        p.expect_message(TEXT, &text).await;
        close_cleanly(&mut server, p).await;
    }

    /// Autobahn 5.6-5.7 (ping between fragments), 5.19-5.20 (fragments and pings spread over time):
    /// a ping inside a fragmented message is answered at once, before the message is complete.
    #[tokio::test]
    async fn ping_between_fragments_is_answered_before_the_message_ends() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        p.write(&client_fragment(false, TEXT, b"fragment1 ")).await;
        p.write(&client_frame(PING, b"ping payload")).await;
        // The pong comes now, while the message is still open on our side.
        let pong = p.read_frame().await;
        assert_eq!(pong.raw, frame(true, 0, PONG, None, b"ping payload"));
        p.write(&client_fragment(false, CONT, b"fragment2 ")).await;
        p.write(&client_frame(PING, b"second")).await;
        assert_eq!(p.read_frame().await.raw, frame(true, 0, PONG, None, b"second"));
        p.expect_silence(Duration::from_millis(50)).await;
        p.write(&client_fragment(true, CONT, b"fragment3")).await;
        p.expect_message(TEXT, b"fragment1 fragment2 fragment3").await;

        // All in one write: the pong still precedes the echo.
        let all = concat(&[
            &client_fragment(false, TEXT, b"a"),
            &client_frame(PING, b"p"),
            &client_fragment(true, CONT, b"b"),
        ]);
        p.write(&all).await;
        assert_eq!(p.read_frame().await.raw, [0x8a, 0x01, b'p']);
        p.expect_message(TEXT, b"ab").await;

        // Autobahn 5.8: an unsolicited pong between fragments is ignored.
        let all = concat(&[
            &client_fragment(false, TEXT, b"c"),
            &client_frame(PONG, b"unsolicited"),
            &client_fragment(true, CONT, b"d"),
        ]);
        p.write(&all).await;
        p.expect_message(TEXT, b"cd").await;
        close_cleanly(&mut server, p).await;
    }

    /// Autobahn 5.9-5.14: a continuation frame with no message to continue.
    #[tokio::test]
    async fn continuation_without_start_fails_with_1002() {
        let mut server = EchoServer::start().await;
        fails_with(&mut server, "final continuation", &client_fragment(true, CONT, b"x"), 1002).await;
        fails_with(&mut server, "non-final continuation", &client_fragment(false, CONT, b"x"), 1002).await;
        fails_with(&mut server, "empty continuation", &client_fragment(true, CONT, b""), 1002).await;
        // Autobahn 5.15-ish: after a complete message, a continuation is again unexpected.
        let mut p = Peer::open(server.addr).await;
        p.write(&concat(&[&client_frame(TEXT, b"done"), &client_fragment(true, CONT, b"more")])).await;
        p.expect_message(TEXT, b"done").await;
        p.expect_fail(1002).await;
        server.expect_failed(p, 1002).await;
    }

    /// Autobahn 5.16-5.18: a new data frame while a fragmented message is still open.
    #[tokio::test]
    async fn new_message_inside_a_fragmented_one_fails_with_1002() {
        let mut server = EchoServer::start().await;
        let open = client_fragment(false, TEXT, b"open");
        for (case, second) in [
            ("final text", client_frame(TEXT, b"new")),
            ("non-final text", client_fragment(false, TEXT, b"new")),
            ("binary", client_frame(BINARY, b"new")),
        ] {
            fails_with(&mut server, case, &concat(&[&open, &second]), 1002).await;
        }
    }

    /// RFC 6455 §5.4 allows a close frame between fragments: it is answered, and the unfinished
    /// message is never delivered.
    #[tokio::test]
    async fn close_between_fragments_is_answered() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        p.write(&concat(&[&client_fragment(false, TEXT, b"never finished"), &client_frame(CLOSE, &[0x03, 0xe8])]))
            .await;
        let f = p.expect_close(1000).await;
        assert_eq!(f.raw, [0x88, 0x02, 0x03, 0xe8]);
        p.expect_eof().await;
        drop(p);
        assert!(matches!(server.next_end().await, End::Closed(Some(Some(_)))));
    }
}

// =============================================================================================
/// RFC 6455 §5.5, §5.5.2-§5.5.3: control frames, ping and pong. Autobahn 2.x, 5.1-5.2.
mod s5_5_control {
    use super::*;

    /// Autobahn 2.1-2.4: pings with no payload, text, binary, and the largest payload (125 bytes)
    /// are answered with a pong carrying the same payload.
    #[tokio::test]
    async fn ping_is_answered_with_a_pong_of_the_same_payload() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        let all_bytes: Vec<u8> = (0..125u8).map(|i| i.wrapping_mul(73) ^ 0xa5).collect();
        for payload in [&b""[..], b"Hello, world!", &[0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff], &all_bytes] {
            p.write(&client_frame(PING, payload)).await;
            let pong = p.read_frame().await;
            assert_eq!(pong.raw, frame(true, 0, PONG, None, payload), "{pong:?}");
        }
        close_cleanly(&mut server, p).await;
    }

    /// Autobahn 2.6: a 125-byte ping delivered one byte at a time.
    #[tokio::test]
    async fn ping_delivered_byte_by_byte_is_answered() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        let payload = pattern(125);
        p.write_chopped(&client_frame(PING, &payload), 1).await;
        assert_eq!(p.read_frame().await.raw, frame(true, 0, PONG, None, &payload));
        close_cleanly(&mut server, p).await;
    }

    /// Autobahn 2.10-2.11: ten pings in one write, then ten in separate writes; ten pongs each
    /// time, in order.
    #[tokio::test]
    async fn many_pings_get_pongs_in_order() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        let pings: Vec<Vec<u8>> = (0..10).map(|i| client_frame(PING, format!("payload-{i}").as_bytes())).collect();
        p.write(&pings.concat()).await;
        for i in 0..10 {
            assert_eq!(p.read_frame().await.raw, frame(true, 0, PONG, None, format!("payload-{i}").as_bytes()));
        }
        for ping in &pings {
            p.write(ping).await;
        }
        for i in 0..10 {
            assert_eq!(p.read_frame().await.raw, frame(true, 0, PONG, None, format!("payload-{i}").as_bytes()));
        }
        close_cleanly(&mut server, p).await;
    }

    /// Autobahn 2.7-2.8: an unsolicited pong is not answered.
    #[tokio::test]
    async fn unsolicited_pong_is_ignored() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        p.write(&client_frame(PONG, b"")).await;
        p.write(&client_frame(PONG, b"unsolicited pong payload")).await;
        p.expect_silence(Duration::from_millis(100)).await;
        p.write(&client_frame(TEXT, b"still here")).await;
        p.expect_message(TEXT, b"still here").await;
        close_cleanly(&mut server, p).await;
    }

    /// Autobahn 2.5: a control frame carries at most 125 bytes.
    #[tokio::test]
    async fn ping_of_126_bytes_fails_with_1002() {
        let mut server = EchoServer::start().await;
        fails_with(&mut server, "ping of 126 bytes", &client_frame(PING, &[0xfe; 126]), 1002).await;
        fails_with(&mut server, "pong of 126 bytes", &client_frame(PONG, &[0xfe; 126]), 1002).await;
        // The length alone decides: the header of a 126-byte ping, without its payload.
        fails_with(&mut server, "header of a 126-byte ping", &header(true, 0, PING, Some(MASK_KEY), 126), 1002).await;
    }

    /// Autobahn 5.1-5.2: control frames MUST NOT be fragmented.
    #[tokio::test]
    async fn fragmented_control_frames_fail_with_1002() {
        let mut server = EchoServer::start().await;
        let ping = concat(&[&client_fragment(false, PING, b"frag"), &client_fragment(true, CONT, b"mented")]);
        fails_with(&mut server, "fragmented ping", &ping, 1002).await;
        let pong = concat(&[&client_fragment(false, PONG, b"frag"), &client_fragment(true, CONT, b"mented")]);
        fails_with(&mut server, "fragmented pong", &pong, 1002).await;
        fails_with(&mut server, "close without FIN", &client_fragment(false, CLOSE, &[0x03, 0xe8]), 1002).await;
    }
}

// =============================================================================================
/// RFC 6455 §5.5.1, §7: the close handshake and close codes. Autobahn 7.x.
mod s5_5_1_close {
    use super::*;

    /// Autobahn 7.1.1, 7.7.1: close 1000 is echoed with 1000, then the server closes TCP first
    /// (§7.1.1), and its `recv()` returns `None` with the peer's close frame available.
    #[tokio::test]
    async fn close_1000_is_echoed_then_the_server_closes_tcp() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        p.write(&client_frame(CLOSE, &close_payload(1000, b"bye"))).await;
        let f = p.read_frame().await;
        assert_eq!(f.raw, [0x88, 0x02, 0x03, 0xe8], "the echo carries the code: {f:?}");
        // The server closes the TCP connection without waiting for us.
        p.expect_eof().await;
        drop(p);
        match server.next_end().await {
            End::Closed(Some(Some(f))) => assert_eq!(f, CloseFrame::new(1000, "bye")),
            other => panic!("{other:?}"),
        }
        assert_eq!(server.panics(), 0);
    }

    /// Autobahn 7.3.1: an empty close frame is answered with an empty close frame.
    #[tokio::test]
    async fn empty_close_is_echoed_empty() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        p.write(&client_frame(CLOSE, b"")).await;
        let f = p.read_frame().await;
        assert_eq!(f.raw, [0x88, 0x00]);
        p.expect_eof().await;
        drop(p);
        assert!(matches!(server.next_end().await, End::Closed(Some(None))));
    }

    /// Autobahn 7.3.3-7.3.5: the largest close reason (123 bytes) is accepted; close is answered
    /// with its code.
    #[tokio::test]
    async fn close_with_the_longest_reason_is_echoed() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        p.write(&client_frame(CLOSE, &close_payload(1000, &ascii(123)))).await;
        p.expect_close(1000).await;
        p.expect_eof().await;
        drop(p);
        match server.next_end().await {
            End::Closed(Some(Some(f))) => assert_eq!(f.reason.as_bytes(), ascii(123)),
            other => panic!("{other:?}"),
        }
    }

    /// Autobahn 7.7.1-7.7.13: every code an endpoint may send is echoed.
    #[tokio::test]
    async fn valid_close_codes_are_echoed() {
        let mut server = EchoServer::start().await;
        for code in [1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
        {
            eprintln!("case: close {code}");
            let mut p = Peer::open(server.addr).await;
            p.write(&client_frame(CLOSE, &close_payload(code, b"reason"))).await;
            let f = p.read_frame().await;
            assert_eq!(f.raw, frame(true, 0, CLOSE, None, &code.to_be_bytes()));
            p.expect_eof().await;
            drop(p);
            match server.next_end().await {
                End::Closed(Some(Some(f))) => assert_eq!(f.code.0, code),
                other => panic!("{other:?}"),
            }
        }
    }

    /// Autobahn 7.9.1-7.9.9, 7.13.x: codes that may not be sent fail the connection with 1002.
    #[tokio::test]
    async fn invalid_close_codes_fail_with_1002() {
        let mut server = EchoServer::start().await;
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            fails_with(&mut server, &format!("close {code}"), &client_frame(CLOSE, &close_payload(code, b"")), 1002)
                .await;
        }
    }

    /// Autobahn 7.3.2: a one-byte close payload cannot hold a code.
    #[tokio::test]
    async fn one_byte_close_payload_fails_with_1002() {
        let mut server = EchoServer::start().await;
        fails_with(&mut server, "close payload [0x03]", &client_frame(CLOSE, &[0x03]), 1002).await;
    }

    /// Autobahn 7.3.6: a close frame longer than 125 bytes.
    #[tokio::test]
    async fn close_payload_over_125_bytes_fails_with_1002() {
        let mut server = EchoServer::start().await;
        fails_with(&mut server, "124-byte reason", &client_frame(CLOSE, &close_payload(1000, &ascii(124))), 1002).await;
    }

    /// Autobahn 7.5.1: a close reason that is not UTF-8 is 1007.
    #[tokio::test]
    async fn invalid_utf8_reason_fails_with_1007() {
        let mut server = EchoServer::start().await;
        let reason = [0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65];
        fails_with(&mut server, "reason with a surrogate", &client_frame(CLOSE, &close_payload(1000, &reason)), 1007)
            .await;
        fails_with(&mut server, "reason 0xff", &client_frame(CLOSE, &close_payload(1000, &[0xff])), 1007).await;
    }

    /// Autobahn 7.1.2-7.1.6: after the close frame, nothing the peer sends is processed — not a
    /// message, not a ping, not a second close.
    #[tokio::test]
    async fn frames_after_close_are_ignored() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        let after = concat(&[
            &client_frame(CLOSE, &close_payload(1000, b"")),
            &client_frame(TEXT, b"after close"),
            &client_frame(PING, b"after close"),
            &client_frame(CLOSE, &close_payload(1001, b"")),
            &[0xff, 0xff, 0xff],
        ]);
        p.write(&after).await;
        let f = p.read_frame().await;
        assert_eq!(f.raw, [0x88, 0x02, 0x03, 0xe8]);
        p.expect_eof().await;
        drop(p);
        match server.next_end().await {
            End::Closed(Some(Some(f))) => assert_eq!(f.code.0, 1000),
            other => panic!("{other:?}"),
        }
    }

    /// A client that half-closes right after its close frame (FIN) still gets the close answer.
    #[tokio::test]
    async fn close_then_half_close() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        p.write(&client_frame(CLOSE, &close_payload(1001, b"going away"))).await;
        tokio::io::AsyncWriteExt::shutdown(&mut p.stream).await.unwrap();
        let f = p.read_frame().await;
        assert_eq!(f.raw, [0x88, 0x02, 0x03, 0xe9]);
        p.expect_eof().await;
        match server.next_end().await {
            End::Closed(Some(Some(f))) => assert_eq!(f, CloseFrame::new(1001, "going away")),
            other => panic!("{other:?}"),
        }
    }

    /// Autobahn 7.1.1 from the other side: a message sent just before the close is echoed
    /// before the close answer.
    #[tokio::test]
    async fn message_then_close_in_one_write() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        p.write(&concat(&[&client_frame(TEXT, b"Hello World!"), &client_frame(CLOSE, &[0x03, 0xe8])])).await;
        p.expect_message(TEXT, b"Hello World!").await;
        p.expect_close(1000).await;
        p.expect_eof().await;
        drop(p);
        assert!(matches!(server.next_end().await, End::Closed(Some(Some(_)))));
    }
}

// =============================================================================================
/// RFC 6455 §8.1: text must be UTF-8, checked as it arrives. Autobahn 6.x.
mod s8_1_utf8 {
    use super::*;

    const KOSME: &str = "κόσμε";

    /// Autobahn 6.2.1, 6.5.x, 6.6.x: valid text of 1- to 4-byte characters is echoed.
    #[tokio::test]
    async fn valid_text_is_echoed() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        for text in [
            "Hello-µ@ßöäüàá-UTF-8!!",
            KOSME,
            "\u{0}\u{7f}\u{80}\u{7ff}\u{800}\u{d7ff}\u{e000}\u{fffd}\u{ffff}\u{10000}\u{10ffff}",
            "🎉 emoji",
        ] {
            p.write(&client_frame(TEXT, text.as_bytes())).await;
            p.expect_message(TEXT, text.as_bytes()).await;
        }
        close_cleanly(&mut server, p).await;
    }

    /// Autobahn 6.2.2-6.2.4, 6.4.x (valid parts): valid text split into two fragments at every
    /// byte — inside characters too — and into one-byte fragments.
    #[tokio::test]
    async fn valid_text_split_anywhere_is_echoed() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        let text = "κόσμε-€-🎉".as_bytes();
        for cut in 0..=text.len() {
            p.write(&concat(&[
                &client_fragment(false, TEXT, &text[..cut]),
                &client_fragment(true, CONT, &text[cut..]),
            ]))
            .await;
            p.expect_message(TEXT, text).await;
        }
        let mut bytewise = client_fragment(false, TEXT, &text[..1]);
        for (i, b) in text.iter().enumerate().skip(1) {
            bytewise.extend_from_slice(&client_fragment(i == text.len() - 1, CONT, &[*b]));
        }
        p.write_chopped(&bytewise, 3).await;
        p.expect_message(TEXT, text).await;
        close_cleanly(&mut server, p).await;
    }

    /// Autobahn 6.3.1, 6.6.x, 6.8-6.21: invalid sequences in a single-frame text message.
    #[tokio::test]
    async fn invalid_utf8_text_fails_with_1007() {
        let mut server = EchoServer::start().await;
        let cases: &[(&str, &[u8])] = &[
            ("0xff", &[0xff]),
            ("0xfe", &[0xfe]),
            ("lone continuation byte", &[0x80]),
            ("overlong '/' (2 bytes)", &[0xc0, 0xaf]),
            ("overlong '/' (3 bytes)", &[0xe0, 0x80, 0xaf]),
            ("overlong '/' (4 bytes)", &[0xf0, 0x80, 0x80, 0xaf]),
            ("5-byte sequence", &[0xf8, 0x88, 0x80, 0x80, 0x80]),
            ("surrogate U+D800", &[0xed, 0xa0, 0x80]),
            ("surrogate pair", &[0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80]),
            ("beyond U+10FFFF", &[0xf4, 0x90, 0x80, 0x80]),
            ("ends inside a character", &[0xce, 0xba, 0xe1]),
            ("start byte then ASCII", &[0xe1, b'a', b'b']),
        ];
        for (name, bad) in cases {
            let payload = concat(&[KOSME.as_bytes(), bad, b"edited"]);
            fails_with(&mut server, name, &client_frame(TEXT, &payload), 1007).await;
        }
        // Binary messages are not checked.
        let mut p = Peer::open(server.addr).await;
        p.write(&client_frame(BINARY, &[0xff, 0xfe, 0xed, 0xa0, 0x80])).await;
        p.expect_message(BINARY, &[0xff, 0xfe, 0xed, 0xa0, 0x80]).await;
        close_cleanly(&mut server, p).await;
    }

    /// Autobahn 6.4.1-6.4.2: a fragment whose bytes can never become valid text fails the
    /// connection at once, without the rest of the message.
    #[tokio::test]
    async fn invalid_sequence_split_across_fragments_fails_fast() {
        let mut server = EchoServer::start().await;
        for (name, first, second) in [
            ("F4 | 90 (beyond U+10FFFF)", &[0xf4][..], &[0x90, 0x80, 0x80][..]),
            ("ED | A0 (surrogate)", &[0xed], &[0xa0, 0x80]),
            ("E0 | 80 (overlong)", &[0xe0], &[0x80, 0x80]),
            ("CE | 41 (continuation missing)", &[0xce], &[0x41]),
        ] {
            eprintln!("case: {name}");
            let mut p = Peer::open(server.addr).await;
            // The first fragment ends with a valid prefix of a character: nothing is wrong yet.
            p.write(&client_fragment(false, TEXT, &concat(&[KOSME.as_bytes(), first]))).await;
            p.expect_silence(Duration::from_millis(30)).await;
            // The second makes it invalid; the final fragment is never sent.
            p.write(&client_fragment(false, CONT, &concat(&[second, b"edited"]))).await;
            p.expect_fail(1007).await;
            server.expect_failed(p, 1007).await;
        }
    }

    /// Autobahn 6.4.3-6.4.4: the same inside one frame — the invalid bytes arrive, the rest of the
    /// frame's announced payload never does, and the server fails the connection anyway.
    #[tokio::test]
    async fn invalid_bytes_fail_before_the_frame_is_complete() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        let mut payload = concat(&[KOSME.as_bytes(), &[0xf4, 0x90, 0x80, 0x80], b"edited"]);
        payload.resize(1000, b'x');
        let f = client_frame(TEXT, &payload);
        let hlen = f.len() - payload.len();
        p.write(&f[..hlen + KOSME.len() + 2]).await; // the header, κόσμε, F4 90
        p.expect_fail(1007).await;
        server.expect_failed(p, 1007).await;
    }

    /// A message whose final (empty) fragment leaves a character unfinished.
    #[tokio::test]
    async fn text_ending_inside_a_character_fails_with_1007() {
        let mut server = EchoServer::start().await;
        let kosme = KOSME.as_bytes();
        let unfinished =
            concat(&[&client_fragment(false, TEXT, &kosme[..kosme.len() - 1]), &client_fragment(true, CONT, b"")]);
        fails_with(&mut server, "last byte of ε missing", &unfinished, 1007).await;
    }
}

// =============================================================================================
/// Limits (RFC 6455 §10.4, close code 1009 of §7.4.1). Autobahn 9.x at a smaller scale.
mod limits {
    use super::*;

    async fn small_server() -> EchoServer {
        EchoServer::with_config(duplex::Config::default().max_message_size(1024)).await
    }

    #[tokio::test]
    async fn message_at_the_limit_is_echoed() {
        let mut server = small_server().await;
        let mut p = Peer::open(server.addr).await;
        p.write(&client_frame(BINARY, &pattern(1024))).await;
        p.expect_message(BINARY, &pattern(1024)).await;
        let parts = concat(&[&client_fragment(false, TEXT, &ascii(512)), &client_fragment(true, CONT, &ascii(512))]);
        p.write(&parts).await;
        p.expect_message(TEXT, &concat(&[&ascii(512), &ascii(512)])).await;
        close_cleanly(&mut server, p).await;
    }

    /// A message over `max_message_size` is closed with 1009 — as soon as its header announces
    /// the size, before its payload — and other connections of the same server are unaffected.
    #[tokio::test]
    async fn message_over_the_limit_fails_with_1009_and_others_keep_working() {
        let mut server = small_server().await;
        let mut bystander = Peer::open(server.addr).await;
        bystander.write(&client_frame(TEXT, b"before")).await;
        bystander.expect_message(TEXT, b"before").await;

        fails_with(&mut server, "2000-byte message", &client_frame(BINARY, &pattern(2000)), 1009).await;
        fails_with(&mut server, "1025-byte text", &client_frame(TEXT, &ascii(1025)), 1009).await;
        fails_with(&mut server, "header alone", &header(true, 0, BINARY, Some(MASK_KEY), 2000), 1009).await;
        let fragmented = concat(&[
            &client_fragment(false, BINARY, &pattern(600)),
            &header(true, 0, CONT, Some(MASK_KEY), 600), // its payload is never sent
        ]);
        fails_with(&mut server, "600 + 600 in fragments", &fragmented, 1009).await;

        // The connection that was open all along, and a new one, still work.
        bystander.write(&client_frame(TEXT, b"after")).await;
        bystander.expect_message(TEXT, b"after").await;
        let mut newcomer = Peer::open(server.addr).await;
        newcomer.write(&client_frame(BINARY, &pattern(1000))).await;
        newcomer.expect_message(BINARY, &pattern(1000)).await;
        close_cleanly(&mut server, newcomer).await;
        close_cleanly(&mut server, bystander).await;
    }

    /// `max_frame_size` bounds each frame; a message may still be larger in several frames.
    #[tokio::test]
    async fn frame_over_max_frame_size_fails_with_1009() {
        let config = duplex::Config::default().max_frame_size(100).max_message_size(1024);
        let mut server = EchoServer::with_config(config).await;
        let mut p = Peer::open(server.addr).await;
        let parts = concat(&[
            &client_fragment(false, BINARY, &pattern(100)),
            &client_fragment(false, CONT, &pattern(100)),
            &client_fragment(true, CONT, &pattern(100)),
        ]);
        p.write(&parts).await;
        p.expect_message(BINARY, &[pattern(100), pattern(100), pattern(100)].concat()).await;
        close_cleanly(&mut server, p).await;
        fails_with(&mut server, "101-byte frame", &client_frame(BINARY, &pattern(101)), 1009).await;
    }

    /// Autobahn 9.1.x/9.2.x scaled down: a 1 MiB message in one frame and in 64 KiB fragments.
    #[tokio::test]
    async fn large_messages_echo_with_default_limits() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        let big = pattern(1 << 20);
        p.write(&client_frame(BINARY, &big)).await;
        p.expect_message(BINARY, &big).await;
        let text = ascii(1 << 20);
        let chunks: Vec<&[u8]> = text.chunks(64 << 10).collect();
        let mut parts = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            parts.extend_from_slice(&client_fragment(i + 1 == chunks.len(), if i == 0 { TEXT } else { CONT }, c));
        }
        p.write(&parts).await;
        p.expect_message(TEXT, &text).await;
        close_cleanly(&mut server, p).await;
    }
}

// =============================================================================================
/// RFC 6455 §7.1.7 does not require dropping data received before a violation: what came first
/// is answered first. Autobahn (strict) 3.2, 4.1.3-4.1.5, 4.2.3-4.2.5, 5.15.
mod ordering {
    use super::*;

    /// Autobahn 3.2: a valid text frame, then one with RSV1, in one TCP write.
    #[tokio::test]
    async fn echo_of_a_valid_message_precedes_the_close_for_the_next_frame() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        p.write(&concat(&[&client_frame(TEXT, b"Hello, world!"), &frame(true, 4, TEXT, Some(MASK_KEY), b"bad")])).await;
        p.expect_message(TEXT, b"Hello, world!").await;
        p.expect_fail(1002).await;
        server.expect_failed(p, 1002).await;
    }

    /// Autobahn 4.1.3/4.2.3: text, reserved opcode, ping — the text is echoed, then the close;
    /// the ping after the violation is not answered.
    #[tokio::test]
    async fn messages_and_pings_before_a_violation_are_answered_in_order() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        p.write(&concat(&[
            &client_frame(TEXT, b"one"),
            &client_frame(PING, b"ping"),
            &client_frame(BINARY, b"two"),
            &client_frame(TEXT, b"three"),
            &client_frame(0x5, b"reserved"),
            &client_frame(PING, b"after"),
        ]))
        .await;
        p.expect_message(TEXT, b"one").await;
        assert_eq!(p.read_frame().await.raw, frame(true, 0, PONG, None, b"ping"));
        p.expect_message(BINARY, b"two").await;
        p.expect_message(TEXT, b"three").await;
        p.expect_fail(1002).await;
        server.expect_failed(p, 1002).await;
    }

    /// The same when the valid message was fragmented and the violation is in the UTF-8 of the
    /// next one.
    #[tokio::test]
    async fn fragmented_message_then_invalid_text() {
        let mut server = EchoServer::start().await;
        let mut p = Peer::open(server.addr).await;
        p.write(&concat(&[
            &client_fragment(false, TEXT, b"frag"),
            &client_fragment(true, CONT, b"ment"),
            &client_frame(TEXT, &[0xff]),
        ]))
        .await;
        p.expect_message(TEXT, b"fragment").await;
        p.expect_fail(1007).await;
        server.expect_failed(p, 1007).await;
    }
}
