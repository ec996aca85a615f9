//! The JSON protocol of the `/pubsub` endpoint, for browsers and any WebSocket client.
//!
//! Requests, one JSON object per text message:
//!
//! ```text
//! {"op":"subscribe","topic":"chat.lobby"}          follow a topic or a pattern ("chat.*")
//! {"op":"subscribe","topic":"feed","since":{"offset":41,"epoch":"k3J9"}}   resume (history topics)
//! {"op":"unsubscribe","topic":"chat.lobby"}
//! {"op":"publish","topic":"chat.lobby","data":{"text":"hi"}}   data: any JSON value (default null)
//! {"op":"publish","topic":"feed","data":…,"id":"c7-1042"}      acknowledged, idempotent (history)
//! {"op":"history","topic":"feed","limit":50,"reverse":true}     read a topic's history
//! ```
//!
//! What the server sends:
//!
//! ```text
//! {"topic":"chat.lobby","data":{"text":"hi"}}      a delivery: the topic it was published to
//! {"topic":"feed","data":…,"offset":42,"epoch":"k3J9"}   a delivery on a history topic
//! {"subscribed":"chat.*"}  {"unsubscribed":"chat.*"}   acknowledgements, in request order
//! {"subscribed":"feed","offset":42,"epoch":"k3J9","recovered":true,"replayed":1}
//! {"subscribed":"feed","offset":57,"epoch":"Qx7a","recovered":false,"reason":"epoch_changed"}
//! {"op":"ack","id":"c7-1042","offset":43,"epoch":"k3J9"}      (+ "duplicate":true for a retry)
//! {"op":"reset","topic":"feed","offset":90,"epoch":"k3J9","reason":"too_old"}
//! {"op":"history","topic":"feed","epoch":"k3J9","offset":43,"items":[{"offset":42,"data":…},…]}
//! {"error":"unknown op \"shout\": use subscribe, unsubscribe, publish or history"}
//! {"error":"backplane unavailable","id":"c7-1042"}     the publish was not stored: retry it
//! ```
//!
//! A bad request (malformed JSON, an unknown op, a missing or invalid topic, data over the size
//! limit, a binary message) is answered with an `error` and the connection stays open. Unknown
//! fields are ignored. The whole protocol, with the rules of history and resume, is in
//! `docs/pubsub.md`.

mod reply;
mod request;

pub use reply::{
    ack, delivery, error, error_with_id, history, history_delivery, reset, subscribed, subscribed_at, unsubscribed,
};
pub use request::{parse_request, Request};
