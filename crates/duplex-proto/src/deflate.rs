//! permessage-deflate (RFC 7692): negotiation of its parameters in the opening handshake, and the
//! compression and decompression of messages.
//!
//! - Negotiation. A client offers the extension with [`DeflateConfig::offer`] and checks the
//!   server's answer with [`DeflateConfig::accept_response`]; a server picks the first acceptable
//!   offer of a request with [`DeflateConfig::negotiate`], which also builds the answer. Both yield
//!   a [`DeflateParams`]: plain data, the parameters in force, which the framing layer
//!   ([`Connection::with_deflate`](crate::Connection::with_deflate)) is given.
//! - Compression. A message is compressed as one raw DEFLATE stream (no zlib header) ended with a
//!   sync flush, whose final empty stored block `00 00 ff ff` is removed (RFC 7692 §7.2.1); the
//!   receiver appends those four bytes again before inflating (§7.2.2). Unless "no context
//!   takeover" applies to a direction, its LZ77 window carries over from message to message.
//!
//! Negotiation is always compiled; the codec is behind the cargo feature `deflate` (on by
//! default). Without it the handshake neither offers nor accepts the extension, and a peer that
//! sets RSV1 is failed with a protocol error as RFC 6455 §5.2 requires.
//!
//! The codec is C zlib through `libz-sys` (the system's zlib, or libz-sys' bundled copy): unlike
//! zlib-rs and zlib-ng, whose hash table is 128 KiB whatever the memLevel, its memory follows the
//! window and memLevel, which is what many connections need (`docs/compression.md` has the
//! measurements). Its raw deflate cannot compress with an 8-bit window (`deflateInit2` refuses
//! `windowBits = -8` since 1.2.9, madler/zlib#171). When 8 bits are negotiated for our compressor we compress with a 9-bit window,
//! as Node's zlib (and so `ws`) does: zlib-style deflate never emits a distance larger than the
//! window minus 262 bytes (`MIN_LOOKAHEAD`), so a 512-byte window produces distances of at most 250,
//! within the 256 bytes the peer promised to keep. For decompression a larger window than the
//! peer's is always safe; zlib's raw inflate takes 8 as it is.
//! python-websockets passes 8 straight to zlib, which fails for compression; its maintainers left it
//! because nobody but the Autobahn suite asks for 8 (python-websockets/websockets#410).

