//! What every request shares: the store, the cache, the throttles, the
//! job queue, and the settings they were made with.

use std::sync::Arc;

use anyhow::Context;

use crate::auth::{LoginLimiter, Passwords, Tokens};
use crate::bank::{BankClient, MockBank};
use crate::cache::{CacheBackend, MemoryCache, RedisCache, SummaryCache};
use crate::config::{Settings, mask_url};
use crate::store::Store;
use crate::{cache, config, http, jobs, store, telemetry};

/// Shared by every request: one reference-counted pointer, since the router
/// clones the state into every middleware and handler of each request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub summaries: Arc<SummaryCache>,
    pub tokens: Tokens,
    pub passwords: Passwords,
    pub bank: Arc<dyn BankClient>,
    pub limiter: Arc<LoginLimiter>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    pub limits: config::ServerLimits,
    pub jobs: Arc<jobs::Jobs>,
    /// File imports under way (see `http::import_slots`).
    pub file_imports: Arc<http::import_slots::ImportSlots>,
}

/// Most bytes (keys and bodies) the in-process cache holds.
const MEMORY_CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// Most bytes the in-process copy in front of Redis holds (the answers this
/// instance served last; Redis holds everyone's).
const LOCAL_COPY_BYTES: u64 = 4 * 1024 * 1024;

impl AppState {
    /// Connects to the database (applying migrations) and sets up the cache.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        // Metrics recorded before the recorder exists are lost: install it first.
        telemetry::metrics::handle();
        let store = store::connect(
            &settings.database_url,
            settings.database_read_url.as_deref(),
            &settings.pool,
        )
        .await
        .with_context(|| format!("cannot open database {}", mask_url(&settings.database_url)))?;
        tracing::info!(backend = store.backend(), url = %mask_url(&settings.database_url), "database ready");
        let cache: Arc<dyn CacheBackend> = match &settings.redis {
            _ if settings.cache_ttl.is_zero() => {
                tracing::info!("cache: off (CACHE_TTL_SECONDS=0)");
                Arc::new(cache::NoCache)
            }
            Some(redis) => {
                tracing::info!(url = %mask_url(&redis.url), prefix = %redis.key_prefix, "cache: redis");
                let shared = RedisCache::new(redis).context("invalid REDIS_URL")?;
                Arc::new(cache::Layered::new(
                    shared,
                    settings.cache_ttl,
                    LOCAL_COPY_BYTES,
                ))
            }
            None => {
                tracing::info!("cache: in-process (set REDIS_URL to share one between instances)");
                Arc::new(MemoryCache::new(settings.cache_ttl, MEMORY_CACHE_BYTES))
            }
        };
        let queue: Arc<dyn jobs::Queue> = match &settings.redis {
            Some(redis) => Arc::new(jobs::RedisQueue::new(redis, settings.job_visibility)?),
            None => Arc::new(jobs::LocalQueue::default()),
        };
        Ok(AppState(Arc::new(Shared {
            jobs: Arc::new(jobs::Jobs::new(queue, settings.job_visibility)),
            store,
            summaries: Arc::new(SummaryCache::new(cache)),
            tokens: Tokens::new(settings.jwt_secret.expose().as_bytes(), settings.token_ttl),
            passwords: Passwords::new(settings.password_concurrency)?,
            bank: Arc::new(MockBank),
            limiter: Arc::new(LoginLimiter::new(
                settings.login_limits,
                settings.redis.as_ref(),
            )?),
            trusted_proxies: Arc::new(settings.trusted_proxies.clone()),
            limits: settings.limits,
            file_imports: http::import_slots::ImportSlots::new(
                settings.limits.file_imports,
                settings.limits.file_imports_per_user,
            ),
        })))
    }
}
