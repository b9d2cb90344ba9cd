//! Background imports (`?async=true`): queued, run by a worker, followed by
//! polling, and landing exactly once through crashes and outages.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Reply, TestApp, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_every_backend!(
    a_background_mock_import_is_queued_runs_and_lands_once,
    a_background_file_import_reports_its_lines_and_bad_input_is_refused_at_once,
    an_idempotency_key_replays_the_queued_job,
);

/// Polls a job until it has ended; panics after `limit`.
async fn wait_for_end(app: &TestApp, token: &str, status_url: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let reply = app.get(status_url, token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        if matches!(reply.body["status"].as_str(), Some("succeeded" | "failed")) {
            return reply.body;
        }
        assert!(
            started.elapsed() < limit,
            "the job has not ended: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status_url(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let url = reply.body["status_url"].as_str().expect("status_url");
    assert_eq!(reply.header("location"), Some(url));
    assert_eq!(
        url,
        format!(
            "/api/imports/{}",
            reply.body["job_id"].as_str().expect("job_id")
        )
    );
    url.to_owned()
}

async fn a_background_mock_import_is_queued_runs_and_lands_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let queued = app
        .post(
            "/api/imports/mock?async=true",
            Some(&token),
            json!({"count": 1000, "seed": 42}),
        )
        .await;
    let url = status_url(&queued);
    assert_eq!(queued.body["status"], "queued");
    assert_eq!(queued.body["total"], 1000);
    assert_eq!(queued.body["source"], "mock_bank");

    let done = wait_for_end(&app, &token, &url, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["imported"], 1000);
    assert_eq!(done["skipped"], 0);
    assert_eq!(done["done"], 1000);
    assert_eq!(done["attempts"], 1);
    assert!(done["finished_at"].is_string(), "{done}");
    assert_eq!(app.summary(&token, "").await.body["count"], 1000);

    // The same transactions again, in the background and not: nothing new.
    let again = app
        .post(
            "/api/imports/mock?async=true",
            Some(&token),
            json!({"count": 1000, "seed": 42}),
        )
        .await;
    let again = wait_for_end(&app, &token, &status_url(&again), Duration::from_secs(60)).await;
    assert_eq!(
        (&again["imported"], &again["skipped"]),
        (&json!(0), &json!(1000))
    );
    let sync = app
        .post(
            "/api/imports/mock",
            Some(&token),
            json!({"count": 1000, "seed": 42}),
        )
        .await;
    assert_eq!(sync.status, StatusCode::CREATED);
    assert_eq!(sync.body["imported"], 0);
    assert_eq!(app.summary(&token, "").await.body["count"], 1000);

    // Another user's job, and ids that name no job, are not found.
    let other = app.new_user().await;
    app.get(&url, &other).await.assert_error(404, "not_found");
    app.get(&format!("/api/imports/{}", uuid::Uuid::now_v7()), &token)
        .await
        .assert_error(404, "not_found");
    app.get("/api/imports/not-a-job", &token)
        .await
        .assert_error(404, "not_found");
    let anonymous = app.request(reqwest::Method::GET, &url, None, None).await;
    anonymous.assert_error(401, "unauthorized");
}

async fn a_background_file_import_reports_its_lines_and_bad_input_is_refused_at_once(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let file = "date,amount,description\n2026-11-01,-5.50,Coffee\nnot a date,-1.00,Bad\n2026-11-02,20.00,Refund\n2026-11-03,-7.25,Lunch\n";
    let queued = app
        .upload(
            "/api/imports/csv?async=true&default_category=Imported",
            &token,
            "text/csv",
            file.as_bytes().to_vec(),
        )
        .await;
    let url = status_url(&queued);
    assert_eq!(queued.body["source"], "csv");
    assert_eq!(queued.body["transactions"], 3, "{}", queued.body);
    assert_eq!(queued.body["total"], 2);
    assert_eq!(queued.body["ignored"], 1);
    assert_eq!(queued.body["errors"][0]["line"], 3, "{}", queued.body);
    let done = wait_for_end(&app, &token, &url, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        (&done["imported"], &done["skipped"]),
        (&json!(2), &json!(0))
    );
    let summary = app.summary(&token, "").await.body;
    assert_eq!(summary["count"], 2);
    assert_eq!(summary["total"], "12.75");
    assert_eq!(summary["categories"][0]["category"], "Imported");

    // What is wrong with the request is said at once, and nothing is queued.
    let strict = app
        .upload(
            "/api/imports/csv?async=true&strict=true",
            &token,
            "text/csv",
            file.as_bytes().to_vec(),
        )
        .await;
    strict.assert_error(422, "validation_failed");
    let not_ofx = app
        .upload(
            "/api/imports/ofx?async=true",
            &token,
            "application/x-ofx",
            b"hello".to_vec(),
        )
        .await;
    not_ofx.assert_error(422, "validation_failed");
    let too_many = app
        .post(
            "/api/imports/mock?async=true",
            Some(&token),
            json!({"count": 1001}),
        )
        .await;
    too_many.assert_error(422, "validation_failed");
    let bad_flag = app
        .post("/api/imports/mock?async=maybe", Some(&token), json!({}))
        .await;
    bad_flag.assert_error(400, "bad_request");
    // A dry run answers at once, in the background or not.
    let dry = app
        .upload(
            "/api/imports/csv?async=true&dry_run=true",
            &token,
            "text/csv",
            file.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    assert_eq!(dry.body["skipped"], 2);
    assert_eq!(app.summary(&token, "").await.body["count"], 2);
}

async fn an_idempotency_key_replays_the_queued_job(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let send = |key: &'static str, body: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            let res = app
                .http
                .post(format!("{}/api/imports/mock?async=true", app.base))
                .bearer_auth(token)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .expect("request");
            Reply::from_response(res).await
        }
    };
    let first = send("nightly-sync", json!({"count": 50, "seed": 9})).await;
    let url = status_url(&first);
    let retry = send("nightly-sync", json!({"count": 50, "seed": 9})).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED);
    assert_eq!(retry.body["job_id"], first.body["job_id"]);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    // A client that follows Location gets there on a retry too.
    assert_eq!(status_url(&retry), url);
    let other_body = send("nightly-sync", json!({"count": 51, "seed": 9})).await;
    other_body.assert_error(422, "validation_failed");
    // The same key on the synchronous route is another request.
    let res = app
        .http
        .post(format!("{}/api/imports/mock", app.base))
        .bearer_auth(&token)
        .header("idempotency-key", "nightly-sync")
        .json(&json!({"count": 50, "seed": 9}))
        .send()
        .await
        .expect("request");
    Reply::from_response(res)
        .await
        .assert_error(422, "validation_failed");
    let done = wait_for_end(&app, &token, &url, Duration::from_secs(60)).await;
    assert_eq!(done["imported"], 50, "{done}");
    assert_eq!(app.summary(&token, "").await.body["count"], 50);
}