use std::time::Duration;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The four bytes a sync flush ends with, removed by the sender and appended by the receiver.
pub(crate) const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Local choices about permessage-deflate: whether to offer or accept it, how hard to compress,
/// and what to ask of the peer. Part of [`Config`](crate::Config) as `config.deflate`.
///
/// Memory is the main cost. With the C zlib codec, measured with a counting allocator
/// (`deflate::tests::memory_per_codec`):
///
/// | state | bytes | when it exists |
/// |---|---|---|
/// | compressor, window bits `w`, memLevel `m` | 6 KiB + 4 · 2^`w` + 2^(`m`+9): defaults (12, 4) 30 KiB; (12, 5) 38 KiB; (15, 8) 262 KiB | from the first compressed message sent until the connection has been quiet for [`release_after`](DeflateConfig::release_after) (with context takeover), only while a message is compressed (without) |
/// | decompressor, window bits `w` | 7.1 KiB + 2^`w`: 11 bits 9.1 KiB; 15 bits 39 KiB | the same, for messages received; released with takeover it keeps a copy of its window (at most 2^`w` bytes) |
///
/// So with the defaults a browser connection (which offers `client_max_window_bits`) holds about
/// 39 KiB while messages flow, 2 KiB once quiet, and nothing with no context takeover both ways.
///
/// ```
/// use duplex_proto::deflate::DeflateConfig;
/// // A server that keeps no compressor between messages and asks clients to do the same.
/// let d = DeflateConfig::default().server_no_context_takeover(true).client_no_context_takeover(true);
/// assert_eq!(d.offer(), "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Offer (client) or accept (server) permessage-deflate. Default on: text protocols (JSON)
    /// typically shrink by 70-90 %, and a peer that does not support it simply does not agree.
    /// Built without the cargo feature `deflate` (no codec), the default is off and turning it
    /// on has no effect: the handshake neither offers nor accepts the extension.
    pub enabled: bool,
    /// The zlib compression level, 0-9. Default 1: on repetitive JSON it gets within a few percent
    /// of level 6's ratio at a fraction of its CPU time (see `docs/compression.md`), and on a
    /// server compression is paid for every message sent to every connection.
    pub level: u32,
    /// Messages smaller than this many bytes are sent uncompressed. Default 64: below that the
    /// 1-3 bytes of deflate framing and the per-call cost outweigh what a short message saves (a
    /// 20-byte message rarely compresses under 18 bytes), while messages from 64 bytes up already
    /// gain from the shared window when context takeover is on. 0 compresses everything.
    pub min_size: usize,
    /// The server's compression window, 2^n bytes, 8..=15. A server compresses with at most this
    /// (less if the client asks) and says so when it is below 15; a client with a value below 15
    /// asks the server for it (`server_max_window_bits=n`) and refuses an answer above it.
    /// Default 12: 16 KiB of compressor state instead of 128 KiB at 15, for 1-2 points of ratio on
    /// JSON streams (`docs/compression.md`).
    pub server_max_window_bits: u8,
    /// The client's compression window, 2^n bytes, 8..=15. A client compresses with at most this,
    /// and always offers `client_max_window_bits` (with `=n` when below 15) so the server may ask
    /// for less. A server below 15 asks clients that allow it for at most this; a client that
    /// does not allow it is still accepted (its window then is 15). Default 11: every browser offers
    /// `client_max_window_bits`, so a server's inflater keeps 2 KiB of history per connection
    /// rather than 32 KiB, and a quiet connection keeps just that.
    pub client_max_window_bits: u8,
    /// The server compresses each message on its own. A server with this on always answers
    /// `server_no_context_takeover`: it keeps no compressor between messages, and every compressed
    /// message it sends is independent of the connection, so one compressed frame can be sent to
    /// many connections (relay, fan-out). A client with it on asks the server for it, and refuses
    /// an answer without it. Default off (takeover compresses streams of similar messages far
    /// better).
    pub server_no_context_takeover: bool,
    /// The client compresses each message on its own. A client with this on offers it and resets
    /// its compressor after every message. A server with it on answers
    /// `client_no_context_takeover`, which lets it free its decompressor between messages. Default
    /// off.
    pub client_no_context_takeover: bool,
    /// zlib's memLevel for our compressor, 1..=9: its hash table has 2^(m+7) entries and its
    /// symbol buffer 2^(m+6), about 2^(m+9) bytes in all beside the window's 4 · 2^w. Default 4
    /// (8 KiB; zlib's own default 8 costs 128 KiB); `docs/compression.md` has what it costs in ratio.
    pub mem_level: u8,
    /// Free the codecs of a connection whose compressed traffic has been quiet this long, and
    /// build them again on its next compressed message: the compressor starts a fresh stream (the
    /// peer needs no notice), the inflater is primed back with a copy of its window (2^w bytes at
    /// most) when the peer takes over its context. The release comes between this and twice this
    /// after the last compressed message (the core reads no clock per message: it is told the
    /// time through [`Connection::handle_timeout`](crate::Connection::handle_timeout)). Default
    /// 2 s, so a connection quiet for 4 s holds no codec; `None` keeps them until the connection
    /// ends. A message every 2 s or faster never pays the rebuild (see `docs/compression.md`).
    pub release_after: Option<Duration>,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: AVAILABLE,
            level: 1,
            min_size: 64,
            server_max_window_bits: 12,
            client_max_window_bits: 11,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            mem_level: 4,
            release_after: Some(Duration::from_secs(2)),
        }
    }
}

