//! tokio-websockets echo server, as its `echo_server` example: `ServerBuilder::accept`, then every
//! text and binary message sent back (pings are answered by the library). A current-thread runtime
//! and `unconstrained` connection tasks, as in the example; default limits and frame size.
//!
//! Usage: tokio-websockets-echo PORT (listens on 127.0.0.1).

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_websockets::ServerBuilder;

fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9001".into());
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(format!("127.0.0.1:{port}")).await?;
        loop {
            let (conn, _) = listener.accept().await?;
            tokio::spawn(tokio::task::unconstrained(async move {
                let Ok((_request, mut server)) = ServerBuilder::new().accept(conn).await else {
                    return;
                };
                while let Some(Ok(item)) = server.next().await {
                    if (item.is_text() || item.is_binary()) && server.send(item).await.is_err() {
                        break;
                    }
                }
            }));
        }
    })
}
