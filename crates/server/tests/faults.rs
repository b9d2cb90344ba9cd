//! Failures: the database cut off, SIGTERM under load, a crash mid-import,
//! racing imports, and Redis missing from the start.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, Spec, fresh_postgres_database, spawn_app, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A TCP proxy the test can cut: while down it drops every open connection and refuses new ones.
struct CuttableProxy {
    addr: std::net::SocketAddr,
    up: Arc<Mutex<bool>>,
    /// While set, new connections are accepted and then never answered.
    stalled: Arc<Mutex<bool>>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl CuttableProxy {
    async fn to(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("address");
        let up = Arc::new(Mutex::new(true));
        let stalled = Arc::new(Mutex::new(false));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (flag, stall, conns, target) = (
            up.clone(),
            stalled.clone(),
            connections.clone(),
            target.to_owned(),
        );
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*flag.lock().expect("lock") {
                    drop(client);
                    continue;
                }
                if *stall.lock().expect("lock") {
                    let hold = tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        drop(client);
                    });
                    conns.lock().expect("lock").push(hold.abort_handle());
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns.lock().expect("lock").push(task.abort_handle());
            }
        });
        CuttableProxy {
            addr,
            up,
            stalled,
            connections,
        }
    }

    /// Drops open connections; new ones hang unanswered.
    fn stall(&self) {
        *self.stalled.lock().expect("lock") = true;
        for connection in self.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }

    fn set_up(&self, up: bool) {
        *self.up.lock().expect("lock") = up;
        if !up {
            for connection in self.connections.lock().expect("lock").drain(..) {
                connection.abort();
            }
        }
    }
}

/// A fresh PostgreSQL database reached through a proxy the test controls; its URL.
async fn postgres_behind_proxy() -> (CuttableProxy, url::Url) {
    let mut url = url::Url::parse(&fresh_postgres_database().await).expect("url");
    let target = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().unwrap_or(5432)
    );
    let proxy = CuttableProxy::to(&target).await;
    url.set_port(Some(proxy.addr.port())).expect("port");
    (proxy, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_quickly_and_recovers_without_restart() {
    let (proxy, url) = postgres_behind_proxy().await;
    let acquire_timeout = Duration::from_secs(2);
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut spec = Spec::fresh(Backend::Sqlite, &dir).await;
    spec.database_url = url.to_string();
    spec.acquire_timeout = acquire_timeout;
    let app = start(&spec).await;
    let token = app.new_user().await;
    app.add(&token, "Food", json!(5), "2026-11-01").await;

    proxy.set_up(false);
    for (method, path, body) in [
        (Method::GET, "/api/expenses", None),
        (Method::GET, "/api/expenses/summary?from=2020-01-01", None),
        (
            Method::POST,
            "/api/expenses",
            Some(json!({"category": "Food", "amount": 1})),
        ),
        (Method::GET, "/api/auth/me", None),
    ] {
        let started = Instant::now();
        let reply = app.request(method.clone(), path, Some(&token), body).await;
        reply.assert_error(503, "service_unavailable");
        assert!(
            started.elapsed() < acquire_timeout + Duration::from_secs(3),
            "{method} {path} took {:?}",
            started.elapsed()
        );
    }
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["database"], "down");
    let health = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK, "the process itself is fine");

    proxy.set_up(true);
    let mut recovered = false;
    for _ in 0..50 {
        if app.request(Method::GET, "/readyz", None, None).await.status == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "ready again once the database is back");
    app.add(&token, "Food", json!(7), "2026-11-02").await;
    assert_eq!(
        app.summary(&token, "").await.body["total"],
        "12.00",
        "nothing lost, nothing doubled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_database_cannot_hold_a_request_past_its_deadline() {
    let (proxy, url) = postgres_behind_proxy().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut spec = Spec::fresh(Backend::Sqlite, &dir).await;
    spec.database_url = url.to_string();
    spec.acquire_timeout = Duration::from_secs(60);
    spec.limits.request_timeout = Duration::from_secs(1);
    let app = start(&spec).await;
    let token = app.new_user().await;

    proxy.stall();
    // The pooled connection died with the stall (a quick 503); after that,
    // every new connection hangs, and only the deadline ends the request.
    for attempt in 0..3 {
        let started = Instant::now();
        let reply = app
            .request(Method::GET, "/api/expenses", Some(&token), None)
            .await;
        reply.assert_error(503, "service_unavailable");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "cut at the deadline, not the pool's 60 s: {took:?}"
        );
        if attempt == 2 {
            assert!(
                took >= Duration::from_millis(900),
                "the last one waited for the deadline: {took:?}"
            );
        }
    }
}

