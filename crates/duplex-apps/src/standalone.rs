//! One demo as a server of its own, as `examples/<demo>.rs` run it: the page at `/`, the socket
//! at `/ws`.

use std::future::Future;
use std::net::SocketAddr;

use duplex::{Server, ServerStream, WebSocket};

/// Where a standalone demo listens: `--port N` (default 8080) and `--bind ADDR` (default
/// 127.0.0.1) from the command line; other arguments are left for the example.
pub fn address_from_args() -> (SocketAddr, Vec<String>) {
    let mut port = 8080u16;
    let mut bind = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut rest = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage("--port takes a port number"))
            }
            "--bind" => {
                bind = args.next().and_then(|b| b.parse().ok()).unwrap_or_else(|| usage("--bind takes an IP address"))
            }
            _ => rest.push(a),
        }
    }
    (SocketAddr::new(bind, port), rest)
}

/// Exits with status 2 if `rest` (what [`address_from_args`] left) is not empty.
pub fn no_other_args(rest: &[String]) {
    if let Some(a) = rest.first() {
        usage(&format!("unexpected argument {a:?}"));
    }
}

fn usage(what: &str) -> ! {
    eprintln!("usage: [--port N] [--bind ADDR]: {what}");
    std::process::exit(2)
}

/// Serves `page` at `/` and runs `handler` for every WebSocket opened to `/ws`, until the process
/// ends. `name` is for the log.
pub async fn serve<F, Fut>(addr: SocketAddr, name: &'static str, page: &'static str, handler: F) -> std::io::Result<()>
where
    F: Fn(WebSocket<ServerStream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let server = Server::bind(addr).await?;
    let addr = server.local_addr()?;
    tracing::info!("{name}: open http://{addr}/ (socket at ws://{addr}/ws)");
    let handler = std::sync::Arc::new(handler);
    server
        .serve(move |incoming| {
            let handler = handler.clone();
            async move {
                let peer = incoming.peer_addr();
                let Ok(req) = incoming.request().await else { return };
                let path = req.request().path().to_owned();
                if !req.is_websocket() {
                    let method = req.request().method.clone();
                    let _ = match (method.as_str(), path.as_str()) {
                        ("GET" | "HEAD", "/" | "/index.html") => {
                            let headers = [
                                ("Content-Type".to_owned(), "text/html; charset=utf-8".to_owned()),
                                ("Cache-Control".to_owned(), "no-cache".to_owned()),
                            ];
                            let body = if method == "HEAD" { &b""[..] } else { page.as_bytes() };
                            req.respond(200, &headers, body).await
                        }
                        _ => req.reject(404, "not found: the page is at /\n").await,
                    };
                    return;
                }
                if path != "/ws" {
                    let _ = req.reject(404, "not found: the WebSocket is at /ws\n").await;
                    return;
                }
                match req.accept().await {
                    Ok(ws) => {
                        tracing::info!("{name}: {peer} connected");
                        handler(ws).await;
                        tracing::info!("{name}: {peer} left");
                    }
                    Err(e) => tracing::info!(%peer, "handshake failed: {e}"),
                }
            }
        })
        .await
}
