//! `finance-server`: the JSON API of the finance expense tracker, as a library
//! so tests and tools can start it on any listener.

pub mod auth;
pub mod bank;
pub mod cache;
pub mod config;
pub mod http;
pub mod store;
pub mod telemetry;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::{LoginLimiter, Passwords, Tokens};
use crate::bank::{BankClient, MockBank};
use crate::cache::{CacheBackend, MemoryCache, RedisCache, SummaryCache};
use crate::config::{Settings, mask_url};
use crate::store::Store;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub summaries: Arc<SummaryCache>,
    pub tokens: Tokens,
    pub passwords: Passwords,
    pub bank: Arc<dyn BankClient>,
    pub limiter: Arc<LoginLimiter>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

/// Most summaries the in-process cache holds.
const MEMORY_CACHE_CAPACITY: u64 = 100_000;

impl AppState {
    /// Connects to the database (applying migrations) and sets up the cache.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        // Metrics recorded before the recorder exists are lost: install it first.
        telemetry::metrics::handle();
        let store = store::connect(&settings.database_url, &settings.pool)
            .await
            .with_context(|| {
                format!("cannot open database {}", mask_url(&settings.database_url))
            })?;
        tracing::info!(backend = store.backend(), url = %mask_url(&settings.database_url), "database ready");
        let cache: Arc<dyn CacheBackend> = match &settings.redis {
            Some(redis) => {
                tracing::info!(url = %mask_url(&redis.url), prefix = %redis.key_prefix, "cache: redis");
                Arc::new(RedisCache::new(redis).context("invalid REDIS_URL")?)
            }
            None => {
                tracing::info!("cache: in-process (set REDIS_URL to share one between instances)");
                Arc::new(MemoryCache::new(settings.cache_ttl, MEMORY_CACHE_CAPACITY))
            }
        };
        Ok(AppState {
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
        })
    }
}

/// Serves the API on `listener` until `shutdown` completes, then lets
/// in-flight requests finish.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
