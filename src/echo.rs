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
        .serve(|incoming| async move {
            let peer = incoming.peer_addr();
            let req = match incoming.request().await {
                Ok(r) => r,
                Err(e) => return tracing::debug!(%peer, "handshake failed: {e}"),
            };
            if !req.is_websocket() {
                let _ =
                    req.reject(426, "this is a WebSocket echo server: connect with ws:// (wss:// with TLS)\n").await;
                return;
            }
            let mut ws = match req.accept().await {
                Ok(ws) => ws,
                Err(e) => return tracing::debug!(%peer, "handshake failed: {e}"),
            };
            while let Some(msg) = ws.recv().await {
                match msg {
                    Ok(m) => {
                        // One write per read: replies to a burst of pipelined messages are
                        // queued and leave together once the last of them is answered.
                        let sent = match ws.feed(m).await {
                            Ok(()) if !ws.has_pending_events() => ws.flush().await,
                            other => other,
                        };
                        if let Err(e) = sent {
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
    crate::server_args::exit_code(served)
}
