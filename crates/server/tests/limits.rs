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

/// Sockets that connect and send nothing are closed at the first-byte
/// deadline, and the server answers everyone else all the while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_are_closed_at_the_first_byte_deadline() {
    let app = spawn_app_with(Backend::Sqlite, |spec| {
        spec.limits.header_read_timeout = Duration::from_secs(2);
        spec.limits.idle_timeout = Duration::from_secs(3);
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut silent = Vec::new();
    for _ in 0..5000 {
        silent.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    let opened = Instant::now();
    let health = app
        .request(reqwest::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!(health.status, 200, "while 5,000 silent sockets are open");
    let mut closed = 0;
    for mut stream in silent {
        let mut buf = [0u8; 16];
        let left = Duration::from_secs(10).saturating_sub(opened.elapsed());
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(left, stream.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 5000, "silent sockets still open after 10 s");
    // An HTTP/2 connection that goes quiet after its preface (and answers no
    // keep-alive ping) goes too.
    let mut h2 = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    let mut buf = vec![0u8; 1024];
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match h2.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a quiet HTTP/2 connection was kept open");
    let health = app
        .request(reqwest::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!(health.status, 200);
}

/// Past the connection cap a new connection gets a JSON 503 and is closed;
/// once connections close, new ones are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_cleanly() {
    let app = spawn_app_with(Backend::Sqlite, |spec| {
        spec.limits.max_connections = 3;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), extra.read_to_string(&mut answer))
        .await
        .expect("refused at once")
        .expect("read");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("\"error\":\"service_unavailable\""),
        "{answer}"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = app
        .request(reqwest::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!(health.status, 200);
}

/// A user has one file import under way at a time, and the server a few in
/// all; past either the answer is 429 with Retry-After, and the slot comes
/// back when the import ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_imports_run_one_per_user_and_a_few_in_all() {
    let app = spawn_app_with(Backend::Sqlite, |spec| {
        spec.limits.file_imports = 2;
        spec.limits.file_imports_per_user = 1;
    })
    .await;
    let (alice, bob, carol) = (
        app.new_user().await,
        app.new_user().await,
        app.new_user().await,
    );
    let addr = app.base.trim_start_matches("http://").to_owned();
    // An upload that sends its headers and half its body, then waits.
    let hold = |token: String| {
        let addr = addr.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect");
            let head = format!(
                "POST /api/imports/csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: text/csv\r\nContent-Length: 1000\r\n\r\ndate,amount\n"
            );
            stream.write_all(head.as_bytes()).await.expect("send");
            stream
        }
    };
    let file = b"date,amount\n2026-11-01,-1.00\n".to_vec();
    let held = hold(alice.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = app
        .upload("/api/imports/csv", &alice, "text/csv", file.clone())
        .await;
    second.assert_error(429, "rate_limited");
    assert!(second.header("retry-after").is_some());
    let held_too = hold(bob.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.upload("/api/imports/csv", &carol, "text/csv", file.clone())
        .await
        .assert_error(429, "rate_limited");
    drop((held, held_too));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for token in [&alice, &carol] {
        let reply = app
            .upload("/api/imports/csv", token, "text/csv", file.clone())
            .await;
        assert_eq!(reply.status, reqwest::StatusCode::CREATED, "{}", reply.body);
    }
}
