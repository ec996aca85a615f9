//! axum's own WebSocket support (`axum::extract::ws`, tungstenite underneath) on the echo route of
//! `axum_echo/app.rs`: the baseline of "axum + duplex-axum" in scripts/bench-compare.
//!
//! Usage: axum-ws-echo PORT (listens on 127.0.0.1).

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};

include!("axum_echo/app.rs");
