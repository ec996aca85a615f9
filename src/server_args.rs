//! Options every server subcommand shares (`serve`, `echo`): where to listen and how connections
//! are configured. New server-wide options (TLS, compression, limits) go here, once.

use std::net::IpAddr;
use std::time::Duration;

use duplex::{Config, Server};

use crate::limit_args::LimitArgs;
use crate::tls_args::TlsArgs;

/// Where a server listens and how its connections are configured.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerOptions {
    /// Address to bind; use 0.0.0.0 or :: to accept connections from other machines.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Listen backlog: connections the kernel queues, handshake done, until the server accepts
    /// them. Clients beyond it lose their SYN and retry a second later, so size it for the
    /// clients that may reconnect at once (after a restart, all of them). The kernel caps it at
    /// net.core.somaxconn (logged when it does).
    #[arg(long, default_value_t = duplex::listen::DEFAULT_BACKLOG, value_name = "N")]
    pub backlog: u32,
    /// One listening socket per worker thread (--threads), bound with SO_REUSEPORT, each with its
    /// own accept loop and backlog: the kernel spreads new connections over them.
    #[arg(long)]
    pub reuse_port: bool,
    /// Largest message accepted, in bytes (larger ones are refused with close 1009).
    #[arg(long, default_value_t = Config::default().protocol.max_message_size)]
    pub max_message_size: usize,
    /// Decline permessage-deflate (RFC 7692 compression). By default it is accepted when a client
    /// offers it: messages of 64 bytes and more are compressed.
    #[arg(long)]
    pub no_deflate: bool,
    /// Compress each message on its own (answer `server_no_context_takeover`): no compressor is
    /// kept between messages, saving the ~30 KiB a connection otherwise holds while it sends
    /// compressed messages, at the cost of ratio on streams of similar messages and of CPU.
    #[arg(long, conflicts_with = "no_deflate")]
    pub deflate_no_context_takeover: bool,
    /// No context takeover in either direction (answer `server_no_context_takeover` and
    /// `client_no_context_takeover`): a connection holds no codec between messages at all.
    #[arg(long, conflicts_with = "no_deflate")]
    pub deflate_shared: bool,
    /// Free the permessage-deflate codecs of a connection quiet for this many seconds (released
    /// between this and twice this after its last compressed message); 0 keeps them.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0, conflicts_with = "no_deflate")]
    pub deflate_release_after: f64,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub metrics: crate::metrics_args::MetricsArgs,
    /// Take the client's address from peers in this network (repeatable: `127.0.0.1/32`,
    /// `10.0.0.0/8`): from their `Forwarded`/`X-Forwarded-For` headers, or, with
    /// --proxy-protocol, from the PROXY header they send first. Logs, /list and the per-address
    /// limits then see the client, not the proxy. Anyone else's headers are ignored.
    #[arg(long = "trust-proxy", value_name = "CIDR", help_heading = "Proxies")]
    pub trust_proxy: Vec<duplex::Cidr>,
    /// Connections from --trust-proxy peers start with a PROXY protocol header, v1 or v2
    /// (HAProxy's `send-proxy`, `send-proxy-v2`); one without is closed.
    #[arg(long, requires = "trust_proxy", help_heading = "Proxies")]
    pub proxy_protocol: bool,
}

impl ServerOptions {
    /// The connection configuration these options describe.
    pub fn config(&self) -> Config {
        let config = self.limits.apply(Config::default().max_message_size(self.max_message_size));
        let deflate = config
            .protocol
            .deflate
            .clone()
            .enabled(!self.no_deflate)
            .server_no_context_takeover(self.deflate_no_context_takeover || self.deflate_shared)
            .client_no_context_takeover(self.deflate_shared)
            .release_after(Duration::try_from_secs_f64(self.deflate_release_after).ok().filter(|d| !d.is_zero()));
        config.deflate(deflate)
    }

    /// Binds the server on `port` (with TLS if asked for); logs why not and returns `None` on
    /// failure.
    pub async fn bind(&self, port: u16) -> Option<Server> {
        // Every connection is a file descriptor: a soft limit of 1024 would cap a server far below
        // what it can hold (10,000 relay subscribers), so take the hard limit.
        let limit = crate::bench::raise_nofile_limit();
        tracing::debug!("open files limit: {limit}");
        // Before the server exists: every metric is registered with the recorder installed here.
        if !self.metrics.start().await {
            return None;
        }
        let listeners = if self.reuse_port { tokio::runtime::Handle::current().metrics().num_workers() } else { 1 };
        let builder = Server::builder().backlog(self.backlog).reuse_port(listeners).config(self.config());
        let server = match builder.bind((self.bind, port)).await {
            Ok(s) => {
                crate::trim::start();
                tracing::debug!(
                    "listen backlog {}, {} listener{}",
                    s.backlog().unwrap_or(self.backlog),
                    s.listeners(),
                    if s.listeners() == 1 { "" } else { "s (SO_REUSEPORT)" }
                );
                s
            }
            Err(e) => {
                tracing::error!("cannot listen on {}:{port}: {e}", self.bind);
                return None;
            }
        };
        let server = self.with_ip_limits(server)?;
        let server = if self.trust_proxy.is_empty() {
            server
        } else {
            let proxies = self.trust_proxy.iter().fold(duplex::TrustedProxies::new(), |p, net| p.trust_net(*net));
            tracing::info!(
                "trusting {} for the client address ({})",
                self.trust_proxy.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                if self.proxy_protocol { "PROXY protocol" } else { "Forwarded / X-Forwarded-For" }
            );
            server.with_trusted_proxies(proxies.proxy_protocol(self.proxy_protocol))
        };
        let port = server.local_addr().map(|a| a.port()).unwrap_or(port);
        match self.tls.acceptor(port) {
            Ok(None) => Some(server),
            Ok(Some(tls)) => Some(server.with_tls(tls)),
            Err(e) => {
                tracing::error!("cannot serve TLS: {e}");
                None
            }
        }
    }

    /// The server with the per-address limits asked for.
    fn with_ip_limits(&self, server: Server) -> Option<Server> {
        if !self.limits.wants_ip_limits() {
            return Some(server);
        }
        #[cfg(feature = "ip-limits")]
        return Some(server.with_ip_limits(self.limits.ip_limits()));
        #[cfg(not(feature = "ip-limits"))]
        {
            tracing::error!("per-address limits: this duplex was built without the `ip-limits` feature");
            None
        }
    }

    /// The URL schemes served: (`ws` or `wss`, `http` or `https`).
    pub fn schemes(&self) -> (&'static str, &'static str) {
        (self.tls.ws_scheme(), self.tls.http_scheme())
    }
}

/// The exit status of a server command once `Server::serve` has returned: 0 after a graceful
/// shutdown, 1 if accepting failed.
pub fn exit_code(served: std::io::Result<()>) -> u8 {
    match served {
        Ok(()) => crate::exit::OK,
        Err(e) => {
            tracing::error!("accept failed: {e}");
            crate::exit::FAILURE
        }
    }
}
