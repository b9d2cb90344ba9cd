//! `finance-server`: the JSON API of the finance expense tracker, as a library
//! so tests and tools can start it on any listener.

pub mod auth;
pub mod bank;
pub mod cache;
pub mod config;
pub mod http;
pub mod jobs;
pub mod seed;
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

/// Serves the API on `listener` until `shutdown` completes; then stops
/// accepting, and lets requests in flight finish.
///
/// hyper directly rather than `axum::serve`, for the deadlines of
/// `http::conn` and the header read timeout: a client that opens connections
/// and sends nothing, or trickles its headers, would otherwise hold them, and
/// their memory, for as long as it likes. Past `max_connections` a new
/// connection is answered 503 and closed.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use tower::Service;

    let limits = state.limits;
    let router = http::router(state);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.idle_timeout / 3))
        .keep_alive_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut accept_errors = http::conn::AcceptErrors::new(std::time::Duration::from_secs(10));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // Out of file descriptors, typically: wait rather than spin.
                    accept_errors.failed(&e);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            metrics::counter!("connections_refused_total").increment(1);
            // Best effort: the socket is fresh, so its send buffer has room.
            let _ = stream.try_write(http::conn::TOO_MANY_CONNECTIONS);
            continue;
        };
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                router.clone().call(req)
            });
        let stream =
            http::conn::Deadlined::new(stream, limits.header_read_timeout, limits.idle_timeout);
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
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
