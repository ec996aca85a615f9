//! History topics over a real `redis-server`, across two `duplex serve` nodes: positions shared by
//! the nodes, resume on another node, idempotent publishes across nodes, a node repairing a hole in
//! what it received by itself (`CLIENT KILL TYPE pubsub`), publishes refused while Redis is down,
//! a restart with an append-only file (the epoch kept) and without persistence (every subscriber
//! told `reset`, resumes not recovered), and the scripts loaded again after `SCRIPT FLUSH`.
//!
//! Each test starts its own `redis-server` on a free loopback port (tests/support/redis.rs).
//! Without `redis-server` the tests print `SKIP` and pass, except with `CI=true`.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::json_ws::{assert_quiet, next_json, send, Ws, WAIT};
use support::redis::{Persistence, Redis};
use support::{Duplex, Input};

fn node(redis: &Redis, extra: &[&str]) -> Duplex {
    let url = redis.url();
    let mut args = vec!["serve", "--port", "{port}", "--interval", "0", "--redis", &url, "--history", "feed=1000,10m"];
    args.extend_from_slice(extra);
    let node = Duplex::start(&args, Input::Null);
    node.wait_log("connected (subscribing)", WAIT);
    node.wait_log("connected (publishing)", WAIT);
    node
}

async fn client(node: &Duplex) -> Ws {
    duplex::connect(&node.url("/pubsub")).await.expect("connects")
}

/// Subscribes to `feed`; returns the reply.
async fn subscribe(ws: &mut Ws, since: Option<(u64, &str)>) -> Value {
    let mut req = json!({"op":"subscribe","topic":"feed"});
    if let Some((offset, epoch)) = since {
        req["since"] = json!({"offset":offset,"epoch":epoch});
    }
    send(ws, req).await;
    next_json(ws).await
}

