//! The summary cache: cache-aside, keyed by the user's data version, single flight.
//!
//! Why a version in the key rather than deleting the key on write: a reader
//! that computed a summary just before a write could otherwise store that old
//! summary after the writer's delete, and it would be served until it expired,
//! on every instance. Here the version is a column of the user's row, bumped
//! in the same database transaction as every write. A reader reads the
//! version first and the totals after, so what it stores under version `v`
//! reflects at least every write up to `v`; once a write commits, every
//! reader on every instance asks for `v + 1`, a key no old summary can be
//! stored under. The database stays the one source of truth: a Redis that
//! misses a message, restarts or is unreachable can never make a stale
//! summary visible, and old versions simply expire.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use chrono::NaiveDate;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::CacheBackend;

/// Whether an answer came from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
}

impl CacheOutcome {
    /// The `X-Cache` header's value.
    pub fn header_value(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
        }
    }
}

type Flight = Arc<OnceCell<Bytes>>;

/// Summaries, serialized as the response body, in front of the database.
pub struct SummaryCache {
    backend: Arc<dyn CacheBackend>,
    /// Computations in progress, by key: concurrent misses wait for one.
    flights: Mutex<HashMap<String, Flight>>,
    computations: AtomicU64,
}

impl SummaryCache {
    pub fn new(backend: Arc<dyn CacheBackend>) -> Self {
        SummaryCache {
            backend,
            flights: Mutex::new(HashMap::new()),
            computations: AtomicU64::new(0),
        }
    }

    /// The backend, for readiness reports.
    pub fn backend(&self) -> &dyn CacheBackend {
        self.backend.as_ref()
    }

    /// How many summaries this instance has computed (cache misses that reached the database).
    pub fn computations(&self) -> u64 {
        self.computations.load(Ordering::Relaxed)
    }

    /// The cache key of a user's summary over a date range at a data version.
    pub fn key(user: Uuid, version: i64, from: Option<NaiveDate>, to: Option<NaiveDate>) -> String {
        let day = |d: Option<NaiveDate>| d.map_or_else(|| "-".to_owned(), |d| d.to_string());
        format!("summary:{user}:{version}:{}:{}", day(from), day(to))
    }

    /// The cache key of a trend over `from..=to`, with the user's data version.
    pub fn trend_key(user: Uuid, version: i64, from: NaiveDate, to: NaiveDate) -> String {
        format!("trend:{user}:{version}:{from}:{to}")
    }

    /// The cache key of a page of a user's expenses at a data version;
    /// `shape` is what selects the page (filters, cursor, size).
    pub fn list_key(user: Uuid, version: i64, shape: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        format!("list:{user}:{version}:{:x}", Sha256::digest(shape))
    }

    /// The cached value under `key`, or the one `compute` makes (stored for the next reader).
    pub async fn get_or_compute<E, F, Fut>(
        &self,
        key: String,
        compute: F,
    ) -> Result<(Bytes, CacheOutcome), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        if let Some(hit) = self.backend.get(&key).await {
            metrics::counter!("cache_requests_total", "cache" => "summary", "result" => "hit")
                .increment(1);
            return Ok((hit, CacheOutcome::Hit));
        }
        metrics::counter!("cache_requests_total", "cache" => "summary", "result" => "miss")
            .increment(1);
        let flight = self.join_flight(&key);
        let result = flight
            .get_or_try_init(|| async {
                // A flight that ended between our miss and joining has stored
                // its answer: look once more before going to the database.
                if let Some(hit) = self.backend.get(&key).await {
                    return Ok(hit);
                }
                self.computations.fetch_add(1, Ordering::Relaxed);
                let fresh = compute().await?;
                self.backend.set(&key, fresh.clone()).await;
                Ok(fresh)
            })
            .await
            .cloned();
        self.leave_flight(&key, &flight);
        result.map(|bytes| (bytes, CacheOutcome::Miss))
    }

    fn join_flight(&self, key: &str) -> Flight {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.entry(key.to_owned()).or_default().clone()
    }

    fn leave_flight(&self, key: &str, flight: &Flight) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            flights.remove(key);
        }
    }
}
