//! The in-process cache for a single instance without Redis.

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;

use super::CacheBackend;

/// A bounded in-memory cache with a time to live.
pub struct MemoryCache {
    entries: moka::future::Cache<String, Bytes>,
}

impl MemoryCache {
    /// Holds entries of at most `bytes` in all (keys and values), each for `ttl`.
    pub fn new(ttl: Duration, bytes: u64) -> Self {
        MemoryCache {
            entries: moka::future::Cache::builder()
                .time_to_live(ttl)
                .weigher(|key: &String, value: &Bytes| {
                    u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(bytes)
                .build(),
        }
    }
}

#[async_trait]
impl CacheBackend for MemoryCache {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Option<Bytes> {
        self.entries.get(key).await
    }

    async fn set(&self, key: &str, value: Bytes) {
        self.entries.insert(key.to_owned(), value).await;
    }

    async fn is_up(&self) -> bool {
        true
    }
}