/// The parameters of permessage-deflate in force on one connection, as agreed in the handshake
/// (and tightened by this end's own [`DeflateConfig`]). Plain data: both roles read the same
/// fields, each compressing with its own side's and inflating with the peer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's window: 2^n bytes, 8..=15.
    pub server_max_window_bits: u8,
    /// The client's window: 2^n bytes, 8..=15.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    /// What a bare `permessage-deflate` agrees: context takeover both ways, 32 KiB windows.
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

impl DeflateParams {
    /// These parameters as a `Sec-WebSocket-Extensions` value (windows of 15 are left out).
    ///
    /// ```
    /// use duplex_proto::deflate::DeflateParams;
    /// let p = DeflateParams { server_no_context_takeover: true, client_max_window_bits: 10, ..Default::default() };
    /// assert_eq!(p.header_value(), "permessage-deflate; server_no_context_takeover; client_max_window_bits=10");
    /// ```
    pub fn header_value(&self) -> String {
        let mut v = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            v.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            v.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            v.push_str(&format!("; server_max_window_bits={}", self.server_max_window_bits));
        }
        if self.client_max_window_bits < 15 {
            v.push_str(&format!("; client_max_window_bits={}", self.client_max_window_bits));
        }
        v
    }
}

impl DeflateConfig {
    /// Sets [`DeflateConfig::enabled`].
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Sets [`DeflateConfig::level`] (clamped to 0..=9).
    pub fn level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// Sets [`DeflateConfig::min_size`].
    pub fn min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }

    /// Sets [`DeflateConfig::server_max_window_bits`] (clamped to 8..=15).
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = bits.clamp(8, 15);
        self
    }

    /// Sets [`DeflateConfig::client_max_window_bits`] (clamped to 8..=15).
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = bits.clamp(8, 15);
        self
    }

    /// Sets [`DeflateConfig::mem_level`] (clamped to 1..=9).
    pub fn mem_level(mut self, level: u8) -> Self {
        self.mem_level = level.clamp(1, 9);
        self
    }

    /// Sets [`DeflateConfig::release_after`].
    pub fn release_after(mut self, quiet: Option<Duration>) -> Self {
        self.release_after = quiet;
        self
    }

    /// Sets [`DeflateConfig::server_no_context_takeover`].
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }

    /// Sets [`DeflateConfig::client_no_context_takeover`].
    pub fn client_no_context_takeover(mut self, on: bool) -> Self {
        self.client_no_context_takeover = on;
        self
    }

    /// The client's offer, a `Sec-WebSocket-Extensions` value.
    ///
    /// ```
    /// use duplex_proto::deflate::DeflateConfig;
    /// assert_eq!(DeflateConfig::default().offer(), "permessage-deflate; server_max_window_bits=12; client_max_window_bits=11");
    /// let wide = DeflateConfig::default().server_max_window_bits(15).client_max_window_bits(15);
    /// assert_eq!(wide.offer(), "permessage-deflate; client_max_window_bits");
    /// let small = DeflateConfig::default().server_max_window_bits(10).client_max_window_bits(9);
    /// assert_eq!(small.offer(), "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9");
    /// ```
    pub fn offer(&self) -> String {
        let mut v = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            v.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            v.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            v.push_str(&format!("; server_max_window_bits={}", self.server_max_window_bits));
        }
        // Always offered: it lets the server ask for a smaller client window, which costs us
        // nothing to honour (RFC 7692 §7.1.2.2).
        if self.client_max_window_bits < 15 {
            v.push_str(&format!("; client_max_window_bits={}", self.client_max_window_bits));
        } else {
            v.push_str("; client_max_window_bits");
        }
        v
    }

    /// Server: picks the first acceptable permessage-deflate offer among the values of the
    /// request's `Sec-WebSocket-Extensions` headers (in order), and returns the parameters in force
    /// and the value to answer with. `None`: no offer, every offer declined, or
    /// [`DeflateConfig::enabled`] off — then answer without the extension.
    ///
    /// RFC 7692 §5: an offer with an unknown parameter, a parameter given twice, or a value that is
    /// not allowed is declined, and the next one considered.
    ///
    /// ```
    /// # #[cfg(feature = "deflate")] {
    /// use duplex_proto::deflate::DeflateConfig;
    /// let offers = ["permessage-deflate; client_max_window_bits=16, permessage-deflate; server_max_window_bits=10"];
    /// let (params, answer) = DeflateConfig::default().negotiate(offers).unwrap();
    /// assert_eq!(answer, "permessage-deflate; server_max_window_bits=10");
    /// assert_eq!(params.server_max_window_bits, 10);
    /// # }
    /// ```
    pub fn negotiate<'a>(&self, header_values: impl IntoIterator<Item = &'a str>) -> Option<(DeflateParams, String)> {
        if !self.enabled || !AVAILABLE {
            return None;
        }
        header_values
            .into_iter()
            .flat_map(parse_extensions)
            .filter(|e| e.name.eq_ignore_ascii_case(EXTENSION_NAME))
            .find_map(|e| self.accept_offer(e.params.as_ref().ok()?))
    }

    /// Server: the answer to one offer, or `None` to decline it.
    fn accept_offer(&self, params: &[Param]) -> Option<(DeflateParams, String)> {
        let offer = Offered::parse(params, Side::Offer).ok()?;
        let server_no_context_takeover = offer.server_no_context_takeover || self.server_no_context_takeover;
        let client_no_context_takeover = offer.client_no_context_takeover || self.client_no_context_takeover;
        // RFC 7692 §7.1.2.1: answer server_max_window_bits, no larger than offered, if offered;
        // we may also name it unasked to announce a smaller window of our own.
        let server_bits = offer.server_max_window_bits.unwrap_or(15).min(self.server_max_window_bits);
        let name_server_bits = offer.server_max_window_bits.is_some() || server_bits < 15;
        // §7.1.2.2: client_max_window_bits may be answered only if offered. If offered with a
        // value, the client will not use more than that whatever we answer.
        let (client_bits, name_client_bits) = match offer.client_max_window_bits {
            None => (15, false),
            Some(v) => {
                let bits = v.unwrap_or(15).min(self.client_max_window_bits);
                (bits, bits < 15)
            }
        };
        let mut answer = String::from(EXTENSION_NAME);
        if server_no_context_takeover {
            answer.push_str("; server_no_context_takeover");
        }
        if client_no_context_takeover {
            answer.push_str("; client_no_context_takeover");
        }
        if name_server_bits {
            answer.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if name_client_bits {
            answer.push_str(&format!("; client_max_window_bits={client_bits}"));
        }
        let params = DeflateParams {
            server_no_context_takeover,
            client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        };
        Some((params, answer))
    }

    /// Client: checks the server's `Sec-WebSocket-Extensions` answer to [`DeflateConfig::offer`]
    /// and returns the parameters in force, `None` if the server did not accept the extension.
    ///
    /// The handshake fails (RFC 7692 §5, "the client MUST _Fail the WebSocket Connection_") if the
    /// answer names permessage-deflate more than once, or with a parameter that is unknown, given
    /// twice, has a bad value, or grants what was not offered: a client window where the offer had
    /// none, a larger server window than asked for, or no `server_no_context_takeover` /
    /// `server_max_window_bits` when the offer required them. A client window above the one
    /// offered is a ceiling the server may state (RFC 7692 §7.1.2.2): the client compresses with
    /// the smaller of the two, the window its offer promised.
    ///
    /// ```
    /// use duplex_proto::deflate::DeflateConfig;
    /// let config = DeflateConfig::default(); // asks for a server window of at most 12 bits
    /// let p = config.accept_response("permessage-deflate; server_max_window_bits=10; client_max_window_bits=10").unwrap().unwrap();
    /// assert_eq!((p.server_max_window_bits, p.client_max_window_bits), (10, 10));
    /// // A larger client window is a ceiling: we keep the 11 bits we offered.
    /// let p = config.accept_response("permessage-deflate; server_max_window_bits=12; client_max_window_bits=15").unwrap().unwrap();
    /// assert_eq!(p.client_max_window_bits, 11);
    /// assert!(config.accept_response("permessage-deflate").is_err()); // not granted
    /// assert!(config.accept_response("permessage-deflate; x=1").is_err());
    /// ```
    pub fn accept_response(&self, value: &str) -> Result<Option<DeflateParams>, BadResponse> {
        let bad = BadResponse;
        let mut found = None;
        for ext in parse_extensions(value) {
            if !ext.name.eq_ignore_ascii_case(EXTENSION_NAME) {
                continue;
            }
            if found.is_some() {
                return Err(bad("permessage-deflate accepted twice".into()));
            }
            let params = ext.params.map_err(|()| bad("malformed parameters".into()))?;
            found = Some(Offered::parse(&params, Side::Response).map_err(bad)?);
        }
        let Some(r) = found else { return Ok(None) };
        if self.server_no_context_takeover && !r.server_no_context_takeover {
            return Err(bad("server_no_context_takeover was required but not granted".into()));
        }
        let server_bits = match r.server_max_window_bits {
            Some(b) if b > self.server_max_window_bits => {
                return Err(bad(format!(
                    "server_max_window_bits={b}, above the {} offered",
                    self.server_max_window_bits
                )))
            }
            Some(b) => b,
            None if self.server_max_window_bits < 15 => {
                return Err(bad("server_max_window_bits was required but not granted".into()))
            }
            None => 15,
        };
        let client_bits = match r.client_max_window_bits {
            Some(None) => return Err(bad("client_max_window_bits without a value".into())),
            // A value above the one offered is the server ignoring our hint, which RFC 7692
            // §7.1.2.2 allows ("the server may either ignore this value or use this value"): its
            // answer is a ceiling, and our compressor keeps to the smaller window it promised
            // in the offer, which is within both. (Autobahn 13.4 and 13.6 answer 15 to any offer.)
            Some(Some(b)) => b.min(self.client_max_window_bits),
            None => self.client_max_window_bits,
        };
        Ok(Some(DeflateParams {
            server_no_context_takeover: r.server_no_context_takeover,
            // Offered: we reset whatever the server answered (§7.1.1.2 calls our offer a hint).
            client_no_context_takeover: r.client_no_context_takeover || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        }))
    }
}

