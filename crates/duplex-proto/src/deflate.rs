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
//! The codec is flate2 on the zlib-rs backend (pure Rust). Its raw deflate cannot compress with an
//! 8-bit window (zlib has the same limit: `deflateInit2` refuses `windowBits = -8` since 1.2.9,
//! madler/zlib#171). When 8 bits are negotiated for our compressor we compress with a 9-bit window,
//! as Node's zlib (and so `ws`) does: zlib-style deflate never emits a distance larger than the
//! window minus 262 bytes (`MIN_LOOKAHEAD`), so a 512-byte window produces distances of at most 250,
//! within the 256 bytes the peer promised to keep. For decompression a larger window than the
//! peer's is always safe, so 8 negotiated for the peer is inflated with 9 (flate2 accepts 9..=15).
//! python-websockets passes 8 straight to zlib, which fails for compression; its maintainers left it
//! because nobody but the Autobahn suite asks for 8 (python-websockets/websockets#410).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::handshake::HandshakeError;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The four bytes a sync flush ends with, removed by the sender and appended by the receiver.
pub(crate) const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Local choices about permessage-deflate: whether to offer or accept it, how hard to compress,
/// and what to ask of the peer. Part of [`Config`](crate::Config) as `config.deflate`.
///
/// Memory is the main cost. With the zlib-rs codec, measured with a counting allocator
/// (`deflate::tests::memory_per_codec`):
///
/// | state | bytes | when it exists |
/// |---|---|---|
/// | compressor, window bits `w` | 243 KiB + 4 · 2^`w` (w = 15: 371 KiB; w = 12: 259 KiB; w = 9: 245 KiB) | from the first compressed message sent; then for the whole connection with context takeover, only while a message is compressed without |
/// | decompressor, any window | 46 KiB (zlib-rs always allocates a 32 KiB window) | from the first compressed message received; then for the whole connection with context takeover, only while a message is inflated without |
///
/// The compressor's fixed part is zlib-rs' 64 Ki-entry hash table (128 KiB, whatever the
/// memLevel) and its literal buffers at memLevel 8 (112 KiB), which flate2 does not let us lower; the window bits only
/// scale the `4 · 2^w` part. (zlib proper: deflate ≈ `(1 << (w + 2)) + (1 << (memLevel + 9))`,
/// 256 KiB at 15/8; inflate ≈ `(1 << w) + 7 KiB`.) So the lever that matters for many idle
/// connections is **no context takeover**: without it a connection that has compressed once keeps
/// its compressor (and its decompressor) until it closes; with it, both are allocated per message
/// and freed at once, and an idle connection holds neither.
///
/// ```
/// use duplex_proto::deflate::DeflateConfig;
/// // A server that keeps no compressor between messages and asks clients to do the same.
/// let d = DeflateConfig::default().server_no_context_takeover(true).client_no_context_takeover(true);
/// assert_eq!(d.offer(), "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Offer (client) or accept (server) permessage-deflate. Default on: text protocols (JSON)
    /// typically shrink by 70-90 %, and a peer that does not support it simply does not agree.
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
    /// Default 15. Each step down saves 4 · 2^n bytes of compressor state (see the table).
    pub server_max_window_bits: u8,
    /// The client's compression window, 2^n bytes, 8..=15. A client compresses with at most this,
    /// and always offers `client_max_window_bits` (with `=n` when below 15) so the server may ask
    /// for less. A server below 15 asks clients that allow it for at most this; a client that
    /// does not allow it is still accepted (its window then is 15: with zlib-rs our decompressor
    /// costs the same for any window). Default 15.
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
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            level: 1,
            min_size: 64,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
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
    /// Whether a frame from [`encode_compressed_server_frame`](crate::encode_compressed_server_frame)
    /// made with a `window_bits` window may be sent on this connection: the server compresses
    /// every message on its own (`server_no_context_takeover`) and its window is no smaller (8
    /// counts as 9, see the [module docs](self)).
    pub fn shares_server_frames(&self, window_bits: u8) -> bool {
        self.server_no_context_takeover
            && codec_window_bits(self.server_max_window_bits) >= codec_window_bits(window_bits)
    }

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
    /// assert_eq!(DeflateConfig::default().offer(), "permessage-deflate; client_max_window_bits");
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
    /// use duplex_proto::deflate::DeflateConfig;
    /// let offers = ["permessage-deflate; client_max_window_bits=16, permessage-deflate; server_max_window_bits=10"];
    /// let (params, answer) = DeflateConfig::default().negotiate(offers).unwrap();
    /// assert_eq!(answer, "permessage-deflate; server_max_window_bits=10");
    /// assert_eq!(params.server_max_window_bits, 10);
    /// ```
    pub fn negotiate<'a>(&self, header_values: impl IntoIterator<Item = &'a str>) -> Option<(DeflateParams, String)> {
        if !self.enabled {
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
    /// none, a larger window than asked for, or no `server_no_context_takeover` /
    /// `server_max_window_bits` when the offer required them.
    ///
    /// ```
    /// use duplex_proto::deflate::DeflateConfig;
    /// let config = DeflateConfig::default();
    /// let p = config.accept_response("permessage-deflate; client_max_window_bits=10").unwrap().unwrap();
    /// assert_eq!(p.client_max_window_bits, 10);
    /// assert!(config.accept_response("permessage-deflate; x=1").is_err());
    /// ```
    pub fn accept_response(&self, value: &str) -> Result<Option<DeflateParams>, HandshakeError> {
        let bad = |why: String| HandshakeError::BadExtensionResponse(why);
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
            Some(Some(b)) if b > self.client_max_window_bits => {
                return Err(bad(format!(
                    "client_max_window_bits={b}, above the {} offered",
                    self.client_max_window_bits
                )))
            }
            Some(Some(b)) => b,
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

/// The window zlib-rs can use for `negotiated` bits: 8 is not supported by raw deflate and is
/// served by 9 (see the [module docs](self)).
fn codec_window_bits(negotiated: u8) -> u8 {
    negotiated.clamp(9, 15)
}

/// The compressor of one direction: allocated on the first compressed message, dropped after
/// each message when no context takeover applies.
#[derive(Debug)]
pub(crate) struct Compressor {
    level: u32,
    window_bits: u8,
    no_context_takeover: bool,
    /// Boxed so that a connection that negotiated deflate but never used it stays small.
    z: Option<Box<Compress>>,
}

impl Compressor {
    pub(crate) fn new(level: u32, negotiated_bits: u8, no_context_takeover: bool) -> Self {
        Compressor {
            level: level.min(9),
            window_bits: codec_window_bits(negotiated_bits),
            no_context_takeover,
            z: None,
        }
    }

    /// Whether the zlib state is allocated.
    pub(crate) fn is_allocated(&self) -> bool {
        self.z.is_some()
    }

    pub(crate) fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// Compresses `input` (a whole message, or one fragment of one) and appends the result to
    /// `out`, ending with a sync flush so the peer can inflate all of it. `end` marks the end of
    /// the message: its trailing `00 00 ff ff` is removed (RFC 7692 §7.2.1) and, without context
    /// takeover, the compressor freed.
    pub(crate) fn compress(&mut self, mut input: &[u8], out: &mut Vec<u8>, end: bool) {
        let (level, bits) = (self.level, self.window_bits);
        let z = self
            .z
            .get_or_insert_with(|| Box::new(Compress::new_with_window_bits(Compression::new(level), false, bits)));
        let start = out.len();
        out.reserve(input.len() / 4 + 64);
        loop {
            let before = z.total_in();
            // Errors are for a corrupt stream state or bad arguments, neither of which a caller
            // (let alone the peer) can cause.
            z.compress_vec(input, out, FlushCompress::Sync).expect("deflate of an in-memory buffer");
            input = &input[(z.total_in() - before) as usize..];
            // Done when all input is taken and the flush did not fill the buffer (zlib's rule).
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if end {
            if out.ends_with(&TRAILER) {
                out.truncate(out.len() - TRAILER.len());
            } else if out.len() == start {
                // Nothing since the last sync flush (an empty last fragment, or an empty message
                // after another): send the first byte of an empty stored block, which the peer's
                // appended trailer completes (RFC 7692 §7.2.3.6). An empty payload would leave the
                // peer's inflater inside a stored block of 0xff00 bytes (found by fuzzing).
                out.push(0x00);
            }
            if self.no_context_takeover {
                self.z = None;
            }
        }
    }
}

/// What one call of [`Decompressor::inflate`] did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inflated {
    /// Input bytes consumed.
    pub consumed: usize,
    /// It stopped because `out` reached its cap; more output may be pending.
    pub full: bool,
}

/// The decompressor of the peer's messages: allocated on the first compressed message received,
/// dropped after each message when the peer does not take over its context.
#[derive(Debug)]
pub(crate) struct Decompressor {
    window_bits: u8,
    no_context_takeover: bool,
    z: Option<Box<Decompress>>,
    /// The peer ended the DEFLATE stream (a block with BFINAL set): the rest of the message,
    /// including the appended trailer, is ignored (RFC 7692 §7.2.3.4 allows BFINAL).
    ended: bool,
}

impl Decompressor {
    pub(crate) fn new(negotiated_bits: u8, no_context_takeover: bool) -> Self {
        Decompressor { window_bits: codec_window_bits(negotiated_bits), no_context_takeover, z: None, ended: false }
    }

    /// Whether the zlib state is allocated.
    pub(crate) fn is_allocated(&self) -> bool {
        self.z.is_some()
    }

    /// Inflates `input` into `out` without letting `out` grow past `cap` bytes: the buffer grows
    /// with the output actually produced, never by what the input claims, so a decompression bomb
    /// costs at most `cap` bytes. Returns when the input is used up (and nothing is pending), or
    /// when `out` holds `cap` bytes.
    pub(crate) fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>, cap: usize) -> Result<Inflated, String> {
        let bits = self.window_bits;
        let z = self.z.get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, bits)));
        let mut consumed = 0;
        loop {
            if self.ended {
                return Ok(Inflated { consumed: consumed + input.len(), full: false });
            }
            if out.len() >= cap {
                return Ok(Inflated { consumed, full: true });
            }
            if out.len() == out.capacity() {
                // Grow with what is produced: double, at least 1 KiB, never past the cap (and
                // straight to the cap rather than leave a sliver that would cost another copy).
                let left = cap - out.len();
                let grow = out.len().max(input.len()).max(1024);
                out.reserve_exact(if left - grow.min(left) < grow { left } else { grow });
            }
            let room = (out.capacity() - out.len()).min(cap - out.len());
            let (in0, out0) = (z.total_in(), z.total_out());
            let spare = &mut out.spare_capacity_mut()[..room];
            let status = z.decompress_uninit(input, spare, FlushDecompress::None);
            let used = (z.total_in() - in0) as usize;
            let written = (z.total_out() - out0) as usize;
            debug_assert!(written <= room);
            // SAFETY: zlib-rs initialised exactly the `written` bytes it reports through
            // `total_out` at the front of `spare`, the uninitialised tail of `out`'s buffer.
            unsafe { out.set_len(out.len() + written) };
            input = &input[used..];
            consumed += used;
            match status {
                Err(e) => return Err(e.to_string()),
                Ok(Status::StreamEnd) => self.ended = true,
                Ok(Status::Ok | Status::BufError) => {
                    if written < room && input.is_empty() {
                        return Ok(Inflated { consumed, full: false });
                    }
                    if used == 0 && written == 0 {
                        return Err("inflate made no progress".into());
                    }
                }
            }
        }
    }

    /// The message is complete: forget a stream end, and free the state if the peer does not
    /// take over its context (or ended its stream, which leaves no context to take over).
    pub(crate) fn end_message(&mut self) {
        if self.no_context_takeover || self.ended {
            self.z = None;
        }
        self.ended = false;
    }
}

/// Approximate heap bytes of a zlib-rs compressor with a `bits` window (measured; see
/// [`DeflateConfig`]).
pub(crate) fn compressor_heap_size(bits: u8) -> usize {
    249_104 + (4 << bits)
}

/// Approximate heap bytes of a zlib-rs decompressor (any window: it always keeps 32 KiB).
pub(crate) const DECOMPRESSOR_HEAP_SIZE: usize = 47_704;

#[cfg(test)]
#[path = "deflate_tests.rs"]
mod tests;
