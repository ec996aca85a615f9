//! `duplex bench`: load generators for WebSocket servers, written to cost the bench less CPU per
//! message than the server it measures.
//!
//! - [`echo`]: N connections × K messages in flight × S bytes against an echo server: throughput,
//!   round-trip latency, every echo verified, and (with `--server-pid`) the server's CPU time.
//! - [`connections`]: N idle connections: connect rate and (with `--server-pid`) the server's
//!   memory per connection.
//!
//! Both speak raw TCP with hand-built frames rather than the library's client: frames are masked
//! once up front and only a sequence number is patched in per message, so the bench measures the
//! server, not itself. A progress line goes to stderr once a second, a summary to stdout, and the
//! last line of stdout is one JSON object (`{"mode":"echo",...}`) for scripts.

pub mod broadcast;
pub mod connections;
pub mod echo;
mod wire;

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use duplex_proto::handshake::ClientHandshake;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::exit;

/// Options of `duplex bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(clap::Subcommand, Debug)]
enum Mode {
    /// Echo load: N connections × K messages in flight × S bytes; msgs/s, MB/s, round-trip
    /// latency, verified echoes, and the server's CPU time with --server-pid.
    Echo(echo::Args),
    /// Open N idle connections: connect rate, and the server's RSS per connection with
    /// --server-pid.
    Connections(connections::Args),
    /// Fan-out through a relay: N clients each sending once per round to all N, or (--publisher)
    /// one publisher to N subscribers; deliveries/s, latency, server CPU with --server-pid.
    Broadcast(broadcast::Args),
}

/// Runs the chosen mode.
pub async fn run(args: Args) -> u8 {
    let result = match args.mode {
        Mode::Echo(a) => echo::run(a).await,
        Mode::Connections(a) => connections::run(a).await,
        Mode::Broadcast(a) => broadcast::run(a).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("duplex bench: {e}");
            exit::FAILURE
        }
    }
}

// ============================================================================ target and handshake

/// A `ws://` URL, parsed by the library's [`duplex::Target`] and resolved once.
#[derive(Clone, Debug)]
pub struct Target {
    /// The address connected to.
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// Path and query.
    pub path: String,
    /// The URL as given, for the report.
    pub url: String,
}

impl Target {
    /// Parses `ws://host[:port][/path]` and resolves the host.
    pub fn parse(url: &str) -> Result<Target, String> {
        let parsed = duplex::Target::parse(url).map_err(|e| e.to_string())?;
        if parsed.tls {
            return Err("wss:// is not supported by the bench: measure TLS separately".into());
        }
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(parsed.host.as_str(), parsed.port))
            .map_err(|e| format!("cannot resolve {:?}: {e}", parsed.host))?
            .next()
            .ok_or_else(|| format!("{:?} resolves to no address", parsed.host))?;
        Ok(Target { addr, host: parsed.host_header, path: parsed.resource, url: url.to_owned() })
    }
}

/// Connects and completes the opening handshake (no extensions offered). Returns the stream and
/// any bytes that arrived after the server's 101 head.
pub async fn open(target: &Target) -> Result<(TcpStream, Vec<u8>), String> {
    let mut stream = TcpStream::connect(target.addr).await.map_err(|e| format!("connect {}: {e}", target.addr))?;
    stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let hs = ClientHandshake::new(target.host.clone(), target.path.clone());
    stream.write_all(&hs.request()).await.map_err(|e| format!("send handshake: {e}"))?;
    let mut buf = Vec::with_capacity(512);
    loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read handshake: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection during the handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        match hs.parse_response(&buf) {
            Ok(Some((resp, head))) => {
                if resp.extensions.is_some() {
                    return Err("the server answered with extensions that were not offered".into());
                }
                return Ok((stream, buf.split_off(head)));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("handshake: {e}")),
        }
    }
}

/// Opens `count` connections, at most `concurrency` handshakes at a time, on the runtime's
/// threads. `opened` counts the successes as they happen (for the progress line). The result keeps
/// the order of the connections.
pub async fn open_many(
    target: &Target,
    count: usize,
    concurrency: usize,
    opened: Arc<AtomicU64>,
) -> Vec<Result<(TcpStream, Vec<u8>), String>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut handles = Vec::with_capacity(count);
    for _ in 0..count {
        let (target, permits, opened) = (target.clone(), permits.clone(), opened.clone());
        handles.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            let r = open(&target).await;
            if r.is_ok() {
                opened.fetch_add(1, Ordering::Relaxed);
            }
            r
        }));
    }
    let mut out = Vec::with_capacity(count);
    for h in handles {
        out.push(h.await.unwrap_or_else(|e| Err(format!("connect task failed: {e}"))));
    }
    out
}

