//! Per-address limits (cargo feature `ip-limits`): how many connections one client address may
//! hold at once, and how fast it may start handshakes (GCRA with a burst, on `governor`). Both
//! are off until set: loopback benchmarks and tests open thousands of connections from one
//! address.
//!
//! A [`Server`](crate::Server) given [`with_ip_limits`](crate::Server::with_ip_limits) checks
//! every connection right after accept, before the TLS handshake and before reading the
//! request (after the PROXY protocol header, when the peer is a trusted proxy): over a limit,
//! a `ws://` client is answered `429 Too Many Requests` with `Retry-After`, and a `wss://` one
//! is closed before TLS. Any other server (hyper, axum) can use an [`IpLimiter`] the same way:
//! [`check`](IpLimiter::check) the address when a connection arrives, and hold the returned
//! [`IpPermit`] for as long as the connection lives.
//!
//! Addresses are grouped: an IPv4 address counts alone (/32) and an IPv6 address with its /64,
//! since one IPv6 host usually holds a whole /64 and could otherwise take a fresh address for
//! every connection. Both prefixes are configurable.
//!
//! ```
//! use duplex::ip_limit::{IpLimiter, IpLimits};
//! let limiter = IpLimiter::new(IpLimits::new().max_connections(2));
//! let ip = "192.0.2.7".parse().unwrap();
//! let a = limiter.check(ip).unwrap();
//! let b = limiter.check(ip).unwrap();
//! assert!(limiter.check(ip).is_err()); // a third at once is refused
//! drop(a);
//! assert!(limiter.check(ip).is_ok()); // until one closes
//! # drop(b);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How often the rate limiter's keyed state is swept of addresses it no longer limits.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The `Retry-After` given to a client at its connection limit: its connections may close at any
/// time, so it is told to wait a little, not a computed time.
const CONNECTIONS_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Per-address limits; see the [module docs](self). Each is off until set.
#[derive(Clone, Debug, PartialEq)]
pub struct IpLimits {
    max_connections: Option<u32>,
    rate: Option<(f64, u32)>,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
}

impl Default for IpLimits {
    fn default() -> Self {
        IpLimits { max_connections: None, rate: None, ipv4_prefix: 32, ipv6_prefix: 64 }
    }
}

impl IpLimits {
    /// No limit yet; addresses grouped by /32 (IPv4) and /64 (IPv6).
    pub fn new() -> Self {
        IpLimits::default()
    }

    /// At most `n` connections at once per address (handshakes included).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// At most `per_second` handshakes per second per address on average, with bursts of
    /// `burst` (GCRA: a token comes back every `1 / per_second` seconds, up to `burst`). A burst
    /// under 1 counts as 1.
    pub fn handshake_rate(mut self, per_second: f64, burst: u32) -> Self {
        self.rate = Some((per_second, burst.max(1)));
        self
    }

    /// How many leading bits of an IPv4 address name one client (32 by default).
    pub fn ipv4_prefix(mut self, bits: u8) -> Self {
        self.ipv4_prefix = bits.min(32);
        self
    }

    /// How many leading bits of an IPv6 address name one client (64 by default).
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    /// Whether any limit is set.
    pub fn is_enabled(&self) -> bool {
        self.max_connections.is_some() || self.rate.is_some()
    }
}

/// The address a client is counted under: `ip` with the bits past its family's prefix cleared.
/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, from a dual-stack listener) counts as the
/// IPv4 address it carries.
///
/// ```
/// use duplex::ip_limit::ip_key;
/// assert_eq!(ip_key("2001:db8:1:2:aaaa::1".parse().unwrap(), 32, 64), "2001:db8:1:2::".parse::<std::net::IpAddr>().unwrap());
/// ```
pub fn ip_key(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX.checked_shl(32 - u32::from(ipv4_prefix.min(32))).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX.checked_shl(128 - u32::from(ipv6_prefix.min(128))).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

/// Why a connection was refused by an [`IpLimiter`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpRefusal {
    /// The address holds its most connections already.
    TooManyConnections {
        /// The limit.
        limit: u32,
    },
    /// The address is over its handshake rate.
    RateLimited {
        /// When the next handshake would be allowed.
        retry_after: Duration,
    },
}

