//! # duplex-axum: axum's WebSocket extractor on duplex
//!
//! The names and shapes of `axum::extract::ws` (axum 0.8): [`WebSocketUpgrade`] (with
//! `on_upgrade`, `on_failed_upgrade`, `protocols`, `selected_protocol`, `max_message_size`,
//! `max_frame_size`, `write_buffer_size` ...), [`WebSocket`] (`recv`, `send`, `protocol`,
//! `Stream`, `Sink<Message>`), [`Message`], [`Utf8Bytes`], [`CloseFrame`], [`close_code`] and
//! [`rejection`]. Migrating is one line:
//!
//! ```diff
//! -use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
//! +use duplex_axum::{Message, WebSocket, WebSocketUpgrade};
//! ```
//!
//! What changes underneath: permessage-deflate (RFC 7692) negotiated by default with
//! `duplex serve`'s parameters ([`WebSocketUpgrade::compression`],
//! [`no_compression`](WebSocketUpgrade::no_compression)); strict RFC 6455 (UTF-8 checked as
//! bytes arrive, Autobahn strict); a few KiB per idle connection (no per-connection read
//! buffer); [`WebSocket::close`] that completes the close handshake; [`WebSocket::into_inner`]
//! for the whole `duplex::WebSocket`. HTTP/1.1 upgrades and HTTP/2 extended CONNECT
//! (RFC 8441, on a server with `enable_connect_protocol`) are both accepted, as axum 0.8 does.
//! docs/axum.md in the repository lists every deliberate difference.
//!
//! ## Why a crate and not a feature of `duplex`
//!
//! axum is a framework with its own release line (0.7, 0.8, ...): a crate pins one major
//! version of it and can follow the next without a breaking release of `duplex`, and `duplex`
//! users who do not run axum never see it in `cargo tree` or its features in `check-features`.
//! Everything axum-free (the upgrade on any hyper service) is in `duplex::hyper`, which this
//! crate is a thin layer over.
//!
//! ```
//! use axum::{extract::State, response::Response, routing::any, Router};
//! use duplex_axum::{Message, WebSocket, WebSocketUpgrade};
//!
//! async fn ws(upgrade: WebSocketUpgrade, State(greeting): State<&'static str>) -> Response {
//!     upgrade.on_upgrade(move |socket| echo(socket, greeting))
//! }
//!
//! async fn echo(mut socket: WebSocket, greeting: &'static str) {
//!     if socket.send(Message::text(greeting)).await.is_err() {
//!         return;
//!     }
//!     while let Some(Ok(msg)) = socket.recv().await {
//!         if socket.send(msg).await.is_err() {
//!             break;
//!         }
//!     }
//! }
//!
//! let app: Router = Router::new().route("/ws", any(ws)).with_state("hello");
//! ```

mod message;
pub mod rejection;
mod socket;
mod upgrade;

pub use message::{close_code, CloseCode, CloseFrame, Message, Utf8Bytes};
pub use socket::{Inner, WebSocket};
pub use upgrade::{DefaultOnFailedUpgrade, OnFailedUpgrade, WebSocketUpgrade};

/// duplex, for [`WebSocket::into_inner`] and the configuration.
pub use duplex;