/// A server's permessage-deflate answer the client must refuse (RFC 7692 §5), and why; the
/// handshake reports it as
/// [`HandshakeError::BadExtensionResponse`](crate::handshake::HandshakeError::BadExtensionResponse).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadResponse(pub String);

impl std::fmt::Display for BadResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad permessage-deflate answer: {}", self.0)
    }
}

impl std::error::Error for BadResponse {}

// ============================================================================ header parsing

/// One parameter: its name, and its value (unquoted) if it has one.
type Param = (String, Option<String>);

/// One element of a `Sec-WebSocket-Extensions` list. `params` is `Err` when the element's
/// parameters do not follow RFC 6455 §9.1's grammar.
#[derive(Debug)]
struct Extension {
    name: String,
    params: Result<Vec<Param>, ()>,
}

/// RFC 7230 `token` characters.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_tchar)
}

/// Splits `s` at `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1):
/// `1#( extension-token *( ";" token [ "=" ( token | quoted-string ) ] ) )`. Empty list elements are
/// skipped; elements whose name is not a token are dropped.
fn parse_extensions(value: &str) -> Vec<Extension> {
    let mut out = Vec::new();
    for element in split_unquoted(value, ',') {
        let mut parts = split_unquoted(element, ';').into_iter().map(str::trim);
        let name = parts.next().unwrap_or("");
        if name.is_empty() && element.trim().is_empty() {
            continue;
        }
        if !is_token(name) {
            continue;
        }
        let params = parts.map(parse_param).collect::<Result<Vec<_>, ()>>();
        out.push(Extension { name: name.to_owned(), params });
    }
    out
}

