//! Robustness under load, faults and hostile input, with real sockets: each behaviour the
//! operations and security docs promise.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use duplex::{CloseCode, Config, Connections, Message, Server, SlowConsumer};
use support::{Duplex, Input};

const WAIT: Duration = Duration::from_secs(10);

/// An echo server in this process with `config`; returns its address.
async fn echo_server(config: Config) -> (std::net::SocketAddr, duplex::ShutdownHandle) {
    let server = Server::bind("127.0.0.1:0").await.unwrap().with_config(config);
    let addr = server.local_addr().unwrap();
    let handle = server.shutdown_handle();
    tokio::spawn(server.serve(|incoming| async move {
        let Ok(req) = incoming.request().await else { return };
        let Ok(mut ws) = req.accept().await else { return };
        while let Some(Ok(m)) = ws.recv().await {
            if ws.send(m).await.is_err() {
                break;
            }
        }
    }));
    (addr, handle)
}

async fn echo_once(addr: std::net::SocketAddr, text: &str) {
    let mut ws = duplex::connect(&format!("ws://{addr}/")).await.expect("connects");
    ws.send(text).await.unwrap();
    let got = tokio::time::timeout(WAIT, ws.recv()).await.expect("echo in time");
    assert_eq!(got.unwrap().unwrap(), Message::Text(text.into()));
}