impl IpRefusal {
    /// The time to tell the client to wait (`Retry-After`), at least a second.
    pub fn retry_after(&self) -> Duration {
        match self {
            IpRefusal::TooManyConnections { .. } => CONNECTIONS_RETRY_AFTER,
            IpRefusal::RateLimited { retry_after } => (*retry_after).max(Duration::from_secs(1)),
        }
    }
}

impl fmt::Display for IpRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpRefusal::TooManyConnections { limit } => {
                write!(f, "{limit} connections from one address is the limit")
            }
            IpRefusal::RateLimited { retry_after } => {
                write!(f, "too many handshakes from one address; next allowed in {:.1}s", retry_after.as_secs_f64())
            }
        }
    }
}

impl std::error::Error for IpRefusal {}

/// The state of [`IpLimits`]: connections per address, and each address's handshake rate.
pub struct IpLimiter {
    limits: IpLimits,
    /// Open connections per address; an address leaves the map with its last connection.
    connections: Mutex<HashMap<IpAddr, u32>>,
    rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// When the rate state was last swept, in seconds since `born`.
    swept: AtomicU64,
    born: Instant,
}

impl fmt::Debug for IpLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpLimiter").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl IpLimiter {
    /// A limiter for `limits`, shared by the connections it counts.
    pub fn new(limits: IpLimits) -> Arc<IpLimiter> {
        let rate = limits.rate.and_then(|(per_second, burst)| {
            let period = Duration::from_secs_f64(1.0 / per_second.max(1e-6));
            let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?);
            Some(RateLimiter::keyed(quota))
        });
        Arc::new(IpLimiter {
            limits,
            connections: Mutex::default(),
            rate,
            swept: AtomicU64::new(0),
            born: Instant::now(),
        })
    }

    /// The limits.
    pub fn limits(&self) -> &IpLimits {
        &self.limits
    }

    /// The address `ip` counts under ([`ip_key`] with these limits' prefixes).
    pub fn key(&self, ip: IpAddr) -> IpAddr {
        ip_key(ip, self.limits.ipv4_prefix, self.limits.ipv6_prefix)
    }

    /// Admits one more connection from `ip`, or says why not. The connection counts until the
    /// permit is dropped; a refused one does not count (though a handshake refused for the rate
    /// used no token, one refused for connections used none either).
    pub fn check(self: &Arc<Self>, ip: IpAddr) -> Result<IpPermit, IpRefusal> {
        self.sweep_if_due();
        let key = self.key(ip);
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let open = connections.get(&key).copied().unwrap_or(0);
        if let Some(limit) = self.limits.max_connections {
            if open >= limit {
                return Err(IpRefusal::TooManyConnections { limit });
            }
        }
        if let Some(rate) = &self.rate {
            if let Err(not_until) = rate.check_key(&key) {
                let retry_after = not_until.wait_time_from(rate.clock().now());
                return Err(IpRefusal::RateLimited { retry_after });
            }
        }
        connections.insert(key, open + 1);
        Ok(IpPermit { limiter: self.clone(), key })
    }

    /// Addresses with open connections now.
    pub fn addresses(&self) -> usize {
        self.connections.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Addresses the rate limiter keeps state for (it forgets one once its tokens are all back,
    /// at the next sweep).
    pub fn rate_addresses(&self) -> usize {
        self.rate.as_ref().map_or(0, |r| r.len())
    }

    /// Forgets the rate state of every address whose tokens are all back (as if never seen).
    /// Runs by itself at most once a minute, from [`check`](IpLimiter::check).
    pub fn sweep(&self) {
        if let Some(r) = &self.rate {
            r.retain_recent();
            r.shrink_to_fit();
        }
    }

    fn sweep_if_due(&self) {
        let now = self.born.elapsed().as_secs();
        let last = self.swept.load(Ordering::Relaxed);
        if now >= last + SWEEP_EVERY.as_secs()
            && self.swept.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.sweep();
        }
    }

    fn release(&self, key: IpAddr) {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = connections.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                connections.remove(&key);
            }
        }
    }
}

