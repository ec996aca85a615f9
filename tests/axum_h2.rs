//! WebSockets over HTTP/2 (RFC 8441 extended CONNECT) through examples/axum_chat.rs (served in
//! this process by tests/support/axum_chat_server.rs: `axum::serve` for h2c, the example's
//! `tls::serve` for TLS with ALPN h2): a client on the `h2` crate (h2c with prior knowledge, and
//! TLS with ALPN `h2`) and Python `h2` + `wsproto` (tests/peers/python/h2_ws_client.py) open
//! sockets on the example's `/echo` route, exchange messages and close; the example's log must
//! name h2 (`echo: WebSocket open over h2`). Chromium over `https://` (h2) is in tests/axum.rs,
//! `chromium_over_https_opens_its_socket_on_the_h2_connection`.
//!
//! A test whose peer is missing prints `SKIP <test>: ...` and passes, except under `CI=true`.

#[allow(dead_code, reason = "the example's main is not run here")]
#[path = "../examples/axum_chat.rs"]
mod axum_chat;
#[path = "support/axum_chat_server.rs"]
mod axum_chat_server;
mod support;

#[path = "h2/client.rs"]
mod h2_client;

use std::sync::Arc;
use std::time::Duration;

use axum_chat_server::{start_chat, ChatServer};
use bytes::Bytes;
use duplex_proto::handshake::{ClientHandshake, HandshakeError};
use duplex_proto::Message;
use h2_client::{h2_connect, handshake, open};
use support::procs::{python, Proc};
use support::{can_run, Need};

/// How long a peer process may take.
const PEER_RUN: Duration = Duration::from_secs(90);

/// What the example logs for each socket on `/echo` opened over HTTP/2.
const OPEN_OVER_H2: &str = "echo: WebSocket open over h2";

/// A TLS connection to `server` offering only ALPN `h2`, trusting the example's self-signed
/// certificate.
async fn tls_connect(server: &ChatServer) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::ServerName;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.cert.as_ref().expect("a TLS server").cert_der().clone()).expect("trust the certificate");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "the server did not choose ALPN h2");
    tls
}

/// Two WebSockets on one HTTP/2 connection, each exchanging text, a 200 KiB binary message
/// (larger than HTTP/2's initial 64 KiB flow-control window, and compressed) and closing with
/// 1000; checks the handshake's outcome and the example's log.
async fn exchange(mut send_request: h2::client::SendRequest<Bytes>, server: &ChatServer, scheme: &str) {
    let authority = server.addr.to_string();
    let hs = handshake(&authority);
    let mut sockets = Vec::new();
    for _ in 0..2 {
        sockets.push(
            open(&mut send_request, &hs, scheme).await.unwrap_or_else(|e| panic!("{e:?}\n{}", server.log_text())),
        );
    }
    let big: Bytes = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    for (i, ws) in sockets.iter_mut().enumerate() {
        // The example's echo route offers no subprotocol: the client's `chat` is not chosen.
        assert_eq!(ws.response.protocol, None);
        assert!(ws.response.deflate.is_some(), "permessage-deflate not negotiated: {:?}", ws.response.extensions);
        for message in [Message::Text(format!("hello over h2, socket {i} ✓")), Message::Binary(big.clone())] {
            ws.send(message.clone()).unwrap();
            let echoed = ws.recv().await.unwrap_or_else(|e| panic!("{e:?}\n{}", server.log_text()));
            assert!(echoed.as_ref() == Some(&message), "socket {i}: echo differs ({} bytes)", message.len());
        }
    }
    for ws in &mut sockets {
        assert_eq!(ws.close(1000).await.unwrap(), Some(1000), "the server did not echo 1000");
        assert!(ws.peer_finished, "the server did not end its stream after the close handshake");
    }
    wait_log(server, OPEN_OVER_H2, 2).await;
}

