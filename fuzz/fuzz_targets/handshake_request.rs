//! `Request::parse` on arbitrary bytes (the server's side of the opening handshake), with the
//! default limits and with tight ones. For a parsed request: the head length is within the input
//! and the limit, a prefix one byte shorter is incomplete, `validate()` and every accessor return
//! without panicking, a valid request's key is 16 bytes of base64 and its 101 answer is one
//! well-formed HTTP response carrying the right accept key, and a negotiated permessage-deflate
//! answer is accepted, with the same parameters, by a client that demands nothing.
#![no_main]

use base64::Engine;
use duplex_proto::handshake::{accept_key, Limits, Request};
use duplex_proto::DeflateConfig;
use libfuzzer_sys::fuzz_target;

fn check(data: &[u8], limits: &Limits) {
    let Ok(Some((req, n))) = Request::parse(data, limits) else { return };
    assert!(n <= data.len() && n <= limits.max_head_bytes);
    assert_eq!(Request::parse(&data[..n - 1], limits), Ok(None), "a shorter prefix is not incomplete");
    let _ = (req.path(), req.query(), req.origin(), req.is_websocket_upgrade());
    let protocols = req.protocols();
    assert!(protocols.iter().all(|p| !p.is_empty() && p.trim() == *p));
    // A server that accepts deflate with the defaults, and one that asks for the least memory.
    let servers = [DeflateConfig::default(), duplex_fuzz::deflate_config(0b0000_0011)];
    let mut answer = None;
    for server in &servers {
        if let Some((params, value)) = req.negotiate_deflate(server) {
            duplex_fuzz::check_params(&params);
            assert_eq!(
                duplex_fuzz::undemanding_client().accept_response(&value),
                Ok(Some(params)),
                "a client demanding nothing refuses or misreads the answer {value:?}"
            );
            answer = Some(value);
        }
    }
    let Ok(key) = req.validate() else { return };
    let raw = base64::engine::general_purpose::STANDARD.decode(key).expect("validated key is base64");
    assert_eq!(raw.len(), 16);
    let extra = [("X-Fuzz".to_string(), "a\r\nb".to_string())];
    let resp = req.accept_response(key, protocols.first().copied(), answer.as_deref(), &extra);
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    assert_eq!(parsed.parse(&resp), Ok(httparse::Status::Complete(resp.len())), "bad 101: {resp:?}");
    assert_eq!(parsed.code, Some(101));
    let expected = 3 + usize::from(!protocols.is_empty()) + usize::from(answer.is_some()) + extra.len();
    assert_eq!(parsed.headers.len(), expected, "header injection in the 101 answer");
    let accept = parsed.headers.iter().find(|h| h.name == "Sec-WebSocket-Accept").unwrap();
    assert_eq!(accept.value, accept_key(key).as_bytes());
}

fuzz_target!(|data: &[u8]| {
    check(data, &Limits::default());
    let mut tight = Limits::default();
    tight.max_head_bytes = 200;
    tight.max_headers = 4;
    check(data, &tight);
});
