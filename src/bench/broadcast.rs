//! `duplex bench broadcast`: fan-out load against a relay (`duplex relay`: a room per URL path).
//!
//! - Default (uWebSockets' broadcast_test pattern): N clients in one room; in each round every
//!   client sends one message and waits until it has received all N messages of the round (its
//!   own included, so run the relay with echo): N² deliveries per round.
//! - `--publisher`: one publisher sending at `--rate` messages/s to M subscribers that only
//!   receive (run the relay with `--no-echo`): one-to-many deliveries.
//!
//! Every payload carries the send time (ns since the bench started, the same clock for every
//! connection of this process), its round and its sender; latency is measured at each receiver.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duplex_proto::frame::{FrameHeader, Opcode, MAX_HEADER_LEN};
use duplex_proto::mask;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::wire::{close_reason, masked_control, FrameReader, Phase, Stage};
use super::{human_ns, parse_size, thousands, Histogram, Json, Progress, Target};
use crate::{exit, parse_duration};

/// Options of `duplex bench broadcast`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The relay's URL, path = room (ws:// only).
    #[arg(long, default_value = "ws://127.0.0.1:8080/room")]
    url: String,
    /// Clients in the room (with --publisher: subscribers).
    #[arg(short = 'c', long, default_value_t = 100)]
    clients: usize,
    /// Payload bytes per message (at least 16: time, round, sender).
    #[arg(short = 's', long, default_value = "20", value_parser = parse_size)]
    size: usize,
    /// Measure this many rounds (every client's), after the warm-up (not with --publisher).
    #[arg(long, conflicts_with_all = ["duration", "publisher"])]
    rounds: Option<u64>,
    /// How long to measure, after the warm-up (default 10s).
    #[arg(short = 'd', long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Load sent before measuring starts (not counted).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// One-to-many: one publisher sends at --rate to --clients subscribers that only receive.
    #[arg(long)]
    publisher: bool,
    /// Messages per second the publisher sends (with --publisher).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// PID of the server: report its CPU seconds over the measured interval and the deliveries
    /// per server CPU-second.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Handshakes in progress at once while connecting.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Only print the JSON line on stdout.
    #[arg(long)]
    json: bool,
}

struct Shared {
    epoch: Instant,
    phase: Phase,
    clients: usize,
    /// Messages received, since the start.
    delivered: AtomicU64,
    /// Messages received during the measured interval.
    measured: AtomicU64,
    /// Rounds completed by clients during the measured interval.
    rounds: AtomicU64,
    /// `rounds` value that ends a --rounds run.
    target_rounds: AtomicU64,
    done: Notify,
    latency: Histogram,
    errors: Mutex<Vec<String>>,
    failed: AtomicU64,
}

