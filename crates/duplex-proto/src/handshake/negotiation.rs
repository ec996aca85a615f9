//! Subprotocol and extension negotiation: the part of the opening handshake that HTTP/1.1 (RFC 6455
//! §4) and extended CONNECT (RFC 8441 §5, RFC 9220) share. The same headers mean the same thing
//! over either version, so both handshakes call these functions and neither has its own copy.

use super::error::HandshakeError;
use super::has_token;
use super::headers::HeaderList;
use crate::deflate::{DeflateConfig, DeflateParams};

/// Server: the subprotocols a client offers in `Sec-WebSocket-Protocol`, in its order of
/// preference (RFC 6455 §4.2.1 item 8; several header lines form one list, RFC 9110 §5.3).
pub(crate) fn offered_protocols(headers: &HeaderList) -> Vec<&str> {
    headers.tokens("sec-websocket-protocol").collect()
}

/// Server: negotiates permessage-deflate (RFC 7692) from the client's `Sec-WebSocket-Extensions`
/// offers, per [`DeflateConfig::negotiate`].
pub(crate) fn negotiate_deflate(headers: &HeaderList, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    config.negotiate(headers.get_all("sec-websocket-extensions"))
}

/// Server: checks that the subprotocol the application chose is one the client offered (RFC 6455
/// §4.2.2 item 5.4: the server selects one of the client's values, or none).
pub(crate) fn check_chosen_protocol(headers: &HeaderList, chosen: Option<&str>) -> Result<(), HandshakeError> {
    match chosen {
        Some(p) if !offered_protocols(headers).contains(&p) => Err(HandshakeError::UnofferedProtocol(p.to_owned())),
        _ => Ok(()),
    }
}

/// What a client offered, to check the server's answer against.
pub(crate) struct Offer<'a> {
    /// The subprotocols offered.
    pub(crate) protocols: &'a [String],
    /// The whole `Sec-WebSocket-Extensions` value offered, if any.
    pub(crate) extensions: Option<&'a str>,
    /// The permessage-deflate settings offered, if it was.
    pub(crate) deflate: Option<&'a DeflateConfig>,
}

/// What the server's answer settled: the subprotocol, the extensions value and the deflate
/// parameters in force.
pub(crate) struct Agreed {
    pub(crate) protocol: Option<String>,
    pub(crate) extensions: Option<String>,
    pub(crate) deflate: Option<DeflateParams>,
}

/// Client: checks the subprotocol and extensions of the server's accepting answer against what
/// was offered (RFC 6455 §4.1, the client's checks 5 and 6; RFC 7692 §5 for permessage-deflate).
pub(crate) fn check_answer(headers: &HeaderList, offer: &Offer<'_>) -> Result<Agreed, HandshakeError> {
    let protocol = headers.get("sec-websocket-protocol").map(str::to_owned);
    if let Some(p) = &protocol {
        if !offer.protocols.iter().any(|o| o == p) {
            return Err(HandshakeError::UnofferedProtocol(p.clone()));
        }
    }
    // Several Sec-WebSocket-Extensions lines form one list (RFC 9110 §5.3).
    let all: Vec<&str> = headers.get_all("sec-websocket-extensions").collect();
    let extensions = if all.is_empty() { None } else { Some(all.join(", ")) };
    let mut deflate = None;
    if let Some(e) = &extensions {
        let offered = offer.extensions.unwrap_or_default();
        for name in e.split(',').filter_map(|x| x.split(';').next()).map(str::trim).filter(|n| !n.is_empty()) {
            if !offered.split(',').filter_map(|x| x.split(';').next()).any(|o| has_token(o, name)) {
                return Err(HandshakeError::UnofferedExtension(name.to_owned()));
            }
        }
        if let Some(config) = offer.deflate {
            deflate = config.accept_response(e)?;
        }
    }
    Ok(Agreed { protocol, extensions, deflate })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> HeaderList {
        let mut h = HeaderList::default();
        for (n, v) in list {
            h.push(*n, v.as_bytes());
        }
        h
    }

    #[test]
    fn offered_protocols_span_header_lines() {
        let h = headers(&[("Sec-WebSocket-Protocol", "chat, superchat"), ("sec-websocket-protocol", " v2 ,")]);
        assert_eq!(offered_protocols(&h), ["chat", "superchat", "v2"]);
        assert_eq!(check_chosen_protocol(&h, Some("v2")), Ok(()));
        assert_eq!(check_chosen_protocol(&h, None), Ok(()));
        assert_eq!(check_chosen_protocol(&h, Some("v3")), Err(HandshakeError::UnofferedProtocol("v3".into())));
    }

    #[test]
    fn answer_checks() {
        let protocols = ["chat".to_owned()];
        let config = DeflateConfig::default();
        let offer =
            Offer { protocols: &protocols, extensions: Some("permessage-deflate, x-a"), deflate: Some(&config) };
        let ok = check_answer(
            &headers(&[
                ("sec-websocket-protocol", "chat"),
                ("sec-websocket-extensions", "permessage-deflate; server_max_window_bits=12"),
            ]),
            &offer,
        )
        .unwrap();
        assert_eq!(ok.protocol.as_deref(), Some("chat"));
        assert!(ok.deflate.is_some());
        let split = check_answer(
            &headers(&[
                ("sec-websocket-extensions", "x-a"),
                ("sec-websocket-extensions", "permessage-deflate; server_max_window_bits=12"),
            ]),
            &offer,
        )
        .unwrap();
        assert_eq!(split.extensions.as_deref(), Some("x-a, permessage-deflate; server_max_window_bits=12"));
        assert!(matches!(
            check_answer(&headers(&[("sec-websocket-extensions", "x-b")]), &offer),
            Err(HandshakeError::UnofferedExtension(e)) if e == "x-b"
        ));
    }
}
