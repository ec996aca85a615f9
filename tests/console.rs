//! `duplex serve`'s operator console (stdin), driven through a pipe with two real clients.

mod support;

use std::time::Duration;

use duplex::{CloseCode, Message};
use support::{Duplex, Input};

const WAIT: Duration = Duration::from_secs(10);

async fn next_text<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(ws: &mut duplex::WebSocket<S>) -> String {
    match tokio::time::timeout(WAIT, ws.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[tokio::test]
async fn console_sends_to_all_to_one_lists_and_closes() {
    let mut server = Duplex::start(&["serve", "--port", "{port}", "--interval", "0"], Input::Piped);
    let mut a = duplex::connect(&server.url("/a")).await.expect("a connects");
    server.wait_log("#1 opened", WAIT);
    let mut b = duplex::connect(&server.url("/b")).await.expect("b connects");
    server.wait_log("#2 opened", WAIT);

    server.type_line("hello everyone");
    assert_eq!(next_text(&mut a).await, "hello everyone");
    assert_eq!(next_text(&mut b).await, "hello everyone");
    server.wait_output("sent to 2 connections", WAIT);

    server.type_line("@2 only for b");
    assert_eq!(next_text(&mut b).await, "only for b");
    server.wait_output("sent to #2", WAIT);

    server.type_line("/list");
    let row1 = server.wait_output("#1 ", WAIT);
    let row2 = server.wait_output("#2 ", WAIT);
    assert!(row1.contains("/a") && row2.contains("/b"), "{row1}\n{row2}");

    server.type_line("/close 2 4000 bye");
    let end = tokio::time::timeout(WAIT, b.recv()).await.expect("b sees the close");
    assert!(end.is_none(), "b's connection ends cleanly, got {end:?}");
    let frame = b.close_info().and_then(|i| i.frame).expect("a close frame with a code");
    assert_eq!((frame.code, frame.reason.as_str()), (CloseCode(4000), "bye"));
    server.wait_log("#2 closed 4000 bye", WAIT);

    // `a` did not get the message for #2: the next thing it receives is the next broadcast.
    server.type_line("last words");
    assert_eq!(next_text(&mut a).await, "last words");
    server.wait_output("sent to 1 connection", WAIT);

    // Mistakes are explained, never fatal.
    server.type_line("@9 anyone?");
    server.wait_output("no open connection has id 9", WAIT);
    server.type_line("/close 1 1005");
    server.wait_output("cannot be sent", WAIT);
    server.type_line("/nonsense");
    server.wait_output("unknown command", WAIT);
    assert!(server.is_running());

    a.close(Some(duplex::CloseFrame::new(1000, "done"))).await.unwrap();
    assert!(tokio::time::timeout(WAIT, a.recv()).await.unwrap().is_none());
    server.wait_log("#1 closed 1000 done", WAIT);
}

#[tokio::test]
async fn a_line_with_nobody_connected_is_explained() {
    let mut server = Duplex::start(&["serve", "--port", "{port}", "--interval", "0"], Input::Piped);
    server.type_line("is anyone there?");
    server.wait_output("nobody is connected", WAIT);
    assert!(server.is_running());
}

#[tokio::test]
async fn serves_with_stdin_closed() {
    let mut server = Duplex::start(&["serve", "--port", "{port}", "--interval", "200ms"], Input::Null);
    // Give the console time to see the end of its input, then check the server still works.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.is_running(), "serve exited at the end of stdin; log:\n{}", server.log());
    let mut ws = duplex::connect(&server.url("/")).await.expect("connects");
    assert!(next_text(&mut ws).await.starts_with("Message "));
    ws.send("still here").await.unwrap();
    server.wait_log("received message still here", WAIT);
    ws.close(None).await.unwrap();
    assert!(tokio::time::timeout(WAIT, ws.recv()).await.unwrap().is_none());
}

#[tokio::test]
async fn serves_with_stdin_ended_by_the_operator() {
    let mut server = Duplex::start(&["serve", "--port", "{port}", "--interval", "0"], Input::Piped);
    server.close_stdin();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.is_running());
    let mut ws = duplex::connect(&server.url("/")).await.expect("connects after stdin ended");
    ws.send("ping").await.unwrap();
    server.wait_log("received message ping", WAIT);
}
