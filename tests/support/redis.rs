//! A `redis-server` of a test's own, on a free loopback port, without persistence unless asked
//! for; killed (SIGKILL) when dropped. Without `redis-server` (Debian package `redis-server`)
//! [`Redis::start`] prints `SKIP` and gives `None`, except with `CI=true`, where it fails the test
//! (the rule of `can_run`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{can_run, Need};

/// How long `redis-server` may take to listen.
const STARTUP: Duration = Duration::from_secs(15);

/// What `redis-server` keeps across a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing (`--save '' --appendonly no`): a restart starts empty.
    None,
    /// An append-only file written before every reply (`--appendonly yes --appendfsync always`).
    AofAlways,
}

/// A `redis-server` of our own; killed when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    persistence: Persistence,
    /// Where its files go (the append-only file).
    dir: PathBuf,
}

impl Redis {
    /// Starts one on a free port, without persistence, or says why not: `None` (after printing
    /// `SKIP <test>: ...`) when `redis-server` is not installed, unless `CI=true`.
    pub fn start(test: &str) -> Option<Redis> {
        Self::start_with(test, Persistence::None)
    }

    /// [`start`](Redis::start) with `persistence`.
    pub fn start_with(test: &str, persistence: Persistence) -> Option<Redis> {
        if !can_run(test, &[Need::RedisServer]) {
            return None;
        }
        let port = super::free_port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("redis-{test}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let mut redis = Redis { child: None, port, persistence, dir };
        redis.spawn();
        Some(redis)
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let mut args = vec!["--port", &port, "--bind", "127.0.0.1", "--dir", &dir, "--save", ""];
        match self.persistence {
            Persistence::None => args.extend(["--appendonly", "no"]),
            Persistence::AofAlways => args.extend(["--appendonly", "yes", "--appendfsync", "always"]),
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        // Listening is not enough: with an append-only file it answers LOADING until loaded.
        while self.try_command(&["PING"]).as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not answer on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it with SIGKILL (`kill -9`).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, with the same files.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Kills it and starts it again on the same port after `pause`.
    pub fn restart_after(&mut self, pause: Duration) {
        self.kill();
        std::thread::sleep(pause);
        self.spawn();
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command and returns the first line of its reply (`+OK`, `:3`, `$5` …).
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args).unwrap_or_else(|| panic!("redis-server on {} did not answer {args:?}", self.port))
    }

    fn try_command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
