//! duplex-axum through examples/axum_chat.rs (served in this process): its JSON routes, its
//! WebSocket routes with other libraries' clients (python-websockets, Node `ws`,
//! tokio-tungstenite) and Chromium on the page the app serves, over HTTP/1.1 and over TLS with
//! h2; the upgrade request and first frame in one write; refusals.
//!
//! A test whose peer is missing prints `SKIP <test>: ...` and passes, except under `CI=true`.

#[allow(dead_code, reason = "the example's main is not run here")]
#[path = "../examples/axum_chat.rs"]
mod axum_chat;
#[allow(dead_code, reason = "tests/axum_h2.rs reads the log and the certificate")]
#[path = "support/axum_chat_server.rs"]
mod axum_chat_server;
mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use support::procs::*;
use support::raw_ws::{masked_text_frame, read_frame, read_head, upgrade_request};
use support::{can_run, chromium_path, repo_root, Need};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

/// Serves the example's app (tests/support/axum_chat_server.rs), over TLS with ALPN h2 and
/// http/1.1 if `tls`.
fn start_chat(tls: bool) -> SocketAddr {
    axum_chat_server::start_chat(tls).addr
}

/// A plain HTTP/1.1 request: status line and body.
fn http(addr: SocketAddr, method: &str, path: &str, json: Option<&str>) -> (String, String) {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(SHORT)).unwrap();
    let body = json.unwrap_or("");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if json.is_some() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    tcp.write_all(req.as_bytes()).unwrap();
    let mut all = String::new();
    tcp.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

