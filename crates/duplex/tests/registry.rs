//! `Connections`: a connection that has ended is out of the set at once, even while its task
//! still holds the `Registration`.

use std::time::Duration;

use duplex::{Connections, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_connection_counts_out_before_its_registration_is_dropped() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let connections = Connections::new();
    let registry = connections.clone();
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let handler = tokio::spawn(async move {
        let incoming = server.accept().await.unwrap();
        let mut ws = incoming.request().await.unwrap().accept().await.unwrap();
        let registration = registry.register(ws.sender(), addr, "/");
        while let Some(Ok(_)) = ws.recv().await {}
        // Ended, but the registration lives on until the task lets it go.
        ended_tx.send(()).unwrap();
        let _ = release_rx.await;
        drop(registration);
    });
    let mut client = duplex::connect(&format!("ws://{addr}/")).await.unwrap();
    while connections.is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(connections.len(), 1);
    assert_eq!(connections.broadcast("to everyone"), 1);
    client.close(None).await.unwrap();
    while client.recv().await.is_some() {}
    ended_rx.await.unwrap();
    assert_eq!(connections.len(), 0, "an ended connection still counted");
    assert!(connections.list().is_empty());
    assert_eq!(connections.broadcast("nobody"), 0);
    release_tx.send(()).unwrap();
    handler.await.unwrap();
}

/// Every way of sending a data message counts in the registry's `messages_out`: `send`, `feed`
/// (then `flush`), `send_prepared` and a `Sender`'s queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_send_counts_out() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let connections = server.connections();
    let handler = tokio::spawn(async move {
        let incoming = server.accept().await.unwrap();
        let mut ws = incoming.request().await.unwrap().accept().await.unwrap();
        let sender = ws.sender();
        ws.send("one").await.unwrap();
        ws.feed("two").await.unwrap();
        ws.flush().await.unwrap();
        ws.send_prepared(&duplex::PreparedFrame::new(duplex::Message::Text("three".into()))).await.unwrap();
        sender.send("four").unwrap();
        while let Some(Ok(_)) = ws.recv().await {}
    });
    let mut client = duplex::connect(&format!("ws://{addr}/")).await.unwrap();
    for expected in ["one", "two", "three", "four"] {
        let m = client.recv().await.unwrap().unwrap();
        assert_eq!(m, duplex::Message::Text(expected.into()));
    }
    let list = connections.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].messages_out, 4, "{list:?}");
    client.close(None).await.unwrap();
    while client.recv().await.is_some() {}
    handler.await.unwrap();
}
