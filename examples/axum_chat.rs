//! A chat on axum with duplex-axum, in the shape of axum's own WebSocket examples: one port
//! serves the page (`/`), JSON routes (`GET /api/stats`, `POST /api/messages`), the chat
//! WebSocket (`/ws`, subprotocol `chat.v1`, split into a reader and a writer task) and an echo
//! WebSocket (`/echo`, for interop peers and Autobahn). Shared state: a broadcast channel and
//! counters.
//!
//! ```text
//! cargo run --example axum_chat -- [--port 3000] [--tls]
//! ```
//!
//! Plain: `axum::serve`, HTTP/1.1 and h2c (WebSockets over HTTP/2 with extended CONNECT too).
//! `--tls`: HTTPS with a generated self-signed certificate for localhost and 127.0.0.1 and ALPN
//! `h2` and `http/1.1`; each connection is served by hyper's HTTP/2 or HTTP/1.1 builder as ALPN
//! chose. Every WebSocket's HTTP version is logged (`over h2`, `over http/1.1`).
//! Migrating from `axum::extract::ws` is the `use duplex_axum::...` line below.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::Version;
use axum::response::{Html, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use duplex_axum::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// What every handler shares.
pub struct AppState {
    /// Every chat line, to every connected socket's writer task.
    tx: broadcast::Sender<Utf8Bytes>,
    /// Sockets connected to `/ws` now.
    online: AtomicUsize,
    /// Lines sent so far.
    messages: AtomicU64,
    next_user: AtomicU64,
    /// Chat sockets opened over HTTP/2 (extended CONNECT) so far.
    over_h2: AtomicU64,
    /// The last lines, for `GET /api/stats`.
    recent: Mutex<VecDeque<String>>,
}

impl AppState {
    /// An empty room.
    pub fn new() -> Arc<AppState> {
        Arc::new(AppState {
            tx: broadcast::channel(256).0,
            online: AtomicUsize::new(0),
            messages: AtomicU64::new(0),
            next_user: AtomicU64::new(1),
            over_h2: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
        })
    }

    fn say(&self, line: String) -> usize {
        self.messages.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == 20 {
            recent.pop_front();
        }
        recent.push_back(line.clone());
        drop(recent);
        self.tx.send(line.into()).unwrap_or(0)
    }
}

/// The router (tests/axum.rs serves it in-process).
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(include_str!("axum_chat.html")) }))
        .route("/api/stats", get(stats))
        .route("/api/messages", axum::routing::post(post_message))
        .route("/ws", any(chat))
        .route("/echo", any(echo))
        .with_state(state)
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
/// `GET /api/stats`.
pub struct Stats {
    /// Sockets on `/ws` now.
    pub online: usize,
    /// Lines so far.
    pub messages: u64,
    /// Chat sockets opened over HTTP/2 so far.
    pub sockets_over_h2: u64,
    /// The last lines, oldest first.
    pub recent: Vec<String>,
}

async fn stats(State(state): State<Arc<AppState>>) -> Json<Stats> {
    Json(Stats {
        online: state.online.load(Ordering::Relaxed),
        messages: state.messages.load(Ordering::Relaxed),
        sockets_over_h2: state.over_h2.load(Ordering::Relaxed),
        recent: state.recent.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect(),
    })
}

/// `POST /api/messages`.
#[derive(Deserialize)]
struct Post {
    text: String,
}

async fn post_message(State(state): State<Arc<AppState>>, Json(post): Json<Post>) -> Json<serde_json::Value> {
    let delivered = state.say(format!("api: {}", post.text));
    Json(serde_json::json!({ "delivered_to": delivered }))
}

fn http_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_2 => "h2",
        Version::HTTP_3 => "h3",
        Version::HTTP_10 => "http/1.0",
        _ => "http/1.1",
    }
}

async fn chat(ws: WebSocketUpgrade, version: Version, State(state): State<Arc<AppState>>) -> Response {
    ws.protocols(["chat.v1"])
        .on_failed_upgrade(|e| tracing::warn!("chat upgrade failed: {e}"))
        .on_upgrade(move |socket| chat_socket(socket, state, version))
}

