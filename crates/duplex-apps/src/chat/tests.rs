//! Tests of the chat with in-memory rooms: history, nicknames, member list versions, acknowledgements.

use std::time::Duration;

use duplex::{Config, Message, Role};
use serde_json::{json, Value};
use tokio::io::DuplexStream;

use super::*;

type Ws = WebSocket<DuplexStream>;

/// A client of `chat`: the client end of an in-memory connection that `handle` serves.
fn client(chat: &Chat) -> Ws {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let chat = chat.clone();
    tokio::spawn(async move {
        let mut ws = WebSocket::from_upgraded(server, Role::Server, Config::default(), &[]);
        let _ = handle(&mut ws, &chat).await;
    });
    WebSocket::from_upgraded(client, Role::Client, Config::default(), &[])
}

async fn next(ws: &mut Ws) -> Value {
    match tokio::time::timeout(Duration::from_secs(10), ws.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(&t).expect("JSON"),
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(v.to_string()).await.unwrap();
}

fn texts(joined: &Value) -> Vec<&str> {
    joined["history"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap()).collect()
}

/// `nick` says `lines` in `room` (at most 10: the rate limit), each echoed back.
async fn says(chat: &Chat, room: &str, nick: &str, lines: &[&str]) -> Ws {
    let mut ann = client(chat);
    send(&mut ann, json!({"type":"join","room":room,"nick":nick})).await;
    assert_eq!(next(&mut ann).await["type"], "joined");
    for text in lines {
        send(&mut ann, json!({"type":"say","text":text})).await;
        assert_eq!(next(&mut ann).await["text"], *text);
    }
    ann
}

#[tokio::test]
async fn history_keeps_the_last_lines_in_memory() {
    let chat = Chat::new(PubSub::new());
    let lines: Vec<String> = (0..HISTORY + 5).map(|n| format!("m{n}")).collect();
    let mut talkers = Vec::new();
    for (i, chunk) in lines.chunks(10).enumerate() {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        talkers.push(says(&chat, "lobby", &format!("talker{i}"), &chunk).await);
    }
    let kept: Vec<String> = chat.history("lobby").into_iter().map(|l| l.text).collect();
    assert_eq!(kept, lines[5..], "the last {HISTORY}, oldest first");
    let mut bob = client(&chat);
    send(&mut bob, json!({"type":"join","room":"lobby","nick":"bob"})).await;
    let joined = next(&mut bob).await;
    assert_eq!(texts(&joined), lines[5..]);
    let members = joined["members"].as_array().unwrap();
    assert_eq!((members.len(), &members[talkers.len()]), (talkers.len() + 1, &json!("bob")), "in joining order");
}

/// Redis not there: joins and lines go on from memory, without waiting for long.
#[cfg(feature = "redis")]
#[tokio::test]
async fn without_redis_history_comes_from_memory() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
    let chat = Chat::with_redis_history(PubSub::new(), &format!("redis://127.0.0.1:{port}")).unwrap();
    let started = std::time::Instant::now();
    let _ann = says(&chat, "lobby", "ann", &["one", "two"]).await;
    let mut bob = client(&chat);
    send(&mut bob, json!({"type":"join","room":"lobby","nick":"bob"})).await;
    let joined = next(&mut bob).await;
    assert_eq!(texts(&joined), ["one", "two"]);
    assert_eq!(joined["members"], json!(["ann", "bob"]));
    assert!(started.elapsed() < redis_link::TIMEOUT * 2, "took {:?}", started.elapsed());
}

/// The next event of `kind`, skipping others.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = next(ws).await;
        if v["type"] == kind {
            return v;
        }
    }
}

