//! # duplex-proto: the WebSocket protocol without I/O
//!
//! This crate is RFC 6455 as a pure state machine: it is handed bytes and returns events, and it is
//! handed messages and returns bytes to write. It opens no sockets, spawns no tasks and reads no
//! clock, so every rule of the protocol can be tested with byte arrays, fuzzed, and driven by any
//! runtime. The `duplex` crate drives it with tokio.
//!
//! - [`handshake`]: the opening handshake, both roles: HTTP/1.1 (RFC 6455 §4) and extended
//!   CONNECT over HTTP/2 (RFC 8441) or HTTP/3 (RFC 9220).
//! - [`Connection`]: the open connection — framing, fragmentation, UTF-8, ping/pong, the close
//!   handshake and who ends the transport first, keepalive and timeouts, limits (§5-§8). It is
//!   told the bytes read, the end of the peer's stream and the time; it returns events, bytes to
//!   write, what to do with the transport ([`Transport`]) and its next deadline. It starts open,
//!   so a handshake done elsewhere (hyper, HTTP/2 extended CONNECT) can hand over to it.
//! - [`ConnectionError`], [`TimeoutKind`]: why a connection ended without a clean close handshake.
//! - [`deflate`]: permessage-deflate (RFC 7692), its negotiation and per-message compression.
//! - [`frame`], [`mask`], [`utf8`]: the wire format, the masking loop, streaming UTF-8 validation.
//! - [`CloseCode`], [`CloseFrame`], [`CloseInfo`]: which close codes exist and which may be sent;
//!   how a close handshake went.
//! - [`Config`]: limits with documented defaults.
//! - [`Outgoing`]: the queue of bytes to write, a [`bytes::Buf`] ready for vectored writes.
//! - [`PreparedFrame`]: a message framed (and compressed) once for many connections.

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
mod prepared;
pub mod proxy_header;
pub mod utf8;

#[cfg(test)]
mod fuzz_regressions;

pub use close::{CloseCode, CloseFrame, CloseInfo, Side};
pub use config::Config;
pub use connection::{Connection, Event, Role, State, Transport};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{ConnectionError, ProtocolError, SendError, TimeoutKind, Violation};
pub use message::{Fragment, Message, MessageKind};
pub use outgoing::Outgoing;
pub use prepared::PreparedFrame;
