//! [`WebSocket`]: an open connection over any `AsyncRead + AsyncWrite`.
//!
//! The socket is the protocol core ([`duplex_proto::Connection`]) plus the transport, driven from
//! the task that owns it: no background task, no channel, no timer while the connection is open.
//! Reads go into a per-thread scratch buffer; the core keeps only the bytes of an incomplete frame
//! or message, so an idle connection holds no read buffer. Writes leave from the core's outgoing
//! queue with vectored writes.
//!
//! Writes: [`WebSocket::send`] returns once its message is written. To write once per read
//! instead of once per message (an echo loop answering a burst of pipelined messages), queue the
//! replies with [`WebSocket::feed`] and [`flush`](WebSocket::flush) when
//! [`has_pending_events`](WebSocket::has_pending_events) is false, as `duplex echo` does; whatever
//! is queued also leaves at the next `recv`.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Buf;
use duplex_proto::{CloseFrame, Connection, Event, Message, MessageKind, Role, State};
use futures_core::Stream;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use tokio::time::{Instant, Sleep};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::outbox::{self, Command, Sender};

/// Bytes read from the transport in one go.
const SCRATCH_SIZE: usize = 64 * 1024;

thread_local! {
    /// One receive buffer per runtime thread, shared by every connection polled on it.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_SIZE].into_boxed_slice());
}

/// Where the connection stands, from the transport's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Frames flow.
    Open,
    /// The close handshake is over or the connection failed: flush, shut down the write side,
    /// wait for the peer's TCP close (bounded by the close timeout).
    Closing { shut_down: bool },
    /// Nothing more will happen.
    Done,
}

/// An open WebSocket connection. See the [module docs](self).
///
/// ```no_run
/// # async fn f() -> duplex::Result<()> {
/// let mut ws = duplex::connect("ws://127.0.0.1:8080/").await?;
/// ws.send("hello").await?;
/// while let Some(msg) = ws.recv().await {
///     println!("{:?}", msg?);
/// }
/// # Ok(()) }
/// ```
pub struct WebSocket<S> {
    io: S,
    conn: Connection,
    /// Shared with the server and its other connections: no per-connection copy.
    config: Arc<Config>,
    phase: Phase,
    /// The deadline of the close handshake, armed only once it starts.
    close_timer: Option<Pin<Box<Sleep>>>,
    /// An error to report once the closing phase is over.
    error: Option<Error>,
    protocol: Option<String>,
    /// Where [`Sender`]s queue messages for this connection, once one was asked for.
    outbox: Option<Arc<outbox::Shared>>,
    /// This end sent the first close frame.
    closed_by_us: bool,
    /// Keepalive and idle timeout, only when configured.
    liveness: Option<Liveness>,
    /// Bytes were written since the transport was last flushed.
    unflushed: bool,
    /// A server connection's place in its server's count (dropped with the socket).
    permit: Option<crate::shutdown::Permit>,
}

/// The keepalive ping and idle timeout of one connection: one timer, re-armed only when it fires.
/// Reads just set a flag; the timer turns flags into timestamps, so the hot path never reads the
/// clock.
struct Liveness {
    sleep: Pin<Box<Sleep>>,
    read_seen: bool,
    message_seen: bool,
    last_read: Instant,
    last_message: Instant,
    ping_sent: Option<Instant>,
}

impl<S> Drop for WebSocket<S> {
    fn drop(&mut self) {
        if let Some(o) = &self.outbox {
            o.close();
        }
    }
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("role", &self.conn.role())
            .field("state", &self.conn.state())
            .field("phase", &self.phase)
            .field("buffered", &self.conn.buffered_amount())
            .finish()
    }
}

impl<S> WebSocket<S> {
    /// How the close handshake went: the frame that started it, and whether this end sent it.
    /// `None` until a close frame has been sent or received. A browser's `CloseEvent` shows the
    /// code and reason of the frame that started the handshake, whichever end sent it.
    pub fn closing_frame(&self) -> Option<(Option<CloseFrame>, bool)> {
        if self.closed_by_us {
            let sent = self.conn.close_sent().cloned().filter(|f| f.code != duplex_proto::CloseCode::NO_STATUS);
            Some((sent, true))
        } else {
            self.conn.close_received().map(|f| (f.clone(), false))
        }
    }

