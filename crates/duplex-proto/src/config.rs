//! Limits, options and timeouts of a connection, each with its default and the reason for it.

use std::time::Duration;

use crate::deflate::DeflateConfig;

/// The options of one [`Connection`](crate::Connection).
///
/// ```
/// use duplex_proto::Config;
/// let config = Config::default().max_message_size(1 << 20).auto_pong(true);
/// assert_eq!(config.max_message_size, 1 << 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest frame payload accepted, in bytes; a larger frame is answered with close 1009.
    ///
    /// Default 16 MiB: the size of the largest single frames of the Autobahn suite (case 9.1.6),
    /// and far above what browsers send (they do not fragment).
    pub max_frame_size: usize,
    /// The largest message accepted, in bytes, summed over its fragments; a larger one is answered
    /// with close 1009 as soon as its size is known, before its bytes are buffered.
    ///
    /// Default 64 MiB: four times the largest Autobahn message, so a server that echoes with the
    /// defaults passes the suite, while one peer can make it buffer at most this much per
    /// connection. Servers with many untrusted peers should lower it.
    pub max_message_size: usize,
    /// Answer pings with pongs automatically (RFC 6455 §5.5.2). Default on; pings are still
    /// reported as events.
    pub auto_pong: bool,
    /// Deliver messages in pieces as their bytes arrive ([`Event::Fragment`](crate::Event::Fragment))
    /// instead of whole ([`Event::Message`](crate::Event::Message)), so a very large message never
    /// has to be held in memory at once. Default off.
    pub streaming: bool,
    /// Outgoing payloads up to this size are copied into one contiguous buffer with their header,
    /// so several small frames leave in one write; larger ones are queued as they are, without a
    /// copy. Default 4 KiB, a page.
    pub copy_threshold: usize,
    /// permessage-deflate (RFC 7692): whether the handshake offers or accepts it, the compression
    /// level, the size below which messages go uncompressed, and the window, memLevel,
    /// context-takeover and release trade-offs between memory per connection and compression
    /// ratio. Default on, level 1, messages from 64 bytes compressed, a 12-bit server window at
    /// memLevel 4, an 11-bit client window answered to clients that allow it, context takeover,
    /// codecs released after 2 s of quiet; see [`DeflateConfig`] for what each setting costs.
    ///
    /// It takes effect only if the handshake negotiated the extension: the connection is then
    /// built with [`Connection::with_deflate`](crate::Connection::with_deflate).
    ///
    /// Memory per connection (C zlib, measured): a compressor 6 KiB + 4 · 2^w + 2^(memLevel+9)
    /// (30 KiB with the defaults, 262 KiB at 15/8), an inflater 7.1 KiB + 2^w (9.1 KiB at 11
    /// bits), each from its direction's first compressed message until the connection has been
    /// quiet for `release_after` (then at most the inflater's window, 2^w bytes, is kept). Without
    /// context takeover both ways a connection holds none between messages (codecs come from a
    /// small per-thread pool). Without the extension: nothing.
    pub deflate: DeflateConfig,
    /// How long to wait for the peer's close frame after ours, and then for the transport's end
    /// (RFC 6455 §7.1.1: a client waits for the server to close TCP first). When it passes, the
    /// connection is aborted; before the peer's close frame that is
    /// [`TimeoutKind::Close`](crate::TimeoutKind::Close). Default 5 s.
    pub close_timeout: Duration,
    /// Send a ping after this long without receiving anything, and end the connection if nothing
    /// arrives within [`Config::pong_timeout`] after it
    /// ([`TimeoutKind::Keepalive`](crate::TimeoutKind::Keepalive), close code 1006): detects a
    /// peer that vanished without a FIN (a half-open connection). Default off.
    ///
    /// Reads only set a flag; the flag becomes a time at the next check, so no clock is read per
    /// message. A silent connection is pinged between one and two intervals after its last read,
    /// an idle one whose peer answers every `ping_interval`.
    pub ping_interval: Option<Duration>,
    /// How long to wait for any sign of life after a keepalive ping. Default 20 s.
    pub pong_timeout: Duration,
    /// Close the connection (1001, "idle timeout") after this long without receiving a message.
    /// Pings and pongs are not messages. Default off. Checked like the keepalive: a connection is
    /// closed between one and two `idle_timeout`s after its last message.
    pub idle_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            auto_pong: true,
            streaming: false,
            copy_threshold: 4096,
            deflate: DeflateConfig::default(),
            close_timeout: Duration::from_secs(5),
            ping_interval: None,
            pong_timeout: Duration::from_secs(20),
            idle_timeout: None,
        }
    }
}

impl Config {
    /// Sets [`Config::max_frame_size`].
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`Config::max_message_size`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`Config::auto_pong`].
    pub fn auto_pong(mut self, on: bool) -> Self {
        self.auto_pong = on;
        self
    }

    /// Sets [`Config::streaming`].
    ///
    /// ```
    /// use duplex_proto::{Config, Connection, Event, Fragment, MessageKind, Role};
    /// let mut server = Connection::new(Role::Server, Config::default().streaming(true));
    /// server.receive(&[0x01, 0x83, 0, 0, 0, 0, b'a', b'b', b'c']); // a first, unfinished text frame
    /// assert!(matches!(server.next_event(), Ok(Some(Event::Fragment(Fragment { kind: MessageKind::Text, .. })))));
    /// ```
    pub fn streaming(mut self, on: bool) -> Self {
        self.streaming = on;
        self
    }

    /// Sets [`Config::copy_threshold`].
    pub fn copy_threshold(mut self, bytes: usize) -> Self {
        self.copy_threshold = bytes;
        self
    }

    /// Sets [`Config::deflate`].
    pub fn deflate(mut self, deflate: DeflateConfig) -> Self {
        self.deflate = deflate;
        self
    }

    /// Sets [`Config::close_timeout`].
    pub fn close_timeout(mut self, t: Duration) -> Self {
        self.close_timeout = t;
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
}
