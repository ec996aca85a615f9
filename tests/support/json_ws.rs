//! JSON over a client WebSocket, for the tests of the `/pubsub` protocol: send a value, read the
//! next one within a deadline, check that nothing more comes.

use std::time::Duration;

use duplex::{ClientStream, Message, WebSocket};
use serde_json::Value;

/// How long a reply or a delivery may take.
pub const WAIT: Duration = Duration::from_secs(15);

/// A client connection.
pub type Ws = WebSocket<ClientStream>;

/// Sends `v` as a text message.
pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(v.to_string()).await.expect("send");
}

/// The next message, as JSON; fails the test after [`WAIT`] or on anything else.
pub async fn next_json(ws: &mut Ws) -> Value {
    match tokio::time::timeout(WAIT, ws.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}")),
        other => panic!("expected a JSON text message, got {other:?}"),
    }
}

/// Fails the test if anything arrives within `within`.
pub async fn assert_quiet(ws: &mut Ws, within: Duration) {
    if let Ok(m) = tokio::time::timeout(within, ws.recv()).await {
        panic!("expected nothing more, got {m:?}");
    }
}
