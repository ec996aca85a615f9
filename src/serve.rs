//! `duplex serve`: the reference scenario. A page at `/`; every WebSocket connection is logged
//! (opened, each message received, closed) and receives `Message <n>` every interval until it
//! closes. Lines typed on stdin are sent to the connections (see [`crate::console`]).
//! WebSockets to `/pubsub` get the JSON pub/sub endpoint instead ([`crate::apps::pubsub`]).
//! The pub/sub demos have their pages at `/chat`, `/feed`, `/multiplayer` and `/progress`, and their
//! WebSockets at `<page>/ws` ([`duplex_apps::demos`]); with `--redis`, the chat's rooms (messages,
//! notices and history) are shared with every node using the same Redis server. Each is an
//! application mounted on a [`Router`], one line each in [`run`].

use std::time::Duration;

use duplex::{Message, WebSocket};
use duplex_apps::router::Router;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::server_args::ServerOptions;
use crate::{exit, parse_duration};

/// The demo page, embedded in the binary.
const INDEX_HTML: &str = include_str!("../web/index.html");
/// The page of the `/pubsub` client (`web/duplex-pubsub.js`), at `/pubsub` (a plain GET; WebSockets
/// there get the endpoint).
const PUBSUB_HTML: &str = include_str!("../web/pubsub.html");

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
    #[command(flatten)]
    history: crate::pubsub_args::HistoryOptions,
}

pub async fn run(args: Args) -> u8 {
    let Some(server) = args.server.bind(args.port).await else {
        return exit::FAILURE;
    };
    let addr = server.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let (ws, http) = args.server.schemes();
    tracing::info!("listening on {ws}://{addr} (page at {http}://{addr}/)");
    let interval = args.interval;
    let pubsub = match args.pubsub.build_with("pubsub", Some(&args.history)) {
        Ok(p) => duplex_pubsub::JsonEndpoint::new(p),
        Err(e) => {
            tracing::error!("{e}");
            return exit::FAILURE;
        }
    };
    for (pattern, policy) in &args.history.history {
        tracing::info!(
            "/pubsub: history on {pattern}: {} messages for {}s after the latest",
            policy.size,
            policy.ttl.as_secs_f64()
        );
    }
    let demos = match duplex_apps::demos::Demos::start(args.pubsub.redis.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e}");
            return exit::FAILURE;
        }
    };
    tokio::spawn(crate::console::run(server.connections()));
    crate::signals::shutdown_on_signals(server.shutdown_handle());
    // Each application is one line: the seed page and its pushes, /pubsub, the four demos.
    let router = Router::new()
        .page("/", INDEX_HTML)
        .page("/index.html", INDEX_HTML)
        .file("/reconnect.js", duplex_apps::SCRIPT_TYPE, duplex_apps::RECONNECT_JS)
        .file("/duplex-pubsub.js", duplex_apps::SCRIPT_TYPE, duplex_apps::DUPLEX_PUBSUB_JS)
        .page(crate::apps::pubsub::PATH, PUBSUB_HTML)
        .socket(crate::apps::pubsub::PATH, crate::apps::pubsub::PubSubApp(pubsub));
    let router = demos
        .mount(router)
        .fallback(Seed { interval })
        .not_found(404, "not found: the page is at / and WebSockets connect to any path\n");
    crate::server_args::exit_code(router.serve(server).await)
}

/// The reference scenario, at every path nothing else is mounted at: log what a connection
/// sends, push `Message <n>` to it every `interval`.
#[derive(Clone)]
struct Seed {
    interval: Duration,
}

duplex_apps::app_from_handler!(Seed, session);

/// One connection: log what it sends, push on a timer, until it closes.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, seed: &Seed) -> duplex::Result<()> {
    let id = ws.id().unwrap_or_default();
    let interval = seed.interval;
    let mut ticker = (!interval.is_zero()).then(|| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        tokio::select! {
            msg = ws.recv() => match msg {
                Some(Ok(m)) => log_message(id, &m),
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            _ = async { ticker.as_mut().expect("guarded").tick().await }, if ticker.is_some() => {
                let n: u32 = rand::random_range(0..1_000_000);
                ws.send(format!("Message {n}")).await?;
            }
        }
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
