//! The `duplex` command line.

mod apps;
mod bench;
mod connect;
mod console;
mod echo;
mod limit_args;
mod metrics_args;
#[cfg(feature = "metrics")]
mod prometheus;
mod pubsub_args;
mod pubsub_cli;
mod relay;
mod serve;
mod server_args;
mod signals;
mod tls_args;
mod trim;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Exit codes, as documented in `--help`.
mod exit {
    /// The command finished normally (for `connect`: the connection closed with 1000 or 1001).
    pub const OK: u8 = 0;
    /// The command failed: could not bind, connect, or complete the handshake.
    pub const FAILURE: u8 = 1;
    /// Bad usage (clap's own code).
    #[allow(dead_code)]
    pub const USAGE: u8 = 2;
    /// `connect`: the connection ended abnormally or with a close code other than 1000/1001.
    pub const ABNORMAL_CLOSE: u8 = 3;
}

const AFTER_HELP: &str = "\
Exit status:
  0  finished normally (connect: the connection closed with 1000 or 1001)
  1  failed: could not bind, connect or complete the handshake
  2  bad usage
  3  connect: the connection closed abnormally or with another close code

Logs go to stderr (filter with RUST_LOG, e.g. RUST_LOG=debug); data goes to stdout.";

/// duplex: a WebSocket toolkit — server, client and load tools for RFC 6455.
#[derive(Parser, Debug)]
#[command(name = "duplex", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// Worker threads of the runtime. Default: one per CPU this process may run on (so
    /// `taskset -c 0 duplex ...` runs on one thread); with 1, every task runs on the main thread.
    #[arg(long, global = true, value_name = "N", env = "DUPLEX_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the demo: a page at / and, for every WebSocket connection, timed pushes of
    /// `Message <n>` and a log of what it sends. Lines typed on stdin go to the connections
    /// (`/help` lists the console commands). WebSockets to /pubsub speak the JSON pub/sub protocol
    /// instead (docs/pubsub.md). The pub/sub demos are at /chat, /feed, /multiplayer and /progress
    /// (docs/demos.md).
    #[command(after_help = AFTER_HELP)]
    Serve(serve::Args),
    /// Echo every message back unchanged (for conformance tests and benchmarks).
    #[command(after_help = AFTER_HELP)]
    Echo(echo::Args),
    /// Connect to a WebSocket URL: print what arrives, send each line of stdin.
    #[command(after_help = AFTER_HELP)]
    Connect(connect::Args),
    /// Relay rooms: every message a client sends goes, unchanged, to every client connected to
    /// the same URL path (its room), the sender included unless --no-echo.
    #[command(after_help = AFTER_HELP)]
    Relay(relay::Args),
    /// `/pubsub` clients over several nodes: `pubsub pub` publishes numbered messages until each
    /// is acknowledged, `pubsub sub` subscribes (resuming after failovers) and with --verify-seq
    /// checks nothing was lost or duplicated (docs/pubsub.md).
    #[command(after_help = pubsub_cli::AFTER_HELP)]
    Pubsub(pubsub_cli::Args),
    /// Load generators: `bench echo` (throughput, latency, server CPU) and `bench connections`
    /// (connect rate, server memory per idle connection).
    Bench(bench::Args),
}

/// Parses `5s`, `500ms`, `2m`, `1.5s` or a bare number of seconds; `0` means off.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 5s, 500ms or 2m"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "sec" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => return Err(format!("unknown unit {u:?} in {s:?}: use ms, s, m or h")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Logs to stderr: RUST_LOG's filter, or `info` (`debug` for duplex's own messages when `verbose`).
fn init_logging(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if verbose { "info,duplex=debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a terminal: logs piped to a file or a test stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}

/// The tokio runtime: `threads` workers, or a single-threaded one when that is 1 (no work
/// stealing, no wake-ups across threads: the cheapest on one core).
fn runtime(threads: Option<u16>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = match threads {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(&cli.command, Command::Connect(a) if a.verbose()));
    let runtime = match runtime(cli.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("duplex: cannot start the runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Echo(args) => echo::run(args).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Relay(args) => relay::run(args).await,
            Command::Pubsub(args) => pubsub_cli::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    // stdin readers may still be blocked in a thread: do not wait for them.
    runtime.shutdown_background();
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_is_a_current_thread_runtime() {
        use tokio::runtime::RuntimeFlavor;
        assert_eq!(runtime(Some(1)).unwrap().handle().runtime_flavor(), RuntimeFlavor::CurrentThread);
        assert_eq!(runtime(Some(2)).unwrap().handle().runtime_flavor(), RuntimeFlavor::MultiThread);
        assert!(Cli::try_parse_from(["duplex", "--threads", "0", "echo"]).is_err());
        let cli = Cli::try_parse_from(["duplex", "echo", "--threads", "3"]).unwrap();
        assert_eq!(cli.threads, Some(3));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
