//! `duplex echo`: every message back unchanged.

use duplex::{Config, Server};

use crate::{exit, Listen};

/// Options of `duplex echo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TCP port to listen on.
    #[arg(long, default_value_t = 9001)]
    port: u16,
    #[command(flatten)]
    listen: Listen,
    /// Largest message accepted, in bytes (larger ones are refused with close 1009).
    #[arg(long, default_value_t = Config::default().protocol.max_message_size)]
    max_message_size: usize,
}

pub async fn run(args: Args) -> u8 {
    let config = Config::default().max_message_size(args.max_message_size);
    let server = match Server::bind((args.listen.bind, args.port)).await {
        Ok(s) => s.with_config(config),
        Err(e) => {
            tracing::error!("cannot listen on {}:{}: {e}", args.listen.bind, args.port);
            return exit::FAILURE;
        }
    };
    let addr = server.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!("echo server listening on ws://{addr}");
    let served = server
        .serve(|incoming| async move {
            let peer = incoming.peer_addr();
            let req = match incoming.request().await {
                Ok(r) => r,
                Err(e) => return tracing::debug!(%peer, "handshake failed: {e}"),
            };
            if !req.is_websocket() {
                let _ = req.reject(426, "this is a WebSocket echo server: connect with ws://\n").await;
                return;
            }
            let mut ws = match req.accept().await {
                Ok(ws) => ws,
                Err(e) => return tracing::debug!(%peer, "handshake failed: {e}"),
            };
            while let Some(msg) = ws.recv().await {
                match msg {
                    Ok(m) => {
                        if let Err(e) = ws.send(m).await {
                            tracing::debug!(%peer, "send failed: {e}");
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(%peer, "connection ended: {e}");
                        break;
                    }
                }
            }
        })
        .await;
    match served {
        Ok(()) => exit::OK,
        Err(e) => {
            tracing::error!("accept failed: {e}");
            exit::FAILURE
        }
    }
}
