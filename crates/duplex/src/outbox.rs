//! Sending to a connection from any task: a [`Sender`] queues messages, and the connection's own
//! task moves them into its outgoing queue and writes them the next time it is polled (it is
//! always polled while the application awaits `recv`). No extra task, no channel with a
//! preallocated capacity: a queue that is empty holds no memory.
//!
//! ```no_run
//! # async fn f(mut ws: duplex::WebSocket<tokio::net::TcpStream>) {
//! let sender = ws.sender();
//! tokio::spawn(async move {
//!     let _ = sender.send("pushed from another task");
//! });
//! while let Some(Ok(msg)) = ws.recv().await { /* ... */ }
//! # }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use duplex_proto::{CloseFrame, Message, PreparedFrame};
use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use crate::config::SlowConsumer;

/// A command for the connection's task.
#[derive(Debug)]
pub(crate) enum Command {
    Message(Message),
    /// A message framed once for many connections.
    Prepared(PreparedFrame),
    Close(Option<CloseFrame>),
}

impl Command {
    /// The bytes this command adds to the connection's write buffer: a message counts as the
    /// largest frame it can become (payload, header and mask key), so the limit holds once the
    /// socket has encoded it.
    fn size(&self) -> usize {
        match self {
            Command::Message(m) => m.len() + frame_overhead(m.len()),
            Command::Prepared(f) => f.payload().len() + frame_overhead(f.payload().len()),
            Command::Close(_) => 0,
        }
    }
}

/// The most a frame header adds to a payload of `len` bytes (the length field and a mask key).
fn frame_overhead(len: usize) -> usize {
    let length_field = match len {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    2 + length_field + 4
}

/// Connection ids, unique in the process: a connection's [`Sender`], its entry in a server's
/// [`Connections`](crate::Connections) and its pub/sub subscriber all go by the same number.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What a registry says of a connection: set once, when it is registered.
#[derive(Debug)]
pub(crate) struct Registered {
    pub(crate) peer: std::net::SocketAddr,
    /// The request target; "/" (most connections') without an allocation.
    pub(crate) path: std::borrow::Cow<'static, str>,
    pub(crate) opened: std::time::Instant,
}

/// The state a [`Sender`] shares with its socket.
pub(crate) struct Shared {
    /// The connection's id (see [`Sender::id`]).
    pub(crate) id: u64,
    /// Kept here rather than in the registry's map: this state exists for every registered
    /// connection anyway, and the map then holds only a pointer per connection.
    pub(crate) registered: std::sync::OnceLock<Registered>,
    queue: Mutex<VecDeque<Command>>,
    queued_bytes: AtomicUsize,
    /// Bytes queued in the socket itself (written back by the socket on every poll).
    socket_buffered: AtomicUsize,
    limit: usize,
    policy: SlowConsumer,
    waker: AtomicWaker,
    /// Commands queued and not yet taken (checked without the lock).
    pending: AtomicUsize,
    closed: AtomicBool,
    /// A close was queued by the slow-consumer policy: queue nothing more.
    closing: AtomicBool,
    /// Senders waiting for room ([`Sender::send_wait`]), woken when the socket drains.
    room: Notify,
    waiting: AtomicUsize,
    /// Messages dropped by [`SlowConsumer::Drop`].
    pub(crate) dropped: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
}

impl Shared {
    pub(crate) fn new(limit: usize, policy: SlowConsumer) -> Arc<Shared> {
        Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            registered: std::sync::OnceLock::new(),
            queue: Mutex::new(VecDeque::new()),
            queued_bytes: AtomicUsize::new(0),
            socket_buffered: AtomicUsize::new(0),
            limit,
            policy,
            waker: AtomicWaker::new(),
            pending: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            room: Notify::new(),
            waiting: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
        })
    }

    /// Called by the socket's task before it sleeps: registers `waker` for the next push, and
    /// says whether something was queued meanwhile (then the task takes it instead of sleeping).
    /// A push after this check wakes the waker registered here, so nothing is missed.
    pub(crate) fn arm(&self, waker: &Waker) -> bool {
        self.waker.register(waker);
        self.pending.load(Ordering::Acquire) != 0
    }

    /// Called by the socket's task: takes everything queued (without registering for wake-ups:
    /// [`Shared::arm`] does that once, before the task sleeps).
    #[inline]
    pub(crate) fn take(&self) -> Option<VecDeque<Command>> {
        // The common case, nothing queued: one load in the caller, no lock, no call.
        if self.pending.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.take_queued()
    }

    fn take_queued(&self) -> Option<VecDeque<Command>> {
        let mut queue = self.lock();
        self.pending.store(0, Ordering::Release);
        if queue.is_empty() {
            return None;
        }
        // The bytes move from this queue to the socket's in one step under the lock, so a sender
        // never sees them in neither place (the socket stores the exact figure once it has
        // encoded them).
        let moved = self.queued_bytes.swap(0, Ordering::AcqRel);
        self.socket_buffered.fetch_add(moved, Ordering::AcqRel);
        Some(std::mem::take(&mut *queue))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Command>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_socket_buffered(&self, n: usize) {
        self.socket_buffered.store(n, Ordering::Relaxed);
        if self.waiting.load(Ordering::Acquire) > 0 && self.buffered() <= self.limit / 2 {
            self.room.notify_waiters();
        }
    }

    fn buffered(&self) -> usize {
        self.queued_bytes.load(Ordering::Relaxed) + self.socket_buffered.load(Ordering::Relaxed)
    }

    /// The socket has ended: senders fail from now on, and what is queued is dropped.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.lock().clear();
        self.queued_bytes.store(0, Ordering::Release);
        self.room.notify_waiters();
    }

    fn push(&self, cmd: Command) -> Result<(), TrySendError> {
        self.push_with(cmd, self.policy)
    }

    /// Queues `cmd` if there is room; otherwise gives it back with the reason.
    fn try_push(&self, cmd: Command) -> Result<(), (TrySendError, Command)> {
        if self.closed.load(Ordering::Acquire) || self.closing.load(Ordering::Acquire) {
            return Err((TrySendError::Closed, cmd));
        }
        let size = cmd.size();
        // Checked and counted under the lock, so concurrent senders cannot pass the limit together.
        let mut queue = self.lock();
        let buffered = self.buffered();
        if size > 0 && buffered + size > self.limit {
            return Err((TrySendError::Full { buffered, limit: self.limit }, cmd));
        }
        queue.push_back(cmd);
        self.queued_bytes.fetch_add(size, Ordering::AcqRel);
        drop(queue);
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.waker.wake();
        Ok(())
    }

    fn push_with(&self, cmd: Command, policy: SlowConsumer) -> Result<(), TrySendError> {
        let full = match self.try_push(cmd) {
            Ok(()) => return Ok(()),
            Err((full @ TrySendError::Full { .. }, _)) => full,
            Err((e, _)) => return Err(e),
        };
        match policy {
            SlowConsumer::Reject => Err(full),
            SlowConsumer::Drop => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                crate::metrics::slow_consumer_dropped();
                Err(TrySendError::Dropped)
            }
            SlowConsumer::Close(code) => {
                if !self.closing.swap(true, Ordering::AcqRel) {
                    crate::metrics::slow_consumer_closed();
                    tracing::debug!(
                        buffered = self.buffered(),
                        limit = self.limit,
                        "slow consumer: closing with {code}"
                    );
                    self.lock().push_back(Command::Close(Some(CloseFrame::new(code, "slow consumer"))));
                    self.pending.fetch_add(1, Ordering::AcqRel);
                    self.waker.wake();
                }
                Err(TrySendError::Closed)
            }
        }
    }
}