/// PostgreSQL ends every connection of the server (a restart, a failover, an
/// administrator): the next requests are answered as if nothing happened,
/// token checks included, which run on a connection of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_ended_by_postgres_are_replaced_without_a_failed_request() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let spec = Spec::fresh(Backend::Postgres, &dir).await;
    let app = start(&spec).await;
    let token = app.new_user().await;
    app.add(&token, "Food", json!(5), "2026-11-01").await;
    assert_eq!(app.summary(&token, "").await.body["total"], "5.00");

    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&spec.database_url)
        .await
        .expect("admin connection");
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) AS ended",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminate the server's connections");
    assert!(
        ended >= 2,
        "the pool's and the token checks' connections: {ended}"
    );

    for path in ["/api/auth/me", "/api/expenses/summary", "/api/expenses"] {
        let reply = app.request(Method::GET, path, Some(&token), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.body);
    }
    app.add(&token, "Food", json!(7), "2026-11-02").await;
    assert_eq!(app.summary(&token, "").await.body["total"], "12.00");
}

/// `finance-server` as a process on a SQLite file in `dir`.
struct Process {
    child: tokio::process::Child,
    base: String,
}

impl Process {
    async fn start(dir: &std::path::Path) -> Process {
        let port = common::spare_port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_finance-server"))
            .env("DATA_DIR", dir)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("start finance-server");
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if reqwest::get(format!("{base}/healthz")).await.is_ok() {
                return Process { child, base };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("finance-server did not start");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    async fn wait(mut self) -> std::process::ExitStatus {
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server exits")
            .expect("exit status")
    }
}

async fn register(client: &reqwest::Client, base: &str) -> String {
    let reply: Value = client
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": common::unique_email(), "password": "a fine password"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    reply["access_token"].as_str().expect("token").to_owned()
}

async fn all_ids(client: &reqwest::Client, base: &str, token: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut cursor = String::new();
    loop {
        let page: Value = client
            .get(format!("{base}/api/expenses?limit=200&cursor={cursor}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        for e in page["expenses"].as_array().expect("expenses") {
            ids.insert(e["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_write_load_keeps_every_acknowledged_expense() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = Process::start(dir.path()).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let token = register(&client, &server.base).await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (client, base, token, acked) = (client.clone(), server.base.clone(), token.clone(), acked.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let sent = client
                        .post(format!("{base}/api/expenses"))
                        .bearer_auth(&token)
                        .json(&json!({"category": "Load", "amount": format!("{}.{:02}", w + 1, i % 100)}))
                        .send()
                        .await;
                    match sent {
                        Ok(res) if res.status() == StatusCode::CREATED => {
                            let e: Value = res.json().await.expect("expense");
                            acked.lock().expect("lock").push(e["id"].as_str().expect("id").to_owned());
                        }
                        // Refused once shutdown began: the writer stops.
                        _ => break,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.signal("-TERM");
    let status = server.wait().await;
    assert!(status.success(), "graceful exit: {status}");
    for writer in writers {
        writer.await.expect("writer");
    }
    let acked: HashSet<String> = acked.lock().expect("lock").iter().cloned().collect();
    assert!(
        acked.len() > 10,
        "the load was real: {} acknowledged",
        acked.len()
    );

    let restarted = Process::start(dir.path()).await;
    let stored = all_ids(&client, &restarted.base, &token).await;
    let missing: Vec<_> = acked.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged expenses lost",
        missing.len(),
        acked.len()
    );
    restarted.signal("-TERM");
    restarted.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_during_import_leaves_all_or_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut token = None;
    // A 1,000-row import takes from tens to hundreds of milliseconds: some
    // kills land before it, some during, some after it committed.
    for (round, delay_ms) in [10u64, 40, 80, 120, 160, 240, 2000].into_iter().enumerate() {
        let server = Process::start(dir.path()).await;
        let token = match &token {
            Some(t) => t,
            None => token.insert(register(&client, &server.base).await),
        };
        let import = client
            .post(format!("{}/api/imports/mock", server.base))
            .bearer_auth(token.as_str())
            .json(&json!({"count": 1000, "seed": round}))
            .send();
        let killer = async {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            server.signal("-KILL");
        };
        let (_, ()) = tokio::join!(import, killer);
        server.wait().await;
    }
    let server = Process::start(dir.path()).await;
    let token = token.expect("registered");
    let rows = all_ids(&client, &server.base, &token).await.len();
    eprintln!("rows after the crashes: {rows}");
    assert!(rows > 0, "at least one import committed before its kill");
    assert_eq!(
        rows % 1000,
        0,
        "each import landed whole or not at all: {rows} rows"
    );
    let summary: Value = client
        .get(format!("{}/api/expenses/summary", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("summary")
        .json()
        .await
        .expect("json");
    assert_eq!(
        summary["count"].as_u64(),
        Some(rows as u64),
        "the totals agree with the rows"
    );
    server.signal("-TERM");
    server.wait().await;
}

async fn racing_imports_of_one_seed_land_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let replies = futures::future::join_all((0..8).map(|_| {
        app.post(
            "/api/imports/mock",
            Some(&token),
            json!({"count": 50, "seed": 4242}),
        )
    }))
    .await;
    let mut imported = 0;
    let mut skipped = 0;
    for r in &replies {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        imported += r.body["imported"].as_u64().expect("imported");
        skipped += r.body["skipped"].as_u64().expect("skipped");
    }
    assert_eq!((imported, skipped), (50, 350));
    assert_eq!(app.summary(&token, "").await.body["count"], 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_imports_of_one_seed_land_once_on_sqlite() {
    racing_imports_of_one_seed_land_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_imports_of_one_seed_land_once_on_postgres() {
    racing_imports_of_one_seed_land_once(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_imports_of_one_seed_land_once_on_mysql() {
    racing_imports_of_one_seed_land_once(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_degrades_then_recovers() {
    let port = common::spare_port();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut spec = Spec::fresh(Backend::Sqlite, &dir).await;
    let mut redis = common::redis_settings().await;
    redis.url = format!("redis://127.0.0.1:{port}");
    spec.redis = Some(redis);
    let app = start(&spec).await;
    let token = app.new_user().await;
    for i in 1..=5 {
        app.add(&token, "Food", json!(2), "2026-11-01").await;
        let s = app.summary(&token, "").await;
        assert_eq!(s.body["count"], i);
    }
    assert_eq!(
        app.request(Method::GET, "/readyz", None, None).await.body["cache"],
        "down"
    );

    let mut server = common::OwnRedis::start_on(port).await;
    let mut hit = false;
    for _ in 0..100 {
        let s = app.summary(&token, "").await;
        assert_eq!(s.body["count"], 5);
        if s.header("x-cache") == Some("hit") {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hit, "the cache starts working once Redis appears");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_per_sqlite_file_and_logouts_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let client = reqwest::Client::new();
    let server = Process::start(dir.path()).await;
    let token = register(&client, &server.base).await;
    let status = |res: reqwest::Result<reqwest::Response>| res.expect("request").status();
    let me = |base: &str, token: &str| {
        client
            .get(format!("{base}/api/auth/me"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(status(me(&server.base, &token).await), StatusCode::OK);
    let logout = client
        .post(format!("{}/api/auth/logout", server.base))
        .bearer_auth(&token)
        .send()
        .await;
    assert_eq!(status(logout), StatusCode::NO_CONTENT);
    assert_eq!(
        status(me(&server.base, &token).await),
        StatusCode::UNAUTHORIZED
    );

    // A second server on the same file would not see the first one's writes
    // in its memory: it refuses to start, and says why.
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_finance-server"))
        .env("DATA_DIR", dir.path())
        .env("BIND", format!("127.0.0.1:{}", common::spare_port()))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let second = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("the second server gives up")
        .expect("run finance-server");
    assert!(!second.status.success(), "a second server must not start");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another finance-server process"),
        "the reason is given: {stderr}"
    );
    assert_eq!(
        status(me(&server.base, &token).await),
        StatusCode::UNAUTHORIZED
    );

    server.signal("-TERM");
    assert!(server.wait().await.success());
    let restarted = Process::start(dir.path()).await;
    assert_eq!(
        status(me(&restarted.base, &token).await),
        StatusCode::UNAUTHORIZED,
        "a logged-out token stays refused after a restart"
    );
    restarted.signal("-TERM");
    restarted.wait().await;
}
