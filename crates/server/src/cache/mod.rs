//! Caching of computed answers: Redis when configured (with an in-process
//! copy in front), memory otherwise.

mod layered;
mod memory;
mod redis;
mod summary;

use async_trait::async_trait;
use axum::body::Bytes;

pub use layered::Layered;
pub use memory::MemoryCache;

/// No cache at all: every summary is computed.
pub struct NoCache;

#[async_trait]
impl CacheBackend for NoCache {
    fn kind(&self) -> &'static str {
        "off"
    }

    async fn get(&self, _key: &str) -> Option<Bytes> {
        None
    }

    async fn set(&self, _key: &str, _value: Bytes) {}

    async fn is_up(&self) -> bool {
        true
    }
}
pub use redis::{RedisCache, RedisSettings, connection_manager as redis_connection_manager};
pub use summary::{CacheOutcome, SummaryCache};

/// A key-value store of serialized answers with a fixed time to live.
///
/// Failures are the backend's to log and count; to callers a failing cache is
/// an empty one, so requests are answered from the database.
#[async_trait]
pub trait CacheBackend: Send + Sync + 'static {
    /// `"memory"` or `"redis"`.
    fn kind(&self) -> &'static str;

    /// The value under `key`, if present and reachable.
    async fn get(&self, key: &str) -> Option<Bytes>;

    /// Stores `value` under `key` for the configured time to live.
    async fn set(&self, key: &str, value: Bytes);

    /// Whether the cache answers right now.
    async fn is_up(&self) -> bool;
}
