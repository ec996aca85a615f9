// The echo route shared by the two axum peers, in the shape of axum's own websockets example:
// `WebSocketUpgrade` extractor, `on_upgrade`, then `recv()` / `send()` on the socket, text and
// binary messages sent back (pings are answered by the library). Each bin includes this file
// after its one `use` line that picks the WebSocket types: that line is all that differs.

use axum::response::Response;
use axum::routing::any;
use axum::Router;

async fn echo(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Text(_) | Message::Binary(_)) && socket.send(msg).await.is_err() {
                break;
            }
        }
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9001".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    axum::serve(listener, Router::new().route("/", any(echo))).await
}
