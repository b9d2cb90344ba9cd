//! Three `finance-server` processes on one PostgreSQL and one Redis behind
//! nginx (round robin, with the shipped `deploy/nginx/finance.conf`), driven
//! by a mixed workload: every answer must be the one a single server gives.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "scale-out-secret-scale-out-secret-0123";

/// The shipped proxy configuration.
const SHIPPED: &str = include_str!("../../../deploy/nginx/finance.conf");

/// `finance-server serve` as a process.
struct Instance {
    base: String,
    _child: tokio::process::Child,
}

impl Instance {
    fn spawn(database: &str, redis: &finance_server::cache::RedisSettings) -> Instance {
        let port = common::spare_port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_finance-server"))
            .env("DATABASE_URL", database)
            .env("REDIS_URL", &redis.url)
            .env("REDIS_KEY_PREFIX", &redis.key_prefix)
            .env("JWT_SECRET", SECRET)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("TRUSTED_PROXIES", "127.0.0.1")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("start finance-server");
        Instance {
            base: format!("http://127.0.0.1:{port}"),
            _child: child,
        }
    }
}

async fn wait_until_up(base: &str) {
    for _ in 0..600 {
        if let Ok(res) = reqwest::get(format!("{base}/readyz")).await
            && res.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing ready at {base}");
}

/// nginx running the shipped configuration, with `upstreams` as its servers.
struct Nginx {
    pub base: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, so the master stops its workers (SIGKILL would orphan them).
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The shipped site with these upstream addresses and this listening address.
fn site(upstreams: &[&str], listen: &str) -> String {
    let mut out = String::new();
    let mut in_upstream = false;
    for line in SHIPPED.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("upstream ") {
            in_upstream = true;
        }
        if in_upstream && trimmed.starts_with("server ") {
            // One line of the shipped file stands for every instance.
            if let Some(options) = trimmed
                .strip_prefix("server finance-1:8080")
                .map(|rest| rest.trim_end_matches(';'))
            {
                for upstream in upstreams {
                    out.push_str(&format!("    server {upstream}{options};\n"));
                }
            }
            continue;
        }
        if trimmed.starts_with('}') {
            in_upstream = false;
        }
        if trimmed == "listen 80;" {
            out.push_str(&format!("    listen {listen};\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl Nginx {
    async fn start(upstreams: &[&str]) -> Nginx {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path();
        let port = common::spare_port();
        let listen = format!("127.0.0.1:{port}");
        std::fs::write(root.join("finance.conf"), site(upstreams, &listen)).expect("write site");
        // nginx's workers (nobody, under root) write request bodies here.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for temp in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            let path = root.join(temp);
            std::fs::create_dir(&path).expect("temp dir");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        let r = root.display();
        let main = format!(
            "worker_processes 1;\npid {r}/nginx.pid;\nerror_log {r}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {r}/body;\n  proxy_temp_path {r}/proxy;\n\
             fastcgi_temp_path {r}/fastcgi;\n  uwsgi_temp_path {r}/uwsgi;\n  scgi_temp_path {r}/scgi;\n\
             include {r}/finance.conf;\n}}\n"
        );
        std::fs::write(root.join("nginx.conf"), main).expect("write nginx.conf");
        let child = std::process::Command::new(nginx_binary())
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx {
            base: format!("http://{listen}"),
            child,
            _dir: dir,
        };
        wait_until_up(&nginx.base).await;
        nginx
    }
}

fn nginx_binary() -> &'static str {
    for path in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(path).exists() {
            return path;
        }
    }
    panic!("nginx is not installed (Debian: apt-get install nginx); this test needs it")
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http.request(method, url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(http: &reqwest::Client, url: String, token: &str) -> (StatusCode, Value) {
    send(http, reqwest::Method::GET, url, Some(token), None).await
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    send(http, reqwest::Method::POST, url, token, body).await
}

async fn login(http: &reqwest::Client, base: &str, credentials: &Value) -> (StatusCode, Value) {
    post(
        http,
        format!("{base}/api/auth/login"),
        None,
        Some(credentials.clone()),
    )
    .await
}

/// `GET /api/auth/me`'s status.
async fn me(http: &reqwest::Client, base: &str, token: &str) -> StatusCode {
    get(http, format!("{base}/api/auth/me"), token).await.0
}

/// The summary, which must be a 200.
async fn summary(http: &reqwest::Client, base: &str, token: &str) -> Value {
    let (status, summary) = get(http, format!("{base}/api/expenses/summary"), token).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    summary
}

fn cents(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not an amount: {v}"));
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    digits.parse().expect("digits")
}

/// One user's part of the workload, through the proxy, checking every answer.
async fn one_user(proxy: String, instances: Vec<String>, n: usize) -> Value {
    let http = reqwest::Client::new();
    let email = common::unique_email();
    let password = "scale out password";
    let credentials = json!({"email": email, "password": password});
    let (status, _) = post(
        &http,
        format!("{proxy}/api/auth/register"),
        None,
        Some(credentials.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // Logged in on one instance, used through the proxy on all of them.
    let (status, first) = login(&http, &instances[n % instances.len()], &credentials).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let token = first["access_token"].as_str().expect("token").to_owned();

    let (mut count, mut total) = (0u64, 0i64);
    for i in 0..30u64 {
        let amount = 100 + (n as i64) * 7 + (i as i64) * 13;
        let (status, created) = post(
            &http,
            format!("{proxy}/api/expenses"),
            Some(&token),
            Some(json!({
                "category": format!("Cat {}", i % 4),
                "amount": format!("{}.{:02}", amount / 100, amount % 100),
                "spent_on": "2026-11-20",
            })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        count += 1;
        total += amount;
        // Read your write on whichever instance answers next.
        if i % 5 == 4 {
            let summary = summary(&http, &proxy, &token).await;
            assert_eq!(summary["count"], count, "{summary}");
            assert_eq!(cents(&summary["total"]), total, "{summary}");
        }
    }

    // A background import, queued through one instance, run by any worker,
    // followed through all of them.
    let (status, job) = post(
        &http,
        format!("{proxy}/api/imports/mock?async=true"),
        Some(&token),
        Some(json!({"count": 300, "seed": n})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let url = format!("{proxy}{}", job["status_url"].as_str().expect("status_url"));
    let started = Instant::now();
    let job = loop {
        let (status, job) = get(&http, url.clone(), &token).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if job["status"] == "succeeded" || job["status"] == "failed" {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["imported"], 300, "{job}");
    count += 300;

    // The summary agrees with every expense listed, page by page.
    let (mut listed, mut listed_total, mut cursor) = (0u64, 0i64, String::new());
    loop {
        let (status, page) = get(
            &http,
            format!("{proxy}/api/expenses?limit=200&cursor={cursor}"),
            &token,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for e in page["expenses"].as_array().expect("expenses") {
            listed += 1;
            listed_total += cents(&e["amount"]);
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    for _ in 0..instances.len() {
        let summary = summary(&http, &proxy, &token).await;
        assert_eq!(summary["count"], count, "{summary}");
        assert_eq!(listed, count);
        assert_eq!(cents(&summary["total"]), listed_total, "{summary}");
    }

    // A second session survives the logout of the first.
    let (_, second) = login(&http, &proxy, &credentials).await;
    let second = second["access_token"].as_str().expect("token").to_owned();
    let (status, _) = post(
        &http,
        format!("{proxy}/api/auth/logout"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for instance in &instances {
        assert_eq!(
            me(&http, instance, &token).await,
            StatusCode::UNAUTHORIZED,
            "{instance}"
        );
        assert_eq!(
            me(&http, instance, &second).await,
            StatusCode::OK,
            "{instance}"
        );
    }
    json!({"email": email, "count": count})
}

/// Requests each instance has answered on `/api/` routes, from its metrics.
async fn api_requests(instance: &str) -> u64 {
    let text = reqwest::get(format!("{instance}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains("route=\"/api/"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_behind_nginx_answer_as_one() {
    let database = common::fresh_postgres_database().await;
    let redis = common::redis_settings().await;
    // All three start at once on the empty database: the migrations run once.
    let instances: Vec<Instance> = (0..3).map(|_| Instance::spawn(&database, &redis)).collect();
    for instance in &instances {
        wait_until_up(&instance.base).await;
    }
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();
    let upstreams: Vec<&str> = bases
        .iter()
        .map(|b| b.trim_start_matches("http://"))
        .collect();
    let nginx = Nginx::start(&upstreams).await;

    let users: Vec<_> = (0..6)
        .map(|n| tokio::spawn(one_user(nginx.base.clone(), bases.clone(), n)))
        .collect();
    let mut seen = HashMap::new();
    for user in users {
        let result = user.await.expect("a user's workload");
        seen.insert(result["email"].to_string(), result["count"].clone());
    }
    assert_eq!(seen.len(), 6);

    // The login limit is one for the whole deployment: five failures spread
    // over the instances lock the email out on each of them.
    let http = reqwest::Client::new();
    let email = common::unique_email();
    let right = json!({"email": email, "password": "the right password"});
    let wrong = json!({"email": email, "password": "a wrong password"});
    let (status, _) = post(
        &http,
        format!("{}/api/auth/register", nginx.base),
        None,
        Some(right.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for attempt in 0..5 {
        let (status, body) = login(&http, &bases[attempt % 3], &wrong).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {body}"
        );
    }
    for base in bases.iter().chain([&nginx.base]) {
        let (status, body) = login(&http, base, &right).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{base}: {body}");
    }

    // Round robin spread the work: every instance answered a share of it.
    for base in &bases {
        let served = api_requests(base).await;
        assert!(served >= 50, "{base} answered only {served} API requests");
    }
}