/// Waits (bounded) for the example to log `needle` `count` times.
async fn wait_log(server: &ChatServer, needle: &str, count: usize) {
    for _ in 0..500 {
        if server.log_count(needle) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the example never logged {count} × {needle:?}:\n{}", server.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_crate_client_over_h2c_prior_knowledge() {
    let server = start_chat(false);
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let send_request = h2_connect(tcp).await.unwrap_or_else(|e| panic!("{e:?}\n{}", server.log_text()));
    exchange(send_request, &server, "ws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_crate_client_over_tls_with_alpn_h2() {
    let server = start_chat(true);
    let tls = tls_connect(&server).await;
    let send_request = h2_connect(tls).await.unwrap_or_else(|e| panic!("{e:?}\n{}", server.log_text()));
    exchange(send_request, &server, "wss").await;
}

/// RFC 8441 §5 with RFC 6455 §4.4: a version other than 13 is refused with 426 naming 13, and the
/// connection stays usable for the next stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_crate_client_is_refused_a_wrong_version_then_served() {
    let server = start_chat(false);
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut send_request = h2_connect(tcp).await.unwrap();
    let authority = server.addr.to_string();
    let wrong = ClientHandshake::new(authority.as_str(), "/echo");
    // Our client always sends 13: replace its headers by a version 8.
    let mut req = wrong.connect_request("ws");
    let mut headers = duplex_proto::handshake::HeaderList::default();
    headers.push("sec-websocket-version", "8");
    req.headers = headers;
    let (response, _send) = send_request.send_request(h2_client::http_request(&req), false).unwrap();
    let response = response.await.unwrap();
    let mut answer = duplex_proto::handshake::HeaderList::default();
    for (name, value) in response.headers() {
        answer.push(name.as_str(), value.as_bytes());
    }
    match wrong.check_connect_response(response.status().as_u16(), &answer) {
        Err(HandshakeError::Refused(r)) => {
            assert_eq!(r.status, 426);
            assert_eq!(r.headers.get("sec-websocket-version"), Some("13"));
        }
        other => panic!("expected a 426 refusal, got {other:?}\n{}", server.log_text()),
    }
    let mut ws = open(&mut send_request, &handshake(&authority), "ws").await.unwrap();
    ws.send(Message::Text("after the refusal".into())).unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::Text("after the refusal".into())));
    assert_eq!(ws.close(1000).await.unwrap(), Some(1000));
    assert_eq!(server.log_count(OPEN_OVER_H2), 1, "only the second stream opened a socket:\n{}", server.log_text());
}

/// tests/peers/python/h2_ws_client.py: Python `h2` + `wsproto`, over h2c and over TLS (ALPN h2,
/// the example's self-signed certificate, so `--insecure`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_h2_and_wsproto_client() {
    if !can_run("python_h2_and_wsproto_client", &[Need::PythonH2]) {
        return;
    }
    for tls in [false, true] {
        let server = start_chat(tls);
        let mut cmd = python("h2_ws_client.py");
        cmd.arg(format!("127.0.0.1:{}", server.addr.port())).args(["--path", "/echo"]);
        if tls {
            cmd.arg("--insecure");
        }
        let report = tokio::task::spawn_blocking(move || {
            let mut peer = Proc::spawn("h2_ws_client.py", &mut cmd);
            let status = peer.wait_exit(PEER_RUN);
            (status, peer.stdout(), peer.output())
        })
        .await
        .unwrap();
        let (status, stdout, output) = report;
        assert!(status.success(), "h2_ws_client.py (tls {tls}) failed ({status})\n{output}\n{}", server.log_text());
        let report: serde_json::Value = serde_json::from_str(&stdout).expect("h2_ws_client.py prints JSON");
        assert_eq!(report["status"], 200, "{report}");
        assert!(report["extensions"].as_str().is_some_and(|e| e.starts_with("permessage-deflate")), "{report}");
        assert_eq!(report["echoed"], serde_json::json!(["hello from python h2", "binary:65536"]), "{report}");
        assert_eq!(report["close_code"], 1000, "{report}");
        assert_eq!(report["stream_ended"], true, "{report}");
        if tls {
            assert_eq!(report["alpn"], "h2", "{report}");
        }
        wait_log(&server, OPEN_OVER_H2, 1).await;
    }
}
