//! The live feed demo on its own: a simulated price and the machine's load average, sampled 4
//! times a second, published on a topic and drawn as a live chart. The same code `duplex serve`
//! mounts at `/feed` (`crates/duplex-apps`).
//!
//! ```text
//! cargo run --release --example feed -- [--port 8080] [--bind 127.0.0.1]
//! ```

use duplex_apps::{feed, standalone};
use duplex_pubsub::PubSub;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let (addr, rest) = standalone::address_from_args();
    standalone::no_other_args(&rest);
    let feed = feed::Feed::start(PubSub::new());
    standalone::serve(addr, "feed", feed::PAGE, feed).await
}
