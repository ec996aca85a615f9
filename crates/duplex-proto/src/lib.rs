//! # duplex-proto: the WebSocket protocol without I/O
//!
//! This crate is RFC 6455 as a pure state machine: it is handed bytes and returns events, and it is
//! handed messages and returns bytes to write. It opens no sockets, spawns no tasks and reads no
//! clock, so every rule of the protocol can be tested with byte arrays, fuzzed, and driven by any
//! runtime. The `duplex` crate drives it with tokio.
//!
//! - [`handshake`]: the HTTP/1.1 opening handshake, both roles (RFC 6455 §4).
//! - [`Connection`]: the open connection — framing, fragmentation, UTF-8, ping/pong, the close
//!   handshake, limits (§5-§8). It starts open, so a handshake done elsewhere (hyper, HTTP/2
//!   extended CONNECT) can hand over to it.
//! - [`deflate`]: permessage-deflate (RFC 7692), its negotiation and per-message compression.
//! - [`frame`], [`mask`], [`utf8`]: the wire format, the masking loop, streaming UTF-8 validation.
//! - [`CloseCode`], [`CloseFrame`]: which close codes exist and which may be sent.
//! - [`Config`]: limits with documented defaults.
//! - [`Outgoing`]: the queue of bytes to write, a [`bytes::Buf`] ready for vectored writes.

pub mod close;
pub mod config;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod outgoing;
pub mod utf8;

#[cfg(test)]
mod fuzz_regressions;

pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use connection::{
    drain_outgoing, encode_compressed_server_frame, encode_server_frame, Connection, Event, Role, State,
};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{ProtocolError, SendError, Violation};
pub use message::{Fragment, Message, MessageKind};
pub use outgoing::Outgoing;
