//! [`JsonEndpoint`]: the `/pubsub` endpoint as a reusable handler — give it an accepted
//! connection and it speaks the [JSON protocol](crate::json) until the connection ends.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use duplex_pubsub::{JsonEndpoint, PubSub};
//! let endpoint = JsonEndpoint::new(PubSub::new());
//! let server = duplex::Server::bind("127.0.0.1:8080").await?;
//! loop {
//!     let incoming = server.accept().await?;
//!     let endpoint = endpoint.clone();
//!     tokio::spawn(async move {
//!         let Ok(req) = incoming.request().await else { return };
//!         let Ok(mut ws) = req.accept().await else { return };
//!         let _ = endpoint.run(&mut ws).await;
//!     });
//! }
//! # }
//! ```
//!
//! Requests are answered in the order they came. Publishes are pipelined: each is made as soon
//! as it arrives (so one connection's publishes keep their order) and its acknowledgement sent
//! when its turn comes; a subscribe, unsubscribe or history read waits for the answers before it,
//! so that its reply — which for a resume follows the replayed messages — stays in order.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use duplex::{CloseCode, CloseFrame, Message, WebSocket};
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;
use crate::history::{HistoryQuery, PublishOptions, SubscribeOptions};
use crate::json::{self, Request};
use crate::pubsub::PubSub;
use crate::subscriber::Subscriber;

/// The default for [`JsonEndpoint::max_data_size`]: 64 KiB.
pub const DEFAULT_MAX_DATA_SIZE: usize = 64 * 1024;

/// The most requests of one connection waiting for their answers: beyond, a request is refused
/// with an error (a client that does not read its acknowledgements cannot make the server hold
/// more).
pub const MAX_PENDING_REQUESTS: usize = 1024;

/// Serves the `/pubsub` JSON protocol on connections. Cloning is cheap (it shares the
/// [`PubSub`]).
#[derive(Clone, Debug)]
pub struct JsonEndpoint {
    pubsub: PubSub,
    max_data_size: usize,
}

type Answer<'a> = Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>>;

impl JsonEndpoint {
    /// An endpoint on these topics.
    pub fn new(pubsub: PubSub) -> Self {
        JsonEndpoint { pubsub, max_data_size: DEFAULT_MAX_DATA_SIZE }
    }

    /// The largest `data` a client may publish, in bytes of JSON as written. Default 64 KiB:
    /// every byte published is queued once per subscriber's connection, so this bounds what one
    /// client can make the server hold. Larger data is answered with an error, not a close.
    pub fn max_data_size(mut self, bytes: usize) -> Self {
        self.max_data_size = bytes;
        self
    }

    /// The topics.
    pub fn pubsub(&self) -> &PubSub {
        &self.pubsub
    }

    /// Serves one connection until it closes: subscribes and unsubscribes it as it asks,
    /// publishes what it sends, and answers bad requests with `{"error":…}`. Deliveries reach it
    /// while this runs. Returns the error that ended the connection, if one did; its
    /// subscriptions end with it.
    pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(&self, ws: &mut WebSocket<S>) -> duplex::Result<()> {
        let me = self.pubsub.attach(ws);
        // Requests not started yet (behind one that must wait), and answers in request order.
        let mut waiting: VecDeque<String> = VecDeque::new();
        let mut answers: FuturesOrdered<Answer<'_>> = FuturesOrdered::new();
        loop {
            while let Some(text) = waiting.front() {
                if !answers.is_empty() && !is_publish(text) {
                    break;
                }
                let text = waiting.pop_front().expect("checked");
                answers.push_back(self.start(&me, text));
            }
            tokio::select! {
                message = ws.recv() => match message {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(Message::Text(text))) => {
                        if waiting.len() + answers.len() >= MAX_PENDING_REQUESTS {
                            let e = format!("more than {MAX_PENDING_REQUESTS} requests wait for their answers: read them first");
                            answers.push_back(Box::pin(std::future::ready(Some(json::error(&e)))));
                        } else if waiting.is_empty() && (answers.is_empty() || is_publish(&text)) {
                            answers.push_back(self.start(&me, text));
                        } else {
                            waiting.push_back(text);
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let e = json::error("binary messages are not part of the protocol: send JSON text");
                        answers.push_back(Box::pin(std::future::ready(Some(e))));
                    }
                },
                Some(answer) = answers.next(), if !answers.is_empty() => {
                    if let Some(reply) = answer {
                        reply_to(&me, reply);
                    }
                }
            }
        }
    }

