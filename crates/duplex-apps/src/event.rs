//! The demos' JSON events: encoding one, sending it to one connection, refusals, time stamps.

use std::time::{SystemTime, UNIX_EPOCH};

use duplex::Sender;
use serde::Serialize;

/// Milliseconds since the Unix epoch (what the pages' `Date` takes).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// JSON text of one of the demos' own events (plain structs and strings: cannot fail).
pub(crate) fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("demo events serialize")
}

/// Queues an event for one connection. A connection that has gone or is too slow misses it; its
/// task notices the end on its own.
pub(crate) fn send<T: Serialize + ?Sized>(sender: &Sender, value: &T) {
    let _ = sender.send(json(value));
}

/// `{"type":"error","message":…}` for one connection: a request it made was refused.
pub(crate) fn send_error(sender: &Sender, message: &str) {
    #[derive(Serialize)]
    struct Error<'a> {
        r#type: &'static str,
        message: &'a str,
    }
    send(sender, &Error { r#type: "error", message });
}

/// `text` trimmed, with control characters turned into spaces; `None` if that leaves nothing or
/// more than `max_chars` characters.
pub(crate) fn clean(text: &str, max_chars: usize) -> Option<String> {
    let text: String = text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let n = text.chars().count();
    (n > 0 && n <= max_chars).then_some(text)
}

/// A token bucket: `burst` requests at once, then `per_second`.
pub(crate) struct RateLimit {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: tokio::time::Instant,
}

impl RateLimit {
    pub(crate) fn new(burst: u32, per_second: f64) -> RateLimit {
        RateLimit { tokens: burst as f64, burst: burst as f64, per_second, last: tokio::time::Instant::now() }
    }

    /// Takes a token if there is one.
    pub(crate) fn allow(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_trims_and_bounds() {
        assert_eq!(clean("  ann ", 24).as_deref(), Some("ann"));
        assert_eq!(clean("a\u{7}b", 24).as_deref(), Some("a b"));
        assert_eq!(clean("   ", 24), None);
        assert_eq!(clean("ééé", 3).as_deref(), Some("ééé"));
        assert_eq!(clean("éééé", 3), None);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_refills() {
        let mut r = RateLimit::new(2, 1.0);
        assert!(r.allow() && r.allow());
        assert!(!r.allow());
        tokio::time::advance(std::time::Duration::from_millis(1100)).await;
        assert!(r.allow());
        assert!(!r.allow());
    }
}
