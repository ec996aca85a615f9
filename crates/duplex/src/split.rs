//! Read and write halves of a [`WebSocket`], for one task that receives and another that sends.
//!
//! Both halves share the socket behind a mutex that is held only for one non-blocking poll, never
//! across an `await`. No task of ours runs in between: whichever half is polled makes progress
//! for both (the reader writes pongs and close answers, the writer's flush does not need the
//! reader). The transport is polled with a waker that wakes both halves, so neither can take the
//! other's wake-up away.
//!
//! ```no_run
//! # async fn f() -> duplex::Result<()> {
//! let ws = duplex::connect("ws://127.0.0.1:8080/").await?;
//! let (mut rx, mut tx) = ws.split();
//! tokio::spawn(async move {
//!     while let Some(Ok(msg)) = rx.recv().await {
//!         println!("{msg:?}");
//!     }
//! });
//! tx.send("hello").await?;
//! # Ok(()) }
//! ```

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Wake, Waker};

use duplex_proto::{CloseFrame, CloseInfo, Event, Message};
use futures_core::{FusedStream, Stream};
use futures_sink::Sink;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};
use crate::socket::WebSocket;

struct Wakers {
    read: AtomicWaker,
    write: AtomicWaker,
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.read.wake();
        self.write.wake();
    }
}

struct Shared<S> {
    ws: Mutex<WebSocket<S>>,
    wakers: Arc<Wakers>,
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, WebSocket<S>> {
        // A panic while polling leaves the socket as consistent as any other point between polls.
        self.ws.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn poll_with<T>(
        &self,
        which: &AtomicWaker,
        cx: &Context<'_>,
        f: impl FnOnce(&mut WebSocket<S>, &mut Context<'_>) -> T,
    ) -> T {
        which.register(cx.waker());
        let waker = Waker::from(self.wakers.clone());
        let mut shared_cx = Context::from_waker(&waker);
        f(&mut self.lock(), &mut shared_cx)
    }
}

/// The receiving half: also a [`Stream`] of messages, fused (see [`crate::sink`] for cancel
/// safety).
pub struct ReadHalf<S> {
    shared: Arc<Shared<S>>,
    /// The stream returned `None`: nothing more will come.
    terminated: bool,
}

/// The sending half: also a [`Sink<Message>`](Sink) (see [`crate::sink`]).
pub struct WriteHalf<S> {
    shared: Arc<Shared<S>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Splits the socket into a receiving and a sending half. See the [module docs](crate::split).
    ///
    /// ```
    /// use duplex::{Config, Message, Role, WebSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> duplex::Result<()> {
    /// let (a, b) = tokio::io::duplex(4096);
    /// let (mut rx, mut tx) = WebSocket::from_upgraded(a, Role::Client, Config::default(), &[]).split();
    /// let mut peer = WebSocket::from_upgraded(b, Role::Server, Config::default(), &[]);
    /// let writer = tokio::spawn(async move { tx.send("from the writing task").await });
    /// assert_eq!(peer.recv().await.transpose()?, Some(Message::Text("from the writing task".into())));
    /// writer.await.unwrap()?;
    /// peer.send("to the reading task").await?;
    /// assert_eq!(rx.recv().await.transpose()?, Some(Message::Text("to the reading task".into())));
    /// # Ok(()) }
    /// ```
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let shared = Arc::new(Shared {
            ws: Mutex::new(self),
            wakers: Arc::new(Wakers { read: AtomicWaker::new(), write: AtomicWaker::new() }),
        });
        (ReadHalf { shared: shared.clone(), terminated: false }, WriteHalf { shared })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Receives the next message; see [`WebSocket::recv`].
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        let shared = &self.shared;
        poll_fn(|cx| shared.poll_with(&shared.wakers.read, cx, |ws, cx| ws.poll_recv(cx))).await
    }

    /// How the close handshake went; see [`WebSocket::close_info`].
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.lock().close_info()
    }

    /// Receives the next event; see [`WebSocket::next_event`].
    pub async fn next_event(&mut self) -> Option<Result<Event>> {
        let shared = &self.shared;
        poll_fn(|cx| shared.poll_with(&shared.wakers.read, cx, |ws, cx| ws.poll_event(cx))).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    /// Sends a message and waits until it is written.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        self.shared.lock().queue(message.into())?;
        self.flush().await
    }

    /// Sends a ping.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<()> {
        self.shared.lock().conn_mut().send_ping(payload)?;
        self.flush().await
    }

    /// Starts the close handshake; the read half sees the end of the connection.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        self.shared.lock().start_close(frame)?;
        self.flush().await
    }

    /// Waits until every queued byte is written.
    pub async fn flush(&mut self) -> Result<()> {
        let shared = &self.shared;
        poll_fn(|cx| shared.poll_with(&shared.wakers.write, cx, |ws, cx| ws.poll_flush(cx))).await
    }

    /// Bytes queued but not yet written.
    pub fn buffered_amount(&self) -> usize {
        self.shared.lock().buffered_amount()
    }
}

impl<S> WriteHalf<S> {
    /// Whether `other` is the read half of the same socket.
    pub fn is_pair_of(&self, other: &ReadHalf<S>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for ReadHalf<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.terminated {
            return Poll::Ready(None);
        }
        let shared = &this.shared;
        let next = ready!(shared.poll_with(&shared.wakers.read, cx, |ws, cx| ws.poll_recv(cx)));
        this.terminated = next.is_none();
        Poll::Ready(next)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FusedStream for ReadHalf<S> {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let shared = &self.shared;
        shared.poll_with(&shared.wakers.write, cx, |ws, cx| ws.poll_ready_to_send(cx))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        self.shared.lock().queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let shared = &self.shared;
        shared.poll_with(&shared.wakers.write, cx, |ws, cx| ws.poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let shared = &self.shared;
        shared.poll_with(&shared.wakers.write, cx, |ws, cx| ws.poll_close(cx))
    }
}

#[allow(dead_code)]
fn _assert_send<S: Send>() {
    fn is_send<T: Send>() {}
    is_send::<ReadHalf<S>>();
    is_send::<WriteHalf<S>>();
    let _ = Poll::<()>::Pending;
}
