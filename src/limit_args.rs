//! Limits and timeouts every server subcommand shares, each with the library's default.
//! docs/operations.md explains each one and when to change it.

use std::time::Duration;

use duplex::{CloseCode, Config, SlowConsumer};

use crate::parse_duration;

/// Limits, timeouts and policies of a server (under "Limits" in `--help`).
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Most connections at once, handshakes included; more are answered 503.
    #[arg(long, default_value_t = Config::default().max_connections)]
    pub max_connections: usize,
    /// Time a client has for the TLS and HTTP handshake before it is dropped.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// Largest HTTP request head, in bytes (larger: 431).
    #[arg(long, default_value_t = 8192)]
    pub max_header_bytes: usize,
    /// Most HTTP request headers (more: 431).
    #[arg(long, default_value_t = 64)]
    pub max_headers: usize,
    /// Largest frame accepted, in bytes (larger: close 1009).
    #[arg(long, default_value_t = Config::default().protocol.max_frame_size)]
    pub max_frame_size: usize,
    /// Time to wait for the peer's close frame and TCP close after ours.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub close_timeout: Duration,
    /// Send a ping after this long without hearing from a client (`0`: never).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// Drop a client that sends nothing this long after a ping: it is gone (half-open).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub pong_timeout: Duration,
    /// Close (1001) a connection that sent no message this long (`0`: never).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Bytes that may wait to be written to one client before the slow-consumer policy applies.
    #[arg(long, default_value_t = Config::default().write_buffer_limit)]
    pub write_buffer_limit: usize,
    /// What to do with a message for a client over its write buffer limit: `reject` (the sender
    /// is told), `drop` (skip it for that client) or `close` (close the client with 1008).
    #[arg(long, default_value = "reject", value_parser = ["reject", "drop", "close"])]
    pub slow_consumer: String,
    /// Allow WebSockets only from this Origin (repeatable; `https://*.example.org` for
    /// subdomains). Others get 403. Without it any origin is allowed.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origins: Vec<String>,
    /// On SIGINT/SIGTERM: time the connections get to finish their close handshakes.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Most connections at once from one client address (IPv6: one /64); more get 429 (wss://:
    /// closed before TLS). `0`: no limit.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_conns_per_ip: u32,
    /// Most handshakes per second from one client address, on average (`10/s` or `10`); over
    /// it, 429 with Retry-After. Off by default.
    #[arg(long, value_name = "R/s", value_parser = parse_rate)]
    pub handshake_rate: Option<f64>,
    /// Handshakes one address may start at once before --handshake-rate applies (default: one
    /// second's worth, at least 1).
    #[arg(long, value_name = "B", requires = "handshake_rate")]
    pub handshake_burst: Option<u32>,
    /// Leading bits of an IPv4 address that name one client for the per-address limits.
    #[arg(long, default_value_t = 32, value_name = "BITS", value_parser = clap::value_parser!(u8).range(0..=32))]
    pub per_ip_v4_prefix: u8,
    /// Leading bits of an IPv6 address that name one client for the per-address limits.
    #[arg(long, default_value_t = 64, value_name = "BITS", value_parser = clap::value_parser!(u8).range(0..=128))]
    pub per_ip_v6_prefix: u8,
}

/// `10/s`, `2.5/s` or `10`: handshakes per second, over zero.
fn parse_rate(s: &str) -> Result<f64, String> {
    let n = s.strip_suffix("/s").unwrap_or(s).trim();
    match n.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!("`{s}` is not a rate: write handshakes per second, like `10/s`")),
    }
}

impl LimitArgs {
    /// Applies these limits to `config`.
    pub fn apply(&self, mut config: Config) -> Config {
        config.max_connections = self.max_connections;
        config.handshake_timeout = self.handshake_timeout;
        config.handshake_limits.max_head_bytes = self.max_header_bytes;
        config.handshake_limits.max_headers = self.max_headers;
        let off_if_zero = |d: Duration| (!d.is_zero()).then_some(d);
        let mut config = config
            .max_frame_size(self.max_frame_size)
            .close_timeout(self.close_timeout)
            .keepalive(off_if_zero(self.ping_interval), self.pong_timeout)
            .idle_timeout(off_if_zero(self.idle_timeout));
        config.write_buffer_limit = self.write_buffer_limit;
        config.slow_consumer = match self.slow_consumer.as_str() {
            "drop" => SlowConsumer::Drop,
            "close" => SlowConsumer::Close(CloseCode::POLICY_VIOLATION),
            _ => SlowConsumer::Reject,
        };
        config.allowed_origins = self.allow_origins.clone();
        config.shutdown_grace = self.shutdown_grace;
        config
    }

    /// Whether a per-address limit is asked for.
    pub fn wants_ip_limits(&self) -> bool {
        self.max_conns_per_ip > 0 || self.handshake_rate.is_some()
    }

    /// The per-address limits asked for.
    #[cfg(feature = "ip-limits")]
    pub fn ip_limits(&self) -> duplex::ip_limit::IpLimits {
        let mut limits =
            duplex::ip_limit::IpLimits::new().ipv4_prefix(self.per_ip_v4_prefix).ipv6_prefix(self.per_ip_v6_prefix);
        if self.max_conns_per_ip > 0 {
            limits = limits.max_connections(self.max_conns_per_ip);
        }
        if let Some(rate) = self.handshake_rate {
            limits = limits.handshake_rate(rate, self.handshake_burst.unwrap_or(rate.ceil() as u32));
        }
        limits
    }
}
