//! Resource exhaustion: slow clients, login floods.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, spawn_app_with};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_headers_is_cut_off() {
    let app = spawn_app_with(Backend::Sqlite, |spec| {
        spec.limits.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial headers");
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    // The server gives up on the unfinished request and closes the connection.
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the server closed the connection instead of waiting forever");
    assert!(matches!(read, Ok(0) | Err(_)) || String::from_utf8_lossy(&buf).contains("408"));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    // Whole requests are still served.
    let health = app
        .request(reqwest::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!(health.status, 200);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_stays_fast_while_logins_pour_in() {
    // Throttling off, so every login really hashes.
    let app = std::sync::Arc::new(
        spawn_app_with(Backend::Sqlite, |spec| {
            spec.login_limits.per_address = 1_000_000;
            spec.login_limits.per_email = 1_000_000;
        })
        .await,
    );
    let token = app.new_user().await;
    app.add(&token, "Food", json!(3), "2026-11-01").await;
    let mut quiet = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        app.summary(&token, "").await;
        quiet.push(started.elapsed());
    }
    let flood_until = Instant::now() + Duration::from_secs(4);
    let flood: Vec<_> = (0..64)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut attempts = 0u32;
                while Instant::now() < flood_until {
                    let email = common::unique_email();
                    app.post(
                        "/api/auth/login",
                        None,
                        json!({"email": email, "password": "guessing"}),
                    )
                    .await;
                    attempts += 1;
                }
                attempts
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut flooded = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        app.summary(&token, "").await;
        flooded.push(started.elapsed());
    }
    let mut logins = 0;
    for task in flood {
        logins += task.await.expect("flood task");
    }
    let (quiet, flooded) = (median(quiet), median(flooded));
    eprintln!("summary median: {quiet:?} quiet, {flooded:?} under {logins} logins");
    assert!(logins > 50, "the flood was real");
    let in_flight = app
        .request(reqwest::Method::GET, "/metrics", None, None)
        .await;
    assert!(
        in_flight
            .body
            .as_str()
            .is_some_and(|m| m.contains("password_hashes_in_flight"))
    );
    // Password hashing is bounded to the cores, so other requests keep their share.
    assert!(
        flooded < quiet * 20 + Duration::from_millis(100),
        "{flooded:?} vs {quiet:?}"
    );
}
