//! The chat demo of two `duplex serve --redis` nodes sharing one real `redis-server`: one chat.
//! Lines and notices cross nodes exactly once, history said on one node is replayed to who joins
//! on the other, and it outlives the node it was said on; every node lists the same members, and
//! the members of a node that dies are removed; without Redis the chat goes on from memory
//! (crates/duplex-apps/src/chat.rs, docs/demos.md). A node logs each of its Redis connections
//! once, saying which namespace it serves.
//!
//! Without `redis-server` the tests print `SKIP` and pass, except with `CI=true`
//! (`tests/support/redis.rs`).

mod support;

use std::time::{Duration, Instant};

use duplex::{ClientStream, Message, WebSocket};
use serde_json::{json, Value};
use support::redis::Redis;
use support::{Duplex, Input};

const WAIT: Duration = Duration::from_secs(15);

type Ws = WebSocket<ClientStream>;

/// `duplex serve --redis`, once both of its backplanes (`/pubsub`'s and the chat's) are connected.
fn serve_node(redis: &Redis) -> Duplex {
    let url = redis.url();
    let node = Duplex::start(&["serve", "--port", "{port}", "--interval", "0", "--redis", &url], Input::Null);
    let deadline = Instant::now() + WAIT;
    let connected = |log: &str, what: &str| log.matches(&format!("connected ({what})")).count() >= 2;
    while !(connected(&node.log(), "publishing") && connected(&node.log(), "subscribing")) {
        assert!(Instant::now() < deadline, "the node's backplanes did not connect; log:\n{}", node.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    node
}

async fn recv_json(ws: &mut Ws, within: Duration) -> Option<Value> {
    match tokio::time::timeout(within, ws.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => Some(serde_json::from_str(&t).expect("JSON")),
        Ok(other) => panic!("expected JSON text, got {other:?}"),
        Err(_) => None,
    }
}

/// Reads events until one for which `wanted` holds, and returns it.
async fn until(ws: &mut Ws, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = recv_json(ws, left).await.unwrap_or_else(|| panic!("no {what} within {WAIT:?}"));
        if wanted(&v) {
            return v;
        }
    }
}

fn said(text: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["type"] == "message" && v["text"] == text
}

async fn say(ws: &mut Ws, text: &str) {
    ws.send(json!({"type":"say","text":text}).to_string()).await.expect("send");
}

/// Connects to `node`'s chat and joins `room` as `nick`: the `joined` event.
async fn join(node: &Duplex, room: &str, nick: &str) -> (Ws, Value) {
    let mut ws = duplex::connect(&node.url("/chat/ws")).await.expect("connects");
    ws.send(json!({"type":"join","room":room,"nick":nick}).to_string()).await.expect("send");
    let joined = until(&mut ws, "joined", |v| v["type"] == "joined").await;
    (ws, joined)
}

fn is_probe(v: &Value) -> bool {
    v["text"].as_str().is_some_and(|t| t.starts_with("probe"))
}

/// The texts of a `joined` event's history, probes left out.
fn history(joined: &Value) -> Vec<String> {
    let lines = joined["history"].as_array().expect("a history");
    lines
        .iter()
        .filter(|l| !is_probe(l))
        .map(|l| format!("{}: {}", l["nick"].as_str().unwrap(), l["text"].as_str().unwrap()))
        .collect()
}

/// `from` says probes until `to` hears one: `to`'s node follows the room through Redis.
async fn probe(from: &mut Ws, to: &mut Ws, tag: &str) {
    let deadline = Instant::now() + WAIT;
    for n in 0.. {
        assert!(Instant::now() < deadline, "no probe crossed to {tag}");
        let text = format!("probe {tag} {n}");
        say(from, &text).await;
        while let Some(v) = recv_json(to, Duration::from_millis(300)).await {
            if v["text"] == text.as_str() {
                return;
            }
        }
        // At most 2 lines a second after a burst of 10 (the chat's rate limit).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks that `ws` receives the line `text` once, and nothing else but probes or notices for a
/// while after it.
async fn hears_once(ws: &mut Ws, who: &str, text: &str) {
    let got = until(ws, &format!("{text:?} at {who}"), said(text)).await;
    assert_eq!(got["room"], "r");
    while let Some(v) = recv_json(ws, Duration::from_millis(500)).await {
        assert!(!said(text)(&v), "{who} got {text:?} twice");
    }
}

#[tokio::test]
async fn two_nodes_are_one_chat_with_history_in_redis() {
    let Some(redis) = Redis::start("two_nodes_are_one_chat_with_history_in_redis") else { return };
    let a = serve_node(&redis);
    let b = serve_node(&redis);

    // A watcher on B, then ann on A; probes both ways until each node follows the room.
    let (mut watcher, _) = join(&b, "r", "watcher").await;
    let (mut ann, joined) = join(&a, "r", "ann").await;
    assert_eq!(joined["members"], json!(["watcher", "ann"]), "members of every node");
    probe(&mut watcher, &mut ann, "to a").await;
    probe(&mut ann, &mut watcher, "to b").await;

    for text in ["one", "two", "three"] {
        say(&mut ann, text).await;
    }
    until(&mut ann, "ann's own last line", said("three")).await;
    until(&mut watcher, "ann's last line, on B", said("three")).await;

    // bob joins on B: the history has what ann said on A.
    let (mut bob, joined) = join(&b, "r", "bob").await;
    assert_eq!(history(&joined), ["ann: one", "ann: two", "ann: three"]);
    assert_eq!(joined["members"], json!(["watcher", "ann", "bob"]), "members of every node");
    let notice = until(&mut ann, "bob's join notice, on A", |v| v["type"] == "join").await;
    assert_eq!(notice["nick"], "bob");
    assert_eq!(notice["members"], json!(["watcher", "ann", "bob"]));
    // The nickname is taken on the other node too.
    let mut other = duplex::connect(&a.url("/chat/ws")).await.expect("connects");
    other.send(json!({"type":"join","room":"r","nick":"BOB"}).to_string()).await.expect("send");
    let refused = until(&mut other, "an error", |v| v["type"] == "error").await;
    assert!(refused["message"].as_str().unwrap().contains("taken"), "{refused}");

    // A new line on A reaches B's members exactly once, and B's reach A.
    say(&mut ann, "four").await;
    hears_once(&mut bob, "bob", "four").await;
    hears_once(&mut watcher, "watcher", "four").await;
    say(&mut bob, "five").await;
    hears_once(&mut ann, "ann", "five").await;
    hears_once(&mut bob, "bob (its own)", "five").await;

    // bob leaves: A hears of it.
    drop(bob);
    let left = until(&mut ann, "bob's leave notice, on A", |v| v["type"] == "leave").await;
    assert_eq!(left["nick"], "bob");
    assert_eq!(left["members"], json!(["watcher", "ann"]));

    // Node A goes away and comes back with empty memory: the history is in Redis.
    drop(ann);
    drop(a);
    let a = serve_node(&redis);
    let (_cy, joined) = join(&a, "r", "cy").await;
    assert_eq!(history(&joined), ["ann: one", "ann: two", "ann: three", "ann: four", "bob: five"]);
    let (_dee, joined) = join(&b, "r", "dee").await;
    assert_eq!(history(&joined), ["ann: one", "ann: two", "ann: three", "ann: four", "bob: five"]);
    for node in [&a, &b] {
        assert!(!node.log().contains("panicked"), "{}", node.log());
        assert!(!node.log().contains("chat history and members unavailable"), "{}", node.log());
    }
}

#[tokio::test]
async fn chat_goes_on_from_memory_while_redis_is_away() {
    let Some(mut redis) = Redis::start("chat_goes_on_from_memory_while_redis_is_away") else { return };
    let a = serve_node(&redis);
    let (mut ann, _) = join(&a, "r", "ann").await;
    say(&mut ann, "kept in redis").await;
    until(&mut ann, "ann's line", said("kept in redis")).await;

    redis.kill();
    // A join is answered, late by a second at most, with what this node remembers.
    let started = Instant::now();
    let (_bob, joined) = join(&a, "r", "bob").await;
    assert!(started.elapsed() < Duration::from_secs(3), "the join took {:?}", started.elapsed());
    assert_eq!(history(&joined), ["ann: kept in redis"]);
    say(&mut ann, "said during the outage").await;
    until(&mut ann, "ann's line during the outage", said("said during the outage")).await;
    let (_cy, joined) = join(&a, "r", "cy").await;
    assert_eq!(history(&joined), ["ann: kept in redis", "ann: said during the outage"]);
    a.wait_log("chat history and members unavailable", WAIT);

    // Redis comes back (empty: no persistence); the chat uses it again.
    redis.restart_after(Duration::from_millis(100));
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    while !a.log().contains("chat history and members are back in Redis") {
        assert!(Instant::now() < deadline, "the chat did not use Redis again; log:\n{}", a.log());
        n += 1;
        say(&mut ann, &format!("after {n}")).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    assert!(!a.log().contains("panicked"), "{}", a.log());
}

/// Members of a node killed without a word (SIGKILL) are removed from the other nodes' lists
/// once its liveness key expires, with a leave notice; a join with the holder's key takes a
/// nickname over at once, on any node.
#[tokio::test]
async fn a_dead_nodes_members_leave_and_a_key_takes_a_nickname_back() {
    let Some(redis) = Redis::start("a_dead_nodes_members_leave_and_a_key_takes_a_nickname_back") else { return };
    let a = serve_node(&redis);
    let mut b = serve_node(&redis);
    let (mut ann, _) = join(&a, "r", "ann").await;
    let mut bob = duplex::connect(&b.url("/chat/ws")).await.expect("connects");
    bob.send(json!({"type":"join","room":"r","nick":"bob","key":"bobs-tab"}).to_string()).await.expect("send");
    let joined = until(&mut bob, "joined", |v| v["type"] == "joined").await;
    assert_eq!(joined["members"], json!(["ann", "bob"]));
    probe(&mut ann, &mut bob, "to b").await;
    probe(&mut bob, &mut ann, "to a").await;

    // B dies: A's heartbeat finds bob's node gone (its key expired) and says so.
    b.kill();
    drop(bob);
    let within = duplex_apps::chat::REDIS_NODE_TTL + duplex_apps::chat::REDIS_HEARTBEAT * 3 + WAIT;
    let deadline = Instant::now() + within;
    let left = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = recv_json(&mut ann, left).await.unwrap_or_else(|| panic!("no leave for bob within {within:?}"));
        if v["type"] == "leave" {
            break v;
        }
    };
    assert_eq!((left["nick"].as_str(), &left["members"]), (Some("bob"), &json!(["ann"])), "{left}");

    // A nickname is someone else's without its key, whichever node asks; with the holder's key
    // (its page coming back through another node) it is taken over at once, and listed once.
    let mut cy = duplex::connect(&a.url("/chat/ws")).await.expect("connects");
    cy.send(json!({"type":"join","room":"s","nick":"cy","key":"cys-tab"}).to_string()).await.expect("send");
    until(&mut cy, "joined", |v| v["type"] == "joined").await;
    let c = serve_node(&redis);
    let mut cy_again = duplex::connect(&c.url("/chat/ws")).await.expect("connects");
    cy_again.send(json!({"type":"join","room":"s","nick":"CY"}).to_string()).await.expect("send");
    until(&mut cy_again, "refused without the key", |v| v["type"] == "error").await;
    cy_again.send(json!({"type":"join","room":"s","nick":"cy","key":"cys-tab"}).to_string()).await.expect("send");
    let joined = until(&mut cy_again, "joined", |v| v["type"] == "joined").await;
    assert_eq!(joined["members"], json!(["cy"]), "one cy: the same key took it over");
    for node in [&a, &c] {
        assert!(!node.log().contains("panicked"), "{}", node.log());
    }
}

/// `duplex serve --redis` has two sets of Redis connections (`/pubsub`'s topics and the chat's):
/// each is logged once, and says which namespace it serves.
#[test]
fn a_node_logs_each_redis_connection_once() {
    let Some(redis) = Redis::start("a_node_logs_each_redis_connection_once") else { return };
    let node = serve_node(&redis);
    let lines: Vec<String> = node
        .log()
        .lines()
        .filter(|l| l.contains("connected ("))
        .map(|l| l[l.find("redis ").unwrap_or(0)..].to_owned())
        .collect();
    let mut unique = lines.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), lines.len(), "a line logged twice: {lines:#?}");
    for namespace in ["pubsub", "demos"] {
        for role in ["publishing", "subscribing"] {
            let line = format!("(namespace {namespace}): connected ({role})");
            assert!(lines.iter().any(|l| l.ends_with(&line)), "no {line:?} in {lines:#?}");
        }
    }
}
