//! `--metrics`: a scripted run against `duplex echo`, then the exposition checked by `promtool`
//! and its counts by value, and a real Prometheus server scraping it (docs/metrics.md).

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use duplex::Message;
use support::procs::Proc;
use support::{can_run, free_port, program, Duplex, Input, Need};

const WAIT: Duration = Duration::from_secs(10);

/// A plain HTTP GET; the status line and body.
fn http_get(addr: SocketAddr, target: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("the HTTP server accepts");
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("a whole response");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// Samples of a text exposition: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new(program("promtool").unwrap())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The server's counts settle once its connections are dropped: poll until `ready` holds.
fn scrape_until(metrics: SocketAddr, ready: impl Fn(&HashMap<String, f64>) -> bool) -> (String, HashMap<String, f64>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(metrics, "/metrics");
        assert!(status.contains("200"), "{status}");
        let s = samples(&body);
        if ready(&s) || Instant::now() > deadline {
            return (body, s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const N: usize = 5;
const M: usize = 20;

async fn scripted_run(server: &Duplex) {
    for c in 0..N {
        let mut ws = duplex::connect(&server.url("/")).await.expect("connects");
        for i in 0..M {
            let text = format!("{c}:{i}");
            ws.send(text.as_str()).await.unwrap();
            let got = tokio::time::timeout(WAIT, ws.recv()).await.expect("echo in time");
            assert_eq!(got.unwrap().unwrap(), Message::Text(text));
        }
        ws.close(None).await.unwrap();
        while ws.recv().await.is_some() {}
    }
    // One foreign Origin, refused with 403.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: https://evil.example\r\n\r\n",
        server.addr()
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_run_is_counted_exactly_and_promtool_accepts_the_exposition() {
    if !can_run("metrics::promtool", &[Need::Prometheus]) {
        return;
    }
    let mport = free_port();
    let maddr: SocketAddr = ([127, 0, 0, 1], mport).into();
    let metrics_arg = maddr.to_string();
    let server = Duplex::start(
        &["echo", "--port", "{port}", "--metrics", &metrics_arg, "--allow-origin", "https://good.example"],
        Input::Null,
    );
    server.wait_log("metrics at", WAIT);
    scripted_run(&server).await;
    let nm = (N * M) as f64;
    let (text, s) = scrape_until(maddr, |s| s.get("duplex_connections_active{transport=\"ws\"}") == Some(&0.0));
    let (ok, out) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed:\n{out}\n--- exposition:\n{text}");
    let get = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no {k} in:\n{text}"));
    assert_eq!(get("duplex_connections_accepted_total{transport=\"ws\"}"), N as f64);
    assert_eq!(get("duplex_connections_active{transport=\"ws\"}"), 0.0);
    assert_eq!(get("duplex_messages_received_total{opcode=\"text\"}"), nm);
    assert_eq!(get("duplex_messages_sent_total{opcode=\"text\"}"), nm);
    assert_eq!(get("duplex_handshakes_rejected_total{reason=\"origin\"}"), 1.0);
    assert_eq!(get("duplex_handshakes_rejected_total{reason=\"bad_request\"}"), 0.0);
    assert_eq!(get("duplex_handshake_duration_seconds_count"), N as f64);
    assert_eq!(get("duplex_control_frames_received_total{opcode=\"close\"}"), N as f64);
    // Every payload byte crossed the wire, framed (and masked from the client): more wire bytes.
    let payload = get("duplex_payload_bytes_received_total{opcode=\"text\"}");
    assert!(payload > 0.0 && get("duplex_wire_bytes_received_total") > payload, "{text}");
    // No label names a peer, a path or anything the client sent.
    assert!(!text.contains("127.0.0.1") && !text.contains("evil.example"), "{text}");
    for line in text.lines().filter(|l| l.starts_with("# TYPE") && l.ends_with(" counter")) {
        assert!(line.split(' ').nth(2).unwrap().ends_with("_total"), "{line}");
    }
}

/// GET on Prometheus's query API; the first result's value.
fn query(prometheus: SocketAddr, expr: &str) -> Option<f64> {
    let encoded: String = expr
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let (status, body) = http_get(prometheus, &format!("/api/v1/query?query={encoded}"));
    if !status.contains("200") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_it() {
    if !can_run("metrics::prometheus", &[Need::Prometheus]) {
        return;
    }
    let mport = free_port();
    let metrics_arg = format!("127.0.0.1:{mport}");
    let server = Duplex::start(&["echo", "--port", "{port}", "--metrics", &metrics_arg], Input::Null);
    server.wait_log("metrics at", WAIT);
    let mut ws = duplex::connect(&server.url("/")).await.expect("connects");
    ws.send("one").await.unwrap();
    assert!(ws.recv().await.is_some());

    let dir = std::env::temp_dir().join(format!("duplex-prometheus-{}-{mport}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: duplex\n    \
             static_configs:\n      - targets: ['127.0.0.1:{mport}']\n"
        ),
    )
    .unwrap();
    let pport = free_port();
    let paddr: SocketAddr = ([127, 0, 0, 1], pport).into();
    let mut prometheus = Proc::spawn(
        "prometheus",
        Command::new(program("prometheus").unwrap()).args([
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={paddr}"),
        ]),
    );
    prometheus.wait_listening(pport);
    // Scrapes every second: wait for the first that saw the connection (a slow machine only
    // takes longer, up to the deadline).
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut up, mut accepted) = (None, None);
    while Instant::now() < deadline {
        up = query(paddr, "up{job=\"duplex\"}");
        accepted = query(paddr, "sum(duplex_connections_accepted_total)");
        if up == Some(1.0) && accepted.is_some_and(|a| a > 0.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(up, Some(1.0), "prometheus never saw the target up; {}\n{}", prometheus.state(), prometheus.output());
    assert_eq!(accepted, Some(1.0), "accepted connections as prometheus scraped them");
    drop(ws);
    let _ = std::fs::remove_dir_all(&dir);
}
