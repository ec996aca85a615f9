//! The four demos together, as `duplex serve` mounts them: each page at its path, its WebSocket
//! at `<path>/ws`.
//!
//! | page | socket | demo |
//! | --- | --- | --- |
//! | `/chat` | `/chat/ws` | rooms, nicknames, the last 50 messages replayed on joining |
//! | `/feed` | `/feed/ws` | a live chart of a source sampled 4 times a second |
//! | `/multiplayer` | `/multiplayer/ws` | a shared world the server steps and broadcasts 30 times a second |
//! | `/progress` | `/progress/ws` | a long job's output lines and progress, watched by everyone |

use duplex_pubsub::PubSub;

use crate::router::Router;
use crate::{chat, feed, multiplayer, progress};

/// The four demos' shared state and background tasks, on topics of their own. The feed, the
/// world and the jobs are in memory, per process (a sampler or a world on every node would be
/// heard twice); with Redis, the chat's rooms are shared by every node: its topics go through the
/// Redis backplane and its history and members are kept in Redis (docs/demos.md).
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
        let builder = || PubSub::builder().namespace(crate::NAMESPACE);
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

    /// Mounts the four demos on `router` at `/chat`, `/feed`, `/multiplayer` and `/progress`.
    pub fn mount(&self, router: Router) -> Router {
        router
            .demo("/chat", chat::PAGE, self.chat.clone())
            .demo("/feed", feed::PAGE, self.feed.clone())
            .demo("/multiplayer", multiplayer::PAGE, self.world.clone())
            .demo("/progress", progress::PAGE, self.jobs.clone())
    }
}
