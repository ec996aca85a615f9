//! Options of the tokio layer, each with its default and the reason for it.

use std::time::Duration;

use duplex_proto::handshake::Limits;

/// Options shared by servers, clients and the sockets they make.
///
/// ```
/// use std::time::Duration;
/// let config = duplex::Config::default()
///     .max_message_size(1 << 20)
///     .handshake_timeout(Duration::from_secs(5));
/// assert_eq!(config.protocol.max_message_size, 1 << 20);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The protocol core's limits and options (frame and message size, streaming, auto-pong).
    pub protocol: duplex_proto::Config,
    /// Limits on the opening handshake's HTTP head (size 8 KiB, 64 headers): over them a server
    /// answers 431.
    pub handshake_limits: Limits,
    /// How long the opening handshake may take, from TCP accept (or connect) to the end of the
    /// upgrade. Default 10 s: a client that trickles its headers is dropped after that.
    pub handshake_timeout: Duration,
    /// How long to wait for the peer's close frame (after ours) and for the TCP close that follows.
    /// Default 5 s; then the connection is dropped.
    pub close_timeout: Duration,
    /// `send` waits for the socket only while more than this many bytes are queued unwritten; up to
    /// it, sends are queued and written as the socket takes them. Default 1 MiB.
    pub write_buffer_limit: usize,
    /// What a [`Sender`](crate::Sender) does when its connection already has more than
    /// `write_buffer_limit` bytes waiting: the slow-consumer policy. Default
    /// [`SlowConsumer::Reject`]: the send fails with `Full` and the caller decides.
    pub slow_consumer: SlowConsumer,
    /// Send a ping after this long without receiving anything, and close the connection if nothing
    /// arrives within [`Config::pong_timeout`] after it: detects half-open connections (a peer
    /// that vanished without a FIN). Default off in the library; `duplex serve` uses 30 s.
    pub ping_interval: Option<Duration>,
    /// How long to wait for any sign of life after a keepalive ping. Default 20 s.
    pub pong_timeout: Duration,
    /// Close the connection (1001, "idle timeout") after this long without receiving a message.
    /// Pings and pongs do not count as activity here. Default off.
    pub idle_timeout: Option<Duration>,
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
    /// Fail the send with [`SendError::Full`](crate::outbox::SendError::Full); nothing is queued.
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
            protocol: duplex_proto::Config::default(),
            handshake_limits: Limits::default(),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            write_buffer_limit: 1 << 20,
            slow_consumer: SlowConsumer::Reject,
            ping_interval: None,
            pong_timeout: Duration::from_secs(20),
            idle_timeout: None,
            max_connections: 10_000,
            allowed_origins: Vec::new(),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Sets the protocol core's options.
    pub fn protocol(mut self, protocol: duplex_proto::Config) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets [`duplex_proto::Config::max_message_size`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.protocol.max_message_size = bytes;
        self
    }

    /// Sets [`duplex_proto::Config::max_frame_size`].
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.protocol.max_frame_size = bytes;
        self
    }

    /// Sets [`Config::handshake_timeout`].
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// Sets [`Config::close_timeout`].
    pub fn close_timeout(mut self, t: Duration) -> Self {
        self.close_timeout = t;
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
        self.protocol.deflate = deflate;
        self
    }

    /// Turns permessage-deflate off: a client does not offer it, a server declines every offer.
    pub fn no_deflate(mut self) -> Self {
        self.protocol.deflate.enabled = false;
        self
    }

    /// Sets [`Config::slow_consumer`].
    pub fn slow_consumer(mut self, policy: SlowConsumer) -> Self {
        self.slow_consumer = policy;
        self
    }

    /// Sets [`Config::ping_interval`] and [`Config::pong_timeout`].
    pub fn keepalive(mut self, ping_interval: Option<Duration>, pong_timeout: Duration) -> Self {
        self.ping_interval = ping_interval;
        self.pong_timeout = pong_timeout;
        self
    }

    /// Sets [`Config::idle_timeout`].
    pub fn idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.idle_timeout = t;
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
