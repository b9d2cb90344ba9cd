//! Which job runs next: Redis Streams shared by every worker, or a channel
//! inside one process.
//!
//! On Redis, every job is an entry of one stream read by the consumer group
//! `workers`. A worker reads an entry, keeps claiming it while it works (so
//! its idle time stays near zero) and acknowledges it when the job has ended.
//! An entry idle for longer than the visibility timeout belongs to a worker
//! that died: the next worker asking for work claims it (`XAUTOCLAIM`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamReadOptions, StreamReadReply};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::cache::{RedisSettings, redis_connection_manager as connection_manager};

/// One job handed to one worker.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub job: Uuid,
    /// The stream entry (empty in-process).
    pub entry: String,
}

/// The queue of background imports.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Whether workers in other processes read it.
    fn shared(&self) -> bool;

    /// Hands a job to the workers.
    async fn push(&self, job: Uuid) -> anyhow::Result<()>;

    /// The next job for `consumer`: one abandoned by a dead worker first,
    /// else a new one, waiting up to `wait`.
    async fn pull(&self, consumer: &str, wait: Duration) -> anyhow::Result<Option<Delivery>>;

    /// Tells the queue `consumer` is still working on it.
    async fn keep(&self, consumer: &str, delivery: &Delivery) -> anyhow::Result<()>;

    /// The job has ended: nobody needs to run it again.
    async fn ack(&self, delivery: &Delivery) -> anyhow::Result<()>;

    /// Records how many transactions the running attempt has written.
    async fn set_progress(&self, job: Uuid, done: u64);

    /// What [`Queue::set_progress`] last recorded.
    async fn progress(&self, job: Uuid) -> Option<u64>;

    /// Whether the queue may have lost jobs it was given since last asked (a
    /// Redis that restarted empty, a process that started): then every
    /// unfinished job is pushed again.
    async fn lost_entries(&self) -> bool;
}

const GROUP: &str = "workers";

/// How long a job's progress is kept after it was last written.
const PROGRESS_TTL_SECS: u64 = 3600;

/// Redis Streams with a consumer group.
pub struct RedisQueue {
    /// Short commands, with the usual deadline.
    commands: ConnectionManager,
    /// Blocking reads, with a deadline longer than the wait.
    reads: ConnectionManager,
    stream: String,
    prefix: String,
    visibility: Duration,
}

impl RedisQueue {
    /// Connects lazily: a Redis that is down is retried on use.
    pub fn new(settings: &RedisSettings, visibility: Duration) -> anyhow::Result<Self> {
        let mut blocking = settings.clone();
        blocking.timeout = settings.timeout.max(Duration::from_millis(500)) + READ_WAIT;
        Ok(RedisQueue {
            commands: connection_manager(settings)?,
            reads: connection_manager(&blocking)?,
            stream: format!("{}import-jobs", settings.key_prefix),
            prefix: settings.key_prefix.clone(),
            visibility,
        })
    }

    fn progress_key(&self, job: Uuid) -> String {
        format!("{}import-job:{job}:done", self.prefix)
    }

    /// Creates the group (and the stream) unless it exists.
    async fn ensure_group(&self) -> anyhow::Result<()> {
        let mut conn = self.commands.clone();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A reply, or `None` when the group did not exist (it does now).
    async fn or_create_group<T>(&self, reply: redis::RedisResult<T>) -> anyhow::Result<Option<T>> {
        match reply {
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_group().await?;
                Ok(None)
            }
            other => Ok(Some(other?)),
        }
    }

    fn delivery(entry: &redis::streams::StreamId) -> Option<Delivery> {
        let job = entry.get::<String>("job")?.parse().ok()?;
        Some(Delivery {
            job,
            entry: entry.id.clone(),
        })
    }
}

/// Longest a worker blocks on an empty stream before looking again.
pub const READ_WAIT: Duration = Duration::from_secs(2);

#[async_trait]
impl Queue for RedisQueue {
    fn shared(&self) -> bool {
        true
    }

