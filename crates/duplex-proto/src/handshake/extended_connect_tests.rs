//! Tests of the extended CONNECT handshake, by section of RFC 8441.

use proptest::prelude::*;

use super::*;

/// RFC 8441 §5.1's example request.
fn rfc_example() -> ConnectRequest {
    let mut headers = HeaderList::default();
    headers.push("sec-websocket-protocol", "chat, superchat");
    headers.push("sec-websocket-version", "13");
    headers.push("origin", "http://www.example.com");
    ConnectRequest {
        method: "CONNECT".into(),
        protocol: Some("websocket".into()),
        scheme: Some("https".into()),
        authority: Some("server.example.com".into()),
        path: Some("/chat".into()),
        headers,
    }
}

fn with_header(mut req: ConnectRequest, name: &str, value: &str) -> ConnectRequest {
    req.headers.push(name, value);
    req
}

fn headers(list: &[(&str, &str)]) -> HeaderList {
    let mut h = HeaderList::default();
    for (n, v) in list {
        h.push(*n, v.as_bytes());
    }
    h
}

fn as_list(headers: &[(String, String)]) -> HeaderList {
    let mut h = HeaderList::default();
    for (n, v) in headers {
        h.push(n.clone(), v.as_bytes());
    }
    h
}

// §4: the extended CONNECT method — :protocol, with :scheme and :path, on a CONNECT.

#[test]
fn s4_a_connect_without_protocol_is_a_tunnel_not_a_websocket() {
    let req = ConnectRequest { protocol: None, ..rfc_example() };
    assert!(!req.is_websocket());
    assert_eq!(req.validate(), Err(HandshakeError::NotWebSocketProtocol(None)));
    assert_eq!(connect_refusal(&req.validate().unwrap_err()).status, 400);
}

#[test]
fn s4_only_connect_carries_protocol() {
    let req = ConnectRequest { method: "GET".into(), ..rfc_example() };
    assert!(!req.is_websocket());
    assert_eq!(req.validate(), Err(HandshakeError::MethodNotConnect("GET".into())));
    let refusal = connect_refusal(&req.validate().unwrap_err());
    assert_eq!(refusal.status, 405);
    assert!(refusal.body_text().contains("CONNECT"), "{}", refusal.body_text());
    // Methods are case-sensitive (RFC 9110 §9.1).
    let lower = ConnectRequest { method: "connect".into(), ..rfc_example() };
    assert_eq!(lower.validate(), Err(HandshakeError::MethodNotConnect("connect".into())));
}

#[test]
fn s4_scheme_path_and_authority_are_required() {
    let missing = |req: ConnectRequest, name| {
        assert_eq!(req.validate(), Err(HandshakeError::BadPseudoHeader { name, value: None }), "{name}");
    };
    missing(ConnectRequest { scheme: None, ..rfc_example() }, ":scheme");
    missing(ConnectRequest { path: None, ..rfc_example() }, ":path");
    missing(ConnectRequest { authority: None, ..rfc_example() }, ":authority");
    let bad = |req: ConnectRequest, name, value: &str| {
        let e = req.validate().unwrap_err();
        assert_eq!(e, HandshakeError::BadPseudoHeader { name, value: Some(value.into()) });
        assert_eq!(connect_refusal(&e).status, 400);
    };
    bad(ConnectRequest { path: Some(String::new()), ..rfc_example() }, ":path", "");
    bad(ConnectRequest { path: Some("*".into()), ..rfc_example() }, ":path", "*");
    bad(ConnectRequest { authority: Some(String::new()), ..rfc_example() }, ":authority", "");
    bad(ConnectRequest { authority: Some("user@h".into()), ..rfc_example() }, ":authority", "user@h");
}

// §5: bootstrapping WebSockets with extended CONNECT.

#[test]
fn s5_protocol_must_be_websocket() {
    let req = ConnectRequest { protocol: Some("connect-udp".into()), ..rfc_example() };
    assert!(!req.is_websocket());
    assert_eq!(req.validate(), Err(HandshakeError::NotWebSocketProtocol(Some("connect-udp".into()))));
    // An upgrade token is compared without regard to case (RFC 9110 §7.8).
    let upper = ConnectRequest { protocol: Some("WebSocket".into()), ..rfc_example() };
    assert!(upper.is_websocket());
    assert_eq!(upper.validate(), Ok(()));
}

