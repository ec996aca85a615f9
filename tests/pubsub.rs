//! `duplex serve`'s `/pubsub` endpoint: the JSON protocol through real connections to the binary.

mod support;

use std::time::Duration;

use duplex::Message;
use serde_json::{json, Value};
use support::json_ws::{assert_quiet, next_json, send, WAIT};
use support::{Duplex, Input};

fn serve() -> Duplex {
    Duplex::start(&["serve", "--port", "{port}", "--interval", "0"], Input::Null)
}

#[tokio::test]
async fn subscribe_publish_and_wildcards() {
    let server = serve();
    let mut a = duplex::connect(&server.url("/pubsub")).await.expect("a connects");
    let mut b = duplex::connect(&server.url("/pubsub?client=b")).await.expect("b connects");
    server.wait_log("#2 opened", WAIT);

    send(&mut a, json!({"op":"subscribe","topic":"chat.lobby"})).await;
    assert_eq!(next_json(&mut a).await, json!({"subscribed":"chat.lobby"}));
    send(&mut b, json!({"op":"subscribe","topic":"chat.*"})).await;
    assert_eq!(next_json(&mut b).await, json!({"subscribed":"chat.*"}));

    // Any JSON value as data, delivered with the topic it was published to; the publisher gets
    // it too, being a subscriber.
    let data = json!({"text":"hi","n":[1,2.5,null],"nested":{"ok":true}});
    send(&mut a, json!({"op":"publish","topic":"chat.lobby","data":data})).await;
    assert_eq!(next_json(&mut a).await, json!({"topic":"chat.lobby","data":data}));
    assert_eq!(next_json(&mut b).await, json!({"topic":"chat.lobby","data":data}));

    // Only b's pattern covers chat.eu.
    send(&mut a, json!({"op":"publish","topic":"chat.eu","data":"bonjour"})).await;
    assert_eq!(next_json(&mut b).await, json!({"topic":"chat.eu","data":"bonjour"}));
    send(&mut b, json!({"op":"publish","topic":"news","data":1})).await;
    assert_quiet(&mut a, Duration::from_millis(200)).await;

    send(&mut a, json!({"op":"unsubscribe","topic":"chat.lobby"})).await;
    assert_eq!(next_json(&mut a).await, json!({"unsubscribed":"chat.lobby"}));
    send(&mut b, json!({"op":"publish","topic":"chat.lobby"})).await;
    assert_eq!(next_json(&mut b).await, json!({"topic":"chat.lobby","data":null}));
    assert_quiet(&mut a, Duration::from_millis(200)).await;

    a.close(Some(duplex::CloseFrame::new(1000, "bye"))).await.unwrap();
    while a.recv().await.is_some() {}
    server.wait_log("#1 closed 1000 bye", WAIT);
}

#[tokio::test]
async fn bad_requests_get_errors_and_the_connection_stays_open() {
    let server = serve();
    let mut ws = duplex::connect(&server.url("/pubsub")).await.expect("connects");
    let error_for = |v: &Value| v["error"].as_str().unwrap_or_else(|| panic!("an error reply, got {v}")).to_owned();

    ws.send("{not json").await.unwrap();
    assert!(error_for(&next_json(&mut ws).await).starts_with("malformed JSON"));
    send(&mut ws, json!({"op":"shout","topic":"t"})).await;
    assert!(error_for(&next_json(&mut ws).await).contains("unknown op \"shout\""));
    send(&mut ws, json!({"op":"subscribe"})).await;
    assert!(error_for(&next_json(&mut ws).await).contains("needs a \"topic\""));
    send(&mut ws, json!({"op":"subscribe","topic":"a*b"})).await;
    assert!(error_for(&next_json(&mut ws).await).contains("invalid topic"));
    send(&mut ws, json!({"op":"publish","topic":"chat.*","data":1})).await;
    assert!(error_for(&next_json(&mut ws).await).contains("is a pattern"));
    let big = "x".repeat(70 * 1024);
    send(&mut ws, json!({"op":"publish","topic":"t","data":big})).await;
    assert!(error_for(&next_json(&mut ws).await).contains("over the limit"));
    ws.send(Message::Binary(bytes::Bytes::from_static(b"\x00\x01"))).await.unwrap();
    assert!(error_for(&next_json(&mut ws).await).contains("binary"));

    // Still open and working.
    send(&mut ws, json!({"op":"subscribe","topic":"t"})).await;
    assert_eq!(next_json(&mut ws).await, json!({"subscribed":"t"}));
    send(&mut ws, json!({"op":"publish","topic":"t","data":"fine"})).await;
    assert_eq!(next_json(&mut ws).await, json!({"topic":"t","data":"fine"}));
}

#[tokio::test]
async fn other_paths_keep_the_seed_behaviour() {
    let server = Duplex::start(&["serve", "--port", "{port}", "--interval", "100ms"], Input::Null);
    let mut seed = duplex::connect(&server.url("/")).await.expect("connects");
    match tokio::time::timeout(WAIT, seed.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => assert!(t.starts_with("Message "), "{t}"),
        other => panic!("expected a push, got {other:?}"),
    }
    // /pubsub connections get no timed pushes: only what they subscribe to.
    let mut ps = duplex::connect(&server.url("/pubsub")).await.expect("connects");
    assert_quiet(&mut ps, Duration::from_millis(200)).await;
}
