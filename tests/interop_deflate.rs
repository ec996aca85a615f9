//! Interop with compression: the `duplex` binary against independent WebSocket implementations
//! with permessage-deflate (RFC 7692) negotiated, and asserted as negotiated, not only that the
//! messages arrive.
//!
//! - python-websockets, both directions, over wss:// with a test CA made at test time (rcgen);
//! - Node `ws` with `perMessageDeflate`, both directions;
//! - Debian's Chromium over wss:// against `duplex serve --tls-self-signed`.
//!
//! The peers (`tests/peers/`), the skip rule (`SKIP ...`, a failure under `CI=true`) and
//! `DUPLEX_BIN` are as in tests/interop.rs. Every process runs in its own process group and is
//! ended when its guard drops; every wait has a deadline.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{can_run, chromium_path, node_dir, peers_dir, Need};

/// How long a server may take to start listening.
const STARTUP: Duration = Duration::from_secs(30);
/// How long a peer program may run (the peers give up on their own after 60 s).
const PEER_RUN: Duration = Duration::from_secs(120);
/// How long to wait for one echoed line, or for a log line to show up.
const SHORT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Commands (what a test needs, and the skip rule, are in tests/support: `can_run`, `Need`)

/// The binary under test: cargo's build of `duplex`, or $DUPLEX_BIN.
fn duplex(args: &[&str]) -> Command {
    let bin = std::env::var_os("DUPLEX_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_duplex")), PathBuf::from);
    let mut cmd = Command::new(bin);
    cmd.args(args)
        // The binary's own default log filter, and plain text: the tests read its log lines.
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    cmd
}

fn python(script: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(peers_dir().join("python").join(script)).env("PYTHONUNBUFFERED", "1").env("PYTHONIOENCODING", "utf-8");
    cmd
}

fn node(script: &str) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(node_dir().join(script)).current_dir(node_dir());
    cmd
}

/// A loopback port that nothing listens on, and that no other test of this process was given.
fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A spawned process, ended when dropped

/// A child process with its output collected by two reader threads. Dropping it ends its whole
/// process group (SIGTERM, then SIGKILL after 3 s).
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// stdout, line by line, as it arrives.
    stdout_lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command) -> Proc {
        Self::spawn_with(name, cmd, false)
    }

    fn spawn_with(name: &str, cmd: &mut Command, piped_stdin: bool) -> Proc {
        cmd.stdin(if piped_stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so that ending it also ends what it started (Chromium).
            .process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{name}: could not start {cmd:?}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, stdout_lines) = mpsc::channel();
        collect(child.stdout.take().expect("piped stdout"), stdout.clone(), Some(tx));
        collect(child.stderr.take().expect("piped stderr"), stderr.clone(), None);
        Proc { name: name.to_string(), stdin: child.stdin.take(), child, stdout_lines, stdout, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// "still running" or how it exited, for a failure message.
    fn state(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => format!("it exited: {status}"),
            Ok(None) => "it is still running".to_string(),
            Err(e) => format!("wait failed: {e}"),
        }
    }

    /// Everything it printed, for a failure message.
    fn output(&self) -> String {
        format!(
            "---- {} stdout ----\n{}\n---- {} stderr ----\n{}",
            self.name,
            self.stdout().trim_end(),
            self.name,
            self.stderr().trim_end()
        )
    }

    /// Waits until something accepts TCP connections on 127.0.0.1:`port`.
    fn wait_listening(&mut self, port: u16) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + STARTUP;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            self.fail_if_exited(&format!("before listening on {addr}"));
            if Instant::now() >= deadline {
                panic!("{} did not listen on {addr} within {STARTUP:?}\n{}", self.name, self.output());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the stdout line `line` (the peers' servers print `ready`).
    fn wait_stdout_line(&mut self, line: &str) {
        let deadline = Instant::now() + STARTUP;
        loop {
            match self.next_stdout_line(deadline) {
                Some(l) if l == line => return,
                Some(_) => {}
                None => {
                    let state = self.state();
                    panic!("{} did not print {line:?} within {STARTUP:?} ({state})\n{}", self.name, self.output())
                }
            }
        }
    }

    /// The next line on stdout, or None at EOF or at the deadline.
    fn next_stdout_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.stdout_lines.recv_timeout(left).ok()
    }

    /// Waits for it to exit; past `timeout` it is killed and the test fails.
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Let the reader threads take in the last of the output.
                    thread::sleep(Duration::from_millis(100));
                    return status;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Ok(None) => {
                    self.end();
                    panic!("{} did not finish within {timeout:?}; killed\n{}", self.name, self.output());
                }
                Err(e) => panic!("{}: wait failed: {e}", self.name),
            }
        }
    }

    /// Waits until stderr has a line for which `wanted` holds; returns whether one came.
    fn wait_stderr_line(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().lines().any(|l| wanted(&strip_ansi(l))) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn fail_if_exited(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            thread::sleep(Duration::from_millis(100));
            panic!("{} exited ({status}) {when}\n{}", self.name, self.output());
        }
    }

    /// Ends the process group: SIGTERM, up to 3 s to exit, then SIGKILL.
    fn end(&mut self) {
        self.stdin = None;
        let pid = self.child.id();
        if self.child.try_wait().ok().flatten().is_none() {
            signal_group(pid, SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        // Also whatever it started that outlived it (the group outlives its leader).
        signal_group(pid, SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.end();
    }
}

/// Reads `from` to EOF into `into`, also sending each line to `lines`.
fn collect(from: impl Read + Send + 'static, into: Arc<Mutex<String>>, lines: Option<mpsc::Sender<String>>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    into.lock().unwrap_or_else(|e| e.into_inner()).push_str(&text);
                    if let Some(tx) = &lines {
                        let line = text.strip_suffix('\n').unwrap_or(&text).to_string();
                        let _ = tx.send(line);
                    }
                }
            }
        }
    });
}

