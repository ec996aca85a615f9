//! `send` writes before it returns, even while received messages wait to be read: a client that
//! sends on one connection and then waits elsewhere must not leave its message queued.

use std::time::Duration;

use duplex::{Message, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_is_written_while_received_messages_wait_unread() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let server_side = tokio::spawn(async move {
        let incoming = server.accept().await.unwrap();
        let mut ws = incoming.request().await.unwrap().accept().await.unwrap();
        // One write for both frames, so the client's first read takes both whatever the timing
        // (two sends were two writes, and on a loaded machine "two" could arrive after that read).
        ws.feed(Message::from("one")).await.unwrap();
        ws.feed(Message::from("two")).await.unwrap();
        ws.flush().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), ws.recv()).await
    });
    let mut client = duplex::connect(&format!("ws://{addr}/")).await.unwrap();
    // Both messages arrive together, so the first read parses "two" too and leaves it waiting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(client.recv().await.unwrap().unwrap(), Message::from("one"));
    client.send("reply").await.unwrap();
    // The client does not read again: the reply must already be on its way.
    let got = server_side.await.unwrap().expect("the reply arrived without another recv on the client");
    assert_eq!(got.unwrap().unwrap(), Message::from("reply"));
    assert!(client.has_pending_events(), "the test needs \"two\" to be waiting");
}
