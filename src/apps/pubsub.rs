//! `/pubsub` in `duplex serve`: the JSON pub/sub endpoint of `duplex-pubsub` (protocol in
//! docs/pubsub.md), as an application of the router.

use duplex::WebSocket;
use duplex_pubsub::JsonEndpoint;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where `duplex serve` mounts it.
pub const PATH: &str = "/pubsub";

/// The endpoint, mounted at [`PATH`].
#[derive(Clone)]
pub struct PubSubApp(pub JsonEndpoint);

/// Serves one connection until it closes.
async fn handle<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, app: &PubSubApp) -> duplex::Result<()> {
    app.0.run(ws).await
}

duplex_apps::app_from_handler!(PubSubApp, handle);