#[test]
fn s5_scheme_is_https_for_wss_and_http_for_ws() {
    let with = |s: &str| ConnectRequest { scheme: Some(s.into()), ..rfc_example() }.validate();
    assert_eq!(with("https"), Ok(()));
    assert_eq!(with("http"), Ok(()));
    assert_eq!(with("wss"), Err(HandshakeError::BadPseudoHeader { name: ":scheme", value: Some("wss".into()) }));
    let hs = ClientHandshake::new("example.com", "/chat?room=1");
    assert_eq!(hs.connect_request("wss").scheme.as_deref(), Some("https"));
    assert_eq!(hs.connect_request("https").scheme.as_deref(), Some("https"));
    assert_eq!(hs.connect_request("ws").scheme.as_deref(), Some("http"));
    assert_eq!(hs.connect_request("http").scheme.as_deref(), Some("http"));
}

#[test]
fn s5_path_and_authority_are_the_targets() {
    let hs = ClientHandshake::new("example.com:8443", "/chat?room=1");
    let req = hs.connect_request("wss");
    assert_eq!(req.authority.as_deref(), Some("example.com:8443"));
    assert_eq!(req.path.as_deref(), Some("/chat?room=1"));
    assert_eq!(req.uri(), "https://example.com:8443/chat?room=1");
    assert_eq!(ClientHandshake::new("h", "").connect_request("ws").path.as_deref(), Some("/"));
}

#[test]
fn s5_version_13_is_required_and_a_refusal_names_it() {
    let mut req = rfc_example();
    req.headers = headers(&[("sec-websocket-protocol", "chat")]);
    assert_eq!(req.validate(), Err(HandshakeError::UnsupportedVersion(None)));
    let req =
        with_header(ConnectRequest { headers: HeaderList::default(), ..rfc_example() }, "sec-websocket-version", "8");
    let e = req.validate().unwrap_err();
    assert_eq!(e, HandshakeError::UnsupportedVersion(Some("8".into())));
    let refusal = connect_refusal(&e);
    assert_eq!(refusal.status, 426);
    assert_eq!(refusal.headers.get("sec-websocket-version"), Some("13"));
    // No HTTP/1.1 connection headers in an HTTP/2 answer (RFC 9113 §8.2.2).
    assert_eq!(refusal.headers.get("upgrade"), None);
    assert_eq!(refusal.headers.get("connection"), None);
    assert!(refusal.body_text().contains("only 13"), "{}", refusal.body_text());
}

#[test]
fn s5_no_key_is_needed_and_one_sent_is_ignored() {
    assert_eq!(rfc_example().validate(), Ok(()));
    let keyed = with_header(rfc_example(), "sec-websocket-key", "not even base64");
    assert_eq!(keyed.validate(), Ok(()));
    let accept = keyed.accept(None, &DeflateConfig::default(), &[]).unwrap();
    assert!(accept.headers.iter().all(|(n, _)| n != "sec-websocket-accept"));
    // And a client does not send one, nor the HTTP/1.1-only headers it was given.
    let hs = ClientHandshake::new("h", "/")
        .header("Host", "other")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Key", "x")
        .header("Authorization", "Bearer t");
    let req = hs.connect_request("ws");
    let names: Vec<&str> = req.headers.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["sec-websocket-version", "authorization"]);
}

#[test]
fn s5_the_server_answers_200_with_the_chosen_subprotocol() {
    let req = rfc_example();
    assert_eq!(req.origin(), Some("http://www.example.com"));
    assert_eq!(req.protocols(), ["chat", "superchat"]);
    let extra = [("X-Served-By".to_owned(), "duplex\r\nset-cookie: a".to_owned())];
    let accept = req.accept(Some("superchat"), &DeflateConfig::default(), &extra).unwrap();
    assert_eq!(accept.status, 200);
    assert_eq!(accept.protocol.as_deref(), Some("superchat"));
    assert_eq!(accept.deflate, None);
    assert_eq!(
        accept.headers,
        [
            ("sec-websocket-protocol".to_owned(), "superchat".to_owned()),
            ("x-served-by".to_owned(), "duplex  set-cookie: a".to_owned()),
        ]
    );
    // No subprotocol: none named.
    assert_eq!(req.accept(None, &DeflateConfig::default(), &[]).unwrap().headers, []);
}

#[test]
fn s5_a_subprotocol_not_offered_is_the_servers_mistake() {
    let e = rfc_example().accept(Some("v2"), &DeflateConfig::default(), &[]).unwrap_err();
    assert_eq!(e, HandshakeError::UnofferedProtocol("v2".into()));
    assert_eq!(connect_refusal(&e).status, 500);
    // Validation comes first: a bad request is the client's, whatever the choice.
    let bad = ConnectRequest { method: "POST".into(), ..rfc_example() };
    assert!(matches!(bad.accept(Some("v2"), &DeflateConfig::default(), &[]), Err(HandshakeError::MethodNotConnect(_))));
}

