//! Options every server subcommand shares (`serve`, `echo`): where to listen and how connections
//! are configured. New server-wide options (TLS, compression, limits) go here, once.

use std::net::IpAddr;

use duplex::{Config, Server};

use crate::limit_args::LimitArgs;
use crate::tls_args::TlsArgs;

/// Where a server listens and how its connections are configured.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerOptions {
    /// Address to bind; use 0.0.0.0 or :: to accept connections from other machines.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Largest message accepted, in bytes (larger ones are refused with close 1009).
    #[arg(long, default_value_t = Config::default().protocol.max_message_size)]
    pub max_message_size: usize,
    /// Decline permessage-deflate (RFC 7692 compression). By default it is accepted when a client
    /// offers it: messages of 64 bytes and more are compressed.
    #[arg(long)]
    pub no_deflate: bool,
    /// Compress each message on its own (answer `server_no_context_takeover`): no compressor is
    /// kept between messages, saving the ~370 KiB a connection otherwise holds once it has sent a
    /// compressed message, at the cost of ratio on streams of similar messages and of CPU.
    #[arg(long, conflicts_with = "no_deflate")]
    pub deflate_no_context_takeover: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

impl ServerOptions {
    /// The connection configuration these options describe.
    pub fn config(&self) -> Config {
        let mut config = self.limits.apply(Config::default().max_message_size(self.max_message_size));
        config.protocol.deflate.enabled = !self.no_deflate;
        config.protocol.deflate.server_no_context_takeover = self.deflate_no_context_takeover;
        config
    }

    /// Binds the server on `port` (with TLS if asked for); logs why not and returns `None` on
    /// failure.
    pub async fn bind(&self, port: u16) -> Option<Server> {
        // Every connection is a file descriptor: a soft limit of 1024 would cap a server far below
        // what it can hold (10,000 relay subscribers), so take the hard limit.
        let limit = crate::bench::raise_nofile_limit();
        tracing::debug!("open files limit: {limit}");
        let server = match Server::bind((self.bind, port)).await {
            Ok(s) => s.with_config(self.config()),
            Err(e) => {
                tracing::error!("cannot listen on {}:{port}: {e}", self.bind);
                return None;
            }
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
