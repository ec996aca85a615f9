//! The multiplayer demo on its own: a shared world the server owns; every client sends its pointer,
//! the server moves the dots and sends everyone a snapshot 30 times a second. The same code
//! `duplex serve` mounts at `/multiplayer` (`crates/duplex-apps`).
//!
//! ```text
//! cargo run --release --example multiplayer -- [--port 8080] [--bind 127.0.0.1]
//! ```

use duplex_apps::{multiplayer, standalone};
use duplex_pubsub::PubSub;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let (addr, rest) = standalone::address_from_args();
    standalone::no_other_args(&rest);
    let world = multiplayer::World::start(PubSub::new());
    standalone::serve(addr, "multiplayer", multiplayer::PAGE, world).await
}
