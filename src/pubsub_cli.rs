//! `duplex pubsub pub` and `duplex pubsub sub`: a publisher and subscribers of the `/pubsub`
//! protocol over several nodes, on [`duplex_pubsub::PubSubClient`] (resume from positions,
//! publishes retried with their ids until acknowledged). With `--verify-seq` the subscriber checks
//! what arrived: every publisher's `seq` once, in order; offsets consecutive.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use duplex_pubsub::client::{ClientEvent, PubSubClient, Resumed};
use duplex_pubsub::Position;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{exit, parse_duration};

/// Exit codes of `pubsub sub` and `pubsub pub`.
pub const AFTER_HELP: &str = "\
Exit status:
  0  finished: (sub --verify-seq) nothing lost, duplicated or out of order;
     (pub) every publish acknowledged
  1  sub --verify-seq: something was lost, duplicated or out of order (the summary says what);
     pub: publishes still unacknowledged after --ack-timeout; or bad options
  2  bad usage

Logs (connections, failovers, resumes) go to stderr; data and summaries go to stdout.
Reproduce a node kill by hand: docs/pubsub.md, \"Failover by hand\".";

/// `duplex pubsub …`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Publish `{"pub":NAME,"seq":1,…}`, `seq` 2, … to a topic at a steady rate, each with the id
    /// NAME-seq, sent again (after a failover to the next URL, or a refusal) until acknowledged;
    /// ends when every publish is acknowledged.
    #[command(after_help = AFTER_HELP)]
    Pub(PubArgs),
    /// Subscribe to a topic from one or more connections, each resuming from its position on the
    /// next URL after a drop; print deliveries (--json) or check them (--verify-seq).
    #[command(after_help = AFTER_HELP)]
    Sub(SubArgs),
}

/// Options shared by `pub` and `sub`.
#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// The `/pubsub` URLs of the nodes (`ws://127.0.0.1:8081/pubsub ws://127.0.0.1:8082/pubsub`):
    /// after a drop, the next attempt goes to the next one.
    #[arg(required = true, value_name = "URL")]
    urls: Vec<String>,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// Send a ping after this long without receiving anything (`2s`); `0`: no pings.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    keepalive: Duration,
    /// With --keepalive: how long to wait for any answer before the node counts as gone and the
    /// client fails over.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pong_timeout: Duration,
}

impl Common {
    fn client(&self) -> duplex::Client {
        let ping = (!self.keepalive.is_zero()).then_some(self.keepalive);
        duplex::Client::new().config(duplex::Config::default().keepalive(ping, self.pong_timeout))
    }
}

#[derive(clap::Args, Debug)]
struct PubArgs {
    #[command(flatten)]
    common: Common,
    /// Publishes per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How many to publish (default: rate × --duration, or 1000).
    #[arg(long)]
    count: Option<u64>,
    /// Publish for this long instead of --count (`30s`).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", conflicts_with = "count")]
    duration: Option<Duration>,
    /// Bytes of padding in each payload (`"pad":"xxx…"`).
    #[arg(long, default_value_t = 0)]
    size: usize,
    /// The publisher's name: `pub` in the payload, and the prefix of the ids (NAME-seq). Ids
    /// are remembered by the server for its publish-id window: use a new name for each run.
    /// Default: random.
    #[arg(long)]
    name: Option<String>,
    /// Print every acknowledgement as a JSON line.
    #[arg(long)]
    json: bool,
    /// After the last publish, how long to wait for the outstanding acknowledgements.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    ack_timeout: Duration,
}

#[derive(clap::Args, Debug)]
struct SubArgs {
    #[command(flatten)]
    common: Common,
    /// Subscribing connections, spread over the URLs (connection i starts at URL i mod n).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Resume from this position (`41:k3J9`) instead of from now.
    #[arg(long, value_name = "OFFSET:EPOCH")]
    since: Option<Position>,
    /// Print every delivery as a JSON line (`{"topic":…,"data":…,"offset":…,"epoch":…}`).
    #[arg(long)]
    json: bool,
    /// Check the deliveries: each publisher's `data.seq` (keyed by `data.pub`) exactly once and in
    /// order, offsets consecutive; end with a summary, exit 1 on any loss, duplicate or disorder.
    #[arg(long)]
    verify_seq: bool,
    /// With --verify-seq: stop once every connection has seq 1..=N of --publishers publishers
    /// (and count what is missing of 1..=N as lost).
    #[arg(long, value_name = "N")]
    expect: Option<u64>,
    /// With --expect: how many publishers.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Stop after this long (default: with --expect, when complete; otherwise at Ctrl-C).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
}

pub async fn run(args: Args) -> u8 {
    match args.command {
        Command::Pub(a) => publish(a).await,
        Command::Sub(a) => subscribe(a).await,
    }
}

