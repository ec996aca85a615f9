//! `duplex echo`: every message back unchanged.

use crate::exit;
use crate::server_args::ServerOptions;

/// Options of `duplex echo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TCP port to listen on.
    #[arg(long, default_value_t = 9001)]
    port: u16,
    #[command(flatten)]
    server: ServerOptions,
}

pub async fn run(args: Args) -> u8 {
    let Some(server) = args.server.bind(args.port).await else {
        return exit::FAILURE;
    };
    let addr = server.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!("echo server listening on {}://{addr}", args.server.schemes().0);
    crate::signals::shutdown_on_signals(server.shutdown_handle());
    let served = server
        .serve(|incoming| {
            // The handshake runs in a future of its own, boxed and freed once it is done: the
            // task keeps only a pointer to it, not the `Incoming` and the request's locals
            // beside the `WebSocket` for the connection's whole life (1,200 -> 680 bytes,
            // crates/duplex/tests/future_sizes.rs).
            let handshake = Box::pin(handshake(incoming));
            async move {
                let Some((peer, mut ws)) = handshake.await else { return };
                // One write per read: replies to a burst of pipelined messages are queued and
                // leave together once the last of them is answered. Written as plain
                // statements, not a `match` over the send's result: this future is every idle
                // connection's task, and that shape made it 500 bytes larger.
                let ended = loop {
                    match ws.recv().await {
                        Some(Ok(m)) => {
                            if let Err(e) = ws.feed(m).await {
                                break Some(e);
                            }
                            if !ws.has_pending_events() {
                                if let Err(e) = ws.flush().await {
                                    break Some(e);
                                }
                            }
                        }
                        Some(Err(e)) => break Some(e),
                        None => break None,
                    }
                };
                if let Some(e) = ended {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            }
        })
        .await;
    crate::server_args::exit_code(served)
}

/// Reads the request and answers it: the WebSocket and its client's address, or `None` when the
/// connection was refused or failed (logged).
async fn handshake(
    incoming: duplex::Incoming<duplex::ServerStream>,
) -> Option<(std::net::SocketAddr, duplex::WebSocket<duplex::ServerStream>)> {
    let peer = incoming.peer_addr();
    let req = match incoming.request().await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%peer, "handshake failed: {e}");
            return None;
        }
    };
    let peer = req.peer_addr(); // the client, as a trusted proxy told it
    if !req.is_websocket() {
        let _ = req.reject(426, "this is a WebSocket echo server: connect with ws:// (wss:// with TLS)\n").await;
        return None;
    }
    match req.accept().await {
        Ok(ws) => Some((peer, ws)),
        Err(e) => {
            tracing::debug!(%peer, "handshake failed: {e}");
            None
        }
    }
}
