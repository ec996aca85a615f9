//! `duplex bench echo`: N connections × K messages in flight × S bytes against an echo server.
//!
//! Each connection's frame is built and masked once; per message only the sequence number at the
//! front of the payload (up to 16 hex digits, so text frames stay valid UTF-8) is written into the
//! masked frame. Small frames of one wake-up leave in one write. Every echo is checked: opcode,
//! length, sequence number and the rest of the payload byte for byte (fragmented echoes are
//! compared piece by piece). Round-trip latency is measured from the write of a frame to the
//! arrival of its echo's last byte.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duplex::{ClientStream, WebSocket};
use duplex_proto::frame::Opcode;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::Notify;

mod compressed;
mod message;

use super::wire::{close_reason, masked_control, FrameReader, Phase, Stage};
use super::{human_ns, human_size, parse_size, thousands, Histogram, Json, Progress, Target};
use crate::{exit, parse_duration};
use message::{template, Checker, Plan, Sender};

/// Options of `duplex bench echo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The echo server's URL (ws:// only).
    #[arg(long, default_value = "ws://127.0.0.1:9001")]
    url: String,
    /// Connections to open.
    #[arg(short = 'c', long, default_value_t = 100)]
    connections: usize,
    /// Messages in flight per connection (1 = send the next message when the echo arrives).
    #[arg(short = 'k', long, default_value_t = 1)]
    in_flight: usize,
    /// Payload bytes per message: 20, 1k, 16KiB, 1MiB ...
    #[arg(short = 's', long, default_value = "20", value_parser = parse_size)]
    size: usize,
    /// How long to measure, after the warm-up (5s, 500ms, 1m).
    #[arg(short = 'd', long, value_parser = parse_duration, conflicts_with = "messages")]
    duration: Option<Duration>,
    /// Measure until this many echoes have arrived (instead of --duration), after the warm-up.
    #[arg(short = 'm', long)]
    messages: Option<u64>,
    /// Load sent before measuring starts (not counted).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Send text frames (the payload is ASCII) instead of binary ones.
    #[arg(long)]
    text: bool,
    /// Offer permessage-deflate (the library's default offer) and send fresh JSON text of about
    /// --size bytes per message (quotes with random prices, shaped like a live feed), checking
    /// each echo; fails if the server declines the extension.
    #[arg(long, conflicts_with = "text")]
    deflate: bool,
    /// PID of the server: report its CPU seconds (utime + stime) over the measured interval and
    /// the messages per server CPU-second.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Handshakes in progress at once while connecting.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Only print the JSON line on stdout (the progress line still goes to stderr).
    #[arg(long)]
    json: bool,
}

/// A connection after its handshake.
enum Opened {
    /// The raw-frame client: the stream and what arrived after the 101.
    Raw(TcpStream, Vec<u8>),
    /// `--deflate`: a library client with permessage-deflate negotiated.
    Compressed(Box<WebSocket<ClientStream>>),
}

/// What the connection tasks share with the coordinator.
struct Shared {
    phase: Phase,
    /// Echoes verified, since the start (warm-up included).
    completed: AtomicU64,
    /// `completed` value that ends a --messages run.
    target: AtomicU64,
    done: Notify,
    latency: Histogram,
    /// The first failures (verification or I/O), for the report.
    errors: Mutex<Vec<String>>,
    failed: AtomicU64,
}

impl Shared {
    fn fail(&self, conn: usize, e: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.len() < 5 {
            errors.push(format!("connection {conn}: {e}"));
        }
        // A failed connection ends a --messages run early rather than let it wait forever.
        self.done.notify_one();
    }
}