fn stdout_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

fn log_event(who: &str, event: &ClientEvent) {
    match event {
        ClientEvent::Connected(c) if c.connection > 1 => tracing::info!("{who}: connected again, to {}", c.url),
        ClientEvent::Connected(c) => tracing::info!("{who}: connected to {}", c.url),
        ClientEvent::Disconnected(d) if d.was_connected => {
            tracing::warn!("{who}: {}; next: {} in {:.2}s", d.cause, d.next_url, d.retry_in.as_secs_f64())
        }
        ClientEvent::Disconnected(d) => {
            tracing::debug!("{who}: {}; next: {} in {:.2}s", d.cause, d.next_url, d.retry_in.as_secs_f64())
        }
        ClientEvent::Stopped(why) => tracing::error!("{who}: {why}"),
        ClientEvent::ServerError(e) => tracing::warn!("{who}: the server says: {e}"),
        ClientEvent::PublishFailed { id, error } => tracing::error!("{who}: publish {id} refused: {error}"),
        ClientEvent::Refused { what, error } => tracing::debug!("{who}: {what} refused for now ({error}): retrying"),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// pub

async fn publish(args: PubArgs) -> u8 {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        tracing::error!("--rate must be a positive number of publishes per second");
        return exit::FAILURE;
    }
    let count = match (args.count, args.duration) {
        (Some(n), _) => n,
        (None, Some(d)) => (d.as_secs_f64() * args.rate).round() as u64,
        (None, None) => 1000,
    };
    let name = args.name.clone().unwrap_or_else(|| format!("p{:06x}", rand::random::<u32>() & 0xff_ffff));
    let mut client =
        PubSubClient::builder(args.common.urls.clone()).client(args.common.client()).id_prefix(name.clone()).build();
    let pad = "x".repeat(args.size);
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    let mut seq = 0u64;
    let (mut acked, mut duplicates, mut refused, mut last_acked) = (0u64, 0u64, 0u64, 0u64);
    let mut acked_seqs = vec![false; count as usize + 1];
    let mut ack_deadline: Option<Instant> = None;
    let mut ticker = tokio::time::interval_at(start, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut last_report = Instant::now();
    tracing::info!("{name}: publishing {count} to {} at {}/s", args.common.topic, args.rate);
    let outcome = loop {
        tokio::select! {
            _ = ticker.tick(), if seq < count => {
                seq += 1;
                let mut data = serde_json::json!({"pub": name, "seq": seq});
                if !pad.is_empty() {
                    data["pad"] = Value::String(pad.clone());
                }
                if let Err(e) = client.publish_with_id(&args.common.topic, &data, format!("{name}-{seq}")) {
                    tracing::error!("{e}");
                    return exit::FAILURE;
                }
                if seq == count {
                    ack_deadline = Some(Instant::now() + args.ack_timeout);
                }
            }
            event = client.next() => {
                let Some(event) = event else { break false };
                log_event(&name, &event);
                match &event {
                    ClientEvent::Acked(a) => {
                        let n: u64 = a.id.rsplit('-').next().and_then(|s| s.parse().ok()).unwrap_or(0);
                        if let Some(slot) = acked_seqs.get_mut(n as usize) {
                            if !*slot {
                                *slot = true;
                                acked += 1;
                            }
                        }
                        duplicates += u64::from(a.duplicate);
                        last_acked = last_acked.max(n);
                        if args.json {
                            let mut line = serde_json::json!({"op":"ack","id":a.id,"seq":n,"duplicate":a.duplicate});
                            if let Some(p) = &a.position {
                                line["offset"] = p.offset.into();
                                line["epoch"] = Value::String(p.epoch.to_string());
                            }
                            stdout_line(&line.to_string());
                        }
                    }
                    ClientEvent::Refused { .. } => refused += 1,
                    ClientEvent::Stopped(_) => break false,
                    _ => {}
                }
                if seq == count && client.unacked() == 0 {
                    break true;
                }
            }
            _ = async { tokio::time::sleep_until(ack_deadline.expect("guarded")).await }, if ack_deadline.is_some() => {
                break false;
            }
            _ = tokio::signal::ctrl_c() => break false,
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            tracing::info!("{name}: published {seq}, acked {acked}, unacknowledged {}", client.unacked());
        }
    };
    let stats = client.stats();
    stdout_line(&format!(
        "{name}: published {seq}, acked {acked} (duplicates {duplicates}), refused {refused}, resent {}, unacknowledged {}, last acked seq {last_acked}, {:.1}s",
        stats.publishes_resent,
        client.unacked(),
        start.elapsed().as_secs_f64()
    ));
    client.close().await;
    if outcome {
        exit::OK
    } else {
        exit::FAILURE
    }
}

// ---------------------------------------------------------------------------------------------
// sub

/// What one connection saw of one publisher.
#[derive(Default)]
struct Seqs {
    /// Whether seq i arrived.
    seen: Vec<bool>,
    distinct: u64,
    last: u64,
    max: u64,
    duplicated: u64,
    out_of_order: u64,
}

impl Seqs {
    fn add(&mut self, seq: u64) {
        let i = seq as usize;
        if self.seen.len() <= i {
            self.seen.resize((i + 1).max(self.seen.len() * 2), false);
        }
        if self.seen[i] {
            self.duplicated += 1;
        } else {
            self.seen[i] = true;
            self.distinct += 1;
        }
        if seq <= self.last {
            self.out_of_order += 1;
        }
        self.last = seq;
        self.max = self.max.max(seq);
    }

    /// Missing of 1..=until.
    fn lost(&self, until: u64) -> u64 {
        (1..=until).filter(|&i| !self.seen.get(i as usize).copied().unwrap_or(false)).count() as u64
    }

    fn complete(&self, n: u64) -> bool {
        self.distinct >= n && self.lost(n) == 0
    }
}

/// One connection's findings.
#[derive(Default)]
struct Report {
    received: u64,
    publishers: HashMap<String, Seqs>,
    no_seq: u64,
    offset_gaps: u64,
    recoveries: u64,
    not_recovered: u64,
    resets: u64,
    catch_ups: Vec<Duration>,
    repeats_dropped: u64,
}

impl Report {
    fn complete(&self, expect: Option<u64>, publishers: usize) -> bool {
        match expect {
            Some(n) => self.publishers.len() >= publishers && self.publishers.values().all(|s| s.complete(n)),
            None => false,
        }
    }
}

async fn subscribe(args: SubArgs) -> u8 {
    if args.connections == 0 {
        tracing::error!("--connections must be at least 1");
        return exit::FAILURE;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    let done = Arc::new(tokio::sync::Semaphore::new(0));
    let args = Arc::new(args);
    let mut tasks = Vec::new();
    for i in 0..args.connections {
        let (args, stop, ready, done) = (args.clone(), stop_rx.clone(), ready.clone(), done.clone());
        tasks.push(tokio::spawn(async move { one_subscriber(i, &args, stop, ready, done).await }));
    }
    let start = Instant::now();
    let all = u32::try_from(args.connections).unwrap_or(u32::MAX);
    {
        let ready = ready.clone();
        let n = args.connections;
        tokio::spawn(async move {
            if ready.acquire_many(all).await.is_ok() {
                tracing::info!("subscribed {n}/{n}");
            }
        });
    }
    let until = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = done.acquire_many(all) => tracing::info!("every connection has everything expected"),
        _ = until => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
    }
    let _ = stop_tx.send(true);
    let mut reports = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            reports.push(r);
        }
    }
    summarize(&args, &reports, start.elapsed())
}

