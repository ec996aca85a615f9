//! Messages as the application sees them.

use bytes::Bytes;

/// A complete data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message, validated as UTF-8.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(s) => s.len(),
            Message::Binary(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The kind of message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
        }
    }

    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(s) => Some(s),
            Message::Binary(_) => None,
        }
    }

    /// The payload as `Bytes`, without a copy.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Message::Text(s) => Bytes::from(s.into_bytes()),
            Message::Binary(b) => b,
        }
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.to_owned())
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(Bytes::from(b))
    }
}

/// Text or binary: the type of a data message, fixed by its first frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Opcode 0x1.
    Text,
    /// Opcode 0x2.
    Binary,
}

/// A piece of a message delivered as its bytes arrive ([`Config::streaming`](crate::Config::streaming)).
///
/// Pieces follow the order of the bytes on the wire; they are not aligned with frames. A text
/// message's pieces are validated as UTF-8 as a whole, but one piece may end inside a character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Text or binary, as the message's first frame said.
    pub kind: MessageKind,
    /// The bytes of this piece (possibly empty, for an empty message or final frame).
    pub data: Bytes,
    /// This is the first piece of its message.
    pub first: bool,
    /// This is the last piece of its message.
    pub last: bool,
}
