//! Routing, wildcards, policies and clean-up, on real sockets over in-memory pipes.

use std::time::Duration;

use duplex::{CloseCode, Config, Message, Role, WebSocket};
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;

use super::*;
use crate::Subscriber;

const WAIT: Duration = Duration::from_secs(5);

/// A subscribed server connection and the client at the other end of its pipe.
struct Peer {
    me: Subscriber,
    client: WebSocket<DuplexStream>,
    server: JoinHandle<()>,
}

/// A server connection (driven by its own task, as in a server) subscribed through `pubsub`,
/// with `config`, and a client reading it through a pipe of `pipe` bytes.
fn peer_with(pubsub: &PubSub, config: Config, pipe: usize) -> Peer {
    let (a, b) = tokio::io::duplex(pipe);
    let mut server = WebSocket::from_upgraded(a, Role::Server, config, &[]);
    let me = pubsub.attach(&mut server);
    let server = tokio::spawn(async move { while let Some(Ok(_)) = server.recv().await {} });
    let client = WebSocket::from_upgraded(b, Role::Client, Config::default(), &[]);
    Peer { me, client, server }
}

fn peer(pubsub: &PubSub) -> Peer {
    peer_with(pubsub, Config::default(), 64 * 1024)
}

async fn next_text(ws: &mut WebSocket<DuplexStream>) -> String {
    match tokio::time::timeout(WAIT, ws.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Nothing more arrives within a short while.
async fn assert_quiet(ws: &mut WebSocket<DuplexStream>) {
    if let Ok(m) = tokio::time::timeout(Duration::from_millis(100), ws.recv()).await {
        panic!("expected nothing, got {m:?}");
    }
}

#[tokio::test]
async fn an_exact_topic_reaches_its_subscribers_only() {
    let pubsub = PubSub::new();
    let mut a = peer(&pubsub);
    let mut b = peer(&pubsub);
    let mut c = peer(&pubsub);
    assert!(a.me.subscribe("news").unwrap());
    assert!(!a.me.subscribe("news").unwrap(), "subscribing twice is a no-op");
    b.me.subscribe("news").unwrap();
    c.me.subscribe("sports").unwrap();
    assert_eq!(pubsub.subscriber_count("news"), 2);

    let d = pubsub.publish("news", "extra!").unwrap();
    assert_eq!((d.delivered, d.dropped, d.closed), (2, 0, 0));
    assert_eq!(next_text(&mut a.client).await, "extra!");
    assert_eq!(next_text(&mut b.client).await, "extra!");
    assert_quiet(&mut c.client).await;

    // Binary stays binary.
    pubsub.publish("sports", Message::Binary(bytes::Bytes::from_static(&[1, 2, 3]))).unwrap();
    match tokio::time::timeout(WAIT, c.client.recv()).await {
        Ok(Some(Ok(Message::Binary(b)))) => assert_eq!(&b[..], &[1, 2, 3]),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_trailing_wildcard_reaches_every_topic_under_it() {
    let pubsub = PubSub::new();
    let mut chat = peer(&pubsub);
    let mut all = peer(&pubsub);
    chat.me.subscribe("chat.*").unwrap();
    all.me.subscribe("*").unwrap();
    assert_eq!(pubsub.subscriber_count("chat.*"), 1);

    for topic in ["chat.lobby", "chat.lobby.eu", "chat", "chatter.x", "other"] {
        pubsub.publish(topic, topic).unwrap();
    }
    assert_eq!(next_text(&mut chat.client).await, "chat.lobby");
    assert_eq!(next_text(&mut chat.client).await, "chat.lobby.eu");
    assert_quiet(&mut chat.client).await;
    for topic in ["chat.lobby", "chat.lobby.eu", "chat", "chatter.x", "other"] {
        assert_eq!(next_text(&mut all.client).await, topic);
    }
}

#[tokio::test]
async fn a_connection_matching_several_filters_gets_each_message_once() {
    let pubsub = PubSub::new();
    let mut p = peer(&pubsub);
    for f in ["a.b.c", "a.*", "a.b.*", "*"] {
        p.me.subscribe(f).unwrap();
    }
    let d = pubsub.publish("a.b.c", "once").unwrap();
    assert_eq!(d.delivered, 1);
    pubsub.publish("a.x", "then this").unwrap();
    assert_eq!(next_text(&mut p.client).await, "once");
    assert_eq!(next_text(&mut p.client).await, "then this");
    assert_quiet(&mut p.client).await;
}

#[tokio::test]
async fn unsubscribing_and_dropping() {
    let pubsub = PubSub::new();
    let mut p = peer(&pubsub);
    let q = peer(&pubsub);
    p.me.subscribe("x").unwrap();
    p.me.subscribe("y.*").unwrap();
    q.me.subscribe("x").unwrap();
    assert_eq!(p.me.subscriptions().iter().map(ToString::to_string).collect::<Vec<_>>(), ["x", "y.*"]);
    let listed: Vec<(String, usize)> =
        pubsub.topics().into_iter().map(|t| (t.filter.to_string(), t.subscribers)).collect();
    assert_eq!(listed, [("x".to_owned(), 2), ("y.*".to_owned(), 1)]);

    assert!(p.me.unsubscribe("x"));
    assert!(!p.me.unsubscribe("x"));
    assert!(!p.me.unsubscribe("never.subscribed"));
    assert_eq!(pubsub.subscriber_count("x"), 1);
    pubsub.publish("x", "not for p").unwrap();
    pubsub.publish("y.z", "for p").unwrap();
    assert_eq!(next_text(&mut p.client).await, "for p");

    drop(q.me);
    assert_eq!(pubsub.subscriber_count("x"), 0);
    p.me.unsubscribe_all();
    assert!(pubsub.topics().is_empty());
    assert!(pubsub.inner.fanout.read().is_empty());
}

#[tokio::test]
async fn a_connection_that_ended_is_unsubscribed_by_the_next_publish() {
    let pubsub = PubSub::new();
    let p = peer(&pubsub);
    p.me.subscribe("t").unwrap();
    drop(p.client);
    // The server's task sees the pipe close and ends; its sender reports Closed from then on.
    tokio::time::timeout(WAIT, p.server).await.unwrap().unwrap();
    let d = pubsub.publish("t", "anyone?").unwrap();
    assert_eq!(d.delivered, 0);
    assert_eq!(pubsub.subscriber_count("t"), 0, "the publish removed the closed connection");
    assert!(p.me.subscriptions().is_empty());
    assert!(!p.me.subscribe("t").unwrap(), "a closed connection cannot subscribe again");
    assert_eq!(pubsub.subscriber_count("t"), 0);
}

#[tokio::test]
async fn publish_except_leaves_out_the_sender() {
    let pubsub = PubSub::new();
    let mut a = peer(&pubsub);
    let mut b = peer(&pubsub);
    a.me.subscribe("room").unwrap();
    b.me.subscribe("room").unwrap();
    let d = pubsub.publish_except("room", "from a", &a.me).unwrap();
    assert_eq!(d.delivered, 1);
    assert_eq!(next_text(&mut b.client).await, "from a");
    assert_quiet(&mut a.client).await;
}

#[tokio::test]
async fn publish_json_wraps_data_in_the_delivery_envelope() {
    let pubsub = PubSub::new();
    let mut p = peer(&pubsub);
    p.me.subscribe("prices.*").unwrap();
    pubsub.publish_json("prices.eur", &serde_json::json!({"bid": 1.5})).unwrap();
    assert_eq!(next_text(&mut p.client).await, r#"{"topic":"prices.eur","data":{"bid":1.5}}"#);
}

#[tokio::test]
async fn bad_topics_and_limits_are_errors() {
    let pubsub = PubSub::builder().max_subscriptions(2).build().unwrap();
    let p = peer(&pubsub);
    assert!(matches!(pubsub.publish("a.*", "x"), Err(Error::PatternNotAllowed(_))));
    assert!(matches!(pubsub.publish("", "x"), Err(Error::InvalidTopic { .. })));
    assert!(matches!(p.me.subscribe("a*"), Err(Error::InvalidTopic { .. })));
    p.me.subscribe("one").unwrap();
    p.me.subscribe("two").unwrap();
    assert!(matches!(p.me.subscribe("three"), Err(Error::TooManySubscriptions { limit: 2 })));
    assert_eq!(pubsub.stats().published, 0);
}

/// A subscriber that does not read, with a small write buffer limit, and one that does.
fn slow_and_fast(pubsub: &PubSub) -> (Peer, Peer) {
    let slow = peer_with(pubsub, Config::default().write_buffer_limit(1000), 256);
    let fast = peer(pubsub);
    slow.me.subscribe("feed").unwrap();
    fast.me.subscribe("feed").unwrap();
    (slow, fast)
}

#[tokio::test]
async fn drop_policy_skips_messages_for_a_slow_subscriber_and_keeps_it() {
    let pubsub = PubSub::new();
    let (mut slow, mut fast) = slow_and_fast(&pubsub);
    let payload = "x".repeat(100);
    let mut total = Delivery::default();
    for _ in 0..100 {
        let d = pubsub.publish("feed", payload.as_str()).unwrap();
        total.delivered += d.delivered;
        total.dropped += d.dropped;
    }
    // The fast one got everything; the slow one what fit under its limit.
    assert!(total.dropped >= 80, "{total:?}");
    assert_eq!(total.delivered + total.dropped, 200);
    assert_eq!(slow.me.dropped(), total.dropped as u64);
    assert_eq!(pubsub.stats().dropped, total.dropped as u64);
    for _ in 0..100 {
        assert_eq!(next_text(&mut fast.client).await.len(), 100);
    }
    // Still subscribed: once it reads, it catches up and gets later messages.
    assert_eq!(pubsub.subscriber_count("feed"), 2);
    let got = 200 - total.dropped;
    for _ in 0..got - 100 {
        assert_eq!(next_text(&mut slow.client).await.len(), 100);
    }
    assert_quiet(&mut slow.client).await;
    pubsub.publish("feed", "later").unwrap();
    assert_eq!(next_text(&mut slow.client).await, "later");
}

#[tokio::test]
async fn close_policy_closes_a_slow_subscriber_with_its_code() {
    let pubsub = PubSub::builder().slow_subscriber(SlowSubscriber::close_try_again_later()).build().unwrap();
    let (mut slow, mut fast) = slow_and_fast(&pubsub);
    let payload = "y".repeat(100);
    let mut closed = 0;
    for _ in 0..100 {
        closed += pubsub.publish("feed", payload.as_str()).unwrap().closed;
    }
    assert_eq!(closed, 1, "closed once, then out of the topic");
    assert_eq!(pubsub.subscriber_count("feed"), 1);
    assert!(slow.me.subscriptions().is_empty());
    for _ in 0..100 {
        assert_eq!(next_text(&mut fast.client).await.len(), 100);
    }
    // The slow one reads what it had, then the close frame.
    loop {
        match tokio::time::timeout(WAIT, slow.client.recv()).await.expect("the slow client is closed") {
            Some(Ok(_)) => continue,
            None => break,
            Some(Err(e)) => panic!("{e}"),
        }
    }
    let frame = slow.client.close_info().and_then(|i| i.frame).expect("a close frame");
    assert_eq!(frame.code, CloseCode::TRY_AGAIN_LATER);
    assert_eq!(pubsub.stats().closed, 1);
}

#[tokio::test]
async fn a_subscriber_may_have_its_own_policy() {
    let pubsub = PubSub::new();
    let (a, b) = tokio::io::duplex(256);
    let mut server = WebSocket::from_upgraded(a, Role::Server, Config::default().write_buffer_limit(500), &[]);
    let me = pubsub.subscriber_with(server.sender(), SlowSubscriber::close_policy_violation());
    me.subscribe("t").unwrap();
    let mut closed = 0;
    for _ in 0..20 {
        closed += pubsub.publish("t", "z".repeat(100)).unwrap().closed;
    }
    assert_eq!(closed, 1);
    drop((server, b));
}
