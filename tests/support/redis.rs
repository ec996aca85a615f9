//! A `redis-server` of a test's own, on a free loopback port, without persistence; killed when
//! dropped. Without `redis-server` (Debian package `redis-server`) [`Redis::start`] prints `SKIP`
//! and gives `None`, except with `CI=true`, where it fails the test (the rule of `can_run`).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{can_run, Need};

/// How long `redis-server` may take to listen.
const STARTUP: Duration = Duration::from_secs(15);

/// A `redis-server` of our own; killed when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    /// Starts one on a free port, or says why not: `None` (after printing `SKIP <test>: ...`) when
    /// `redis-server` is not installed, unless `CI=true`.
    pub fn start(test: &str) -> Option<Redis> {
        if !can_run(test, &[Need::RedisServer]) {
            return None;
        }
        let mut redis = Redis { child: None, port: super::free_port() };
        redis.spawn();
        Some(redis)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts it again on the same port (empty: no persistence).
    pub fn restart_after(&mut self, pause: Duration) {
        self.kill();
        std::thread::sleep(pause);
        self.spawn();
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
