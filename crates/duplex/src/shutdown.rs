//! Counting a server's connections, refusing those over the limit, and shutting down gracefully:
//! stop accepting, send close 1001 to every connection after what it already has queued, wait
//! up to the grace period for the close handshakes, then report what did not finish.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! let server = duplex::Server::bind("127.0.0.1:8080").await?;
//! let shutdown = server.shutdown_handle();
//! tokio::spawn(async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     shutdown.shutdown();
//! });
//! server.serve(|incoming| async move { /* ... */ }).await // returns once drained
//! # }
//! ```

#![cfg_attr(not(feature = "server"), allow(dead_code, reason = "a server admits, counts and drains connections"))]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use duplex_proto::{CloseCode, CloseFrame};
use tokio::sync::Notify;

use crate::outbox::Sender;
use crate::registry::Connections;

/// The connections of one server.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// TCP connections accepted and not yet dropped (handshakes included).
    active: AtomicUsize,
    /// The WebSockets among them: the server's one registry.
    pub(crate) connections: Connections,
    shutting_down: AtomicBool,
    /// The server speaks TLS (the `transport` label of its connection metrics).
    pub(crate) tls: AtomicBool,
    /// Fired when shutdown starts.
    started: Notify,
    /// Fired when the last connection goes away during shutdown.
    drained: Notify,
}

/// One accepted connection's place in its server's count and, once it is a WebSocket, in its
/// connections; dropping it gives both back.
#[derive(Debug)]
pub(crate) struct Permit {
    /// `None` for a connection no server counts (an `Incoming` made by hand), or once the permit
    /// became a [`Slot`].
    tracker: Option<Arc<Tracker>>,
    /// Its place in its address's count, when the server has per-address limits.
    #[cfg(feature = "ip-limits")]
    pub(crate) ip: Option<crate::ip_limit::IpPermit>,
}

/// An accepted WebSocket's place in its server's count and connections: a [`Permit`] with the
/// connection's id; dropping it gives both back. Kept apart from the permit so that a handshake in
/// progress (every connection's task holds one) carries no id field.
#[derive(Debug)]
pub(crate) struct Slot {
    tracker: Arc<Tracker>,
    id: u64,
    #[cfg(feature = "ip-limits")]
    _ip: Option<crate::ip_limit::IpPermit>,
}

impl Tracker {
    pub(crate) fn admit(self: &Arc<Self>) -> Permit {
        self.active.fetch_add(1, Ordering::AcqRel);
        Permit {
            tracker: Some(self.clone()),
            #[cfg(feature = "ip-limits")]
            ip: None,
        }
    }

    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub(crate) async fn wait_started(&self) {
        let started = self.started.notified();
        tokio::pin!(started);
        started.as_mut().enable();
        if !self.is_shutting_down() {
            started.await;
        }
    }

    /// Sends close 1001 to every open WebSocket and waits for all connections to end, at most
    /// `grace`. Returns how many were still open then, and their undelivered bytes.
    pub(crate) async fn drain(&self, grace: std::time::Duration) -> (usize, usize) {
        // RFC 6455 §7.4.1: 1001, the server is going away.
        self.connections.close_all(Some(CloseFrame::new(CloseCode::GOING_AWAY, "server shutting down")));
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.active() == 0 {
                return (0, 0);
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return (self.active(), self.connections.buffered_amount());
            }
        }
    }
}

impl Permit {
    /// A permit of no server.
    pub(crate) fn none() -> Permit {
        Permit {
            tracker: None,
            #[cfg(feature = "ip-limits")]
            ip: None,
        }
    }

    /// Connections the server has now.
    pub(crate) fn active(&self) -> Option<usize> {
        self.tracker.as_ref().map(|t| t.active())
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.tracker.as_ref().is_some_and(|t| t.is_shutting_down())
    }

    /// Registers the WebSocket this connection became in the server's connections, so the
    /// console, `/list`, pub/sub and shutdown find it; the entry goes with the slot.
    pub(crate) fn register(mut self, sender: Sender, peer: SocketAddr, path: &str) -> Option<Slot> {
        let tracker = self.tracker.take()?;
        let id = tracker.connections.insert(sender, peer, path.to_owned());
        crate::metrics::connection_opened(tracker.tls.load(Ordering::Relaxed));
        Some(Slot {
            tracker,
            id,
            #[cfg(feature = "ip-limits")]
            _ip: self.ip.take(),
        })
    }
}

impl Tracker {
    /// A connection is gone.
    fn release(&self) {
        let left = self.active.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 && self.is_shutting_down() {
            self.drained.notify_waiters();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(t) = self.tracker.take() {
            t.release();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.tracker.connections.unregister(self.id);
        crate::metrics::connection_closed(self.tracker.tls.load(Ordering::Relaxed));
        self.tracker.release();
    }
}

/// Starts a server's graceful shutdown from anywhere; cloning it is cheap.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    pub(crate) tracker: Arc<Tracker>,
}

impl ShutdownHandle {
    /// Begins the shutdown: the server stops accepting, every connection gets close 1001, and
    /// [`Server::serve`](crate::Server::serve) returns once they have closed or the grace period
    /// ([`Config::shutdown_grace`](crate::Config::shutdown_grace)) has passed.
    pub fn shutdown(&self) {
        if !self.tracker.shutting_down.swap(true, Ordering::AcqRel) {
            self.tracker.started.notify_waiters();
        }
    }

    /// Whether the shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.tracker.is_shutting_down()
    }

    /// Connections open now, handshakes included.
    pub fn active_connections(&self) -> usize {
        self.tracker.active()
    }
}
