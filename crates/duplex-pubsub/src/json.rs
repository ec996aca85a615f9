//! The JSON protocol of the `/pubsub` endpoint, for browsers and any WebSocket client.
//!
//! Requests, one JSON object per text message:
//!
//! ```text
//! {"op":"subscribe","topic":"chat.lobby"}          follow a topic or a pattern ("chat.*")
//! {"op":"unsubscribe","topic":"chat.lobby"}
//! {"op":"publish","topic":"chat.lobby","data":{"text":"hi"}}   data: any JSON value (default null)
//! ```
//!
//! What the server sends:
//!
//! ```text
//! {"topic":"chat.lobby","data":{"text":"hi"}}      a delivery: the topic it was published to
//! {"subscribed":"chat.*"}  {"unsubscribed":"chat.*"}   acknowledgements, in request order
//! {"error":"unknown op \"shout\": use subscribe, unsubscribe or publish"}
//! ```
//!
//! A bad request (malformed JSON, an unknown op, a missing or invalid topic, data over the size
//! limit, a binary message) is answered with an `error` and the connection stays open. Unknown
//! fields are ignored, so clients may add their own (an `id` to match answers, say).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One request of the protocol.
#[derive(Debug)]
pub enum Request<'a> {
    /// `{"op":"subscribe","topic":…}`.
    Subscribe(Cow<'a, str>),
    /// `{"op":"unsubscribe","topic":…}`.
    Unsubscribe(Cow<'a, str>),
    /// `{"op":"publish","topic":…,"data":…}`; `data` is kept as written, not re-serialized.
    Publish {
        /// Where to publish.
        topic: Cow<'a, str>,
        /// The JSON value, as the client wrote it.
        data: &'a RawValue,
    },
}

impl PartialEq for Request<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Request::Subscribe(a), Request::Subscribe(b)) | (Request::Unsubscribe(a), Request::Unsubscribe(b)) => {
                a == b
            }
            (Request::Publish { topic: a, data: x }, Request::Publish { topic: b, data: y }) => {
                a == b && x.get() == y.get()
            }
            _ => false,
        }
    }
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    topic: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// Parses a request, or says what is wrong with it (the text of the `error` reply). Checks the
/// shape only: topic names are checked when they are used, and `data` against `max_data_size`
/// (its length as written, in bytes).
///
/// ```
/// use duplex_pubsub::json::{parse_request, Request};
/// let req = parse_request(r#"{"op":"subscribe","topic":"chat.*"}"#, 1024).unwrap();
/// assert_eq!(req, Request::Subscribe("chat.*".into()));
/// assert!(parse_request("{nope", 1024).unwrap_err().starts_with("malformed JSON"));
/// ```
pub fn parse_request(text: &str, max_data_size: usize) -> Result<Request<'_>, String> {
    let raw: Raw<'_> = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) if e.is_syntax() || e.is_eof() => return Err(format!("malformed JSON: {e}")),
        Err(e) => return Err(format!("a request is an object like {{\"op\":\"subscribe\",\"topic\":\"news\"}}: {e}")),
    };
    let Some(op) = raw.op else {
        return Err("missing \"op\": use subscribe, unsubscribe or publish".to_owned());
    };
    let topic = || raw.topic.clone().ok_or_else(|| format!("{op} needs a \"topic\""));
    match &*op {
        "subscribe" => Ok(Request::Subscribe(topic()?)),
        "unsubscribe" => Ok(Request::Unsubscribe(topic()?)),
        "publish" => {
            let topic = topic()?;
            let data = raw.data.unwrap_or(RawValue::NULL);
            if data.get().len() > max_data_size {
                return Err(format!(
                    "data is {} bytes of JSON, over the limit of {max_data_size}: send less",
                    data.get().len()
                ));
            }
            Ok(Request::Publish { topic, data })
        }
        other => Err(format!("unknown op {other:?}: use subscribe, unsubscribe or publish")),
    }
}

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

/// An error reply: `{"error":"<message>"}`.
pub fn error(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// The acknowledgement of a subscribe: `{"subscribed":"<filter>"}`.
pub fn subscribed(filter: &str) -> String {
    serde_json::json!({ "subscribed": filter }).to_string()
}

/// The acknowledgement of an unsubscribe: `{"unsubscribed":"<filter>"}`.
pub fn unsubscribed(filter: &str) -> String {
    serde_json::json!({ "unsubscribed": filter }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(parse_request(r#"{"op":"unsubscribe","topic":"a"}"#, 10), Ok(Request::Unsubscribe("a".into())));
        match parse_request(r#"{"op":"publish","topic":"t","data":{"n": [1, 2]},"id":7}"#, 100).unwrap() {
            Request::Publish { topic, data } => assert_eq!((&*topic, data.get()), ("t", r#"{"n": [1, 2]}"#)),
            other => panic!("{other:?}"),
        }
        match parse_request(r#"{"op":"publish","topic":"t"}"#, 100).unwrap() {
            Request::Publish { data, .. } => assert_eq!(data.get(), "null"),
            other => panic!("{other:?}"),
        }
        // Escaped topics are unescaped.
        assert_eq!(parse_request(r#"{"op":"subscribe","topic":"a\u002eb"}"#, 10), Ok(Request::Subscribe("a.b".into())));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let err = |t: &str| parse_request(t, 8).unwrap_err();
        assert!(err("{").starts_with("malformed JSON"), "{}", err("{"));
        assert!(err("not json").starts_with("malformed JSON"));
        assert!(err("[1,2]").contains("a request is an object"), "{}", err("[1,2]"));
        assert!(err(r#"{"op":5}"#).contains("a request is an object"));
        assert!(err(r#"{"topic":"t"}"#).contains("missing \"op\""));
        assert_eq!(err(r#"{"op":"shout","topic":"t"}"#), "unknown op \"shout\": use subscribe, unsubscribe or publish");
        assert_eq!(err(r#"{"op":"subscribe"}"#), "subscribe needs a \"topic\"");
        assert!(err(r#"{"op":"publish","topic":"t","data":"123456789"}"#).contains("over the limit of 8"));
    }

    #[test]
    fn replies() {
        assert_eq!(error("no \"quotes\""), r#"{"error":"no \"quotes\""}"#);
        assert_eq!(subscribed("chat.*"), r#"{"subscribed":"chat.*"}"#);
        assert_eq!(unsubscribed("x"), r#"{"unsubscribed":"x"}"#);
        let raw = RawValue::from_string("[1, true]".into()).unwrap();
        assert_eq!(delivery("t", &*raw).unwrap(), r#"{"topic":"t","data":[1, true]}"#);
    }
}
