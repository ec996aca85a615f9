//! The pub/sub demos in `duplex serve` (`crates/duplex-apps`, docs/demos.md): each page at its
//! path, its WebSocket at `<path>/ws`.
//!
//! | page | socket | demo |
//! | --- | --- | --- |
//! | `/chat` | `/chat/ws` | rooms, nicknames, the last 50 messages replayed on joining |
//! | `/feed` | `/feed/ws` | a live chart of a source sampled 4 times a second |
//! | `/multiplayer` | `/multiplayer/ws` | a shared world the server steps and broadcasts 30 times a second |
//! | `/progress` | `/progress/ws` | a long job's output lines and progress, watched by everyone |

use duplex::WebSocket;
use duplex_apps::{chat, feed, multiplayer, progress};
use duplex_pubsub::PubSub;
use tokio::io::{AsyncRead, AsyncWrite};

/// One of the demos.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Demo {
    Chat,
    Feed,
    Multiplayer,
    Progress,
}

impl Demo {
    const ALL: [Demo; 4] = [Demo::Chat, Demo::Feed, Demo::Multiplayer, Demo::Progress];

    /// Where its page is.
    pub fn path(self) -> &'static str {
        match self {
            Demo::Chat => "/chat",
            Demo::Feed => "/feed",
            Demo::Multiplayer => "/multiplayer",
            Demo::Progress => "/progress",
        }
    }

    fn page(self) -> &'static str {
        match self {
            Demo::Chat => chat::PAGE,
            Demo::Feed => feed::PAGE,
            Demo::Multiplayer => multiplayer::PAGE,
            Demo::Progress => progress::PAGE,
        }
    }
}

/// The page served at `path` (`/chat` or `/chat/`), if it is a demo's.
pub fn page(path: &str) -> Option<&'static str> {
    let path = path.strip_suffix('/').unwrap_or(path);
    Demo::ALL.into_iter().find(|d| d.path() == path).map(Demo::page)
}

/// The demo whose socket is at `path` (`/chat/ws`).
pub fn socket(path: &str) -> Option<Demo> {
    let path = path.strip_suffix("/ws")?;
    Demo::ALL.into_iter().find(|d| d.path() == path)
}

/// The four demos' shared state and background tasks, on topics of their own. The feed, the
/// world and the jobs are in memory, per process (a sampler or a world on every node would be
/// heard twice); with `--redis`, the chat's rooms are shared by every node: its topics go
/// through the Redis backplane and its history is kept in Redis (docs/demos.md).
#[derive(Clone)]
pub struct Demos {
    chat: chat::Chat,
    feed: feed::Feed,
    world: multiplayer::World,
    jobs: progress::Jobs,
}

impl Demos {
    /// Starts the demos (the feed's sampler and the world's loop wait until someone watches),
    /// the chat through the Redis server at `redis` if there is one. Must run inside the runtime.
    /// The error says what to fix.
    pub fn start(redis: Option<&str>) -> Result<Demos, String> {
        let builder = || PubSub::builder().namespace(duplex_apps::NAMESPACE);
        let pubsub = builder().build().map_err(|e| e.to_string())?;
        let chat = match redis {
            None => chat::Chat::new(pubsub.clone()),
            #[cfg(feature = "redis")]
            Some(url) => {
                let shared = builder().redis(url).build().map_err(|e| format!("--redis: {e}"))?;
                let rooms = chat::Chat::with_redis_history(shared, url).map_err(|e| format!("--redis: {e}"))?;
                tracing::info!("chat: rooms shared through Redis, history in {}", chat::redis_key("<room>"));
                rooms
            }
            #[cfg(not(feature = "redis"))]
            Some(_) => return Err("--redis: this duplex was built without the `redis` feature".to_owned()),
        };
        Ok(Demos {
            chat,
            feed: feed::Feed::start(pubsub.clone()),
            world: multiplayer::World::start(pubsub.clone()),
            jobs: progress::Jobs::new(pubsub, progress::JobSpec::simulated()),
        })
    }

    /// Serves connection `id` with `demo` until it closes, then logs how it closed.
    pub async fn session<S: AsyncRead + AsyncWrite + Unpin>(&self, id: u64, mut ws: WebSocket<S>, demo: Demo) {
        let result = match demo {
            Demo::Chat => chat::handle(&mut ws, &self.chat).await,
            Demo::Feed => feed::handle(&mut ws, &self.feed).await,
            Demo::Multiplayer => multiplayer::handle(&mut ws, &self.world).await,
            Demo::Progress => progress::handle(&mut ws, &self.jobs).await,
        };
        super::log_closed(id, &ws, result.err(), "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(page("/chat").is_some_and(|p| p.contains("<title>Chat")));
        assert!(page("/feed/").is_some());
        assert_eq!(page("/chat/ws"), None);
        assert_eq!(page("/"), None);
        assert_eq!(socket("/multiplayer/ws"), Some(Demo::Multiplayer));
        assert_eq!(socket("/progress/ws"), Some(Demo::Progress));
        assert_eq!(socket("/progress"), None);
        assert_eq!(socket("/ws"), None);
    }
}
