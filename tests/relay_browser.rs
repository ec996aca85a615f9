//! `duplex relay` from real Chromium tabs (`tests/peers/node/relay_browser.js`): rooms by URL
//! path, binary kept binary, `--no-echo`, and two relays sharing a real `redis-server`.
//!
//! Chromium refuses ws:// to loopback from about:blank, so each tab first loads the page of a
//! `duplex serve` (any page from http://127.0.0.1 would do) and opens its socket to the relay from
//! there. The script waits until every socket is in its room (and, with Redis, until a message
//! crosses from one relay to the other) before it sends what is checked; see its header.
//!
//! Needs node with `tests/peers/node/node_modules` (`npm ci` there), Chromium, and for the Redis
//! test `redis-server`; without them the tests print `SKIP <test>: …` and pass, except under
//! `CI=true`, where a skip fails (`support::can_run`). They run one at a time: a 2-core machine
//! runs one Chromium well.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use support::procs::{node, Proc};
use support::redis::Redis;
use support::{can_run, chromium_path, Duplex, Input, Need};

/// How long relay_browser.js may run (it gives up on its own after 90 s).
const BROWSER_RUN: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(15);

/// One Chromium at a time.
static BROWSER: Mutex<()> = Mutex::new(());

/// A page to load the tabs from: `duplex serve` without timed pushes.
fn page_server() -> Duplex {
    Duplex::start(&["serve", "--port", "{port}", "--interval", "0"], Input::Null)
}

fn relay(extra: &[&str]) -> Duplex {
    let mut args = vec!["relay", "--port", "{port}"];
    args.extend_from_slice(extra);
    let relay = Duplex::start(&args, Input::Null);
    relay.wait_log("relaying on ws://", WAIT);
    relay
}

/// Runs `relay_browser.js <page> <mode> <relays...>`, fails the test unless it succeeds, and
/// returns its report.
fn run_browser(mode: &str, page: &Duplex, relays: &[&Duplex]) -> Value {
    let mut cmd = node("relay_browser.js");
    cmd.arg(format!("http://127.0.0.1:{}/", page.port)).arg(mode);
    for r in relays {
        cmd.arg(r.url(""));
    }
    cmd.args(["--timeout", "90"]).env("CHROMIUM", chromium_path());
    let mut browser = Proc::spawn("relay_browser.js", &mut cmd);
    let status = browser.wait_exit(BROWSER_RUN);
    let logs: String =
        relays.iter().enumerate().map(|(i, r)| format!("\n---- relay {} log ----\n{}", i + 1, r.log())).collect();
    assert!(status.success(), "relay_browser.js {mode} failed ({status})\n{}{logs}", browser.output());
    for r in relays {
        assert!(!r.log().contains("panicked"), "{logs}");
    }
    serde_json::from_str(&browser.stdout())
        .unwrap_or_else(|e| panic!("relay_browser.js prints JSON ({e})\n{}", browser.output()))
}

/// What `tab` got, as the script reports it (`sync` messages left out).
fn got(report: &Value, tab: &str) -> Value {
    report["tabs"][tab]["messages"].clone()
}

fn text(s: &str) -> Value {
    json!({"type": "text", "data": s})
}

/// The binary message the script sends, as it reports one: bytes in hex.
fn the_binary() -> Value {
    json!({"type": "binary", "data": "0001027f80feff"})
}

const HELLO: &str = "hello lobby ✓ from tab 1";

#[test]
fn relay_rooms_in_chromium() {
    if !can_run("relay_rooms_in_chromium", &[Need::NodePeers, Need::Chromium]) {
        return;
    }
    let _one_at_a_time = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let page = page_server();
    let relay = relay(&[]);
    let report = run_browser("echo", &page, &[&relay]);
    // The sender gets its own message back; /other hears only itself; binary stays binary.
    assert_eq!(got(&report, "lobby1"), json!([text(HELLO), the_binary()]), "{report:#}");
    assert_eq!(got(&report, "lobby2"), json!([text(HELLO), the_binary()]), "{report:#}");
    assert_eq!(got(&report, "other"), json!([text("anyone in /other?")]), "{report:#}");
}

#[test]
fn relay_no_echo_in_chromium() {
    if !can_run("relay_no_echo_in_chromium", &[Need::NodePeers, Need::Chromium]) {
        return;
    }
    let _one_at_a_time = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let page = page_server();
    let relay = relay(&["--no-echo"]);
    let report = run_browser("no-echo", &page, &[&relay]);
    // Each lobby tab gets only the other's message; /other gets nothing.
    assert_eq!(got(&report, "lobby1"), json!([the_binary()]), "{report:#}");
    assert_eq!(got(&report, "lobby2"), json!([text(HELLO)]), "{report:#}");
    assert_eq!(got(&report, "other"), json!([]), "{report:#}");
}

#[test]
fn relays_sharing_redis_in_chromium() {
    let test = "relays_sharing_redis_in_chromium";
    if !can_run(test, &[Need::NodePeers, Need::Chromium, Need::RedisServer]) {
        return;
    }
    let Some(redis) = Redis::start(test) else { return };
    let _one_at_a_time = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let page = page_server();
    let url = redis.url();
    let relay_1 = relay(&["--redis", &url]);
    let relay_2 = relay(&["--redis", &url]);
    for r in [&relay_1, &relay_2] {
        r.wait_log("connected (subscribing)", WAIT);
        r.wait_log("connected (publishing)", WAIT);
    }
    // lobby1 on relay 1; lobby2 and other on relay 2.
    let report = run_browser("redis", &page, &[&relay_1, &relay_2]);
    // Exactly once each, through Redis one way and the other; another room on relay 2 hears nothing.
    assert_eq!(got(&report, "lobby1"), json!([text(HELLO), the_binary()]), "{report:#}");
    assert_eq!(got(&report, "lobby2"), json!([text(HELLO), the_binary()]), "{report:#}");
    assert_eq!(got(&report, "other"), json!([]), "{report:#}");
}
