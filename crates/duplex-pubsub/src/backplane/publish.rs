//! The publishing task: what the node publishes goes to Redis in the order it was published, as
//! one pipeline per round trip on a multiplexed connection.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use duplex::Message;
use redis::aio::ConnectionLike;
use redis::Value;
use tokio::sync::oneshot;

use super::history::{append_command, parse_appended};
use super::wire::{self, Origin};
use super::{wait_or_shutdown, Backoff, Backplane, TIMEOUT};
use crate::history::store::{Appended, Lifetimes, StoreError, StoreFuture};
use crate::history::Publication;

/// Bytes waiting to be sent to Redis beyond which new messages are refused: Redis is slower
/// than the node publishes, and memory must stay bounded.
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// How often an idle command connection is checked with a `PING`.
const PING_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// What waits to be sent.
#[derive(Default)]
pub(crate) struct Queue {
    jobs: VecDeque<Job>,
    bytes: usize,
}

enum Job {
    /// `PUBLISH` of a message to a topic without history; nobody waits for it.
    Forward(redis::Cmd),
    /// The publish script of a history topic; its answer goes to `reply`.
    Append(redis::Cmd, oneshot::Sender<Result<Appended, StoreError>>),
}

type AppendReply = oneshot::Sender<Result<Appended, StoreError>>;

impl Backplane {
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn unavailable(&self) -> StoreError {
        StoreError::Unavailable(format!("redis {} is unreachable", self.url))
    }

    /// Queues `job` of `size` bytes, unless Redis is away or the queue is full.
    fn push(&self, job: Job, size: usize) -> Result<(), Job> {
        if !self.publishing.load(Ordering::Acquire) {
            return Err(job);
        }
        let mut queue = self.lock_queue();
        if queue.bytes + size > MAX_QUEUED_BYTES {
            drop(queue);
            if self.lost.fetch_add(1, Ordering::Relaxed).is_multiple_of(10_000) {
                tracing::warn!("redis {}: publishing falls behind; refusing messages", self.url);
            }
            return Err(job);
        }
        queue.bytes += size;
        queue.jobs.push_back(job);
        drop(queue);
        self.queued.notify_one();
        Ok(())
    }

