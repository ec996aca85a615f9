//! Scale-out through a real `redis-server`: `/pubsub` topics and relay rooms shared by two
//! nodes, exactly once, and through a Redis restart.
//!
//! Each test starts its own `redis-server` on a free loopback port, without persistence
//! (`tests/support/redis.rs`). Without `redis-server` (Debian package `redis-server`) the tests
//! print `SKIP` and pass, except with `CI=true`, where they fail.

mod support;

use std::time::{Duration, Instant};

use duplex::{ClientStream, Message, WebSocket};
use serde_json::{json, Value};
use support::redis::Redis;
use support::{Duplex, Input};

const WAIT: Duration = Duration::from_secs(15);

type Ws = WebSocket<ClientStream>;

fn serve_node(redis: &Redis) -> Duplex {
    let url = redis.url();
    let node = Duplex::start(&["serve", "--port", "{port}", "--interval", "0", "--redis", &url], Input::Null);
    node.wait_log("connected (subscribing)", WAIT);
    node.wait_log("connected (publishing)", WAIT);
    node
}

async fn recv(ws: &mut Ws, within: Duration) -> Option<Message> {
    match tokio::time::timeout(within, ws.recv()).await {
        Ok(Some(Ok(m))) => Some(m),
        Ok(other) => panic!("the connection ended: {other:?}"),
        Err(_) => None,
    }
}

async fn recv_json(ws: &mut Ws, within: Duration) -> Option<Value> {
    match recv(ws, within).await? {
        Message::Text(t) => Some(serde_json::from_str(&t).expect("JSON")),
        m => panic!("expected JSON text, got {m:?}"),
    }
}

async fn pubsub_client(node: &Duplex, topics: &[&str]) -> Ws {
    let mut ws = duplex::connect(&node.url("/pubsub")).await.expect("connects");
    for t in topics {
        ws.send(json!({"op":"subscribe","topic":t}).to_string()).await.unwrap();
        assert_eq!(recv_json(&mut ws, WAIT).await, Some(json!({"subscribed":t})));
    }
    ws
}

async fn publish(ws: &mut Ws, topic: &str, data: Value) {
    ws.send(json!({"op":"publish","topic":topic,"data":data}).to_string()).await.unwrap();
}

/// Publishes probes (tagged `tag`) from `publisher` until `subscriber` receives one of them: the
/// nodes' Redis subscriptions are then in place. Probes still in flight are skipped by
/// [`expect_exactly`].
async fn probe_until_delivered(publisher: &mut Ws, subscriber: &mut Ws, topic: &str, tag: &str) {
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    loop {
        assert!(Instant::now() < deadline, "no probe {tag} published to {topic} arrived through Redis");
        n += 1;
        publish(publisher, topic, json!({ "probe": n, "from": tag })).await;
        while let Some(v) = recv_json(subscriber, Duration::from_millis(150)).await {
            assert!(v["data"]["probe"].is_u64(), "only probes so far: {v}");
            if v["data"]["from"] == tag {
                return;
            }
        }
    }
}

fn is_probe(v: &Value) -> bool {
    v["data"].get("probe").is_some()
}

/// Reads deliveries (skipping probes) until it has as many as `want`, then checks that they are
/// `want`, in order, each once, with nothing else after them.
async fn expect_exactly(ws: &mut Ws, want: &[Value]) {
    let mut got = Vec::new();
    while got.len() < want.len() {
        let v = recv_json(ws, WAIT).await.unwrap_or_else(|| panic!("timed out; got {got:?}, want {want:?}"));
        if !is_probe(&v) {
            got.push(v);
        }
    }
    assert_eq!(got, want);
    while let Some(extra) = recv_json(ws, Duration::from_millis(500)).await {
        assert!(is_probe(&extra), "delivered more than once, or unexpected: {extra}");
    }
}

fn deliveries(topic: &str, data: &[&str]) -> Vec<Value> {
    data.iter().map(|d| json!({"topic":topic,"data":d})).collect()
}