impl Shared {
    fn fail(&self, conn: usize, e: String) {
        if self.phase.get() == Stage::Stop {
            return;
        }
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.len() < 5 {
            errors.push(format!("connection {conn}: {e}"));
        }
        self.done.notify_one();
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// Runs the broadcast benchmark; `Ok` carries the exit code.
pub async fn run(args: Args) -> Result<u8, String> {
    let target = Target::parse(&args.url)?;
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if args.size < 16 {
        return Err("--size must be at least 16 (send time, round, sender)".into());
    }
    if args.publisher && !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err("--rate must be a positive number".into());
    }
    super::check_pid(args.server_pid)?;
    let total = args.clients + usize::from(args.publisher);
    let limit = super::raise_nofile_limit();
    if total as u64 + 32 > limit {
        return Err(format!("{total} connections need more file descriptors than the limit of {limit}"));
    }
    let duration = match (args.duration, args.rounds) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let mut progress = Progress::new();

    // Connect (the publisher, if any, is the last connection).
    let opened = Arc::new(AtomicU64::new(0));
    let connecting = tokio::spawn({
        let (target, opened) = (target.clone(), opened.clone());
        let c = args.connect_concurrency;
        async move { super::open_many(&target, total, c, opened).await }
    });
    let streams = super::with_connect_progress(connecting, &opened, total, &mut progress).await?;
    let mut conns = Vec::with_capacity(total);
    for (i, r) in streams.into_iter().enumerate() {
        match r {
            Ok(s) => conns.push(s),
            Err(e) => {
                progress.finish();
                return Err(format!("connection {i} of {total}: {e}"));
            }
        }
    }
    // Let the relay finish registering the last connections in the room.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        phase: Phase::default(),
        clients: args.clients,
        delivered: AtomicU64::new(0),
        measured: AtomicU64::new(0),
        rounds: AtomicU64::new(0),
        target_rounds: AtomicU64::new(u64::MAX),
        done: Notify::new(),
        latency: Histogram::default(),
        errors: Mutex::new(Vec::new()),
        failed: AtomicU64::new(0),
    });
    let mut tasks = Vec::with_capacity(total);
    let publisher = if args.publisher { conns.pop() } else { None };
    for (i, (stream, leftover)) in conns.into_iter().enumerate() {
        let shared = shared.clone();
        let (size, sends) = (args.size, !args.publisher);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = client(i, stream, leftover, size, sends, &shared).await {
                shared.fail(i, e);
            }
        }));
    }
    if let Some((stream, _)) = publisher {
        let shared = shared.clone();
        let (size, rate, id) = (args.size, args.rate, args.clients);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = publish(id, stream, size, rate, &shared).await {
                shared.fail(id, e);
            }
        }));
    }

    // Warm up, then measure.
    let warm_end = Instant::now() + args.warmup;
    while Instant::now() < warm_end && shared.failed.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(50).min(warm_end.saturating_duration_since(Instant::now()))).await;
    }
    let cpu0 = args.server_pid.and_then(super::cpu_seconds);
    let own0 = super::own_cpu_seconds();
    let t0 = Instant::now();
    if let Some(r) = args.rounds {
        shared.target_rounds.store(r.saturating_mul(args.clients as u64), Ordering::Relaxed);
    }
    shared.phase.set(Stage::Measure);
    let end = duration.map(|d| t0 + d);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = (Instant::now(), 0u64);
    loop {
        if shared.failed.load(Ordering::Relaxed) > 0 {
            break;
        }
        if shared.rounds.load(Ordering::Relaxed) >= shared.target_rounds.load(Ordering::Relaxed) {
            break;
        }
        let sleep = match end {
            Some(e) if Instant::now() >= e => break,
            Some(e) => e.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = shared.done.notified() => {}
            _ = tick.tick() => {
                let d = shared.measured.load(Ordering::Relaxed);
                let rate = (d - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), d);
                progress.update(&format!("{} deliveries/s, p99 {}", thousands(rate),
                    human_ns(shared.latency.quantile(0.99))));
            }
        }
    }
    let secs = super::secs_since(t0);
    let cpu1 = args.server_pid.and_then(super::cpu_seconds);
    let own1 = super::own_cpu_seconds();
    shared.phase.set(Stage::Stop);
    for t in &tasks {
        t.abort();
    }
    progress.finish();

    let deliveries = shared.measured.load(Ordering::Relaxed);
    let rounds = shared.rounds.load(Ordering::Relaxed);
    let per_sec = deliveries as f64 / secs;
    let server_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let per_cpu = server_cpu.filter(|c| *c > 0.0).map(|c| deliveries as f64 / c);
    let own_cpu = match (own0, own1) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let (p50, p99, max) = (shared.latency.quantile(0.5), shared.latency.quantile(0.99), shared.latency.max());
    let errors = shared.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mode = if args.publisher { "publisher" } else { "rounds" };

    if !args.json {
        if args.publisher {
            println!(
                "broadcast (one publisher at {}/s → {} subscribers, {} B) against {}",
                args.rate, args.clients, args.size, args.url
            );
        } else {
            println!(
                "broadcast ({} clients × {} B, every client sends once per round) against {}",
                args.clients, args.size, args.url
            );
            println!(
                "  rounds:       {} client-rounds ({:.1} full rounds)",
                rounds,
                rounds as f64 / args.clients as f64
            );
        }
        println!("  measured:     {secs:.2} s");
        println!("  deliveries:   {} ({}/s)", thousands(deliveries as f64), thousands(per_sec));
        println!("  latency:      p50 {}, p99 {}, max {}", human_ns(p50), human_ns(p99), human_ns(max));
        if let Some(c) = server_cpu {
            println!(
                "  server CPU:   {c:.2} s ({:.0} %), {} deliveries per CPU-second",
                100.0 * c / secs,
                per_cpu.map(thousands).unwrap_or_else(|| "-".into())
            );
        }
        if let Some(c) = own_cpu {
            println!("  bench CPU:    {c:.2} s ({:.0} %)", 100.0 * c / secs);
        }
        for e in &errors {
            println!("  error: {e}");
        }
    }
    let mut j = Json::default();
    j.str("mode", "broadcast")
        .str("pattern", mode)
        .str("url", &args.url)
        .int("clients", args.clients as u64)
        .int("size", args.size as u64)
        .num("rate", if args.publisher { args.rate } else { 0.0 })
        .num("seconds", secs)
        .int("deliveries", deliveries)
        .int("client_rounds", rounds)
        .num("deliveries_per_sec", per_sec)
        .int("latency_p50_ns", p50)
        .int("latency_p99_ns", p99)
        .int("latency_max_ns", max)
        .opt("server_cpu_s", server_cpu)
        .opt("deliveries_per_server_cpu_s", per_cpu)
        .opt("bench_cpu_s", own_cpu)
        .int("failed", shared.failed.load(Ordering::Relaxed));
    println!("{}", j.finish());
    Ok(if errors.is_empty() { exit::OK } else { exit::FAILURE })
}

