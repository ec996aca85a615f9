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
}

impl LimitArgs {
    /// Applies these limits to `config`.
    pub fn apply(&self, mut config: Config) -> Config {
        config.max_connections = self.max_connections;
        config.handshake_timeout = self.handshake_timeout;
        config.handshake_limits.max_head_bytes = self.max_header_bytes;
        config.handshake_limits.max_headers = self.max_headers;
        config.protocol.max_frame_size = self.max_frame_size;
        config.close_timeout = self.close_timeout;
        config.ping_interval = (!self.ping_interval.is_zero()).then_some(self.ping_interval);
        config.pong_timeout = self.pong_timeout;
        config.idle_timeout = (!self.idle_timeout.is_zero()).then_some(self.idle_timeout);
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
}