#[test]
#[cfg(feature = "deflate")]
fn s5_permessage_deflate_is_negotiated_as_over_http1() {
    let offer = "permessage-deflate; client_max_window_bits; server_max_window_bits=10";
    let req = with_header(rfc_example(), "sec-websocket-extensions", offer);
    let config = DeflateConfig::default();
    let accept = req.accept(None, &config, &[]).unwrap();
    // The same answer the HTTP/1.1 server gives for the same offer.
    let (params, answer) = config.negotiate([offer]).unwrap();
    assert_eq!(accept.deflate, Some(params));
    assert_eq!(accept.headers, [("sec-websocket-extensions".to_owned(), answer)]);
    // Turned off: nothing negotiated, nothing answered.
    let off = req.accept(None, &config.clone().enabled(false), &[]).unwrap();
    assert_eq!((off.deflate, off.headers.len()), (None, 0));
}

#[test]
#[cfg(feature = "deflate")]
fn s5_client_offers_and_checks_like_http1() {
    let hs = ClientHandshake::new("h", "/").protocol("chat").protocol("superchat").deflate(&DeflateConfig::default());
    let req = hs.connect_request("wss");
    assert_eq!(req.method, "CONNECT");
    assert_eq!(req.protocol.as_deref(), Some("websocket"));
    assert_eq!(req.headers.get("sec-websocket-version"), Some("13"));
    assert_eq!(req.headers.get("sec-websocket-protocol"), Some("chat, superchat"));
    assert_eq!(
        req.headers.get("sec-websocket-extensions"),
        Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=11")
    );
    let answer = headers(&[
        ("sec-websocket-protocol", "superchat"),
        ("sec-websocket-extensions", "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"),
    ]);
    let resp = hs.check_connect_response(200, &answer).unwrap();
    assert_eq!(resp.protocol.as_deref(), Some("superchat"));
    assert_eq!(resp.deflate.unwrap().client_max_window_bits, 10);
    assert!(matches!(
        hs.check_connect_response(200, &headers(&[("sec-websocket-extensions", "permessage-deflate; x=1")])),
        Err(HandshakeError::BadExtensionResponse(_))
    ));
}

#[test]
fn s5_client_refuses_what_it_did_not_offer() {
    let hs = ClientHandshake::new("h", "/").protocol("chat");
    assert_eq!(
        hs.check_connect_response(200, &headers(&[("sec-websocket-protocol", "superchat")])),
        Err(HandshakeError::UnofferedProtocol("superchat".into()))
    );
    assert_eq!(
        hs.check_connect_response(200, &headers(&[("sec-websocket-extensions", "permessage-deflate")])),
        Err(HandshakeError::UnofferedExtension("permessage-deflate".into()))
    );
    let none = hs.check_connect_response(200, &HeaderList::default()).unwrap();
    assert_eq!((none.protocol, none.extensions, none.deflate), (None, None, None));
}

#[test]
fn s5_any_other_status_is_a_refusal() {
    let hs = ClientHandshake::new("h", "/");
    let answer = headers(&[("retry-after", "2")]);
    match hs.check_connect_response(503, &answer) {
        Err(HandshakeError::Refused(r)) => {
            assert_eq!((r.status, r.reason.as_str()), (503, "Service Unavailable"));
            assert_eq!(r.headers.get("retry-after"), Some("2"));
        }
        other => panic!("{other:?}"),
    }
    // 101 is not an HTTP/2 answer at all (RFC 9113 §8.6).
    assert!(matches!(hs.check_connect_response(101, &HeaderList::default()), Err(HandshakeError::Refused(_))));
    // Any 2xx is a CONNECT's success (RFC 9110 §9.3.6).
    assert!(hs.check_connect_response(204, &HeaderList::default()).is_ok());
}

// §5.1: the example exchange, end to end through both sides.

#[test]
fn s5_1_example_round_trip() {
    let hs = ClientHandshake::new("server.example.com", "/chat")
        .protocol("chat")
        .protocol("superchat")
        .header("Origin", "http://www.example.com");
    let req = hs.connect_request("wss");
    assert_eq!(req.scheme.as_deref(), Some("https"));
    assert_eq!(req.origin(), Some("http://www.example.com"));
    let accept = req.accept(Some("chat"), &DeflateConfig::default(), &[]).unwrap();
    let resp = hs.check_connect_response(accept.status, &as_list(&accept.headers)).unwrap();
    assert_eq!(resp.protocol.as_deref(), Some("chat"));
}

