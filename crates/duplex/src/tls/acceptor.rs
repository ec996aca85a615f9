//! [`TlsAcceptor`]: the TLS side of a [`Server`](crate::Server), and the plain-HTTP client on a
//! TLS port, answered `400` in plain text so that it says what is wrong instead of hanging.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::classify::{classify_io, Side};
use super::{load_certs, load_private_key, server_config, Failure, TlsError, TlsErrorKind, PLAIN_ON_TLS_REASON};
use crate::stream::tls_server::recording_server_name;
use crate::stream::TlsServerStream;

/// The TLS side of a [`Server`](crate::Server): a shared [`rustls::ServerConfig`], and the
/// handshake that turns an accepted TCP stream into a TLS one.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use duplex::tls::TlsAcceptor;
/// let tls = TlsAcceptor::from_pem_files("cert.pem", "key.pem")?;
/// let server = duplex::Server::bind("0.0.0.0:443").await?.with_tls(tls);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    /// The same configuration with its certificate resolver noting the server name, for
    /// [`TlsServerStream`] (rustls' unbuffered connection does not keep it).
    unbuffered: Arc<ServerConfig>,
}

impl TlsAcceptor {
    /// Uses this configuration as it is. (Set its `alpn_protocols` to `[b"http/1.1"]` if clients
    /// may offer HTTP/2; the helpers here do.)
    pub fn new(config: Arc<ServerConfig>) -> TlsAcceptor {
        let unbuffered = recording_server_name(&config);
        TlsAcceptor { config, unbuffered }
    }

    /// Serves the certificate chain in `cert` (PEM, leaf first) with the key in `key` (PEM).
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<TlsAcceptor, TlsError> {
        let config = server_config(load_certs(cert)?, load_private_key(key)?)?;
        Ok(TlsAcceptor::new(Arc::new(config)))
    }

    /// Serves a generated certificate (cargo feature `self-signed`).
    #[cfg(feature = "self-signed")]
    pub fn from_self_signed(cert: &super::SelfSigned) -> Result<TlsAcceptor, TlsError> {
        Ok(TlsAcceptor::new(Arc::new(cert.server_config()?)))
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Runs the server side of the TLS handshake on an accepted connection, with no deadline of
    /// its own (the server runs it under the handshake timeout), and returns tokio-rustls' stream
    /// (what hyper and axum servers are given). Fails with [`Failure::Tls`], or [`Failure::Io`]
    /// when the connection itself fails.
    ///
    /// A client that does not start with a TLS handshake record (a plain `ws://` or `http://`
    /// client on the TLS port) is answered `400 This port speaks TLS` in plain text and the
    /// error is [`TlsErrorKind::NotTls`].
    pub async fn accept(&self, mut tcp: TcpStream) -> Result<tokio_rustls::server::TlsStream<TcpStream>, Failure> {
        let peer = starts_tls(&mut tcp).await?;
        tokio_rustls::TlsAcceptor::from(self.config.clone())
            .accept(tcp)
            .await
            .map_err(|e| classify_io(e, Side::Server, &peer, true))
    }

    /// [`accept`](Self::accept), for a duplex [`Server`](crate::Server): the connection runs on
    /// rustls' unbuffered API, which holds no TLS buffer while the connection is idle.
    pub async fn accept_unbuffered(&self, mut tcp: TcpStream) -> Result<TlsServerStream, Failure> {
        let peer = starts_tls(&mut tcp).await?;
        TlsServerStream::accept(tcp, self.unbuffered.clone())
            .await
            .map_err(|e| classify_io(e, Side::Server, &peer, true))
    }
}

/// Waits for the client's first byte: a TLS client starts with a handshake record; anything else
/// is answered `400` in plain text. The client's address, for messages.
async fn starts_tls(tcp: &mut TcpStream) -> Result<String, Failure> {
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "(unknown)".into());
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Err(Failure::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the client closed the connection before the TLS handshake",
        )));
    }
    // Every TLS connection opens with a handshake record (content type 22).
    if first[0] != 0x16 {
        tracing::debug!(%peer, first_byte = first[0], "not a TLS client hello: answering 400 in plain text");
        answer_plain_client(tcp).await;
        return Err(Failure::Tls(TlsError::new(
            TlsErrorKind::NotTls,
            format!("the client {peer} did not speak TLS: plain ws:// or http:// to a TLS port (answered 400)"),
        )));
    }
    Ok(peer)
}

/// Answers a plain HTTP client on a TLS port, so that it says what is wrong instead of hanging.
async fn answer_plain_client(tcp: &mut TcpStream) {
    // Take what the client sent (its request head, usually one segment), so that closing does not
    // reset the connection before our answer is read.
    let mut sink = [0u8; 8192];
    let _ = tokio::time::timeout(std::time::Duration::from_millis(100), tcp.read(&mut sink)).await;
    let body = "this port speaks TLS: connect with wss:// (or https://) instead of ws:// (or http://)\n";
    let response = format!(
        "HTTP/1.1 400 {PLAIN_ON_TLS_REASON}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(response.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor::new(config)
    }
}

impl From<ServerConfig> for TlsAcceptor {
    fn from(config: ServerConfig) -> Self {
        TlsAcceptor::new(Arc::new(config))
    }
}
