//! History and resume on `duplex serve`'s `/pubsub` endpoint, with the in-memory history (no
//! Redis): positions, acknowledged and idempotent publishes, resume after a reconnect (replayed in
//! order, then live, nothing twice), the reasons a resume is not recovered, and history reads.
//! The same over Redis and across nodes is in tests/history_redis.rs.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::json_ws::{assert_quiet, next_json, send, Ws};
use support::{Duplex, Input};

fn serve(extra: &[&str]) -> Duplex {
    let mut args = vec!["serve", "--port", "{port}", "--interval", "0"];
    args.extend_from_slice(extra);
    Duplex::start(&args, Input::Null)
}

async fn client(server: &Duplex) -> Ws {
    duplex::connect(&server.url("/pubsub")).await.expect("connects")
}

/// Publishes `{"n":n}` for each n with id `p-n`; returns the acks.
async fn publish_all(ws: &mut Ws, topic: &str, ns: impl IntoIterator<Item = u64>) -> Vec<Value> {
    let ns: Vec<u64> = ns.into_iter().collect();
    for n in &ns {
        send(ws, json!({"op":"publish","topic":topic,"data":{"n":n},"id":format!("p-{n}")})).await;
    }
    let mut acks = Vec::new();
    for _ in &ns {
        let ack = next_json(ws).await;
        assert_eq!(ack["op"], "ack", "{ack}");
        acks.push(ack);
    }
    acks
}

#[tokio::test]
async fn deliveries_carry_positions_and_ids_make_publishes_idempotent() {
    let server = serve(&["--history", "feed=100,10m"]);
    let mut sub = client(&server).await;
    let mut publisher = client(&server).await;
    send(&mut sub, json!({"op":"subscribe","topic":"feed"})).await;
    let reply = next_json(&mut sub).await;
    assert_eq!((reply["subscribed"].as_str(), reply["offset"].as_u64()), (Some("feed"), Some(0)), "{reply}");
    let epoch = reply["epoch"].as_str().expect("an epoch").to_owned();
    assert!(reply.get("recovered").is_none(), "nothing to recover without since: {reply}");

    let acks = publish_all(&mut publisher, "feed", 1..=3).await;
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(ack, &json!({"op":"ack","id":format!("p-{}", i + 1),"offset":i + 1,"epoch":epoch}));
    }
    for n in 1..=3u64 {
        assert_eq!(next_json(&mut sub).await, json!({"topic":"feed","data":{"n":n},"offset":n,"epoch":epoch}));
    }
    // The same id again: the first publish's position, nothing delivered again.
    send(&mut publisher, json!({"op":"publish","topic":"feed","data":{"n":2},"id":"p-2"})).await;
    assert_eq!(
        next_json(&mut publisher).await,
        json!({"op":"ack","id":"p-2","offset":2,"epoch":epoch,"duplicate":true})
    );
    assert_quiet(&mut sub, Duration::from_millis(200)).await;
    // A topic without history: acknowledged, without a position; deliveries as before.
    send(&mut publisher, json!({"op":"subscribe","topic":"news"})).await;
    assert_eq!(next_json(&mut publisher).await, json!({"subscribed":"news"}));
    send(&mut publisher, json!({"op":"publish","topic":"news","data":"x","id":"n-1"})).await;
    let (a, b) = (next_json(&mut publisher).await, next_json(&mut publisher).await);
    let mut got = [a, b];
    got.sort_by_key(|v| v.to_string());
    let mut want = [json!({"op":"ack","id":"n-1"}), json!({"topic":"news","data":"x"})];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_subscriber_that_comes_back_gets_what_it_missed_once_in_order() {
    let server = serve(&["--history", "feed=100,10m"]);
    let mut publisher = client(&server).await;
    let mut sub = client(&server).await;
    send(&mut sub, json!({"op":"subscribe","topic":"feed"})).await;
    let epoch = next_json(&mut sub).await["epoch"].as_str().unwrap().to_owned();
    publish_all(&mut publisher, "feed", 1..=4).await;
    for n in 1..=4u64 {
        assert_eq!(next_json(&mut sub).await["offset"], n);
    }
    drop(sub);
    // Missed while away.
    publish_all(&mut publisher, "feed", 5..=9).await;

    let mut back = client(&server).await;
    send(&mut back, json!({"op":"subscribe","topic":"feed","since":{"offset":4,"epoch":epoch}})).await;
    for n in 5..=9u64 {
        assert_eq!(next_json(&mut back).await, json!({"topic":"feed","data":{"n":n},"offset":n,"epoch":epoch}));
    }
    assert_eq!(
        next_json(&mut back).await,
        json!({"subscribed":"feed","offset":9,"epoch":epoch,"recovered":true,"replayed":5})
    );
    publish_all(&mut publisher, "feed", 10..=10).await;
    assert_eq!(next_json(&mut back).await["offset"], 10);
    assert_quiet(&mut back, Duration::from_millis(200)).await;

    // Nothing missed: recovered, nothing replayed.
    let mut again = client(&server).await;
    send(&mut again, json!({"op":"subscribe","topic":"feed","since":{"offset":10,"epoch":epoch}})).await;
    assert_eq!(
        next_json(&mut again).await,
        json!({"subscribed":"feed","offset":10,"epoch":epoch,"recovered":true,"replayed":0})
    );
    let stats = server.log();
    assert!(stats.contains("resume from 4:"), "resumes are logged:\n{stats}");
}

