//! [`JsonEndpoint`]: the `/pubsub` endpoint as a reusable handler — give it an accepted
//! connection and it speaks the [JSON protocol](crate::json) until the connection ends.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use duplex_pubsub::{JsonEndpoint, PubSub};
//! let endpoint = JsonEndpoint::new(PubSub::new());
//! let server = duplex::Server::bind("127.0.0.1:8080").await?;
//! loop {
//!     let incoming = server.accept().await?;
//!     let endpoint = endpoint.clone();
//!     tokio::spawn(async move {
//!         let Ok(req) = incoming.request().await else { return };
//!         let Ok(mut ws) = req.accept().await else { return };
//!         let _ = endpoint.run(&mut ws).await;
//!     });
//! }
//! # }
//! ```

use duplex::{Message, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::json::{self, Request};
use crate::pubsub::PubSub;
use crate::subscriber::Subscriber;

/// The default for [`JsonEndpoint::max_data_size`]: 64 KiB.
pub const DEFAULT_MAX_DATA_SIZE: usize = 64 * 1024;

/// Serves the `/pubsub` JSON protocol on connections. Cloning is cheap (it shares the
/// [`PubSub`]).
#[derive(Clone, Debug)]
pub struct JsonEndpoint {
    pubsub: PubSub,
    max_data_size: usize,
}

impl JsonEndpoint {
    /// An endpoint on these topics.
    pub fn new(pubsub: PubSub) -> Self {
        JsonEndpoint { pubsub, max_data_size: DEFAULT_MAX_DATA_SIZE }
    }

    /// The largest `data` a client may publish, in bytes of JSON as written. Default 64 KiB:
    /// every byte published is queued once per subscriber's connection, so this bounds what one
    /// client can make the server hold. Larger data is answered with an error, not a close.
    pub fn max_data_size(mut self, bytes: usize) -> Self {
        self.max_data_size = bytes;
        self
    }

    /// The topics.
    pub fn pubsub(&self) -> &PubSub {
        &self.pubsub
    }

    /// Serves one connection until it closes: subscribes and unsubscribes it as it asks,
    /// publishes what it sends, and answers bad requests with `{"error":…}`. Deliveries reach it
    /// while this runs. Returns the error that ended the connection, if one did; its
    /// subscriptions end with it.
    pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(&self, ws: &mut WebSocket<S>) -> duplex::Result<()> {
        let me = self.pubsub.attach(ws);
        while let Some(message) = ws.recv().await {
            let reply = match message? {
                Message::Text(text) => self.handle(&me, &text),
                Message::Binary(_) => Some(json::error("binary messages are not part of the protocol: send JSON text")),
            };
            if let Some(reply) = reply {
                ws.send(reply).await?;
            }
        }
        Ok(())
    }

    /// Handles one request from `me`; returns the reply to send, if any.
    pub fn handle(&self, me: &Subscriber, text: &str) -> Option<String> {
        let request = match json::parse_request(text, self.max_data_size) {
            Ok(r) => r,
            Err(e) => return Some(json::error(&e)),
        };
        match request {
            Request::Subscribe(filter) => match me.subscribe(&filter) {
                Ok(_) => Some(json::subscribed(&filter)),
                Err(e) => Some(json::error(&e.to_string())),
            },
            Request::Unsubscribe(filter) => {
                me.unsubscribe(&filter);
                Some(json::unsubscribed(&filter))
            }
            Request::Publish { topic, data } => match self.pubsub.publish_json(&topic, data) {
                Ok(d) => {
                    tracing::debug!(%topic, delivered = d.delivered, dropped = d.dropped, "published");
                    None
                }
                Err(e) => Some(json::error(&e.to_string())),
            },
        }
    }
}