const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

/// Sends `signal` to the process group led by `pid` (each child is spawned with
/// `process_group(0)`, so its group id is its pid).
fn signal_group(pid: u32, signal: i32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    let Ok(pgid) = i32::try_from(pid) else { return };
    if pgid > 1 {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative pid
        // names the process group created for this child, so only its processes are signalled.
        unsafe {
            kill(-pgid, signal);
        }
    }
}

/// The text of a log line without ANSI colour sequences (ESC '[' ... final byte).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// A test CA and a server certificate for 127.0.0.1 and localhost, written as PEM files

/// PEM files of a CA and of a server certificate it signed; removed when dropped.
struct TestPki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TestPki {
    fn new(test: &str) -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.distinguished_name.push(DnType::CommonName, "duplex interop test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");

        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &ca_cert, &ca_key).expect("leaf certificate");

        let dir = std::env::temp_dir();
        let stem = format!("duplex-interop-deflate-{}-{test}", std::process::id());
        let pki = TestPki {
            ca: dir.join(format!("{stem}-ca.pem")),
            cert: dir.join(format!("{stem}-cert.pem")),
            key: dir.join(format!("{stem}-key.pem")),
        };
        std::fs::write(&pki.ca, ca_cert.pem()).expect("write CA PEM");
        std::fs::write(&pki.cert, cert.pem()).expect("write certificate PEM");
        std::fs::write(&pki.key, key.serialize_pem()).expect("write key PEM");
        pki
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        for p in [&self.ca, &self.cert, &self.key] {
            let _ = std::fs::remove_file(p);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// duplex echo (deflate on by default), checked by other libraries' clients offering deflate

/// Runs a peer client to completion; fails the test unless it exits 0 and printed a
/// `negotiated extensions: permessage-deflate...` line.
fn run_deflate_client(name: &str, mut cmd: Command, server: &Proc) {
    let mut client = Proc::spawn(name, &mut cmd);
    let status = client.wait_exit(PEER_RUN);
    assert!(status.success(), "{name} failed ({status})\n{}\n{}", client.output(), server.output());
    let out = client.stdout();
    assert!(
        out.lines().any(|l| l.starts_with("negotiated extensions: permessage-deflate")),
        "{name} did not negotiate permessage-deflate\n{}\n{}",
        client.output(),
        server.output()
    );
    eprintln!("{name}: {}", out.trim_end());
}

#[test]
fn echo_server_wss_deflate_with_python_websockets_client() {
    if !can_run("echo_server_wss_deflate_with_python_websockets_client", &[Need::PythonWebsockets]) {
        return;
    }
    let pki = TestPki::new("echo-python");
    let port = free_port();
    let p = port.to_string();
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    let mut server = Proc::spawn(
        "duplex echo --tls-cert",
        &mut duplex(&["echo", "--port", &p, "--bind", "127.0.0.1", "--tls-cert", cert, "--tls-key", key]),
    );
    server.wait_listening(port);
    let mut cmd = python("echo_client.py");
    cmd.arg(format!("wss://127.0.0.1:{port}/")).args(["--deflate", "--require-deflate", "--ca"]).arg(&pki.ca);
    run_deflate_client("python echo_client.py --deflate (wss)", cmd, &server);
}

#[test]
fn echo_server_deflate_with_node_ws_client() {
    if !can_run("echo_server_deflate_with_node_ws_client", &[Need::NodePeers]) {
        return;
    }
    let port = free_port();
    let p = port.to_string();
    let mut server = Proc::spawn("duplex echo", &mut duplex(&["echo", "--port", &p, "--bind", "127.0.0.1"]));
    server.wait_listening(port);
    let mut cmd = node("echo_client.js");
    cmd.arg(format!("ws://127.0.0.1:{port}/")).arg("--deflate");
    run_deflate_client("node echo_client.js --deflate", cmd, &server);
}

// ---------------------------------------------------------------------------------------------
// duplex connect (offers deflate by default), against other libraries' servers accepting it

/// Runs `duplex connect <extra args> <url>` against an already started echo server: checks that
/// it logs `negotiated extensions: permessage-deflate...`, that two lines come back, and that it
/// closes with 1000 and exits 0.
fn connect_with_deflate(server_name: &str, server: &Proc, url: &str, extra: &[&str]) {
    let mut args = vec!["connect"];
    args.extend_from_slice(extra);
    args.push(url);
    let mut client = Proc::spawn_with("duplex connect", &mut duplex(&args), true);
    assert!(
        client.wait_stderr_line(SHORT, |l| l.contains("negotiated extensions: permessage-deflate")),
        "duplex connect did not log a negotiated permessage-deflate ({})\n{}\n{}",
        client.state(),
        client.output(),
        server.output()
    );
    // Long enough that compression matters.
    let lines = ["hello", "héllo 🌍", &"compress me ".repeat(200)];
    {
        let stdin = client.stdin.as_mut().expect("piped stdin");
        let _ = stdin.write_all(lines.map(|l| format!("{l}\n")).concat().as_bytes());
        let _ = stdin.flush();
    }
    let deadline = Instant::now() + SHORT;
    for expected in lines {
        match client.next_stdout_line(deadline) {
            Some(got) => assert_eq!(got, expected, "wrong echo\n{}\n{}", client.output(), server.output()),
            None => panic!(
                "duplex connect did not print {expected:?} within {SHORT:?} ({})\n{}\n{}",
                client.state(),
                client.output(),
                server.output()
            ),
        }
    }
    client.stdin = None;
    let status = client.wait_exit(SHORT);
    assert!(status.success(), "duplex connect exited {status}\n{}\n{}", client.output(), server.output());
    assert!(
        server.wait_stderr_line(SHORT, |l| l.contains("closed") && l.contains(" 1000 ")),
        "{server_name} did not see a close with code 1000\n{}\n{}",
        server.output(),
        client.output()
    );
}

#[test]
fn connect_wss_deflate_to_python_websockets_server() {
    if !can_run("connect_wss_deflate_to_python_websockets_server", &[Need::PythonWebsockets]) {
        return;
    }
    let pki = TestPki::new("connect-python");
    let port = free_port();
    let mut cmd = python("echo_server.py");
    cmd.arg(port.to_string()).arg("--deflate").arg("--cert").arg(&pki.cert).arg("--key").arg(&pki.key);
    let mut server = Proc::spawn("python echo_server.py --deflate (TLS)", &mut cmd);
    server.wait_stdout_line("ready");
    let ca = pki.ca.to_str().unwrap();
    connect_with_deflate("python echo_server.py", &server, &format!("wss://127.0.0.1:{port}/"), &["--ca", ca]);
}

#[test]
fn connect_deflate_to_node_ws_server() {
    if !can_run("connect_deflate_to_node_ws_server", &[Need::NodePeers]) {
        return;
    }
    let port = free_port();
    let mut cmd = node("echo_server.js");
    cmd.arg(port.to_string()).arg("--deflate");
    let mut server = Proc::spawn("node echo_server.js --deflate", &mut cmd);
    server.wait_stdout_line("ready");
    connect_with_deflate("node echo_server.js", &server, &format!("ws://127.0.0.1:{port}/"), &[]);
    assert!(
        server.wait_stderr_line(SHORT, |l| l.contains("opened") && l.contains("permessage-deflate")),
        "node echo_server.js did not log permessage-deflate for the connection\n{}",
        server.output()
    );
}

// ---------------------------------------------------------------------------------------------
// duplex serve over TLS, checked by Chromium

#[test]
fn serve_wss_deflate_in_chromium() {
    if !can_run("serve_wss_deflate_in_chromium", &[Need::NodePeers, Need::Chromium]) {
        return;
    }
    let port = free_port();
    let p = port.to_string();
    let out = std::env::temp_dir().join(format!("duplex-interop-deflate-{}-serve.pem", std::process::id()));
    let out_s = out.to_str().unwrap();
    let mut server = Proc::spawn(
        "duplex serve --tls-self-signed",
        &mut duplex(&[
            "serve",
            "--port",
            &p,
            "--bind",
            "127.0.0.1",
            "--interval",
            "300ms",
            "--tls-self-signed",
            "--tls-self-signed-out",
            out_s,
        ]),
    );
    server.wait_listening(port);

    let mut cmd = node("browser_wss.js");
    cmd.arg(format!("https://127.0.0.1:{port}/")).args(["--timeout", "75"]).env("CHROMIUM", chromium_path());
    let mut browser = Proc::spawn("browser_wss.js", &mut cmd);
    let status = browser.wait_exit(PEER_RUN);
    let _ = std::fs::remove_file(&out);
    assert!(status.success(), "browser_wss.js failed ({status})\n{}\n{}", browser.output(), server.output());
    let report: serde_json::Value = serde_json::from_str(&browser.stdout()).expect("browser_wss.js prints JSON");
    let extensions = report["extensions"].as_str().unwrap_or_default();
    assert!(extensions.contains("permessage-deflate"), "window.ws.extensions is {extensions:?}\n{}", browser.output());
    let log = report["pageLog"].as_array().cloned().unwrap_or_default();
    assert!(
        log.iter().any(|l| l.as_str().is_some_and(|l| l.starts_with("< Message "))),
        "no pushed `< Message ` in the page's log\n{}",
        browser.output()
    );
    eprintln!("serve_wss_deflate_in_chromium: {} extensions {extensions:?}", report["socketUrl"]);
}