/// The masked frame of one message: payload = send time (8 B), round (4 B), sender (4 B), padding.
fn frame(size: usize, key: [u8; 4], t_ns: u64, round: u32, sender: u32) -> Vec<u8> {
    let header = FrameHeader { fin: true, rsv: 0, opcode: Opcode::Binary, mask: Some(key), payload_len: size as u64 };
    let mut hbuf = [0u8; MAX_HEADER_LEN];
    let hlen = header.encode(&mut hbuf);
    let mut v = Vec::with_capacity(hlen + size);
    v.extend_from_slice(&hbuf[..hlen]);
    v.extend_from_slice(&t_ns.to_le_bytes());
    v.extend_from_slice(&round.to_le_bytes());
    v.extend_from_slice(&sender.to_le_bytes());
    v.resize(hlen + size, b'x');
    mask::apply(&mut v[hlen..], key, 0);
    v
}

/// One room member: with `sends`, sends one message per round and waits for all of the round's;
/// otherwise only receives.
async fn client(
    id: usize,
    stream: TcpStream,
    leftover: Vec<u8>,
    size: usize,
    sends: bool,
    shared: &Shared,
) -> Result<(), String> {
    let (mut rd, mut wr) = stream.into_split();
    let key: [u8; 4] = rand::random();
    let mut reader = FrameReader::new(if sends { 64 * 1024 } else { 4096 }.max(size + 2 * MAX_HEADER_LEN), &leftover);
    // Messages seen of the current round and of the next (a faster client may already be there).
    let mut round: u32 = 0;
    let mut seen = [0usize; 2];
    let n = shared.clients;
    if sends {
        wr.write_all(&frame(size, key, shared.now_ns(), round, id as u32)).await.map_err(|e| format!("write: {e}"))?;
    }
    loop {
        let measuring = shared.phase.get() == Stage::Measure;
        let now = shared.now_ns();
        let mut got = 0u64;
        let mut out: Vec<u8> = Vec::new();
        reader.frames(|header, payload| {
            match header.opcode {
                Opcode::Binary | Opcode::Text if payload.len() >= 16 => {
                    got += 1;
                    let t = u64::from_le_bytes(payload[..8].try_into().unwrap_or_default());
                    let r = u32::from_le_bytes(payload[8..12].try_into().unwrap_or_default());
                    if measuring {
                        shared.latency.record(now.saturating_sub(t));
                    }
                    if sends {
                        if r == round {
                            seen[0] += 1;
                        } else if r == round.wrapping_add(1) {
                            seen[1] += 1;
                        } else {
                            return Err(format!("a message of round {r} during round {round}"));
                        }
                        if seen[0] == n {
                            if measuring {
                                let before = shared.rounds.fetch_add(1, Ordering::Relaxed);
                                if before + 1 == shared.target_rounds.load(Ordering::Relaxed) {
                                    shared.done.notify_one();
                                }
                            }
                            round = round.wrapping_add(1);
                            seen = [seen[1], 0];
                            out.extend_from_slice(&frame(size, key, shared.now_ns(), round, id as u32));
                        }
                    }
                }
                Opcode::Binary | Opcode::Text | Opcode::Continuation => {
                    return Err("a message not sent by this bench".into());
                }
                Opcode::Ping => out.extend_from_slice(&masked_control(Opcode::Pong, payload, key)),
                Opcode::Pong => {}
                Opcode::Close => return Err(format!("the server closed the connection: {}", close_reason(payload))),
            }
            Ok(())
        })?;
        if got > 0 {
            shared.delivered.fetch_add(got, Ordering::Relaxed);
            if measuring {
                shared.measured.fetch_add(got, Ordering::Relaxed);
            }
        }
        if shared.phase.get() == Stage::Stop {
            return Ok(());
        }
        if !out.is_empty() {
            wr.write_all(&out).await.map_err(|e| format!("write: {e}"))?;
        }
        reader.fill(&mut rd).await?;
    }
}

/// The publisher: one message every 1/rate seconds; what it receives is discarded.
async fn publish(id: usize, stream: TcpStream, size: usize, rate: f64, shared: &Shared) -> Result<(), String> {
    let (mut rd, mut wr) = stream.into_split();
    let key: [u8; 4] = rand::random();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut round = 0u32;
    while shared.phase.get() != Stage::Stop {
        every.tick().await;
        wr.write_all(&frame(size, key, shared.now_ns(), round, id as u32)).await.map_err(|e| format!("write: {e}"))?;
        round = round.wrapping_add(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_carries_time_round_and_sender() {
        let key = [1, 2, 3, 4];
        let f = frame(20, key, 123_456, 7, 42);
        let (h, hlen) = FrameHeader::decode(&f).unwrap().unwrap();
        assert_eq!(h.payload_len, 20);
        let mut p = f[hlen..].to_vec();
        mask::apply(&mut p, key, 0);
        assert_eq!(u64::from_le_bytes(p[..8].try_into().unwrap()), 123_456);
        assert_eq!(u32::from_le_bytes(p[8..12].try_into().unwrap()), 7);
        assert_eq!(u32::from_le_bytes(p[12..16].try_into().unwrap()), 42);
    }
}
