//! Why [`WebSocketUpgrade`](crate::WebSocketUpgrade) refused a request, by axum's names: each
//! rejection is a type with `status()`, `body_text()` and `IntoResponse`, and
//! [`WebSocketUpgradeRejection`] holds any of them.
//!
//! The checks are duplex's own server's (RFC 6455 §4.2.1, RFC 8441 §4), so a few are stricter
//! than axum's: the key must decode to 16 bytes, `Host` must be present, and an unsupported
//! `Sec-WebSocket-Version` is answered 426 with `Sec-WebSocket-Version: 13` (RFC 6455 §4.4)
//! where axum answers 400.

use std::fmt;

use axum::response::{IntoResponse, Response};
use duplex::proto::handshake::HandshakeError;
use http::StatusCode;

macro_rules! rejection {
    ($(#[$doc:meta])* $name:ident, $status:ident, $body:literal) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        #[non_exhaustive]
        pub struct $name;

        impl $name {
            /// The body of the response.
            pub fn body_text(&self) -> String {
                $body.to_owned()
            }

            /// The status of the response.
            pub fn status(&self) -> StatusCode {
                StatusCode::$status
            }
        }

        impl IntoResponse for $name {
            fn into_response(self) -> Response {
                (self.status(), self.body_text()).into_response()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($body)
            }
        }

        impl std::error::Error for $name {}

        impl From<$name> for WebSocketUpgradeRejection {
            fn from(r: $name) -> Self {
                WebSocketUpgradeRejection::$name(r)
            }
        }
    };
}

rejection!(
    /// An HTTP/1.1 WebSocket request must be a `GET` (405).
    MethodNotGet, METHOD_NOT_ALLOWED, "Request method must be `GET`"
);
rejection!(
    /// An HTTP/2 WebSocket request must be a `CONNECT` (405).
    MethodNotConnect, METHOD_NOT_ALLOWED, "Request method must be `CONNECT`"
);
rejection!(
    /// `Connection` must name `upgrade` (400).
    InvalidConnectionHeader, BAD_REQUEST, "Connection header did not include 'upgrade'"
);
rejection!(
    /// `Upgrade` must name `websocket` (400).
    InvalidUpgradeHeader, BAD_REQUEST, "`Upgrade` header did not include 'websocket'"
);
rejection!(
    /// An extended CONNECT's `:protocol` must be `websocket` (400).
    InvalidProtocolPseudoheader, BAD_REQUEST, "`:protocol` pseudo-header did not include 'websocket'"
);
rejection!(
    /// `Sec-WebSocket-Version` must be 13: answered 426 with `Sec-WebSocket-Version: 13`
    /// (RFC 6455 §4.4; axum answers 400).
    InvalidWebSocketVersionHeader, UPGRADE_REQUIRED, "`Sec-WebSocket-Version` header did not include '13'"
);
rejection!(
    /// `Sec-WebSocket-Key` is missing, or is not 16 bytes in base64 (400).
    WebSocketKeyHeaderMissing, BAD_REQUEST, "`Sec-WebSocket-Key` header missing or not 16 bytes in base64"
);
rejection!(
    /// The connection cannot be upgraded: HTTP/1.0, or a server that does not offer upgrades
    /// (426).
    ConnectionNotUpgradable, UPGRADE_REQUIRED, "WebSocket request couldn't be upgraded since no upgrade state was present"
);
rejection!(
    /// An HTTP/2 WebSocket request's `:scheme`, `:authority` or `:path` is missing or invalid
    /// (RFC 8441 §4; 400).
    InvalidPseudoHeader, BAD_REQUEST, "`:scheme`, `:authority` or `:path` pseudo-header missing or invalid"
);
rejection!(
    /// An HTTP/1.1 WebSocket request must have a `Host` header (RFC 6455 §4.2.1; 400).
    MissingHostHeader, BAD_REQUEST, "`Host` header missing"
);

/// Any of the rejections of [`WebSocketUpgrade`](crate::WebSocketUpgrade).
#[derive(Debug)]
#[non_exhaustive]
#[allow(missing_docs, reason = "each variant is its rejection type, documented there")]
pub enum WebSocketUpgradeRejection {
    MethodNotGet(MethodNotGet),
    MethodNotConnect(MethodNotConnect),
    InvalidConnectionHeader(InvalidConnectionHeader),
    InvalidUpgradeHeader(InvalidUpgradeHeader),
    InvalidProtocolPseudoheader(InvalidProtocolPseudoheader),
    InvalidWebSocketVersionHeader(InvalidWebSocketVersionHeader),
    WebSocketKeyHeaderMissing(WebSocketKeyHeaderMissing),
    ConnectionNotUpgradable(ConnectionNotUpgradable),
    MissingHostHeader(MissingHostHeader),
    InvalidPseudoHeader(InvalidPseudoHeader),
}

macro_rules! each {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            WebSocketUpgradeRejection::MethodNotGet($r) => $e,
            WebSocketUpgradeRejection::MethodNotConnect($r) => $e,
            WebSocketUpgradeRejection::InvalidConnectionHeader($r) => $e,
            WebSocketUpgradeRejection::InvalidUpgradeHeader($r) => $e,
            WebSocketUpgradeRejection::InvalidProtocolPseudoheader($r) => $e,
            WebSocketUpgradeRejection::InvalidWebSocketVersionHeader($r) => $e,
            WebSocketUpgradeRejection::WebSocketKeyHeaderMissing($r) => $e,
            WebSocketUpgradeRejection::ConnectionNotUpgradable($r) => $e,
            WebSocketUpgradeRejection::MissingHostHeader($r) => $e,
            WebSocketUpgradeRejection::InvalidPseudoHeader($r) => $e,
        }
    };
}

impl WebSocketUpgradeRejection {
    /// The body of the response.
    pub fn body_text(&self) -> String {
        each!(self, r => r.body_text())
    }

    /// The status of the response.
    pub fn status(&self) -> StatusCode {
        each!(self, r => r.status())
    }

    /// The rejection for what duplex's handshake check found.
    pub(crate) fn from_handshake(e: &HandshakeError) -> Self {
        match e {
            HandshakeError::MethodNotGet(_) => MethodNotGet.into(),
            HandshakeError::MethodNotConnect(_) => MethodNotConnect.into(),
            HandshakeError::NotWebSocketProtocol(_) => InvalidProtocolPseudoheader.into(),
            HandshakeError::BadPseudoHeader { .. } => InvalidPseudoHeader.into(),
            HandshakeError::NotWebSocketUpgrade => InvalidUpgradeHeader.into(),
            HandshakeError::MissingConnectionUpgrade => InvalidConnectionHeader.into(),
            HandshakeError::UnsupportedVersion(_) => InvalidWebSocketVersionHeader.into(),
            HandshakeError::BadKey => WebSocketKeyHeaderMissing.into(),
            HandshakeError::MissingHost => MissingHostHeader.into(),
            _ => ConnectionNotUpgradable.into(),
        }
    }
}

impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), self.body_text()).into_response();
        if matches!(self, WebSocketUpgradeRejection::InvalidWebSocketVersionHeader(_)) {
            resp.headers_mut().insert("sec-websocket-version", http::HeaderValue::from_static("13"));
        }
        resp
    }
}

impl fmt::Display for WebSocketUpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        each!(self, r => fmt::Display::fmt(r, f))
    }
}

impl std::error::Error for WebSocketUpgradeRejection {}