// The HTTP/2 layer hands headers over lower-cased, a test or HTTP/3 layer may not: case never matters.
#[test]
fn header_names_are_matched_without_case() {
    let mut req = rfc_example();
    req.headers = headers(&[("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "chat")]);
    assert_eq!(req.validate(), Ok(()));
    assert_eq!(req.protocols(), ["chat"]);
}

fn deflate_config() -> impl Strategy<Value = DeflateConfig> {
    (any::<bool>(), any::<bool>(), any::<bool>(), 8u8..=15, 8u8..=15).prop_map(|(on, snct, cnct, sb, cb)| {
        DeflateConfig::default()
            .enabled(on)
            .server_no_context_takeover(snct)
            .client_no_context_takeover(cnct)
            .server_max_window_bits(sb)
            .client_max_window_bits(cb)
    })
}

proptest! {
    /// Whatever both ends are configured with, a request our client builds is accepted by our
    /// server, the answer is accepted by the client, and both agree on the subprotocol and the
    /// permessage-deflate parameters.
    #[test]
    fn our_client_and_server_always_agree(
        client in deflate_config(),
        server in deflate_config(),
        protocols in proptest::collection::vec("[a-z][a-z0-9.]{0,8}", 0..4),
        pick in any::<prop::sample::Index>(),
        secure in any::<bool>(),
        path in "/[a-z0-9/?=&]{0,20}",
    ) {
        let mut hs = ClientHandshake::new("example.test:8443", path.clone()).deflate(&client);
        for p in &protocols {
            hs = hs.protocol(p.clone());
        }
        let req = hs.connect_request(if secure { "wss" } else { "ws" });
        prop_assert_eq!(req.path.as_deref(), Some(path.as_str()));
        let chosen = (!protocols.is_empty()).then(|| protocols[pick.index(protocols.len())].as_str());
        let accept = req.accept(chosen, &server, &[]).unwrap();
        prop_assert_eq!(accept.status, 200);
        prop_assert!(accept.headers.iter().all(|(n, _)| *n == n.to_ascii_lowercase()));
        let resp = hs.check_connect_response(accept.status, &as_list(&accept.headers)).unwrap();
        prop_assert_eq!(resp.protocol.as_deref(), chosen);
        prop_assert_eq!(resp.deflate, accept.deflate);
        prop_assert_eq!(accept.deflate.is_some(), client.enabled && server.enabled && crate::deflate::AVAILABLE);
    }

    /// A request built from arbitrary parts never panics, `accept` succeeds exactly when
    /// `validate` does, and every answer is an HTTP/2-clean header list.
    #[test]
    fn arbitrary_requests_are_judged_consistently(
        method in prop::sample::select(vec!["CONNECT", "GET", "connect", ""]),
        protocol in prop::option::of(prop::sample::select(vec!["websocket", "WebSocket", "h3", ""])),
        scheme in prop::option::of(prop::sample::select(vec!["https", "http", "ws", ""])),
        authority in prop::option::of("[a-z@:.0-9]{0,6}"),
        path in prop::option::of("[/a-z*?]{0,6}"),
        lines in proptest::collection::vec((
            prop::sample::select(vec!["sec-websocket-version", "sec-websocket-protocol",
                "sec-websocket-extensions", "origin", "x-other"]),
            "[ -~\r\n]{0,30}",
        ), 0..6),
    ) {
        let mut headers = HeaderList::default();
        for (n, v) in &lines {
            headers.push(*n, v.as_bytes());
        }
        let req = ConnectRequest {
            method: method.into(),
            protocol: protocol.map(Into::into),
            scheme: scheme.map(Into::into),
            authority,
            path,
            headers,
        };
        let offered: Vec<String> = req.protocols().into_iter().map(str::to_owned).collect();
        let chosen = offered.first().map(String::as_str);
        let extra = [("X-A".to_owned(), "1\r\n2".to_owned())];
        match (req.validate(), req.accept(chosen, &DeflateConfig::default(), &extra)) {
            (Ok(()), Ok(accept)) => {
                prop_assert!(req.is_websocket());
                prop_assert_eq!(accept.status, 200);
                for (n, v) in &accept.headers {
                    prop_assert!(!n.contains(['\r', '\n', '\0']) && !v.contains(['\r', '\n', '\0']));
                    prop_assert_eq!(n.clone(), n.to_ascii_lowercase());
                }
                if let Some(params) = accept.deflate {
                    let answer = accept.headers.iter().find(|(n, _)| n == "sec-websocket-extensions").unwrap();
                    prop_assert_eq!(DeflateConfig::default().accept_response(&answer.1), Ok(Some(params)));
                }
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!(&a, &b);
                let refusal = connect_refusal(&a);
                prop_assert!((400..500).contains(&refusal.status));
                prop_assert_eq!(refusal.headers.get("sec-websocket-version").is_some(), refusal.status == 426);
            }
            (v, a) => prop_assert!(false, "validate {:?} but accept {:?}", v, a),
        }
    }
}
