//! [`WebSocket`] and its halves as `futures` streams and sinks, and which methods may be raced in
//! `tokio::select!`.
//!
//! - `WebSocket<S>`: [`Stream`](futures_core::Stream) of received messages (`Item = Result<Message>`) and
//!   [`Sink<Message>`]; [`WriteHalf`](crate::WriteHalf) is a `Sink<Message>`,
//!   [`ReadHalf`](crate::ReadHalf) a [`Stream`](futures_core::Stream) and a [`FusedStream`](futures_core::FusedStream).
//!   Code written for other `futures`-based sockets composes: `StreamExt::forward`,
//!   `SinkExt::send`, `StreamExt::next`.
//! - The sink's `poll_ready` waits only while more than
//!   [`Config::write_buffer_limit`](crate::Config::write_buffer_limit) bytes are queued, so a
//!   `feed` of many messages is written in large writes; `poll_flush` writes them all;
//!   `poll_close` sends a close frame (no code) if this end has not sent one and writes it. The
//!   peer's answer is read by whoever keeps receiving (a `ReadHalf` in another task).
//!
//! # Cancel safety (`tokio::select!`)
//!
//! - **Cancel-safe**: [`WebSocket::recv`], [`WebSocket::next_event`], `StreamExt::next` on the
//!   socket or a [`ReadHalf`](crate::ReadHalf), [`ReadHalf::recv`](crate::ReadHalf::recv),
//!   [`WebSocket::flush`]. A received message stays in the protocol core until a call returns
//!   it: dropping the future loses nothing, and the next call returns it.
//! - **Not cancel-safe, nothing lost**: [`WebSocket::send`], [`WebSocket::feed`],
//!   [`WebSocket::ping`], [`WebSocket::close`] and the same on [`WriteHalf`](crate::WriteHalf).
//!   The message is queued when the call starts, so a cancelled send is still written (by the
//!   next `recv`, `flush` or `send`), but the caller cannot know whether it left yet. Racing a
//!   `send` against a timer and sending again on timeout sends twice.
//!
//! ```
//! use duplex::{Config, Message, Role, WebSocket};
//! use futures_util::{SinkExt, StreamExt};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> duplex::Result<()> {
//! let (a, b) = tokio::io::duplex(64 * 1024);
//! let mut client = WebSocket::from_upgraded(a, Role::Client, Config::default(), &[]);
//! let mut server = WebSocket::from_upgraded(b, Role::Server, Config::default(), &[]);
//! // Through the Sink (the inherent `send` does the same).
//! SinkExt::send(&mut client, Message::from("through the Sink")).await?;
//! assert_eq!(server.next().await.transpose()?, Some(Message::from("through the Sink")));
//! # Ok(()) }
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use duplex_proto::Message;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;
use crate::socket::WebSocket;

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_ready_to_send(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.get_mut().queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        WebSocket::poll_flush(self.get_mut(), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        WebSocket::poll_close(self.get_mut(), cx)
    }
}
