//! `Sink<Message>` and `Stream`: code written against `futures` composes with duplex sockets.

use duplex::{Config, Message, Role, WebSocket};
use futures_util::{SinkExt, StreamExt};

const COUNT: usize = 10_000;

/// A server socket on one end of an in-memory stream that echoes every message back, then
/// answers the client's close.
fn echo_peer() -> WebSocket<tokio::io::DuplexStream> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut server = WebSocket::from_upgraded(b, Role::Server, Config::default(), &[]);
        while let Some(Ok(m)) = server.recv().await {
            if server.send(m).await.is_err() {
                break;
            }
        }
    });
    WebSocket::from_upgraded(a, Role::Client, Config::default(), &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_into_a_write_half_comes_back_in_order() {
    let (mut rx, mut tx) = echo_peer().split();
    let writer = tokio::spawn(async move {
        let messages = futures_util::stream::iter((0..COUNT).map(|i| Ok(Message::from(format!("message {i}")))));
        // forward ends with poll_close: a close frame after the last message.
        messages.forward(&mut tx).await
    });
    let mut got = 0;
    while let Some(m) = rx.next().await {
        let m = m.expect("an echoed message");
        assert_eq!(m.as_text(), Some(format!("message {got}").as_str()), "message {got} out of order");
        got += 1;
    }
    writer.await.unwrap().expect("forward");
    assert_eq!(got, COUNT, "every forwarded message echoed before the close");
    assert!(futures_util::stream::FusedStream::is_terminated(&rx), "the read half is fused after None");
    assert!(rx.next().await.is_none());
}

#[tokio::test]
async fn sink_send_and_close_on_the_whole_socket() {
    let mut ws = echo_peer();
    for i in 0..100u32 {
        SinkExt::feed(&mut ws, Message::from(i.to_be_bytes().to_vec())).await.unwrap();
    }
    SinkExt::flush(&mut ws).await.unwrap();
    for i in 0..100u32 {
        assert_eq!(ws.next().await.transpose().unwrap(), Some(Message::from(i.to_be_bytes().to_vec())));
    }
    SinkExt::close(&mut ws).await.unwrap();
    assert!(ws.next().await.is_none(), "the peer answered the close");
    assert!(SinkExt::send(&mut ws, Message::from("late")).await.is_err(), "a closed sink refuses");
}
