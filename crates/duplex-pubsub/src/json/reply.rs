//! What the server sends in the `/pubsub` protocol: deliveries and replies.

use std::fmt::Write;

use serde::Serialize;

use crate::position::{HistoryPage, Kind, Position, Publication, Published, Recovery, SubscribeOutcome};

#[derive(Serialize)]
struct Envelope<'a, T: ?Sized> {
    topic: &'a str,
    data: &'a T,
}

/// A delivery: `{"topic":"<topic>","data":<data>}`.
///
/// ```
/// let text = duplex_pubsub::json::delivery("news", &serde_json::json!({"title": "hi"})).unwrap();
/// assert_eq!(text, r#"{"topic":"news","data":{"title":"hi"}}"#);
/// ```
pub fn delivery<T: Serialize + ?Sized>(topic: &str, data: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Envelope { topic, data })
}

/// A JSON string literal.
fn string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A delivery on a history topic: `{"topic":…,"data":<data>,"offset":…,"epoch":…}`; `data` is JSON
/// text, inserted as it is.
///
/// ```
/// let text = duplex_pubsub::json::history_delivery("feed", 42, "k3J9", r#"{"seq":1}"#);
/// assert_eq!(text, r#"{"topic":"feed","data":{"seq":1},"offset":42,"epoch":"k3J9"}"#);
/// ```
pub fn history_delivery(topic: &str, offset: u64, epoch: &str, data: &str) -> String {
    format!(r#"{{"topic":{},"data":{data},"offset":{offset},"epoch":{}}}"#, string(topic), string(epoch))
}

/// An error reply: `{"error":"<message>"}`.
pub fn error(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// An error reply to a publish with an id: `{"error":"<message>","id":"<id>"}`.
pub fn error_with_id(message: &str, id: &str) -> String {
    serde_json::json!({ "error": message, "id": id }).to_string()
}

/// The acknowledgement of a subscribe: `{"subscribed":"<filter>"}`.
pub fn subscribed(filter: &str) -> String {
    serde_json::json!({ "subscribed": filter }).to_string()
}

/// The acknowledgement of a subscribe with what it did: on a history topic
/// `{"subscribed":…,"offset":…,"epoch":…}`, and after a resume `"recovered":true,"replayed":n` or
/// `"recovered":false,"reason":…`.
///
/// `SubscribeOutcome` is made by the library (`Subscriber::subscribe_with`); the `/pubsub` endpoint
/// queues this reply when the subscription goes live.
pub fn subscribed_at(filter: &str, outcome: &SubscribeOutcome) -> String {
    let mut s = format!(r#"{{"subscribed":{}"#, string(filter));
    if let Some(p) = &outcome.position {
        let _ = write!(s, r#","offset":{},"epoch":{}"#, p.offset, string(&p.epoch));
    }
    match outcome.recovery {
        Recovery::Live => {}
        Recovery::Recovered { replayed } => {
            let _ = write!(s, r#","recovered":true,"replayed":{replayed}"#);
        }
        Recovery::NotRecovered(reason) => {
            let _ = write!(s, r#","recovered":false,"reason":"{}""#, reason.as_str());
        }
    }
    s.push('}');
    s
}

/// The acknowledgement of an unsubscribe: `{"unsubscribed":"<filter>"}`.
pub fn unsubscribed(filter: &str) -> String {
    serde_json::json!({ "unsubscribed": filter }).to_string()
}

/// The acknowledgement of a publish with an id: `{"op":"ack","id":…}`, with `"offset"` and
/// `"epoch"` on a history topic, and `"duplicate":true` if the id was already stored.
pub fn ack(id: &str, published: &Published) -> String {
    let mut s = format!(r#"{{"op":"ack","id":{}"#, string(id));
    if let Some(p) = &published.position {
        let _ = write!(s, r#","offset":{},"epoch":{}"#, p.offset, string(&p.epoch));
    }
    if published.duplicate {
        s.push_str(r#","duplicate":true"#);
    }
    s.push('}');
    s
}

/// A reset: continuity on `topic` was lost on this node; delivery goes on live after `position`.
/// `{"op":"reset","topic":…,"offset":…,"epoch":…,"reason":…}`.
pub fn reset(topic: &str, position: &Position, reason: &str) -> String {
    format!(
        r#"{{"op":"reset","topic":{},"offset":{},"epoch":{},"reason":{}}}"#,
        string(topic),
        position.offset,
        string(&position.epoch),
        string(reason)
    )
}

/// The answer to a history read: `{"op":"history","topic":…,"epoch":…,"offset":<top>,"items":[…]}`,
/// each item `{"offset":…,"data":…}`. A text message published as it is shows as a JSON string, a
/// binary one as `"data":null,"bytes":<length>`. With `"recovered":false,"reason":…` when `since`
/// was of another epoch.
pub fn history(topic: &str, page: &HistoryPage) -> String {
    let mut s = format!(
        r#"{{"op":"history","topic":{},"epoch":{},"offset":{},"items":["#,
        string(topic),
        string(&page.top.epoch),
        page.top.offset
    );
    for (i, (offset, publication)) in page.items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, r#"{{"offset":{offset},{}}}"#, item_data(publication));
    }
    s.push(']');
    if let Some(reason) = page.not_recovered {
        let _ = write!(s, r#","recovered":false,"reason":"{}""#, reason.as_str());
    }
    s.push('}');
    s
}

fn item_data(p: &Publication) -> String {
    match (p.kind(), p.as_str()) {
        (Kind::Json, Some(json)) => format!(r#""data":{json}"#),
        (Kind::Text, Some(text)) => format!(r#""data":{}"#, string(text)),
        _ => format!(r#""data":null,"bytes":{}"#, p.len()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::position::NotRecovered;

    #[test]
    fn replies() {
        assert_eq!(error("no \"quotes\""), r#"{"error":"no \"quotes\""}"#);
        assert_eq!(error_with_id("backplane unavailable", "c7"), r#"{"error":"backplane unavailable","id":"c7"}"#);
        assert_eq!(subscribed("chat.*"), r#"{"subscribed":"chat.*"}"#);
        assert_eq!(unsubscribed("x"), r#"{"unsubscribed":"x"}"#);
        let raw = RawValue::from_string("[1, true]".into()).unwrap();
        assert_eq!(delivery("t", &*raw).unwrap(), r#"{"topic":"t","data":[1, true]}"#);
        assert_eq!(history_delivery("a\"b", 1, "e", "null"), r#"{"topic":"a\"b","data":null,"offset":1,"epoch":"e"}"#);
        assert_eq!(
            reset("t", &Position::new(90, "k3"), "too_old"),
            r#"{"op":"reset","topic":"t","offset":90,"epoch":"k3","reason":"too_old"}"#
        );
    }

    #[test]
    fn history_replies() {
        let pos = Some(Position::new(42, "k3J9"));
        let outcome = |recovery| SubscribeOutcome { position: pos.clone(), recovery, new: true };
        assert_eq!(
            subscribed_at("feed", &outcome(Recovery::Recovered { replayed: 1 })),
            r#"{"subscribed":"feed","offset":42,"epoch":"k3J9","recovered":true,"replayed":1}"#
        );
        assert_eq!(
            subscribed_at("feed", &outcome(Recovery::NotRecovered(NotRecovered::EpochChanged))),
            r#"{"subscribed":"feed","offset":42,"epoch":"k3J9","recovered":false,"reason":"epoch_changed"}"#
        );
        let live = SubscribeOutcome { position: None, recovery: Recovery::Live, new: true };
        assert_eq!(subscribed_at("chat.*", &live), subscribed("chat.*"));
        assert_eq!(
            ack("c7", &Published { position: pos.clone(), duplicate: true }),
            r#"{"op":"ack","id":"c7","offset":42,"epoch":"k3J9","duplicate":true}"#
        );
        assert_eq!(ack("c7", &Published { position: None, duplicate: false }), r#"{"op":"ack","id":"c7"}"#);
        let page = HistoryPage {
            top: Position::new(3, "e"),
            items: vec![
                (1, Publication::json(r#"{"a":1}"#.into())),
                (2, Publication::message("hi".into())),
                (3, Publication::message(duplex::Message::Binary(bytes::Bytes::from_static(&[1, 2])))),
            ],
            not_recovered: None,
        };
        assert_eq!(
            history("t", &page),
            r#"{"op":"history","topic":"t","epoch":"e","offset":3,"items":[{"offset":1,"data":{"a":1}},{"offset":2,"data":"hi"},{"offset":3,"data":null,"bytes":2}]}"#
        );
    }
}
