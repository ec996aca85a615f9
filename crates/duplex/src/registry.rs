//! The live connections of a server, listed and addressed by a short id from anywhere in the
//! application: an operator console, an admin endpoint, a broadcast timer.
//!
//! Every connection a [`Server`](crate::Server) accepts is in the server's set
//! ([`Server::connections`](crate::Server::connections)), under the id of its
//! [`Sender`]: the one registry that shutdown, `duplex serve`'s console and `/list`
//! and pub/sub share. Sockets made elsewhere (a client, an axum upgrade) can be registered by hand.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! let server = duplex::Server::bind("127.0.0.1:8080").await?;
//! let connections = server.connections();
//! tokio::spawn(async move {
//!     loop {
//!         tokio::time::sleep(std::time::Duration::from_secs(5)).await;
//!         connections.broadcast("hello, everyone");
//!         for info in connections.list() {
//!             println!("#{} {} {:?}", info.id, info.peer, info.opened.elapsed());
//!         }
//!     }
//! });
//! server.serve(|incoming| async move {
//!     let Ok(req) = incoming.request().await else { return };
//!     let Ok(mut ws) = req.accept().await else { return };
//!     println!("connection #{} opened", ws.id().unwrap_or_default());
//!     while let Some(Ok(_)) = ws.recv().await {}
//!     // The entry goes away with the socket.
//! }).await
//! # }
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use duplex_proto::{CloseFrame, Message, PreparedFrame};

use crate::outbox::{Registered, Sender, TrySendError};

/// The registered connections by id: a pointer each (what is known of a connection lives in its
/// sender's shared state), so the registry adds little to a connection's memory.
#[derive(Debug, Default)]
struct Inner {
    entries: Mutex<HashMap<u64, Sender>>,
}

/// A set of live connections. Cloning it gives another handle to the same set.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// let server = duplex::Server::bind("127.0.0.1:8080").await?;
/// let connections = server.connections(); // a handle: clone it into any task
/// tokio::spawn(async move {
///     for c in connections.list() {
///         println!("#{} {} {} in, {} out", c.id, c.peer, c.messages_in, c.messages_out);
///     }
///     connections.broadcast("hello, everyone");
/// });
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Connections {
    inner: Arc<Inner>,
}

/// What [`Connections::list`] says of one connection.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The connection's id ([`Sender::id`]).
    pub id: u64,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The request target it connected to.
    pub path: String,
    /// When it was registered.
    pub opened: Instant,
    /// Messages received from it.
    pub messages_in: u64,
    /// Messages sent to it.
    pub messages_out: u64,
    /// Bytes waiting to be written to it.
    pub buffered: usize,
}

/// Why a message for one connection was not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendToError {
    /// No live connection has that id.
    NoSuchConnection(u64),
    /// The connection could not take it.
    Queue(TrySendError),
}

impl fmt::Display for SendToError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendToError::NoSuchConnection(id) => write!(f, "no open connection has id {id}"),
            SendToError::Queue(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendToError {}

/// A connection's place in [`Connections`]; dropping it removes the connection from the set.
#[derive(Debug)]
pub struct Registration {
    id: u64,
    inner: Arc<Inner>,
}

impl Registration {
    /// The connection's id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.inner).remove(&self.id);
    }
}

fn lock(inner: &Inner) -> MutexGuard<'_, HashMap<u64, Sender>> {
    inner.entries.lock().unwrap_or_else(|p| p.into_inner())
}

impl Connections {
    /// An empty set.
    pub fn new() -> Self {
        Connections::default()
    }

    /// Adds a connection, by its sender ([`WebSocket::sender`](crate::WebSocket::sender)), under
    /// its id ([`Sender::id`]). Keep the returned [`Registration`] for as long as the connection
    /// lives. A server registers the connections it accepts itself.
    pub fn register(&self, sender: Sender, peer: SocketAddr, path: impl Into<String>) -> Registration {
        let id = self.insert(sender, peer, path.into());
        Registration { id, inner: self.inner.clone() }
    }

    /// Adds a connection; whoever calls this removes it with [`Connections::unregister`].
    pub(crate) fn insert(&self, sender: Sender, peer: SocketAddr, path: String) -> u64 {
        let id = sender.id();
        let path = if path == "/" { Cow::Borrowed("/") } else { Cow::Owned(path) };
        // A connection registered twice (in two sets) keeps what it was first registered with.
        let _ = sender.shared.registered.set(Registered { peer, path, opened: Instant::now() });
        lock(&self.inner).insert(id, sender);
        id
    }

    /// How many connections are live. A connection that has ended counts out at once, even while
    /// its task still holds its [`Registration`] (logging how it closed, say).
    pub fn len(&self) -> usize {
        lock(&self.inner).values().filter(|s| !s.is_closed()).count()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live connections, by id.
    pub fn list(&self) -> Vec<ConnectionInfo> {
        let mut list: Vec<ConnectionInfo> = lock(&self.inner)
            .values()
            .filter(|s| !s.is_closed())
            .filter_map(|s| {
                let r = s.shared.registered.get()?;
                let (messages_in, messages_out) = s.message_counts();
                Some(ConnectionInfo {
                    id: s.id(),
                    peer: r.peer,
                    path: r.path.to_string(),
                    opened: r.opened,
                    messages_in,
                    messages_out,
                    buffered: s.buffered_amount(),
                })
            })
            .collect();
        list.sort_by_key(|c| c.id);
        list
    }

    /// The sender of connection `id`.
    pub fn sender(&self, id: u64) -> Option<Sender> {
        lock(&self.inner).get(&id).cloned()
    }

    /// Sends a message to one connection.
    pub fn send_to(&self, id: u64, message: impl Into<Message>) -> Result<(), SendToError> {
        let sender = self.sender(id).ok_or(SendToError::NoSuchConnection(id))?;
        sender.send(message).map_err(SendToError::Queue)
    }

    /// Sends a message to every live connection, encoding its frame once and sharing the bytes.
    /// Returns how many connections took it; one that is closed or over its write buffer limit is
    /// skipped (and counted out), never waited for.
    pub fn broadcast(&self, message: impl Into<Message>) -> usize {
        let frame = PreparedFrame::new(message);
        let senders: Vec<Sender> = lock(&self.inner).values().filter(|s| !s.is_closed()).cloned().collect();
        senders.iter().filter(|s| s.send_prepared(&frame).is_ok()).count()
    }

    /// Removes connection `id` (what dropping its [`Registration`] does).
    pub(crate) fn unregister(&self, id: u64) {
        lock(&self.inner).remove(&id);
    }

    /// Starts the close handshake of every live connection with `frame` (after what each already
    /// has queued); returns how many took it.
    pub fn close_all(&self, frame: Option<CloseFrame>) -> usize {
        let senders: Vec<Sender> = lock(&self.inner).values().cloned().collect();
        senders.iter().filter(|s| s.close(frame.clone()).is_ok()).count()
    }

    /// Bytes waiting to be written to the live connections, in all.
    pub fn buffered_amount(&self) -> usize {
        lock(&self.inner).values().filter(|s| !s.is_closed()).map(Sender::buffered_amount).sum()
    }

    /// Starts the close handshake of one connection.
    pub fn close(&self, id: u64, frame: Option<CloseFrame>) -> Result<(), SendToError> {
        let sender = self.sender(id).ok_or(SendToError::NoSuchConnection(id))?;
        sender.close(frame).map_err(SendToError::Queue)
    }
}
