//! Memory per connection: a server's connection task is as large as the largest future it
//! awaits, for its whole life. These bounds keep the handshake futures from growing back (they
//! were 1,344 and 1,992 bytes when a read buffer lived on the stack and the arguments were held
//! twice; an idle connection cost 4.6 KiB then, 3.0 KiB after).

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
    assert!(request_size <= 640, "request() future grew to {request_size} bytes");
    assert!(accept_size <= 640, "accept() future grew to {accept_size} bytes");
    assert!(ws_size <= 704, "WebSocket grew to {ws_size} bytes");
    assert!(recv_size <= 64, "recv() future grew to {recv_size} bytes");
}
