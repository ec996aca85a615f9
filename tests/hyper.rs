//! duplex inside a hyper service (examples/hyper_echo.rs, run in this process): the upgrade, the
//! bytes a client sends with its request, the refusals our own server would give, plain requests
//! beside WebSockets.

#[allow(dead_code, reason = "the example's main is not run here")]
#[path = "../examples/hyper_echo.rs"]
mod hyper_echo;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use support::raw_ws::{masked_text_frame, read_frame, read_head, upgrade_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start(auto: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hyper_echo::run(listener, auto, Arc::new(duplex::Config::default())));
    addr
}

/// The request and the first masked frame in one TCP write: the frame hyper read past the
/// request must reach the socket (replayed on the direct path, by hyper's IO on the auto path).
async fn one_write(auto: bool) {
    let addr = start(auto).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut bytes = upgrade_request(&addr.to_string(), "/", &[]);
    bytes.extend_from_slice(&masked_text_frame(b"in the same packet"));
    tcp.write_all(&bytes).await.unwrap();
    let (head, rest) = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
    let (opcode, payload) = read_frame(&mut tcp, rest).await;
    assert_eq!((opcode, payload.as_slice()), (1, &b"in the same packet"[..]));
}

#[tokio::test]
async fn request_and_first_frame_in_one_write_are_echoed_http1_builder() {
    one_write(false).await;
}

#[tokio::test]
async fn request_and_first_frame_in_one_write_are_echoed_auto_builder() {
    one_write(true).await;
}

#[tokio::test]
async fn a_duplex_client_exchanges_messages_with_deflate_negotiated() {
    for auto in [false, true] {
        let addr = start(auto).await;
        let (mut ws, response) = duplex::Client::new().connect(&format!("ws://{addr}/echo")).await.unwrap();
        assert!(
            response.extensions.as_deref().is_some_and(|e| e.contains("permessage-deflate")),
            "deflate negotiated: {response:?}"
        );
        for i in 0..50 {
            let text = format!("message {i} {}", "x".repeat(i * 40));
            ws.send(text.as_str()).await.unwrap();
            assert_eq!(ws.recv().await.transpose().unwrap(), Some(text.into()));
        }
        ws.close(None).await.unwrap();
        assert!(ws.recv().await.is_none());
    }
}

#[tokio::test]
async fn refusals_are_the_same_as_our_own_servers() {
    let addr = start(false).await;
    // An unsupported version: 426 with the version we speak (RFC 6455 §4.4).
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req =
        String::from_utf8(upgrade_request(&addr.to_string(), "/", &[])).unwrap().replace("Version: 13", "Version: 8");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let (head, _) = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(head.to_ascii_lowercase().contains("sec-websocket-version: 13"), "{head}");
    // A bad key: 400.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = String::from_utf8(upgrade_request(&addr.to_string(), "/", &[]))
        .unwrap()
        .replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let (head, _) = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
}

#[tokio::test]
async fn a_plain_request_is_the_services() {
    let addr = start(false).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut all = String::new();
    tcp.read_to_string(&mut all).await.unwrap();
    assert!(all.starts_with("HTTP/1.1 200"), "{all}");
    assert!(all.ends_with("a WebSocket echo: connect with ws://\n"), "{all}");
}

/// Which transport the socket runs on: the TCP stream itself behind hyper's HTTP/1.1 builder,
/// hyper's upgraded IO behind hyper-util's auto builder (it wraps what it serves).
#[tokio::test]
async fn the_socket_runs_on_the_tcp_stream_when_hyper_served_one() {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    for auto in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let config = Arc::new(duplex::Config::default());
            let service = service_fn(move |mut req| {
                let (resp, upgrading) = duplex::hyper::upgrade(&mut req, &config);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut ws = upgrading.await.unwrap();
                    tx.send(ws.get_ref().is_direct()).unwrap();
                    while let Some(Ok(m)) = ws.recv().await {
                        let _ = ws.send(m).await;
                    }
                });
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let io = TokioIo::new(tcp);
            if auto {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection_with_upgrades(io, service).await;
            } else {
                let _ = http1::Builder::new().serve_connection(io, service).with_upgrades().await;
            }
        });
        let mut ws = duplex::connect(&format!("ws://{addr}/")).await.unwrap();
        ws.send("hi").await.unwrap();
        assert_eq!(ws.recv().await.transpose().unwrap(), Some("hi".into()));
        assert_eq!(
            rx.recv().await,
            Some(!auto),
            "direct transport behind the {} builder",
            if auto { "auto" } else { "http1" }
        );
    }
}
