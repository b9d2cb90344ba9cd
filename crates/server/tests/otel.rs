//! OTLP trace export (`--features otel`): spans reach a collector, and an
//! unreachable collector never costs a request.
#![cfg(feature = "otel")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Starts `finance-server` with the given collector endpoint; returns it and its base URL.
async fn start(endpoint: &str, dir: &std::path::Path) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("spare port");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_finance-server"))
        .env("DATA_DIR", dir)
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start finance-server");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("finance-server did not start");
}

async fn terminate(mut child: tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("exit status");
    assert!(exit.success(), "clean exit: {exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector() {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                if !body.is_empty() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let dir = tempfile::tempdir().expect("temporary directory");
    let (server, base) = start(&endpoint, dir.path()).await;
    for _ in 0..10 {
        assert_eq!(
            reqwest::get(format!("{base}/healthz"))
                .await
                .expect("request")
                .status(),
            200
        );
    }
    terminate(server).await;
    assert!(
        received.load(Ordering::SeqCst) > 0,
        "the collector received spans"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_collector_costs_no_request() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("spare port");
    let dir = tempfile::tempdir().expect("temporary directory");
    let (server, base) = start(&format!("http://127.0.0.1:{dead}"), dir.path()).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    for i in 0..200 {
        let res = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("served");
        assert_eq!(res.status(), 200, "request {i}");
    }
    terminate(server).await;
}
