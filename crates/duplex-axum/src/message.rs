//! Messages in axum's shapes ([`Message`], [`Utf8Bytes`], [`CloseFrame`], [`close_code`]), and
//! their conversions to and from duplex's without copying a payload.

use std::fmt;

use bytes::Bytes;

/// A close status code (RFC 6455 §7.4), as a number: axum's alias.
pub type CloseCode = u16;

/// Text that is valid UTF-8, in shared bytes: cloning it does not copy.
///
/// Received text becomes one without a copy (duplex hands over a `String`, which becomes the
/// bytes), and sent text goes back to duplex the same way.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Text from a string literal, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor takes a `str` or `String`, or checks the bytes (TryFrom), and
        // the bytes are never changed afterwards.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The text as a `String`: no copy when these bytes are the only handle to a `String`'s
    /// buffer (received text, or text made from a `String`).
    pub fn into_string(self) -> String {
        let bytes = Vec::from(self.0);
        // SAFETY: as in `as_str`, the bytes are valid UTF-8.
        unsafe { String::from_utf8_unchecked(bytes) }
    }
}

impl std::ops::Deref for Utf8Bytes {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Utf8Bytes(Bytes::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<&String> for Utf8Bytes {
    fn from(s: &String) -> Self {
        s.as_str().into()
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(u: Utf8Bytes) -> Bytes {
        u.0
    }
}

impl From<Utf8Bytes> for String {
    fn from(u: Utf8Bytes) -> String {
        u.into_string()
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = simdutf8::basic::Utf8Error;

    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        simdutf8::basic::from_utf8(&bytes)?;
        Ok(Utf8Bytes(bytes))
    }
}

impl TryFrom<Vec<u8>> for Utf8Bytes {
    type Error = simdutf8::basic::Utf8Error;

    fn try_from(v: Vec<u8>) -> Result<Self, Self::Error> {
        Bytes::from(v).try_into()
    }
}

impl<T: AsRef<str> + ?Sized> PartialEq<T> for Utf8Bytes {
    fn eq(&self, other: &T) -> bool {
        self.as_str() == other.as_ref()
    }
}

/// A close frame's code and reason.
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason (at most 123 bytes are sent).
    pub reason: Utf8Bytes,
}

impl From<CloseFrame> for duplex::CloseFrame {
    fn from(f: CloseFrame) -> Self {
        duplex::CloseFrame::new(f.code, f.reason.into_string())
    }
}

impl From<duplex::CloseFrame> for CloseFrame {
    fn from(f: duplex::CloseFrame) -> Self {
        CloseFrame { code: f.code.0, reason: f.reason.into() }
    }
}

/// A WebSocket message, as axum names them.
#[derive(Debug, Eq, PartialEq, Clone)]
pub enum Message {
    /// A text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping. Received pings are answered by the socket already; sending one asks the peer for
    /// a pong (at most 125 bytes).
    Ping(Bytes),
    /// A pong: the answer to a ping, or a one-way heartbeat.
    Pong(Bytes),
    /// The peer's close frame (`None` without a code) when received; sent, it starts the close
    /// handshake. After it, `recv` returns `None` once the connection is closed.
    Close(Option<CloseFrame>),
}

impl Message {
    /// The payload's bytes (a close frame's reason).
    pub fn into_data(self) -> Bytes {
        match self {
            Message::Text(t) => t.into(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b,
            Message::Close(Some(f)) => f.reason.into(),
            Message::Close(None) => Bytes::new(),
        }
    }

    /// The payload as text, checked if it is not a text message.
    pub fn into_text(self) -> Result<Utf8Bytes, axum::Error> {
        match self {
            Message::Text(t) => Ok(t),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => {
                Utf8Bytes::try_from(b).map_err(axum::Error::new)
            }
            Message::Close(Some(f)) => Ok(f.reason),
            Message::Close(None) => Ok(Utf8Bytes::default()),
        }
    }

    /// The payload as `&str`, checked if it is not a text message.
    pub fn to_text(&self) -> Result<&str, axum::Error> {
        match self {
            Message::Text(t) => Ok(t.as_str()),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => {
                simdutf8::basic::from_utf8(b).map_err(axum::Error::new)
            }
            Message::Close(Some(f)) => Ok(f.reason.as_str()),
            Message::Close(None) => Ok(""),
        }
    }

    /// A text message.
    pub fn text<S: Into<Utf8Bytes>>(string: S) -> Message {
        Message::Text(string.into())
    }

    /// A binary message.
    pub fn binary<B: Into<Bytes>>(bin: B) -> Message {
        Message::Binary(bin.into())
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s.into())
    }
}

impl<'s> From<&'s str> for Message {
    fn from(s: &'s str) -> Self {
        Message::Text(s.into())
    }
}

impl<'b> From<&'b [u8]> for Message {
    fn from(b: &'b [u8]) -> Self {
        Message::Binary(Bytes::copy_from_slice(b))
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b.into())
    }
}

impl From<Message> for Vec<u8> {
    fn from(m: Message) -> Self {
        m.into_data().into()
    }
}

/// A data message from duplex, without copying its payload.
impl From<duplex::Message> for Message {
    fn from(m: duplex::Message) -> Self {
        match m {
            duplex::Message::Text(s) => Message::Text(s.into()),
            duplex::Message::Binary(b) => Message::Binary(b),
        }
    }
}

/// A data message for duplex, without copying its payload; `Err` gives back a control message.
impl TryFrom<Message> for duplex::Message {
    type Error = Message;