    /// The close frame the peer sent, once it has: `Some(None)` if it had no code.
    pub fn close_frame(&self) -> Option<&Option<CloseFrame>> {
        self.conn.close_received()
    }

    /// Bytes queued but not yet written to the transport (a browser's `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.conn.buffered_amount()
    }

    /// Whether the connection is fully closed (nothing more to receive or send).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The protocol state machine (read-only): state, close frames, failure.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a transport on which the opening handshake is already done — by this crate's
    /// server or client, or by another HTTP server (hyper, axum) that upgraded the connection.
    /// `leftover` holds bytes read past the handshake: frames the peer sent in the same packet.
    pub fn from_upgraded(io: S, role: Role, config: impl Into<Arc<Config>>, leftover: &[u8]) -> Self {
        Self::from_upgraded_with_deflate(io, role, config, None, leftover)
    }

    /// [`from_upgraded`](WebSocket::from_upgraded) for a handshake that agreed permessage-deflate
    /// with these parameters (see [`duplex_proto::DeflateConfig::negotiate`] and
    /// [`duplex_proto::DeflateConfig::accept_response`]).
    pub fn from_upgraded_with_deflate(
        io: S,
        role: Role,
        config: impl Into<Arc<Config>>,
        deflate: Option<duplex_proto::DeflateParams>,
        leftover: &[u8],
    ) -> Self {
        let config = config.into();
        let mut conn = Connection::with_deflate(role, config.protocol.clone(), deflate);
        if !leftover.is_empty() {
            conn.receive(leftover);
        }
        let liveness = (config.ping_interval.is_some() || config.idle_timeout.is_some()).then(|| {
            let now = Instant::now();
            Liveness {
                sleep: Box::pin(tokio::time::sleep_until(now + first_check(&config))),
                read_seen: false,
                message_seen: false,
                last_read: now,
                last_message: now,
                ping_sent: None,
            }
        });
        WebSocket {
            io,
            conn,
            config,
            phase: Phase::Open,
            close_timer: None,
            error: None,
            protocol: None,
            outbox: None,
            closed_by_us: false,
            liveness,
            unflushed: false,
            permit: None,
        }
    }

    pub(crate) fn set_permit(&mut self, permit: crate::shutdown::Permit) {
        self.permit = Some(permit);
    }

    pub(crate) fn with_protocol(mut self, protocol: Option<String>) -> Self {
        self.protocol = protocol;
        self
    }

    /// A handle to send to this connection from other tasks. Messages sent through it are written
    /// by this socket's task while it is polled (while the application awaits
    /// [`recv`](WebSocket::recv) or [`next_event`](WebSocket::next_event)).
    pub fn sender(&mut self) -> Sender {
        let shared = self
            .outbox
            .get_or_insert_with(|| outbox::Shared::new(self.config.write_buffer_limit, self.config.slow_consumer));
        if self.phase == Phase::Done {
            shared.close();
        }
        Sender { shared: shared.clone() }
    }

    /// Moves what senders queued into the protocol's outgoing queue.
    fn drain_outbox(&mut self, cx: &Context<'_>) {
        let Some(shared) = &self.outbox else { return };
        let Some(commands) = shared.take(cx.waker()) else { return };
        for cmd in commands {
            let result = match cmd {
                Command::Message(m) => {
                    shared.messages_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.conn.send(m)
                }
                Command::Encoded(frame) => {
                    shared.messages_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.conn.send_encoded(frame)
                }
                Command::Close(frame) => {
                    let r = self.conn.close(frame);
                    self.closed_by_us |= r.is_ok() && self.conn.close_received().is_none();
                    if r.is_ok() && self.close_timer.is_none() {
                        self.close_timer =
                            Some(Box::pin(tokio::time::sleep_until(Instant::now() + self.config.close_timeout)));
                    }
                    r
                }
            };
            if let Err(e) = result {
                tracing::debug!("dropped a queued send: {e}");
            }
        }
    }

    fn count(&self, event: &Event) {
        if let (Some(o), Event::Message(_)) = (&self.outbox, event) {
            o.messages_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Receives the next message. Pings are answered and pongs skipped; `None` once the connection
    /// has closed (the peer's close frame is then in [`WebSocket::close_frame`]). An `Err` is the
    /// reason the connection ended abnormally, reported after the close handshake was attempted.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Receives the next event of any kind: messages, fragments (streaming mode), pings, pongs and
    /// the peer's close frame. `None` once the connection has closed.
    pub async fn next_event(&mut self) -> Option<Result<Event>> {
        poll_fn(|cx| self.poll_event(cx)).await
    }

    /// Sends a message: queues it and waits until it is written (with anything queued before).
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        self.conn.send(message.into())?;
        if let Some(o) = &self.outbox {
            o.messages_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.after_queue().await
    }

    /// Queues a message without waiting for it to be written, unless more than
    /// [`Config::write_buffer_limit`] bytes are queued. Follow with [`WebSocket::flush`].
    pub async fn feed(&mut self, message: impl Into<Message>) -> Result<()> {
        self.conn.send(message.into())?;
        if self.conn.buffered_amount() > self.config.write_buffer_limit {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends one frame of a message too large to hold at once: `first` starts it, `last` ends it.
    pub async fn send_fragment(&mut self, kind: MessageKind, data: &[u8], first: bool, last: bool) -> Result<()> {
        self.conn.send_fragment(kind, data, first, last)?;
        self.after_queue().await
    }

    /// Sends a frame encoded once for many connections ([`duplex_proto::encode_server_frame`]).
    pub async fn send_encoded(&mut self, frame: bytes::Bytes) -> Result<()> {
        self.conn.send_encoded(frame)?;
        self.after_queue().await
    }

    /// Sends a ping (at most 125 bytes).
    pub async fn ping(&mut self, payload: &[u8]) -> Result<()> {
        self.conn.send_ping(payload)?;
        self.flush().await
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(crate) fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        self.conn.close(frame)?;
        self.closed_by_us = self.conn.close_received().is_none();
        self.arm_close_timer();
        Ok(())
    }

    /// Starts the close handshake with `code` and `reason` and writes the close frame. Keep
    /// calling [`WebSocket::recv`] until it returns `None` to finish the handshake (messages the
    /// peer sent meanwhile are still delivered); if the peer does not answer within
    /// [`Config::close_timeout`] the connection is dropped.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        self.start_close(frame)?;
        self.flush().await
    }

    /// Waits until every queued byte has been written.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    async fn after_queue(&mut self) -> Result<()> {
        // Always written before returning: a reply held back for a `recv` that never comes (a
        // client that sends here and then waits on another connection) would never leave.
        self.flush().await
    }

    /// Whether messages (or other events) from the last read are parsed and waiting for
    /// [`recv`](WebSocket::recv): while they are, replies [`feed`](WebSocket::feed) in can wait
    /// and leave together with one [`flush`](WebSocket::flush).
    pub fn has_pending_events(&self) -> bool {
        self.conn.has_events()
    }

    fn arm_close_timer(&mut self) {
        if self.close_timer.is_none() {
            self.close_timer = Some(Box::pin(tokio::time::sleep_until(Instant::now() + self.config.close_timeout)));
        }
    }

    /// Polls for the next message; see [`WebSocket::recv`].
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        loop {
            match ready!(self.poll_event(cx)) {
                Some(Ok(Event::Message(m))) => return Poll::Ready(Some(Ok(m))),
                Some(Ok(Event::Fragment(f))) => {
                    // Streaming mode through the message API: each piece as binary (a text piece
                    // may end inside a character). `next_event` tells kinds and boundaries.
                    return Poll::Ready(Some(Ok(Message::Binary(f.data))));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(None),
            }
        }
    }

    /// Polls for the next event; see [`WebSocket::next_event`].
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        loop {
            match self.phase {
                Phase::Done => {
                    if let Some(o) = &self.outbox {
                        o.close();
                    }
                    return Poll::Ready(self.error.take().map(Err));
                }
                Phase::Closing { .. } => {
                    ready!(self.poll_closing(cx));
                    continue;
                }
                Phase::Open => {}
            }
            match self.conn.next_event() {
                Ok(Some(event)) => {
                    self.count(&event);
                    if let (Some(l), Event::Message(_) | Event::Fragment(_)) = (&mut self.liveness, &event) {
                        l.message_seen = true;
                    }
                    if matches!(event, Event::Close(_)) {
                        self.start_closing();
                    }
                    return Poll::Ready(Some(Ok(event)));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "peer violated the protocol; closing with {}", e.code());
                    self.error = Some(Error::Protocol(e));
                    self.start_closing();
                    continue;
                }
            }
            // Nothing parsed is waiting: take what senders queued, write, then read.
            self.drain_outbox(cx);
            if let Err(e) = self.poll_write_some(cx) {
                self.fail_io(e);
                continue;
            }
            if let Some(o) = &self.outbox {
                o.set_socket_buffered(self.conn.buffered_amount());
            }
            // Backpressure on the peer: while more than the write buffer limit waits to be written
            // (pongs to a ping flood from a peer that never reads), stop reading. The pending
            // write has registered the waker, so the task wakes when the socket drains.
            let read = if self.conn.buffered_amount() > self.config.write_buffer_limit {
                Poll::Pending
            } else {
                self.poll_read_into_core(cx)
            };
            match read {
                Poll::Ready(Ok(0)) => {
                    self.error = Some(Error::AbnormalClosure);
                    self.phase = Phase::Done;
                }
                Poll::Ready(Ok(_)) => {
                    if let Some(l) = self.liveness.as_mut() {
                        l.read_seen = true;
                    }
                }
                Poll::Ready(Err(e)) => self.fail_io(e),
                Poll::Pending => {
                    // About to sleep: check the timers here, once per wake-up rather than once
                    // per message.
                    if self.liveness.is_some() && self.poll_liveness(cx) {
                        continue;
                    }
                    if self.conn.state() == State::CloseSent {
                        if let Some(t) = &mut self.close_timer {
                            if t.as_mut().poll(cx).is_ready() {
                                tracing::debug!("peer did not answer our close frame in time");
                                self.error = Some(Error::Timeout("waiting for the peer's close frame"));
                                self.phase = Phase::Done;
                                continue;
                            }
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn fail_io(&mut self, e: io::Error) {
        self.error = Some(Error::Io(e));
        self.phase = Phase::Done;
    }

    fn start_closing(&mut self) {
        self.phase = Phase::Closing { shut_down: false };
        self.arm_close_timer();
    }

    /// The closing phase: flush, shut down our write side, read until the peer closes, all within
    /// the close timeout. RFC 6455 §7.1.1: the server closes TCP first; the client waits for it.
    /// Both ends send FIN once their close frame is out, which lets a peer that waits for our TCP
    /// close go on, and both read until EOF so no unread data turns our close into a reset.
    fn poll_closing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let timed_out = self.close_timer.as_mut().is_some_and(|t| t.as_mut().poll(cx).is_ready());
        if timed_out {
            tracing::debug!("close handshake timed out; dropping the connection");
            self.phase = Phase::Done;
            return Poll::Ready(());
        }
        if let Phase::Closing { shut_down: false } = self.phase {
            match self.poll_write_all(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => {
                    self.phase = Phase::Done;
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
            match Pin::new(&mut self.io).poll_shutdown(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(_) => self.phase = Phase::Closing { shut_down: true },
            }
        }
        // Discard whatever the peer still sends until it closes.
        loop {
            match ready!(self.poll_read_discard(cx)) {
                Ok(0) | Err(_) => {
                    self.phase = Phase::Done;
                    return Poll::Ready(());
                }
                Ok(_) => continue,
            }
        }
    }

    /// Checks keepalive and idle deadlines when their timer fires; true if it queued something
    /// or ended the connection (the caller loops to act on it).
    fn poll_liveness(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(l) = self.liveness.as_mut() else { return false };
        if l.sleep.as_mut().poll(cx).is_pending() {
            return false;
        }
        let now = Instant::now();
        if std::mem::take(&mut l.read_seen) {
            l.last_read = now;
            l.ping_sent = None;
        }
        if std::mem::take(&mut l.message_seen) {
            l.last_message = now;
        }
        let mut acted = false;
        let mut next = now + Duration::from_secs(3600);
        if let Some(sent) = l.ping_sent {
            if now >= sent + self.config.pong_timeout {
                tracing::debug!(
                    "keepalive: no answer within {:?} of a ping; dropping the connection",
                    self.config.pong_timeout
                );
                self.error = Some(Error::Timeout("keepalive: the peer did not answer a ping"));
                self.phase = Phase::Done;
                return true;
            }
            next = next.min(sent + self.config.pong_timeout);
        } else if let Some(interval) = self.config.ping_interval {
            if now >= l.last_read + interval {
                if self.conn.send_ping(b"keepalive").is_ok() {
                    l.ping_sent = Some(now);
                    next = next.min(now + self.config.pong_timeout);
                    acted = true;
                }
            } else {
                next = next.min(l.last_read + interval);
            }
        }
        if let Some(idle) = self.config.idle_timeout {
            if now >= l.last_message + idle && self.conn.close_sent().is_none() {
                tracing::debug!("idle for {idle:?}: closing");
                let _ = self.start_close(Some(CloseFrame::new(duplex_proto::CloseCode::GOING_AWAY, "idle timeout")));
                return true;
            }
            next = next.min(l.last_message + idle);
        }
        let l = self.liveness.as_mut().expect("checked above");
        l.sleep.as_mut().reset(next.max(now + Duration::from_millis(10)));
        acted
    }

    fn poll_read_into_core(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Self { io, conn, .. } = self;
        with_scratch(|buf| {
            let mut rb = ReadBuf::new(buf);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            conn.receive(rb.filled());
            Poll::Ready(Ok(n))
        })
    }

    fn poll_read_discard(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let io = &mut self.io;
        with_scratch(|buf| {
            let mut rb = ReadBuf::new(buf);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
            Poll::Ready(Ok(rb.filled().len()))
        })
    }

    /// Writes as much of the queue as the transport takes now; never waits.
    fn poll_write_some(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.poll_write_all(cx) {
            Poll::Ready(r) => r,
            Poll::Pending => Ok(()),
        }
    }

    /// Writes the whole queue and flushes the transport.
    fn poll_write_all(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let out = self.conn.outgoing();
        while out.has_remaining() {
            let chunk = out.chunk();
            let written = if chunk.len() == out.remaining() {
                // All of it in one piece (the usual case): no slice array to fill.
                ready!(Pin::new(&mut self.io).poll_write(cx, chunk))?
            } else {
                let mut slices = [IoSlice::new(&[]); 64];
                let n = out.chunks_vectored(&mut slices);
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]))?
            };
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            out.advance(written);
            self.unflushed = true;
        }
        // Flush only after writing: a no-op for TCP, but TLS holds records until flushed.
        if self.unflushed {
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Polls until everything queued is written; see [`WebSocket::flush`].
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.phase == Phase::Done {
            return Poll::Ready(if self.conn.buffered_amount() == 0 { Ok(()) } else { Err(Error::Closed) });
        }
        match ready!(self.poll_write_all(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => {
                let kind = e.kind();
                self.fail_io(e);
                Poll::Ready(Err(Error::Io(kind.into())))
            }
        }
    }
}

/// When the liveness timer first fires: the shorter of the ping interval and the idle timeout.
fn first_check(config: &Config) -> Duration {
    [config.ping_interval, config.idle_timeout].into_iter().flatten().min().unwrap_or(Duration::from_secs(3600))
}

fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        // Only if a read is polled from inside another on the same thread: use a private buffer.
        Err(_) => f(&mut vec![0; SCRATCH_SIZE]),
    })
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}
