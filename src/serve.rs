//! `duplex serve`: the reference scenario. A page at `/`; every WebSocket connection is logged
//! (opened, each message received, closed) and receives `Message <n>` every interval until it
//! closes. Lines typed on stdin are sent to the connections (see [`crate::console`]).
//! WebSockets to `/pubsub` get the JSON pub/sub endpoint instead ([`crate::apps::pubsub`]).
//! The pub/sub demos have their pages at `/chat`, `/feed`, `/multiplayer` and `/progress`, and their
//! WebSockets at `<page>/ws` ([`crate::apps::demos`]); with `--redis`, the chat's rooms (messages,
//! notices and history) are shared with every node using the same Redis server.

use std::time::Duration;

use duplex::{Connections, Message, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::server_args::ServerOptions;
use crate::{exit, parse_duration};

/// The demo page, embedded in the binary.
const INDEX_HTML: &str = include_str!("../web/index.html");

/// Options of `duplex serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TCP port to listen on.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[command(flatten)]
    server: ServerOptions,
    /// Time between pushes of `Message <n>` to each connection (`5s`, `500ms`); `0` turns them off.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    interval: Duration,
    /// Topics of the JSON pub/sub endpoint at /pubsub (docs/pubsub.md).
    #[command(flatten)]
    pubsub: crate::pubsub_args::PubSubOptions,
}

pub async fn run(args: Args) -> u8 {
    let Some(server) = args.server.bind(args.port).await else {
        return exit::FAILURE;
    };
    let addr = server.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let (ws, http) = args.server.schemes();
    tracing::info!("listening on {ws}://{addr} (page at {http}://{addr}/)");
    let interval = args.interval;
    let pubsub = match args.pubsub.build("pubsub") {
        Ok(p) => duplex_pubsub::JsonEndpoint::new(p),
        Err(e) => {
            tracing::error!("{e}");
            return exit::FAILURE;
        }
    };
    let demos = match crate::apps::demos::Demos::start(args.pubsub.redis.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e}");
            return exit::FAILURE;
        }
    };
    let connections = Connections::new();
    tokio::spawn(crate::console::run(connections.clone()));
    crate::signals::shutdown_on_signals(server.shutdown_handle());
    let served = server
        .serve(move |incoming| {
            let connections = connections.clone();
            let pubsub = pubsub.clone();
            let demos = demos.clone();
            async move {
                let peer = incoming.peer_addr();
                let req = match incoming.request().await {
                    Ok(r) => r,
                    Err(e) => return tracing::debug!(%peer, "bad request: {e}"),
                };
                if !req.is_websocket() {
                    let path = req.request().path().to_owned();
                    let method = req.request().method.clone();
                    let page = match path.as_str() {
                        "/" | "/index.html" => Some(INDEX_HTML),
                        p => crate::apps::demos::page(p),
                    };
                    let _ = match (method.as_str(), page) {
                        ("GET" | "HEAD", Some(page)) => {
                            let headers = [
                                ("Content-Type".to_owned(), "text/html; charset=utf-8".to_owned()),
                                ("Cache-Control".to_owned(), "no-cache".to_owned()),
                            ];
                            let body = if method == "HEAD" { &b""[..] } else { page.as_bytes() };
                            req.respond(200, &headers, body).await
                        }
                        _ => req.reject(404, "not found: the page is at / and WebSockets connect to any path\n").await,
                    };
                    return;
                }
                let path = req.request().target.clone();
                let app_path = req.request().path().to_owned();
                match req.accept().await {
                    Ok(mut ws) => {
                        let registration = connections.register(&mut ws, peer, path.clone());
                        let id = registration.id();
                        tracing::info!("#{id} opened from {peer} ({path})");
                        match app_path.as_str() {
                            crate::apps::pubsub::PATH => crate::apps::pubsub::session(id, ws, &pubsub).await,
                            p => match crate::apps::demos::socket(p) {
                                Some(demo) => demos.session(id, ws, demo).await,
                                None => session(id, ws, interval).await,
                            },
                        }
                    }
                    Err(e) => tracing::info!(%peer, "handshake failed: {e}"),
                }
            }
        })
        .await;
    crate::server_args::exit_code(served)
}

/// One connection: log what it sends, push on a timer, log how it closed.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(id: u64, mut ws: WebSocket<S>, interval: Duration) {
    let mut ticker = (!interval.is_zero()).then(|| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut error = None;
    loop {
        tokio::select! {
            msg = ws.recv() => match msg {
                Some(Ok(m)) => log_message(id, &m),
                Some(Err(e)) => { error = Some(e); break }
                None => break,
            },
            _ = async { ticker.as_mut().expect("guarded").tick().await }, if ticker.is_some() => {
                let n: u32 = rand::random_range(0..1_000_000);
                if let Err(e) = ws.send(format!("Message {n}")).await {
                    error = Some(e);
                    break;
                }
            }
        }
    }
    let by = |us: bool| if us { " (closed by the server)" } else { "" };
    match (ws.closing_frame(), error) {
        (Some((Some(f), us)), _) => tracing::info!("#{id} closed {} {}{}", f.code, f.reason, by(us)),
        (Some((None, us)), _) => tracing::info!("#{id} closed 1005 (no status code){}", by(us)),
        (None, Some(e)) => tracing::info!("#{id} closed {} ({e})", e.close_code()),
        (None, None) => tracing::info!("#{id} closed 1006 (connection lost)"),
    }
}

fn log_message(id: u64, m: &Message) {
    match m {
        Message::Text(t) => tracing::info!("#{id} received message {t}"),
        Message::Binary(b) => {
            let prefix: String = b.iter().take(16).map(|x| format!("{x:02x}")).collect();
            let more = if b.len() > 16 { "…" } else { "" };
            tracing::info!("#{id} received binary message ({} bytes) {prefix}{more}", b.len());
        }
    }
}
