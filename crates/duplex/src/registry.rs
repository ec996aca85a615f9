//! The live connections of a server, listed and addressed by a short id from anywhere in the
//! application: an operator console, an admin endpoint, a broadcast timer.
//!
//! ```no_run
//! # async fn f(mut ws: duplex::WebSocket<tokio::net::TcpStream>, peer: std::net::SocketAddr) {
//! let connections = duplex::Connections::new();
//! let registration = connections.register(&mut ws, peer, "/");
//! println!("connection #{} opened", registration.id());
//! connections.broadcast("hello, everyone");
//! for info in connections.list() {
//!     println!("#{} {} {:?}", info.id, info.peer, info.opened.elapsed());
//! }
//! // The entry goes away when `registration` is dropped, at the end of the connection's task.
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use duplex_proto::{encode_server_frame, CloseFrame, Message};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::outbox::{SendError, Sender};
use crate::socket::WebSocket;

#[derive(Debug)]
struct Entry {
    sender: Sender,
    peer: SocketAddr,
    path: String,
    opened: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Mutex<BTreeMap<u64, Entry>>,
    next_id: AtomicU64,
}

/// A set of live connections. Cloning it gives another handle to the same set.
#[derive(Clone, Debug, Default)]
pub struct Connections {
    inner: Arc<Inner>,
}

/// What [`Connections::list`] says of one connection.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The id given at registration: 1, 2, 3 ... in order of arrival.
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
    Send(SendError),
}

impl fmt::Display for SendToError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendToError::NoSuchConnection(id) => write!(f, "no open connection has id {id}"),
            SendToError::Send(e) => e.fmt(f),
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

fn lock(inner: &Inner) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
    inner.entries.lock().unwrap_or_else(|p| p.into_inner())
}

impl Connections {
    /// An empty set.
    pub fn new() -> Self {
        Connections::default()
    }

    /// Adds a connection and gives it the next id. Keep the returned [`Registration`] for as long
    /// as the connection lives.
    pub fn register<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        ws: &mut WebSocket<S>,
        peer: SocketAddr,
        path: impl Into<String>,
    ) -> Registration {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Entry { sender: ws.sender(), peer, path: path.into(), opened: Instant::now() };
        lock(&self.inner).insert(id, entry);
        Registration { id, inner: self.inner.clone() }
    }

    /// How many connections are live. A connection that has ended counts out at once, even while
    /// its task still holds its [`Registration`] (logging how it closed, say).
    pub fn len(&self) -> usize {
        lock(&self.inner).values().filter(|e| !e.sender.is_closed()).count()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live connections, by id.
    pub fn list(&self) -> Vec<ConnectionInfo> {
        lock(&self.inner)
            .iter()
            .filter(|(_, e)| !e.sender.is_closed())
            .map(|(&id, e)| {
                let (messages_in, messages_out) = e.sender.message_counts();
                ConnectionInfo {
                    id,
                    peer: e.peer,
                    path: e.path.clone(),
                    opened: e.opened,
                    messages_in,
                    messages_out,
                    buffered: e.sender.buffered_amount(),
                }
            })
            .collect()
    }

    /// The sender of connection `id`.
    pub fn sender(&self, id: u64) -> Option<Sender> {
        lock(&self.inner).get(&id).map(|e| e.sender.clone())
    }

    /// Sends a message to one connection.
    pub fn send_to(&self, id: u64, message: impl Into<Message>) -> Result<(), SendToError> {
        let sender = self.sender(id).ok_or(SendToError::NoSuchConnection(id))?;
        sender.send(message).map_err(SendToError::Send)
    }

    /// Sends a message to every live connection, encoding its frame once and sharing the bytes.
    /// Returns how many connections took it; one that is closed or over its write buffer limit is
    /// skipped (and counted out), never waited for.
    pub fn broadcast(&self, message: impl Into<Message>) -> usize {
        let frame = encode_server_frame(&message.into());
        let senders: Vec<Sender> =
            lock(&self.inner).values().filter(|e| !e.sender.is_closed()).map(|e| e.sender.clone()).collect();
        senders.iter().filter(|s| s.send_encoded(frame.clone()).is_ok()).count()
    }

    /// Starts the close handshake of one connection.
    pub fn close(&self, id: u64, frame: Option<CloseFrame>) -> Result<(), SendToError> {
        let sender = self.sender(id).ok_or(SendToError::NoSuchConnection(id))?;
        sender.close(frame).map_err(SendToError::Send)
    }
}
