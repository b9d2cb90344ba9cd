//! Redis as a cache shared by every instance.
//!
//! Every command has a short deadline: with the crate's defaults a request
//! could wait minutes for a Redis that has died. A failure is logged once
//! when the outage starts and once when it ends, not on every request; the
//! connection manager reconnects by itself. While Redis is down, only one
//! probe per [`PROBE_INTERVAL`] goes to it; other requests skip the cache at
//! once instead of each waiting out a deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Bytes;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::CacheBackend;

/// How to reach Redis and how long to wait for it.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    pub url: String,
    /// Prepended to every key, so several deployments (or test runs) can share one Redis.
    pub key_prefix: String,
    pub ttl: Duration,
    /// Deadline of one command, connection included.
    pub timeout: Duration,
}

/// A lazily connecting manager with the deadlines of `settings`; it does
/// not fail when Redis is down (it is retried on use).
pub fn connection_manager(settings: &RedisSettings) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(settings.url.as_str())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.timeout.max(Duration::from_millis(100))))
        .set_response_timeout(Some(settings.timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1));
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}

/// How often a down Redis is tried again.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// The Redis cache.
pub struct RedisCache {
    manager: ConnectionManager,
    prefix: String,
    ttl_secs: u64,
    timeout: Duration,
    up: AtomicBool,
    /// Reference point of `next_probe_ms`.
    started: Instant,
    /// While down: milliseconds after `started` before which Redis is not tried.
    next_probe_ms: AtomicU64,
}

impl RedisCache {
    /// Prepares the connection; does not fail when Redis is down (it is retried on use).
    pub fn new(settings: &RedisSettings) -> anyhow::Result<Self> {
        Ok(RedisCache {
            manager: connection_manager(settings)?,
            prefix: settings.key_prefix.clone(),
            ttl_secs: settings.ttl.as_secs().max(1),
            timeout: settings.timeout,
            up: AtomicBool::new(true),
            started: Instant::now(),
            next_probe_ms: AtomicU64::new(0),
        })
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// While Redis is down: whether this request is the one to try it again.
    fn take_probe(&self) -> bool {
        let now = self.elapsed_ms();
        let due = self.next_probe_ms.load(Ordering::Relaxed);
        let next = now.saturating_add(PROBE_INTERVAL.as_millis() as u64);
        now >= due
            && self
                .next_probe_ms
                .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Runs one command under the deadline, noting outages and recoveries.
    async fn run<T>(&self, command: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        if !self.up.load(Ordering::Relaxed) && !self.take_probe() {
            return None;
        }
        let outcome = match tokio::time::timeout(self.timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        match outcome {
            Ok(value) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("redis cache is reachable again");
                }
                Some(value)
            }
            Err(reason) => {
                metrics::counter!("cache_errors_total", "backend" => "redis").increment(1);
                let retry_at = self.started.elapsed() + PROBE_INTERVAL;
                self.next_probe_ms
                    .store(retry_at.as_millis() as u64, Ordering::Relaxed);
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%reason, "redis cache unavailable; serving from the database until it returns");
                }
                None
            }
        }
    }
}

#[async_trait]
impl CacheBackend for RedisCache {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Option<Bytes> {
        let key = format!("{}{key}", self.prefix);
        let mut conn = self.manager.clone();
        let value: Option<Vec<u8>> = self.run(conn.get(key)).await.flatten();
        value.map(Bytes::from)
    }

    async fn set(&self, key: &str, value: Bytes) {
        let key = format!("{}{key}", self.prefix);
        let mut conn = self.manager.clone();
        let _: Option<()> = self
            .run(conn.set_ex(key, value.as_ref(), self.ttl_secs))
            .await;
    }

    async fn is_up(&self) -> bool {
        let mut conn = self.manager.clone();
        let pong: Option<String> = self.run(redis::cmd("PING").query_async(&mut conn)).await;
        pong.is_some()
    }
}
