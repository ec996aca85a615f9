//! Why a connection ended or an attempt failed ([`Cause`]), and whether to try again
//! ([`Verdict`]): the default rules, and `Retry-After`.

use std::fmt;
use std::time::{Duration, SystemTime};

use duplex_proto::handshake::Refusal;
use duplex_proto::{CloseCode, CloseFrame};

use crate::error::Error;
use crate::proxy::ProxyErrorKind;
use crate::tls::TlsErrorKind;

/// Why the last connection ended, or the last attempt failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Cause {
    /// Connecting failed: TCP, the proxy, TLS, the opening handshake, or a refusal
    /// ([`Error::Refused`] carries the status, headers and body).
    Connect(Error),
    /// The server closed the connection with this close frame (`None`: without a status code,
    /// 1005).
    Closed(Option<CloseFrame>),
    /// The open connection failed: I/O error, closed without a close frame (1006), a protocol
    /// error of the peer, a timeout.
    Lost(Error),
    /// This end closed it ([`ReconnectingSocket::close`](super::ReconnectingSocket::close)).
    LocalClose,
}

impl Cause {
    /// The close code that describes it, as a browser's `CloseEvent.code` would (`None` for a
    /// failed attempt, which never opened).
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Cause::Connect(_) => None,
            Cause::Closed(Some(f)) => Some(f.code),
            Cause::Closed(None) => Some(CloseCode::NO_STATUS),
            Cause::Lost(e) => Some(e.close_code()),
            Cause::LocalClose => Some(CloseCode::NORMAL),
        }
    }

    /// The refusal, when the server (or an HTTP proxy) refused the upgrade.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Cause::Connect(Error::Refused(r)) => Some(r),
            Cause::Connect(Error::Proxy(p)) => p.refusal(),
            _ => None,
        }
    }

    /// How long the server asked us to wait: its `Retry-After` (RFC 9110 §10.2.3, seconds or an
    /// HTTP date) on a 429 or 503 refusal.
    pub fn retry_after(&self) -> Option<Duration> {
        let r = self.refusal().filter(|r| r.status == 429 || r.status == 503)?;
        parse_retry_after(r.headers.get("retry-after")?, SystemTime::now())
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Connect(e) => write!(f, "{e}"),
            Cause::Closed(Some(frame)) => write!(f, "the server closed the connection {frame}"),
            Cause::Closed(None) => f.write_str("the server closed the connection without a status code (1005)"),
            Cause::Lost(e) => write!(f, "connection lost: {e}"),
            Cause::LocalClose => f.write_str("closed by this end"),
        }
    }
}

/// `Retry-After`: delay-seconds or an HTTP date, as a delay from `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What a classifier decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Wait (the backoff, or `Retry-After`) and connect again.
    Retry,
    /// Give up: the [`Event::Stopped`](super::Event::Stopped) event, then the end.
    Stop,
}

/// The default classifier. Retries what time can fix; stops on what it cannot.
///
/// | cause | verdict |
/// |---|---|
/// | I/O errors, timeouts, a connection lost without a close frame (1006) | retry |
/// | refused with 5xx, 429 (after `Retry-After` if given), 408 | retry |
/// | refused with any other status (401, 403, 404, ...) | stop |
/// | close codes 1001, 1005 (none), 1006, 1011, 1012, 1013, 1014 | retry |
/// | close codes 1000, 1002, 1003, 1007, 1008, 1009, 1010, 1015, and application codes 3000-4999 | stop |
/// | this end closed it | stop |
/// | TLS: certificate errors, not TLS, refused by the peer | stop; a handshake cut short: retry |
/// | proxy: unreachable, 5xx/429, transient SOCKS replies (host or network unreachable, connection refused) | retry |
/// | proxy: 407 and other 4xx, SOCKS rules and credentials, bad URLs | stop |
/// | a bad handshake answer, a protocol error, a bad URL | stop |
pub fn default_classifier(cause: &Cause) -> Verdict {
    use Verdict::{Retry, Stop};
    match cause {
        Cause::LocalClose => Stop,
        Cause::Closed(None) => Retry,
        Cause::Closed(Some(f)) => match f.code.0 {
            1001 | 1006 | 1011 | 1012 | 1013 | 1014 => Retry,
            _ => Stop,
        },
        Cause::Connect(e) | Cause::Lost(e) => classify_error(e),
    }
}

fn classify_error(e: &Error) -> Verdict {
    use Verdict::{Retry, Stop};
    let status = |s: u16| if s >= 500 || s == 429 || s == 408 { Retry } else { Stop };
    let tls = |k: TlsErrorKind| if k == TlsErrorKind::Handshake { Retry } else { Stop };
    match e {
        Error::Io(_) | Error::Timeout(_) | Error::AbnormalClosure | Error::Closed => Retry,
        Error::Refused(r) => status(r.status),
        Error::Tls(t) => tls(t.kind()),
        Error::Proxy(p) => match p.kind() {
            ProxyErrorKind::Unreachable => Retry,
            ProxyErrorKind::Refused(r) => status(r.status),
            ProxyErrorKind::Socks(reply) => {
                if reply.is_transient() {
                    Retry
                } else {
                    Stop
                }
            }
            ProxyErrorKind::Tls(k) => tls(*k),
            _ => Stop,
        },
        Error::Protocol(p) => match p.code().0 {
            1001 | 1006 | 1011 | 1012 | 1013 | 1014 => Retry,
            _ => Stop,
        },
        _ => Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, headers: &[(&str, &str)]) -> Cause {
        let h: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        Cause::Connect(Error::Refused(Box::new(Refusal::new(status, &h, b""))))
    }

    #[test]
    fn default_rules() {
        use Verdict::{Retry, Stop};
        let io = || Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(default_classifier(&Cause::Connect(io())), Retry);
        assert_eq!(default_classifier(&Cause::Lost(Error::AbnormalClosure)), Retry);
        assert_eq!(default_classifier(&Cause::Connect(Error::Timeout(crate::error::TimeoutKind::Connect))), Retry);
        for s in [500, 502, 503, 429] {
            assert_eq!(default_classifier(&refused(s, &[])), Retry, "{s}");
        }
        for s in [400, 401, 403, 404, 426] {
            assert_eq!(default_classifier(&refused(s, &[])), Stop, "{s}");
        }
        let closed = |code: u16| Cause::Closed(Some(CloseFrame::new(CloseCode::from(code), "")));
        for c in [1001, 1006, 1011, 1012, 1013] {
            assert_eq!(default_classifier(&closed(c)), Retry, "{c}");
        }
        for c in [1000, 1002, 1003, 1007, 1008, 1009, 1010, 4000] {
            assert_eq!(default_classifier(&closed(c)), Stop, "{c}");
        }
        assert_eq!(default_classifier(&Cause::LocalClose), Stop);
        let cert = crate::TlsError::new(TlsErrorKind::UnknownIssuer, "x");
        assert_eq!(default_classifier(&Cause::Connect(Error::Tls(cert))), Stop);
    }

    #[test]
    fn retry_after() {
        assert_eq!(refused(429, &[("Retry-After", "2")]).retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(refused(503, &[("retry-after", " 120 ")]).retry_after(), Some(Duration::from_secs(120)));
        assert_eq!(refused(403, &[("Retry-After", "2")]).retry_after(), None, "only 429 and 503");
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
