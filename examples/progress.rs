//! The progress-and-logs demo on its own: start a job, and everyone on the page watches its output
//! lines and progress bar live. The same code `duplex serve` mounts at `/progress`
//! (`crates/duplex-apps`).
//!
//! ```text
//! cargo run --release --example progress -- [--port 8080] [--bind 127.0.0.1] [--command 'NAME=PROGRAM ARG…']…
//! ```
//!
//! The jobs are the simulated `build`, `test` and `deploy`, plus each `--command`: an allow-list
//! fixed here, at start-up. `--command 'disk=df -h'` lets viewers run `df -h` (no shell; the
//! words are split on spaces) by its name `disk`; what a client sends is never run.

use duplex_apps::{progress, standalone};
use duplex_pubsub::PubSub;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let (addr, rest) = standalone::address_from_args();
    let mut specs = progress::JobSpec::simulated();
    let mut rest = rest.into_iter();
    while let Some(arg) = rest.next() {
        let spec = match (arg.as_str(), rest.next()) {
            ("--command", Some(spec)) => progress::JobSpec::parse_command(&spec),
            _ => Err(format!("unexpected argument {arg:?}; usage: [--command 'NAME=PROGRAM ARG…']…")),
        };
        match spec {
            Ok(s) if specs.iter().any(|t| t.name() == s.name()) => {
                eprintln!("progress: there is already a job called {}", s.name());
                std::process::exit(2);
            }
            Ok(s) => specs.push(s),
            Err(e) => {
                eprintln!("progress: {e}");
                std::process::exit(2);
            }
        }
    }
    let jobs = progress::Jobs::new(PubSub::new(), specs);
    standalone::serve(addr, "progress", progress::PAGE, jobs).await
}
