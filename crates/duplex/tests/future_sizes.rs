//! Memory per connection: a server's connection task is as large as the largest future it
//! awaits, for its whole life. These bounds keep the handshake futures from growing back (they
//! were 1,344 and 1,992 bytes when a read buffer lived on the stack and the arguments were held
//! twice; an idle connection cost 4.6 KiB then, 3.0 KiB after). Since issue 19 the handshake
//! futures (`request()`, `accept()`, `reject()`, `respond()`) are boxed: a task holds a pointer
//! for them while the handshake runs, and an echo handler's future shrank from 2,200 to 1,200
//! bytes (the task tokio allocates for `duplex echo`'s, in a release build: 2,432 to 1,280). The
//! handshake in a boxed future of its own took it to 712 bytes (debug build; 744 once the
//! `WebSocket` grew to 576): the `Incoming` and the request's locals were held beside the
//! `WebSocket` before.

use std::mem::size_of_val;

use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn the_handshake_futures_stay_small() {
    let server = duplex::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let incoming = server.accept().await.unwrap();
    client
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let request = incoming.request();
    let request_size = size_of_val(&request);
    let upgrade = request.await.unwrap();
    let accept = upgrade.accept();
    let accept_size = size_of_val(&accept);
    let mut ws = accept.await.unwrap();
    let ws_size = size_of_val(&ws);
    let recv_size = size_of_val(&ws.recv());
    println!("request() {request_size} B, accept() {accept_size} B, WebSocket {ws_size} B, recv() {recv_size} B");
    // Measured 8, 8 and 544 bytes (rust 1.95): the handshakes are boxed; a little room for
    // compiler changes, none for a new field of a hundred bytes.
    assert!(request_size <= 16, "request() future grew to {request_size} bytes: is it still boxed?");
    assert!(accept_size <= 16, "accept() future grew to {accept_size} bytes: is it still boxed?");
    // 576 bytes with the default features, 608 with every feature on (what `cargo test
    // --workspace` builds: the CLI and the examples turn on metrics, ip-limits and hyper).
    assert!(ws_size <= 640, "WebSocket grew to {ws_size} bytes");
    assert!(recv_size <= 64, "recv() future grew to {recv_size} bytes");
}

/// The shape of `duplex echo`'s handler (src/echo.rs): what every idle connection's task holds.
/// The handshake runs in a boxed future of its own, so the task keeps a pointer to it, not the
/// `Incoming` (the handler's argument, held for the whole life of the future) nor the request's
/// locals beside the `WebSocket`.
fn echo_handler(incoming: duplex::Incoming<duplex::ServerStream>) -> impl std::future::Future<Output = ()> {
    let handshake = Box::pin(handshake(incoming));
    async move {
        let Some((peer, mut ws)) = handshake.await else { return };
        let ended = loop {
            match ws.recv().await {
                Some(Ok(m)) => {
                    if let Err(e) = ws.feed(m).await {
                        break Some(e);
                    }
                    if !ws.has_pending_events() {
                        if let Err(e) = ws.flush().await {
                            break Some(e);
                        }
                    }
                }
                Some(Err(e)) => break Some(e),
                None => break None,
            }
        };
        if let Some(e) = ended {
            self::ended(peer, "connection ended", &e);
        }
    }
}

async fn handshake(
    incoming: duplex::Incoming<duplex::ServerStream>,
) -> Option<(std::net::SocketAddr, duplex::WebSocket<duplex::ServerStream>)> {
    let peer = incoming.peer_addr();
    let req = match incoming.request().await {
        Ok(r) => r,
        Err(e) => {
            ended(peer, "handshake failed", &e);
            return None;
        }
    };
    let peer = req.peer_addr();
    if !req.is_websocket() {
        let _ = req.reject(426, "a WebSocket echo server\n").await;
        return None;
    }
    match req.accept().await {
        Ok(ws) => Some((peer, ws)),
        Err(e) => {
            ended(peer, "handshake failed", &e);
            None
        }
    }
}

/// Logs why a connection ended, in a function of its own: the logging macro's locals would
/// otherwise be part of every connection's future.
#[inline(never)]
fn ended(peer: std::net::SocketAddr, what: &str, e: &duplex::Error) {
    tracing::debug!(%peer, "{what}: {e}");
}

#[tokio::test]
async fn an_echo_handler_stays_small() {
    let server = duplex::Server::bind("127.0.0.1:0").await.unwrap();
    let _client = tokio::net::TcpStream::connect(server.local_addr().unwrap()).await.unwrap();
    let handler = echo_handler(server.accept().await.unwrap());
    let size = size_of_val(&handler);
    println!("echo handler {size} B");
    // 2,200 bytes with the handshake futures inline and the reply sent from a `match` over the
    // result of `feed` (rust 1.95, debug build); the handshakes boxed, 1,296; the reply as plain
    // statements, 1,200; the handshake in a boxed future of its own, 712 (744 with the 576-byte
    // `WebSocket` of the axum merge).
    assert!(size <= 800, "an echo handler's future grew to {size} bytes");
}
