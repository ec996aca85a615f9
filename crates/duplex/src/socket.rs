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
use std::task::{ready, Context, Poll, Waker};

use bytes::Buf;
use duplex_proto::{CloseFrame, CloseInfo, Connection, Event, Message, MessageKind, PreparedFrame, Role, Transport};
use futures_core::Stream;
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
    /// The protocol, with every rule about closing and time; this type only drives it.
    conn: Connection,
    /// Shared with the server and its other connections: no per-connection copy.
    config: Arc<Config>,
    /// The core asked to finish the transport and the shutdown has not completed yet.
    shutting_down: bool,
    /// Nothing more will happen: the core terminated the connection, or the transport failed.
    done: bool,
    /// The one timer of this connection, set to the core's next deadline; allocated when the core
    /// first has one.
    timer: Option<Pin<Box<Sleep>>>,
    /// The waker `timer` was last polled with, while it stays registered there (same deadline,
    /// not elapsed): the timer is then not polled again on every wake-up (~120 instructions).
    timer_waker: Option<Waker>,
    /// An error to report once the connection is over (boxed: an open connection holds none).
    error: Option<Box<Error>>,
    protocol: Option<Box<str>>,
    /// Where [`Sender`]s queue messages for this connection, once one was asked for.
    outbox: Option<Arc<outbox::Shared>>,
    /// Bytes were written since the transport was last flushed.
    unflushed: bool,
    /// A server connection's place in its server's count and connections (dropped with the
    /// socket).
    #[cfg_attr(not(feature = "server"), allow(dead_code, reason = "only a server sets it"))]
    slot: Option<crate::shutdown::Slot>,
}

impl<S> Drop for WebSocket<S> {
    fn drop(&mut self) {
        crate::metrics::closed(self.conn.close_info());
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
            .field("done", &self.done)
            .field("buffered", &self.conn.buffered_amount())
            .finish()
    }
}

