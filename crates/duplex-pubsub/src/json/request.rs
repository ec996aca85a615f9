//! Parsing the requests of the `/pubsub` protocol.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::position::{check_epoch, check_publish_id, Position};

/// One request of the protocol.
#[derive(Debug)]
#[non_exhaustive]
pub enum Request<'a> {
    /// `{"op":"subscribe","topic":…}`, with `"since":{"offset":…,"epoch":…}` to resume.
    Subscribe {
        /// The topic or pattern.
        topic: Cow<'a, str>,
        /// Resume after this position (exact history topics).
        since: Option<Position>,
    },
    /// `{"op":"unsubscribe","topic":…}`.
    Unsubscribe(Cow<'a, str>),
    /// `{"op":"publish","topic":…,"data":…}`; `data` is kept as written, not re-serialized.
    Publish {
        /// Where to publish.
        topic: Cow<'a, str>,
        /// The JSON value, as the client wrote it.
        data: &'a RawValue,
        /// `"id"`: acknowledge the publish, and store it once (history topics).
        id: Option<String>,
    },
    /// `{"op":"history","topic":…}` with optional `"limit"`, `"since"`, `"reverse"`.
    History {
        /// The topic.
        topic: Cow<'a, str>,
        /// At most this many items (`None`: the server's default, 50).
        limit: Option<usize>,
        /// Only items after this position.
        since: Option<Position>,
        /// Newest first.
        reverse: bool,
    },
}

impl PartialEq for Request<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Request::Subscribe { topic: a, since: x }, Request::Subscribe { topic: b, since: y }) => a == b && x == y,
            (Request::Unsubscribe(a), Request::Unsubscribe(b)) => a == b,
            (Request::Publish { topic: a, data: x, id: i }, Request::Publish { topic: b, data: y, id: j }) => {
                a == b && x.get() == y.get() && i == j
            }
            (
                Request::History { topic: a, limit: l, since: s, reverse: r },
                Request::History { topic: b, limit: m, since: t, reverse: q },
            ) => a == b && l == m && s == t && r == q,
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
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    since: Option<RawSince<'a>>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    reverse: Option<bool>,
}

#[derive(Deserialize)]
struct RawSince<'a> {
    offset: u64,
    #[serde(borrow)]
    epoch: Cow<'a, str>,
}

const OPS: &str = "use subscribe, unsubscribe, publish or history";

/// Parses a request, or says what is wrong with it (the text of the `error` reply). Checks the
/// shape only: topic names are checked when they are used, and `data` against `max_data_size`
/// (its length as written, in bytes).
///
/// ```
/// use duplex_pubsub::json::{parse_request, Request};
/// let req = parse_request(r#"{"op":"subscribe","topic":"chat.*"}"#, 1024).unwrap();
/// assert_eq!(req, Request::Subscribe { topic: "chat.*".into(), since: None });
/// assert!(parse_request("{nope", 1024).unwrap_err().starts_with("malformed JSON"));
/// ```
pub fn parse_request(text: &str, max_data_size: usize) -> Result<Request<'_>, String> {
    let raw: Raw<'_> = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) if e.is_syntax() || e.is_eof() => return Err(format!("malformed JSON: {e}")),
        Err(e) => return Err(format!("a request is an object like {{\"op\":\"subscribe\",\"topic\":\"news\"}}: {e}")),
    };
    let Some(op) = raw.op else {
        return Err(format!("missing \"op\": {OPS}"));
    };
    let topic = || raw.topic.clone().ok_or_else(|| format!("{op} needs a \"topic\""));
    let since = || -> Result<Option<Position>, String> {
        match &raw.since {
            None => Ok(None),
            Some(s) => {
                check_epoch(&s.epoch).map_err(|e| format!("since: {e}"))?;
                Ok(Some(Position::new(s.offset, &*s.epoch)))
            }
        }
    };
    match &*op {
        "subscribe" => Ok(Request::Subscribe { topic: topic()?, since: since()? }),
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
            let id = match raw.id {
                None => None,
                Some(id) => Some(publish_id(id)?),
            };
            Ok(Request::Publish { topic, data, id })
        }
        "history" => Ok(Request::History {
            topic: topic()?,
            limit: raw.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
            since: since()?,
            reverse: raw.reverse.unwrap_or(false),
        }),
        other => Err(format!("unknown op {other:?}: {OPS}")),
    }
}