#[tokio::test]
async fn two_serve_nodes_share_topics_exactly_once() {
    let Some(redis) = Redis::start("two_serve_nodes_share_topics_exactly_once") else { return };
    let a = serve_node(&redis);
    let b = serve_node(&redis);
    // On A: a subscriber whose pattern and topic both match (two Redis subscriptions of node A
    // carry each message), and a publisher. On B: a subscriber and a publisher.
    let mut sub_a = pubsub_client(&a, &["chat.lobby", "chat.*"]).await;
    let mut pub_a = pubsub_client(&a, &[]).await;
    let mut sub_b = pubsub_client(&b, &["chat.lobby"]).await;
    let mut pub_b = pubsub_client(&b, &[]).await;
    probe_until_delivered(&mut pub_b, &mut sub_a, "chat.lobby", "b").await;
    probe_until_delivered(&mut pub_a, &mut sub_b, "chat.lobby", "a").await;

    // Published on B: each subscriber, remote (A) and local (B), gets each message once, in order.
    for m in ["b1", "b2", "b3", "b4", "b5"] {
        publish(&mut pub_b, "chat.lobby", json!(m)).await;
    }
    let want = deliveries("chat.lobby", &["b1", "b2", "b3", "b4", "b5"]);
    expect_exactly(&mut sub_a, &want).await;
    expect_exactly(&mut sub_b, &want).await;

    // Published on A: A's own subscriber gets it once (not again through Redis), B's too.
    for m in ["a1", "a2"] {
        publish(&mut pub_a, "chat.lobby", json!(m)).await;
    }
    let want = deliveries("chat.lobby", &["a1", "a2"]);
    expect_exactly(&mut sub_a, &want).await;
    expect_exactly(&mut sub_b, &want).await;

    // A topic only A's pattern covers.
    publish(&mut pub_b, "chat.eu", json!("eu")).await;
    expect_exactly(&mut sub_a, &deliveries("chat.eu", &["eu"])).await;
    assert!(recv(&mut sub_b, Duration::from_millis(200)).await.is_none());
}

#[tokio::test]
async fn delivery_resumes_after_redis_restarts() {
    let Some(mut redis) = Redis::start("delivery_resumes_after_redis_restarts") else { return };
    let a = serve_node(&redis);
    let b = serve_node(&redis);
    let mut sub_a = pubsub_client(&a, &["feed"]).await;
    let mut local_a = pubsub_client(&a, &[]).await;
    let mut pub_b = pubsub_client(&b, &[]).await;
    probe_until_delivered(&mut pub_b, &mut sub_a, "feed", "before").await;
    publish(&mut pub_b, "feed", json!("before")).await;
    expect_exactly(&mut sub_a, &deliveries("feed", &["before"])).await;

    redis.kill();
    a.wait_log("lost the subscribing connection", WAIT);
    b.wait_log("lost the subscribing connection", WAIT);
    // Without Redis, a node still serves its own subscribers.
    publish(&mut local_a, "feed", json!("local during the outage")).await;
    expect_exactly(&mut sub_a, &deliveries("feed", &["local during the outage"])).await;

    redis.restart_after(Duration::from_millis(300));
    a.wait_log("reconnected (subscribing)", WAIT);
    b.wait_log("reconnected (subscribing)", WAIT);
    probe_until_delivered(&mut pub_b, &mut sub_a, "feed", "after").await;
    publish(&mut pub_b, "feed", json!("after")).await;
    expect_exactly(&mut sub_a, &deliveries("feed", &["after"])).await;
    assert!(a.log().contains("serving local subscribers only"), "the outage is logged:\n{}", a.log());
}

#[tokio::test]
async fn two_relays_share_a_room() {
    let Some(redis) = Redis::start("two_relays_share_a_room") else { return };
    let url = redis.url();
    let relay_a = Duplex::start(&["relay", "--port", "{port}", "--redis", &url], Input::Null);
    let relay_b = Duplex::start(&["relay", "--port", "{port}", "--redis", &url], Input::Null);
    relay_a.wait_log("connected (subscribing)", WAIT);
    relay_b.wait_log("connected (subscribing)", WAIT);
    let mut a = duplex::connect(&relay_a.url("/lobby")).await.expect("a connects");
    let mut b = duplex::connect(&relay_b.url("/lobby")).await.expect("b connects");
    let mut other = duplex::connect(&relay_b.url("/other")).await.expect("other connects");
    relay_b.wait_log("room /other has 1 connection", WAIT);

    // Probe until B's Redis subscription to /lobby is in place.
    let deadline = Instant::now() + WAIT;
    let mut probes = 0;
    loop {
        assert!(Instant::now() < deadline, "no probe crossed from relay A to relay B");
        probes += 1;
        a.send(format!("probe {probes}")).await.unwrap();
        if recv(&mut b, Duration::from_millis(150)).await.is_some() {
            break;
        }
    }
    a.send("final").await.unwrap();
    let skip_probes = |m: &Message| matches!(m, Message::Text(t) if t.starts_with("probe"));
    for (who, ws) in [("b", &mut b), ("a (its own echo)", &mut a)] {
        let mut finals = 0;
        while let Some(m) = recv(ws, Duration::from_millis(500)).await {
            if !skip_probes(&m) {
                assert_eq!(m, Message::Text("final".into()));
                finals += 1;
            }
        }
        assert_eq!(finals, 1, "{who} gets the message exactly once");
    }
    // Binary, the other way.
    let bin = Message::Binary(bytes::Bytes::from_static(&[9, 8, 7]));
    b.send(bin.clone()).await.unwrap();
    assert_eq!(recv(&mut a, WAIT).await, Some(bin.clone()));
    assert_eq!(recv(&mut b, WAIT).await, Some(bin));
    assert!(recv(&mut other, Duration::from_millis(300)).await.is_none(), "another room hears nothing");
}