/// Why a [`Sender`] could not queue a message. It converts into [`Error`](crate::Error), so
/// `sender.send(m)?` works in a function returning [`duplex::Result`](crate::Result).
///
/// ```
/// fn push(sender: &duplex::Sender) -> duplex::Result<()> {
///     sender.send("tick")?;
///     Ok(())
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrySendError {
    /// The connection has ended, or is closing.
    Closed,
    /// The message was dropped for this connection by [`SlowConsumer::Drop`]: it is over its
    /// write buffer limit. Later messages go through once it catches up.
    Dropped,
    /// The connection already has `buffered` bytes waiting, and this message would pass `limit`
    /// ([`Config::write_buffer_limit`](crate::Config::write_buffer_limit)): the peer reads
    /// slower than it is sent to.
    Full {
        /// Bytes waiting.
        buffered: usize,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Closed => f.write_str("the connection has closed or is closing"),
            TrySendError::Dropped => f.write_str("dropped: the connection is not reading fast enough"),
            TrySendError::Full { buffered, limit } => write!(
                f,
                "the connection already has {buffered} bytes waiting to be written (limit {limit}): the peer is not reading fast enough"
            ),
        }
    }
}

impl std::error::Error for TrySendError {}

/// A handle that sends to one connection from any task. Cloning it is cheap. See the
/// [module docs](self).
#[derive(Clone)]
pub struct Sender {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("id", &self.id())
            .field("closed", &self.is_closed())
            .field("buffered", &self.buffered_amount())
            .finish()
    }
}

impl Sender {
    /// Queues a message for the connection. Fails at once, without waiting, if the connection has
    /// ended or has more than its write buffer limit waiting.
    pub fn send(&self, message: impl Into<Message>) -> Result<(), TrySendError> {
        self.shared.push(Command::Message(message.into()))
    }

