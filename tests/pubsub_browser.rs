//! The `/pubsub` page in Chromium through a node kill: the page is served by node B and
//! subscribes, with `web/duplex-pubsub.js` given both nodes' URLs, through node A; a publisher
//! (`duplex pubsub pub`, also starting on A) publishes 300 numbered messages; A is killed with
//! `kill -9` a second in. The page must fail over to B, resume from its position, and show
//! `lost 0, duplicated 0` with the publisher's final seq. The screenshot is
//! `target/pubsub-browser/failover.png`.
//!
//! Needs node with `tests/peers/node/node_modules` (`npm ci` there), Chromium and
//! `redis-server`; without them the test prints `SKIP …` and passes, except under `CI=true`.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::procs::{self, node, signal_group, Proc, SIGKILL};
use support::redis::{Persistence, Redis};
use support::{can_run, chromium_path, Need};

const COUNT: u64 = 300;

fn start_node(name: &str, redis: &Redis) -> (Proc, u16) {
    let port = procs::free_port();
    let (p, url) = (port.to_string(), redis.url());
    let args = ["serve", "--port", &p, "--interval", "0", "--redis", &url, "--history", "feed=20000,10m"];
    let mut proc = Proc::spawn(name, &mut procs::duplex(&args));
    proc.wait_listening(port);
    for line in ["connected (subscribing)", "connected (publishing)"] {
        assert!(proc.wait_stderr_line(procs::SHORT, |l| l.contains(line)), "{name}: no {line:?}\n{}", proc.output());
    }
    (proc, port)
}

#[test]
fn the_pubsub_page_fails_over_when_its_node_is_killed() {
    let test = "the_pubsub_page_fails_over_when_its_node_is_killed";
    if !can_run(test, &[Need::NodePeers, Need::Chromium, Need::RedisServer]) {
        return;
    }
    let Some(redis) = Redis::start_with(test, Persistence::AofAlways) else { return };
    let (a, port_a) = start_node("node A", &redis);
    let (b, port_b) = start_node("node B", &redis);
    let (ua, ub) = (format!("ws://127.0.0.1:{port_a}/pubsub"), format!("ws://127.0.0.1:{port_b}/pubsub"));
    let page = format!("http://127.0.0.1:{port_b}/pubsub?nodes={ua},{ub}&topic=feed");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../pubsub-browser/failover.png");
    let mut cmd = node("pubsub_browser.js");
    cmd.arg(&page).args(["--expect", &COUNT.to_string(), "--timeout", "60", "--screenshot"]).arg(&shot);
    cmd.env("CHROMIUM", chromium_path());
    let mut browser = Proc::spawn("pubsub_browser.js", &mut cmd);
    let deadline = Instant::now() + procs::STARTUP;
    loop {
        match browser.next_stdout_line(deadline) {
            Some(l) if l == "@@ ready" => break,
            Some(_) => {}
            None => panic!("the page did not subscribe ({})\n{}", browser.state(), browser.output()),
        }
    }
    let count = COUNT.to_string();
    let mut publisher = Proc::spawn(
        "pA",
        &mut procs::duplex(&[
            "pubsub", "pub", &ua, &ub, "--topic", "feed", "--rate", "100", "--count", &count, "--name", "pA",
        ]),
    );
    std::thread::sleep(Duration::from_secs(1));
    signal_group(a.child_id(), SIGKILL);
    let status = publisher.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "the publisher failed\n{}", publisher.output());
    let status = browser.wait_exit(Duration::from_secs(120));
    let out = browser.stdout();
    let json = out.split_once("@@ ready\n").map_or(out.as_str(), |(_, rest)| rest);
    let report: Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("a JSON report ({e})\n{}", browser.output()));
    assert!(status.success(), "{report:#}\n{}", b.output());
    let r = &report["pageReport"];
    eprintln!("page: {r}");
    assert_eq!(
        (r["lost"].as_u64(), r["duplicated"].as_u64(), r["outOfOrder"].as_u64()),
        (Some(0), Some(0), Some(0)),
        "{report:#}"
    );
    assert_eq!(r["publishers"]["pA"]["last"].as_u64(), Some(COUNT), "{report:#}");
    assert_eq!(r["publishers"]["pA"]["received"].as_u64(), Some(COUNT), "{report:#}");
    // It started on A, left it for B and resumed there.
    assert_eq!(r["urls"][0].as_str(), Some(ua.as_str()), "{report:#}");
    assert!(r["urls"].as_array().is_some_and(|u| u.iter().any(|x| x == ub.as_str())), "{report:#}");
    assert!(r["recoveries"].as_u64() >= Some(1), "{report:#}");
    assert_eq!(report["pageErrors"], serde_json::json!([]), "{report:#}");
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
}