impl<S> WebSocket<S> {
    /// How the close handshake went: the close frame that started it and which end sent it (a
    /// browser's `CloseEvent` shows that frame's code and reason). `None` until a close frame has
    /// been sent or received.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.conn.close_info()
    }

    /// Bytes queued but not yet written to the transport (a browser's `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.conn.buffered_amount()
    }

    /// Whether the connection is fully closed (nothing more to receive or send).
    pub fn is_closed(&self) -> bool {
        self.done
    }

    /// The connection's id ([`Sender::id`]): `Some` for every connection a
    /// [`Server`](crate::Server) accepted (it is in the server's
    /// [`connections`](crate::Server::connections)) and for any socket a [`Sender`] was made for.
    pub fn id(&self) -> Option<u64> {
        self.outbox.as_ref().map(|o| o.id)
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The protocol state machine (read-only): state, close information, failure.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a transport on which the opening handshake is already done — by this crate's
    /// server or client, or by another HTTP server (hyper, axum) that upgraded the connection.
    /// `leftover` holds bytes read past the handshake: frames the peer sent in the same packet.
    ///
    /// ```
    /// use duplex::{Config, Message, Role, WebSocket};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> duplex::Result<()> {
    /// // Two ends of an in-memory stream stand in for a connection another server upgraded.
    /// let (a, b) = tokio::io::duplex(4096);
    /// let mut client = WebSocket::from_upgraded(a, Role::Client, Config::default(), &[]);
    /// let mut server = WebSocket::from_upgraded(b, Role::Server, Config::default(), &[]);
    /// client.send("hello").await?;
    /// assert_eq!(server.recv().await.transpose()?, Some(Message::Text("hello".into())));
    /// # Ok(()) }
    /// ```
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
        WebSocket {
            io,
            conn,
            config,
            shutting_down: false,
            done: false,
            timer: None,
            timer_waker: None,
            error: None,
            protocol: None,
            outbox: None,
            unflushed: false,
            slot: None,
        }
    }

    /// Ties a socket a server accepted to its place in the server's count and connections.
    #[cfg_attr(not(feature = "server"), allow(dead_code, reason = "only a server sets it"))]
    pub(crate) fn set_slot(&mut self, slot: crate::shutdown::Slot) {
        self.slot = Some(slot);
    }

    #[cfg_attr(not(any(feature = "server", feature = "client")), allow(dead_code, reason = "for either role"))]
    pub(crate) fn with_protocol(mut self, protocol: Option<String>) -> Self {
        self.protocol = protocol.map(String::into_boxed_str);
        self
    }

    /// A handle to send to this connection from other tasks. Messages sent through it are written
    /// by this socket's task while it is polled (while the application awaits
    /// [`recv`](WebSocket::recv) or [`next_event`](WebSocket::next_event)).
    ///
    /// ```
    /// # async fn pair() -> (duplex::WebSocket<tokio::io::DuplexStream>, duplex::WebSocket<tokio::io::DuplexStream>) {
    /// #     let (a, b) = tokio::io::duplex(4096);
    /// #     let c = duplex::Config::default();
    /// #     (duplex::WebSocket::from_upgraded(a, duplex::Role::Client, c.clone(), &[]),
    /// #      duplex::WebSocket::from_upgraded(b, duplex::Role::Server, c, &[]))
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> duplex::Result<()> {
    /// # let (mut client, mut server) = pair().await;
    /// let sender = server.sender();
    /// // The socket writes what its senders queue while its own task polls it (here, `recv`).
    /// tokio::spawn(async move { while let Some(Ok(_)) = server.recv().await {} });
    /// sender.send("from another task")?; // not async: from any task or thread
    /// assert_eq!(client.recv().await.transpose()?, Some("from another task".into()));
    /// # Ok(()) }
    /// ```
    pub fn sender(&mut self) -> Sender {
        let shared = self
            .outbox
            .get_or_insert_with(|| outbox::Shared::new(self.config.write_buffer_limit, self.config.slow_consumer));
        if self.done {
            shared.close();
        }
        Sender { shared: shared.clone() }
    }

    /// Hands a message to the core and counts it as sent (the one place a data message is counted).
    fn queue_message(conn: &mut Connection, message: Message) -> Result<(), duplex_proto::SendError> {
        let (kind, len) = (message.kind(), message.len());
        conn.send(message)?;
        crate::metrics::message_sent(kind, len);
        Ok(())
    }

    /// As `queue_message`, for a frame prepared once for many connections.
    fn queue_prepared(conn: &mut Connection, frame: &PreparedFrame) -> Result<(), duplex_proto::SendError> {
        conn.send_prepared(frame)?;
        crate::metrics::message_sent(frame.kind(), frame.payload().len());
        Ok(())
    }

    /// Counts a data message sent, for [`Sender::message_counts`](crate::Sender::message_counts)
    /// and the registry's `messages_out` (a socket with senders only).
    fn count_sent(outbox: Option<&Arc<outbox::Shared>>) {
        if let Some(o) = outbox {
            o.messages_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Moves what senders queued into the protocol's outgoing queue.
    fn drain_outbox(&mut self) {
        let Some(shared) = &self.outbox else { return };
        let Some(commands) = shared.take() else { return };
        for cmd in commands {
            let result = match cmd {
                Command::Message(m) => {
                    Self::count_sent(Some(shared));
                    Self::queue_message(&mut self.conn, m)
                }
                Command::Prepared(frame) => {
                    Self::count_sent(Some(shared));
                    Self::queue_prepared(&mut self.conn, &frame)
                }
                Command::Close(frame) => self.conn.close(frame),
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
        match event {
            Event::Message(m) => crate::metrics::message_received(m.kind(), m.len()),
            Event::Fragment(_) => {}
            Event::Ping(_) => crate::metrics::control_received(0),
            Event::Pong(_) => {
                crate::metrics::control_received(1);
                if let Some(sent) = self.conn.keepalive_ping_sent() {
                    crate::metrics::ping_rtt(sent);
                }
            }
            Event::Close(_) => crate::metrics::control_received(2),
        }
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Receives the next message. Pings are answered and pongs skipped; `None` once the connection
    /// has closed (how, in [`WebSocket::close_info`]). An `Err` is the
    /// reason the connection ended abnormally, reported after the close handshake was attempted.
    ///
    /// ```
    /// # async fn pair() -> (duplex::WebSocket<tokio::io::DuplexStream>, duplex::WebSocket<tokio::io::DuplexStream>) {
    /// #     let (a, b) = tokio::io::duplex(4096);
    /// #     let c = duplex::Config::default();
    /// #     (duplex::WebSocket::from_upgraded(a, duplex::Role::Client, c.clone(), &[]),
    /// #      duplex::WebSocket::from_upgraded(b, duplex::Role::Server, c, &[]))
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> duplex::Result<()> {
    /// # let (mut client, mut server) = pair().await;
    /// client.send("ping?").await?;
    /// while let Some(message) = server.recv().await {
    ///     let message = message?;
    ///     assert_eq!(message.as_text(), Some("ping?"));
    ///     break;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Receives the next event of any kind: messages, fragments (streaming mode), pings, pongs and
    /// the peer's close frame. `None` once the connection has closed.
    pub async fn next_event(&mut self) -> Option<Result<Event>> {
        poll_fn(|cx| self.poll_event(cx)).await
    }

    /// Sends a message: queues it and waits until it is written (with anything queued before).
    ///
    /// ```
    /// use duplex::Message;
    /// # async fn pair() -> (duplex::WebSocket<tokio::io::DuplexStream>, duplex::WebSocket<tokio::io::DuplexStream>) {
    /// #     let (a, b) = tokio::io::duplex(4096);
    /// #     let c = duplex::Config::default();
    /// #     (duplex::WebSocket::from_upgraded(a, duplex::Role::Client, c.clone(), &[]),
    /// #      duplex::WebSocket::from_upgraded(b, duplex::Role::Server, c, &[]))
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> duplex::Result<()> {
    /// # let (mut client, mut server) = pair().await;
    /// client.send("text").await?; // &str and String are text,
    /// client.send(vec![1u8, 2, 3]).await?; // Vec<u8> and Bytes binary
    /// assert_eq!(server.recv().await.transpose()?, Some(Message::Text("text".into())));
    /// assert_eq!(server.recv().await.transpose()?, Some(Message::Binary(vec![1u8, 2, 3].into())));
    /// # Ok(()) }
    /// ```
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        self.queue(message.into())?;
        self.after_queue().await
    }

    /// Queues a message written by this socket's own task (`send`, `feed`, the `Sink`): counted
    /// once, here and in the connection's own count.
    pub(crate) fn queue(&mut self, message: Message) -> Result<()> {
        Self::queue_message(&mut self.conn, message)?;
        Self::count_sent(self.outbox.as_ref());
        Ok(())
    }

    /// Ready to take another message: at most [`Config::write_buffer_limit`] bytes queued
    /// (writing until then), or an error once the connection is closed (a `Sink`'s `poll_ready`).
    pub fn poll_ready_to_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.done || self.conn.state() != duplex_proto::State::Open {
            return Poll::Ready(Err(Error::Closed));
        }
        if self.conn.buffered_amount() > self.config.write_buffer_limit {
            ready!(self.poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Starts the close handshake if this end has not, then writes everything queued with the
    /// close frame (a `Sink`'s `poll_close`). Keep receiving to see the peer's answer.
    pub fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if !self.done && self.conn.state() == duplex_proto::State::Open {
            self.start_close(None)?;
        }
        self.poll_flush(cx)
    }

    /// Queues a message without waiting for it to be written, unless more than
    /// [`Config::write_buffer_limit`] bytes are queued. Follow with [`WebSocket::flush`].
    pub async fn feed(&mut self, message: impl Into<Message>) -> Result<()> {
        Self::queue_message(&mut self.conn, message.into())?;
        Self::count_sent(self.outbox.as_ref());
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

    /// Sends a message framed once for many connections ([`PreparedFrame`]).
    pub async fn send_prepared(&mut self, frame: &PreparedFrame) -> Result<()> {
        Self::queue_prepared(&mut self.conn, frame)?;
        Self::count_sent(self.outbox.as_ref());
        self.after_queue().await
    }

    /// Sends a ping (at most 125 bytes).
    pub async fn ping(&mut self, payload: &[u8]) -> Result<()> {
        self.conn.send_ping(payload)?;
        self.flush().await
    }

    /// Sends a pong (at most 125 bytes): an unsolicited one is a one-way heartbeat (RFC 6455
    /// §5.5.3). Pings are answered without this.
    pub async fn pong(&mut self, payload: &[u8]) -> Result<()> {
        self.queue_pong(payload)?;
        self.flush().await
    }

    /// Queues a ping without writing it: it leaves with the next write (`flush`, `send`, `recv`).
    pub fn queue_ping(&mut self, payload: &[u8]) -> Result<()> {
        Ok(self.conn.send_ping(payload)?)
    }

    /// Queues a pong without writing it; see [`queue_ping`](WebSocket::queue_ping).
    pub fn queue_pong(&mut self, payload: &[u8]) -> Result<()> {
        Ok(self.conn.send_pong(payload)?)
    }

    /// Queues the close frame without writing it (what [`close`](WebSocket::close) starts with);
    /// see [`queue_ping`](WebSocket::queue_ping).
    pub fn queue_close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        self.start_close(frame)
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(crate) fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        Ok(self.conn.close(frame)?)
    }

    /// Starts the close handshake with `code` and `reason` and writes the close frame. Keep
    /// calling [`WebSocket::recv`] until it returns `None` to finish the handshake (messages the
    /// peer sent meanwhile are still delivered); if the peer does not answer within
    /// [`close_timeout`](duplex_proto::Config::close_timeout) the connection ends with
    /// [`Error::Timeout`].
    ///
    /// ```
    /// use duplex::{CloseCode, CloseFrame};
    /// # async fn pair() -> (duplex::WebSocket<tokio::io::DuplexStream>, duplex::WebSocket<tokio::io::DuplexStream>) {
    /// #     let (a, b) = tokio::io::duplex(4096);
    /// #     let c = duplex::Config::default();
    /// #     (duplex::WebSocket::from_upgraded(a, duplex::Role::Client, c.clone(), &[]),
    /// #      duplex::WebSocket::from_upgraded(b, duplex::Role::Server, c, &[]))
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> duplex::Result<()> {
    /// # let (mut client, mut server) = pair().await;
    /// client.close(Some(CloseFrame::new(1000, "done"))).await?;
    /// assert!(server.recv().await.is_none()); // the server answers the close frame
    /// assert!(client.recv().await.is_none()); // and the client reads the answer: closed cleanly
    /// assert_eq!(client.close_info().map(|i| i.code()), Some(CloseCode::NORMAL));
    /// # Ok(()) }
    /// ```
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
    ///
    /// The driver loop: take the core's events; write what it queued (with what [`Sender`]s
    /// queued); carry out its transport actions; read into it (or tell it the stream ended); and
    /// sleep until its next deadline. Every protocol decision is the core's.
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        loop {
            if self.done {
                if let Some(o) = &self.outbox {
                    o.close();
                }
                return Poll::Ready(self.error.take().map(|e| Err(*e)));
            }
            match self.conn.next_event() {
                Ok(Some(event)) => {
                    self.count(&event);
                    return Poll::Ready(Some(Ok(event)));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "connection failed");
                    // Reported once the connection is over, after the close frame (if any) is out.
                    self.error.get_or_insert_with(|| Box::new(e.into()));
                    continue;
                }
            }
            // Nothing parsed is waiting: take what senders queued, write, then read.
            self.drain_outbox();
            if let Err(e) = self.poll_write_some(cx) {
                self.fail_io(e);
                continue;
            }
            if let Some(o) = &self.outbox {
                o.set_socket_buffered(self.conn.buffered_amount());
            }
            self.poll_transport_actions(cx);
            if self.conn.is_terminated() {
                self.done = true;
                continue;
            }
            // Backpressure on the peer: while more than the write buffer limit waits to be written
            // (pongs to a ping flood from a peer that never reads), stop reading. The pending
            // write has registered the waker, so the task wakes when the socket drains. After the
            // end of the peer's stream there is nothing more to read.
            let read = if self.conn.eof_received() || self.conn.buffered_amount() > self.config.write_buffer_limit {
                Poll::Pending
            } else {
                self.poll_read_into_core(cx)
            };
            match read {
                Poll::Ready(Ok(0)) => self.conn.receive_eof(),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => self.fail_io(e),
                Poll::Pending => {
                    // About to sleep: be woken by the next sender's push (or take what one queued
                    // meanwhile), and check the deadline; here, once per wake-up rather than once
                    // per pass of this loop.
                    if self.outbox.as_ref().is_some_and(|o| o.arm(cx.waker())) {
                        continue;
                    }
                    if self.poll_deadline(cx) {
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// Carries out what the core asks of the transport.
    fn poll_transport_actions(&mut self, cx: &mut Context<'_>) {
        while let Some(action) = self.conn.poll_transport() {
            match action {
                Transport::Finish => self.shutting_down = true,
                Transport::Abort => {
                    // The transport is closed when the socket is dropped (TCP: a reset if unread
                    // bytes remain); nothing is written any more.
                    self.shutting_down = false;
                    self.done = true;
                    return;
                }
            }
        }
        if self.shutting_down {
            // TCP FIN (TLS: close_notify first); an error means the peer is gone already.
            if let Poll::Ready(r) = Pin::new(&mut self.io).poll_shutdown(cx) {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "shutting the transport down failed");
                }
                self.shutting_down = false;
            }
        }
    }

    /// Keeps the one timer on the core's next deadline; tells the core the time when a deadline
    /// starts or passes. True if it did (the caller loops to act on what the core queued).
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> bool {
        if self.conn.needs_time() {
            self.conn.handle_timeout(Instant::now().into_std());
            return true;
        }
        let Some(deadline) = self.conn.poll_timeout() else {
            self.timer = None;
            self.timer_waker = None;
            return false;
        };
        let deadline = Instant::from_std(deadline);
        let timer = match &mut self.timer {
            Some(t) => {
                if t.deadline() != deadline {
                    t.as_mut().reset(deadline);
                    self.timer_waker = None;
                } else if !t.is_elapsed() && self.timer_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    // Polled already with this waker, which stays registered until it fires.
                    return false;
                }
                t
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        if timer.as_mut().poll(cx).is_pending() {
            self.timer_waker = Some(cx.waker().clone());
            return false;
        }
        self.timer_waker = None;
        self.conn.handle_timeout(Instant::now().into_std());
        true
    }

    fn fail_io(&mut self, e: io::Error) {
        tracing::debug!(error = %e, "transport failed");
        self.error.get_or_insert_with(|| Box::new(Error::Io(e)));
        self.done = true;
    }

    fn poll_read_into_core(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Self { io, conn, .. } = self;
        with_scratch(|buf| {
            let mut rb = ReadBuf::new(buf);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            crate::metrics::wire_received(n);
            conn.receive(rb.filled());
            Poll::Ready(Ok(n))
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
            crate::metrics::wire_sent(written);
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
        if self.done {
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