    /// Queues a message, waiting (without a timeout) while the connection is over its write buffer
    /// limit, whatever the slow-consumer policy: for producers that must not lose anything and
    /// can afford to go at the pace of this one reader.
    pub async fn send_wait(&self, message: impl Into<Message>) -> Result<(), TrySendError> {
        let mut cmd = Command::Message(message.into());
        loop {
            let notified = self.shared.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.shared.waiting.fetch_add(1, Ordering::AcqRel);
            let result = self.shared.try_push(cmd);
            match result {
                Err((TrySendError::Full { .. }, returned)) => {
                    notified.await;
                    self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
                    cmd = returned;
                }
                Err((e, _)) => {
                    self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(e);
                }
                Ok(()) => {
                    self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Ok(());
                }
            }
        }
    }

    /// Queues a message framed once for many connections ([`PreparedFrame`]): a server
    /// connection shares the frame's bytes (compressed once, when its compressor keeps no
    /// context) with every other connection it is sent to.
    pub fn send_prepared(&self, frame: &PreparedFrame) -> Result<(), TrySendError> {
        self.shared.push(Command::Prepared(frame.clone()))
    }

    /// Starts the close handshake with `frame` (after everything queued before it).
    pub fn close(&self, frame: Option<CloseFrame>) -> Result<(), TrySendError> {
        self.shared.push(Command::Close(frame))
    }

    /// The connection's id: unique in the process, the same in the server's
    /// [`Connections`](crate::Connections), in `duplex serve`'s console and logs (`#12`), and as
    /// the connection's pub/sub subscriber. Ids count up from 1 in the order connections first
    /// had a sender.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Bytes waiting to be written: queued here and in the socket (`bufferedAmount`), as of the
    /// socket's last poll.
    pub fn buffered_amount(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Relaxed) + self.shared.socket_buffered.load(Ordering::Relaxed)
    }

    /// Messages received and sent on the connection so far.
    pub fn message_counts(&self) -> (u64, u64) {
        (self.shared.messages_in.load(Ordering::Relaxed), self.shared.messages_out.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_after_arm_wakes_the_socket_and_arm_sees_what_came_before() {
        struct Wakes(AtomicUsize);
        impl futures_util::task::ArcWake for Wakes {
            fn wake_by_ref(w: &Arc<Self>) {
                w.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let shared = Shared::new(1000, SlowConsumer::Reject);
        let sender = Sender { shared: shared.clone() };
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = futures_util::task::waker(wakes.clone());
        assert!(!shared.arm(&waker), "nothing queued");
        sender.send("a").unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "a push after arm wakes");
        // Taken without registering: the wake used the registration up, so a push now wakes
        // nobody, and the next arm (before the socket sleeps) reports it instead.
        assert_eq!(shared.take().map(|q| q.len()), Some(1));
        assert!(shared.take().is_none());
        sender.send("b").unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(shared.arm(&waker), "arm sees the push that came before it");
        assert_eq!(shared.take().map(|q| q.len()), Some(1));
        assert!(!shared.arm(&waker));
        sender.send("c").unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_message_counts_as_the_largest_frame_it_can_become() {
        assert_eq!(Command::Message(Message::from("x".repeat(125))).size(), 125 + 2 + 4);
        assert_eq!(Command::Message(Message::from("x".repeat(126))).size(), 126 + 4 + 4);
        assert_eq!(Command::Message(Message::from(vec![0u8; 70_000])).size(), 70_000 + 10 + 4);
        assert_eq!(Command::Prepared(PreparedFrame::new("abc")).size(), 3 + 2 + 4);
    }

    #[test]
    fn the_limit_holds_while_the_socket_moves_the_queue_into_its_buffer() {
        let shared = Shared::new(1000, SlowConsumer::Reject);
        let sender = Sender { shared: shared.clone() };
        let msg = "x".repeat(94); // 100 bytes as a frame
        for _ in 0..10 {
            sender.send(msg.as_str()).unwrap();
        }
        assert!(matches!(sender.send(msg.as_str()), Err(TrySendError::Full { buffered: 1000, limit: 1000 })));
        // The socket takes the queue: until it reports its own figure, the bytes count as its.
        let taken = shared.take().unwrap();
        assert_eq!(taken.len(), 10);
        assert_eq!(sender.buffered_amount(), 1000);
        assert!(sender.send(msg.as_str()).is_err());
        // It wrote 300 of them.
        shared.set_socket_buffered(700);
        for _ in 0..3 {
            sender.send(msg.as_str()).unwrap();
        }
        assert!(sender.send(msg.as_str()).is_err());
    }

    #[test]
    fn concurrent_senders_cannot_pass_the_limit_together() {
        let shared = Shared::new(10_000, SlowConsumer::Drop);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let sender = Sender { shared: shared.clone() };
                std::thread::spawn(move || (0..1000).filter(|_| sender.send("y".repeat(94)).is_ok()).count())
            })
            .collect();
        let sent: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(sent, 100);
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 3900);
    }
}