/// One connection's place in its address's count; dropping it gives the place back.
#[derive(Debug)]
pub struct IpPermit {
    limiter: Arc<IpLimiter>,
    key: IpAddr,
}

impl IpPermit {
    /// The address this connection counts under.
    pub fn key(&self) -> IpAddr {
        self.key
    }
}

impl Drop for IpPermit {
    fn drop(&mut self) {
        self.limiter.release(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_ipv4_ones_alone() {
        assert_eq!(ip_key(ip("2001:db8:1:2:3:4:5:6"), 32, 64), ip("2001:db8:1:2::"));
        assert_eq!(ip_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 32, 64), ip("2001:db8:1:2::"));
        assert_ne!(ip_key(ip("2001:db8:1:3::1"), 32, 64), ip_key(ip("2001:db8:1:2::1"), 32, 64));
        assert_eq!(ip_key(ip("2001:db8:1:2:3:4:5:6"), 32, 128), ip("2001:db8:1:2:3:4:5:6"));
        assert_eq!(ip_key(ip("2001:db8:1:2:3:4:5:6"), 32, 48), ip("2001:db8:1::"));
        assert_eq!(ip_key(ip("2001:db8::1"), 32, 0), ip("::"));
        assert_eq!(ip_key(ip("192.0.2.7"), 32, 64), ip("192.0.2.7"));
        assert_eq!(ip_key(ip("192.0.2.7"), 24, 64), ip("192.0.2.0"));
        assert_eq!(ip_key(ip("192.0.2.7"), 0, 64), ip("0.0.0.0"));
        // A dual-stack listener's view of an IPv4 client is the IPv4 client.
        assert_eq!(ip_key(ip("::ffff:192.0.2.7"), 32, 64), ip("192.0.2.7"));
    }

    #[test]
    fn the_connection_limit_counts_per_group_and_gives_places_back() {
        let limiter = IpLimiter::new(IpLimits::new().max_connections(2));
        let a = limiter.check(ip("2001:db8::1")).unwrap();
        let _b = limiter.check(ip("2001:db8::2")).unwrap(); // the same /64
        assert_eq!(limiter.check(ip("2001:db8::3")).unwrap_err(), IpRefusal::TooManyConnections { limit: 2 });
        assert!(limiter.check(ip("2001:db8:0:1::1")).is_ok(), "another /64");
        drop(a);
        let _c = limiter.check(ip("2001:db8::3")).unwrap();
        assert_eq!(limiter.addresses(), 1, "the other /64 left with its connection");
    }

    #[test]
    fn the_rate_allows_the_burst_then_says_when_to_retry_and_the_sweep_forgets() {
        let limiter = IpLimiter::new(IpLimits::new().handshake_rate(100.0, 3));
        let permits: Vec<_> = (0..3).map(|_| limiter.check(ip("192.0.2.1")).unwrap()).collect();
        match limiter.check(ip("192.0.2.1")) {
            Err(IpRefusal::RateLimited { retry_after }) => {
                assert!(retry_after <= Duration::from_millis(10), "{retry_after:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(limiter.check(ip("192.0.2.2")).is_ok(), "another address has its own burst");
        drop(permits);
        assert_eq!(limiter.rate_addresses(), 2);
        // Once every token is back (3 at 100/s: 30 ms), a sweep forgets both.
        std::thread::sleep(Duration::from_millis(100));
        limiter.sweep();
        assert_eq!(limiter.rate_addresses(), 0);
    }
}
