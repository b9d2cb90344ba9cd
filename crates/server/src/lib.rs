//! `finance-server`: the JSON API of the finance expense tracker, as a library
//! so tests and tools can start it on any listener.

pub mod auth;
pub mod bank;
pub mod cache;
pub mod config;
pub mod http;
pub mod jobs;
pub mod seed;
pub mod state;
pub mod store;
pub mod telemetry;

use std::sync::Arc;

use tokio::net::TcpListener;

pub use state::{AppState, Shared};

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