fn raw_handshake(addr: std::net::SocketAddr, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_client_is_dropped_within_the_handshake_timeout_while_others_are_served() {
    let (addr, _h) = echo_server(Config::default().handshake_timeout(Duration::from_millis(500))).await;
    let start = Instant::now();
    let trickler = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n";
        for b in request.iter().cycle().take(400) {
            if s.write_all(&[*b]).is_err() {
                return Instant::now(); // the server closed on us
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Written everything without an error: see whether the server has closed.
        let mut buf = [0u8; 1];
        s.set_read_timeout(Some(WAIT)).unwrap();
        let _ = s.read(&mut buf);
        Instant::now()
    });
    // Meanwhile, other clients are served at once.
    for i in 0..5 {
        echo_once(addr, &format!("served while trickling {i}")).await;
    }
    let dropped_at = trickler.await.unwrap();
    let took = dropped_at - start;
    assert!(took < Duration::from_secs(3), "the trickler was dropped after {took:?}, expected ~0.5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_gets_1009_and_the_server_goes_on() {
    let (addr, _h) = echo_server(Config::default().max_message_size(64 * 1024)).await;
    let mut big = duplex::connect(&format!("ws://{addr}/")).await.unwrap();
    big.send(Message::Binary(vec![7u8; 200 * 1024].into())).await.unwrap();
    let end = tokio::time::timeout(WAIT, big.recv()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    assert_eq!(big.close_info().map(|i| i.code()), Some(CloseCode::MESSAGE_TOO_BIG));
    echo_once(addr, "still serving").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_gets_403_and_an_allowed_one_connects() {
    let config = Config::default().allow_origin("https://app.example").allow_origin("https://*.example.org");
    let (addr, _h) = echo_server(config).await;
    let (_s, head) = raw_handshake(addr, "Origin: https://evil.example\r\n");
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (_s, head) = raw_handshake(addr, "Origin: https://eu.example.org\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (_s, head) = raw_handshake(addr, "");
    assert!(head.starts_with("HTTP/1.1 101"), "no Origin (not a browser) is allowed: {head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let server = Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .with_config(Config::default().keepalive(Some(Duration::from_millis(200)), Duration::from_millis(300)));
    let addr = server.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
    tokio::spawn(server.serve(move |incoming| {
        let tx = tx.clone();
        async move {
            let Ok(req) = incoming.request().await else { return };
            let Ok(mut ws) = req.accept().await else { return };
            let start = Instant::now();
            let end = loop {
                match ws.recv().await {
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break Some(e),
                    None => break None,
                }
            };
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send((start.elapsed(), end));
            }
        }
    }));
    // A client that completes the handshake, then goes silent without closing (a vanished peer).
    let (silent, head) = raw_handshake(addr, "");
    assert!(head.starts_with("HTTP/1.1 101"));
    let (took, end) = tokio::time::timeout(WAIT, rx).await.expect("closed in time").unwrap();
    assert!(matches!(end, Some(duplex::Error::Timeout(duplex::TimeoutKind::Keepalive))), "{end:?}");
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_held_at_its_limit_while_the_others_keep_up() {
    const LIMIT: usize = 64 * 1024;
    let config = Config::default().write_buffer_limit(LIMIT).slow_consumer(SlowConsumer::Drop);
    let server = Server::bind("127.0.0.1:0").await.unwrap().with_config(config);
    let addr = server.local_addr().unwrap();
    let connections = Connections::new();
    let registry = connections.clone();
    tokio::spawn(server.serve(move |incoming| {
        let registry = registry.clone();
        async move {
            let peer = incoming.peer_addr();
            let Ok(req) = incoming.request().await else { return };
            let Ok(mut ws) = req.accept().await else { return };
            let _registration = registry.register(ws.sender(), peer, "/");
            while let Some(Ok(_)) = ws.recv().await {}
        }
    }));
    // The slow one completes its handshake and then never reads.
    let (slow, head) = raw_handshake(addr, "");
    assert!(head.starts_with("HTTP/1.1 101"));
    let mut fast = Vec::new();
    for _ in 0..3 {
        fast.push(duplex::connect(&format!("ws://{addr}/")).await.unwrap());
    }
    while connections.len() < 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Found by its address: the server may register the connections in any order.
    let slow_addr = slow.local_addr().unwrap();
    let slow_id = connections.list().iter().find(|c| c.peer == slow_addr).map(|c| c.id).unwrap();
    let payload = "x".repeat(1000);
    const MESSAGES: usize = 20_000; // 20 MB per client: far beyond the slow one's socket buffers
    let readers: Vec<_> = fast
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut n = 0;
                while n < MESSAGES {
                    match tokio::time::timeout(WAIT, ws.recv()).await {
                        Ok(Some(Ok(_))) => n += 1,
                        other => panic!("fast reader stopped after {n}: {other:?}"),
                    }
                }
                n
            })
        })
        .collect();
    let mut peak = 0;
    for i in 0..MESSAGES {
        connections.broadcast(payload.as_str());
        if i % 16 == 0 {
            tokio::task::yield_now().await;
            // Pace the producer to what the fast readers take, as a real feed would.
            while connections.list().iter().filter(|c| c.id != slow_id).any(|c| c.buffered > LIMIT / 2) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let slow_buffered = connections.list().iter().find(|c| c.id == slow_id).map_or(0, |c| c.buffered);
        peak = peak.max(slow_buffered);
    }
    for r in readers {
        assert_eq!(tokio::time::timeout(Duration::from_secs(60), r).await.unwrap().unwrap(), MESSAGES);
    }
    assert!(peak <= LIMIT, "the slow consumer's queue reached {peak} bytes, over the {LIMIT} limit");
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_limit_gets_503() {
    let (addr, _h) = echo_server(Config::default().max_connections(2)).await;
    let _a = duplex::connect(&format!("ws://{addr}/")).await.unwrap();
    let _b = duplex::connect(&format!("ws://{addr}/")).await.unwrap();
    let err = duplex::connect(&format!("ws://{addr}/")).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
}

#[test]
fn sigterm_sends_1001_to_every_client_and_exits_within_the_grace_period() {
    let server = Duplex::start(&["echo", "--port", "{port}", "--shutdown-grace", "2s"], Input::Null);
    let url = server.url("/");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut clients = Vec::new();
        for i in 0..5 {
            let mut ws = duplex::connect(&url).await.unwrap();
            ws.send(format!("hi {i}")).await.unwrap();
            assert!(ws.recv().await.unwrap().is_ok());
            clients.push(ws);
        }
        let signalled = Instant::now();
        let status = std::process::Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
        assert!(status.success());
        for mut ws in clients {
            let end = tokio::time::timeout(WAIT, ws.recv()).await.expect("closed in time");
            assert!(end.is_none(), "{end:?}");
            let frame = ws.close_info().and_then(|i| i.frame).expect("a close frame");
            assert_eq!(frame.code, CloseCode::GOING_AWAY);
        }
        let mut server = server;
        while server.is_running() {
            assert!(
                signalled.elapsed() < Duration::from_secs(4),
                "still running after SIGTERM; log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server.wait_log("shutdown complete", WAIT);
    });
}
