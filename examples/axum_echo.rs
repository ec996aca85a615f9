//! The smallest axum app on duplex-axum: `/` echoes every message of a WebSocket (with
//! permessage-deflate when the client offers it, `duplex serve`'s defaults). Served by
//! `axum::serve` (HTTP/1.1 and h2c with extended CONNECT). Used by CI's Autobahn run and by
//! scripts/bench-compare.
//!
//! ```text
//! cargo run --release --example axum_echo -- [--port 9003]
//! ```

use axum::response::Response;
use axum::routing::any;
use axum::Router;
use duplex_axum::{WebSocket, WebSocketUpgrade};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let mut port = 9003u16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).expect("--port takes a port number"),
            other => panic!("unknown argument {other:?}; usage: axum_echo [--port N]"),
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!("axum echo listening on ws://{}", listener.local_addr()?);
    axum::serve(listener, app()).await
}

/// The router: one echo route.
pub fn app() -> Router {
    Router::new().route("/", any(echo))
}

async fn echo(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(echo_socket)
}

async fn echo_socket(socket: WebSocket) {
    // The duplex socket underneath: `feed` + `flush` write the answers to a burst together.
    let mut ws = socket.into_inner();
    while let Some(Ok(m)) = ws.recv().await {
        let sent = match ws.feed(m).await {
            Ok(()) if !ws.has_pending_events() => ws.flush().await,
            other => other,
        };
        if sent.is_err() {
            break;
        }
    }
}
