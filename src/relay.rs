//! `duplex relay`: rooms by URL path. Every text or binary message a client sends is delivered
//! unchanged (same opcode) to every client connected to the same path (query string ignored),
//! the sender included unless `--no-echo`. Built on `duplex-pubsub`: a room is a topic of the
//! `relay` namespace, so `--redis` joins the rooms of every relay sharing that Redis server.
//!
//! permessage-deflate is turned off: every message is fanned out as one frame encoded once and
//! shared by the whole room, which is sent uncompressed anyway, so a negotiated extension would
//! only cost each connection a decompressor for what clients send (see docs/pubsub.md).

use duplex::{Message, ServerStream, WebSocket};
use duplex_apps::router::{App, Ended, Router, Session};
use duplex_pubsub::{topic, PubSub};

use crate::apps::connections;
use crate::exit;
use crate::pubsub_args::PubSubOptions;
use crate::server_args::ServerOptions;

/// The Redis namespace of relay rooms (`/pubsub` topics use `pubsub`).
const NAMESPACE: &str = "relay";

/// Options of `duplex relay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TCP port to listen on.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[command(flatten)]
    server: ServerOptions,
    /// Do not send a message back to the client that sent it (the others in its room still get it).
    #[arg(long)]
    no_echo: bool,
    #[command(flatten)]
    pubsub: PubSubOptions,
}

pub async fn run(args: Args) -> u8 {
    let mut options = args.server.clone();
    options.no_deflate = true;
    options.deflate_no_context_takeover = false;
    let Some(server) = options.bind(args.port).await else {
        return exit::FAILURE;
    };
    let pubsub = match args.pubsub.build(NAMESPACE) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return exit::FAILURE;
        }
    };
    let addr = server.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let (ws, _) = args.server.schemes();
    let echo = if args.no_echo { "without echo" } else { "with echo" };
    tracing::info!("relaying on {ws}://{addr}/<room> (a room is a URL path; {echo})");
    crate::signals::shutdown_on_signals(server.shutdown_handle());
    let router = Router::new()
        .fallback(Relay { pubsub, no_echo: args.no_echo })
        .not_found(426, "duplex relay: open a WebSocket to ws://<host>:<port>/<room>\n");
    crate::server_args::exit_code(router.serve(server).await)
}

/// Rooms: every path that is a valid topic name.
struct Relay {
    pubsub: PubSub,
    no_echo: bool,
}

impl App for Relay {
    fn check(&self, path: &str) -> Result<(), (u16, String)> {
        topic::check_topic(path).map_err(|e| (400, format!("not a room name: {e}\n")))
    }

    fn serve(&self, ws: WebSocket<ServerStream>, path: &str) -> Session {
        let (pubsub, room, no_echo) = (self.pubsub.clone(), path.to_owned(), self.no_echo);
        Box::pin(async move { session(ws, &pubsub, &room, no_echo).await })
    }
}

/// One connection in `room`: relay what it sends, log how it came and went.
async fn session(mut ws: WebSocket<ServerStream>, pubsub: &PubSub, room: &str, no_echo: bool) -> Ended {
    let me = pubsub.attach(&mut ws);
    let id = me.id();
    if let Err(e) = me.subscribe(room) {
        tracing::warn!("#{id} cannot join {room}: {e}");
        drop(me);
        return Ended::new(ws, Ok(()));
    }
    tracing::info!("#{id} joined {room}; room {room} has {}", connections(pubsub.subscriber_count(room)));
    let mut error = None;
    while let Some(received) = ws.recv().await {
        let message: Message = match received {
            Ok(m) => m,
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        let len = message.len();
        let result = if no_echo { pubsub.publish_except(room, message, &me) } else { pubsub.publish(room, message) };
        match result {
            Ok(d) => tracing::debug!("#{id} → {room}: {len} bytes to {} ({} dropped)", d.delivered, d.dropped),
            Err(e) => tracing::warn!("#{id} → {room}: {e}"),
        }
    }
    drop(me);
    let left = connections(pubsub.subscriber_count(room));
    Ended::new(ws, error.map_or(Ok(()), Err)).note(format!("; room {room} has {left}"))
}
