//! Resumes racing live publications: a link that loses and repeats messages, reads answered late,
//! subscribers joining with positions anywhere — every subscriber ends with everything after its
//! position, in order, once.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex as StdMutex;

use duplex::{Config as WsConfig, Role, WebSocket};
use proptest::prelude::*;
use tokio::io::DuplexStream;
use tokio::sync::Semaphore;

use super::*;
use crate::history::HistoryPolicy;
use crate::slow_subscriber::SlowSubscriber;
use crate::topic::Filter;

#[test]
fn what_a_resume_can_prove() {
    let page = |epoch: &str, top: u64, first: Option<u64>| Page {
        epoch: epoch.into(),
        top,
        entries: first.map(|f| (f..=top).map(|o| (o, Publication::json("1".into()))).collect()).unwrap_or_default(),
    };
    let since = Position::new(10, "A");
    assert_eq!(recoverable(&since, &page("A", 10, None), 5), Ok(()));
    assert_eq!(recoverable(&since, &page("A", 15, Some(11)), 5), Ok(()));
    assert_eq!(recoverable(&since, &page("A", 16, Some(11)), 5), Err(NotRecovered::TooMany));
    assert_eq!(recoverable(&since, &page("A", 15, Some(12)), 5), Err(NotRecovered::TooOld));
    assert_eq!(recoverable(&since, &page("A", 15, None), 5), Err(NotRecovered::TooOld));
    assert_eq!(recoverable(&since, &page("B", 15, Some(11)), 5), Err(NotRecovered::EpochChanged));
    assert_eq!(recoverable(&since, &page("A", 9, None), 5), Err(NotRecovered::UnknownPosition));
}

/// A store whose reads are answered only when the test lets them (the memory backend behind),
/// and whose publications come back through a "link" the test drives.
#[derive(Clone)]
struct Gated(Arc<GatedInner>);

struct GatedInner {
    memory: MemoryBackend,
    gate: Semaphore,
}

impl Store for Gated {
    fn append(&self, topic: &str, l: Lifetimes, p: Publication, id: Option<&str>) -> StoreFuture<Appended> {
        Box::pin(std::future::ready(self.0.memory.append_now(topic, l, p, id)))
    }

    fn read(&self, topic: &str, lifetimes: Lifetimes, read: Read) -> StoreFuture<Page> {
        let (me, topic) = (self.0.clone(), topic.to_owned());
        Box::pin(async move {
            me.gate.acquire().await.expect("open").forget();
            me.memory.read_now(&topic, lifetimes, read)
        })
    }
}

const TOPIC: &str = "feed";

fn lifetimes() -> Lifetimes {
    Lifetimes {
        policy: HistoryPolicy::new(10_000, Duration::from_secs(600)),
        meta_ttl: Duration::from_secs(600),
        id_window: Duration::from_secs(60),
    }
}

/// A subscriber: the member, and the client end of its connection.
struct Sub {
    member: Arc<Member>,
    client: WebSocket<DuplexStream>,
    since: Option<u64>,
}

fn member(id: u64) -> (Arc<Member>, WebSocket<DuplexStream>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let mut server = WebSocket::from_upgraded(a, Role::Server, WsConfig::default(), &[]);
    let member = Arc::new(Member {
        id,
        sender: server.sender(),
        policy: SlowSubscriber::Drop,
        filters: Default::default(),
        gone: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
    });
    tokio::spawn(async move { while let Some(Ok(_)) = server.recv().await {} });
    (member, WebSocket::from_upgraded(b, Role::Client, WsConfig::default(), &[]))
}

#[derive(Clone, Copy, Debug)]
enum Step {
    /// Publish; the link delivers it (0), loses it (1) or delivers it twice (2).
    Publish(u8),
    /// A subscriber joins, resuming from `pick` (scaled to what was published) or live.
    Join(Option<u8>),
    /// Answer a pending read.
    Answer,
    /// The position check.
    Check,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0u8..3).prop_map(Step::Publish),
        2 => proptest::option::of(any::<u8>()).prop_map(Step::Join),
        4 => Just(Step::Answer),
        1 => Just(Step::Check),
    ]
}