/// A job submitted while Redis is down waits in the database, and runs once
/// Redis is back (empty: it lost its stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_while_redis_is_down_runs_when_it_returns() {
    let port = common::spare_port();
    let app = spawn_app_with(Backend::Postgres, |spec| {
        let redis = spec.redis.as_mut().expect("redis");
        redis.url = format!("redis://127.0.0.1:{port}");
    })
    .await;
    let token = app.new_user().await;
    let queued = app
        .post(
            "/api/imports/mock?async=true",
            Some(&token),
            json!({"count": 200, "seed": 3}),
        )
        .await;
    let url = status_url(&queued);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.get(&url, &token).await.body["status"], "queued");
    let mut redis = common::OwnRedis::start_on(port).await;
    let done = wait_for_end(&app, &token, &url, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["imported"], 200);
    assert_eq!(app.summary(&token, "").await.body["count"], 200);
    redis.stop().await;
}

/// `finance-server` as a process.
struct Process {
    child: tokio::process::Child,
}

impl Process {
    fn spawn(args: &[&str], env: &[(&str, String)]) -> Process {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_finance-server"));
        command
            .args(args)
            .env("RUST_LOG", "warn")
            .env("JWT_SECRET", "jobs-test-secret-jobs-test-secret-0123")
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        Process {
            child: command.spawn().expect("start finance-server"),
        }
    }

    fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL");
    }
}

async fn wait_until_up(base: &str) {
    for _ in 0..400 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("finance-server did not start at {base}");
}

/// A bank CSV of `rows` distinct purchases.
fn purchases_csv(rows: u32) -> String {
    let mut text = String::from("date,amount,description,category\n");
    for i in 0..rows {
        text.push_str(&format!(
            "2026-{:02}-{:02},-{}.{:02},Shop {i},Cat {}\n",
            1 + i % 12,
            1 + i % 28,
            1 + i % 300,
            i % 100,
            i % 20
        ));
    }
    text
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn register(base: &str) -> Client {
        let http = reqwest::Client::new();
        let reply: Value = http
            .post(format!("{base}/api/auth/register"))
            .json(&json!({"email": common::unique_email(), "password": "a fine password"}))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("json");
        Client {
            http,
            base: base.to_owned(),
            token: reply["access_token"].as_str().expect("token").to_owned(),
        }
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json")
    }

    async fn import_in_background(&self, csv: String) -> String {
        let reply: Value = self
            .http
            .post(format!("{}/api/imports/csv?async=true", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .expect("import")
            .json()
            .await
            .expect("json");
        assert_eq!(reply["status"], "queued", "{reply}");
        reply["status_url"].as_str().expect("status_url").to_owned()
    }

    /// Polls until `done(job)`; panics after `limit`.
    async fn poll(&self, url: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let job = self.get(url).await;
            if done(&job) {
                return job;
            }
            assert!(started.elapsed() < limit, "still waiting: {job}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn ended(job: &Value) -> bool {
    matches!(job["status"].as_str(), Some("succeeded" | "failed"))
}

/// A worker dies by SIGKILL in the middle of a 25,000-transaction import,
/// after its first chunk of 10,000 has committed (and shows), in the middle
/// of the second; another takes the job over once its claim has gone quiet,
/// goes on from the job's cursor, and the import lands exactly once, with
/// exact counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_import_loses_and_duplicates_nothing() {
    const ROWS: u32 = 25_000;
    let redis = common::redis_settings().await;
    let database = common::fresh_postgres_database().await;
    let env = vec![
        ("DATABASE_URL", database.clone()),
        ("REDIS_URL", redis.url.clone()),
        ("REDIS_KEY_PREFIX", redis.key_prefix.clone()),
        ("JOB_VISIBILITY_TIMEOUT_SECONDS", "2".to_owned()),
    ];
    let port = common::spare_port();
    let mut with_bind = env.clone();
    with_bind.push(("BIND", format!("127.0.0.1:{port}")));
    let _server = Process::spawn(&["serve", "--no-worker"], &with_bind);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    // Each statement inserting expenses takes 0.1 s more in this database
    // (there are 50 of 500 rows), so the kill lands mid-import, not after.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&database)
        .await
        .expect("connect");
    for statement in [
        "CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(0.1); RETURN NULL; END $$",
        "CREATE TRIGGER slow_imports BEFORE INSERT ON expenses \
         FOR EACH STATEMENT EXECUTE FUNCTION slow_down()",
    ] {
        sqlx::Executor::execute(&mut conn, statement)
            .await
            .expect("slow the test database down");
    }
    let mut doomed = Process::spawn(&["worker"], &env);
    let client = Client::register(&base).await;

    let url = client.import_in_background(purchases_csv(ROWS)).await;
    let caught = client
        .poll(&url, Duration::from_secs(120), |job| {
            ended(job) || (job["status"] == "running" && job["done"].as_u64() >= Some(12_000))
        })
        .await;
    doomed.kill();
    assert_eq!(
        caught["status"], "running",
        "the job must be caught mid-import: {caught}"
    );
    // The first chunk is committed and counted; the second is not.
    let kept = client.get("/api/expenses/summary").await;
    assert_eq!(kept["count"], 10_000, "{kept}");
    let done_before = caught["done"].as_u64().expect("done");
    assert!(done_before < u64::from(ROWS), "{caught}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let still = client.get(&url).await;
    assert_eq!(still["status"], "running", "nobody finished it: {still}");

    let _rescuer = Process::spawn(&["worker"], &env);
    let job = client.poll(&url, Duration::from_secs(120), ended).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(job["imported"], ROWS, "{job}");
    assert_eq!(job["skipped"], 0, "{job}");
    let summary = client.get("/api/expenses/summary").await;
    assert_eq!(summary["count"], ROWS, "{summary}");
    let categories = client.get("/api/categories").await;
    let per_category: u64 = categories["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .map(|c| c["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(per_category, u64::from(ROWS), "{categories}");
}

/// A single server (SQLite, no Redis) killed with an import queued and one
/// under way runs both after a restart, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_with_imports_pending_runs_them_after_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = common::spare_port();
    let env = vec![
        ("DATA_DIR", dir.path().display().to_string()),
        ("BIND", format!("127.0.0.1:{port}")),
    ];
    let base = format!("http://127.0.0.1:{port}");
    let mut first = Process::spawn(&["serve"], &env);
    wait_until_up(&base).await;
    let client = Client::register(&base).await;
    let a = client.import_in_background(purchases_csv(5_000)).await;
    let b = client.import_in_background(purchases_csv(3_000)).await;
    // The second waits behind the first (one worker, one job at a time): only
    // the restarted server can finish it.
    let pending = client.get(&b).await;
    assert_ne!(pending["status"], "succeeded", "{pending}");
    first.kill();
    let _ = first.child.wait().await;

    let _second = Process::spawn(&["serve"], &env);
    wait_until_up(&base).await;
    for url in [&a, &b] {
        let job = client.poll(url, Duration::from_secs(120), ended).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let (imported, skipped) = (
            job["imported"].as_u64().expect("imported"),
            job["skipped"].as_u64().expect("skipped"),
        );
        assert_eq!(imported + skipped, job["total"].as_u64().expect("total"));
    }
    // The 3,000 rows are the first 3,000 of the 5,000: 5,000 expenses in all.
    let summary = client.get("/api/expenses/summary").await;
    assert_eq!(summary["count"], 5_000, "{summary}");
}

/// MariaDB takes at most `max_allowed_packet` bytes in one statement (16 MiB
/// by default): a file whose transactions would not fit is refused with a
/// clear 422 and nothing queued, and the same file imports without async.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_too_large_to_queue_on_mysql_is_refused_clearly() {
    let app = spawn_app(Backend::Mysql).await;
    let token = app.new_user().await;
    let limit: u64 = {
        let mut conn =
            <sqlx::MySqlConnection as sqlx::Connection>::connect(&common::mysql_admin_url())
                .await
                .expect("connect");
        sqlx::query_scalar("SELECT CAST(@@max_allowed_packet AS UNSIGNED)")
            .fetch_one(&mut conn)
            .await
            .expect("max_allowed_packet")
    };
    // Each transaction takes well over 150 bytes as JSON.
    let rows = u32::try_from(limit / 150).expect("rows");
    let csv = purchases_csv(rows);
    let refused = app
        .upload(
            "/api/imports/csv?async=true",
            &token,
            "text/csv",
            csv.clone().into_bytes(),
        )
        .await;
    refused.assert_error(422, "validation_failed");
    let reason = refused.body["fields"]["async"].as_str().expect("reason");
    assert!(reason.contains("without async=true"), "{reason}");
    assert_eq!(app.summary(&token, "").await.body["count"], 0);
    let imported = app
        .upload("/api/imports/csv", &token, "text/csv", csv.into_bytes())
        .await;
    assert_eq!(
        imported.status,
        StatusCode::CREATED,
        "{}",
        imported.body["errors"]
    );
    assert_eq!(imported.body["imported"], rows);
}
