//! duplex-axum (this repository's drop-in for `axum::extract::ws`) on the echo route of
//! `axum_echo/app.rs`, as a user who switched only the `use` line would run it (default
//! features: permessage-deflate offered to clients that ask; the bench does not).
//!
//! Usage: axum-duplex-echo PORT (listens on 127.0.0.1).

use duplex_axum::{Message, WebSocket, WebSocketUpgrade};

include!("axum_echo/app.rs");