async fn case(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let gated = Gated(Arc::new(GatedInner { memory: MemoryBackend::new(), gate: Semaphore::new(0) }));
    let store: Arc<dyn Store> = Arc::new(gated.clone());
    let gated = &gated.0;
    let fanout = Arc::new(Fanout::default());
    let mut policies = Policies::default();
    policies.set(TOPIC, lifetimes().policy).unwrap();
    let config = Config {
        policies,
        meta_ttl: Duration::from_secs(600),
        id_window: Duration::from_secs(60),
        recover_max: 1000,
        position_check: Duration::from_millis(100),
    };
    let tracks = Tracks::new(fanout.clone(), store, None, config);
    let filter = Filter::Exact(TOPIC.to_owned());
    let published = StdMutex::new(0u64);
    let mut subs: Vec<Sub> = Vec::new();
    let mut joins = Vec::new();
    let publish = |how: u8| {
        let a = gated.memory.append_now(TOPIC, lifetimes(), Publication::json("0".into()), None).unwrap();
        *published.lock().unwrap() = a.position.offset;
        for _ in 0..[1, 0, 2][how as usize] {
            tracks.live(TOPIC, a.position.clone(), Publication::json("0".into()));
        }
    };
    let mut ids = 0;
    for (i, s) in steps.into_iter().enumerate() {
        match s {
            Step::Publish(how) => publish(how),
            Step::Join(pick) => {
                ids += 1;
                let (m, client) = member(ids);
                let top = *published.lock().unwrap();
                let epoch = gated.memory.read_now(TOPIC, lifetimes(), Read::position()).unwrap().epoch;
                let since = pick.map(|p| u64::from(p) % (top + 1));
                let position = since.map(|s| Position { offset: s, epoch });
                let reply: ReplyFn = Box::new(|o: &SubscribeOutcome| Some(Message::Text(format!("reply {o:?}"))));
                let (mm, f, t) = (m.clone(), filter.clone(), tracks.clone());
                let insert = move || {
                    mm.filters.lock().unwrap().insert(f.clone());
                    Ok((true, t.fanout.write().insert(&f, &mm)))
                };
                let joined = tracks.join(&m, TOPIC, position, Some(reply), insert).expect("joins");
                let (t, mm) = (tracks.clone(), m.clone());
                joins.push(tokio::spawn(async move { t.finish(&mm, joined).await }));
                tracks.link_subscribed();
                subs.push(Sub { member: m, client, since });
            }
            Step::Answer => gated.gate.add_permits(1),
            Step::Check => {
                tracks.check_idle();
            }
        }
        if i % 7 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Then everything is let through: reads answered, a last check finds what the link lost.
    gated.gate.add_permits(1 << 20);
    for j in joins {
        prop_assert!(j.await.unwrap().is_ok());
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        tracks.link_reconnected();
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let top = *published.lock().unwrap();
    for sub in &mut subs {
        let mut offsets = Vec::new();
        let mut reply_at = None;
        let quiet = |offsets: &Vec<u64>| Duration::from_millis(if offsets.last() == Some(&top) { 20 } else { 2000 });
        while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(quiet(&offsets), sub.client.recv()).await {
            if let Some(r) = t.strip_prefix("reply ") {
                prop_assert!(reply_at.is_none(), "one reply");
                reply_at = Some((offsets.len(), r.to_owned()));
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            offsets.push(v["offset"].as_u64().unwrap());
        }
        let (replayed_before_reply, reply) = reply_at.expect("a reply");
        let start = offsets.first().copied().unwrap_or(top + 1);
        let want: Vec<u64> = (start..=top).collect();
        prop_assert_eq!(&offsets, &want, "member {}: contiguous and once ({})", sub.member.id, reply);
        if let Some(since) = sub.since {
            prop_assert!(reply.contains("Recovered"), "{}", reply);
            prop_assert_eq!(start, since + 1, "resumed right after its position: {}", reply);
            prop_assert!(reply.contains(&format!("replayed: {replayed_before_reply}")), "{}", reply);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_interleaving_of_live_and_replayed_publications(steps in prop::collection::vec(step(), 1..80)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(case(steps))?;
    }
}
