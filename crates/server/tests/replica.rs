//! `DATABASE_READ_URL`: lists, summaries, trends and exports read a replica
//! once it has caught up with the user's last write, and the primary until
//! then. The "replica" here is a copy of the primary that never replays
//! anything: the most lagging replica there can be.

mod common;

use common::{Backend, Spec};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, Executor};

/// The database part of a URL.
fn database_name(url: &str) -> String {
    url::Url::parse(url)
        .expect("URL")
        .path()
        .trim_start_matches('/')
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_use_a_replica_that_has_caught_up_and_never_a_stale_one() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut spec = Spec::fresh(Backend::Postgres, &dir).await;
    let primary = spec.database_url.clone();

    // Alice's history, written before the copy is taken.
    let first = common::start(&spec).await;
    let alice = first.new_user().await;
    for amount in ["1.00", "2.00", "3.00"] {
        first.add(&alice, "Food", json!(amount), "2026-11-20").await;
    }
    drop(first);

    // The copy: every connection to the primary closed, then a template copy.
    let mut admin = sqlx::PgConnection::connect(&common::postgres_admin_url())
        .await
        .expect("connect");
    let primary_name = database_name(&primary);
    let copy_name = format!("{primary_name}_replica");
    for _ in 0..50 {
        admin
            .execute(AssertSqlSafe(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{primary_name}'"
            )))
            .await
            .expect("terminate");
        let created = admin
            .execute(AssertSqlSafe(format!(
                "CREATE DATABASE {copy_name} TEMPLATE {primary_name}"
            )))
            .await;
        if created.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let copy_url = common::database_url(&primary, &copy_name);
    // Marked, so a page read from the copy can be told from one read from the primary.
    let mut copy = sqlx::PgConnection::connect(&copy_url)
        .await
        .expect("the copy exists");
    copy.execute("UPDATE expenses SET description = 'read from the replica'")
        .await
        .expect("mark the copy");

    spec.database_read_url = Some(copy_url);
    spec.redis = Some(common::redis_settings().await);
    let app = common::start(&spec).await;

    // Caught up with Alice (nothing written since the copy): the replica answers.
    let page = app.get("/api/expenses", &alice).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let rows = page.body["expenses"].as_array().expect("expenses").clone();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|e| e["description"] == "read from the replica"),
        "{}",
        page.body
    );
    assert_eq!(app.summary(&alice, "").await.body["total"], "6.00");

    // A write goes to the primary; the replica, now behind, is not read.
    app.add(&alice, "Food", json!("4.00"), "2026-11-21").await;
    let page = app.get("/api/expenses", &alice).await;
    let rows = page.body["expenses"].as_array().expect("expenses").clone();
    assert_eq!(rows.len(), 4, "{}", page.body);
    assert!(
        rows.iter()
            .all(|e| e["description"] != "read from the replica"),
        "{}",
        page.body
    );
    let summary = app.summary(&alice, "").await.body;
    assert_eq!(
        (&summary["count"], &summary["total"]),
        (&json!(4), &json!("10.00"))
    );
    let categories = app.get("/api/categories", &alice).await.body;
    assert_eq!(categories["categories"][0]["count"], 4, "{categories}");
    let (_, _, export) = app.get_text("/api/expenses/export", &alice).await;
    assert_eq!(export.lines().count(), 5, "{export}");
    let in_copy: i64 = sqlx::query_scalar("SELECT count(*) FROM expenses")
        .fetch_one(&mut copy)
        .await
        .expect("count");
    assert_eq!(in_copy, 3, "nothing is written to the replica");

    // A user the replica has never heard of is read from the primary.
    let bob = app.new_user().await;
    app.add(&bob, "Rent", json!("900"), "2026-11-01").await;
    assert_eq!(app.summary(&bob, "").await.body["total"], "900.00");

    // A replica that is down costs nothing but the fallback.
    let mut down = spec.clone();
    down.database_read_url = Some(format!(
        "postgres://postgres@127.0.0.1:{}/nothing",
        common::spare_port()
    ));
    let degraded = common::start(&down).await;
    let page = degraded.get("/api/expenses", &alice).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["expenses"].as_array().map(Vec::len), Some(4));

    drop(copy);
    let _ = admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {copy_name} WITH (FORCE)"
        )))
        .await;
}
