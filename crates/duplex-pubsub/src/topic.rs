//! Topic names and the one wildcard: a trailing `.*`.
//!
//! - A **topic** is a name of 1 to [`MAX_TOPIC_LEN`] bytes without control characters and without
//!   `*`: `chat.lobby`, `prices.eur.usd`, `/lobby` (relay rooms are URL paths). Messages are
//!   published to topics.
//! - A **filter** is what a connection subscribes to: a topic (matched exactly), or a pattern
//!   ending in `.*`, which matches every topic that starts with what comes before the `*` —
//!   `chat.*` matches `chat.lobby` and `chat.lobby.eu`, not `chat` itself. The pattern `*` alone
//!   matches every topic. `*` anywhere else is refused: one rule, easy to predict, and exactly
//!   what a Redis `PSUBSCRIBE` on the escaped prefix followed by `*` matches, so the Redis
//!   backplane needs no second matching rule.
//!
//! ```
//! use duplex_pubsub::Filter;
//! let f = Filter::parse("chat.*").unwrap();
//! assert!(f.matches("chat.lobby") && f.matches("chat.lobby.eu") && !f.matches("chat"));
//! assert!(Filter::parse("chat.*.eu").is_err());
//! ```

use std::fmt;

use crate::error::Error;

/// The longest topic name or pattern, in bytes. Long enough for any URL path a relay room is
/// named after, short enough that a client cannot make the server keep kilobytes per
/// subscription.
pub const MAX_TOPIC_LEN: usize = 512;

/// The separator a wildcard follows.
pub const SEPARATOR: char = '.';

/// What a subscription matches: one topic, or every topic under a prefix. See the
/// [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Filter {
    /// One topic.
    Exact(String),
    /// Every topic starting with this prefix: empty (the pattern `*`) or ending in `.`.
    Prefix(String),
}

impl Filter {
    /// Parses a topic or a pattern ending in `.*`.
    pub fn parse(s: &str) -> Result<Filter, Error> {
        check_common(s)?;
        match s.strip_suffix('*') {
            Some(prefix) => {
                if prefix.contains('*') {
                    return Err(Error::invalid(s, "`*` may appear only once, at the end, after a `.`"));
                }
                if !(prefix.is_empty() || prefix.ends_with(SEPARATOR)) {
                    return Err(Error::invalid(s, "a wildcard must follow a `.` (`chat.*`) or stand alone (`*`)"));
                }
                Ok(Filter::Prefix(prefix.to_owned()))
            }
            None if s.contains('*') => Err(Error::invalid(s, "`*` may appear only once, at the end, after a `.`")),
            None => Ok(Filter::Exact(s.to_owned())),
        }
    }

    /// Whether a message published to `topic` reaches this filter's subscribers.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Filter::Exact(t) => t == topic,
            Filter::Prefix(p) => topic.starts_with(p.as_str()),
        }
    }

    /// Whether this is a pattern.
    pub fn is_pattern(&self) -> bool {
        matches!(self, Filter::Prefix(_))
    }
}

impl fmt::Display for Filter {
    /// The filter as written: `chat.lobby`, `chat.*`, `*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Exact(t) => f.write_str(t),
            Filter::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// Checks a topic that messages are published to: a valid name with no wildcard.
pub fn check_topic(topic: &str) -> Result<(), Error> {
    check_common(topic)?;
    if topic.contains('*') {
        if topic.ends_with('*') && Filter::parse(topic).is_ok() {
            return Err(Error::PatternNotAllowed(topic.to_owned()));
        }
        return Err(Error::invalid(topic, "`*` is only for patterns, and only at the end after a `.`"));
    }
    Ok(())
}

fn check_common(s: &str) -> Result<(), Error> {
    if s.is_empty() {
        return Err(Error::invalid(s, "it is empty"));
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(Error::invalid(s, "it is longer than 512 bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(s, "it contains a control character"));
    }
    Ok(())
}

/// The prefixes of `topic` a pattern can name, shortest first: `""`, `"a."`, `"a.b."` for `a.b.c`.
pub(crate) fn prefixes(topic: &str) -> impl Iterator<Item = &str> {
    std::iter::once("").chain(topic.match_indices(SEPARATOR).map(move |(i, _)| &topic[..=i]))
}

/// `s` with Redis glob metacharacters escaped, so a `PSUBSCRIBE` pattern matches it literally.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_trailing_wildcard() {
        assert_eq!(Filter::parse("chat.lobby").unwrap(), Filter::Exact("chat.lobby".into()));
        assert_eq!(Filter::parse("chat.*").unwrap(), Filter::Prefix("chat.".into()));
        assert_eq!(Filter::parse("*").unwrap(), Filter::Prefix(String::new()));
        assert_eq!(Filter::parse("/lobby").unwrap(), Filter::Exact("/lobby".into()));
        assert_eq!(Filter::parse("a.b.*").unwrap().to_string(), "a.b.*");
    }

    #[test]
    fn what_a_pattern_matches() {
        let f = Filter::parse("chat.*").unwrap();
        assert!(f.matches("chat.lobby"));
        assert!(f.matches("chat.lobby.eu"));
        assert!(f.matches("chat."));
        assert!(!f.matches("chat"));
        assert!(!f.matches("chatter.x"));
        assert!(!f.matches("other.chat.x"));
        assert!(Filter::parse("*").unwrap().matches("anything.at.all"));
        let exact = Filter::parse("chat.lobby").unwrap();
        assert!(exact.matches("chat.lobby") && !exact.matches("chat.lobby.eu"));
    }

    #[test]
    fn refused_names() {
        for bad in ["", "chat*", "chat.*.eu", "*.chat", "a**", "c.**", "line\nbreak", "tab\there"] {
            assert!(Filter::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Filter::parse(&"x".repeat(MAX_TOPIC_LEN)).is_ok());
        assert!(Filter::parse(&"x".repeat(MAX_TOPIC_LEN + 1)).is_err());
    }

    #[test]
    fn publishing_needs_a_topic_not_a_pattern() {
        assert!(check_topic("chat.lobby").is_ok());
        assert!(matches!(check_topic("chat.*"), Err(Error::PatternNotAllowed(_))));
        assert!(matches!(check_topic("*"), Err(Error::PatternNotAllowed(_))));
        assert!(matches!(check_topic("a*b"), Err(Error::InvalidTopic { .. })));
        assert!(matches!(check_topic(""), Err(Error::InvalidTopic { .. })));
    }

    #[test]
    fn prefixes_of_a_topic() {
        assert_eq!(prefixes("a.b.c").collect::<Vec<_>>(), ["", "a.", "a.b."]);
        assert_eq!(prefixes("plain").collect::<Vec<_>>(), [""]);
        assert_eq!(prefixes("a.").collect::<Vec<_>>(), ["", "a."]);
    }

    #[test]
    fn glob_metacharacters_are_escaped() {
        assert_eq!(glob_escape("duplex:pubsub:a.b."), "duplex:pubsub:a.b.");
        assert_eq!(glob_escape("x[1]?*\\^"), "x\\[1\\]\\?\\*\\\\\\^");
    }

    #[test]
    fn long_names_are_cut_in_errors() {
        let e = Filter::parse(&format!("{}*x", "y".repeat(100))).unwrap_err().to_string();
        assert!(e.len() < 200, "{e}");
    }
}
