//! The transports a connection runs over: plain TCP for `ws://`, TLS over TCP for `wss://`.
//! [`ClientStream`] is a client's, [`ServerStream`] a server's (over TLS, a [`TlsServerStream`]).

#![cfg_attr(not(any(feature = "client", feature = "server")), allow(unused_imports, reason = "for either role"))]

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TLS server's connection on rustls' unbuffered API (see [`TlsServerStream`]).
#[cfg(all(feature = "tls", feature = "server"))]
pub(crate) mod tls_server;
#[cfg(all(feature = "tls", feature = "server"))]
pub use tls_server::TlsServerStream;

/// A client's transport.
#[cfg(feature = "client")]
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientStream {
    /// `ws://`: plain TCP.
    Plain(TcpStream),
    /// `wss://`: TLS over TCP (boxed: a TLS session is large).
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// `ws://` through an `https://` proxy: inside TLS to the proxy.
    #[cfg(feature = "tls")]
    ViaTlsProxy(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// `wss://` through an `https://` proxy: TLS to the server inside TLS to the proxy.
    #[cfg(feature = "tls")]
    TlsViaTlsProxy(Box<tokio_rustls::client::TlsStream<tokio_rustls::client::TlsStream<TcpStream>>>),
}

#[cfg(feature = "client")]
impl ClientStream {
    /// The TCP stream underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            #[cfg(feature = "tls")]
            ClientStream::Tls(s) | ClientStream::ViaTlsProxy(s) => s.get_ref().0,
            #[cfg(feature = "tls")]
            ClientStream::TlsViaTlsProxy(s) => s.get_ref().0.get_ref().0,
        }
    }

    /// Whether the connection to the server is encrypted (`wss://`).
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return matches!(self, ClientStream::Tls(_) | ClientStream::TlsViaTlsProxy(_));
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The TLS session with the server (protocol version, cipher suite, the server's
    /// certificates), for `wss://`.
    #[cfg(feature = "tls")]
    pub fn tls_connection(&self) -> Option<&rustls::ClientConnection> {
        match self {
            ClientStream::Plain(_) | ClientStream::ViaTlsProxy(_) => None,
            ClientStream::Tls(s) => Some(s.get_ref().1),
            ClientStream::TlsViaTlsProxy(s) => Some(s.get_ref().1),
        }
    }
}

/// A server's transport, as [`Server::accept`](crate::Server::accept) yields it.
#[cfg(feature = "server")]
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerStream {
    /// Plain TCP; also a TLS server's connection before [`Incoming::request`](crate::Incoming::request)
    /// has run its TLS handshake.
    Plain(TcpStream),
    /// TLS over TCP, on rustls' unbuffered API (boxed: a TLS session is large).
    #[cfg(feature = "tls")]
    Tls(Box<TlsServerStream>),
}

#[cfg(feature = "server")]
impl ServerStream {
    /// The TCP stream underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ServerStream::Plain(s) => s,
            #[cfg(feature = "tls")]
            ServerStream::Tls(s) => s.tcp(),
        }
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return matches!(self, ServerStream::Tls(_));
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The TLS session (SNI name, ALPN protocol, the client's certificates under mutual TLS).
    #[cfg(feature = "tls")]
    pub fn tls_connection(&self) -> Option<&TlsServerStream> {
        match self {
            ServerStream::Plain(_) => None,
            ServerStream::Tls(s) => Some(s),
        }
    }
}

/// The transport of a WebSocket that [`crate::hyper`] upgraded: the TCP (or TLS) stream itself
/// when hyper's upgraded connection could be taken apart (HTTP/1.1 served on a
/// `TokioIo<TcpStream>` or `TokioIo<TlsStream<TcpStream>>`), hyper's boxed
/// [`Upgraded`](::hyper::upgrade::Upgraded) otherwise (HTTP/2 streams, other transports, hyper-util's
/// `auto` builder, which wraps what it serves).
#[cfg(feature = "hyper")]
#[derive(Debug)]
#[non_exhaustive]
pub enum HyperStream {
    /// The TCP stream hyper served, taken back: no indirection on the hot path.
    Plain(TcpStream),
    /// The TLS stream hyper served, taken back (boxed: a TLS session is large).
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// hyper's upgraded connection, through its boxed IO (an HTTP/2 stream: shutdown is
    /// END_STREAM).
    Upgraded(hyper_util::rt::TokioIo<::hyper::upgrade::Upgraded>),
}

#[cfg(feature = "hyper")]
impl HyperStream {
    /// Whether the WebSocket runs on the TCP or TLS stream itself rather than through hyper's
    /// boxed upgraded IO.
    pub fn is_direct(&self) -> bool {
        !matches!(self, HyperStream::Upgraded(_))
    }
}

/// Forwards `AsyncRead` and `AsyncWrite` to the variant's stream: the first list as they are,
/// the second (TLS, boxed) only with the `tls` feature.
#[allow(unused_macros, reason = "unused with neither role")]
macro_rules! forward_io {
    ($ty:ident, [$($plain:ident),*], [$($boxed:ident),*]) => {
        impl AsyncRead for $ty {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($ty::$plain(s) => Pin::new(s).poll_read(cx, buf),)*
                    $(#[cfg(feature = "tls")] $ty::$boxed(s) => Pin::new(&mut **s).poll_read(cx, buf),)*
                }
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $($ty::$plain(s) => Pin::new(s).poll_write(cx, buf),)*
                    $(#[cfg(feature = "tls")] $ty::$boxed(s) => Pin::new(&mut **s).poll_write(cx, buf),)*
                }
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $($ty::$plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),)*
                    $(#[cfg(feature = "tls")] $ty::$boxed(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),)*
                }
            }

            fn is_write_vectored(&self) -> bool {
                match self {
                    $($ty::$plain(s) => s.is_write_vectored(),)*
                    $(#[cfg(feature = "tls")] $ty::$boxed(s) => s.is_write_vectored(),)*
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($ty::$plain(s) => Pin::new(s).poll_flush(cx),)*
                    $(#[cfg(feature = "tls")] $ty::$boxed(s) => Pin::new(&mut **s).poll_flush(cx),)*
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($ty::$plain(s) => Pin::new(s).poll_shutdown(cx),)*
                    $(#[cfg(feature = "tls")] $ty::$boxed(s) => Pin::new(&mut **s).poll_shutdown(cx),)*
                }
            }
        }
    };
}

#[cfg(feature = "client")]
forward_io!(ClientStream, [Plain], [Tls, ViaTlsProxy, TlsViaTlsProxy]);
#[cfg(feature = "server")]
forward_io!(ServerStream, [Plain], [Tls]);
#[cfg(feature = "hyper")]
forward_io!(HyperStream, [Plain, Upgraded], [Tls]);
