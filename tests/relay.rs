//! `duplex relay`: rooms by URL path, through real connections to the binary.

mod support;

use std::time::Duration;

use bytes::Bytes;
use duplex::{ClientStream, Message, WebSocket};
use support::{Duplex, Input};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocket<ClientStream>;

async fn next(ws: &mut Ws) -> Message {
    match tokio::time::timeout(WAIT, ws.recv()).await {
        Ok(Some(Ok(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn assert_quiet(ws: &mut Ws) {
    if let Ok(m) = tokio::time::timeout(Duration::from_millis(200), ws.recv()).await {
        panic!("expected nothing, got {m:?}");
    }
}

#[tokio::test]
async fn a_message_reaches_its_room_only_with_its_opcode() {
    let relay = Duplex::start(&["relay", "--port", "{port}"], Input::Null);
    relay.wait_log("relaying on ws://", WAIT);
    let mut a = duplex::connect(&relay.url("/lobby")).await.expect("a connects");
    relay.wait_log("#1 opened", WAIT);
    let mut b = duplex::connect(&relay.url("/lobby?name=b")).await.expect("b connects");
    relay.wait_log("room /lobby has 2 connections", WAIT);
    let mut other = duplex::connect(&relay.url("/other")).await.expect("other connects");
    relay.wait_log("room /other has 1 connection", WAIT);

    a.send("hello lobby").await.unwrap();
    assert_eq!(next(&mut a).await, Message::Text("hello lobby".into()), "echo to the sender");
    assert_eq!(next(&mut b).await, Message::Text("hello lobby".into()));
    let bin = Message::Binary(Bytes::from_static(&[0, 1, 2, 255]));
    b.send(bin.clone()).await.unwrap();
    assert_eq!(next(&mut a).await, bin);
    assert_eq!(next(&mut b).await, bin);
    assert_quiet(&mut other).await;

    other.send("anyone?").await.unwrap();
    assert_eq!(next(&mut other).await, Message::Text("anyone?".into()));
    assert_quiet(&mut a).await;
    assert_quiet(&mut b).await;

    b.close(Some(duplex::CloseFrame::new(1000, "bye"))).await.unwrap();
    while b.recv().await.is_some() {}
    relay.wait_log("#2 closed 1000 bye; room /lobby has 1 connection", WAIT);
}

#[tokio::test]
async fn no_echo_leaves_out_the_sender() {
    let relay = Duplex::start(&["relay", "--port", "{port}", "--no-echo"], Input::Null);
    let mut a = duplex::connect(&relay.url("/room")).await.expect("a connects");
    let mut b = duplex::connect(&relay.url("/room")).await.expect("b connects");
    relay.wait_log("room /room has 2 connections", WAIT);
    a.send("from a").await.unwrap();
    assert_eq!(next(&mut b).await, Message::Text("from a".into()));
    assert_quiet(&mut a).await;
    b.send("from b").await.unwrap();
    assert_eq!(next(&mut a).await, Message::Text("from b".into()));
    assert_quiet(&mut b).await;
}

#[tokio::test]
async fn the_relay_does_not_negotiate_deflate() {
    let relay = Duplex::start(&["relay", "--port", "{port}"], Input::Null);
    let (ws, response) = duplex::Client::new().connect(&relay.url("/r")).await.expect("connects");
    assert_eq!(response.extensions, None, "the relay shares one uncompressed frame per message");
    assert!(ws.connection().deflate().is_none());
    drop(ws);
}

#[tokio::test]
async fn a_path_that_is_not_a_room_name_is_refused() {
    let relay = Duplex::start(&["relay", "--port", "{port}"], Input::Null);
    let err = duplex::connect(&relay.url("/a*")).await.expect_err("refused");
    assert!(err.to_string().contains("400"), "{err}");
    // Plain HTTP is told what to do.
    let mut tcp = tokio::net::TcpStream::connect(relay.addr()).await.unwrap();
    tcp.write_all(b"GET /lobby HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
}
