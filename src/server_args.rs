//! Options every server subcommand shares (`serve`, `echo`): where to listen and how connections
//! are configured. New server-wide options (TLS, compression, limits) go here, once.

use std::net::IpAddr;

use duplex::{Config, Server};

/// Where a server listens and how its connections are configured.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerOptions {
    /// Address to bind; use 0.0.0.0 or :: to accept connections from other machines.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Largest message accepted, in bytes (larger ones are refused with close 1009).
    #[arg(long, default_value_t = Config::default().protocol.max_message_size)]
    pub max_message_size: usize,
}

impl ServerOptions {
    /// The connection configuration these options describe.
    pub fn config(&self) -> Config {
        Config::default().max_message_size(self.max_message_size)
    }

    /// Binds the server on `port`; logs why not and returns `None` on failure.
    pub async fn bind(&self, port: u16) -> Option<Server> {
        match Server::bind((self.bind, port)).await {
            Ok(s) => Some(s.with_config(self.config())),
            Err(e) => {
                tracing::error!("cannot listen on {}:{port}: {e}", self.bind);
                None
            }
        }
    }
}
