//! A client that comes back: [`ReconnectingSocket`] connects, hands out what arrives, and when
//! the connection ends or an attempt fails asks a classifier whether to try again, waits a
//! full-jitter exponential backoff (or the server's `Retry-After`), and connects again. Every
//! connection opened is an [`Event::Connected`], so an application can re-subscribe or reload;
//! every wait is an [`Event::Disconnected`] saying why and for how long; the end is one
//! [`Event::Stopped`] saying why.
//!
//! ```no_run
//! # async fn f() -> duplex::Result<()> {
//! use duplex::reconnect::{Backoff, Event, ReconnectingSocket};
//! let mut socket = ReconnectingSocket::new(duplex::Client::new(), "ws://127.0.0.1:8080/feed")
//!     .backoff(Backoff::default().cap(std::time::Duration::from_secs(10)));
//! while let Some(event) = socket.next().await {
//!     match event {
//!         Event::Connected(c) => {
//!             // A fresh connection (the first, or after a drop): subscribe again.
//!             socket.send(format!("subscribe news (connection {})", c.connection)).await?;
//!         }
//!         Event::Message(m) => println!("{m:?}"),
//!         Event::Disconnected(d) => eprintln!("reconnecting in {:.1?} (attempt {}): {}", d.retry_in, d.attempt, d.cause),
//!         Event::Stopped(s) => eprintln!("gave up: {}", s.cause),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Given several URLs ([`ReconnectingSocket::urls`]: the nodes of one service), every attempt
//! after a drop or a failure goes to the next one, round robin, so a client leaves a dead node
//! for a live one at its first retry.
//!
//! It is a [`Stream`] of [`Event`]s, and cancel-safe: a `select!` may drop a `next()` at any
//! point without losing a connection, an attempt in flight or a backoff in progress.

mod backoff;
mod classify;

pub use backoff::{Backoff, Delays};
pub use classify::{default_classifier, Cause, Verdict};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use duplex_proto::handshake::Response;
use duplex_proto::{CloseFrame, Message, Side};
use futures_core::Stream;
use tokio::time::{Instant, Sleep};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::outbox::Sender;
use crate::socket::WebSocket;
use crate::stream::ClientStream;

/// Decides, for each [`Cause`], whether to try again. See [`default_classifier`].
pub type Classifier = Arc<dyn Fn(&Cause) -> Verdict + Send + Sync>;

/// What a [`ReconnectingSocket`] reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A connection opened: the first one, or a new one after a drop.
    Connected(Connected),
    /// A message arrived on the current connection.
    Message(Message),
    /// The connection ended or an attempt failed, and another attempt follows after
    /// `retry_in`.
    Disconnected(Disconnected),
    /// No more attempts: why. The stream ends after this event.
    Stopped(Stopped),
}

/// A connection opened.
#[derive(Debug)]
#[non_exhaustive]
pub struct Connected {
    /// Which connection this is, counting from 1 (so > 1 means a reconnection).
    pub connection: u64,
    /// How many attempts it took (1: at the first).
    pub attempts: u32,
    /// The server's answer (headers, subprotocol, negotiated extensions).
    pub response: Response,
    /// The URL it connected to (one of [`ReconnectingSocket::urls`]).
    pub url: Arc<str>,
}

/// The connection ended or an attempt failed; the next attempt is due after `retry_in`.
#[derive(Debug)]
#[non_exhaustive]
pub struct Disconnected {
    /// Why.
    pub cause: Cause,
    /// The number of the attempt that follows, counting from 1 since the last connection.
    pub attempt: u32,
    /// How long until it: the backoff's draw, or the server's `Retry-After` if that is longer.
    pub retry_in: Duration,
}

/// Why a [`ReconnectingSocket`] gave up.
#[derive(Debug)]
#[non_exhaustive]
pub struct Stopped {
    /// The cause of the last drop or failure.
    pub cause: Cause,
    /// Why there is no further attempt.
    pub reason: StopReason,
}

