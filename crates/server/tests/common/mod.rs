//! The test harness: a real server on 127.0.0.1:0 over a fresh database, and
//! typed helpers to call it over HTTP.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::time::Duration;

use finance_server::AppState;
use finance_server::auth::LoginLimits;
use finance_server::cache::RedisSettings;
use finance_server::config::{Secret, Settings};
use finance_server::store::PoolSettings;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Executor};
use tokio::sync::oneshot;

/// Where the tests find PostgreSQL (a database they may create databases from).
pub const POSTGRES_VAR: &str = "FINANCE_TEST_POSTGRES_URL";
/// Where the tests find MySQL or MariaDB (a database they may create databases from).
pub const MYSQL_VAR: &str = "FINANCE_TEST_MYSQL_URL";
/// Where the tests find Redis.
pub const REDIS_VAR: &str = "FINANCE_TEST_REDIS_URL";

const SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// The databases every storage test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// A temporary SQLite file with the in-process cache.
    Sqlite,
    /// A fresh PostgreSQL database with the real Redis.
    Postgres,
    /// A fresh MariaDB (or MySQL) database with the real Redis.
    Mysql,
}

pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_VAR).unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn mysql_admin_url() -> String {
    std::env::var(MYSQL_VAR).unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// Creates an empty MariaDB database for one test and returns its URL.
/// Databases left by runs more than an hour old are dropped on the way.
pub async fn fresh_mysql_database() -> String {
    let admin = mysql_admin_url();
    let mut conn = sqlx::MySqlConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach MariaDB/MySQL at {admin}: {e}; start it or set {MYSQL_VAR}")
        });
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata WHERE schema_name LIKE 'finance\\_t\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list test databases");
    let (name, stale) = test_database_names(names);
    for old in stale {
        let _ = conn
            .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {old}")))
            .await;
    }
    conn.execute(AssertSqlSafe(format!(
        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
    )))
    .await
    .expect("create test database");
    database_url(&admin, &name)
}

/// A name for a new test database, and those of `existing` left by runs
/// more than an hour old (the names carry their creation time).
fn test_database_names(existing: Vec<String>) -> (String, Vec<String>) {
    let now = chrono::Utc::now().timestamp();
    let stale = existing
        .into_iter()
        .filter(|name| {
            let created: i64 = name
                .split('_')
                .nth(2)
                .and_then(|t| t.parse().ok())
                .unwrap_or(now);
            now - created > 3600
        })
        .collect();
    let name = format!("finance_t_{now}_{}", uuid::Uuid::new_v4().simple());
    (name, stale)
}

/// The admin URL with another database.
pub fn database_url(admin: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin).expect("valid database URL");
    url.set_path(name);
    url.to_string()
}

pub fn redis_url() -> String {
    std::env::var(REDIS_VAR).unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Creates an empty PostgreSQL database for one test and returns its URL.
/// Databases left by runs more than an hour old are dropped on the way.
pub async fn fresh_postgres_database() -> String {
    let admin = postgres_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach PostgreSQL at {admin}: {e}; start it or set {POSTGRES_VAR}")
        });
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'finance_t_%'")
            .fetch_all(&mut conn)
            .await
            .expect("list test databases");
    let (name, stale) = test_database_names(names);
    for old in stale {
        let _ = conn
            .execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {old} WITH (FORCE)"
            )))
            .await;
    }
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create test database");
    database_url(&admin, &name)
}

/// Redis settings with a key prefix of their own, after checking Redis answers.
pub async fn redis_settings() -> RedisSettings {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("valid Redis URL");
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("cannot reach Redis at {url}: {e}; start it or set {REDIS_VAR}"),
        Err(_) => panic!("Redis at {url} did not answer; start it or set {REDIS_VAR}"),
    }
    RedisSettings {
        url,
        key_prefix: format!("finance-test:{}:", uuid::Uuid::new_v4().simple()),
        ttl: Duration::from_secs(60),
        timeout: Duration::from_millis(200),
    }
}

/// How to start one server.
#[derive(Clone, Debug)]
pub struct Spec {
    pub database_url: String,
    /// A read replica (PostgreSQL).
    pub database_read_url: Option<String>,
    pub redis: Option<RedisSettings>,
    pub login_limits: LoginLimits,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a request waits for a database connection.
    pub acquire_timeout: Duration,
    pub limits: finance_server::config::ServerLimits,
    /// Zero turns the summary cache off.
    pub cache_ttl: Duration,
    /// Run background imports in the server, as `serve` does by default.
    pub worker: bool,
    pub job_visibility: Duration,
}

