//! `duplex bench connections`: opens N idle WebSocket connections and holds them: the connect rate,
//! and with `--server-pid` what each connection costs the server in resident memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{thousands, Json, Progress, Target};
use crate::{exit, parse_duration};

/// Options of `duplex bench connections`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The server's URL (ws:// only).
    #[arg(long, default_value = "ws://127.0.0.1:9001")]
    url: String,
    /// Connections to open (the bench raises its open-file limit to the hard limit, and needs one
    /// descriptor per connection).
    #[arg(short = 'n', long, default_value_t = 1000)]
    count: usize,
    /// PID of the server: report its RSS (VmRSS) before and after, and per connection.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// How long to hold the connections open, idle, before measuring the server's RSS again and
    /// closing them.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    hold: Duration,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Only print the JSON line on stdout (the progress line still goes to stderr).
    #[arg(long)]
    json: bool,
}

/// Runs the connection benchmark; `Ok` carries the exit code.
pub async fn run(args: Args) -> Result<u8, String> {
    let target = Target::parse(&args.url)?;
    super::check_pid(args.server_pid)?;
    let limit = super::raise_nofile_limit();
    if args.count as u64 + 32 > limit {
        return Err(format!(
            "{} connections need more file descriptors than this process may open ({limit}, the hard limit); \
             raise it with `ulimit -Hn` as root or open fewer",
            args.count
        ));
    }
    let mut progress = Progress::new();
    let rss_before = args.server_pid.and_then(super::rss_kib);

    let opened = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let connecting = tokio::spawn({
        let (target, opened) = (target.clone(), opened.clone());
        let (n, c) = (args.count, args.concurrency);
        async move { super::open_many(&target, n, c, opened).await }
    });
    tokio::pin!(connecting);
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    let results = loop {
        tokio::select! {
            r = &mut connecting => break r.map_err(|e| e.to_string())?,
            _ = tick.tick() => {
                let n = opened.load(Ordering::Relaxed);
                progress.update(&format!("connecting: {}/{} open, {} per second",
                    n, args.count, thousands(n as f64 / super::secs_since(t0))));
            }
        }
    };
    let connect_secs = super::secs_since(t0);
    let mut streams = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok((s, _)) => streams.push(s),
            Err(e) => errors.push(e),
        }
    }
    let ok = streams.len();
    let rss_opened = args.server_pid.and_then(super::rss_kib);

    // Hold, idle.
    let hold_end = Instant::now() + args.hold;
    while Instant::now() < hold_end {
        let left = hold_end - Instant::now();
        progress.update(&format!("holding {ok} connections: {:.0}s left", left.as_secs_f64()));
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
    }
    let rss_after = args.server_pid.and_then(super::rss_kib);
    // Still open: nothing to read and no end of stream.
    let alive = streams
        .iter()
        .filter(|s| {
            let mut b = [0u8; 1];
            matches!(s.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    progress.finish();
    drop(streams);

    let rate = ok as f64 / connect_secs.max(1e-9);
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if ok > 0 => Some((a as f64 - b as f64) / ok as f64),
        _ => None,
    };
    if !args.json {
        println!(
            "duplex bench connections: {}, {} idle connections held {:.1} s",
            target.url,
            args.count,
            args.hold.as_secs_f64()
        );
        println!(
            "connected  {ok} in {connect_secs:.2} s: {} connections/s (handshake included, {} at a time)",
            thousands(rate),
            args.concurrency
        );
        if !errors.is_empty() {
            println!("FAILED     {} connection(s), first: {}", errors.len(), errors[0]);
        }
        println!("alive      {alive} of {ok} after the hold");
        if let (Some(pid), Some(b), Some(a)) = (args.server_pid, rss_before, rss_after) {
            println!(
                "server     pid {pid}: RSS {b} KiB before, {} KiB when connected, {a} KiB after the hold: \
                 {:.2} KiB per connection",
                rss_opened.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                per_conn.unwrap_or(f64::NAN)
            );
        }
    } else {
        for e in errors.iter().take(5) {
            eprintln!("duplex bench: {e}");
        }
    }
    let rss = |v: Option<u64>| v.map(|v| v as f64);
    let mut j = Json::default();
    j.str("mode", "connections")
        .str("url", &target.url)
        .int("count", args.count as u64)
        .int("opened", ok as u64)
        .int("failed", errors.len() as u64)
        .int("alive", alive as u64)
        .num("connect_s", connect_secs)
        .num("connects_per_s", rate)
        .num("hold_s", args.hold.as_secs_f64());
    match args.server_pid {
        Some(pid) => j.int("server_pid", u64::from(pid)),
        None => j.opt("server_pid", None),
    };
    j.opt("server_rss_before_kib", rss(rss_before))
        .opt("server_rss_connected_kib", rss(rss_opened))
        .opt("server_rss_after_kib", rss(rss_after))
        .opt("rss_per_conn_kib", per_conn);
    println!("{}", j.finish());
    Ok(if errors.is_empty() && alive == ok { exit::OK } else { exit::FAILURE })
}
