//! The proxy the environment names, and `NO_PROXY`: which variables, in which order, and curl's
//! rules for the hosts reached directly (hyper-util's matcher applies them).

use hyper_util::client::proxy::matcher::Matcher;

use super::{ProxyChoice, ProxyError, ProxyErrorKind, ProxyUrl};
use crate::target::Target;

/// The variables naming a proxy for a `ws://` URL, in order.
const WS_VARS: [&str; 6] = ["ws_proxy", "WS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];
/// The same for `wss://`.
const WSS_VARS: [&str; 6] = ["wss_proxy", "WSS_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];

/// The route the environment gives to `target`.
pub(super) fn choose(target: &Target) -> Result<ProxyChoice, ProxyError> {
    choose_with(target, |name| std::env::var(name).ok())
}

/// [`choose`] with the environment as a function, for tests.
pub(super) fn choose_with(target: &Target, var: impl Fn(&str) -> Option<String>) -> Result<ProxyChoice, ProxyError> {
    let scheme = if target.tls { "wss://" } else { "ws://" };
    // httpoxy: under CGI a request's `Proxy:` header arrives as HTTP_PROXY, so it is not ours.
    let cgi = var("REQUEST_METHOD").is_some();
    let vars = if target.tls { WSS_VARS } else { WS_VARS };
    let found = vars
        .iter()
        .filter(|name| !(cgi && **name == "HTTP_PROXY"))
        .find_map(|name| var(name).filter(|v| !v.trim().is_empty()).map(|v| (*name, v)));
    let Some((name, value)) = found else {
        return Ok(ProxyChoice { proxy: None, why: format!("no proxy variable set for {scheme} URLs") });
    };
    let proxy = ProxyUrl::parse(value.trim()).map_err(|e| {
        let why = match e.kind() {
            ProxyErrorKind::Url(why) => format!("{why} (from {name})"),
            _ => format!("from {name}"),
        };
        ProxyError::new(e.proxy(), ProxyErrorKind::Url(why))
    })?;
    let no_proxy = ["no_proxy", "NO_PROXY"].iter().find_map(|n| var(n).map(|v| (*n, v)));
    if let Some((no_name, list)) = no_proxy {
        if let Some(entry) = bypass_entry(&list, target) {
            return Ok(ProxyChoice { proxy: None, why: format!("{no_name} entry {entry:?} matches {}", target.host) });
        }
    }
    Ok(ProxyChoice { proxy: Some(proxy), why: format!("{name}, for {scheme} URLs") })
}

/// The `NO_PROXY` entry that sends `target` direct, if one does. curl's rules: comma-separated
/// entries; `*` alone matches every host; an IP address or CIDR block matches addresses; any
/// other entry is a domain matching itself and its subdomains (a leading dot changes nothing);
/// the port is not considered; no host is matched implicitly, `localhost` included.
fn bypass_entry(list: &str, target: &Target) -> Option<String> {
    let entries: Vec<&str> = list.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    if entries.contains(&"*") {
        return Some("*".to_owned());
    }
    // hyper-util's matcher judges each entry; a probe proxy is set so "no match" means "proxied".
    let uri: ::http::Uri = format!("http://{}/", target.host_header).parse().ok()?;
    entries.into_iter().find_map(|entry| {
        let matcher = Matcher::builder().all("http://probe.invalid:1".to_owned()).no(entry.to_owned()).build();
        matcher.intercept(&uri).is_none().then(|| entry.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn route(url: &str, vars: &[(&str, &str)]) -> ProxyChoice {
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        choose_with(&Target::parse(url).unwrap(), |n| env.get(n).cloned()).unwrap()
    }

    fn proxy_of(url: &str, vars: &[(&str, &str)]) -> Option<String> {
        route(url, vars).proxy.map(|p| p.to_string())
    }

    #[test]
    fn variables_in_order() {
        let all = [
            ("wss_proxy", "http://wss:1"),
            ("ws_proxy", "http://ws:1"),
            ("HTTPS_PROXY", "http://https:1"),
            ("http_proxy", "http://http:1"),
            ("ALL_PROXY", "socks5h://all:1"),
        ];
        assert_eq!(proxy_of("wss://x/", &all).as_deref(), Some("http://wss:1"));
        assert_eq!(proxy_of("ws://x/", &all).as_deref(), Some("http://ws:1"));
        assert_eq!(proxy_of("wss://x/", &all[2..]).as_deref(), Some("http://https:1"));
        assert_eq!(proxy_of("ws://x/", &all[2..]).as_deref(), Some("http://http:1"));
        assert_eq!(proxy_of("ws://x/", &all[4..]).as_deref(), Some("socks5h://all:1"));
        // Lower case first; an empty value is unset.
        assert_eq!(proxy_of("ws://x/", &[("http_proxy", "a:1"), ("HTTP_PROXY", "b:1")]).as_deref(), Some("http://a:1"));
        assert_eq!(proxy_of("ws://x/", &[("http_proxy", " "), ("HTTP_PROXY", "b:1")]).as_deref(), Some("http://b:1"));
        assert_eq!(proxy_of("ws://x/", &[]), None);
        // httpoxy: HTTP_PROXY is not trusted under CGI.
        assert_eq!(proxy_of("ws://x/", &[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "b:1")]), None);
        let why = route("wss://x/", &[("HTTPS_PROXY", "http://p:3128")]).to_string();
        assert_eq!(why, "through proxy http://p:3128 (HTTPS_PROXY, for wss:// URLs)");
    }

    #[test]
    fn no_proxy_rules() {
        let p = ("ALL_PROXY", "http://p:1");
        let direct = |url: &str, no: &str| proxy_of(url, &[p, ("NO_PROXY", no)]).is_none();
        assert!(direct("ws://127.0.0.1:9/", "127.0.0.1"));
        assert!(direct("ws://10.1.2.3/", "example.com, 10.0.0.0/8"));
        assert!(direct("ws://[::1]:9/", "::1"));
        assert!(direct("ws://example.com/", "example.com"));
        assert!(direct("ws://a.example.com/", "example.com"));
        assert!(direct("ws://a.example.com/", ".example.com"));
        assert!(!direct("ws://notexample.com/", "example.com"));
        assert!(direct("ws://anything/", "*"));
        assert!(direct("ws://127.0.0.1/", "*"));
        // Not implicit: localhost goes through the proxy unless listed.
        assert!(!direct("ws://localhost/", "example.com"));
        assert!(!direct("ws://127.0.0.1/", ""));
        let why = route("ws://a.example.com/", &[p, ("no_proxy", "x, example.com")]).to_string();
        assert_eq!(why, "direct, no proxy (no_proxy entry \"example.com\" matches a.example.com)");
    }

    #[test]
    fn bad_proxy_urls_say_so() {
        let e = choose_with(&Target::parse("ws://x/").unwrap(), |n| {
            (n == "HTTP_PROXY").then(|| "ftp://u:secret@p:1".into())
        })
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("HTTP_PROXY") && !text.contains("secret"), "{text}");
    }

    #[test]
    fn proxy_urls() {
        let p = ProxyUrl::parse("http://user:p%40ss@127.0.0.1:3128").unwrap();
        assert_eq!(p.to_string(), "http://***@127.0.0.1:3128");
        assert!(p.has_credentials());
        let p = ProxyUrl::parse("socks5h://u:pw@[::1]").unwrap();
        assert_eq!((p.host(), p.port(), p.to_string().as_str()), ("::1", 1080, "socks5h://***@[::1]:1080"));
        assert_eq!(ProxyUrl::parse("proxy.example:8080").unwrap().to_string(), "http://proxy.example:8080");
        assert_eq!(ProxyUrl::parse("https://p").unwrap().port(), 443);
        assert!(ProxyUrl::parse("ftp://p").is_err());
    }
}