/// Runs the echo benchmark; `Ok` carries the exit code.
pub async fn run(args: Args) -> Result<u8, String> {
    let target = Target::parse(&args.url)?;
    if args.connections == 0 || args.in_flight == 0 {
        return Err("--connections and --in-flight must be at least 1".into());
    }
    super::check_pid(args.server_pid)?;
    let limit = super::raise_nofile_limit();
    if args.connections as u64 + 32 > limit {
        return Err(format!("{} connections need more file descriptors than the limit of {limit}", args.connections));
    }
    let duration = match (args.duration, args.messages) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let mut progress = Progress::new();

    // Connect.
    let opened = Arc::new(AtomicU64::new(0));
    let connecting = tokio::spawn({
        let (target, opened) = (target.clone(), opened.clone());
        let (n, c) = (args.connections, args.connect_concurrency);
        let deflate = args.deflate;
        async move {
            if deflate {
                let conns = compressed::open_many(&target.url, n, c, opened).await;
                conns.into_iter().map(|r| r.map(|ws| Opened::Compressed(Box::new(ws)))).collect::<Vec<_>>()
            } else {
                let conns = super::open_many(&target, n, c, opened).await;
                conns.into_iter().map(|r| r.map(|(s, leftover)| Opened::Raw(s, leftover))).collect()
            }
        }
    });
    let t_connect = Instant::now();
    let streams = super::with_connect_progress(connecting, &opened, args.connections, &mut progress).await?;
    let connect_secs = super::secs_since(t_connect);
    let mut conns = Vec::with_capacity(streams.len());
    for (i, r) in streams.into_iter().enumerate() {
        match r {
            Ok(s) => conns.push(s),
            Err(e) => {
                progress.finish();
                return Err(format!("connection {i} of {}: {e}", args.connections));
            }
        }
    }

    // Load.
    let shared = Arc::new(Shared {
        phase: Phase::default(),
        completed: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        done: Notify::new(),
        latency: Histogram::default(),
        errors: Mutex::new(Vec::new()),
        failed: AtomicU64::new(0),
    });
    let plan = Arc::new(Plan { size: args.size, in_flight: args.in_flight, text: args.text });
    let mut tasks = Vec::with_capacity(conns.len());
    for (i, opened) in conns.into_iter().enumerate() {
        let (shared, plan) = (shared.clone(), plan.clone());
        tasks.push(tokio::spawn(async move {
            let r = match opened {
                Opened::Raw(stream, leftover) => connection(i, stream, leftover, &plan, &shared).await,
                Opened::Compressed(ws) => compressed::connection(i, *ws, plan.size, plan.in_flight, &shared).await,
            };
            if let Err(e) = r {
                if shared.phase.get() != Stage::Stop {
                    shared.fail(i, e);
                }
            }
        }));
    }

    let rate = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let mut last = (Instant::now(), 0u64);
    let line = |phase: &str, progress: &mut Progress, last: &mut (Instant, u64), extra: &str| {
        let n = shared.completed.load(Ordering::Relaxed);
        let now = Instant::now();
        let r = rate(n - last.1, (now - last.0).as_secs_f64());
        *last = (now, n);
        progress.update(&format!("{phase}: {} msgs/s{extra}", thousands(r)));
    };

    // Warm-up.
    let warm_end = Instant::now() + args.warmup;
    while Instant::now() < warm_end && shared.failed.load(Ordering::Relaxed) == 0 {
        let wait = (warm_end - Instant::now()).min(Duration::from_secs(1));
        tokio::time::sleep(wait).await;
        line("warm-up", &mut progress, &mut last, "");
    }

    // Measure.
    let cpu0 = args.server_pid.and_then(super::cpu_seconds);
    let own0 = super::own_cpu_seconds();
    let n0 = shared.completed.load(Ordering::Relaxed);
    let t0 = Instant::now();
    if let Some(m) = args.messages {
        shared.target.store(n0.saturating_add(m), Ordering::Relaxed);
    }
    shared.phase.set(Stage::Measure);
    let deadline = duration.map(|d| t0 + d);
    // Without --duration the run ends on the message count; the sleep below then never fires.
    let sleep_until = tokio::time::Instant::from_std(deadline.unwrap_or(t0 + Duration::from_secs(86_400 * 365)));
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        if shared.failed.load(Ordering::Relaxed) > 0 {
            break;
        }
        if let Some(m) = args.messages {
            if shared.completed.load(Ordering::Relaxed) >= n0.saturating_add(m) {
                break;
            }
        }
        tokio::select! {
            _ = tick.tick() => {
                let extra = match (deadline, args.messages) {
                    (Some(_), _) => format!(" ({:.0}s/{:.0}s)", t0.elapsed().as_secs_f64(), duration.unwrap_or_default().as_secs_f64()),
                    (None, Some(m)) => format!(" ({}/{})", shared.completed.load(Ordering::Relaxed) - n0, m),
                    _ => String::new(),
                };
                line("measuring", &mut progress, &mut last, &extra);
            }
            _ = tokio::time::sleep_until(sleep_until) => break,
            _ = shared.done.notified() => {}
        }
    }
    let elapsed = super::secs_since(t0);
    let n1 = shared.completed.load(Ordering::Relaxed);
    let cpu1 = args.server_pid.and_then(super::cpu_seconds);
    let own1 = super::own_cpu_seconds();
    shared.phase.set(Stage::Stop);
    progress.finish();

    // Stop: tasks end at their next echo; those still waiting after a moment are aborted.
    let grace = tokio::time::Instant::now() + Duration::from_secs(2);
    for t in &mut tasks {
        if tokio::time::timeout_at(grace, &mut *t).await.is_err() {
            t.abort();
        }
    }

    // Report.
    let msgs = n1 - n0;
    let msgs_per_s = rate(msgs, elapsed);
    let mb_per_s = msgs_per_s * args.size as f64 / 1e6;
    let server_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let own_cpu = match (own0, own1) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let per_cpu = server_cpu.filter(|c| *c > 0.0).map(|c| msgs as f64 / c);
    let h = &shared.latency;
    let (p50, p99, p999, max) = (h.quantile(0.5), h.quantile(0.99), h.quantile(0.999), h.max());
    let failed = shared.failed.load(Ordering::Relaxed);
    let errors = shared.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();

    if !args.json {
        let kind = match (args.deflate, args.text) {
            (true, _) => "JSON text, permessage-deflate",
            (false, true) => "text",
            (false, false) => "binary",
        };
        println!(
            "duplex bench echo: {}, {} connections × {} in flight × {} {kind}",
            target.url,
            args.connections,
            args.in_flight,
            human_size(args.size)
        );
        println!(
            "connected  {} connections in {:.2} s; measured {:.2} s after a {:.1} s warm-up",
            args.connections,
            connect_secs,
            elapsed,
            args.warmup.as_secs_f64()
        );
        println!(
            "throughput {} msgs/s, {:.2} MB/s of payload each way ({} echoes)",
            thousands(msgs_per_s),
            mb_per_s,
            thousands(msgs as f64)
        );
        println!(
            "latency    p50 {}, p99 {}, p99.9 {}, max {} (round trip)",
            human_ns(p50),
            human_ns(p99),
            human_ns(p999),
            human_ns(max)
        );
        if let (Some(pid), Some(c)) = (args.server_pid, server_cpu) {
            println!(
                "server     pid {pid}: {c:.2} CPU-s ({:.0}% of one core), {} msgs per server CPU-second",
                100.0 * c / elapsed,
                per_cpu.map(thousands).unwrap_or_else(|| "-".into())
            );
        }
        if let Some(c) = own_cpu {
            println!(
                "bench      {c:.2} CPU-s ({:.0}% of one core){}",
                100.0 * c / elapsed,
                if c / elapsed > 0.9 { ": the bench may be the bottleneck" } else { "" }
            );
        }
        if failed == 0 {
            if args.deflate {
                println!("verified   every echo: inflated, and the same text as the message sent");
            } else {
                println!("verified   every echo: opcode, length, sequence number and payload bytes");
            }
        } else {
            println!("FAILED     {failed} connection(s):");
            for e in &errors {
                println!("           {e}");
            }
        }
    } else {
        for e in &errors {
            eprintln!("duplex bench: {e}");
        }
    }
    let mut j = Json::default();
    j.str("mode", "echo")
        .str("url", &target.url)
        .int("connections", args.connections as u64)
        .int("in_flight", args.in_flight as u64)
        .int("size", args.size as u64)
        .bool("text", args.text || args.deflate)
        .bool("deflate", args.deflate)
        .num("warmup_s", args.warmup.as_secs_f64())
        .num("duration_s", elapsed)
        .num("connect_s", connect_secs)
        .int("messages", msgs)
        .num("msgs_per_s", msgs_per_s)
        .num("mb_per_s", mb_per_s)
        .num("latency_p50_us", p50 as f64 / 1e3)
        .num("latency_p99_us", p99 as f64 / 1e3)
        .num("latency_p999_us", p999 as f64 / 1e3)
        .num("latency_max_us", max as f64 / 1e3);
    match args.server_pid {
        Some(pid) => j.int("server_pid", u64::from(pid)),
        None => j.opt("server_pid", None),
    };
    j.opt("server_cpu_s", server_cpu)
        .opt("msgs_per_server_cpu_s", per_cpu)
        .opt("bench_cpu_s", own_cpu)
        .int("failed_connections", failed)
        .bool("verified", failed == 0);
    println!("{}", j.finish());
    Ok(if failed == 0 { exit::OK } else { exit::FAILURE })
}

