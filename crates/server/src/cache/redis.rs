//! Redis as a cache shared by every instance.
//!
//! Every command has a short deadline: with the crate's defaults a request
//! could wait minutes for a Redis that has died. A failure is logged once
//! when the outage starts and once when it ends, not on every request; the
//! connection manager reconnects by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

/// The Redis cache.
pub struct RedisCache {
    manager: ConnectionManager,
    prefix: String,
    ttl_secs: u64,
    timeout: Duration,
    up: AtomicBool,
}

impl RedisCache {
    /// Prepares the connection; does not fail when Redis is down (it is retried on use).
    pub fn new(settings: &RedisSettings) -> anyhow::Result<Self> {
        let client = redis::Client::open(settings.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        Ok(RedisCache {
            manager: ConnectionManager::new_lazy_with_config(client, config)?,
            prefix: settings.key_prefix.clone(),
            ttl_secs: settings.ttl.as_secs().max(1),
            timeout: settings.timeout,
            up: AtomicBool::new(true),
        })
    }

    /// Runs one command under the deadline, noting outages and recoveries.
    async fn run<T>(&self, command: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
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
