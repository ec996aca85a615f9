//! The error type of the pub/sub layer.

use std::fmt;

/// Why a subscribe, publish or configuration step failed. Each message says what to change.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The topic name or pattern is not valid (see [`crate::topic`] for the rules).
    InvalidTopic {
        /// The name as given, cut to 64 characters for display.
        topic: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A wildcard pattern was given where one topic is needed: messages are published to a topic,
    /// patterns are only for subscribing.
    PatternNotAllowed(String),
    /// The subscriber already has `limit` subscriptions
    /// ([`Builder::max_subscriptions`](crate::Builder::max_subscriptions)).
    TooManySubscriptions {
        /// The limit.
        limit: usize,
    },
    /// The data to publish could not be serialized as JSON.
    Json(serde_json::Error),
    /// The backplane could not be set up (a malformed Redis URL, no tokio runtime), or refused
    /// (the memory history is full of topics).
    Backplane(String),
    /// A history topic could not be written or read: Redis cannot be reached. Nothing was
    /// delivered; retry (a publish with the same id, so that it is stored once).
    Unavailable(String),
    /// The topic keeps no history (see [`Builder::history`](crate::Builder::history)).
    HistoryOff(String),
    /// A publish id is empty, too long, or has control characters.
    InvalidPublishId(String),
    /// A resume (`since`) was asked for a pattern: a pattern subscription is live only.
    ResumeNeedsTopic(String),
}

impl Error {
    pub(crate) fn invalid(topic: &str, reason: &'static str) -> Error {
        let topic = match topic.char_indices().nth(64) {
            Some((i, _)) => format!("{}…", &topic[..i]),
            None => topic.to_owned(),
        };
        Error::InvalidTopic { topic, reason }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidTopic { topic, reason } => write!(f, "invalid topic {topic:?}: {reason}"),
            Error::PatternNotAllowed(p) => {
                write!(f, "{p:?} is a pattern: publish to one topic (patterns like \"chat.*\" are for subscribing)")
            }
            Error::TooManySubscriptions { limit } => {
                write!(f, "too many subscriptions: at most {limit} per connection; unsubscribe from some first")
            }
            Error::Json(e) => write!(f, "cannot serialize the data as JSON: {e}"),
            Error::Backplane(e) => write!(f, "backplane: {e}"),
            Error::Unavailable(e) => write!(f, "backplane unavailable: {e}; retry (with the same publish id)"),
            Error::HistoryOff(t) => write!(f, "topic {t:?} keeps no history: enable it for the topic (--history)"),
            Error::InvalidPublishId(reason) => f.write_str(reason),
            Error::ResumeNeedsTopic(p) => {
                write!(f, "{p:?} is a pattern: \"since\" resumes one topic; a pattern subscription is live only")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}