#[tokio::test]
async fn nicknames_are_unique_per_room_unless_the_key_matches() {
    let chat = Chat::new(PubSub::new());
    let mut sam = client(&chat);
    send(&mut sam, json!({"type":"join","room":"lobby","nick":"sam","key":"tab-1"})).await;
    let first = next_of(&mut sam, "joined").await;
    // Another connection, in another case, without the key: refused, and not in the room.
    let mut other = client(&chat);
    send(&mut other, json!({"type":"join","room":"lobby","nick":" SAM "})).await;
    let e = next(&mut other).await;
    assert_eq!((e["type"].as_str(), e["request"].as_str()), (Some("error"), Some("join")), "{e}");
    assert!(e["message"].as_str().unwrap().contains("taken"), "{e}");
    send(&mut other, json!({"type":"join","room":"lobby","nick":"sam","key":"tab-2"})).await;
    assert_eq!(next(&mut other).await["type"], "error", "another key");
    assert_eq!(chat.members("lobby"), ["sam"]);
    // The same nickname in another room is another nickname.
    send(&mut other, json!({"type":"join","room":"rust","nick":"sam"})).await;
    assert_eq!(next(&mut other).await["type"], "joined");
    // A page coming back with its key takes its nickname over; the list stays one "sam",
    // and a later version.
    let mut again = client(&chat);
    send(&mut again, json!({"type":"join","room":"lobby","nick":"sam","key":"tab-1"})).await;
    let joined = next_of(&mut again, "joined").await;
    assert_eq!(joined["members"], json!(["sam"]));
    assert!(joined["version"].as_u64() > first["version"].as_u64());
    // The old connection leaving says nothing: sam is still there.
    drop(sam);
    send(&mut again, json!({"type":"say","text":"still here"})).await;
    let v = next(&mut again).await;
    assert_eq!((v["type"].as_str(), v["text"].as_str()), (Some("message"), Some("still here")), "{v}");
    assert_eq!(chat.members("lobby"), ["sam"]);
    send(&mut again, json!({"type":"join","room":"lobby","nick":"bad","key":"no spaces"})).await;
    assert_eq!(next(&mut again).await["type"], "error", "a bad key");
}

#[tokio::test]
async fn member_lists_have_growing_versions() {
    let chat = Chat::new(PubSub::new());
    let mut ann = client(&chat);
    send(&mut ann, json!({"type":"join","room":"r","nick":"ann"})).await;
    let mut last = next_of(&mut ann, "joined").await["version"].as_u64().unwrap();
    let mut bob = client(&chat);
    send(&mut bob, json!({"type":"join","room":"r","nick":"bob"})).await;
    let v = next_of(&mut ann, "join").await;
    assert_eq!(v["members"], json!(["ann", "bob"]));
    assert!(v["version"].as_u64().unwrap() > last);
    last = v["version"].as_u64().unwrap();
    // bob moves to another room: a leave in r, with a later version.
    send(&mut bob, json!({"type":"join","room":"other","nick":"bob"})).await;
    let v = next_of(&mut ann, "leave").await;
    assert_eq!((v["nick"].as_str(), &v["members"]), (Some("bob"), &json!(["ann"])));
    assert!(v["version"].as_u64().unwrap() > last);
}

#[tokio::test]
async fn messages_are_acknowledged_or_refused_by_id() {
    let chat = Chat::new(PubSub::new());
    let mut ann = client(&chat);
    send(&mut ann, json!({"type":"say","text":"too early","id":1})).await;
    let e = next(&mut ann).await;
    assert_eq!((e["type"].as_str(), e["request"].as_str(), e["id"].as_u64()), (Some("error"), Some("say"), Some(1)));
    send(&mut ann, json!({"type":"join","room":"r","nick":"ann"})).await;
    next_of(&mut ann, "joined").await;
    send(&mut ann, json!({"type":"say","text":"hello","id":2})).await;
    assert_eq!(next(&mut ann).await["text"], "hello", "the message first");
    assert_eq!(next(&mut ann).await, json!({"type":"sent","id":2}), "then its acknowledgement");
    send(&mut ann, json!({"type":"say","text":"x".repeat(MAX_TEXT + 1),"id":3})).await;
    let e = next(&mut ann).await;
    assert_eq!(e["id"], 3);
    assert!(e["message"].as_str().unwrap().contains("501 characters"), "{e}");
    send(&mut ann, json!({"type":"say","text":"  ","id":4})).await;
    assert!(next(&mut ann).await["message"].as_str().unwrap().contains("empty"));
    // The rate limit: 10 at once (one spent), then refused by id.
    for id in 5..14 {
        send(&mut ann, json!({"type":"say","text":"again","id":id})).await;
        assert_eq!(next_of(&mut ann, "sent").await["id"], id);
    }
    send(&mut ann, json!({"type":"say","text":"one too many","id":14})).await;
    let e = next(&mut ann).await;
    assert_eq!((e["id"].as_u64(), e["message"].as_str().map(|m| m.starts_with("slow down"))), (Some(14), Some(true)));
}