/// Publishes `{"n":n}` with id `p-n` and waits for its ack, retrying while the backplane is
/// unavailable (as a client does); returns the ack and how many times it was refused.
async fn publish(ws: &mut Ws, n: u64) -> (Value, u32) {
    let mut refused = 0;
    let deadline = Instant::now() + WAIT;
    loop {
        send(ws, json!({"op":"publish","topic":"feed","data":{"n":n},"id":format!("p-{n}")})).await;
        let answer = next_json(ws).await;
        if answer["op"] == "ack" {
            return (answer, refused);
        }
        assert_eq!(answer, json!({"error":"backplane unavailable","id":format!("p-{n}")}));
        refused += 1;
        assert!(Instant::now() < deadline, "publish {n} refused for {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads deliveries until offset `until`; checks they are `from..=until`, in order, once.
async fn expect_offsets(ws: &mut Ws, from: u64, until: u64, epoch: &str) {
    for want in from..=until {
        let v = next_json(ws).await;
        assert_eq!((v["offset"].as_u64(), v["epoch"].as_str()), (Some(want), Some(epoch)), "{v}");
    }
}

#[tokio::test]
async fn two_nodes_share_positions_and_a_subscriber_resumes_on_the_other() {
    let Some(redis) = Redis::start("two_nodes_share_positions_and_a_subscriber_resumes_on_the_other") else {
        return;
    };
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let mut sub = client(&b).await;
    let reply = subscribe(&mut sub, None).await;
    assert_eq!(reply["offset"], 0, "{reply}");
    let epoch = reply["epoch"].as_str().unwrap().to_owned();
    let mut publisher = client(&a).await;
    for n in 1..=5 {
        let (ack, _) = publish(&mut publisher, n).await;
        assert_eq!(ack, json!({"op":"ack","id":format!("p-{n}"),"offset":n,"epoch":epoch}));
    }
    expect_offsets(&mut sub, 1, 5, &epoch).await;
    drop(sub);
    for n in 6..=8 {
        publish(&mut publisher, n).await;
    }
    // Back on the other node, from where it was.
    let mut back = client(&a).await;
    let mut replayed = Vec::new();
    send(&mut back, json!({"op":"subscribe","topic":"feed","since":{"offset":5,"epoch":epoch}})).await;
    let reply = loop {
        let v = next_json(&mut back).await;
        if v.get("subscribed").is_some() {
            break v;
        }
        replayed.push(v);
    };
    assert_eq!(reply, json!({"subscribed":"feed","offset":8,"epoch":epoch,"recovered":true,"replayed":3}));
    let want: Vec<Value> = (6..=8).map(|n| json!({"topic":"feed","data":{"n":n},"offset":n,"epoch":epoch})).collect();
    assert_eq!(replayed, want);
    // An id seen on A is a duplicate on B too.
    let mut other = client(&b).await;
    send(&mut other, json!({"op":"publish","topic":"feed","data":{"n":7},"id":"p-7"})).await;
    assert_eq!(next_json(&mut other).await, json!({"op":"ack","id":"p-7","offset":7,"epoch":epoch,"duplicate":true}));
    publish(&mut publisher, 9).await;
    expect_offsets(&mut back, 9, 9, &epoch).await;
    assert_quiet(&mut back, Duration::from_millis(300)).await;
    // History read through Redis.
    send(&mut other, json!({"op":"history","topic":"feed","limit":2,"reverse":true})).await;
    let page = next_json(&mut other).await;
    assert_eq!(page["items"], json!([{"offset":9,"data":{"n":9}},{"offset":8,"data":{"n":8}}]));
}

#[tokio::test]
async fn a_node_repairs_what_its_link_missed_by_itself() {
    let Some(redis) = Redis::start("a_node_repairs_what_its_link_missed_by_itself") else { return };
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let mut sub = client(&b).await;
    let epoch = subscribe(&mut sub, None).await["epoch"].as_str().unwrap().to_owned();
    let mut publisher = client(&a).await;
    publish(&mut publisher, 1).await;
    expect_offsets(&mut sub, 1, 1, &epoch).await;
    // B loses its pub/sub link (A's, subscribed to nothing, is not in subscribe mode); publishing
    // goes on (another connection).
    let killed = redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert_eq!(killed, ":1", "B's link");
    for n in 2..=20 {
        publish(&mut publisher, n).await;
    }
    // B reconnects its link and reads what it missed: the subscriber sees no hole, no duplicate,
    // and never reconnected.
    expect_offsets(&mut sub, 2, 20, &epoch).await;
    assert_quiet(&mut sub, Duration::from_millis(300)).await;
    b.wait_log("reconnected (subscribing)", WAIT);
    b.wait_log("1 topics read what they missed", WAIT);
}

#[tokio::test]
async fn publishes_are_refused_while_redis_is_down_and_the_epoch_survives_an_aof_restart() {
    let Some(mut redis) = Redis::start_with("history_aof_restart", Persistence::AofAlways) else { return };
    let a = node(&redis, &[]);
    let mut sub = client(&a).await;
    let epoch = subscribe(&mut sub, None).await["epoch"].as_str().unwrap().to_owned();
    let mut publisher = client(&a).await;
    publish(&mut publisher, 1).await;
    expect_offsets(&mut sub, 1, 1, &epoch).await;
    redis.kill();
    a.wait_log("lost the publishing connection", WAIT);
    send(&mut publisher, json!({"op":"publish","topic":"feed","data":{"n":2},"id":"p-2"})).await;
    assert_eq!(next_json(&mut publisher).await, json!({"error":"backplane unavailable","id":"p-2"}));
    // Not delivered locally without an offset.
    assert_quiet(&mut sub, Duration::from_millis(300)).await;
    redis.restart();
    let (ack, _) = publish(&mut publisher, 2).await;
    assert_eq!(ack["epoch"], epoch.as_str(), "the append-only file kept the epoch");
    assert_eq!(ack["offset"], 2);
    expect_offsets(&mut sub, 2, 2, &epoch).await;
    assert!(a.log().contains("publish refused"), "refusals are logged:\n{}", a.log());
}

#[tokio::test]
async fn a_restart_without_persistence_resets_subscribers_and_resumes_are_not_recovered() {
    let Some(mut redis) = Redis::start("history_restart_without_persistence") else { return };
    let a = node(&redis, &[]);
    let mut sub = client(&a).await;
    let epoch = subscribe(&mut sub, None).await["epoch"].as_str().unwrap().to_owned();
    let mut publisher = client(&a).await;
    for n in 1..=3 {
        publish(&mut publisher, n).await;
    }
    expect_offsets(&mut sub, 1, 3, &epoch).await;
    redis.restart_after(Duration::from_millis(200));
    a.wait_log("reconnected (subscribing)", WAIT);
    let reset = next_json(&mut sub).await;
    assert_eq!((reset["op"].as_str(), reset["reason"].as_str()), (Some("reset"), Some("epoch_changed")), "{reset}");
    let new_epoch = reset["epoch"].as_str().unwrap().to_owned();
    assert_ne!(new_epoch, epoch);
    let (ack, _) = publish(&mut publisher, 4).await;
    assert_eq!(ack["epoch"], new_epoch.as_str());
    let v = next_json(&mut sub).await;
    assert_eq!((v["offset"].as_u64(), v["epoch"].as_str()), (ack["offset"].as_u64(), Some(new_epoch.as_str())));
    // A client that resumes with its old position is told, and gets nothing wrong.
    let mut late = client(&a).await;
    let reply = subscribe(&mut late, Some((3, &epoch))).await;
    assert_eq!((reply["recovered"].as_bool(), reply["reason"].as_str()), (Some(false), Some("epoch_changed")));
    assert_quiet(&mut late, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn the_scripts_are_loaded_again_after_a_script_flush() {
    let Some(redis) = Redis::start("the_scripts_are_loaded_again_after_a_script_flush") else { return };
    let a = node(&redis, &[]);
    let mut publisher = client(&a).await;
    let (first, _) = publish(&mut publisher, 1).await;
    assert_eq!(redis.command(&["SCRIPT", "FLUSH"]), "+OK");
    let (second, refused) = publish(&mut publisher, 2).await;
    assert_eq!((second["offset"].as_u64(), refused), (Some(2), 0), "{first} {second}");
    a.wait_log("loading the scripts again", WAIT);
}

/// Stores publication `n` of `feed` the way the publish script does, but without publishing it:
/// to the nodes it is a message their link lost.
fn store_silently(redis: &Redis, n: u64) {
    assert_eq!(redis.command(&["HINCRBY", "duplex:pubsub:{t:feed}:meta", "s", "1"]), format!(":{n}"));
    let data = format!("{{\"n\":{n}}}");
    let id = format!("{n}-0");
    assert!(redis.command(&["XADD", "duplex:pubsub:{t:feed}:stream", &id, "d", &data]).starts_with('$'));
}

#[tokio::test]
async fn a_lost_message_is_found_by_the_next_one_or_by_the_position_check() {
    let Some(redis) = Redis::start("a_lost_message_is_found_by_the_next_one_or_by_the_position_check") else {
        return;
    };
    let a = node(&redis, &["--position-check", "1s"]);
    let mut sub = client(&a).await;
    let epoch = subscribe(&mut sub, None).await["epoch"].as_str().unwrap().to_owned();
    let mut publisher = client(&a).await;
    publish(&mut publisher, 1).await;
    expect_offsets(&mut sub, 1, 1, &epoch).await;
    // 2 never comes through the link; 3 does: the hole is read from the stream first.
    store_silently(&redis, 2);
    publish(&mut publisher, 3).await;
    expect_offsets(&mut sub, 2, 3, &epoch).await;
    // 4 never comes through the link and nothing follows it: the position check finds it.
    store_silently(&redis, 4);
    expect_offsets(&mut sub, 4, 4, &epoch).await;
    assert_quiet(&mut sub, Duration::from_millis(300)).await;
}
