//! The extended CONNECT handshake (RFC 8441) on arbitrary requests and answers: the server's
//! `ConnectRequest::validate` / `accept` / `connect_refusal`, the client's
//! `check_connect_response`, and a round trip between our own client and server under fuzzed
//! permessage-deflate settings.
//!
//! Input: byte 0 the client's `DeflateConfig`, byte 1 a server's (see
//! `duplex_fuzz::deflate_config`), byte 2 flags (bit 0: `wss`; the rest pick the subprotocol the
//! server chooses), then text lines (`\n`, invalid UTF-8 kept in header values):
//!
//! ```text
//! :method
//! :protocol        a line "-" means the pseudo-header is absent
//! :scheme
//! :authority
//! :path
//! name: value      request headers, up to a line "=="
//! ==
//! status           the client's side: the answer's status (digits) ...
//! name: value      ... and headers
//! ```
//!
//! Properties: `accept` succeeds exactly when `validate` does (or fails only on the unoffered
//! subprotocol the fuzzer picked); an accepted request is a WebSocket request, is answered 200
//! with lower-case header names and no CR/LF/NUL in any header, with the chosen subprotocol, and
//! with a permessage-deflate answer that a client demanding nothing accepts with the same parameters; a
//! refusal has the error's status, a body, and `sec-websocket-version: 13` exactly when it is 426.
//! On the client, an accepted answer had a 2xx status, names only an offered subprotocol, and its
//! deflate parameters are in range; any other status is `Refused` with that status. Our client's
//! own request is always accepted by our server and the server's answer by the client, with the
//! same deflate parameters.
#![no_main]

use duplex_fuzz::{check_params, deflate_config, undemanding_client};
use duplex_proto::handshake::{connect_refusal, ClientHandshake, ConnectRequest, HandshakeError, HeaderList};
use duplex_proto::DeflateConfig;
use libfuzzer_sys::fuzz_target;

const OFFERED: [&str; 2] = ["chat", "superchat"];

fn pseudo(line: Option<&[u8]>) -> Option<String> {
    match line {
        None | Some(b"-") => None,
        Some(l) => Some(String::from_utf8_lossy(l).into_owned()),
    }
}

fn header_list<'a>(lines: impl Iterator<Item = &'a [u8]>) -> HeaderList {
    let mut headers = HeaderList::default();
    for line in lines {
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_owned();
            headers.push(name, line[colon + 1..].to_vec());
        }
    }
    headers
}

fn clean(s: &str) -> bool {
    !s.contains(['\r', '\n', '\0'])
}

fn server_side(req: &ConnectRequest, server: &DeflateConfig, pick: u8) {
    let _ = (req.origin(), req.uri(), req.is_websocket());
    let offered: Vec<&str> = req.protocols();
    assert!(offered.iter().all(|p| !p.is_empty() && p.trim() == *p));
    // Mostly one of the offered subprotocols; sometimes none, sometimes one never offered.
    let chosen = match pick % 4 {
        0 => None,
        1 => Some("never-offered"),
        n => offered.get(usize::from(n) % offered.len().max(1)).copied(),
    };
    let extra = [("X-Fuzz".to_owned(), "a\r\nset-cookie: b\0".to_owned())];
    match (req.validate(), req.accept(chosen, server, &extra)) {
        (Ok(()), Ok(accept)) => {
            assert!(req.is_websocket() && req.method == "CONNECT");
            assert_eq!(accept.status, 200);
            assert_eq!(accept.protocol.as_deref(), chosen);
            for (n, v) in &accept.headers {
                assert!(clean(n) && clean(v), "header injection in {n:?}: {v:?}");
                assert_eq!(*n, n.to_ascii_lowercase());
            }
            let answered = |name: &str| accept.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
            assert_eq!(answered("sec-websocket-protocol").is_some(), chosen.is_some());
            match (accept.deflate, answered("sec-websocket-extensions")) {
                (Some(params), Some(value)) => {
                    check_params(&params);
                    assert_eq!(undemanding_client().accept_response(value), Ok(Some(params)), "{value:?}");
                }
                (None, None) => {}
                other => panic!("deflate parameters and answer disagree: {other:?}"),
            }
        }
        (Ok(()), Err(HandshakeError::UnofferedProtocol(p))) => {
            assert!(!offered.contains(&p.as_str()));
            assert_eq!(connect_refusal(&HandshakeError::UnofferedProtocol(p)).status, 500);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "validate and accept disagree");
            let refusal = connect_refusal(&a);
            assert_eq!(refusal.status, a.status());
            assert!(!refusal.body.is_empty());
            assert_eq!(refusal.headers.get("sec-websocket-version").is_some(), refusal.status == 426);
            assert!(refusal.headers.get("upgrade").is_none() && refusal.headers.get("connection").is_none());
        }
        (v, a) => panic!("validate {v:?} but accept {a:?}"),
    }
}

fn client_side(hs: &ClientHandshake, lines: &mut dyn Iterator<Item = &[u8]>) {
    let status = lines.next().and_then(|l| std::str::from_utf8(l).ok()).and_then(|s| s.trim().parse::<u16>().ok());
    let Some(status) = status else { return };
    let headers = header_list(lines);
    match hs.check_connect_response(status, &headers) {
        Ok(resp) => {
            assert!((200..300).contains(&status));
            if let Some(p) = &resp.protocol {
                assert!(OFFERED.contains(&p.as_str()), "unoffered subprotocol {p:?} accepted");
            }
            if let Some(p) = &resp.deflate {
                check_params(p);
                assert!(resp.extensions.is_some());
            }
        }
        Err(HandshakeError::Refused(r)) => {
            assert!(!(200..300).contains(&status));
            assert_eq!(r.status, status);
        }
        Err(_) => assert!((200..300).contains(&status)),
    }
}

fuzz_target!(|data: &[u8]| {
    let [c, s, flags, text @ ..] = data else { return };
    let client = deflate_config(*c);
    let server = deflate_config(*s);

    // Our own two ends always agree.
    let mut hs = ClientHandshake::new("example.com", "/chat?room=1").deflate(&client);
    for p in OFFERED {
        hs = hs.protocol(p);
    }
    let ours = hs.connect_request(if flags & 1 != 0 { "wss" } else { "ws" });
    assert_eq!(ours.validate(), Ok(()));
    let chosen = OFFERED[usize::from(flags >> 1) % 2];
    let accept = ours.accept(Some(chosen), &server, &[]).expect("our server refused our client");
    let mut answer = HeaderList::default();
    for (n, v) in &accept.headers {
        answer.push(n.clone(), v.as_bytes());
    }
    let resp = hs.check_connect_response(accept.status, &answer).expect("our client refused our server");
    assert_eq!(resp.protocol.as_deref(), Some(chosen));
    assert_eq!(resp.deflate, accept.deflate);

    // Arbitrary requests and answers.
    let mut lines = text.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let method = pseudo(lines.next()).unwrap_or_default();
    let protocol = pseudo(lines.next());
    let scheme = pseudo(lines.next());
    let authority = pseudo(lines.next());
    let path = pseudo(lines.next());
    let headers = header_list(lines.by_ref().take_while(|l| *l != b"=="));
    let req = ConnectRequest { method, protocol, scheme, authority, path, headers };
    server_side(&req, &server, flags >> 1);
    client_side(&hs, &mut lines);
});
