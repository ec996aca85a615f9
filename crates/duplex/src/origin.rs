//! The origin policy against cross-site WebSocket hijacking.
//!
//! Browsers send `Origin` with every WebSocket handshake and let any page open a socket to any
//! server, cookies included. A server that authenticates by cookie must therefore check `Origin`,
//! or a page on another site can act as the user. See docs/security.md.

/// Whether `origin` (the header's value) matches one of `patterns`.
///
/// A pattern is `*` (any origin), an exact origin (`https://app.example`, port included if not
/// the default), or an origin whose host starts with one wildcard label (`https://*.example.org`
/// matches `https://a.example.org` and `https://a.b.example.org`, not `https://example.org`).
/// Scheme and host compare without regard to case.
///
/// ```
/// use duplex::origin::is_allowed;
/// let allowed = ["https://app.example".to_string(), "https://*.example.org".to_string()];
/// assert!(is_allowed(&allowed, "https://app.example"));
/// assert!(is_allowed(&allowed, "https://eu.example.org"));
/// assert!(!is_allowed(&allowed, "https://example.org"));
/// assert!(!is_allowed(&allowed, "https://evil.example"));
/// assert!(!is_allowed(&allowed, "http://app.example"));
/// ```
pub fn is_allowed(patterns: &[String], origin: &str) -> bool {
    let origin = origin.trim().to_ascii_lowercase();
    patterns.iter().any(|p| matches(&p.trim().to_ascii_lowercase(), &origin))
}

fn matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" || pattern == origin {
        return true;
    }
    let (Some((p_scheme, p_rest)), Some((o_scheme, o_rest))) = (pattern.split_once("://"), origin.split_once("://"))
    else {
        return false;
    };
    if p_scheme != o_scheme {
        return false;
    }
    match p_rest.strip_prefix("*.") {
        // `o_rest` must end with `.suffix` and have at least one non-empty label before it.
        Some(suffix) => {
            o_rest.len() > suffix.len() + 1 && o_rest.ends_with(suffix) && {
                let head = &o_rest[..o_rest.len() - suffix.len()];
                head.ends_with('.') && head.len() > 1 && !head.contains(['/', ':'])
            }
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(patterns: &[&str], origin: &str) -> bool {
        is_allowed(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>(), origin)
    }

    #[test]
    fn exact_wildcard_and_case() {
        assert!(allowed(&["https://App.Example"], "https://app.example"));
        assert!(!allowed(&["https://app.example"], "https://app.example:8443"));
        assert!(allowed(&["https://app.example:8443"], "https://app.example:8443"));
        assert!(allowed(&["https://*.example.org"], "https://a.b.example.org"));
        assert!(!allowed(&["https://*.example.org"], "https://badexample.org"));
        assert!(!allowed(&["https://*.example.org"], "https://.example.org"));
        assert!(!allowed(&["https://*.example.org"], "http://a.example.org"));
        assert!(!allowed(&["https://*.example.org"], "https://evil.com/.example.org"));
        assert!(allowed(&["*"], "null"));
        assert!(!allowed(&["https://app.example"], "null"));
        assert!(!allowed(&[], "https://app.example"));
    }
}
