//! `/pubsub` in `duplex serve`: the JSON pub/sub endpoint of `duplex-pubsub` (protocol in
//! docs/pubsub.md), with serve's connection logs.

use duplex::WebSocket;
use duplex_pubsub::JsonEndpoint;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where `duplex serve` mounts it.
pub const PATH: &str = "/pubsub";

/// Serves connection `id` until it closes, then logs how it closed.
pub async fn session<S: AsyncRead + AsyncWrite + Unpin>(id: u64, mut ws: WebSocket<S>, endpoint: &JsonEndpoint) {
    let result = endpoint.run(&mut ws).await;
    super::log_closed(id, &ws, result.err(), "");
}