impl Spec {
    /// A fresh database (and, on PostgreSQL, Redis with a fresh prefix).
    pub async fn fresh(backend: Backend, dir: &tempfile::TempDir) -> Spec {
        match backend {
            Backend::Sqlite => Spec {
                database_url: format!("sqlite:{}", dir.path().join("finance.db").display()),
                database_read_url: None,
                redis: None,
                login_limits: LoginLimits::default(),
                trusted_proxies: Vec::new(),
                acquire_timeout: Duration::from_secs(5),
                limits: Default::default(),
                cache_ttl: Duration::from_secs(60),
                worker: true,
                job_visibility: Duration::from_secs(30),
            },
            Backend::Postgres | Backend::Mysql => Spec {
                database_url: match backend {
                    Backend::Mysql => fresh_mysql_database().await,
                    _ => fresh_postgres_database().await,
                },
                database_read_url: None,
                redis: Some(redis_settings().await),
                login_limits: LoginLimits::default(),
                trusted_proxies: Vec::new(),
                acquire_timeout: Duration::from_secs(5),
                limits: Default::default(),
                cache_ttl: Duration::from_secs(60),
                worker: true,
                job_visibility: Duration::from_secs(30),
            },
        }
    }

    fn settings(&self) -> Settings {
        Settings {
            database_url: self.database_url.clone(),
            database_read_url: self.database_read_url.clone(),
            redis: self.redis.clone(),
            cache_ttl: self.cache_ttl,
            jwt_secret: Secret::new(SECRET),
            token_ttl: Duration::from_secs(3600),
            pool: PoolSettings {
                max_connections: 8,
                acquire_timeout: self.acquire_timeout,
            },
            password_concurrency: 2,
            login_limits: self.login_limits,
            trusted_proxies: self.trusted_proxies.clone(),
            limits: self.limits,
            job_visibility: self.job_visibility,
        }
    }
}

/// A running server and an HTTP client for it.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// One response: status, headers, and the body as JSON (a string if it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Reads a response whole.
    pub async fn from_response(res: reqwest::Response) -> Reply {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and the JSON error code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(
            self.body["error"], code,
            "unexpected error code; body: {}",
            self.body
        );
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        assert!(self.header("x-request-id").is_some(), "no X-Request-Id");
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

/// Starts a server for one test on the backend.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts a server for one test on the backend, with settings changed by `adjust`.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Spec)) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut spec = Spec::fresh(backend, &dir).await;
    adjust(&mut spec);
    let mut app = start(&spec).await;
    app._dir = Some(dir);
    app
}

/// Starts a server as the spec says (several may share one spec).
pub async fn start(spec: &Spec) -> TestApp {
    let state = AppState::from_settings(&spec.settings())
        .await
        .expect("server state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    let (tx, rx) = oneshot::channel::<()>();
    let worker = spec
        .worker
        .then(|| finance_server::jobs::InProcessWorker::spawn(state.clone()));
    let serving = state.clone();
    tokio::spawn(async move {
        let _ = finance_server::serve(serving, listener, async {
            let _ = rx.await;
        })
        .await;
        drop(worker);
    });
    TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client"),
        state,
        shutdown: Some(tx),
        _dir: None,
    }
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Reply::from_response(req.send().await.expect("request reaches the server")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// Registers a user with a fresh email; returns the access token.
    pub async fn new_user(&self) -> String {
        self.register(&unique_email(), "correct horse battery")
            .await
    }

    pub async fn register(&self, email: &str, password: &str) -> String {
        let reply = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "register: {}",
            reply.body
        );
        reply.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Adds an expense; returns it.
    pub async fn add(&self, token: &str, category: &str, amount: Value, spent_on: &str) -> Value {
        let reply = self
            .post(
                "/api/expenses",
                Some(token),
                json!({"category": category, "amount": amount, "spent_on": spent_on}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "add expense: {}",
            reply.body
        );
        reply.body
    }

    pub async fn summary(&self, token: &str, query: &str) -> Reply {
        let reply = self
            .get(&format!("/api/expenses/summary{query}"), token)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "summary: {}", reply.body);
        reply
    }
}

impl TestApp {
    /// Sends a file as the whole body of a POST.
    pub async fn upload(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Reply {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("request reaches the server");
        Reply::from_response(res).await
    }

    /// A GET whose body is kept as text (an export).
    pub async fn get_text(&self, path: &str, token: &str) -> (StatusCode, HeaderMap, String) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request reaches the server");
        let status = res.status();
        let headers = res.headers().clone();
        (status, headers, res.text().await.expect("body"))
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.request(Method::DELETE, path, Some(token), None).await
    }
}

/// Runs each listed `async fn(Backend)` as a test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Mysql).await
                }
            )*
        }
    };
}

/// A Redis of the test's own on a spare port, so it can be stopped.
pub struct OwnRedis {
    pub port: u16,
    child: Option<tokio::process::Child>,
}

impl OwnRedis {
    pub async fn start_on(port: u16) -> OwnRedis {
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (Debian package redis-server)");
        let redis = OwnRedis {
            port,
            child: Some(child),
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {port}");
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }
}

/// A port nothing listens on (at the moment of asking).
pub fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a spare port")
}