/// Why a [`ReconnectingSocket`] made no further attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The classifier said [`Verdict::Stop`].
    Classified,
    /// [`ReconnectingSocket::max_attempts`] attempts failed in a row.
    MaxAttempts,
    /// This end closed it.
    LocalClose,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            StopReason::Classified => write!(f, "not retrying: {}", self.cause),
            StopReason::MaxAttempts => write!(f, "giving up after the last attempt: {}", self.cause),
            StopReason::LocalClose => f.write_str("closed by this end"),
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<(WebSocket<ClientStream>, Response)>> + Send>>;

enum State {
    Start,
    Connecting(Connecting),
    Open { ws: Box<WebSocket<ClientStream>>, since: Instant },
    Waiting(Pin<Box<Sleep>>),
    Stopping(Option<Stopped>),
    Done,
}

/// A client connection that reconnects: see the [module docs](self).
pub struct ReconnectingSocket {
    client: Client,
    urls: Vec<Arc<str>>,
    /// The index in `urls` of the next (or current) attempt.
    next_url: usize,
    backoff: Backoff,
    delays: Delays,
    classifier: Classifier,
    max_attempts: Option<u32>,
    state: State,
    /// Failed attempts since the last connection (or the start).
    failures: u32,
    connections: u64,
    closing: bool,
}

impl fmt::Debug for ReconnectingSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectingSocket")
            .field("urls", &self.urls)
            .field("backoff", &self.backoff)
            .field("max_attempts", &self.max_attempts)
            .field("connected", &self.is_connected())
            .field("connections", &self.connections)
            .finish()
    }
}