async fn chat_socket(socket: WebSocket, state: Arc<AppState>, version: Version) {
    let user = state.next_user.fetch_add(1, Ordering::Relaxed);
    let protocol = socket.protocol().and_then(|p| p.to_str().ok()).unwrap_or("none").to_owned();
    tracing::info!("user{user}: WebSocket open over {} (protocol {protocol})", http_name(version));
    state.online.fetch_add(1, Ordering::Relaxed);
    if version == Version::HTTP_2 {
        state.over_h2.fetch_add(1, Ordering::Relaxed);
    }
    let (mut sender, mut receiver) = socket.split();
    let mut lines = state.tx.subscribe();
    // Writer: every line of the room to this socket.
    let mut send_task = tokio::spawn(async move {
        while let Ok(line) = lines.recv().await {
            if sender.send(Message::Text(line)).await.is_err() {
                return;
            }
        }
    });
    // Reader: this socket's lines to the room.
    let room = state.clone();
    let mut recv_task = tokio::spawn(async move {
        while let Some(Ok(msg)) = receiver.next().await {
            match msg {
                Message::Text(t) => {
                    tracing::info!("user{user} says {t}");
                    room.say(format!("user{user}: {t}"));
                }
                Message::Binary(b) => tracing::info!("user{user} sent {} bytes of binary; ignored", b.len()),
                Message::Close(Some(CloseFrame { code, reason })) => {
                    tracing::info!("user{user} closed {code} {reason}")
                }
                Message::Close(None) => tracing::info!("user{user} closed"),
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    });
    // Whichever ends first ends the other.
    tokio::select! {
        _ = &mut send_task => recv_task.abort(),
        _ = &mut recv_task => send_task.abort(),
    }
    state.online.fetch_sub(1, Ordering::Relaxed);
    tracing::info!("user{user}: WebSocket closed");
}

async fn echo(ws: WebSocketUpgrade, version: Version) -> Response {
    ws.on_upgrade(move |mut socket| async move {
        tracing::info!("echo: WebSocket open over {}", http_name(version));
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Ping(_) | Message::Pong(_) | Message::Close(_)) {
                continue; // pings are answered and the close completed by the socket
            }
            if socket.send(msg).await.is_err() {
                break;
            }
        }
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let mut port = 3000u16;
    let mut tls = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).expect("--port takes a port number"),
            "--tls" => tls = true,
            other => panic!("unknown argument {other:?}; usage: axum_chat [--port N] [--tls]"),
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let app = app(AppState::new());
    if tls {
        let acceptor = tls::self_signed_h2()?;
        tracing::info!("axum chat listening on https://{addr}/ (self-signed; h2 and http/1.1)");
        tls::serve(listener, acceptor, app).await
    } else {
        tracing::info!("axum chat listening on http://{addr}/ (http/1.1 and h2c)");
        axum::serve(listener, app).await
    }
}

/// HTTPS with ALPN: the connection is served by the builder of the protocol TLS agreed.
pub mod tls {
    use std::sync::Arc;

    use axum::Router;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    use tokio::net::TcpListener;

    /// An acceptor with a self-signed certificate for localhost and 127.0.0.1, offering h2 then
    /// http/1.1.
    pub fn self_signed_h2() -> std::io::Result<duplex::TlsAcceptor> {
        h2_acceptor(&duplex::tls::SelfSigned::localhost().map_err(std::io::Error::other)?)
    }

    /// An acceptor with `cert`, offering h2 then http/1.1 (tests/axum_h2.rs keeps `cert` to
    /// trust it).
    pub fn h2_acceptor(cert: &duplex::tls::SelfSigned) -> std::io::Result<duplex::TlsAcceptor> {
        let mut config = cert.server_config().map_err(std::io::Error::other)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(duplex::TlsAcceptor::new(Arc::new(config)))
    }

    /// Accepts TLS connections and serves `app` on each over HTTP/2 (extended CONNECT on) or
    /// HTTP/1.1 (with upgrades), as ALPN agreed.
    pub async fn serve(listener: TcpListener, acceptor: duplex::TlsAcceptor, app: Router) -> std::io::Result<()> {
        loop {
            let (tcp, peer) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let service = TowerToHyperService::new(app);
                let io = TokioIo::new(tls);
                let served = if h2 {
                    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    builder.enable_connect_protocol();
                    builder.serve_connection(io, service).await
                } else {
                    hyper::server::conn::http1::Builder::new().serve_connection(io, service).with_upgrades().await
                };
                if let Err(e) = served {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            });
        }
    }
}