    /// Handles one request from `me` to the end; returns the reply to send, if any (a subscribe's
    /// reply is queued on the connection by the subscription itself, after what it replays).
    pub async fn handle(&self, me: &Subscriber, text: &str) -> Option<String> {
        self.start(me, text.to_owned()).await
    }

    /// Starts a request: what must happen at once (a publish) happens now; the future gives the
    /// reply.
    fn start<'a>(&'a self, me: &'a Subscriber, text: String) -> Answer<'a> {
        let request = match json::parse_request(&text, self.max_data_size) {
            Ok(r) => r,
            Err(e) => return Box::pin(std::future::ready(Some(json::error(&e)))),
        };
        match request {
            Request::Subscribe { topic, since } => {
                let topic = topic.into_owned();
                Box::pin(async move {
                    let filter = topic.clone();
                    let reply = move |outcome: &_| Some(Message::Text(json::subscribed_at(&filter, outcome)));
                    let options = SubscribeOptions::new().since(since).reply(reply);
                    match me.subscribe_with(&topic, options).await {
                        Ok(_) => None,
                        Err(e) => Some(json::error(&e.to_string())),
                    }
                })
            }
            Request::Unsubscribe(filter) => {
                me.unsubscribe(&filter);
                Box::pin(std::future::ready(Some(json::unsubscribed(&filter))))
            }
            Request::Publish { topic, data, id } => {
                let options = PublishOptions { id: id.clone() };
                let published = self.pubsub.publish_json_with(&topic, data, options);
                let topic = topic.into_owned();
                Box::pin(async move {
                    let result = published.await;
                    match (result, id) {
                        (Ok(p), Some(id)) => Some(json::ack(&id, &p)),
                        (Ok(_), None) => {
                            tracing::debug!(%topic, "published");
                            None
                        }
                        (Err(Error::Unavailable(_)), Some(id)) => {
                            Some(json::error_with_id("backplane unavailable", &id))
                        }
                        (Err(Error::Unavailable(_)), None) => Some(json::error("backplane unavailable")),
                        (Err(e), Some(id)) => Some(json::error_with_id(&e.to_string(), &id)),
                        (Err(e), None) => Some(json::error(&e.to_string())),
                    }
                })
            }
            Request::History { topic, limit, since, reverse } => {
                let topic = topic.into_owned();
                let query = HistoryQuery { limit: limit.unwrap_or(HistoryQuery::default().limit), since, reverse };
                Box::pin(async move {
                    match self.pubsub.history(&topic, query).await {
                        Ok(page) => Some(json::history(&topic, &page)),
                        Err(e) => Some(json::error(&e.to_string())),
                    }
                })
            }
        }
    }
}

/// Whether a request is a publish (it may start before the answers of earlier ones are sent).
fn is_publish(text: &str) -> bool {
    matches!(json::parse_request(text, usize::MAX), Ok(Request::Publish { .. }))
}

/// Queues a reply after everything queued for the connection before it (deliveries included). A
/// client that does not read its replies — over its write buffer limit — is closed with 1013.
fn reply_to(me: &Subscriber, reply: String) {
    if let Err(duplex::TrySendError::Full { .. } | duplex::TrySendError::Dropped) =
        me.sender().send(Message::Text(reply))
    {
        let frame = CloseFrame::new(CloseCode::TRY_AGAIN_LATER, "not reading the replies");
        let _ = me.sender().close(Some(frame));
    }
}
