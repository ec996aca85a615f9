//! SOCKS4, SOCKS4a, SOCKS5 (RFC 1928) with user/password (RFC 1929), through tokio-socks; each
//! refusal becomes a [`SocksReply`] by name.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;
use tokio_socks::tcp::{Socks4Stream, Socks5Stream};
use tokio_socks::TargetAddr;

use super::OpenError;
use super::{Auth, ProxyError, ProxyErrorKind, ProxyScheme, ProxyUrl, SocksReply};
use crate::target::Target;

/// Asks the SOCKS proxy on `tcp` for a connection to `target`; returns the TCP stream, now a byte
/// stream to the target.
pub(super) async fn connect(tcp: TcpStream, proxy: &ProxyUrl, target: &Target) -> Result<TcpStream, OpenError> {
    let version4 = matches!(proxy.scheme, ProxyScheme::Socks4 | ProxyScheme::Socks4a);
    let map = |e: tokio_socks::Error| OpenError::from(classify(e, proxy, version4));
    // socks4:// and socks5:// resolve the name here; socks4a:// and socks5h:// send it.
    let to: TargetAddr<'_> = match proxy.scheme {
        ProxyScheme::Socks4 => TargetAddr::Ip(resolve(target, true).await?),
        ProxyScheme::Socks5 => TargetAddr::Ip(resolve(target, false).await?),
        _ => match target.host.parse::<IpAddr>() {
            Ok(ip) => TargetAddr::Ip(SocketAddr::new(ip, target.port)),
            Err(_) => TargetAddr::Domain(target.host.as_str().into(), target.port),
        },
    };
    let stream = match (&proxy.auth, version4) {
        (Auth::UserPassword(user, _), true) => {
            Socks4Stream::connect_with_userid_and_socket(tcp, to, user).await.map_err(map)?.into_inner()
        }
        (_, true) => Socks4Stream::connect_with_socket(tcp, to).await.map_err(map)?.into_inner(),
        (Auth::UserPassword(user, password), false) => {
            Socks5Stream::connect_with_password_and_socket(tcp, to, user, password).await.map_err(map)?.into_inner()
        }
        (_, false) => Socks5Stream::connect_with_socket(tcp, to).await.map_err(map)?.into_inner(),
    };
    Ok(stream)
}

/// The target's address, resolved here (SOCKS4 carries only IPv4 addresses).
async fn resolve(target: &Target, ipv4_only: bool) -> std::io::Result<SocketAddr> {
    let addrs = tokio::net::lookup_host((target.host.as_str(), target.port)).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot resolve {} for the SOCKS proxy: {e}", target.host))
    })?;
    let mut addrs: Vec<SocketAddr> = addrs.collect();
    if ipv4_only {
        addrs.retain(SocketAddr::is_ipv4);
    }
    addrs.first().copied().ok_or_else(|| {
        let what = if ipv4_only {
            "no IPv4 address (SOCKS4 carries no other); try socks4a:// or socks5h://"
        } else {
            "no address"
        };
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("{}: {what}", target.host))
    })
}

/// tokio-socks' error as ours: a refusal by its reply's name, or what is wrong.
fn classify(e: tokio_socks::Error, proxy: &ProxyUrl, version4: bool) -> ProxyError {
    use tokio_socks::Error as E;
    use SocksReply as R;
    let reply = match &e {
        E::GeneralSocksServerFailure if version4 => Some(R::Socks4Rejected),
        E::GeneralSocksServerFailure => Some(R::GeneralFailure),
        E::ConnectionNotAllowedByRuleset => Some(R::NotAllowedByRuleset),
        E::NetworkUnreachable => Some(R::NetworkUnreachable),
        E::HostUnreachable => Some(R::HostUnreachable),
        E::ConnectionRefused => Some(R::ConnectionRefused),
        E::TtlExpired => Some(R::TtlExpired),
        E::CommandNotSupported => Some(R::CommandNotSupported),
        E::AddressTypeNotSupported => Some(R::AddressTypeNotSupported),
        E::NoAcceptableAuthMethods | E::AuthorizationRequired => Some(R::NoAcceptableAuthMethod),
        E::PasswordAuthFailure(_) => Some(R::AuthenticationFailed),
        E::IdentdAuthFailure => Some(R::Socks4IdentdUnreachable),
        E::InvalidUserIdAuthFailure => Some(R::Socks4IdentdMismatch),
        _ => None,
    };
    let kind = match (reply, &e) {
        (Some(r), _) => ProxyErrorKind::Socks(r),
        (None, E::InvalidTargetAddress(why) | E::InvalidAuthValues(why)) => ProxyErrorKind::Url((*why).to_owned()),
        (None, E::ProxyServerUnreachable) => ProxyErrorKind::Unreachable,
        (None, E::InvalidResponseVersion) => ProxyErrorKind::Protocol(format!(
            "its answer is not SOCKS{}: is it an HTTP proxy (http://) or another SOCKS version?",
            if version4 { "4" } else { "5" }
        )),
        (None, E::Io(io)) => ProxyErrorKind::Protocol(format!("the SOCKS handshake failed: {io}")),
        (None, other) => ProxyErrorKind::Protocol(format!("bad SOCKS answer: {other}")),
    };
    ProxyError::new(proxy.to_string(), kind).with_source(e)
}
