//! `ClientHandshake::parse_response` on arbitrary bytes (the client's side of the opening
//! handshake), and permessage-deflate negotiation between fuzzed client and server settings.
//!
//! Input: byte 0 the client's `DeflateConfig`, byte 1 a server's (see
//! `duplex_fuzz::deflate_config`), then the server's answer. The handshake's key is random, so
//! every `@@` in the answer is replaced with the right `Sec-WebSocket-Accept` value: the fuzzer
//! can then reach the checks past it.
//!
//! Properties: the server's answer to the client's own offer is always accepted, with the same
//! parameters; a parsed response's head is within the input, a prefix one byte shorter is
//! incomplete, the subprotocol is one offered, the deflate parameters are in range, and the bytes
//! after the head, fed to a client `Connection` with those parameters, pass the connection checks.
#![no_main]

use duplex_fuzz::{check_connection, check_params, deflate_config, Setup};
use duplex_proto::handshake::{accept_key, ClientHandshake};
use duplex_proto::Role;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [c, s, answer @ ..] = data else { return };
    let client = deflate_config(*c);
    let server = deflate_config(*s);
    let (params, value) = server.negotiate([client.offer().as_str()]).expect("the server declined a valid offer");
    check_params(&params);
    assert_eq!(client.accept_response(&value), Ok(Some(params)), "offer {:?}, answer {value:?}", client.offer());

    let hs = ClientHandshake::new("example.com", "/chat").protocol("chat").protocol("superchat").deflate(&client);
    let accept = accept_key(hs.key());
    let mut buf = Vec::with_capacity(answer.len() + 64);
    let mut rest = answer;
    while let Some(i) = rest.windows(2).position(|w| w == b"@@") {
        buf.extend_from_slice(&rest[..i]);
        buf.extend_from_slice(accept.as_bytes());
        rest = &rest[i + 2..];
    }
    buf.extend_from_slice(rest);

    let Ok(Some((resp, n))) = hs.parse_response(&buf) else { return };
    assert!(n <= buf.len());
    assert_eq!(hs.parse_response(&buf[..n - 1]), Ok(None), "a shorter prefix is not incomplete");
    if let Some(p) = &resp.protocol {
        assert!(p == "chat" || p == "superchat", "unoffered subprotocol {p:?} accepted");
    }
    if let Some(p) = &resp.deflate {
        check_params(p);
        assert!(resp.extensions.is_some());
    }
    let setup = Setup {
        role: Role::Client,
        streaming: false,
        auto_pong: true,
        max_message_size: 1 << 16,
        max_frame_size: 1 << 16,
        deflate: resp.deflate,
        echo: true,
        close_first: false,
        chunk: 7,
    };
    check_connection(setup, &buf[n..]);
});