// ============================================================================ one connection

async fn connection(
    conn: usize,
    stream: TcpStream,
    leftover: Vec<u8>,
    plan: &Plan,
    shared: &Shared,
) -> Result<(), String> {
    let (mut rd, mut wr) = stream.into_split();
    let mut sender = Sender::new(plan, conn);
    let mut checker = Checker {
        expected: template(plan.size, conn),
        seq_len: sender.seq_len,
        opcode: if plan.text { Opcode::Text } else { Opcode::Binary },
        next_seq: 0,
        offset: 0,
        in_message: false,
    };
    // Room for a whole echo frame plus the next read.
    let mut reader = FrameReader::new((sender.frame.len() + 64 * 1024).max(128 * 1024), &leftover);
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(plan.in_flight);

    sender.queued = plan.in_flight;
    let mut pongs: Vec<u8> = Vec::new();
    loop {
        // Check every complete echo in the buffer.
        let now = Instant::now();
        let measuring = shared.phase.get() == Stage::Measure;
        let mut completed = 0u64;
        reader.frames(|header, payload| {
            match header.opcode {
                Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                    if checker.data(header, payload)? {
                        completed += 1;
                        let t = sent.pop_front().ok_or("an echo of a message that was not sent")?;
                        if measuring {
                            shared.latency.record(now.saturating_duration_since(t).as_nanos() as u64);
                        }
                    }
                }
                Opcode::Ping => pongs.extend_from_slice(&masked_control(Opcode::Pong, payload, sender.key)),
                Opcode::Pong => {}
                Opcode::Close => return Err(format!("the server closed the connection: {}", close_reason(payload))),
            }
            Ok(())
        })?;
        if completed > 0 {
            let before = shared.completed.fetch_add(completed, Ordering::Relaxed);
            let target = shared.target.load(Ordering::Relaxed);
            if before < target && before + completed >= target {
                shared.done.notify_one();
            }
        }
        if shared.phase.get() == Stage::Stop {
            let _ = wr.write_all(&masked_control(Opcode::Close, &1000u16.to_be_bytes(), sender.key)).await;
            return Ok(());
        }

        // Send one message per echo, then write what is ready.
        sender.queued += completed as usize;
        if !pongs.is_empty() {
            wr.write_all(&pongs).await.map_err(|e| format!("write: {e}"))?;
            pongs.clear();
        }
        let now = Instant::now();
        sender.refill(&mut sent, now);
        while sender.busy {
            match wr.try_write(sender.pending()) {
                Ok(n) => {
                    sender.advance(n);
                    sender.refill(&mut sent, now);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("write: {e}")),
            }
        }

        // Wait for the echo (and, with output left over, for room to write it).
        if sender.has_output() {
            tokio::select! {
                r = reader.fill(&mut rd) => r?,
                r = write_some(&mut wr, &mut sender, &mut sent) => r?,
            }
        } else {
            reader.fill(&mut rd).await?;
        }
    }
}

/// Waits until the socket takes more of the pending output.
async fn write_some(wr: &mut OwnedWriteHalf, sender: &mut Sender, sent: &mut VecDeque<Instant>) -> Result<(), String> {
    sender.refill(sent, Instant::now());
    let n = wr.write(sender.pending()).await.map_err(|e| format!("write: {e}"))?;
    sender.advance(n);
    Ok(())
}