#[tokio::test]
async fn when_continuity_cannot_be_proven_nothing_is_replayed() {
    let server = serve(&[
        "--history",
        "feed=5,10m",
        "--history",
        "tiny=2,10m",
        "--history",
        "short=100,1s",
        "--recover-max",
        "3",
    ]);
    let mut publisher = client(&server).await;
    let acks = publish_all(&mut publisher, "feed", 1..=8).await;
    let epoch = acks[0]["epoch"].as_str().unwrap().to_owned();
    let resume = |topic: &str, offset: u64, epoch: &str| json!({"op":"subscribe","topic":topic,"since":{"offset":offset,"epoch":epoch}});
    let mut ws = client(&server).await;
    let not_recovered = |reason: &str, offset: u64, epoch: &str| json!({"subscribed":"feed","offset":offset,"epoch":epoch,"recovered":false,"reason":reason});
    // Another epoch.
    send(&mut ws, resume("feed", 8, "elsewhere")).await;
    assert_eq!(next_json(&mut ws).await, not_recovered("epoch_changed", 8, &epoch));
    send(&mut ws, json!({"op":"unsubscribe","topic":"feed"})).await;
    next_json(&mut ws).await;
    // More missing than --recover-max.
    send(&mut ws, resume("feed", 4, &epoch)).await;
    assert_eq!(next_json(&mut ws).await, not_recovered("too_many", 8, &epoch));
    send(&mut ws, json!({"op":"unsubscribe","topic":"feed"})).await;
    next_json(&mut ws).await;
    // No longer kept (5 kept: 4..8): 6..8 would be fine, after 2 is not.
    let mut ws = client(&server).await;
    send(&mut ws, resume("feed", 6, &epoch)).await;
    assert_eq!(next_json(&mut ws).await["offset"], 7);
    assert_eq!(next_json(&mut ws).await["offset"], 8);
    assert_eq!(next_json(&mut ws).await["recovered"], true);
    // Trimmed by the history's size: 2 kept (4, 5) of 5; from 2, 3 is missing.
    let acks = publish_all(&mut publisher, "tiny", 1..=5).await;
    let tiny_epoch = acks[0]["epoch"].as_str().unwrap().to_owned();
    let mut old = client(&server).await;
    send(&mut old, resume("tiny", 2, &tiny_epoch)).await;
    let reply = next_json(&mut old).await;
    assert_eq!((reply["recovered"].as_bool(), reply["reason"].as_str()), (Some(false), Some("too_old")), "{reply}");
    // A position past the end.
    let mut ahead = client(&server).await;
    send(&mut ahead, resume("feed", 99, &epoch)).await;
    assert_eq!(next_json(&mut ahead).await, not_recovered("unknown_position", 8, &epoch));

    // Away longer than the TTL: the history is gone, the counter kept.
    let acks = publish_all(&mut publisher, "short", 1..=2).await;
    let short_epoch = acks[0]["epoch"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut late = client(&server).await;
    send(&mut late, resume("short", 1, &short_epoch)).await;
    let reply = next_json(&mut late).await;
    assert_eq!((reply["recovered"].as_bool(), reply["reason"].as_str()), (Some(false), Some("too_old")), "{reply}");
    assert_quiet(&mut late, Duration::from_millis(200)).await;

    // A topic without history, and a pattern.
    send(&mut late, json!({"op":"subscribe","topic":"news","since":{"offset":1,"epoch":"e"}})).await;
    assert_eq!(next_json(&mut late).await, json!({"subscribed":"news","recovered":false,"reason":"history_off"}));
    send(&mut late, json!({"op":"subscribe","topic":"feed.*","since":{"offset":1,"epoch":"e"}})).await;
    assert!(next_json(&mut late).await["error"].as_str().unwrap().contains("pattern subscription is live only"));
}

#[tokio::test]
async fn the_last_messages_of_a_topic_are_read_with_history() {
    let server = serve(&["--history", "chat.*=50,10m"]);
    let mut ws = client(&server).await;
    let acks = publish_all(&mut ws, "chat.lobby", 1..=6).await;
    let epoch = acks[0]["epoch"].as_str().unwrap().to_owned();
    send(&mut ws, json!({"op":"history","topic":"chat.lobby","limit":3,"reverse":true})).await;
    let items = |ns: &[u64]| ns.iter().map(|n| json!({"offset":n,"data":{"n":n}})).collect::<Vec<_>>();
    assert_eq!(
        next_json(&mut ws).await,
        json!({"op":"history","topic":"chat.lobby","epoch":epoch,"offset":6,"items":items(&[6, 5, 4])})
    );
    send(&mut ws, json!({"op":"history","topic":"chat.lobby","since":{"offset":4,"epoch":epoch}})).await;
    assert_eq!(next_json(&mut ws).await["items"], json!(items(&[5, 6])));
    send(&mut ws, json!({"op":"history","topic":"news"})).await;
    assert!(next_json(&mut ws).await["error"].as_str().unwrap().contains("keeps no history"));
}
