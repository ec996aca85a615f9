//! Running the `duplex` binary and the peer programs as child processes for the interop tests:
//! each in its own process group, its output collected, ended (SIGTERM, then SIGKILL) when its
//! guard drops, and every wait bounded by a deadline.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{node_dir, peers_dir};

/// How long a server may take to start listening.
pub const STARTUP: Duration = Duration::from_secs(30);
/// How long a peer program may run (the peers give up on their own after 60 s).
pub const PEER_RUN: Duration = Duration::from_secs(120);
/// How long to wait for one echoed line, or for a log line to show up.
pub const SHORT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Commands (what a test needs, and the skip rule, are in tests/support: `can_run`, `Need`)

/// The binary under test: cargo's build of `duplex`, or $DUPLEX_BIN.
pub fn duplex(args: &[&str]) -> Command {
    let bin = std::env::var_os("DUPLEX_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_duplex")), PathBuf::from);
    let mut cmd = Command::new(bin);
    cmd.args(args)
        // The binary's own default log filter, and plain text: the tests read its log lines.
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    // Clients take their proxy from the environment: a developer's HTTP_PROXY must not route the
    // tests' loopback connections. tests/proxy.rs sets these on purpose.
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    cmd
}

/// Every variable that can name a proxy for `duplex connect` (docs/client.md), and
/// REQUEST_METHOD, which turns HTTP_PROXY off.
pub const PROXY_VARS: [&str; 13] = [
    "ws_proxy",
    "WS_PROXY",
    "wss_proxy",
    "WSS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",
];

pub fn python(script: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(peers_dir().join("python").join(script)).env("PYTHONUNBUFFERED", "1").env("PYTHONIOENCODING", "utf-8");
    cmd
}

pub fn node(script: &str) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(node_dir().join(script)).current_dir(node_dir());
    cmd
}

/// A loopback port that nothing listens on, and that no other test of this process was given.
pub fn free_port() -> u16 {
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
pub struct Proc {
    name: String,
    child: Child,
    pub stdin: Option<ChildStdin>,
    /// stdout, line by line, as it arrives.
    stdout_lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        Self::spawn_with(name, cmd, false)
    }

    pub fn spawn_with(name: &str, cmd: &mut Command, piped_stdin: bool) -> Proc {
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

    /// The process id (also its process group's, for [`signal_group`]).
    pub fn child_id(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// "still running" or how it exited, for a failure message.
    pub fn state(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => format!("it exited: {status}"),
            Ok(None) => "it is still running".to_string(),
            Err(e) => format!("wait failed: {e}"),
        }
    }

    /// Everything it printed, for a failure message.
    pub fn output(&self) -> String {
        format!(
            "---- {} stdout ----\n{}\n---- {} stderr ----\n{}",
            self.name,
            self.stdout().trim_end(),
            self.name,
            self.stderr().trim_end()
        )
    }

    /// Waits until something accepts TCP connections on 127.0.0.1:`port`.
    pub fn wait_listening(&mut self, port: u16) {
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
    pub fn wait_stdout_line(&mut self, line: &str) {
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
    pub fn next_stdout_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.stdout_lines.recv_timeout(left).ok()
    }

    /// The lines left on stdout until EOF (at most 2 s more), once the process has exited.
    pub fn rest_of_stdout(&mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        std::iter::from_fn(|| self.next_stdout_line(deadline)).collect()
    }

    /// Waits for it to exit; past `timeout` it is killed and the test fails.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
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
    pub fn wait_stderr_line(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> bool {
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

    pub fn fail_if_exited(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            thread::sleep(Duration::from_millis(100));
            panic!("{} exited ({status}) {when}\n{}", self.name, self.output());
        }
    }

    /// Ends the process group: SIGTERM, up to 3 s to exit, then SIGKILL.
    pub fn end(&mut self) {
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
pub fn collect(from: impl Read + Send + 'static, into: Arc<Mutex<String>>, lines: Option<mpsc::Sender<String>>) {
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

pub const SIGTERM: i32 = 15;
pub const SIGKILL: i32 = 9;

/// Sends `signal` to the process group led by `pid` (each child is spawned with
/// `process_group(0)`, so its group id is its pid).
pub fn signal_group(pid: u32, signal: i32) {
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
pub fn strip_ansi(line: &str) -> String {
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
