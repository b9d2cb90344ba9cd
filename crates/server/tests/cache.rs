//! The summary cache across instances and through a Redis outage.

mod common;

use std::time::Duration;

use common::{Backend, Spec, redis_settings, start};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_reflects_write_on_other_instance() {
    summary_reflects_write_on_other_instance_on(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_reflects_write_on_other_instance_on_mysql() {
    summary_reflects_write_on_other_instance_on(Backend::Mysql).await;
}

async fn summary_reflects_write_on_other_instance_on(backend: Backend) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let spec = Spec::fresh(backend, &dir).await;
    let a = start(&spec).await;
    let b = start(&spec).await;
    let token = a.new_user().await;
    a.add(&token, "Food", json!("10.00"), "2026-11-01").await;

    let first = a.summary(&token, "").await;
    assert_eq!(first.header("x-cache"), Some("miss"));
    let shared = b.summary(&token, "").await;
    assert_eq!(
        shared.header("x-cache"),
        Some("hit"),
        "the cache is shared through Redis"
    );
    assert_eq!(shared.body["total"], "10.00");

    for round in 1..=5 {
        b.add(&token, "Food", json!("1.00"), "2026-11-02").await;
        let seen = a.summary(&token, "").await;
        let cents = 1000 + 100 * round + 50 * (round - 1);
        let expected = format!("{}.{:02}", cents / 100, cents % 100);
        assert_eq!(
            seen.body["total"], expected,
            "instance A sees B's write at once"
        );
        a.add(&token, "Travel", json!("0.50"), "2026-11-03").await;
        let seen = b.summary(&token, "").await;
        assert_eq!(
            seen.body["count"],
            1 + 2 * round,
            "instance B sees A's write at once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_password_change_hold_on_every_instance() {
    logout_and_password_change_hold_on_every_instance_on(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_password_change_hold_on_every_instance_on_mysql() {
    logout_and_password_change_hold_on_every_instance_on(Backend::Mysql).await;
}

async fn logout_and_password_change_hold_on_every_instance_on(backend: Backend) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let spec = Spec::fresh(backend, &dir).await;
    let a = start(&spec).await;
    let b = start(&spec).await;
    let email = common::unique_email();
    let token = a.register(&email, "password one").await;
    assert_eq!(b.get("/api/auth/me", &token).await.status, StatusCode::OK);
    let out = a
        .request(Method::POST, "/api/auth/logout", Some(&token), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    b.get("/api/auth/me", &token)
        .await
        .assert_error(401, "unauthorized");

    let token = b
        .post(
            "/api/auth/login",
            None,
            json!({"email": email, "password": "password one"}),
        )
        .await
        .body["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let changed = b
        .post(
            "/api/auth/password",
            Some(&token),
            json!({"current_password": "password one", "new_password": "password two"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    a.get("/api/auth/me", &token)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttling_is_shared_by_every_instance() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut spec = Spec::fresh(Backend::Postgres, &dir).await;
    spec.login_limits = finance_server::auth::LoginLimits {
        per_email: 4,
        per_address: 100,
        window: Duration::from_secs(600),
    };
    let a = start(&spec).await;
    let b = start(&spec).await;
    let email = common::unique_email();
    a.register(&email, "right password").await;
    for (i, app) in [&a, &b, &a, &b].into_iter().enumerate() {
        let reply = app
            .post(
                "/api/auth/login",
                None,
                json!({"email": email, "password": format!("wrong {i}")}),
            )
            .await;
        reply.assert_error(401, "unauthorized");
    }
    for app in [&a, &b] {
        app.post(
            "/api/auth/login",
            None,
            json!({"email": email, "password": "right password"}),
        )
        .await
        .assert_error(429, "rate_limited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_degrades_to_the_database_and_recovers() {
    let port = common::spare_port();
    let mut redis = common::OwnRedis::start_on(port).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut settings = redis_settings().await;
    settings.url = format!("redis://127.0.0.1:{port}");
    let mut spec = Spec::fresh(Backend::Sqlite, &dir).await;
    spec.redis = Some(settings);
    let app = start(&spec).await;
    let token = app.new_user().await;
    app.add(&token, "Food", json!(1), "2026-11-01").await;
    assert_eq!(
        app.summary(&token, "").await.header("x-cache"),
        Some("miss")
    );
    assert_eq!(app.summary(&token, "").await.header("x-cache"), Some("hit"));

    redis.stop().await;
    for i in 2..=21 {
        app.add(&token, "Food", json!(1), "2026-11-01").await;
        let s = app.summary(&token, "").await;
        assert_eq!(s.status, StatusCode::OK);
        assert_eq!(s.header("x-cache"), Some("miss"));
        assert_eq!(s.body["count"], i, "exact while Redis is down");
        // Served again from this instance's own copy, Redis or not.
        let again = app.summary(&token, "").await;
        assert_eq!(again.header("x-cache"), Some("hit"));
        assert_eq!(again.body["count"], i);
    }
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        ready.status,
        StatusCode::OK,
        "a down cache does not make the instance unready"
    );
    assert_eq!(ready.body["cache"], "down");

    let _redis = common::OwnRedis::start_on(redis.port).await;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the restarted Redis");
    let pattern = format!(
        "{}summary:*",
        spec.redis.as_ref().map_or("", |r| &r.key_prefix)
    );
    let mut recovered = false;
    for _ in 0..100 {
        // A new expense each time: a new key, computed and stored anew.
        app.add(&token, "Food", json!(1), "2026-11-01").await;
        let s = app.summary(&token, "").await;
        assert_eq!(s.header("x-cache"), Some("miss"));
        let stored: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        if !stored.is_empty() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "summaries reach Redis again once it is back");
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.body["cache"], "up");
    let count = app.summary(&token, "").await.body["count"].clone();
    app.add(&token, "Food", json!(1), "2026-11-01").await;
    let after = app.summary(&token, "").await;
    assert_eq!(after.header("x-cache"), Some("miss"));
    assert_eq!(after.body["count"].as_i64(), count.as_i64().map(|c| c + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_can_be_turned_off() {
    let app = common::spawn_app_with(common::Backend::Sqlite, |spec| {
        spec.cache_ttl = Duration::ZERO
    })
    .await;
    let token = app.new_user().await;
    app.add(&token, "Food", json!(1), "2026-11-01").await;
    for _ in 0..3 {
        assert_eq!(
            app.summary(&token, "").await.header("x-cache"),
            Some("miss")
        );
    }
    assert_eq!(
        app.request(Method::GET, "/readyz", None, None).await.body["cache"],
        "off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_users_can_log_in_and_see_their_history() {
    let app = common::spawn_app(common::Backend::Sqlite).await;
    let emails = finance_server::seed::seed(&app.state, 2, 7_500)
        .await
        .expect("seed");
    assert_eq!(emails.len(), 2);
    let login = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": emails[1], "password": finance_server::seed::PASSWORD}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let token = login.body["access_token"].as_str().expect("token");
    let summary = app.summary(token, "").await.body;
    assert_eq!(summary["count"], 7_500);
    let old = app.summary(token, "?to=2024-12-31").await.body;
    assert!(
        old["count"].as_u64().is_some_and(|n| n > 0),
        "the history spans years"
    );
}