/// Waits for `connecting` (a task opening `total` connections, counting them in `opened`),
/// showing "connecting: N/total open" on `progress` every second meanwhile.
pub async fn with_connect_progress<T>(
    connecting: tokio::task::JoinHandle<T>,
    opened: &AtomicU64,
    total: usize,
    progress: &mut Progress,
) -> Result<T, String> {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.tick().await;
    tokio::pin!(connecting);
    loop {
        tokio::select! {
            r = &mut connecting => return r.map_err(|e| e.to_string()),
            _ = tick.tick() => progress.update(&format!(
                "connecting: {}/{total} open", opened.load(Ordering::Relaxed))),
        }
    }
}

// ============================================================================ /proc and limits

/// Clock ticks per second, the unit of `/proc/PID/stat`'s CPU times.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// User plus system CPU time of process `pid` (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_seconds_at(&format!("/proc/{pid}/stat"))
}

/// CPU time of this process, in seconds.
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds_at("/proc/self/stat")
}

fn cpu_seconds_at(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: fields are counted
    // after its closing parenthesis. utime and stime are fields 14 and 15, so 12th and 13th after.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks() as f64)
}

/// Resident set size of process `pid`, in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Checks that `pid` names a running process (so a typo fails before the run, not after).
pub fn check_pid(pid: Option<u32>) -> Result<(), String> {
    match pid {
        Some(p) if cpu_seconds(p).is_none() => Err(format!("no process {p} (cannot read /proc/{p}/stat)")),
        _ => Ok(()),
    }
}

/// Raises the soft limit on open files to the hard limit; returns the limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: `raised` is a valid rlimit; raising the soft limit up to the hard one is allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    lim.rlim_cur
}

// ============================================================================ latency histogram

/// Sub-buckets per power of two: values are kept to within 1/32 (~3 %).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two covered: values up to 2^40 ns (~18 minutes).
const MAX_EXP: usize = 40;
const BUCKETS: usize = (MAX_EXP - SUB_BITS as usize + 2) * SUB;

/// A log-linear histogram of nanosecond values, shared by every connection task (one relaxed
/// atomic add per sample: cheaper than merging per-connection histograms, and small).
pub struct Histogram {
    counts: Box<[AtomicU32]>,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(), max: AtomicU64::new(0) }
    }
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros();
        if e as usize > MAX_EXP {
            return BUCKETS - 1;
        }
        let top = (v >> (e - SUB_BITS)) as usize; // in SUB..2*SUB
        (e - SUB_BITS + 1) as usize * SUB + (top - SUB)
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        if i < SUB {
            return i as u64;
        }
        let e = (i / SUB) as u32 + SUB_BITS - 1;
        let top = (SUB + i % SUB) as u64;
        let low = top << (e - SUB_BITS);
        low + (1u64 << (e - SUB_BITS)) / 2
    }

    /// Records one value in nanoseconds.
    #[inline]
    pub fn record(&self, ns: u64) {
        self.counts[Self::index(ns)].fetch_add(1, Ordering::Relaxed);
        if ns > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(ns, Ordering::Relaxed);
        }
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| u64::from(c.load(Ordering::Relaxed))).sum()
    }

    /// The largest value recorded.
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// The value at quantile `q` (0..=1), in nanoseconds; 0 if empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        if rank == total {
            return self.max();
        }
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(c.load(Ordering::Relaxed));
            if seen >= rank {
                return Self::value(i).min(self.max());
            }
        }
        self.max()
    }
}

// ============================================================================ output

/// The progress line on stderr: rewritten in place on a terminal, one line per update otherwise.
pub struct Progress {
    tty: bool,
    shown: bool,
}

impl Progress {
    /// A progress line for stderr.
    pub fn new() -> Self {
        Progress { tty: std::io::stderr().is_terminal(), shown: false }
    }