/// A publish id: a string, or a number taken as its text.
fn publish_id(raw: &RawValue) -> Result<String, String> {
    let id = match serde_json::from_str::<serde_json::Value>(raw.get()) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err("\"id\" must be a string (or a number)".to_owned()),
    };
    check_publish_id(&id)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscribe(topic: &str) -> Request<'_> {
        Request::Subscribe { topic: topic.into(), since: None }
    }

    #[test]
    fn requests() {
        assert_eq!(parse_request(r#"{"op":"unsubscribe","topic":"a"}"#, 10), Ok(Request::Unsubscribe("a".into())));
        match parse_request(r#"{"op":"publish","topic":"t","data":{"n": [1, 2]},"id":7}"#, 100).unwrap() {
            Request::Publish { topic, data, id } => {
                assert_eq!((&*topic, data.get(), id.as_deref()), ("t", r#"{"n": [1, 2]}"#, Some("7")))
            }
            other => panic!("{other:?}"),
        }
        match parse_request(r#"{"op":"publish","topic":"t"}"#, 100).unwrap() {
            Request::Publish { data, id, .. } => assert_eq!((data.get(), id), ("null", None)),
            other => panic!("{other:?}"),
        }
        // Escaped topics are unescaped.
        assert_eq!(parse_request(r#"{"op":"subscribe","topic":"a\u002eb"}"#, 10), Ok(subscribe("a.b")));
    }

    #[test]
    fn resume_and_history_requests() {
        let r = parse_request(r#"{"op":"subscribe","topic":"t","since":{"offset":41,"epoch":"k3J9"}}"#, 10).unwrap();
        assert_eq!(r, Request::Subscribe { topic: "t".into(), since: Some(Position::new(41, "k3J9")) });
        let r = parse_request(r#"{"op":"history","topic":"t","limit":5,"reverse":true}"#, 10).unwrap();
        assert_eq!(r, Request::History { topic: "t".into(), limit: Some(5), since: None, reverse: true });
        let r = parse_request(r#"{"op":"history","topic":"t","since":{"offset":0,"epoch":"e"}}"#, 10).unwrap();
        assert_eq!(
            r,
            Request::History { topic: "t".into(), limit: None, since: Some(Position::new(0, "e")), reverse: false }
        );
        let r = parse_request(r#"{"op":"publish","topic":"t","data":1,"id":"c7-1042"}"#, 10).unwrap();
        assert!(matches!(r, Request::Publish { id: Some(id), .. } if id == "c7-1042"));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let err = |t: &str| parse_request(t, 8).unwrap_err();
        assert!(err("{").starts_with("malformed JSON"), "{}", err("{"));
        assert!(err("not json").starts_with("malformed JSON"));
        assert!(err("[1,2]").contains("a request is an object"), "{}", err("[1,2]"));
        assert!(err(r#"{"op":5}"#).contains("a request is an object"));
        assert!(err(r#"{"topic":"t"}"#).contains("missing \"op\""));
        assert_eq!(err(r#"{"op":"shout","topic":"t"}"#), format!("unknown op \"shout\": {OPS}"));
        assert_eq!(err(r#"{"op":"subscribe"}"#), "subscribe needs a \"topic\"");
        assert!(err(r#"{"op":"publish","topic":"t","data":"123456789"}"#).contains("over the limit of 8"));
        assert!(err(r#"{"op":"publish","topic":"t","id":{"a":1}}"#).contains("\"id\" must be a string"));
        assert!(err(r#"{"op":"publish","topic":"t","id":""}"#).contains("a publish id is"));
        assert!(err(r#"{"op":"subscribe","topic":"t","since":{"offset":-1,"epoch":"e"}}"#)
            .contains("a request is an object"));
        assert!(err(r#"{"op":"subscribe","topic":"t","since":{"offset":1,"epoch":"a b"}}"#).contains("since: an epoch"));
    }
}
