//! One test for both builds of the app (duplex-axum, and axum::extract::ws with `axum-ws`):
//! the same client, the same expectations.

use std::sync::Arc;
use std::time::Duration;

use duplex::{CloseFrame, Message};

use super::{app, AppState};

async fn serve() -> (std::net::SocketAddr, Arc<AppState>) {
    let state = Arc::new(AppState::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(std::future::IntoFuture::into_future(axum::serve(listener, app(state.clone()))));
    (addr, state)
}

async fn recv(ws: &mut duplex::WebSocket<duplex::ClientStream>) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.recv()).await.expect("a message in time").unwrap().unwrap()
}

#[tokio::test]
async fn the_app_chats_and_closes_the_same_on_either_socket() {
    let (addr, state) = serve().await;
    let (mut ws, response) = duplex::Client::new()
        .protocol("graphql-ws")
        .protocol("superchat")
        .protocol("chat")
        .connect(&format!("ws://{addr}/ws"))
        .await
        .unwrap();
    // protocols(["chat", "superchat"]): the server's first choice the client offered.
    assert_eq!(response.protocol.as_deref(), Some("chat"));
    assert_eq!(recv(&mut ws).await, Message::from("welcome"));
    ws.send("hello").await.unwrap();
    assert_eq!(recv(&mut ws).await, Message::from("echo: hello"));
    ws.send(vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(recv(&mut ws).await, Message::from(vec![3u8, 2, 1]));
    ws.ping(b"are you there").await.unwrap();
    ws.send("after the ping").await.unwrap();
    assert_eq!(recv(&mut ws).await, Message::from("echo: after the ping"));
    ws.close(Some(CloseFrame::new(1000, "bye"))).await.unwrap();
    let mut ended = Ok(());
    while let Some(m) = ws.recv().await {
        if let Err(e) = m {
            ended = Err(e);
        }
    }
    // The app stops reading at `Message::Close` and drops the socket, as axum's example does.
    // duplex-axum writes the answer to the close before handing `Message::Close` over, so the
    // close handshake completes; axum's own socket queues it for a write that never comes, and
    // the client sees the connection end without it (docs/axum.md, "Where we differ").
    #[cfg(not(feature = "axum-ws"))]
    {
        ended.unwrap();
        assert_eq!(ws.close_info().map(|i| i.code()), Some(duplex::CloseCode::NORMAL));
    }
    #[cfg(feature = "axum-ws")]
    assert!(matches!(ended, Ok(()) | Err(duplex::Error::AbnormalClosure)), "{ended:?}");
    // The app's own record, once its tasks are done.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = state.events.lock().unwrap().clone();
        if events.last().is_some_and(|e| e == "done") {
            assert_eq!(
                events,
                [
                    "open, protocol chat",
                    "text hello",
                    "binary 3 bytes",
                    "ping 13 bytes",
                    "text after the ping",
                    "close 1000 bye",
                    "done"
                ]
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the app did not finish: {events:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
