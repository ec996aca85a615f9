//! A WebSocket echo inside a plain hyper 1 service: `GET /` is answered by the service, any
//! WebSocket request (HTTP/1.1 `Upgrade`, or HTTP/2 extended CONNECT with `--auto`) is upgraded
//! with [`duplex::hyper::upgrade`] and echoed. Used by the Autobahn run of CI (1.*-10.*) and
//! tests/hyper.rs.
//!
//! ```text
//! cargo run --release --example hyper_echo -- [--port 9002] [--auto]
//! ```
//!
//! Without `--auto` connections are served by hyper's HTTP/1.1 builder, so the WebSocket runs on
//! the `TcpStream` itself; with it, by hyper-util's `auto` builder (HTTP/1.1 and h2c with
//! extended CONNECT), where it runs through hyper's upgraded IO.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(env_filter()).init();
    let mut port = 9002u16;
    let mut auto = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).expect("--port takes a port number"),
            "--auto" => auto = true,
            other => panic!("unknown argument {other:?}; usage: hyper_echo [--port N] [--auto]"),
        }
    }
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!("hyper echo listening on ws://{}", listener.local_addr()?);
    // `duplex serve`'s defaults: permessage-deflate accepted when offered.
    run(listener, auto, Arc::new(duplex::Config::default())).await
}

/// Serves connections from `listener` until it fails (tests/hyper.rs runs this in-process).
pub async fn run(listener: TcpListener, auto: bool, config: Arc<duplex::Config>) -> std::io::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let config = config.clone();
        let service = service_fn(move |req| serve(req, config.clone()));
        tokio::spawn(async move {
            let io = TokioIo::new(tcp);
            let served = if auto {
                let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http2().enable_connect_protocol();
                builder.serve_connection_with_upgrades(io, service).await
            } else {
                http1::Builder::new().serve_connection(io, service).with_upgrades().await.map_err(Into::into)
            };
            if let Err(e) = served {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

async fn serve(mut req: Request<Incoming>, config: Arc<duplex::Config>) -> Result<Response<Full<Bytes>>, Infallible> {
    if !duplex::hyper::is_upgrade_request(&req) {
        return Ok(Response::new(Full::new(Bytes::from_static(b"a WebSocket echo: connect with ws://\n"))));
    }
    let (response, upgrading) = duplex::hyper::upgrade(&mut req, &config);
    tokio::spawn(async move {
        let version = upgrading.http_version();
        let mut ws = match upgrading.await {
            Ok(ws) => ws,
            Err(e) => return tracing::debug!("upgrade failed: {e}"),
        };
        tracing::info!(?version, direct = ws.get_ref().is_direct(), "WebSocket open");
        while let Some(Ok(m)) = ws.recv().await {
            // Replies to a burst leave in one write.
            let sent = match ws.feed(m).await {
                Ok(()) if !ws.has_pending_events() => ws.flush().await,
                other => other,
            };
            if sent.is_err() {
                break;
            }
        }
    });
    Ok(response)
}

fn env_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
}