fn parse_param(p: &str) -> Result<Param, ()> {
    let (name, value) = match p.split_once('=') {
        None => (p, None),
        Some((n, v)) => (n.trim_end(), Some(v.trim_start())),
    };
    if !is_token(name) {
        return Err(());
    }
    let value = match value {
        None => None,
        Some(v) if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') => {
            let mut s = String::new();
            let mut chars = v[1..v.len() - 1].chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => s.push(chars.next().ok_or(())?),
                    '"' => return Err(()),
                    c => s.push(c),
                }
            }
            // RFC 6455 §9.1: once unescaped, a quoted value must still be a token.
            if !is_token(&s) {
                return Err(());
            }
            Some(s)
        }
        Some(v) if is_token(v) => Some(v.to_owned()),
        Some(_) => return Err(()),
    };
    Ok((name.to_ascii_lowercase(), value))
}

/// Whether a parameter list is an offer (client to server) or a response.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Offer,
    Response,
}

/// The four parameters of RFC 7692 §7.1, checked for duplicates and values.
#[derive(Debug, Default)]
struct Offered {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in offers only).
    client_max_window_bits: Option<Option<u8>>,
}

impl Offered {
    fn parse(params: &[Param], side: Side) -> Result<Offered, String> {
        let mut o = Offered::default();
        let mut seen = [false; 4];
        for (name, value) in params {
            let slot = match name.as_str() {
                "server_no_context_takeover" => 0,
                "client_no_context_takeover" => 1,
                "server_max_window_bits" => 2,
                "client_max_window_bits" => 3,
                _ => return Err(format!("unknown parameter {name}")),
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(format!("parameter {name} given twice"));
            }
            match slot {
                0 | 1 => {
                    // §7.1.1: these have no value.
                    if value.is_some() {
                        return Err(format!("{name} takes no value"));
                    }
                    if slot == 0 {
                        o.server_no_context_takeover = true;
                    } else {
                        o.client_no_context_takeover = true;
                    }
                }
                2 => {
                    // §7.1.2.1: a value is required.
                    let v = value.as_deref().ok_or_else(|| format!("{name} needs a value"))?;
                    o.server_max_window_bits = Some(window_bits(v).ok_or_else(|| format!("{name}={v}"))?);
                }
                _ => {
                    // §7.1.2.2: no value allowed in an offer only; checked by the caller for responses.
                    let bits = match value.as_deref() {
                        None if side == Side::Offer => None,
                        None => return Err(format!("{name} needs a value")),
                        Some(v) => Some(window_bits(v).ok_or_else(|| format!("{name}={v}"))?),
                    };
                    o.client_max_window_bits = Some(bits);
                }
            }
        }
        Ok(o)
    }
}

/// RFC 7692 §7.1.2: "a decimal integer value without leading zeroes between 8 to 15, inclusive".
fn window_bits(v: &str) -> Option<u8> {
    match v.as_bytes() {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

// ============================================================================ the codec

// The codec (C zlib) is behind the cargo feature `deflate`; without it the codec types have no
// values, so no connection holds permessage-deflate state and the handshake never negotiates it.
#[cfg(feature = "deflate")]
mod codec;
#[cfg(not(feature = "deflate"))]
#[path = "deflate/no_codec.rs"]
mod codec;

pub(crate) use codec::*;

// Negotiation without the codec never accepts (see `AVAILABLE`), so these need the feature too.
#[cfg(all(test, feature = "deflate"))]
#[path = "deflate_tests.rs"]
mod tests;

#[cfg(all(test, feature = "deflate"))]
#[path = "deflate/release_tests.rs"]
mod release_tests;
