//! Per-address limits of `duplex echo` (docs/operations.md): `--max-conns-per-ip` and
//! `--handshake-rate`/`--handshake-burst`, with clients bound to distinct loopback source
//! addresses (127.0.0.1, .2, .3), and the refusals counted in the metrics.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{free_port, Duplex, Input};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const WAIT: Duration = Duration::from_secs(10);

/// An opening handshake from source address `src`: the response head and the stream (open
/// after a 101).
async fn handshake_from(src: &str, server: SocketAddr) -> (String, tokio::net::TcpStream) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(src.parse::<IpAddr>().unwrap(), 0)).unwrap();
    let mut s = socket.connect(server).await.expect("the server accepts at the TCP level");
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    // The server may answer (429) and close before the request is written: that is fine.
    let _ = s.write_all(req.as_bytes()).await;
    let mut head = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    });
    read.await.expect("an answer in time");
    let mut head = String::from_utf8_lossy(&head).into_owned();
    if head.starts_with("HTTP/1.1 429") {
        // The body, to the end: the refusal must arrive whole, not be cut by a reset.
        let mut body = String::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_string(&mut body)).await;
        head.push_str(&body);
    }
    (head, s)
}

fn metrics_of(port: u16) -> HashMap<String, f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_owned(), v.parse().ok()?))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_is_per_address_and_gives_places_back() {
    let mport = free_port();
    let marg = format!("127.0.0.1:{mport}");
    let server =
        Duplex::start(&["echo", "--port", "{port}", "--max-conns-per-ip", "10", "--metrics", &marg], Input::Null);
    let addr = server.addr();
    // Ten from 127.0.0.1. (The harness's readiness probe also came from 127.0.0.1: until the
    // server has seen it close, it holds a place, so start over if one is refused early.)
    let deadline = Instant::now() + WAIT;
    let mut open = Vec::new();
    while open.len() < 10 {
        let (head, s) = handshake_from("127.0.0.1", addr).await;
        if head.starts_with("HTTP/1.1 429") && Instant::now() < deadline {
            open.clear();
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        open.push(s);
    }
    let (head, _) = handshake_from("127.0.0.1", addr).await;
    assert!(head.starts_with("HTTP/1.1 429"), "the 11th from 127.0.0.1: {head}");
    assert!(head.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"), "{head}");
    assert!(head.contains("10 connections from one address is the limit"), "the whole body arrives: {head}");

    let (head, _other) = handshake_from("127.0.0.2", addr).await;
    assert!(head.starts_with("HTTP/1.1 101"), "another address is not limited: {head}");

    // One 127.0.0.1 connection closes (TCP close; the server drops it): a new one gets in, once
    // the server has seen the close.
    drop(open.pop());
    let deadline = Instant::now() + WAIT;
    let head = loop {
        let (head, s) = handshake_from("127.0.0.1", addr).await;
        if head.starts_with("HTTP/1.1 101") || Instant::now() > deadline {
            open.push(s);
            break head;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(head.starts_with("HTTP/1.1 101"), "after a close: {head}");
    let m = metrics_of(mport);
    assert!(m["duplex_handshakes_rejected_total{reason=\"per_ip\"}"] >= 1.0);
    assert_eq!(m["duplex_handshakes_rejected_total{reason=\"rate\"}"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_rate_holds_to_its_burst_and_rate() {
    let mport = free_port();
    let marg = format!("127.0.0.1:{mport}");
    let server = Duplex::start(
        &["echo", "--port", "{port}", "--handshake-rate", "10/s", "--handshake-burst", "20", "--metrics", &marg],
        Input::Null,
    );
    let addr = server.addr();
    let started = Instant::now();
    let mut accepted = 0u32;
    let mut refused = 0u32;
    for _ in 0..100 {
        let (head, _s) = handshake_from("127.0.0.3", addr).await;
        if head.starts_with("HTTP/1.1 101") {
            accepted += 1;
        } else {
            assert!(head.starts_with("HTTP/1.1 429") && head.to_ascii_lowercase().contains("retry-after:"), "{head}");
            refused += 1;
        }
    }
    let took = started.elapsed().as_secs_f64();
    // GCRA: the burst, then one more per 1/rate seconds of the run (and one for rounding).
    let bound = 20.0 + 10.0 * took + 1.0;
    println!("100 handshakes in {took:.3}s: {accepted} accepted (bound {bound:.1}), {refused} refused");
    assert!(f64::from(accepted) <= bound, "{accepted} accepted in {took:.3}s; at most {bound:.1}");
    assert!(accepted >= 20, "the burst is allowed: {accepted}");
    // After a pause, tokens are back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (head, _s) = handshake_from("127.0.0.3", addr).await;
    assert!(head.starts_with("HTTP/1.1 101"), "after a pause: {head}");
    // The server counts a connection once it has written its 101, so the last one may be read
    // here before it is counted: read the counters again until they settle.
    let expected = (f64::from(refused), 0.0, f64::from(accepted + 1));
    let counts = |m: &HashMap<String, f64>| {
        (
            m["duplex_handshakes_rejected_total{reason=\"rate\"}"],
            m["duplex_handshakes_rejected_total{reason=\"per_ip\"}"],
            m["duplex_connections_accepted_total{transport=\"ws\"}"],
        )
    };
    let deadline = Instant::now() + WAIT;
    let mut seen = counts(&metrics_of(mport));
    while seen != expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        seen = counts(&metrics_of(mport));
    }
    assert_eq!(seen, expected, "(rate refusals, per-address refusals, accepted)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_a_tls_connection_is_closed_before_the_tls_handshake() {
    let mport = free_port();
    let marg = format!("127.0.0.1:{mport}");
    let server = Duplex::start(
        &["echo", "--port", "{port}", "--tls-self-signed", "--max-conns-per-ip", "1", "--metrics", &marg],
        Input::Null,
    );
    // From 127.0.0.4: the harness's readiness probe came from 127.0.0.1, and until the server
    // has seen it close it would hold that address's one place.
    let connect = || async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.4:0".parse().unwrap()).unwrap();
        socket.connect(server.addr()).await.unwrap()
    };
    // The first holds the address's one place while its TLS handshake waits.
    let _first = connect().await;
    let per_ip = || metrics_of(mport)["duplex_handshakes_rejected_total{reason=\"per_ip\"}"];
    let deadline = Instant::now() + WAIT;
    loop {
        let before = per_ip();
        let mut second = connect().await;
        // Plain HTTP: a connection let through gets 400 "This port speaks TLS" from the TLS
        // layer at once; one over the limit gets nothing at all.
        let _ = second.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(WAIT, second.read_to_end(&mut answer)).await.expect("closed in time");
        if per_ip() > before {
            assert!(answer.is_empty(), "refused, yet answered: {}", String::from_utf8_lossy(&answer));
            break;
        }
        // The server had not taken the first's place yet: again.
        assert!(Instant::now() < deadline, "no per-address refusal counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