async fn one_subscriber(
    i: usize,
    args: &SubArgs,
    mut stop: watch::Receiver<bool>,
    ready: Arc<tokio::sync::Semaphore>,
    done: Arc<tokio::sync::Semaphore>,
) -> Report {
    let who = format!("sub#{}", i + 1);
    let mut client = PubSubClient::builder(args.common.urls.clone()).client(args.common.client()).start_at(i).build();
    match &args.since {
        Some(p) => client.subscribe_since(&args.common.topic, p.clone()),
        None => client.subscribe(&args.common.topic),
    };
    let mut report = Report::default();
    let mut last_offset: Option<Position> = None;
    let mut away_since: Option<Instant> = None;
    let (mut was_ready, mut was_done) = (false, false);
    loop {
        let event = tokio::select! {
            e = client.next() => e,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(event) = event else { break };
        log_event(&who, &event);
        match event {
            ClientEvent::Message(m) => {
                report.received += 1;
                if let Some(p) = &m.position {
                    if let Some(prev) = &last_offset {
                        if prev.epoch == p.epoch && p.offset != prev.offset + 1 {
                            report.offset_gaps += 1;
                        }
                    }
                    last_offset = Some(p.clone());
                }
                if args.json {
                    let mut line = serde_json::json!({"topic": m.topic, "data": m.data});
                    if let Some(p) = &m.position {
                        line["offset"] = p.offset.into();
                        line["epoch"] = Value::String(p.epoch.to_string());
                    }
                    stdout_line(&line.to_string());
                }
                if args.verify_seq {
                    let publisher = m.data.get("pub").map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
                    match (publisher, m.data.get("seq").and_then(Value::as_u64)) {
                        (Some(p), Some(seq)) => report.publishers.entry(p).or_default().add(seq),
                        _ => report.no_seq += 1,
                    }
                    if !was_done && report.complete(args.expect, args.publishers) {
                        was_done = true;
                        done.add_permits(1);
                    }
                }
            }
            ClientEvent::Subscribed(s) => {
                match &s.resumed {
                    Resumed::Recovered { replayed } => {
                        report.recoveries += 1;
                        if let Some(t) = away_since.take() {
                            report.catch_ups.push(t.elapsed());
                        }
                        tracing::info!("{who}: resumed {} on {}: {replayed} replayed", s.topic, client.url());
                    }
                    Resumed::NotRecovered { reason } => {
                        report.not_recovered += 1;
                        away_since = None;
                        tracing::warn!("{who}: {} not recovered ({reason}): continuing live", s.topic);
                    }
                    Resumed::Reset { reason } => {
                        report.resets += 1;
                        tracing::warn!("{who}: {} reset ({reason}): continuing live", s.topic);
                    }
                    _ => {}
                }
                if !matches!(s.resumed, Resumed::Recovered { .. }) || last_offset.is_none() {
                    // After a reset or an unrecovered resume, offsets go on from the new position.
                    last_offset = s.position.clone().or(last_offset);
                }
                if !was_ready {
                    was_ready = true;
                    ready.add_permits(1);
                }
            }
            ClientEvent::Disconnected(d) if d.was_connected => {
                away_since.get_or_insert_with(Instant::now);
            }
            ClientEvent::Stopped(_) => break,
            _ => {}
        }
    }
    report.repeats_dropped = client.stats().duplicates_dropped;
    client.close().await;
    report
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn summarize(args: &SubArgs, reports: &[Report], elapsed: Duration) -> u8 {
    let sum = |f: &dyn Fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    let received = sum(&|r| r.received);
    if !args.verify_seq {
        stdout_line(&format!("received {received} on {} connections in {:.1}s", reports.len(), elapsed.as_secs_f64()));
        return exit::OK;
    }
    // Each publisher's last seq, as the connections that saw most of it know it.
    let mut last: HashMap<&str, u64> = HashMap::new();
    for r in reports {
        for (p, s) in &r.publishers {
            let e = last.entry(p).or_default();
            *e = (*e).max(s.max);
        }
    }
    let (mut lost, mut duplicated, mut out_of_order) = (0u64, 0u64, 0u64);
    for r in reports {
        for (p, top) in &last {
            let until = args.expect.unwrap_or(*top);
            match r.publishers.get(*p) {
                Some(s) => {
                    lost += s.lost(until);
                    duplicated += s.duplicated;
                    out_of_order += s.out_of_order;
                }
                None => lost += until,
            }
        }
        if let Some(n) = args.expect {
            // A publisher nobody heard of at all.
            lost += n * args.publishers.saturating_sub(last.len().max(r.publishers.len())) as u64;
        }
    }
    let gaps = sum(&|r| r.offset_gaps);
    let mut catch_ups: Vec<Duration> = reports.iter().flat_map(|r| r.catch_ups.iter().copied()).collect();
    catch_ups.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut names: Vec<_> = last.iter().collect();
    names.sort();
    let pubs: Vec<String> = names.iter().map(|(p, n)| format!("{p} up to {n}")).collect();
    stdout_line(&format!(
        "{} connections, {:.1}s; publishers: {}",
        reports.len(),
        elapsed.as_secs_f64(),
        if pubs.is_empty() { "none".to_owned() } else { pubs.join(", ") }
    ));
    stdout_line(&format!(
        "received {received}, lost {lost}, duplicated {duplicated}, out of order {out_of_order}, offset gaps {gaps}, \
         recoveries {}, not recovered {}, resets {}, repeats dropped {}, catch-up p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} catch-ups)",
        sum(&|r| r.recoveries),
        sum(&|r| r.not_recovered),
        sum(&|r| r.resets),
        sum(&|r| r.repeats_dropped),
        ms(percentile(&catch_ups, 0.5)),
        ms(percentile(&catch_ups, 0.99)),
        ms(catch_ups.last().copied().unwrap_or_default()),
        catch_ups.len()
    ));
    let no_seq = sum(&|r| r.no_seq);
    if no_seq > 0 {
        tracing::warn!("{no_seq} deliveries without `pub` and `seq` in their data were not checked");
    }
    if lost + duplicated + out_of_order + gaps > 0 {
        exit::FAILURE
    } else {
        exit::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_count_losses_duplicates_and_disorder() {
        let mut s = Seqs::default();
        for seq in [1, 2, 2, 4, 3, 5] {
            s.add(seq);
        }
        assert_eq!((s.duplicated, s.out_of_order, s.lost(6), s.max), (1, 2, 1, 5));
        assert!(s.complete(5));
        assert!(!s.complete(6));
    }

    #[test]
    fn percentiles() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&d, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
