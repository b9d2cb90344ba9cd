//! Redis with a small in-process cache in front of it.
//!
//! Every key names the user's data version (see `summary`): what is stored
//! under a key never stands for older data than the key says, wherever it is
//! kept. So a copy held in this process is as good as Redis's, needs no
//! invalidation when another instance writes (that write moves every reader
//! to a new key), and a hit here costs no round trip. Redis stays what the
//! instances share; this process only remembers what it last read or wrote.

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;

use super::{CacheBackend, MemoryCache, RedisCache};

/// Redis, read through a bounded in-process copy.
pub struct Layered {
    local: MemoryCache,
    shared: RedisCache,
}

impl Layered {
    /// `shared` behind an in-process copy of at most `bytes`, each entry kept
    /// for `ttl`.
    pub fn new(shared: RedisCache, ttl: Duration, bytes: u64) -> Self {
        Layered {
            local: MemoryCache::new(ttl, bytes),
            shared,
        }
    }
}

#[async_trait]
impl CacheBackend for Layered {
    fn kind(&self) -> &'static str {
        self.shared.kind()
    }

    async fn get(&self, key: &str) -> Option<Bytes> {
        if let Some(hit) = self.local.get(key).await {
            return Some(hit);
        }
        let hit = self.shared.get(key).await?;
        self.local.set(key, hit.clone()).await;
        Some(hit)
    }

    async fn set(&self, key: &str, value: Bytes) {
        self.local.set(key, value.clone()).await;
        self.shared.set(key, value).await;
    }

    async fn is_up(&self) -> bool {
        self.shared.is_up().await
    }
}
