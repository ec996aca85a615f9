//! # duplex: WebSockets on tokio
//!
//! A server and a client for RFC 6455 built on the [`duplex_proto`] sans-I/O core. The core does
//! the protocol; this crate moves its bytes over sockets, keeps its timers, and gives it an async
//! API.
//!
//! - [`Server`]: bind, accept, inspect each upgrade request, then accept, reject or answer it as
//!   plain HTTP.
//! - [`connect`] and [`Client`]: open a connection to a `ws://` or `wss://` URL.
//! - [`tls`]: `wss://` with rustls: [`TlsAcceptor`] for servers (PEM files or a generated
//!   self-signed certificate), trusted roots and client certificates for clients.
//! - [`WebSocket`]: send and receive messages, ping, close; a [`Stream`](futures_core::Stream) of
//!   messages; [`split`](WebSocket::split) into halves for two tasks.
//! - [`Sender`]: send to a connection from any task; [`Connections`]: the live connections of a
//!   server, listed and addressed by id (what `duplex serve`'s console uses).
//! - [`Config`]: limits and timeouts, each with its default and why.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! // An echo server.
//! let server = duplex::Server::bind("127.0.0.1:9001").await?;
//! loop {
//!     let incoming = server.accept().await?;
//!     tokio::spawn(async move {
//!         let Ok(req) = incoming.request().await else { return };
//!         let Ok(mut ws) = req.accept().await else { return };
//!         while let Some(Ok(msg)) = ws.recv().await {
//!             if ws.send(msg).await.is_err() { break }
//!         }
//!     });
//! }
//! # }
//! ```

pub mod client;
pub mod config;
pub mod error;
pub mod origin;
pub mod outbox;
pub mod registry;
pub mod server;
pub mod shutdown;
pub mod socket;
pub mod split;
pub mod stream;
pub mod tls;

pub use client::{connect, Client, Target};
pub use config::{Config, SlowConsumer};
pub use duplex_proto::{
    CloseCode, CloseFrame, DeflateConfig, DeflateParams, Event, Fragment, Message, MessageKind, Role,
};
pub use error::{Error, Result};
pub use outbox::Sender;
pub use registry::{ConnectionInfo, Connections, Registration, SendToError};
pub use server::{Accept, Incoming, Server, UpgradeRequest};
pub use shutdown::ShutdownHandle;
pub use socket::WebSocket;
pub use split::{ReadHalf, WriteHalf};
pub use stream::{ClientStream, ServerStream};
pub use tls::{TlsAcceptor, TlsError, TlsErrorKind};

/// The TLS library, for building a `ServerConfig` or `ClientConfig` of your own.
pub use rustls;

/// The protocol core, for frame-level work and custom drivers.
pub use duplex_proto as proto;
