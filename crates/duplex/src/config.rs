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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            protocol: duplex_proto::Config::default(),
            handshake_limits: Limits::default(),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            write_buffer_limit: 1 << 20,
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

    /// Sets [`Config::handshake_limits`].
    pub fn handshake_limits(mut self, limits: Limits) -> Self {
        self.handshake_limits = limits;
        self
    }
}
