//! The pub/sub demos of `duplex serve` (`crates/duplex-apps`, docs/demos.md): their protocols
//! through real connections to the binary, then each page driven by Debian's Chromium
//! (`tests/peers/node/demos.js`, two browser contexts where two people matter): each page doing
//! its job, and one scenario per finding of real use (issue #21: restarts, two nodes on one
//! Redis, duplicate nicknames, phone sizes…), with screenshots of every page at desktop and phone
//! size under `target/screenshots/`. A scenario that restarts a server asks for it on its stdout
//! (`@@ kill 0`, `@@ term 0`, `@@ start 0`) and the test does it ([`Nodes::control`]).
//!
//! The browser tests need node with `tests/peers/node/node_modules` (`npm ci` there) and Chromium
//! (the two-node one `redis-server` too); without them they print `SKIP <test>: …` and pass,
//! except under `CI=true`, where a skip fails (the rule of tests/interop.rs, `support::can_run`).
//! They run one at a time: a 2-core machine runs one Chromium well, not four.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use duplex::{ClientStream, Message, WebSocket};
use serde_json::{json, Value};
use support::{can_run, chromium_path, node_dir, repo_root, Duplex, Input, Need};

const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocket<ClientStream>;

fn serve() -> Duplex {
    Duplex::start(&["serve", "--port", "{port}", "--interval", "0"], Input::Null)
}

async fn connect(server: &Duplex, path: &str) -> Ws {
    duplex::connect(&server.url(path)).await.unwrap_or_else(|e| panic!("connect to {path}: {e}"))
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(v.to_string()).await.expect("send");
}

async fn next_json(ws: &mut Ws) -> Value {
    match tokio::time::timeout(WAIT, ws.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}")),
        other => panic!("expected a JSON text message, got {other:?}"),
    }
}

/// Reads events until one for which `wanted` holds (within [`WAIT`]), and returns it.
async fn until(ws: &mut Ws, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.recv()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(other) => panic!("waiting for {what}: the connection gave {other:?}"),
            Err(_) => panic!("no {what} within {WAIT:?}"),
        };
        let v: Value = serde_json::from_str(&msg).unwrap_or_else(|e| panic!("not JSON ({e}): {msg}"));
        if wanted(&v) {
            return v;
        }
    }
}

/// A job's log line as `level text`.
fn line_text(line: &Value) -> String {
    format!("{} {}", line["level"].as_str().unwrap_or("?"), line["text"].as_str().unwrap_or("?"))
}

fn is(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == kind
}

async fn bye(mut ws: Ws) {
    let _ = ws.close(Some(duplex::CloseFrame::new(1000, "bye"))).await;
    while let Ok(Some(_)) = tokio::time::timeout(WAIT, ws.recv()).await {}
}

/// A plain HTTP GET: the status and the body.
fn get(server: &Duplex, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(server.addr()).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).expect("a response");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

// ---------------------------------------------------------------------------------------------
// Pages and protocols

#[test]
fn pages_are_served_and_linked_from_the_index() {
    let server = serve();
    for (path, title) in [
        ("/chat", "<title>Chat"),
        ("/feed", "<title>Live feed"),
        ("/multiplayer", "<title>Multiplayer"),
        ("/progress", "<title>Progress and logs"),
        ("/chat/", "<title>Chat"),
    ] {
        let (status, body) = get(&server, path);
        assert_eq!(status, 200, "GET {path}");
        assert!(body.contains(title), "GET {path} is not the demo's page");
        // Everything is served by duplex: no script, style or font from elsewhere.
        assert!(
            !body.contains("src=\"http") && !body.contains("href=\"http"),
            "{path} loads something from the network"
        );
    }
    let (_, index) = get(&server, "/");
    for path in ["/chat", "/feed", "/multiplayer", "/progress"] {
        assert!(index.contains(&format!("href=\"{path}\"")), "the index page does not link to {path}");
    }
    assert_eq!(get(&server, "/chat/ws").0, 404, "the socket path is not a page");
    // The module every page imports, beside each page.
    for path in ["/reconnect.js", "/chat/reconnect.js", "/progress/reconnect.js"] {
        let (status, body) = get(&server, path);
        assert_eq!(status, 200, "GET {path}");
        assert!(body.contains("export class ReconnectingSocket"), "GET {path}");
    }
    assert_eq!(get(&server, "/nothing/reconnect.js").0, 404);
}

