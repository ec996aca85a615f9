//! Limits and options of a connection, each with its default and the reason for it.

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
    /// level, the size below which messages go uncompressed, and the window and context-takeover
    /// trade-offs between memory per connection and compression ratio. Default on, level 1,
    /// messages from 64 bytes compressed, 32 KiB windows with context takeover; see
    /// [`DeflateConfig`] for what each setting costs per connection.
    ///
    /// It takes effect only if the handshake negotiated the extension: the connection is then
    /// built with [`Connection::with_deflate`](crate::Connection::with_deflate).
    ///
    /// Memory per connection (zlib-rs, measured), allocated on the first compressed message of
    /// each direction:
    ///
    /// | | window 15 | 14 | 13 | 12 | 11 | 10 | 9 (and 8) |
    /// |---|---|---|---|---|---|---|---|
    /// | compressor (own direction) | 371 KiB | 307 KiB | 275 KiB | 259 KiB | 251 KiB | 247 KiB | 245 KiB |
    /// | decompressor (peer's direction) | 46 KiB | 46 KiB | 46 KiB | 46 KiB | 46 KiB | 46 KiB | 46 KiB |
    ///
    /// With context takeover (the default) a direction keeps its codec from its first compressed
    /// message until the connection closes: ≈ 417 KiB for a server that both sends and receives
    /// compressed messages with the defaults. Without it (`server_no_context_takeover` for what a
    /// server sends, `client_no_context_takeover` for what a client sends) the codec exists only
    /// while a message is (de)compressed, so an idle connection holds none, at the price of
    /// allocating and initialising it for every message (≈ 45 µs for the compressor) and of ratio
    /// on streams of similar small messages. Without the extension: nothing.
    pub deflate: DeflateConfig,
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
}