impl ReconnectingSocket {
    /// A socket that connects to `url` with `client`'s options (the first attempt when first
    /// polled), with the default [`Backoff`] and [`default_classifier`], and no limit on
    /// attempts.
    ///
    /// ```no_run
    /// # async fn f() {
    /// let mut socket = duplex::ReconnectingSocket::new(duplex::Client::new(), "ws://127.0.0.1:8080/feed");
    /// while let Some(event) = socket.next().await {
    ///     println!("{event:?}"); // connected, a message, disconnected (and why), stopped
    /// }
    /// # }
    /// ```
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        let backoff = Backoff::default();
        ReconnectingSocket {
            client,
            urls: vec![url.into().into()],
            next_url: 0,
            delays: backoff.delays(),
            backoff,
            classifier: Arc::new(default_classifier),
            max_attempts: None,
            state: State::Start,
            failures: 0,
            connections: 0,
            closing: false,
        }
    }

    /// The waits between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.delays = backoff.delays();
        self.backoff = backoff;
        self
    }

    /// Decides which causes are retried (default: [`default_classifier`]). A classifier
    /// usually handles its special cases and defers to the default for the rest.
    pub fn classifier(mut self, classifier: impl Fn(&Cause) -> Verdict + Send + Sync + 'static) -> Self {
        self.classifier = Arc::new(classifier);
        self
    }

    /// Gives up after this many failed attempts in a row (default: never).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Connects to these URLs in turn instead (the nodes of one service, each able to serve the
    /// client): the first attempt to the first, and every attempt after a drop or a failure to
    /// the next one, round robin. An empty list keeps the URL given to [`new`](Self::new).
    pub fn urls<I, U>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        let urls: Vec<Arc<str>> = urls.into_iter().map(|u| u.into().into()).collect();
        if !urls.is_empty() {
            self.urls = urls;
            self.next_url = 0;
        }
        self
    }

    /// Starts with the URL at this index of [`urls`](Self::urls) (modulo their number): clients
    /// given the same list can spread over the nodes.
    pub fn start_at(mut self, index: usize) -> Self {
        self.next_url = index % self.urls.len();
        self
    }

    /// The URL of the current connection or attempt (the next one while waiting).
    pub fn url(&self) -> &str {
        &self.urls[self.next_url]
    }

    /// Every URL it connects to, in order.
    pub fn url_list(&self) -> &[Arc<str>] {
        &self.urls
    }

    /// Whether a connection is open now.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// The current connection, if one is open.
    pub fn socket(&mut self) -> Option<&mut WebSocket<ClientStream>> {
        match &mut self.state {
            State::Open { ws, .. } => Some(ws),
            _ => None,
        }
    }

    /// A handle that sends on the current connection from any task (it fails once that
    /// connection ends: take a new one at the next [`Event::Connected`]).
    pub fn sender(&mut self) -> Option<Sender> {
        self.socket().map(WebSocket::sender)
    }

    /// Sends on the current connection. Fails with [`Error::Closed`] when none is open: a
    /// message is never kept for a later connection, since after a reconnect the application
    /// decides what still makes sense to send.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        match self.socket() {
            Some(ws) => ws.send(message).await,
            None => Err(Error::Closed),
        }
    }

    /// Closes the current connection with `frame` and stops: no further attempt. Keep polling
    /// until [`Event::Stopped`] to finish the close handshake.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        self.closing = true;
        match &mut self.state {
            State::Open { ws, .. } => ws.close(frame).await,
            State::Stopping(_) | State::Done => Ok(()),
            _ => {
                self.state =
                    State::Stopping(Some(Stopped { cause: Cause::LocalClose, reason: StopReason::LocalClose }));
                Ok(())
            }
        }
    }

    /// The next event; `None` after [`Event::Stopped`].
    pub async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// Polls for the next event: see [`ReconnectingSocket::next`].
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            match &mut self.state {
                State::Start => self.dial(),
                State::Connecting(attempt) => match ready!(attempt.as_mut().poll(cx)) {
                    Ok((ws, response)) => {
                        self.connections += 1;
                        let attempts = self.failures + 1;
                        self.failures = 0;
                        self.state = State::Open { ws: Box::new(ws), since: Instant::now() };
                        return Poll::Ready(Some(Event::Connected(Connected {
                            connection: self.connections,
                            attempts,
                            response,
                            url: self.urls[self.next_url].clone(),
                        })));
                    }
                    Err(e) => {
                        self.failures += 1;
                        return Poll::Ready(Some(self.after(Cause::Connect(e))));
                    }
                },
                State::Open { ws, since } => {
                    let cause = match ready!(ws.poll_recv(cx)) {
                        Some(Ok(message)) => return Poll::Ready(Some(Event::Message(message))),
                        Some(Err(e)) => Cause::Lost(e),
                        None => match ws.close_info() {
                            Some(info) if info.initiator == Side::Local => Cause::LocalClose,
                            Some(info) => Cause::Closed(info.frame),
                            None => Cause::Lost(Error::AbnormalClosure),
                        },
                    };
                    // A connection that stayed up long enough starts a fresh series of retries.
                    if since.elapsed() >= self.backoff.reset_after_duration() {
                        self.delays.reset();
                    }
                    return Poll::Ready(Some(self.after(cause)));
                }
                State::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    self.dial();
                }
                State::Stopping(stopped) => {
                    let stopped = stopped.take();
                    self.state = State::Done;
                    if let Some(s) = stopped {
                        return Poll::Ready(Some(Event::Stopped(s)));
                    }
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }

    /// Starts an attempt.
    fn dial(&mut self) {
        let (client, url) = (self.client.clone(), self.urls[self.next_url].clone());
        self.state = State::Connecting(Box::pin(async move { client.connect(&url).await }));
    }

    /// After a drop or a failed attempt: stop, or wait and try again.
    fn after(&mut self, cause: Cause) -> Event {
        let reason = if self.closing || matches!(cause, Cause::LocalClose) {
            Some(StopReason::LocalClose)
        } else if (self.classifier)(&cause) == Verdict::Stop {
            Some(StopReason::Classified)
        } else if self.max_attempts.is_some_and(|n| self.failures >= n) {
            Some(StopReason::MaxAttempts)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.state = State::Done;
            return Event::Stopped(Stopped { cause, reason });
        }
        // The next attempt goes to the next node.
        self.next_url = (self.next_url + 1) % self.urls.len();
        let mut retry_in = self.delays.next_delay();
        if let Some(asked) = cause.retry_after() {
            retry_in = retry_in.max(asked);
        }
        self.state = State::Waiting(Box::pin(tokio::time::sleep(retry_in)));
        Event::Disconnected(Disconnected { cause, attempt: self.failures + 1, retry_in })
    }
}

impl Stream for ReconnectingSocket {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.get_mut().poll_event(cx)
    }
}