#[tokio::test]
async fn chat_replays_the_last_50_messages_and_announces_who_comes_and_goes() {
    let server = serve();
    let room = "history-test";
    // Six talkers, 10 messages each (the per-connection limit allows 10 at once): 60 in all.
    let mut talkers = Vec::new();
    for i in 1..=6 {
        let mut ws = connect(&server, "/chat/ws").await;
        send(&mut ws, json!({"type":"join","room":room,"nick":format!("talker{i}")})).await;
        let joined = until(&mut ws, "joined", is("joined")).await;
        assert_eq!(joined["members"].as_array().unwrap().len(), i);
        talkers.push(ws);
    }
    for (i, ws) in talkers.iter_mut().enumerate() {
        for k in 0..10 {
            send(ws, json!({"type":"say","text":format!("m{}", i * 10 + k)})).await;
        }
        // Each talker's messages come back to it too: wait for its last before the next talks.
        let last = format!("m{}", i * 10 + 9);
        until(ws, "its own last message", |v| v["type"] == "message" && v["text"] == last).await;
    }

    let mut newcomer = connect(&server, "/chat/ws").await;
    send(&mut newcomer, json!({"type":"join","room":"History-Test","nick":"  newcomer "})).await;
    let joined = next_json(&mut newcomer).await;
    assert_eq!(joined["type"], "joined");
    assert_eq!(joined["room"], room, "room names are lowercased");
    assert_eq!(joined["nick"], "newcomer", "nicknames are trimmed");
    let history: Vec<&str> =
        joined["history"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    let expected: Vec<String> = (10..60).map(|n| format!("m{n}")).collect();
    assert_eq!(history, expected, "the last 50 messages, oldest first");
    assert_eq!(joined["history"][49]["nick"], "talker6");
    assert_eq!(joined["members"].as_array().unwrap().len(), 7);

    // The others hear of it, with the new member list; then of its leaving.
    let notice = until(&mut talkers[0], "a join notice", is("join")).await;
    assert_eq!(notice["nick"], "newcomer");
    assert_eq!(notice["members"][6], "newcomer");
    send(&mut newcomer, json!({"type":"say","text":"hello all"})).await;
    let said =
        until(&mut talkers[3], "the newcomer's message", |v| v["type"] == "message" && v["nick"] == "newcomer").await;
    assert_eq!(said["text"], "hello all");
    bye(newcomer).await;
    let left = until(&mut talkers[0], "a leave notice", is("leave")).await;
    assert_eq!(left["nick"], "newcomer");
    assert_eq!(left["members"].as_array().unwrap().len(), 6);

    // Moving to another room: a leave notice in the old one; a room of one's own is empty.
    send(&mut talkers[5], json!({"type":"join","room":"elsewhere","nick":"talker6"})).await;
    let joined = until(&mut talkers[5], "joined", is("joined")).await;
    assert_eq!(joined["history"], json!([]));
    let left = until(&mut talkers[0], "talker6 leaving", is("leave")).await;
    assert_eq!(left["nick"], "talker6");

    // Bad requests are answered with an error, and the connection stays.
    let mut ws = connect(&server, "/chat/ws").await;
    send(&mut ws, json!({"type":"say","text":"hello?"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "error", "saying before joining");
    send(&mut ws, json!({"type":"join","room":"no spaces","nick":"x"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "error", "a bad room name");
    send(&mut ws, json!({"type":"join","room":"ok","nick":"   "})).await;
    assert_eq!(next_json(&mut ws).await["type"], "error", "an empty nickname");
    ws.send("not json").await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "error");
    send(&mut ws, json!({"type":"join","room":"ok","nick":"x"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "joined");
    for ws in talkers {
        bye(ws).await;
    }
    bye(ws).await;
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[tokio::test]
async fn feed_sends_the_backlog_then_four_samples_a_second() {
    let server = serve();
    let mut a = connect(&server, "/feed/ws").await;
    let backlog = next_json(&mut a).await;
    assert_eq!(backlog["type"], "backlog");
    assert_eq!(backlog["rate"], 4);
    let first = until(&mut a, "a sample", is("tick")).await;
    let start = Instant::now();
    let mut last = first["seq"].as_u64().unwrap();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        let t = until(&mut a, "a sample", is("tick")).await;
        assert_eq!(t["seq"].as_u64(), Some(last + 1), "samples in order, none missing");
        assert!(t["price"].as_f64().is_some_and(|p| p > 0.0), "a price: {t}");
        assert!(t["t"].as_u64().is_some());
        last += 1;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    assert!((3.0..=5.5).contains(&rate), "{n} samples in {:?}: {rate:.2}/s, expected about 4", start.elapsed());

    // A second viewer: the backlog so far, then the next sample, without a gap or a repeat.
    let mut b = connect(&server, "/feed/ws").await;
    let backlog = next_json(&mut b).await;
    let ticks = backlog["ticks"].as_array().unwrap();
    assert!(ticks.len() >= 10, "a backlog of {} samples", ticks.len());
    let backlog_last = ticks.last().unwrap()["seq"].as_u64().unwrap();
    let next = next_json(&mut b).await;
    assert_eq!(next["seq"].as_u64(), Some(backlog_last + 1));
    bye(a).await;
    bye(b).await;
}

#[tokio::test]
async fn multiplayer_snapshots_follow_each_players_input() {
    let server = serve();
    let mut a = connect(&server, "/multiplayer/ws").await;
    let mut b = connect(&server, "/multiplayer/ws").await;
    let wa = next_json(&mut a).await;
    let wb = next_json(&mut b).await;
    assert_eq!((wa["type"].as_str(), wb["type"].as_str()), (Some("welcome"), Some("welcome")));
    assert_eq!(wa["rate"], 30);
    let (ida, idb) = (wa["id"].as_u64().unwrap(), wb["id"].as_u64().unwrap());
    assert_ne!(ida, idb);

    // a points somewhere; b sees a's dot get there (the server moves it, at a bounded speed).
    let find = |s: &Value, id: u64| s["players"].as_array().unwrap().iter().find(|p| p["id"] == id).cloned();
    send(&mut a, json!({"type":"move","x":123.4,"y":321})).await;
    send(&mut a, json!({"type":"name","name":"ann"})).await;
    let s = until(&mut b, "a's dot at (123.4, 321)", |s| {
        s["type"] == "snapshot" && find(s, ida).is_some_and(|p| p["x"] == 123.4 && p["y"] == 321.0)
    })
    .await;
    assert_eq!(find(&s, ida).unwrap()["name"], "ann");
    assert!(find(&s, idb).is_some(), "b is in the world too");

    // Out of the world: clamped to its edge.
    send(&mut b, json!({"type":"move","x":1e9,"y":-5})).await;
    until(&mut a, "b's dot at the corner", |s| {
        s["type"] == "snapshot" && find(s, idb).is_some_and(|p| p["x"] == 800.0 && p["y"] == 0.0)
    })
    .await;

    // A snapshot per step, every one delivered, in order: 30 consecutive ticks. (The rate, 30 a
    // second, is the welcome's `rate`, checked above; a CI test times nothing.)
    let first = until(&mut a, "a snapshot", is("snapshot")).await["tick"].as_u64().unwrap();
    for expected in first + 1..first + 30 {
        let s = until(&mut a, "a snapshot", is("snapshot")).await;
        assert_eq!(s["tick"].as_u64(), Some(expected), "snapshots in order, none missed");
    }

    // b leaves: a's next snapshots have a alone.
    bye(b).await;
    until(&mut a, "a snapshot without b", |s| s["type"] == "snapshot" && s["players"].as_array().unwrap().len() == 1)
        .await;
    bye(a).await;
}

#[tokio::test]
async fn progress_jobs_are_watched_by_every_viewer() {
    let server = serve();
    let mut a = connect(&server, "/progress/ws").await;
    let hello = next_json(&mut a).await;
    assert_eq!(hello["type"], "hello");
    let names: Vec<&str> = hello["jobs"].as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["build", "test", "deploy"]);
    assert_eq!(hello["current"], Value::Null);
    let viewer_a = hello["viewer"].as_str().unwrap().to_owned();
    let mut b = connect(&server, "/progress/ws").await;
    assert_eq!(next_json(&mut b).await["type"], "hello");

    send(&mut a, json!({"type":"start","job":"rm -rf /"})).await;
    let e = until(&mut a, "an error", is("error")).await;
    assert!(e["message"].as_str().unwrap().contains("no job"), "{e}");

    // a starts the deploy (~5 s, fails at its health check); b sees the same job.
    send(&mut a, json!({"type":"start","job":"deploy"})).await;
    let started = until(&mut b, "started", is("started")).await;
    assert_eq!(started["job"]["by"], viewer_a.as_str());
    assert_eq!(started["job"]["name"], "deploy");
    let id = started["job"]["id"].clone();
    let mut d = connect(&server, "/progress/ws").await;
    assert_eq!(next_json(&mut d).await["current"]["id"], id);
    send(&mut d, json!({"type":"start","job":"build"})).await;
    let e = until(&mut d, "an error", is("error")).await;
    assert!(e["message"].as_str().unwrap().contains("is running"), "one job at a time: {e}");
    bye(d).await;

    // A third viewer arriving midway gets the lines so far, then the rest, without a gap.
    until(&mut a, "a few lines", |v| v["type"] == "line" && v["line"]["n"] == 4).await;
    let mut c = connect(&server, "/progress/ws").await;
    let hello = next_json(&mut c).await;
    assert_eq!(hello["current"]["id"], id);
    let mut c_lines: Vec<String> = hello["current"]["lines"].as_array().unwrap().iter().map(line_text).collect();
    assert!(c_lines.len() >= 4);
    let c_so_far = c_lines.len() as u64;

    // Everyone gets every line and progress step until the end.
    async fn watch(ws: &mut Ws, lines: &mut Vec<String>, mut last_n: u64) -> (Value, Vec<f64>) {
        let mut percents = Vec::new();
        loop {
            let v = until(ws, "job events", |_| true).await;
            match v["type"].as_str() {
                Some("line") => {
                    let n = v["line"]["n"].as_u64().unwrap();
                    assert_eq!(n, last_n + 1, "lines in order, none missing");
                    last_n = n;
                    lines.push(line_text(&v["line"]));
                }
                Some("progress") => percents.push(v["percent"].as_f64().unwrap()),
                Some("finished") => return (v, percents),
                _ => {}
            }
        }
    }
    let mut a_lines = Vec::new();
    let mut b_lines = Vec::new();
    let (fa, pa) = watch(&mut a, &mut a_lines, 4).await;
    let (fb, _) = watch(&mut b, &mut b_lines, 0).await;
    let (fc, _) = watch(&mut c, &mut c_lines, c_so_far).await;
    for f in [&fa, &fb, &fc] {
        assert_eq!(f["state"], "failed", "the deploy fails its health check: {f}");
        assert_eq!(f["id"], id);
        assert_eq!(f["recent"][0]["name"], "deploy");
    }
    assert!(fa["secs"].as_f64().unwrap() > 3.0, "a job of several seconds: {fa}");
    assert_eq!(b_lines, c_lines, "b and c saw the same lines");
    assert_eq!(&b_lines[4..], &a_lines[..], "a saw the same lines after its 4th");
    assert!(pa.windows(2).all(|w| w[0] <= w[1]) && pa.len() >= 5, "progress moves forward: {pa:?}");

    // Any viewer may cancel the running job.
    send(&mut b, json!({"type":"start","job":"build"})).await;
    until(&mut a, "started", is("started")).await;
    until(&mut a, "a line", is("line")).await;
    send(&mut a, json!({"type":"cancel"})).await;
    let f = until(&mut c, "finished", is("finished")).await;
    assert_eq!(f["state"], "cancelled");
    send(&mut a, json!({"type":"cancel"})).await;
    assert_eq!(until(&mut a, "an error", is("error")).await["message"], "no job is running");
    for ws in [a, b, c] {
        bye(ws).await;
    }
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

// ---------------------------------------------------------------------------------------------
// The pages in Chromium

/// One Chromium at a time.
static BROWSER: Mutex<()> = Mutex::new(());

/// How long demos.js may run (it gives up on its own after 150 s).
const BROWSER_RUN: Duration = Duration::from_secs(200);

/// What a scenario runs against.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Servers {
    /// One `duplex serve`.
    One,
    /// Two `duplex serve --redis` nodes on one `redis-server`.
    TwoOnRedis,
}

/// The servers of a scenario, which demos.js may kill (`@@ kill N`, SIGKILL), stop (`@@ term N`,
/// SIGTERM) and start again on the same port (`@@ start N`).
struct Nodes {
    args: Vec<String>,
    ports: Vec<u16>,
    running: Vec<Option<Duplex>>,
    /// The logs of the processes that ended, for the report.
    past: Vec<String>,
    _redis: Option<support::redis::Redis>,
}

impl Nodes {
    fn start(test: &str, servers: Servers) -> Option<Nodes> {
        let mut args: Vec<String> = ["serve", "--port", "{port}", "--interval", "0"].map(String::from).into();
        let (redis, n) = match servers {
            Servers::One => (None, 1),
            Servers::TwoOnRedis => {
                let redis = support::redis::Redis::start(test)?;
                args.extend(["--redis".to_owned(), redis.url()]);
                (Some(redis), 2)
            }
        };
        let ports: Vec<u16> = (0..n).map(|_| support::free_port()).collect();
        let mut nodes = Nodes { args, running: Vec::new(), ports, past: Vec::new(), _redis: redis };
        for i in 0..n {
            let node = nodes.spawn(i);
            nodes.running.push(Some(node));
        }
        Some(nodes)
    }

    fn spawn(&self, i: usize) -> Duplex {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let node = Duplex::start_on(self.ports[i], &args, Input::Null);
        if self.args.iter().any(|a| a == "--redis") {
            // Both backplanes (/pubsub's and the chat's) connected, so that the first notices cross.
            let deadline = Instant::now() + Duration::from_secs(20);
            let connected = |log: &str, what: &str| log.matches(&format!("connected ({what})")).count() >= 2;
            while !(connected(&node.log(), "publishing") && connected(&node.log(), "subscribing")) {
                assert!(Instant::now() < deadline, "node {i} did not connect to Redis; log:\n{}", node.log());
                thread::sleep(Duration::from_millis(20));
            }
        }
        node
    }

    /// Carries out `@@ <what> <node>`; the answer for demos.js.
    fn control(&mut self, what: &str, i: usize) -> String {
        if i >= self.ports.len() {
            return format!("no node {i}");
        }
        match what {
            "kill" | "term" => match self.running[i].take() {
                Some(mut node) => {
                    if what == "kill" {
                        node.kill();
                    } else if !node.terminate(Duration::from_secs(20)) {
                        return format!("node {i} did not exit within 20 s of SIGTERM");
                    }
                    self.past.push(format!("---- node {i} (ended by {what}) ----\n{}", node.log()));
                    "ok".to_owned()
                }
                None => format!("node {i} is not running"),
            },
            "start" if self.running[i].is_none() => {
                let node = self.spawn(i);
                self.running[i] = Some(node);
                "ok".to_owned()
            }
            _ => format!("cannot {what} node {i}"),
        }
    }

    fn logs(&self) -> String {
        let mut all = self.past.clone();
        for (i, node) in self.running.iter().enumerate() {
            if let Some(node) = node {
                all.push(format!("---- node {i} ----\n{}", node.log()));
            }
        }
        all.join("\n")
    }
}

/// Runs `demos.js <scenario>` against fresh servers, carrying out the restarts it asks for, and
/// fails the test unless it succeeds. Screenshots go to `target/screenshots/`.
fn in_chromium(test: &str, scenario: &str, servers: Servers) {
    let mut needs = vec![Need::NodePeers, Need::Chromium];
    if servers == Servers::TwoOnRedis {
        needs.push(Need::RedisServer);
    }
    if !can_run(test, &needs) {
        return;
    }
    let _one_at_a_time = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut nodes) = Nodes::start(test, servers) else { return };
    let shots = repo_root().join("target").join("screenshots");
    let mut cmd = Command::new("node");
    cmd.arg(node_dir().join("demos.js")).arg(scenario);
    for port in &nodes.ports {
        cmd.arg("--base").arg(format!("http://127.0.0.1:{port}"));
    }
    cmd.arg("--shots")
        .arg(&shots)
        .args(["--timeout", "150"])
        .current_dir(node_dir())
        .env("CHROMIUM", chromium_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that Chromium ends with it.
        .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start node: {e}"));
    let mut stdin = child.stdin.take().expect("piped");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped");
    let reader = thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let err = Arc::new(Mutex::new(String::new()));
    let err_reader = collect(child.stderr.take().expect("piped"), err.clone());
    let deadline = Instant::now() + BROWSER_RUN;
    let mut out = String::new();
    let mut controls = Vec::new();
    let finished = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(line) => match line.strip_prefix("@@ ") {
                Some(request) => {
                    let mut words = request.split_whitespace();
                    let (what, i) = (words.next().unwrap_or(""), words.next().and_then(|n| n.parse().ok()));
                    let answer = i.map_or_else(|| format!("bad request {request:?}"), |i| nodes.control(what, i));
                    controls.push(format!("{request}: {answer}"));
                    let _ = writeln!(stdin, "{answer}").and_then(|_| stdin.flush());
                }
                None => {
                    out.push_str(&line);
                    out.push('\n');
                }
            },
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break true,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline => break false,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
    };
    let status = if finished { child.wait().ok() } else { None };
    // Whatever it started and left behind, or all of it on a timeout.
    kill_group(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let _ = err_reader.join();
    let err = err.lock().unwrap().clone();
    let report = format!(
        "---- demos.js {scenario} stdout ----\n{out}\n---- restarts ----\n{}\n---- stderr ----\n{err}\n{}",
        controls.join("\n"),
        nodes.logs()
    );
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("demos.js {scenario} failed ({s}); screenshots in {}\n{report}", shots.display()),
        None => panic!("demos.js {scenario} did not finish within {BROWSER_RUN:?}; killed\n{report}"),
    }
    assert!(!nodes.logs().contains("panicked"), "{report}");
    eprintln!("{test}: screenshots in {}", shots.display());
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = from.read_to_end(&mut buf);
        into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf));
    })
}

/// SIGKILL to the process group led by `pid` (spawned with `process_group(0)`).
fn kill_group(pid: u32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    let Ok(pgid) = i32::try_from(pid) else { return };
    if pgid > 1 {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative pid
        // names the group created for this child, so only its processes are signalled.
        unsafe {
            kill(-pgid, 9);
        }
    }
}

// Each page doing its job, with a screenshot at desktop size.

#[test]
fn chat_in_chromium() {
    in_chromium("chat_in_chromium", "chat", Servers::One);
}

#[test]
fn feed_in_chromium() {
    in_chromium("feed_in_chromium", "feed", Servers::One);
}

#[test]
fn multiplayer_in_chromium() {
    in_chromium("multiplayer_in_chromium", "multiplayer", Servers::One);
}

#[test]
fn progress_in_chromium() {
    in_chromium("progress_in_chromium", "progress", Servers::One);
}

// What real use found (issue #21), one test per finding.

/// 1. Two nodes on one Redis: both pages list the same members, themselves included, also after
///    a room switch, a node's restart, and a node's death.
#[test]
fn chat_members_are_the_same_on_both_nodes() {
    in_chromium("chat_members_are_the_same_on_both_nodes", "chat-nodes", Servers::TwoOnRedis);
}

/// 2. A job running when the server dies (SIGKILL, then SIGTERM) is shown lost, not running.
#[test]
fn progress_job_is_lost_when_the_server_restarts() {
    in_chromium("progress_job_is_lost_when_the_server_restarts", "progress-restart", Servers::One);
}

/// 3. A nickname taken in a room is refused to another browser, in any case.
#[test]
fn chat_refuses_a_duplicate_nickname() {
    in_chromium("chat_refuses_a_duplicate_nickname", "chat-nick", Servers::One);
}

/// 4. The index page comes back after a server restart, and after its own Close on request.
#[test]
fn index_page_reconnects() {
    in_chromium("index_page_reconnects", "index-reconnect", Servers::One);
}

/// 5. On a phone: a refused message keeps its text, with the error beside the input; a long
///    paste is kept whole and said to be too long.
#[test]
fn chat_keeps_refused_text_beside_its_error() {
    in_chromium("chat_keeps_refused_text_beside_its_error", "chat-errors", Servers::One);
}

/// 6. After a restart the transcript stays, the composer says it is reconnecting, and the room
///    is joined again.
#[test]
fn chat_keeps_its_transcript_across_a_restart() {
    in_chromium("chat_keeps_its_transcript_across_a_restart", "chat-restart", Servers::One);
}

/// 7. A tap moves your dot on a phone; four players' colours all differ from the gem's.
#[test]
fn multiplayer_taps_and_colours() {
    in_chromium("multiplayer_taps_and_colours", "multiplayer-phone", Servers::One);
}

/// 8. Every page at 390×844 without horizontal scroll, long names inside their boxes; a
///    screenshot of each at phone size.
#[test]
fn pages_fit_a_phone() {
    in_chromium("pages_fit_a_phone", "phone", Servers::One);
}

/// 9a. The feed counts the backlog too, and shows no rate while disconnected.
#[test]
fn feed_counts_everything_and_no_rate_offline() {
    in_chromium("feed_counts_everything_and_no_rate_offline", "feed-offline", Servers::One);
}

/// 9b. Every page shows a close with its code and reason.
#[test]
fn close_reasons_are_shown_alike() {
    in_chromium("close_reasons_are_shown_alike", "close-reasons", Servers::One);
}

/// 9c. The index page sends no empty message.
#[test]
fn index_page_refuses_empty_messages() {
    in_chromium("index_page_refuses_empty_messages", "index-empty", Servers::One);
}
