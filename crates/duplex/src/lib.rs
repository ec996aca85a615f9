//! # duplex: WebSockets on tokio
//!
//! A server and a client for RFC 6455 built on the [`duplex_proto`] sans-I/O core. The core does
//! the protocol; this crate moves its bytes over sockets, keeps its timers, and gives it an async
//! API.
//!
//! - [`Server`]: bind, accept, inspect each upgrade request, then accept, reject or answer it as
//!   plain HTTP.
//! - [`connect`] and [`Client`]: open a connection to a `ws://` or `wss://` URL.
//! - [`hyper`](mod@hyper) (cargo feature `hyper`): upgrade a request inside a hyper or axum
//!   service, over HTTP/1.1 or HTTP/2 (RFC 8441), with the checks of our own server.
//! - [`proxy`] (cargo feature `proxy`): HTTP, HTTPS and SOCKS proxies for clients, from the
//!   environment by default.
//! - [`ReconnectingSocket`]: a client that reconnects with full-jitter backoff, a classifier of
//!   what is worth retrying, and an event on every reconnection.
//! - [`tls`]: `wss://` with rustls: [`TlsAcceptor`] for servers (PEM files or a generated
//!   self-signed certificate), trusted roots and client certificates for clients.
//! - [`WebSocket`]: send and receive messages, ping, close; a [`Stream`](futures_core::Stream) of
//!   messages and a `Sink<Message>`; [`split`](WebSocket::split) into halves for two tasks
//!   ([`sink`]: which methods are cancel-safe in `tokio::select!`).
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

#[cfg(feature = "server")]
pub mod accept;
#[cfg(feature = "client")]
pub mod client;
pub mod config;
pub mod error;
#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "ip-limits")]
pub mod ip_limit;
pub mod metrics;
#[cfg(feature = "server")]
pub mod origin;
pub mod outbox;
pub mod proxy;
#[cfg(feature = "client")]
pub mod reconnect;
pub mod registry;
#[cfg(feature = "server")]
pub mod server;
pub mod shutdown;
pub mod sink;
pub mod socket;
pub mod split;
pub mod stream;
#[cfg(feature = "client")]
mod target;
pub mod tls;
#[cfg(feature = "server")]
pub mod trusted_proxy;

#[cfg(feature = "client")]
pub use client::{connect, BadUrl, Client, Target};
pub use config::{Config, SlowConsumer};
pub use duplex_proto::{
    CloseCode, CloseFrame, CloseInfo, DeflateConfig, DeflateParams, Event, Fragment, Message, MessageKind,
    PreparedFrame, Role, Side,
};
pub use error::{Error, Result, TimeoutKind};
pub use outbox::{Sender, TrySendError};
#[cfg(feature = "client")]
pub use reconnect::ReconnectingSocket;
pub use registry::{ConnectionInfo, Connections, Registration, SendToError};
#[cfg(feature = "server")]
pub use server::{listen, ServerBuilder};
#[cfg(feature = "server")]
pub use server::{Accept, Incoming, Server, UpgradeRequest};
pub use shutdown::ShutdownHandle;
pub use socket::WebSocket;
pub use split::{ReadHalf, WriteHalf};
#[cfg(feature = "client")]
pub use stream::ClientStream;
#[cfg(feature = "hyper")]
pub use stream::HyperStream;
#[cfg(feature = "server")]
pub use stream::ServerStream;
#[cfg(all(feature = "tls", feature = "server"))]
pub use tls::TlsAcceptor;
pub use tls::{TlsError, TlsErrorKind};
#[cfg(feature = "server")]
pub use trusted_proxy::{Cidr, TrustedProxies};

/// The TLS library, for building a `ServerConfig` or `ClientConfig` of your own (cargo feature
/// `tls`).
#[cfg(feature = "tls")]
pub use rustls;

/// The protocol core, for frame-level work and custom drivers.
pub use duplex_proto as proto;

/// The Rust examples of the repository's README, compiled with the doctests so that they stay
/// true (only there: the README is not part of the packaged crate).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExamples;
