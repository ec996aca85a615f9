//! `PubSubClient` against two real `/pubsub` servers in this process sharing one `PubSub` (one
//! memory history: what two nodes sharing Redis look like to a client). The client subscribes and
//! publishes through the first; the first shuts down; what is published meanwhile reaches the
//! client after it resumed on the second, once, in order; its publishes are acknowledged once.

use std::time::Duration;

use duplex_pubsub::client::{ClientEvent, PubSubClient, Resumed};
use duplex_pubsub::{HistoryPolicy, JsonEndpoint, PubSub};

const WAIT: Duration = Duration::from_secs(20);

/// A `/pubsub` server on a free port; its URL and its shutdown handle.
async fn node(pubsub: &PubSub) -> (String, duplex::ShutdownHandle) {
    let server = duplex::Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/pubsub", server.local_addr().unwrap());
    let shutdown = server.shutdown_handle();
    let endpoint = JsonEndpoint::new(pubsub.clone());
    tokio::spawn(server.serve(move |incoming| {
        let endpoint = endpoint.clone();
        async move {
            let Ok(req) = incoming.request().await else { return };
            let Ok(mut ws) = req.accept().await else { return };
            let _ = endpoint.run(&mut ws).await;
        }
    }));
    (url, shutdown)
}

/// The next event that is not a connection notice.
async fn next(client: &mut PubSubClient) -> ClientEvent {
    loop {
        match tokio::time::timeout(WAIT, client.next()).await.expect("an event in time").expect("not stopped") {
            ClientEvent::Connected(_) | ClientEvent::Disconnected(_) => {}
            e => return e,
        }
    }
}

#[tokio::test]
async fn resumes_on_the_other_node_and_publishes_once() {
    let pubsub = PubSub::builder().history("feed", HistoryPolicy::new(1000, Duration::from_secs(600))).build().unwrap();
    let (a, stop_a) = node(&pubsub).await;
    let (b, _stop_b) = node(&pubsub).await;
    let mut client = PubSubClient::builder([a.clone(), b.clone()])
        .backoff(duplex::reconnect::Backoff::default().base(Duration::from_millis(50)))
        .id_prefix("t")
        .build();
    client.subscribe("feed");
    let ClientEvent::Subscribed(s) = next(&mut client).await else { panic!("subscribed first") };
    assert_eq!((s.topic.as_str(), s.resumed.clone()), ("feed", Resumed::Live));
    let epoch = s.position.expect("a history topic has a position").epoch;
    let id = client.publish("feed", &serde_json::json!({"n": 1})).unwrap();
    let mut offsets = Vec::new();
    let mut acked = Vec::new();
    while offsets.is_empty() || acked.is_empty() {
        match next(&mut client).await {
            ClientEvent::Message(m) => offsets.push(m.position.unwrap().offset),
            ClientEvent::Acked(a) => acked.push((a.id, a.duplicate)),
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(acked, [(id, false)]);
    // Node A goes away; five publications while the client is away.
    stop_a.shutdown();
    // Until the client has seen the connection end (it reconnects only when polled again).
    loop {
        match tokio::time::timeout(WAIT, client.next()).await.expect("in time").expect("not stopped") {
            ClientEvent::Disconnected(d) => {
                assert!(d.was_connected);
                assert_eq!(&*d.next_url, b.as_str());
                break;
            }
            ClientEvent::Message(m) => panic!("{m:?}"),
            _ => {}
        }
    }
    for n in 2..=6 {
        pubsub.publish_json_with("feed", &serde_json::json!({"n": n}), Default::default()).await.unwrap();
    }
    let mut resumed = None;
    while offsets.len() < 6 {
        match next(&mut client).await {
            ClientEvent::Message(m) => {
                assert_eq!(m.position.as_ref().unwrap().epoch, epoch);
                offsets.push(m.position.unwrap().offset);
            }
            ClientEvent::Subscribed(s) => resumed = Some(s.resumed),
            e => panic!("{e:?}"),
        }
    }
    // The resume's reply comes after the replay.
    if resumed.is_none() {
        let ClientEvent::Subscribed(s) = next(&mut client).await else { panic!("the resume's reply") };
        resumed = Some(s.resumed);
    }
    assert_eq!(offsets, [1, 2, 3, 4, 5, 6]);
    assert_eq!(resumed, Some(Resumed::Recovered { replayed: 5 }));
    assert_eq!(client.url(), b);
    assert_eq!(client.position("feed").map(|p| p.offset), Some(6));
    // Live again, through B.
    pubsub.publish_json_with("feed", &serde_json::json!({"n": 7}), Default::default()).await.unwrap();
    let ClientEvent::Message(m) = next(&mut client).await else { panic!("live delivery") };
    assert_eq!((m.data["n"].as_u64(), m.position.map(|p| p.offset)), (Some(7), Some(7)));
    assert_eq!(client.stats().duplicates_dropped, 0);
    assert_eq!(client.unacked(), 0);
}

#[tokio::test]
async fn publishes_beyond_the_window_wait_and_keep_their_order() {
    let pubsub = PubSub::builder().history("feed", HistoryPolicy::new(1000, Duration::from_secs(600))).build().unwrap();
    let (a, _stop) = node(&pubsub).await;
    let mut client = PubSubClient::builder([a]).max_in_flight(4).build();
    client.subscribe("feed");
    let ClientEvent::Subscribed(_) = next(&mut client).await else { panic!("subscribed first") };
    // 1500 at once: more than the server's 1024 pipelined requests, so the window matters.
    let ids: Vec<String> = (1..=1500).map(|n| client.publish("feed", &serde_json::json!({"n": n})).unwrap()).collect();
    let (mut acks, mut got) = (Vec::new(), Vec::new());
    while acks.len() < ids.len() || got.len() < ids.len() {
        match next(&mut client).await {
            ClientEvent::Acked(a) => acks.push(a.id),
            ClientEvent::Message(m) => got.push(m.data["n"].as_u64().unwrap()),
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(acks, ids);
    assert_eq!(got, (1..=1500).collect::<Vec<u64>>());
    assert_eq!(client.unacked(), 0);
}
