//! How a server's listening sockets are made: the listen backlog, and `SO_REUSEPORT` with one
//! listener (and one accept loop) per worker thread.
//!
//! The backlog is the length of the kernel's queue of connections whose TCP handshake is done
//! but that the server has not accepted yet. When it is full, the kernel drops new SYNs
//! (`TcpExtListenOverflows` counts them) and those clients wait for their SYN to be sent again,
//! one second later on Linux: a reconnect storm after a deploy stalls for a second or more.
//! std, mio and tokio listen with 128; duplex asks for [`DEFAULT_BACKLOG`] (1024). The kernel caps
//! it at `net.core.somaxconn` (4096 on Linux 5.4 and later, 128 before); the effective value is
//! logged when it is capped, and [`Server::backlog`](crate::Server::backlog) reports it.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! let server = duplex::Server::builder().backlog(4096).reuse_port(4).bind("0.0.0.0:8080").await?;
//! println!("backlog {:?}, {} listeners", server.backlog(), server.listeners());
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{lookup_host, TcpListener, ToSocketAddrs};

use crate::config::Config;
use crate::server::Server;

/// The listen backlog a [`ServerBuilder`] asks for unless told otherwise: enough for 1,000
/// clients reconnecting at once without a dropped SYN, a few KiB of kernel memory while empty.
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Where the kernel's cap on the backlog is read from (Linux).
const SOMAXCONN_PATH: &str = "/proc/sys/net/core/somaxconn";

/// Binds a [`Server`] with a chosen listen backlog and, optionally, `SO_REUSEPORT` listeners.
/// Made by [`Server::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    backlog: u32,
    listeners: usize,
    config: Config,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder { backlog: DEFAULT_BACKLOG, listeners: 1, config: Config::default() }
    }
}

impl ServerBuilder {
    /// The listen backlog: how many handshaken connections the kernel queues for us to accept.
    /// Default [`DEFAULT_BACKLOG`] (1024); the kernel caps it at `net.core.somaxconn`.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog.max(1);
        self
    }

    /// `SO_REUSEPORT`: bind `listeners` sockets to the same address, each with its own backlog
    /// and its own accept loop in [`Server::serve`]; the kernel spreads new connections over them
    /// by a hash of the client's address and port. With one per worker thread of a multi-thread
    /// runtime, accepting is no longer one task's job, and one slow loop holds back only its share.
    /// 1 (the default) binds one ordinary socket. Unix only: elsewhere, more than 1 is refused
    /// at [`bind`](ServerBuilder::bind).
    pub fn reuse_port(mut self, listeners: usize) -> Self {
        self.listeners = listeners.max(1);
        self
    }

    /// The connections' configuration (as [`Server::with_config`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Binds the listener(s) on the first address `addr` resolves to that can be bound. With
    /// port 0 and [`reuse_port`](ServerBuilder::reuse_port), every listener takes the port the
    /// first one was given.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> io::Result<Server> {
        let mut last = None;
        for addr in lookup_host(addr).await? {
            match self.bind_addr(addr) {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolved to nothing")))
    }

    fn bind_addr(&self, addr: SocketAddr) -> io::Result<Server> {
        if self.listeners > 1 && !cfg!(unix) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "SO_REUSEPORT needs a Unix system"));
        }
        let reuse = self.listeners > 1;
        let first = listen(addr, self.backlog, reuse)?;
        let bound = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..self.listeners {
            listeners.push(listen(bound, self.backlog, true)?);
        }
        let backlog = effective_backlog(self.backlog, somaxconn());
        if backlog < self.backlog {
            tracing::warn!(
                "listen backlog {} capped by the kernel at {backlog} (net.core.somaxconn); raise it with \
                 `sysctl -w net.core.somaxconn={}` for the full queue",
                self.backlog,
                self.backlog
            );
        }
        Ok(Server::from_listeners(listeners, Some(backlog), self.config.clone()))
    }
}

/// One non-blocking listening socket, as tokio's own `bind` makes it (`SO_REUSEADDR` on Unix so a
/// restarted server can bind while old connections sit in TIME_WAIT), with our backlog.
fn listen(addr: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    #[cfg(not(unix))]
    let _ = reuse_port;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // The kernel truncates anything above somaxconn itself (and above i32::MAX we would wrap).
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(socket.into())
}

/// The kernel's cap on listen backlogs, if it can be read.
fn somaxconn() -> Option<u32> {
    std::fs::read_to_string(SOMAXCONN_PATH).ok()?.trim().parse().ok()
}

/// The backlog the kernel grants for `asked`, given its cap.
fn effective_backlog(asked: u32, somaxconn: Option<u32>) -> u32 {
    somaxconn.map_or(asked, |cap| asked.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_cap_bounds_the_backlog() {
        assert_eq!(effective_backlog(1024, Some(4096)), 1024);
        assert_eq!(effective_backlog(1024, Some(128)), 128);
        assert_eq!(effective_backlog(1024, None), 1024);
    }

    #[tokio::test]
    async fn reuse_port_listeners_share_the_first_ones_port() {
        let server = Server::builder().reuse_port(3).bind("127.0.0.1:0").await.unwrap();
        assert_eq!(server.listeners(), 3);
        let port = server.local_addr().unwrap().port();
        assert_ne!(port, 0);
        // Each connection lands on one of them, and accept() takes from all.
        let mut clients = Vec::new();
        for _ in 0..12 {
            clients.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        for _ in 0..12 {
            server.accept().await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_second_plain_bind_on_a_reuse_port_address_fails() {
        let server = Server::builder().reuse_port(2).bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        // Without SO_REUSEPORT on the newcomer the kernel refuses: another program cannot slip
        // in unnoticed.
        assert!(Server::builder().bind(addr).await.is_err());
    }
}