fn stats(addr: SocketAddr) -> axum_chat::Stats {
    let (status, body) = http(addr, "GET", "/api/stats", None);
    assert!(status.contains(" 200 "), "{status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("stats JSON {body:?}: {e}"))
}

#[test]
fn json_routes_are_answered_by_axum_on_the_websocket_port() {
    let addr = start_chat(false);
    assert_eq!(stats(addr), axum_chat::Stats { online: 0, messages: 0, sockets_over_h2: 0, recent: vec![] });
    let (status, body) = http(addr, "POST", "/api/messages", Some(r#"{"text":"from the API"}"#));
    assert!(status.contains(" 200 "), "{status} {body}");
    assert_eq!(body, r#"{"delivered_to":0}"#);
    assert_eq!(stats(addr).recent, ["api: from the API"]);
    let (status, _) = http(addr, "GET", "/", None);
    assert!(status.contains(" 200 "), "{status}");
}

/// Runs a peer client to completion against `url` and fails the test unless it exits 0.
fn run_client(name: &str, mut cmd: std::process::Command) -> String {
    let mut client = Proc::spawn(name, &mut cmd);
    let status = client.wait_exit(PEER_RUN);
    assert!(status.success(), "{name} failed ({status})\n{}", client.output());
    client.stdout()
}

#[test]
fn python_websockets_client_on_the_echo_route_with_deflate() {
    if !can_run("python_websockets_client_on_the_echo_route_with_deflate", &[Need::PythonWebsockets]) {
        return;
    }
    let addr = start_chat(false);
    let mut cmd = python("echo_client.py");
    cmd.arg(format!("ws://{addr}/echo")).args(["--deflate", "--require-deflate"]);
    let out = run_client("python echo_client.py", cmd);
    assert!(out.contains("negotiated extensions: permessage-deflate"), "{out}");
}

#[test]
fn node_ws_client_on_the_echo_route_with_deflate() {
    if !can_run("node_ws_client_on_the_echo_route_with_deflate", &[Need::NodePeers]) {
        return;
    }
    let addr = start_chat(false);
    let mut cmd = node("echo_client.js");
    cmd.arg(format!("ws://{addr}/echo")).arg("--deflate");
    let out = run_client("node echo_client.js", cmd);
    assert!(out.contains("negotiated extensions: permessage-deflate"), "{out}");
}

#[tokio::test]
async fn tokio_tungstenite_client_chats_and_echoes() {
    let addr = start_chat(false);
    // The chat route, with its subprotocol.
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "other, chat.v1".parse().unwrap());
    let (mut chat, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap()), Some("chat.v1"));
    chat.send(tungstenite::Message::text("hi from tungstenite")).await.unwrap();
    let line = tokio::time::timeout(SHORT, chat.next()).await.expect("the room's answer").unwrap().unwrap();
    let line = line.into_text().unwrap();
    assert!(line.starts_with("user") && line.ends_with(": hi from tungstenite"), "{line}");
    chat.close(None).await.unwrap();
    // The echo route.
    let (mut echo, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/echo")).await.unwrap();
    for i in 0..100 {
        let m = if i % 2 == 0 {
            tungstenite::Message::text(format!("text {i}"))
        } else {
            tungstenite::Message::binary(vec![i as u8; i * 100])
        };
        echo.send(m.clone()).await.unwrap();
        assert_eq!(echo.next().await.unwrap().unwrap(), m);
    }
    echo.send(tungstenite::Message::Close(Some(tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "done".into(),
    })))
    .await
    .unwrap();
    match echo.next().await {
        Some(Ok(tungstenite::Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1000),
        other => panic!("expected the close answer, got {other:?}"),
    }
}

#[tokio::test]
async fn request_and_first_frame_in_one_write_are_echoed_through_axum() {
    use tokio::io::AsyncWriteExt;
    let addr = start_chat(false);
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut bytes = upgrade_request(&addr.to_string(), "/echo", &[]);
    bytes.extend_from_slice(&masked_text_frame(b"in the same packet"));
    tcp.write_all(&bytes).await.unwrap();
    let (head, rest) = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (opcode, payload) = read_frame(&mut tcp, rest).await;
    assert_eq!((opcode, payload.as_slice()), (1, &b"in the same packet"[..]));
}

#[tokio::test]
async fn refusals_name_the_problem() {
    use tokio::io::AsyncWriteExt;
    let addr = start_chat(false);
    let cases: [(&str, &str, &str); 3] = [
        ("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", "HTTP/1.1 426"),
        ("Connection: Upgrade", "Connection: keep-alive", "HTTP/1.1 400"),
        ("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", "HTTP/1.1 400"),
    ];
    for (from, to, status) in cases {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = String::from_utf8(upgrade_request(&addr.to_string(), "/echo", &[])).unwrap().replace(from, to);
        tcp.write_all(req.as_bytes()).await.unwrap();
        let (head, _) = read_head(&mut tcp).await;
        assert!(head.starts_with(status), "{to}: {head}");
        if status.ends_with("426") {
            assert!(head.to_ascii_lowercase().contains("sec-websocket-version: 13"), "{head}");
        }
    }
}

/// Chromium on the page axum serves: the socket opens with chat.v1 and permessage-deflate, the
/// page's line comes back through the room; returns the script's report (with /api/stats as the
/// page read it).
fn chromium_on_the_page(name: &str, tls: bool) -> serde_json::Value {
    let addr = start_chat(tls);
    let scheme = if tls { "https" } else { "http" };
    let shot = repo_root().join("target").join("interop").join(format!("{name}.png"));
    let mut cmd = node("browser_axum_chat.js");
    cmd.arg(format!("{scheme}://127.0.0.1:{}/", addr.port())).arg(&shot).args(["--timeout", "75"]);
    if tls {
        cmd.arg("--ignore-certificate-errors");
    }
    cmd.env("CHROMIUM", chromium_path());
    let out = run_client("browser_axum_chat.js", cmd);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("report {out}: {e}"));
    let recent = report["stats"]["recent"].as_array().cloned().unwrap_or_default();
    assert!(recent.iter().any(|l| l.as_str().is_some_and(|l| l.ends_with(": hello from chromium"))), "{out}");
    report
}

#[test]
fn chromium_chats_on_the_page_the_app_serves() {
    if !can_run("chromium_chats_on_the_page_the_app_serves", &[Need::NodePeers, Need::Chromium]) {
        return;
    }
    let report = chromium_on_the_page("axum_chat", false);
    assert_eq!(report["stats"]["sockets_over_h2"], 0, "{report}");
}

#[test]
fn chromium_over_https_opens_its_socket_on_the_h2_connection() {
    if !can_run("chromium_over_https_opens_its_socket_on_the_h2_connection", &[Need::NodePeers, Need::Chromium]) {
        return;
    }
    let report = chromium_on_the_page("axum_chat_h2", true);
    assert_eq!(report["nextHopProtocol"], "h2", "the page came over h2: {report}");
    // Chromium opens a WebSocket over HTTP/2 only on an h2 connection it already has to the
    // origin, whose SETTINGS allow extended CONNECT (RFC 8441 §3): the page's own connection.
    assert_eq!(report["stats"]["sockets_over_h2"], 1, "the chat socket went over h2: {report}");
}
