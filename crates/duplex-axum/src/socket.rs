//! [`WebSocket`]: axum's socket type on a duplex connection.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use duplex::hyper::HyperStream;
use duplex::Event;
use futures_core::{FusedStream, Stream};
use futures_sink::Sink;
use http::HeaderValue;

use crate::message::{CloseFrame, Message};

/// The duplex connection type under a [`WebSocket`].
pub type Inner = duplex::WebSocket<HyperStream>;

/// A WebSocket connection, with axum's methods ([`recv`](WebSocket::recv),
/// [`send`](WebSocket::send), [`protocol`](WebSocket::protocol), `Stream`, `Sink<Message>`) and
/// duplex's beyond them: [`close`](WebSocket::close) with a code that completes the close
/// handshake, [`into_inner`](WebSocket::into_inner) for the whole `duplex::WebSocket` (sender
/// handles for other tasks, prepared frames for fan-out, `split` without a lock of ours).
///
/// Received pings are answered by the socket itself; they and pongs are still reported, as axum
/// does. Cancel safety in `tokio::select!`: `recv` (and `StreamExt::next`) are cancel-safe, a
/// cancelled `send` still sends (see duplex's `sink` module).
#[derive(Debug)]
pub struct WebSocket {
    inner: Inner,
    protocol: Option<HeaderValue>,
    terminated: bool,
    /// The peer's close frame, returned once the answer to it is written: an application that
    /// stops reading at `Message::Close` (axum's examples do) still completes the handshake.
    closing: Option<Message>,
}

fn axum_error(e: duplex::Error) -> axum::Error {
    axum::Error::new(e)
}

impl WebSocket {
    pub(crate) fn new(inner: Inner, protocol: Option<HeaderValue>) -> Self {
        WebSocket { inner, protocol, terminated: false, closing: None }
    }

    /// Receives the next message; `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<Result<Message, axum::Error>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, axum::Error>>> {
        if self.terminated {
            return Poll::Ready(None);
        }
        if self.closing.is_some() {
            // An error here is the peer gone already: nothing more to answer.
            let _ = ready!(self.inner.poll_flush(cx));
            return Poll::Ready(self.closing.take().map(Ok));
        }
        let next = match ready!(self.inner.poll_event(cx)) {
            Some(Ok(Event::Close(f))) => {
                self.closing = Some(Message::Close(f.map(CloseFrame::from)));
                return self.poll_recv(cx);
            }
            Some(Ok(Event::Message(m))) => Some(Ok(m.into())),
            Some(Ok(Event::Fragment(f))) => Some(Ok(Message::Binary(f.data))),
            Some(Ok(Event::Ping(p))) => Some(Ok(Message::Ping(p))),
            Some(Ok(Event::Pong(p))) => Some(Ok(Message::Pong(p))),
            Some(Err(e)) => Some(Err(axum_error(e))),
            None => None,
        };
        self.terminated = next.is_none();
        Poll::Ready(next)
    }

    /// Sends a message and waits until it is written. `Message::Close` starts the close
    /// handshake (keep calling `recv` until `None` to finish it, or use
    /// [`close`](WebSocket::close)).
    pub async fn send(&mut self, msg: Message) -> Result<(), axum::Error> {
        self.queue(msg)?;
        self.inner.flush().await.map_err(axum_error)
    }

    fn queue(&mut self, msg: Message) -> Result<(), axum::Error> {
        let queued = match msg {
            Message::Text(_) | Message::Binary(_) => {
                let data = duplex::Message::try_from(msg).unwrap_or_else(|_| unreachable!("a data message"));
                Pin::new(&mut self.inner).start_send(data)
            }
            Message::Ping(p) => self.inner.queue_ping(&p),
            Message::Pong(p) => self.inner.queue_pong(&p),
            Message::Close(f) => self.inner.queue_close(f.map(Into::into)),
        };
        queued.map_err(axum_error)
    }

    /// Closes with `code` and `reason`: sends the close frame, then reads until the peer's
    /// answer (dropping messages it sent meanwhile) or the close timeout, and returns once the
    /// connection is closed.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), axum::Error> {
        self.inner.close(Some(duplex::CloseFrame::new(code, reason))).await.map_err(axum_error)?;
        while let Some(m) = self.inner.recv().await {
            m.map_err(axum_error)?;
        }
        self.terminated = true;
        Ok(())
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&HeaderValue> {
        self.protocol.as_ref()
    }

    /// The duplex connection itself: `sender()` handles for other tasks, `send_prepared` for
    /// fan-out, `close_info`, `split`, `Sink<duplex::Message>`.
    pub fn into_inner(self) -> Inner {
        self.inner
    }

    /// The duplex connection, borrowed.
    pub fn get_ref(&self) -> &Inner {
        &self.inner
    }

    /// The duplex connection, borrowed mutably (`sender()`, `feed` and `flush`).
    pub fn get_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl Stream for WebSocket {
    type Item = Result<Message, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl FusedStream for WebSocket {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl Sink<Message> for WebSocket {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_ready(cx).map_err(axum_error)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.get_mut().queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx).map_err(axum_error)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx).map_err(axum_error)
    }
}