    /// Sends a message published on this node to the other nodes (without waiting).
    pub(crate) fn forward(&self, topic: &str, message: Message) {
        let origin = Origin { node: self.node, seq: self.seq.fetch_add(1, Ordering::Relaxed) };
        let payload = wire::encode(origin, &message);
        let size = payload.len();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.names.channel(topic)).arg(payload);
        if self.push(Job::Forward(cmd), size).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues the publish script for a publication on a history topic: queued now (in call
    /// order), answered when Redis has run it. Refused at once while Redis is away.
    pub(crate) fn queue_append(
        &self,
        topic: &str,
        lifetimes: Lifetimes,
        publication: &Publication,
        id: Option<&str>,
    ) -> StoreFuture<Appended> {
        let (tx, rx) = oneshot::channel();
        let cmd = append_command(&self.scripts, &self.names, topic, lifetimes, publication, id);
        if self.push(Job::Append(cmd, tx), publication.len() + 128).is_err() {
            return Box::pin(std::future::ready(Err(self.unavailable())));
        }
        let unavailable = self.unavailable();
        Box::pin(async move { rx.await.unwrap_or(Err(unavailable)) })
    }

    fn take_queue(&self) -> VecDeque<Job> {
        let mut queue = self.lock_queue();
        queue.bytes = 0;
        std::mem::take(&mut queue.jobs)
    }

    /// Fails the publishes waiting in `jobs`: their outcome is unknown (the connection broke) or
    /// they were never sent; the client retries with the same id.
    fn fail(&self, jobs: impl IntoIterator<Item = Job>) {
        for job in jobs {
            if let Job::Append(_, reply) = job {
                let _ = reply.send(Err(self.unavailable()));
            }
        }
    }

    async fn load_scripts(&self, conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<()> {
        self.scripts.publish.load_async(conn).await?;
        self.scripts.read.load_async(conn).await?;
        Ok(())
    }

    pub(super) async fn publish_loop(self: Arc<Self>) {
        let mut shutdown = self.shutdown.subscribe();
        let mut backoff = Backoff::default();
        let config = redis::AsyncConnectionConfig::new().set_connection_timeout(TIMEOUT).set_response_timeout(TIMEOUT);
        loop {
            let connecting = async {
                let mut conn = self.client.get_multiplexed_async_connection_with_config(&config).await?;
                // A restarted Redis has forgotten the scripts.
                self.load_scripts(&mut conn).await?;
                Ok::<_, redis::RedisError>(conn)
            };
            let mut conn = tokio::select! {
                r = connecting => match r {
                    Ok(c) => c,
                    Err(e) => {
                        backoff.failed(&self.url, "publishing", &e);
                        if wait_or_shutdown(backoff.delay(), &mut shutdown).await { return }
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            backoff.connected(&self.url, "publishing");
            // Whatever was queued before an outage was refused already, or was for a connection
            // that is gone.
            let stale = self.take_queue();
            self.fail(stale);
            *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
            self.publishing.store(true, Ordering::Release);
            let mut idle = tokio::time::interval(PING_IDLE);
            idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let error = loop {
                let batch = self.take_queue();
                if batch.is_empty() {
                    tokio::select! {
                        _ = self.queued.notified() => continue,
                        // An idle connection is checked, so that an outage is noticed (and
                        // publishes refused at once) before the next publish finds it.
                        _ = idle.tick() => match redis::cmd("PING").query_async::<()>(&mut conn).await {
                            Ok(()) => continue,
                            Err(e) => break e,
                        },
                        _ = shutdown.changed() => return,
                    }
                }
                if let Err(e) = self.send(&mut conn, batch).await {
                    break e;
                }
            };
            self.publishing.store(false, Ordering::Release);
            *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let stale = self.take_queue();
            self.fail(stale);
            backoff.lost(&self.url, "publishing", &error);
            if wait_or_shutdown(backoff.delay(), &mut shutdown).await {
                return;
            }
        }
    }

    /// Sends one batch as a pipeline and answers its publishes. Publishes refused with `NOSCRIPT`
    /// (the script cache was flushed) are sent again once the scripts are loaded.
    async fn send(&self, conn: &mut redis::aio::MultiplexedConnection, batch: VecDeque<Job>) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for job in &batch {
            match job {
                Job::Forward(cmd) | Job::Append(cmd, _) => pipe.add_command(cmd.clone()),
            };
        }
        let values = match conn.req_packed_commands(&pipe, 0, batch.len()).await {
            Ok(v) => v,
            Err(e) => {
                self.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.fail(batch);
                return Err(e);
            }
        };
        let mut again: Vec<(redis::Cmd, AppendReply)> = Vec::new();
        for (job, value) in batch.into_iter().zip(values) {
            let Job::Append(cmd, reply) = job else { continue };
            match value {
                Value::ServerError(e) if e.code() == "NOSCRIPT" => again.push((cmd, reply)),
                Value::ServerError(e) => {
                    tracing::warn!("redis {}: the publish script failed: {e:?}", self.url);
                    let _ = reply.send(Err(StoreError::Refused(format!("redis refused the publish: {e:?}"))));
                }
                v => {
                    let answer = parse_appended(&v).ok_or_else(|| {
                        StoreError::Refused(format!("an unexpected answer to the publish script: {v:?}"))
                    });
                    let _ = reply.send(answer);
                }
            }
        }
        if again.is_empty() {
            return Ok(());
        }
        tracing::info!("redis {}: the script cache was flushed; loading the scripts again", self.url);
        if let Err(e) = self.load_scripts(conn).await {
            self.fail(again.into_iter().map(|(c, r)| Job::Append(c, r)));
            return Err(e);
        }
        let mut pipe = redis::pipe();
        for (cmd, _) in &again {
            pipe.add_command(cmd.clone());
        }
        match conn.req_packed_commands(&pipe, 0, again.len()).await {
            Ok(values) => {
                for ((_, reply), v) in again.into_iter().zip(values) {
                    let answer =
                        parse_appended(&v).ok_or_else(|| StoreError::Refused(format!("the publish failed: {v:?}")));
                    let _ = reply.send(answer);
                }
                Ok(())
            }
            Err(e) => {
                self.fail(again.into_iter().map(|(c, r)| Job::Append(c, r)));
                Err(e)
            }
        }
    }
}
