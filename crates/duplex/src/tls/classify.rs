//! rustls failures in words: which [`TlsErrorKind`] a rustls error is, and a message that says
//! what happened and what the application can do about it (in terms of the library's API; the
//! command line adds its own flags).

use std::io;

use rustls::{AlertDescription, CertificateError};

use super::{Failure, TlsError, TlsErrorKind};

/// Which end of the connection we are, for wording errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    #[cfg_attr(not(feature = "client"), allow(dead_code, reason = "only a client classifies as the client"))]
    Client,
    #[cfg_attr(not(feature = "server"), allow(dead_code, reason = "only a server classifies as the server"))]
    Server,
}

/// Turns an I/O error from a TLS stream into [`Failure::Tls`] when rustls is behind it, or when
/// the peer hung up in the middle of the handshake; any other error stays [`Failure::Io`].
/// `peer` is the host name (client side) or the peer's address (server side).
pub(crate) fn classify_io(e: io::Error, side: Side, peer: &str, during_handshake: bool) -> Failure {
    if let Some(r) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return Failure::Tls(classify_rustls(r.clone(), side, peer));
    }
    if during_handshake && e.kind() == io::ErrorKind::UnexpectedEof {
        let message = match side {
            Side::Client => format!(
                "the server {peer} closed the connection during the TLS handshake: is it ws:// rather than wss://, \
                 or does it require a client certificate?"
            ),
            Side::Server => format!("the client {peer} closed the connection during the TLS handshake"),
        };
        return Failure::Tls(TlsError::new(TlsErrorKind::Handshake, message).with_source(e));
    }
    Failure::Io(e)
}

/// Words for a rustls error.
pub(crate) fn classify_rustls(e: rustls::Error, side: Side, peer: &str) -> TlsError {
    use TlsErrorKind as K;
    let (whose, other) = match side {
        Side::Client => ("the server's certificate", "the server"),
        Side::Server => ("the client's certificate", "the client"),
    };
    let (kind, message) = match &e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => (
                K::UnknownIssuer,
                match side {
                    Side::Client => format!(
                        "{whose} for {peer} is signed by an unknown issuer (no trusted CA): trust its CA with \
                         Client::ca_file or Client::add_root_certificate, or, for development only, skip \
                         verification with Client::danger_accept_invalid_certs"
                    ),
                    Side::Server => format!("{whose} ({peer}) is signed by an unknown issuer (not the client CA)"),
                },
            ),
            CertificateError::NotValidForName => (K::NameMismatch, format!("{whose} is not valid for host {peer}")),
            CertificateError::NotValidForNameContext { expected, presented } => {
                // The expected name through rustls's API; the presented ones are rustls's own
                // words for them, shown as they are (never parsed).
                let names = if presented.is_empty() { "no names".to_owned() } else { presented.join(", ") };
                let expected = expected.to_str();
                (K::NameMismatch, format!("{whose} is not valid for host {expected}: it names {names}"))
            }
            CertificateError::Expired => (K::Expired, format!("{whose} ({peer}) has expired")),
            CertificateError::ExpiredContext { time, not_after } => (
                K::Expired,
                format!(
                    "{whose} ({peer}) has expired: it was valid until {}, and it is now {}",
                    utc(not_after.as_secs()),
                    utc(time.as_secs())
                ),
            ),
            CertificateError::NotValidYet => (K::NotValidYet, format!("{whose} ({peer}) is not valid yet")),
            CertificateError::NotValidYetContext { time, not_before } => (
                K::NotValidYet,
                format!(
                    "{whose} ({peer}) is not valid yet: it is valid from {}, and it is now {} (check the clock)",
                    utc(not_before.as_secs()),
                    utc(time.as_secs())
                ),
            ),
            other_error => (K::BadCertificate, format!("{whose} ({peer}) was rejected: {other_error}")),
        },
        rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
            | rustls::InvalidMessage::UnknownProtocolVersion
            | rustls::InvalidMessage::MessageTooLarge,
        ) => (
            K::NotTls,
            match side {
                Side::Client => {
                    format!("the server {peer} did not answer with TLS: is it ws:// rather than wss://?")
                }
                Side::Server => {
                    format!("the client {peer} did not speak TLS: plain ws:// or http:// to a TLS port?")
                }
            },
        ),
        rustls::Error::NoCertificatesPresented => (
            K::ClientCertificateRequired,
            format!("the client {peer} presented no certificate, and this server requires one (mutual TLS)"),
        ),
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => (
            K::ClientCertificateRequired,
            format!(
                "{other} {peer} requires a client certificate (mutual TLS): give one with \
                 Client::client_cert_files or Client::client_cert"
            ),
        ),
        rustls::Error::AlertReceived(
            a @ (AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied),
        ) => (
            K::Refused,
            match side {
                Side::Client => format!("the server {peer} rejected our client certificate (TLS alert {a:?})"),
                Side::Server => format!("the client {peer} rejected our certificate (TLS alert {a:?})"),
            },
        ),
        rustls::Error::AlertReceived(a) => {
            (K::Refused, format!("{other} {peer} refused the TLS handshake (alert {a:?})"))
        }
        rustls::Error::NoApplicationProtocol => {
            (K::Handshake, format!("{other} {peer} has no ALPN protocol in common with us (we offer http/1.1)"))
        }
        _ => (K::Handshake, format!("TLS handshake with {peer} failed: {e}")),
    };
    TlsError::new(kind, message).with_source(e)
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::ServerName;

    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn name_mismatch_names_the_expected_host_through_the_api() {
        let expected = ServerName::try_from("wrong.test").unwrap();
        let e = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected,
            presented: vec!["right.test".into()],
        });
        let t = classify_rustls(e, Side::Client, "127.0.0.1");
        assert_eq!(t.kind(), TlsErrorKind::NameMismatch);
        assert_eq!(t.to_string(), "the server's certificate is not valid for host wrong.test: it names right.test");
    }

    #[test]
    fn library_messages_name_the_api_not_command_line_flags() {
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let t = classify_rustls(e, Side::Client, "example.test");
        let msg = t.to_string();
        assert!(msg.contains("Client::ca_file") && !msg.contains("--"), "{msg}");
    }
}