    fn try_from(m: Message) -> Result<Self, Message> {
        match m {
            Message::Text(t) => Ok(duplex::Message::Text(t.into_string())),
            Message::Binary(b) => Ok(duplex::Message::Binary(b)),
            other => Err(other),
        }
    }
}

/// Close codes by their axum names (RFC 6455 §7.4.1; 1012 and 1013 from IANA's registry).
pub mod close_code {
    /// Normal closure: the purpose of the connection is fulfilled.
    pub const NORMAL: u16 = 1000;
    /// Going away: a server shutting down, a browser leaving the page.
    pub const AWAY: u16 = 1001;
    /// A protocol error.
    pub const PROTOCOL: u16 = 1002;
    /// A kind of data this end cannot accept (binary to a text-only endpoint).
    pub const UNSUPPORTED: u16 = 1003;
    /// No status code was in the close frame (never sent).
    pub const STATUS: u16 = 1005;
    /// The connection ended without a close frame (never sent).
    pub const ABNORMAL: u16 = 1006;
    /// Data not consistent with the message's type (invalid UTF-8 in text).
    pub const INVALID: u16 = 1007;
    /// A message that violates this end's policy.
    pub const POLICY: u16 = 1008;
    /// A message too big to process.
    pub const SIZE: u16 = 1009;
    /// The client expected an extension the server did not agree.
    pub const EXTENSION: u16 = 1010;
    /// An unexpected condition on the server.
    pub const ERROR: u16 = 1011;
    /// The server is restarting.
    pub const RESTART: u16 = 1012;
    /// Try again later (overload).
    pub const AGAIN: u16 = 1013;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_crosses_to_duplex_and_back_without_a_copy() {
        let s = String::from("hello, world");
        let ptr = s.as_ptr();
        let m = Message::from(duplex::Message::Text(s));
        let Message::Text(t) = &m else { panic!("text") };
        assert_eq!(t.as_ptr(), ptr, "received text keeps its buffer");
        let back = duplex::Message::try_from(m).unwrap();
        assert_eq!(back.as_text().map(str::as_ptr), Some(ptr), "sent text keeps its buffer");
    }

    #[test]
    fn binary_payloads_are_shared() {
        let b = Bytes::from(vec![1u8, 2, 3]);
        let m = Message::from(duplex::Message::Binary(b.clone()));
        assert_eq!(m.clone().into_data().as_ptr(), b.as_ptr());
        assert_eq!(duplex::Message::try_from(m).unwrap().as_bytes().as_ptr(), b.as_ptr());
    }

    #[test]
    fn text_checks_and_conversions() {
        assert!(Utf8Bytes::try_from(vec![0xff, 0xfe]).is_err());
        assert_eq!(Utf8Bytes::try_from(b"ok".to_vec()).unwrap(), "ok");
        assert_eq!(Message::binary(&b"abc"[..]).to_text().unwrap(), "abc");
        assert!(Message::Binary(Bytes::from_static(&[0xc3])).into_text().is_err());
        assert_eq!(Message::text("t").into_text().unwrap().as_str(), "t");
        let frame = CloseFrame { code: close_code::AWAY, reason: "bye".into() };
        assert_eq!(CloseFrame::from(duplex::CloseFrame::from(frame.clone())), frame);
        assert!(duplex::Message::try_from(Message::Ping(Bytes::new())).is_err());
    }
}
