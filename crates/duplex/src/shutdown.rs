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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use duplex_proto::{CloseCode, CloseFrame};
use tokio::sync::Notify;

use crate::outbox::Sender;

/// The connections of one server.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// TCP connections accepted and not yet dropped (handshakes included).
    active: AtomicUsize,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Sender>>,
    shutting_down: AtomicBool,
    /// Fired when shutdown starts.
    started: Notify,
    /// Fired when the last connection goes away during shutdown.
    drained: Notify,
}

/// One accepted connection's place in its server's count; dropping it gives the place back.
#[derive(Debug)]
pub(crate) struct Permit {
    tracker: Arc<Tracker>,
    id: Option<u64>,
}

impl Tracker {
    pub(crate) fn admit(self: &Arc<Self>) -> Permit {
        self.active.fetch_add(1, Ordering::AcqRel);
        Permit { tracker: self.clone(), id: None }
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Sender>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends close 1001 to every open WebSocket and waits for all connections to end, at most
    /// `grace`. Returns how many were still open then, and their undelivered bytes.
    pub(crate) async fn drain(&self, grace: std::time::Duration) -> (usize, usize) {
        let senders: Vec<Sender> = self.lock().values().cloned().collect();
        for s in &senders {
            let _ = s.close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "server shutting down")));
        }
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.active() == 0 {
                return (0, 0);
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                let left: Vec<Sender> = self.lock().values().cloned().collect();
                let bytes = left.iter().map(Sender::buffered_amount).sum();
                return (self.active(), bytes);
            }
        }
    }
}

impl Permit {
    /// Connections the server has now.
    pub(crate) fn active(&self) -> usize {
        self.tracker.active()
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.tracker.is_shutting_down()
    }

    /// Records the WebSocket this connection became, so shutdown can close it.
    pub(crate) fn attach(&mut self, sender: Sender) {
        let id = self.tracker.next_id.fetch_add(1, Ordering::Relaxed);
        self.tracker.lock().insert(id, sender);
        self.id = Some(id);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.tracker.lock().remove(&id);
        }
        let left = self.tracker.active.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 && self.tracker.is_shutting_down() {
            self.tracker.drained.notify_waiters();
        }
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