    /// Shows `line`.
    pub fn update(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        let _ = if self.tty { write!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
        let _ = err.flush();
        self.shown = true;
    }

    /// Ends the line (on a terminal) so the summary starts on a fresh one.
    pub fn finish(&mut self) {
        if self.tty && self.shown {
            let _ = writeln!(std::io::stderr());
        }
        self.shown = false;
    }
}

/// A one-line JSON object, built field by field.
#[derive(Default)]
pub struct Json(String);

impl Json {
    /// A string field.
    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.key(key);
        self.0.push('"');
        for c in v.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.0, "\\u{:04x}", c as u32);
                }
                c => self.0.push(c),
            }
        }
        self.0.push('"');
        self
    }

    /// An integer field.
    pub fn int(&mut self, key: &str, v: u64) -> &mut Self {
        self.key(key);
        let _ = write!(self.0, "{v}");
        self
    }

    /// A number field (`null` if not finite), with up to 3 decimals.
    pub fn num(&mut self, key: &str, v: f64) -> &mut Self {
        self.key(key);
        if v.is_finite() {
            let s = format!("{v:.3}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            self.0.push_str(if s.is_empty() || s == "-" { "0" } else { s });
        } else {
            self.0.push_str("null");
        }
        self
    }

    /// An optional number field (`null` when absent).
    pub fn opt(&mut self, key: &str, v: Option<f64>) -> &mut Self {
        match v {
            Some(v) => self.num(key, v),
            None => {
                self.key(key);
                self.0.push_str("null");
                self
            }
        }
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.key(key);
        self.0.push_str(if v { "true" } else { "false" });
        self
    }

    fn key(&mut self, key: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        let _ = write!(self.0, "\"{key}\":");
    }

    /// The object as text.
    pub fn finish(&self) -> String {
        if self.0.is_empty() {
            "{}".into()
        } else {
            format!("{}}}", self.0)
        }
    }
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in ns as µs or ms with 3 significant digits.
pub fn human_ns(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

/// Bytes with a binary unit: `20 B`, `16 KiB`, `1 MiB`.
pub fn human_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// Parses `20`, `1k`/`1KiB`, `16k`, `1m`/`1MiB` as bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) =
        if let Some(n) = t.strip_suffix("kib").or_else(|| t.strip_suffix("kb")).or_else(|| t.strip_suffix('k')) {
            (n, 1 << 10)
        } else if let Some(n) = t.strip_suffix("mib").or_else(|| t.strip_suffix("mb")).or_else(|| t.strip_suffix('m')) {
            (n, 1 << 20)
        } else {
            (t.strip_suffix('b').unwrap_or(&t), 1)
        };
    let n: usize = num.trim().parse().map_err(|_| format!("{s:?} is not a size like 20, 1k, 16KiB or 1MiB"))?;
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

/// Elapsed seconds since `t`, as f64.
pub fn secs_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_within_three_percent() {
        let h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.count(), 100_000);
        for (q, want) in [(0.5, 50_000_000.0), (0.99, 99_000_000.0), (0.999, 99_900_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.03, "q {q}: {got} vs {want}");
        }
        assert_eq!(h.max(), 100_000_000);
        assert_eq!(h.quantile(1.0), 100_000_000);
    }

    #[test]
    fn histogram_index_is_monotonic_and_value_in_bucket() {
        let mut last = 0;
        for v in (0..5_000_000u64).step_by(7) {
            let i = Histogram::index(v);
            assert!(i >= last);
            last = i;
        }
        for v in [0u64, 5, 31, 32, 33, 63, 64, 1000, 123_456, 1 << 35] {
            let mid = Histogram::value(Histogram::index(v));
            assert!((mid as f64 - v as f64).abs() <= (v as f64 / 32.0).max(0.5), "{v} -> {mid}");
        }
        assert_eq!(Histogram::index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn json_line() {
        let mut j = Json::default();
        j.str("mode", "echo").int("n", 3).num("r", 1.5).num("z", 2.0).opt("x", None).bool("ok", true).str("q", "a\"b");
        assert_eq!(j.finish(), r#"{"mode":"echo","n":3,"r":1.5,"z":2,"x":null,"ok":true,"q":"a\"b"}"#);
    }

    #[test]
    fn sizes_and_numbers() {
        assert_eq!(parse_size("20"), Ok(20));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("16KiB"), Ok(16384));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("lots").is_err());
        assert_eq!(human_size(16384), "16 KiB");
        assert_eq!(human_size(20), "20 B");
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(12.0), "12");
    }

    #[test]
    fn urls() {
        let t = Target::parse("ws://127.0.0.1:9001/echo?x=1").unwrap();
        assert_eq!(t.addr.port(), 9001);
        assert_eq!(t.path, "/echo?x=1");
        assert_eq!(t.host, "127.0.0.1:9001");
        let default_port = Target::parse("ws://127.0.0.1").unwrap();
        assert_eq!(
            (default_port.addr.port(), default_port.host.as_str(), default_port.path.as_str()),
            (80, "127.0.0.1", "/")
        );
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("wss://127.0.0.1").is_err());
    }

    #[test]
    fn own_cpu_and_rss_readable() {
        assert!(own_cpu_seconds().is_some());
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(clock_ticks() > 0);
    }
}
