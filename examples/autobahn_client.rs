//! The client side of the Autobahn|TestSuite: connects to a `fuzzingserver`, runs every case by
//! echoing what the server sends, then asks it to write its reports.
//!
//! ```text
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001 duplex
//! ```

use duplex::{Client, Config};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let agent = args.next().unwrap_or_else(|| "duplex".into());
    let base = base.trim_end_matches('/');

    let mut ws = duplex::connect(&format!("{base}/getCaseCount")).await?;
    let count: u32 = match ws.recv().await {
        Some(Ok(m)) => m.as_text().unwrap_or("0").trim().parse()?,
        other => return Err(format!("no case count from the fuzzing server: {other:?}").into()),
    };
    while ws.recv().await.is_some() {}
    eprintln!("running {count} cases as agent {agent:?}");

    let client = Client::new().config(Config::default());
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        let mut ws = match client.connect(&url).await {
            Ok((ws, _)) => ws,
            Err(e) => {
                eprintln!("case {case}: cannot connect: {e}");
                continue;
            }
        };
        while let Some(msg) = ws.recv().await {
            match msg {
                Ok(m) => {
                    // Replies to a burst leave in one write, after the last of them.
                    let sent = match ws.feed(m).await {
                        Ok(()) if !ws.has_pending_events() => ws.flush().await,
                        other => other,
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if case % 50 == 0 || case == count {
            eprintln!("{case}/{count} cases done");
        }
    }

    let mut ws = duplex::connect(&format!("{base}/updateReports?agent={agent}")).await?;
    while ws.recv().await.is_some() {}
    eprintln!("reports updated");
    Ok(())
}
