//! A WebSocket app in the shape of axum's own websockets example: a handler with state that
//! picks a subprotocol and sets `on_failed_upgrade`, a socket split into a sending and a
//! receiving task, messages matched by kind. The two `use` lines below are the whole migration
//! (docs/axum.md); src/tests.rs runs the same test against either build.

#![allow(missing_docs, reason = "a test app")]

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

#[cfg(feature = "axum-ws")]
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
#[cfg(not(feature = "axum-ws"))]
use duplex_axum::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};

/// What the handlers share: a log of what every socket did.
#[derive(Default)]
pub struct AppState {
    pub events: Mutex<Vec<String>>,
}

impl AppState {
    fn record(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }
}

pub fn app(state: Arc<AppState>) -> Router {
    Router::new().route("/ws", any(ws_handler)).route("/events", get(events)).with_state(state)
}

async fn events(State(state): State<Arc<AppState>>) -> String {
    state.events.lock().unwrap().join("\n")
}

async fn ws_handler(ws: WebSocketUpgrade, State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let failed = state.clone();
    ws.protocols(["chat", "superchat"])
        .on_failed_upgrade(move |error| failed.record(format!("upgrade failed: {error}")))
        .on_upgrade(move |socket| handle_socket(socket, state))
}

async fn handle_socket(socket: WebSocket, state: Arc<AppState>) {
    let protocol = socket.protocol().and_then(|p| p.to_str().ok()).unwrap_or("none").to_owned();
    state.record(format!("open, protocol {protocol}"));
    let (mut sender, mut receiver) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(16);

    let mut send_task = tokio::spawn(async move {
        sender.send(Message::Text(Utf8Bytes::from_static("welcome"))).await.ok();
        while let Some(msg) = rx.recv().await {
            if sender.send(msg).await.is_err() {
                break;
            }
        }
    });

    let recv_state = state.clone();
    let mut recv_task = tokio::spawn(async move {
        while let Some(Ok(msg)) = receiver.next().await {
            let reply = match msg {
                Message::Text(t) => {
                    recv_state.record(format!("text {t}"));
                    Message::Text(format!("echo: {t}").into())
                }
                Message::Binary(b) => {
                    recv_state.record(format!("binary {} bytes", b.len()));
                    Message::Binary(b.iter().rev().copied().collect::<Vec<u8>>().into())
                }
                Message::Ping(p) => {
                    recv_state.record(format!("ping {} bytes", p.len()));
                    continue;
                }
                Message::Pong(_) => continue,
                Message::Close(Some(CloseFrame { code, reason })) => {
                    recv_state.record(format!("close {code} {reason}"));
                    break;
                }
                Message::Close(None) => {
                    recv_state.record("close without a code".to_owned());
                    break;
                }
            };
            if tx.send(reply).await.is_err() {
                break;
            }
        }
    });

    // Whichever task ends first ends the other.
    tokio::select! {
        _ = &mut send_task => recv_task.abort(),
        _ = &mut recv_task => send_task.abort(),
    }
    state.record("done".to_owned());
}

#[cfg(test)]
mod tests;
