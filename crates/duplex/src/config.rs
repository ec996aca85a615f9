//! Options of the tokio layer, each with its default and the reason for it.

use std::sync::Arc;
use std::time::Duration;

use duplex_proto::handshake::Limits;

/// Options shared by servers, clients and the sockets they make.
///
/// ```
/// use std::time::Duration;
/// let config = duplex::Config::default()
///     .max_message_size(1 << 20)
///     .keepalive(Some(Duration::from_secs(30)), Duration::from_secs(10))
///     .handshake_timeout(Duration::from_secs(5));
/// assert_eq!(config.protocol.max_message_size, 1 << 20);
/// assert_eq!(config.protocol.ping_interval, Some(Duration::from_secs(30)));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The protocol core's limits, options and timeouts (frame and message size, streaming,
    /// auto-pong, permessage-deflate, keepalive, idle and close timeouts), shared by every
    /// connection made with this configuration. Set them with the builders below, or change one
    /// field with `Arc::make_mut(&mut config.protocol).max_frame_size = n`.
    pub protocol: Arc<duplex_proto::Config>,
    /// Limits on the opening handshake's HTTP head (size 8 KiB, 64 headers): over them a server
    /// answers 431.
    pub handshake_limits: Limits,
    /// How long the opening handshake may take, from TCP accept (or connect) to the end of the
    /// upgrade. Default 10 s: a client that trickles its headers is dropped after that.
    pub handshake_timeout: Duration,
    /// `send` waits for the socket only while more than this many bytes are queued unwritten; up to
    /// it, sends are queued and written as the socket takes them. Default 1 MiB.
    pub write_buffer_limit: usize,
    /// What a [`Sender`](crate::Sender) does when its connection already has more than
    /// `write_buffer_limit` bytes waiting: the slow-consumer policy. Default
    /// [`SlowConsumer::Reject`]: the send fails with `Full` and the caller decides.
    pub slow_consumer: SlowConsumer,
    /// Servers: the most connections at once, handshakes included; a connection over it is
    /// answered `503 Service Unavailable`. Default 10,000.
    pub max_connections: usize,
    /// Servers: the `Origin` values allowed to open a WebSocket, exactly or with one leading
    /// wildcard label (`https://*.example.org`). Empty (the default) allows any origin. A request
    /// with a foreign origin gets `403 Forbidden` before the upgrade; a request without `Origin`
    /// (not from a browser) is allowed. See docs/security.md.
    pub allowed_origins: Vec<String>,
    /// Servers: after a shutdown starts (close 1001 sent to every connection), how long to wait for
    /// the peers' close frames before dropping what remains. Default 5 s.
    pub shutdown_grace: Duration,
}

/// What a [`Sender`](crate::Sender) does when its connection is over its write buffer limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowConsumer {
    /// Fail the send with [`TrySendError::Full`](crate::TrySendError::Full); nothing is queued.
    #[default]
    Reject,
    /// Drop the message for this connection (the send reports it as dropped); the connection
    /// stays open and gets later messages once it catches up. For feeds where the latest value
    /// matters more than every value.
    Drop,
    /// Close the connection with this code (1008 policy violation or 1013 try again later) after
    /// what it already has queued.
    Close(duplex_proto::CloseCode),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            protocol: Arc::default(),
            handshake_limits: Limits::default(),
            handshake_timeout: Duration::from_secs(10),
            write_buffer_limit: 1 << 20,
            slow_consumer: SlowConsumer::Reject,
            max_connections: 10_000,
            allowed_origins: Vec::new(),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Sets the protocol core's options.
    ///
    /// ```
    /// // Large messages delivered in pieces as they arrive, instead of whole.
    /// let config = duplex::Config::default().protocol(duplex::proto::Config::default().streaming(true));
    /// assert!(config.protocol.streaming);
    /// ```
    pub fn protocol(mut self, protocol: duplex_proto::Config) -> Self {
        self.protocol = Arc::new(protocol);
        self
    }

    /// The protocol options, to change one (copied first if another configuration shares them).
    fn protocol_mut(&mut self) -> &mut duplex_proto::Config {
        Arc::make_mut(&mut self.protocol)
    }

    /// Sets [`duplex_proto::Config::max_message_size`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.protocol_mut().max_message_size = bytes;
        self
    }

    /// Sets [`duplex_proto::Config::max_frame_size`].
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.protocol_mut().max_frame_size = bytes;
        self
    }

    /// Sets [`Config::handshake_timeout`].
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// Sets [`duplex_proto::Config::close_timeout`]: how long to wait for the peer's close frame
    /// after ours, and then for the transport's end. Default 5 s.
    pub fn close_timeout(mut self, t: Duration) -> Self {
        self.protocol_mut().close_timeout = t;
        self
    }

    /// Sets [`Config::write_buffer_limit`].
    pub fn write_buffer_limit(mut self, bytes: usize) -> Self {
        self.write_buffer_limit = bytes;
        self
    }

    /// Sets the permessage-deflate options ([`duplex_proto::Config::deflate`]): what a server
    /// accepts and a client offers. On by default.
    pub fn deflate(mut self, deflate: duplex_proto::DeflateConfig) -> Self {
        self.protocol_mut().deflate = deflate;
        self
    }

    /// Turns permessage-deflate off: a client does not offer it, a server declines every offer.
    pub fn no_deflate(mut self) -> Self {
        self.protocol_mut().deflate.enabled = false;
        self
    }

    /// Sets [`Config::slow_consumer`].
    pub fn slow_consumer(mut self, policy: SlowConsumer) -> Self {
        self.slow_consumer = policy;
        self
    }

    /// Sets [`duplex_proto::Config::ping_interval`] and [`duplex_proto::Config::pong_timeout`]:
    /// a ping after that long without receiving anything, and the connection ends with
    /// [`Error::Timeout`](crate::Error::Timeout) if nothing arrives within the pong timeout after
    /// it. Detects half-open connections. Off by default in the library; `duplex serve` uses 30 s.
    pub fn keepalive(mut self, ping_interval: Option<Duration>, pong_timeout: Duration) -> Self {
        let p = self.protocol_mut();
        p.ping_interval = ping_interval;
        p.pong_timeout = pong_timeout;
        self
    }

    /// Sets [`duplex_proto::Config::idle_timeout`]: close (1001, "idle timeout") after that long
    /// without a message. Off by default.
    pub fn idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.protocol_mut().idle_timeout = t;
        self
    }

    /// Sets [`Config::max_connections`].
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Adds an allowed origin pattern ([`Config::allowed_origins`]).
    pub fn allow_origin(mut self, pattern: impl Into<String>) -> Self {
        self.allowed_origins.push(pattern.into());
        self
    }

    /// Sets [`Config::shutdown_grace`].
    pub fn shutdown_grace(mut self, t: Duration) -> Self {
        self.shutdown_grace = t;
        self
    }

    /// Sets [`Config::handshake_limits`].
    pub fn handshake_limits(mut self, limits: Limits) -> Self {
        self.handshake_limits = limits;
        self
    }
}
