//! The chat demo on its own: rooms, nicknames, join and leave notices, the last 50 messages of a
//! room replayed on joining. The same code `duplex serve` mounts at `/chat` (`crates/duplex-apps`).
//!
//! ```text
//! cargo run --release --example chat -- [--port 8080] [--bind 127.0.0.1]
//! ```
//!
//! Then open http://127.0.0.1:8080/ in two windows.

use duplex_apps::{chat, standalone};
use duplex_pubsub::PubSub;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let (addr, rest) = standalone::address_from_args();
    standalone::no_other_args(&rest);
    let chat = chat::Chat::new(PubSub::new());
    standalone::serve(addr, "chat", chat::PAGE, chat).await
}
