//! One demo as a server of its own, as `examples/<demo>.rs` run it: the page at `/` (and the
//! module it imports at `/reconnect.js`), the socket at `/ws`.

use std::net::SocketAddr;

use duplex::Server;

use crate::router::{App, Router};

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

/// Serves `page` at `/` (and the module it imports at `/reconnect.js`) and `app` for every
/// WebSocket opened to `/ws`, until the process ends. `name` is for the log.
pub async fn serve(addr: SocketAddr, name: &'static str, page: &'static str, app: impl App) -> std::io::Result<()> {
    let server = Server::bind(addr).await?;
    let addr = server.local_addr()?;
    tracing::info!("{name}: open http://{addr}/ (socket at ws://{addr}/ws)");
    Router::new()
        .demo("", page, app)
        .not_found(404, "not found: the page is at / and the WebSocket at /ws\n")
        .serve(server)
        .await
}