    async fn push(&self, job: Uuid) -> anyhow::Result<()> {
        let mut conn = self.commands.clone();
        let _: String = redis::cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg("job")
            .arg(job.to_string())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn pull(&self, consumer: &str, wait: Duration) -> anyhow::Result<Option<Delivery>> {
        let mut conn = self.commands.clone();
        let visibility_ms = u64::try_from(self.visibility.as_millis()).unwrap_or(u64::MAX);
        let claimed: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(visibility_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await;
        let Some(claimed) = self.or_create_group(claimed).await? else {
            return Ok(None);
        };
        if let Some(delivery) = claimed.claimed.iter().find_map(Self::delivery) {
            tracing::warn!(job = %delivery.job, "took over a job whose worker stopped answering");
            return Ok(Some(delivery));
        }
        // Entries whose job field is unreadable would come back forever.
        for entry in claimed
            .claimed
            .iter()
            .filter(|e| Self::delivery(e).is_none())
        {
            let _: redis::RedisResult<()> = redis::cmd("XACK")
                .arg(&self.stream)
                .arg(GROUP)
                .arg(&entry.id)
                .query_async(&mut conn)
                .await;
        }
        let wait_ms = usize::try_from(wait.min(READ_WAIT).as_millis()).unwrap_or(usize::MAX);
        let options = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(1)
            .block(wait_ms);
        let mut reads = self.reads.clone();
        let read: redis::RedisResult<Option<StreamReadReply>> =
            redis::AsyncCommands::xread_options(&mut reads, &[&self.stream], &[">"], &options)
                .await;
        let Some(read) = self.or_create_group(read).await? else {
            return Ok(None);
        };
        Ok(read.and_then(|reply| {
            reply
                .keys
                .iter()
                .flat_map(|key| key.ids.iter())
                .find_map(Self::delivery)
        }))
    }

    async fn keep(&self, consumer: &str, delivery: &Delivery) -> anyhow::Result<()> {
        let mut conn = self.commands.clone();
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(0)
            .arg(&delivery.entry)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn ack(&self, delivery: &Delivery) -> anyhow::Result<()> {
        let mut conn = self.commands.clone();
        let _: () = redis::pipe()
            .atomic()
            .cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&delivery.entry)
            .ignore()
            .cmd("XDEL")
            .arg(&self.stream)
            .arg(&delivery.entry)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn set_progress(&self, job: Uuid, done: u64) {
        let mut conn = self.commands.clone();
        let set: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.progress_key(job))
            .arg(done)
            .arg("EX")
            .arg(PROGRESS_TTL_SECS)
            .query_async(&mut conn)
            .await;
        if let Err(e) = set {
            tracing::debug!(error = %e, "cannot record a job's progress");
        }
    }

    async fn progress(&self, job: Uuid) -> Option<u64> {
        let mut conn = self.commands.clone();
        redis::cmd("GET")
            .arg(self.progress_key(job))
            .query_async::<Option<u64>>(&mut conn)
            .await
            .ok()
            .flatten()
    }

    async fn lost_entries(&self) -> bool {
        let mut conn = self.commands.clone();
        let exists: redis::RedisResult<bool> = redis::cmd("EXISTS")
            .arg(&self.stream)
            .query_async(&mut conn)
            .await;
        // A stream once created stays, even empty: missing means Redis lost it
        // (or this is the first start, when nothing can be lost).
        matches!(exists, Ok(false))
    }
}

/// A channel inside one process, for a single server without Redis. The
/// database keeps every job, so jobs unfinished at a restart are pushed
/// again when the worker starts.
pub struct LocalQueue {
    sender: mpsc::UnboundedSender<Uuid>,
    receiver: tokio::sync::Mutex<mpsc::UnboundedReceiver<Uuid>>,
    progress: Mutex<HashMap<Uuid, u64>>,
    /// Not asked yet whether it lost entries.
    fresh: AtomicBool,
}

impl Default for LocalQueue {
    fn default() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        LocalQueue {
            sender,
            receiver: tokio::sync::Mutex::new(receiver),
            progress: Mutex::new(HashMap::new()),
            fresh: AtomicBool::new(true),
        }
    }
}

#[async_trait]
impl Queue for LocalQueue {
    fn shared(&self) -> bool {
        false
    }

    async fn push(&self, job: Uuid) -> anyhow::Result<()> {
        self.sender
            .send(job)
            .map_err(|_| anyhow::anyhow!("the queue is closed"))
    }

    async fn pull(&self, _consumer: &str, wait: Duration) -> anyhow::Result<Option<Delivery>> {
        let mut receiver = self.receiver.lock().await;
        match tokio::time::timeout(wait, receiver.recv()).await {
            Ok(Some(job)) => Ok(Some(Delivery {
                job,
                entry: String::new(),
            })),
            Ok(None) | Err(_) => Ok(None),
        }
    }

    async fn keep(&self, _consumer: &str, _delivery: &Delivery) -> anyhow::Result<()> {
        Ok(())
    }

    async fn ack(&self, delivery: &Delivery) -> anyhow::Result<()> {
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&delivery.job);
        Ok(())
    }

    async fn set_progress(&self, job: Uuid, done: u64) {
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(job, done);
    }

    async fn progress(&self, job: Uuid) -> Option<u64> {
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&job)
            .copied()
    }

    async fn lost_entries(&self) -> bool {
        // A new process starts with an empty channel; after that it loses nothing.
        self.fresh.swap(false, Ordering::Relaxed)
    }
}
