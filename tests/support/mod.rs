//! Running the `duplex` binary from integration tests: start it with arguments, watch its log
//! (stderr) and output (stdout) line by line with deadlines, and end it when the guard drops.
//! Included with `mod support;` by the tests that need it.

#![allow(dead_code)]

pub mod json_ws;
pub mod pki;
pub mod procs;
pub mod proxies;
pub mod raw_ws;
pub mod redis;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Lines a child wrote, shared with the thread that reads them.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    more: Condvar,
}

impl Lines {
    fn collect(self: &Arc<Self>, reader: impl std::io::Read + Send + 'static) {
        let me = self.clone();
        thread::spawn(move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                me.lines.lock().unwrap().push(line);
                me.more.notify_all();
            }
        });
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = self.more.wait_timeout(lines, left).unwrap().0;
        }
    }

    fn all(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

/// A running `duplex` process; killed when dropped.
pub struct Duplex {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Lines>,
    stdout: Arc<Lines>,
    pub port: u16,
}

/// What the child's stdin is.
pub enum Input {
    /// A pipe the test writes to with [`Duplex::type_line`].
    Piped,
    /// `/dev/null`: the child sees end of input at once.
    Null,
}

impl Duplex {
    /// Starts `duplex <args>`; `{port}` in an argument is replaced by a free port, and the call
    /// returns once that port accepts connections.
    pub fn start(args: &[&str], input: Input) -> Duplex {
        Duplex::start_on(free_port(), args, input)
    }

    /// [`start`](Duplex::start) with `{port}` replaced by `port` (to start a server again on the
    /// port it had).
    pub fn start_on(port: u16, args: &[&str], input: Input) -> Duplex {
        let args: Vec<String> = args.iter().map(|a| a.replace("{port}", &port.to_string())).collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_duplex"))
            .args(&args)
            .env_remove("RUST_LOG")
            .stdin(match input {
                Input::Piped => Stdio::piped(),
                Input::Null => Stdio::null(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the duplex binary starts");
        let stderr = Arc::new(Lines::default());
        let stdout = Arc::new(Lines::default());
        stderr.collect(child.stderr.take().expect("stderr piped"));
        stdout.collect(child.stdout.take().expect("stdout piped"));
        let stdin = child.stdin.take();
        let d = Duplex { child, stdin, stderr, stdout, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(d.addr()).is_err() {
            assert!(Instant::now() < deadline, "duplex {args:?} did not listen on {port}; log:\n{}", d.log());
            thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `ws://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// Writes a line to its stdin.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("started with Input::Piped");
        writeln!(stdin, "{line}").and_then(|_| stdin.flush()).expect("stdin writable");
    }

    /// Closes its stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a log line containing `needle`; panics with the log after `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        self.stderr
            .wait_for(needle, timeout)
            .unwrap_or_else(|| panic!("no log line with {needle:?} within {timeout:?}; log:\n{}", self.log()))
    }

    /// Waits for a stdout line containing `needle`.
    pub fn wait_output(&self, needle: &str, timeout: Duration) -> String {
        self.stdout.wait_for(needle, timeout).unwrap_or_else(|| {
            panic!(
                "no output line with {needle:?} within {timeout:?}; output:\n{}\nlog:\n{}",
                self.output(),
                self.log()
            )
        })
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.stderr.all()
    }

    /// Everything printed on stdout so far.
    pub fn output(&self) -> String {
        self.stdout.all()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it at once (SIGKILL), as a crash would, and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks it to stop (SIGTERM: a graceful shutdown) and waits for it to exit, at most
    /// `timeout`; then kills it. Whether it exited on its own.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        extern "C" {
            fn kill(pid: i32, sig: i32) -> i32;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is our
            // child, not yet waited for, so the id cannot have been reused.
            unsafe {
                kill(pid, 15);
            }
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }
}

impl Drop for Duplex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Outside peers, and the skip rule of the tests that need them (tests/interop.rs, tests/demos.rs,
// tests/relay_browser.rs, tests/support/redis.rs)

/// The repository's root.
pub fn repo_root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/peers`.
pub fn peers_dir() -> std::path::PathBuf {
    repo_root().join("tests").join("peers")
}

/// `tests/peers/node`.
pub fn node_dir() -> std::path::PathBuf {
    peers_dir().join("node")
}

/// Debian's Chromium at /usr/bin/chromium, or $CHROMIUM.
pub fn chromium_path() -> std::path::PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| std::path::PathBuf::from("/usr/bin/chromium"), std::path::PathBuf::from)
}

/// Something outside cargo that a test needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `python3` with `websockets` >= 14 (the asyncio API).
    PythonWebsockets,
    /// `python3` with `h2` and `wsproto` (tests/peers/python/h2_ws_client.py).
    PythonH2,
    /// `node` and `tests/peers/node/node_modules` (ws, playwright-core).
    NodePeers,
    /// Debian's Chromium at /usr/bin/chromium (or $CHROMIUM).
    Chromium,
    /// `redis-server` on PATH (Debian package `redis-server`), for [`redis::Redis`].
    RedisServer,
    /// `tinyproxy` (Debian package `tinyproxy`), an HTTP CONNECT proxy.
    Tinyproxy,
    /// `danted` (Debian package `dante-server`), a SOCKS4/SOCKS5 proxy.
    Danted,
    /// `microsocks` (Debian package `microsocks`), a SOCKS5 proxy with user/password.
    Microsocks,
    /// `haproxy` (Debian package `haproxy`), here terminating TLS in front of tinyproxy.
    Haproxy,
    /// `prometheus` and `promtool` (Debian package `prometheus`).
    Prometheus,
    /// `ss` (Debian package `iproute2`), for a listening socket's backlog and queue.
    Ss,
}

/// The path of an installed program: on PATH, or in /usr/sbin (not on a normal user's PATH).
pub fn program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(std::path::PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Need {
    /// What is missing, or None when this need is met. Checked once per process.
    pub fn missing(self) -> Option<String> {
        use std::sync::OnceLock;
        static PY: OnceLock<Option<String>> = OnceLock::new();
        static NODE: OnceLock<Option<String>> = OnceLock::new();
        static CHROMIUM: OnceLock<Option<String>> = OnceLock::new();
        static REDIS: OnceLock<Option<String>> = OnceLock::new();
        match self {
            Need::PythonWebsockets => PY
                .get_or_init(|| {
                    let ok = Command::new("python3")
                        .args(["-c", "import websockets.asyncio.client, websockets.asyncio.server"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    (!ok).then(|| "python3 cannot import `websockets` (>= 14)".to_string())
                })
                .clone(),
            Need::PythonH2 => {
                let ok = Command::new("python3")
                    .args(["-c", "import h2.connection, wsproto.connection"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                (!ok).then(|| "python3 cannot import `h2` and `wsproto` (pip install h2 wsproto)".to_string())
            }
            Need::NodePeers => NODE
                .get_or_init(|| {
                    let node = Command::new("node")
                        .arg("--version")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    let modules = node_dir().join("node_modules");
                    if !node {
                        Some("no `node` on PATH".to_string())
                    } else if !modules.join("ws").is_dir() || !modules.join("playwright-core").is_dir() {
                        Some(format!("no {} (npm ci there)", modules.display()))
                    } else {
                        None
                    }
                })
                .clone(),
            Need::Chromium => CHROMIUM
                .get_or_init(|| {
                    let path = chromium_path();
                    (!path.is_file()).then(|| format!("no {} (apt-get install chromium)", path.display()))
                })
                .clone(),
            Need::RedisServer => REDIS
                .get_or_init(|| {
                    let found = Command::new("redis-server")
                        .arg("--version")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    (!found).then(|| "redis-server is not installed (apt-get install redis-server)".to_string())
                })
                .clone(),
            Need::Tinyproxy => {
                program("tinyproxy").is_none().then(|| "no tinyproxy (apt-get install tinyproxy)".into())
            }
            Need::Danted => program("danted").is_none().then(|| "no danted (apt-get install dante-server)".into()),
            Need::Microsocks => {
                program("microsocks").is_none().then(|| "no microsocks (apt-get install microsocks)".into())
            }
            Need::Haproxy => program("haproxy").is_none().then(|| "no haproxy (apt-get install haproxy)".into()),
            Need::Ss => program("ss").is_none().then(|| "no ss (apt-get install iproute2)".into()),
            Need::Prometheus => (program("prometheus").is_none() || program("promtool").is_none())
                .then(|| "no prometheus/promtool (apt-get install prometheus)".into()),
        }
    }
}

/// The skip rule: true when everything `test` needs is present. Otherwise prints
/// `SKIP <test>: <what is missing> (...)` to stderr and returns false, or, under `CI=true`,
/// panics: in CI a skipped test is a failure.
pub fn can_run(test: &str, needs: &[Need]) -> bool {
    let missing: Vec<String> = needs.iter().filter_map(|n| n.missing()).collect();
    if missing.is_empty() {
        return true;
    }
    let line = format!("SKIP {test}: {} (run .ci/run or see docs/testing.md)", missing.join("; "));
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{line}; CI=true, so a skip is a failure");
    }
    // Straight to the process's stderr: the test harness captures eprintln! of passing tests,
    // and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "{line}");
    false
}
