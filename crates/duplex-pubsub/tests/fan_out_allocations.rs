//! Fan-out costs nothing per recipient: a publish to 1,000 subscribers allocates as often, and as
//! many bytes, as a publish to 10 — the frame is encoded once and every subscriber's queue gets a
//! reference to the same bytes. Counted with a global allocator that counts, per thread, while
//! asked to.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use duplex::{Config, Message, Role, WebSocket};
use duplex_pubsub::{PubSub, Subscriber};
use tokio::io::DuplexStream;

struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn count(size: usize) {
    // `try_with`: the allocator may run while this thread's locals are being torn down.
    if ON.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        let _ = BYTES.try_with(|c| c.set(c.get() + size as u64));
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting touches only
// `const`-initialised thread locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations, bytes) made by `f` on this thread.
fn measure(f: impl FnOnce()) -> (u64, u64) {
    ALLOCS.with(|c| c.set(0));
    BYTES.with(|c| c.set(0));
    ON.with(|c| c.set(true));
    f();
    ON.with(|c| c.set(false));
    (ALLOCS.with(Cell::get), BYTES.with(Cell::get))
}

/// `n` server connections (kept open, not driven: what is published waits in their queues),
/// each subscribed to `filters`.
fn subscribers(
    pubsub: &PubSub,
    n: usize,
    filters: &[&str],
) -> Vec<(WebSocket<DuplexStream>, DuplexStream, Subscriber)> {
    (0..n)
        .map(|_| {
            let (a, b) = tokio::io::duplex(1024);
            let mut ws = WebSocket::from_upgraded(a, Role::Server, Config::default(), &[]);
            let me = pubsub.attach(&mut ws);
            for f in filters {
                me.subscribe(f).unwrap();
            }
            (ws, b, me)
        })
        .collect()
}

const PAYLOAD: usize = 64 * 1024;

/// Allocations and bytes of one publish of a 64 KiB message to `n` subscribers of `filters`,
/// after one publish that let every queue take its first slot.
fn publish_cost(n: usize, filters: &[&str], topic: &str) -> (u64, u64) {
    let pubsub = PubSub::new();
    let _subs = subscribers(&pubsub, n, filters);
    let message = Message::Binary(Bytes::from(vec![7u8; PAYLOAD]));
    assert_eq!(pubsub.publish(topic, message.clone()).unwrap().delivered, n);
    let (allocs, bytes) = measure(|| {
        let d = pubsub.publish(topic, message.clone()).unwrap();
        assert_eq!(d.delivered, n);
    });
    (allocs, bytes)
}

#[test]
fn a_publish_allocates_nothing_per_subscriber() {
    let few = publish_cost(10, &["news"], "news");
    let many = publish_cost(1000, &["news"], "news");
    println!("publish of {PAYLOAD} bytes: 10 subscribers {few:?}, 1000 subscribers {many:?} (allocations, bytes)");
    assert_eq!(few.0, many.0, "allocations must not grow with the number of subscribers");
    // One frame (payload + header) and a reference count, whatever the audience.
    assert!(many.1 < (PAYLOAD + 1024) as u64, "bytes allocated for 1000 subscribers: {}", many.1);
    assert!(many.0 <= 3, "allocations per publish: {}", many.0);
}

#[test]
fn overlapping_wildcards_allocate_nothing_per_subscriber_either() {
    // Each connection matches three filters: the walk visits it once, using a set that keeps its
    // capacity between publishes.
    let filters = ["chat.lobby", "chat.*", "*"];
    let few = publish_cost(10, &filters, "chat.lobby");
    let many = publish_cost(1000, &filters, "chat.lobby");
    println!("with overlapping filters: 10 subscribers {few:?}, 1000 subscribers {many:?}");
    assert_eq!(few.0, many.0);
    assert!(many.1 < (PAYLOAD + 1024) as u64, "bytes allocated for 1000 subscribers: {}", many.1);
}

// ---------------------------------------------------------------------------------------------
// The same counts with a metrics recorder installed (docs/metrics.md)

/// The Prometheus recorder of the `duplex` command line, compiled as is (it needs only `metrics`).
#[allow(dead_code)]
#[path = "../../../src/prometheus.rs"]
mod prometheus;

/// Allocations and bytes of one `WebSocket::send` of a 1 KiB message, written to the transport,
/// after one send that sized the buffers.
fn socket_send_cost() -> (u64, u64) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        // A pipe larger than what is sent: every write completes at once.
        let (a, _b) = tokio::io::duplex(1 << 20);
        let mut ws = WebSocket::from_upgraded(a, Role::Server, Config::default(), &[]);
        let message = Message::Binary(Bytes::from(vec![7u8; 1024]));
        ws.send(message.clone()).await.unwrap();
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut send = std::pin::pin!(ws.send(message.clone()));
        measure(|| assert!(std::future::Future::poll(send.as_mut(), &mut cx).is_ready()))
    })
}

/// Every count of this file, as one line.
fn all_counts() -> String {
    let filters = ["chat.lobby", "chat.*", "*"];
    format!(
        "publish-10={:?} publish-1000={:?} overlapping-10={:?} overlapping-1000={:?} socket-send={:?}",
        publish_cost(10, &["news"], "news"),
        publish_cost(1000, &["news"], "news"),
        publish_cost(10, &filters, "chat.lobby"),
        publish_cost(1000, &filters, "chat.lobby"),
        socket_send_cost(),
    )
}

const CHILD: &str = "DUPLEX_ALLOC_COUNT_CHILD";

/// Runs [`all_counts`] in a child process of this test binary, with or without a recorder (a
/// recorder is process-wide and every metric handle is kept once registered, so each way needs a
/// process of its own); returns its counts line.
fn counts_in_child(with_recorder: bool) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_metrics_recorder_changes_no_allocation_count", "--nocapture", "--test-threads=1"])
        .env(CHILD, if with_recorder { "recorder" } else { "plain" })
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout.lines().find_map(|l| l.split_once("COUNTS ")).expect("a counts line").1.to_owned()
}

#[test]
fn a_metrics_recorder_changes_no_allocation_count() {
    match std::env::var(CHILD).as_deref() {
        Ok("plain") => println!("COUNTS {}", all_counts()),
        Ok(_) => {
            let recorder = prometheus::Recorder::new();
            metrics::set_global_recorder(recorder.clone()).expect("no recorder yet");
            let on = duplex_pubsub::metrics::register() && duplex::metrics::register();
            let counts = all_counts();
            let text = recorder.render();
            // Proof that the recorder saw the sends (when the feature is compiled in).
            let recorded = text.contains("duplex_pubsub_deliveries_total ")
                && !text.contains("duplex_pubsub_deliveries_total 0\n")
                && !text.contains("duplex_messages_sent_total{opcode=\"binary\"} 0\n");
            println!("COUNTS {counts} metrics-on={on} recorded={}", on && recorded);
        }
        Err(_) => {
            let plain = counts_in_child(false);
            let recorded = counts_in_child(true);
            println!("without a recorder: {plain}\nwith the Prometheus recorder: {recorded}");
            let (counts, flags) = recorded.split_once(" metrics-on=").unwrap();
            assert_eq!(plain, counts, "allocations differ with a recorder installed");
            if flags == "true recorded=true" {
                return;
            }
            // Built without the `metrics` feature (`cargo test -p duplex-pubsub` alone): nothing
            // was recorded, so the comparison proves nothing about a recorder.
            let line = "SKIP fan_out_allocations::recorder: duplex-pubsub built without the `metrics` feature \
                        (run with --features metrics, or cargo test --workspace)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{line}; CI=true, so a skip is a failure");
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}
