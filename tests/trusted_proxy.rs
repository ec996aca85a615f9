//! The client's address behind a proxy (docs/operations.md): a real haproxy with
//! `send-proxy-v2` (and `send-proxy`) in front of `duplex serve --trust-proxy ... --proxy-protocol`,
//! `X-Forwarded-For` from trusted and untrusted peers, and the per-address limit applied to the
//! address the proxy saw. Clients bind distinct loopback sources (127.0.0.5, .6, ...).

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use support::proxies::haproxy_send_proxy;
use support::{can_run, Duplex, Input, Need};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

/// An opening handshake to `to` from source `src`, with `extra` header lines (or `prefix` bytes
/// before the request): the response head and the stream.
async fn handshake(src: &str, to: SocketAddr, prefix: &[u8], extra: &str) -> (String, TcpStream) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(src.parse::<IpAddr>().unwrap(), 0)).unwrap();
    let mut s = socket.connect(to).await.expect("connects");
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {to}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    let _ = s.write_all(&[prefix, req.as_bytes()].concat()).await;
    let mut head = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    })
    .await
    .expect("an answer in time");
    (String::from_utf8_lossy(&head).into_owned(), s)
}

fn serve(args: &[&str]) -> Duplex {
    let mut all = vec!["serve", "--port", "{port}", "--interval", "0"];
    all.extend_from_slice(args);
    Duplex::start(&all, Input::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_send_proxy_v2_the_client_address_is_logged_and_limited() {
    if !can_run("trusted_proxy::haproxy", &[Need::Haproxy]) {
        return;
    }
    let server = serve(&["--trust-proxy", "127.0.0.1/32", "--proxy-protocol", "--max-conns-per-ip", "2"]);
    let haproxy = haproxy_send_proxy(server.port, "send-proxy-v2");
    let front: SocketAddr = ([127, 0, 0, 1], haproxy.port).into();

    let (head, _a) = handshake("127.0.0.5", front, b"", "").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}\n{}", server.log());
    let line = server.wait_log("opened from 127.0.0.5:", WAIT);
    println!("{line}");
    let (head, _b) = handshake("127.0.0.5", front, b"", "").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // The limit counts the client haproxy saw, not haproxy.
    let (head, _) = handshake("127.0.0.5", front, b"", "").await;
    assert!(head.starts_with("HTTP/1.1 429"), "a third from 127.0.0.5: {head}");
    let (head, _c) = handshake("127.0.0.6", front, b"", "").await;
    assert!(head.starts_with("HTTP/1.1 101"), "another client through the same proxy: {head}");
    server.wait_log("opened from 127.0.0.6:", WAIT);

    // A trusted peer that does not send the header is closed unanswered.
    let (head, _) = handshake("127.0.0.1", server.addr(), b"", "").await;
    assert!(head.is_empty(), "{head}");
    drop(haproxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_send_proxy_v1_too() {
    if !can_run("trusted_proxy::haproxy_v1", &[Need::Haproxy]) {
        return;
    }
    let server = serve(&["--trust-proxy", "127.0.0.0/8", "--proxy-protocol"]);
    let haproxy = haproxy_send_proxy(server.port, "send-proxy");
    let (head, _a) = handshake("127.0.0.8", ([127, 0, 0, 1], haproxy.port).into(), b"", "").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    server.wait_log("opened from 127.0.0.8:", WAIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_header_from_an_untrusted_peer_is_refused() {
    if !can_run("trusted_proxy::untrusted", &[Need::Haproxy]) {
        return;
    }
    // haproxy (127.0.0.1) is not in the trusted network: its header is a malformed request.
    let server = serve(&["--trust-proxy", "10.0.0.0/8", "--proxy-protocol"]);
    let haproxy = haproxy_send_proxy(server.port, "send-proxy-v2");
    let (head, _) = handshake("127.0.0.5", ([127, 0, 0, 1], haproxy.port).into(), b"", "").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    // And one written by hand.
    let (head, _) = handshake("127.0.0.5", server.addr(), b"PROXY TCP4 203.0.113.9 127.0.0.1 4000 80\r\n", "").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(!server.log().contains("203.0.113.9"), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_counts_from_a_trusted_peer_only() {
    let untrusted = serve(&["--trust-proxy", "10.0.0.0/8"]);
    let (head, _a) = handshake("127.0.0.5", untrusted.addr(), b"", "X-Forwarded-For: 203.0.113.9\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    untrusted.wait_log("opened from 127.0.0.5:", WAIT);
    assert!(!untrusted.log().contains("203.0.113.9"), "{}", untrusted.log());

    let trusted = serve(&["--trust-proxy", "127.0.0.5/32", "--max-conns-per-ip", "1"]);
    let xff = "X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n";
    let (head, _b) = handshake("127.0.0.5", trusted.addr(), b"", xff).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    trusted.wait_log("opened from 203.0.113.9:", WAIT);
    // The limit counts 203.0.113.9 (the proxy's own address is not limited).
    let (head, _) = handshake("127.0.0.5", trusted.addr(), b"", xff).await;
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    let (head, _c) = handshake("127.0.0.5", trusted.addr(), b"", "Forwarded: for=\"[2001:db8::7]:1\"\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    trusted.wait_log("opened from [2001:db8::7]:0", WAIT);
}
