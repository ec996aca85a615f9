//! Close codes and close frames (RFC 6455 §5.5.1, §7.4).

use std::fmt;

/// A close status code (RFC 6455 §7.4).
///
/// The named constants are the codes the RFC defines; applications may use 3000-4999.
///
/// ```
/// use duplex_proto::CloseCode;
/// assert!(CloseCode::NORMAL.is_sendable());
/// assert!(!CloseCode::NO_STATUS.is_sendable()); // 1005 never goes on the wire
/// assert!(CloseCode(4000).is_sendable());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigated away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with the message type, such as invalid UTF-8 in a text message.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message that violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (IANA registry), for example when overloaded.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway received an invalid response (IANA registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: the TLS handshake failed (never sent on the wire).
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether an endpoint may put this code in a close frame (RFC 6455 §7.4.1-§7.4.2 and the IANA
    /// registry): 1000-1003, 1007-1014 and 3000-4999. 1004-1006 and 1015 are reserved or
    /// local-only; 0-999 and 1016-2999 are not in use.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self.0 {
            1000 => "normal",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status",
            1006 => "abnormal closure",
            1007 => "invalid payload",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake",
            3000..=3999 => "registered",
            4000..=4999 => "private",
            _ => "unknown",
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u16> for CloseCode {
    fn from(v: u16) -> Self {
        CloseCode(v)
    }
}

/// What a close frame said: a code and a UTF-8 reason of at most 123 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, possibly empty.
    pub reason: String,
}

impl CloseFrame {
    /// A close frame with a code and reason.
    ///
    /// ```
    /// use duplex_proto::{CloseCode, CloseFrame};
    /// let frame = CloseFrame::new(1000, "done");
    /// assert_eq!(frame.code, CloseCode::NORMAL);
    /// assert_eq!(frame.to_string(), "1000 done");
    /// ```
    pub fn new(code: impl Into<CloseCode>, reason: impl Into<String>) -> Self {
        CloseFrame { code: code.into(), reason: reason.into() }
    }
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {}", self.code, self.reason)
        }
    }
}

/// Which end of a connection did something: this one, or the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// This end.
    Local,
    /// The peer.
    Remote,
}

/// How the close handshake went, in one shape wherever it is asked for: the close frame that
/// started it (`None` if that frame carried no status code, which a browser reports as 1005) and
/// which end sent it.
///
/// ```
/// use duplex_proto::{CloseCode, CloseFrame, CloseInfo, Side};
/// let info = CloseInfo { frame: Some(CloseFrame::new(CloseCode::NORMAL, "bye")), initiator: Side::Remote };
/// assert_eq!(info.code(), CloseCode::NORMAL);
/// assert_eq!(info.to_string(), "1000 bye (by the peer)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseInfo {
    /// The first close frame of the handshake; `None` if it had no status code.
    pub frame: Option<CloseFrame>,
    /// Which end sent it.
    pub initiator: Side,
}

impl CloseInfo {
    /// The status code of the frame that started the close handshake, 1005
    /// ([`CloseCode::NO_STATUS`]) if it had none.
    pub fn code(&self) -> CloseCode {
        self.frame.as_ref().map_or(CloseCode::NO_STATUS, |f| f.code)
    }

    /// Its reason, empty if none.
    pub fn reason(&self) -> &str {
        self.frame.as_ref().map_or("", |f| f.reason.as_str())
    }
}

impl fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.frame {
            Some(frame) => write!(f, "{frame}")?,
            None => write!(f, "{} (no status code)", CloseCode::NO_STATUS)?,
        }
        f.write_str(match self.initiator {
            Side::Local => " (by us)",
            Side::Remote => " (by the peer)",
        })
    }
}

/// The largest close reason: a control frame carries 125 bytes, 2 of which are the code.
pub const MAX_REASON_LEN: usize = 123;

/// Why a received close frame's payload is invalid (both map to 1002 or 1007).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClosePayloadError {
    /// One byte, or a code that may not be sent: 1002.
    BadCode,
    /// A reason that is not UTF-8: 1007.
    BadReason,
}

/// Parses a received close payload (RFC 6455 §5.5.1). `Ok(None)` for an empty payload (status 1005).
pub(crate) fn parse_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ClosePayloadError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ClosePayloadError::BadCode),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_sendable() {
                return Err(ClosePayloadError::BadCode);
            }
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| ClosePayloadError::BadReason)?;
            Ok(Some(CloseFrame { code, reason: reason.to_owned() }))
        }
    }
}

/// Truncates a reason to at most [`MAX_REASON_LEN`] bytes at a character boundary.
pub(crate) fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes_follow_the_rfc() {
        let ok = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999];
        let bad = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];
        assert!(ok.iter().all(|&c| CloseCode(c).is_sendable()));
        assert!(bad.iter().all(|&c| !CloseCode(c).is_sendable()));
    }

    #[test]
    fn parses_payloads() {
        assert_eq!(parse_payload(&[]), Ok(None));
        assert_eq!(parse_payload(&[3]), Err(ClosePayloadError::BadCode));
        assert_eq!(parse_payload(&[0x03, 0xed]), Err(ClosePayloadError::BadCode)); // 1005
        assert_eq!(parse_payload(&[0x03, 0xe8, 0xff]), Err(ClosePayloadError::BadReason));
        assert_eq!(parse_payload(&[0x03, 0xe8, b'o', b'k']), Ok(Some(CloseFrame::new(1000, "ok"))));
    }

    #[test]
    fn truncates_at_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let t = truncate_reason(&long);
        assert!(t.len() <= MAX_REASON_LEN && t.len() == 122);
    }
}
