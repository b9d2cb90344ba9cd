//! Metrics and logs, as an operator reads them.

mod common;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use common::{Backend, spawn_app};
use reqwest::Method;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_per_route_template_with_bounded_labels() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.new_user().await;
    for i in 0..25 {
        app.get(&format!("/api/expenses/{}", uuid::Uuid::now_v7()), &token)
            .await;
        app.request(Method::GET, &format!("/no/such/path/{i}"), None, None)
            .await;
        app.request(
            Method::from_bytes(b"BREW").expect("method"),
            "/api/expenses",
            Some(&token),
            None,
        )
        .await;
    }
    app.summary(&token, "").await;
    app.summary(&token, "").await;
    app.post(
        "/api/imports/mock",
        Some(&token),
        serde_json::json!({"count": 4}),
    )
    .await;

    let reply = app.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = reply.body.as_str().expect("text").to_owned();
    for expected in [
        r#"http_requests_total{method="GET",route="/api/expenses/{id}",status="404"}"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"}"#,
        r#"http_requests_total{method="other",route="/api/expenses",status="405"}"#,
        r#"http_request_duration_seconds_bucket{method="GET",route="/api/expenses/summary",status="200",le="0.005"}"#,
        r#"cache_requests_total{cache="summary",result="hit"}"#,
        r#"cache_requests_total{cache="summary",result="miss"}"#,
        r#"db_pool_connections{state="open"}"#,
        r#"db_pool_connections{state="idle"}"#,
        r#"imports_total{source="mock_bank"}"#,
        r#"imported_transactions_total{source="mock_bank"}"#,
        "password_hashes_in_flight",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
    assert!(
        !text.contains("/no/such/path"),
        "raw paths never become labels"
    );
    assert!(
        !text.contains("BREW"),
        "unknown methods never become labels"
    );
    let routes: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| l.split("route=\"").nth(1)?.split('"').next())
        .collect();
    assert!(
        routes.len() <= 14,
        "one label per route template: {routes:?}"
    );
}

const SECRET: &str = "never-log-me-0123456789-abcdefghijklmnop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_route_status_latency_and_request_id() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_finance-server"))
        .env("DATA_DIR", dir.path())
        .env("BIND", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env("JWT_SECRET", SECRET)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start finance-server");
    let mut lines = BufReader::new(server.stderr.take().expect("stderr")).lines();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        while let Some(Ok(line)) = lines.next() {
            assert!(
                !line.contains(SECRET),
                "the signing secret was logged: {line}"
            );
            let parsed = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            if tx.send(parsed).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("no log line for {what}"));
        let message = line["fields"]["message"].as_str().unwrap_or("").to_owned();
        if message.contains(what) {
            return line;
        }
    };
    let listening = next("listening on");
    let url = listening["fields"]["message"]
        .as_str()
        .expect("message")
        .replace("listening on ", "");
    let client = reqwest::Client::new();
    let res = client
        .get(format!("{url}/api/expenses/summary"))
        .header("x-request-id", "log-me-please")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    let done = next("request done");
    let span = &done["span"];
    assert_eq!(span["route"], "/api/expenses/summary");
    assert_eq!(span["request_id"], "log-me-please");
    assert_eq!(span["status"], 401);
    assert!(span["latency_ms"].as_f64().is_some());
    let _ = server.kill();
    let _ = server.wait();
}
