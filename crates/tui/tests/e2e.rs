//! The real `finance` binary against a real `finance-server`: the dashboard
//! in a pseudo-terminal, and the subcommands as a script would run them.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use finance_server::AppState;
use finance_server::config::{Secret, Settings};
use finance_server::store::PoolSettings;
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use serde_json::Value;

const FINANCE: &str = env!("CARGO_BIN_EXE_finance");

/// A server on 127.0.0.1:0 over a temporary SQLite file; stops when dropped.
struct Server {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_server(dir: &Path) -> Server {
    let settings = Settings {
        database_url: format!("sqlite:{}", dir.join("finance.db").display()),
        database_read_url: None,
        redis: None,
        cache_ttl: Duration::from_secs(60),
        jwt_secret: Secret::new("e2e-secret-e2e-secret-e2e-secret-e2e-secret"),
        token_ttl: Duration::from_secs(3600),
        pool: PoolSettings::default(),
        password_concurrency: 2,
        login_limits: Default::default(),
        trusted_proxies: Vec::new(),
        limits: Default::default(),
        job_visibility: Duration::from_secs(30),
    };
    let state = AppState::from_settings(&settings)
        .await
        .expect("server state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = finance_server::jobs::InProcessWorker::spawn(state.clone());
    tokio::spawn(async move {
        let _ = finance_server::serve(state, listener, async {
            let _ = stopped.await;
        })
        .await;
        drop(worker);
    });
    Server { url, _stop: stop }
}

/// `finance` in a 100x30 pseudo-terminal, its screen kept by a terminal emulator.
struct Tui {
    screen: Arc<Mutex<vt100::Parser>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

impl Tui {
    fn spawn(server: &str, config_dir: &Path) -> Tui {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 30,
                cols: 100,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pty");
        let mut cmd = CommandBuilder::new(FINANCE);
        cmd.env("FINANCE_SERVER", server);
        cmd.env("FINANCE_CONFIG_DIR", config_dir);
        cmd.env("TERM", "xterm-256color");
        let child = pty.slave.spawn_command(cmd).expect("spawn finance");
        drop(pty.slave);
        let rows = std::num::NonZeroU16::new(30).expect("non-zero");
        let cols = std::num::NonZeroU16::new(100).expect("non-zero");
        let screen = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let mut reader = pty.master.try_clone_reader().expect("pty reader");
        let feed = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                feed.lock().expect("screen lock").process(&buf[..n]);
            }
        });
        let writer = pty.master.take_writer().expect("pty writer");
        // The master must outlive the child; leaking it is fine in a test.
        std::mem::forget(pty.master);
        Tui {
            screen,
            writer,
            child,
        }
    }

    fn contents(&self) -> String {
        self.screen.lock().expect("screen lock").screen().contents()
    }

    fn keys(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).expect("type");
        self.writer.flush().expect("flush");
    }

    /// Types text one key at a time, as a person would.
    async fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            self.keys(&c.to_string());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.contents();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "`{text}` never appeared; the screen:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_register_add_import_quit() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = start_server(dir.path()).await;
    let config = dir.path().join("config");
    let mut tui = Tui::spawn(&server.url, &config);

    tui.wait_for("log in").await;
    tui.keys("\x12"); // Ctrl-R: register instead
    tui.wait_for("create an account").await;
    tui.type_text("dana@example.com").await;
    tui.keys("\t");
    tui.type_text("a long password").await;
    tui.keys("\r");
    tui.wait_for("No expenses yet").await;
    assert!(
        config.join("session.json").exists(),
        "the session is stored"
    );

    tui.keys("a");
    tui.wait_for("Add an expense").await;
    tui.type_text("Groceries").await;
    tui.keys("\t");
    tui.type_text("42.10").await;
    tui.keys("\t");
    tui.type_text("Weekly shop").await;
    tui.keys("\r");
    tui.wait_for("Added Groceries 42.10").await;
    let screen = tui.wait_for("total 42.10 · 1 expenses").await;
    assert!(
        screen
            .lines()
            .any(|l| l.contains("Weekly shop") && l.contains("42.10")),
        "in the table: {screen}"
    );
    let chart_line = screen
        .lines()
        .find(|l| l.contains("Groceries") && l.contains('█'));
    assert!(
        chart_line.is_some_and(|l| l.contains("42.10")),
        "the chart shows the category: {screen}"
    );

    tui.keys("i");
    tui.wait_for("Import from").await;
    tui.keys("m");
    let screen = tui.wait_for("Imported 20, skipped 0").await;
    let screen = if screen.contains("21 expenses") {
        screen
    } else {
        tui.wait_for("21 expenses").await
    };
    assert!(screen.contains("Weekly shop"));

    // Find the expense, fix its amount, then delete another one.
    tui.keys("/");
    tui.type_text("weekly").await;
    tui.wait_for("Recent expenses (1)").await;
    tui.keys("\r");
    tui.keys("e");
    tui.wait_for("Edit the expense").await;
    tui.keys("\x7f\x7f\x7f\x7f\x7f");
    tui.type_text("40.00").await;
    tui.keys("\r");
    tui.wait_for("Changed Groceries 40.00").await;
    tui.keys("\x1b");
    tui.wait_for("Recent expenses (21)").await;
    tui.keys("G");
    tui.keys("d");
    tui.wait_for("Delete this expense?").await;
    tui.keys("y");
    tui.wait_for("20 expenses").await;

    // A bank file is imported in the background; the status line follows it.
    let statement = dir.path().join("statement.csv");
    std::fs::write(
        &statement,
        "date,amount,description\n2026-11-02,-3.50,Bakery\n2026-11-03,-12.00,Cinema\nbad,-1.00,Nope\n",
    )
    .expect("write the statement");
    tui.keys("i");
    tui.wait_for("Import from").await;
    tui.keys("c");
    tui.wait_for("Import a CSV file").await;
    tui.type_text(&statement.display().to_string()).await;
    tui.keys("\r");
    tui.wait_for("Read 2: imported 2, skipped 0").await;
    tui.wait_for("22 expenses").await;
    tui.keys("i");
    tui.wait_for("Import from").await;
    tui.keys("c");
    tui.type_text(&statement.display().to_string()).await;
    tui.keys("\r");
    tui.wait_for("Read 2: imported 0, skipped 2").await;
    let screen = tui.wait_for("1 bad lines (line 4").await;
    assert!(screen.contains("22 expenses"), "{screen}");
    tui.keys("\t");
    tui.wait_for("month by month").await;
    tui.keys("\t");
    tui.wait_for("Spending by category").await;

    tui.keys("?");
    tui.wait_for("log out (forget the stored session)").await;
    tui.keys("x");
    tui.keys("q");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = tui.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "finance did not quit on q");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !tui.screen.lock().expect("lock").screen().alternate_screen(),
        "the terminal is restored"
    );

    // A second start goes straight to the dashboard with the stored session.
    let mut again = Tui::spawn(&server.url, &config);
    again.wait_for("dana@example.com").await;
    again.wait_for("22 expenses").await;
    let session: Value = serde_json::from_str(
        &std::fs::read_to_string(config.join("session.json")).expect("session"),
    )
    .expect("session JSON");
    let token = session["token"].as_str().expect("token").to_owned();
    again.keys("L");
    again.wait_for("log in").await;
    assert!(
        !config.join("session.json").exists(),
        "L forgets the session"
    );
    let mut revoked = false;
    for _ in 0..50 {
        let me = reqwest::Client::new()
            .get(format!("{}/api/auth/me", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        if me.status() == 401 {
            revoked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(revoked, "L revokes the token on the server");
    again.keys("\x1b");
}

/// Runs `finance ARGS` as a script would; returns (exit code, stdout, stderr).
fn finance(server: &str, config: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = std::process::Command::new(FINANCE)
        .args(args)
        .env("FINANCE_SERVER", server)
        .env("FINANCE_CONFIG_DIR", config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run finance");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("finance finished");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `finance` for one account: a server and a config directory.
#[derive(Clone)]
struct Script {
    url: String,
    config: std::path::PathBuf,
}

impl Script {
    /// Runs `finance ARGS` off the async workers.
    fn run(&self, args: &[&str], stdin: &str) -> tokio::task::JoinHandle<(i32, String, String)> {
        let (me, args, stdin) = (
            self.clone(),
            args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            stdin.to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            finance(&me.url, &me.config, &args, &stdin)
        })
    }
}

fn json(s: &str) -> Value {
    serde_json::from_str::<Value>(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subcommands_for_scripts() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = start_server(dir.path()).await;
    let script = Script {
        url: server.url.clone(),
        config: dir.path().join("config"),
    };
    let run = |args: &[&str], stdin: &str| script.run(args, stdin);

    let (code, out, err) = run(
        &["register", "--email", "eve@example.com", "--password-stdin"],
        "password one\n",
    )
    .await
    .expect("run");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("eve@example.com"));

    let (code, out, _) = run(&["whoami", "--json"], "").await.expect("run");
    assert_eq!(
        (code, json(&out)["email"].clone()),
        (0, Value::from("eve@example.com"))
    );

    let (code, out, err) = run(
        &[
            "add",
            "Groceries",
            "42.10",
            "--description",
            "Weekly shop",
            "--date",
            "2026-11-20",
            "--json",
        ],
        "",
    )
    .await
    .expect("run");
    assert_eq!(code, 0, "{err}");
    let added = json(&out);
    assert_eq!(
        (added["amount"].as_str(), added["spent_on"].as_str()),
        (Some("42.10"), Some("2026-11-20"))
    );
    run(&["add", "groceries", "0.1"], "").await.expect("run");
    run(&["add", "Coffee", "3.5"], "").await.expect("run");

    let (code, out, _) = run(&["summary", "--json"], "").await.expect("run");
    assert_eq!(code, 0);
    let summary = json(&out);
    assert_eq!(summary["total"], "45.70");
    assert_eq!(
        summary["categories"][0],
        serde_json::json!({"category": "Groceries", "total": "42.20", "count": 2})
    );

    let (_, out, _) = run(&["summary"], "").await.expect("run");
    assert!(
        out.lines()
            .any(|l| l.starts_with("Groceries") && l.trim_end().ends_with("42.20")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("TOTAL") && l.trim_end().ends_with("45.70")),
        "{out}"
    );

    let (_, out, _) = run(&["list", "--limit", "2", "--json"], "")
        .await
        .expect("run");
    let page = json(&out);
    assert_eq!(page["expenses"].as_array().map(Vec::len), Some(2));
    assert!(page["next_cursor"].is_string());
    let (_, out, _) = run(&["list", "--category", "groceries"], "")
        .await
        .expect("run");
    assert_eq!(out.lines().count(), 3, "header and two rows: {out}");

    let (code, out, _) = run(
        &["import", "mock", "--count", "7", "--seed", "5", "--json"],
        "",
    )
    .await
    .expect("run");
    assert_eq!((code, json(&out)["imported"].clone()), (0, Value::from(7)));
    let (_, out, _) = run(&["import", "mock", "--count", "7", "--seed", "5"], "")
        .await
        .expect("run");
    assert_eq!(out.trim(), "Imported 0, skipped 7");

    let (code, _, err) = run(&["add", "Food", "1.234"], "").await.expect("run");
    assert_eq!(code, 2, "a bad amount is a usage error: {err}");
    let (code, _, _) = run(&["list", "--limit", "0"], "").await.expect("run");
    assert_eq!(code, 2);

    let (code, _, err) = run(&["summary", "--server", "http://127.0.0.1:9"], "")
        .await
        .expect("run");
    assert_eq!(code, 3, "unreachable server: {err}");
    assert!(err.contains("cannot reach"));

    let token = {
        let session: Value = json(
            &std::fs::read_to_string(dir.path().join("config/session.json")).expect("session"),
        );
        session["token"].as_str().expect("token").to_owned()
    };
    let (code, _, _) = run(&["logout"], "").await.expect("run");
    assert_eq!(code, 0);
    let me = reqwest::Client::new()
        .get(format!("{}/api/auth/me", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(me.status(), 401, "logout revoked the token on the server");
    let (code, _, err) = run(&["summary"], "").await.expect("run");
    assert_eq!(code, 1, "logged out: {err}");
    let (code, _, err) = run(
        &["login", "--email", "eve@example.com", "--password-stdin"],
        "wrong password\n",
    )
    .await
    .expect("run");
    assert_eq!(code, 1, "refused: {err}");
    let (code, _, _) = run(
        &["login", "--email", "EVE@example.com", "--password-stdin"],
        "password one\n",
    )
    .await
    .expect("run");
    assert_eq!(code, 0);
    let (_, out, _) = run(&["summary", "--json"], "").await.expect("run");
    assert_eq!(json(&out)["count"], 10);

    std::fs::write(dir.path().join("config/session.json"), "{corrupt")
        .expect("corrupt the session");
    let (code, _, err) = run(&["summary"], "").await.expect("run");
    assert_eq!(code, 1);
    assert!(
        err.contains("unreadable"),
        "a corrupt session is reported: {err}"
    );
}

fn fixture(name: &str) -> String {
    let dir = std::env::var_os("FINANCE_FIXTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/bank-files"),
        std::path::PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.exists(),
        "fixture {} is missing; set FINANCE_FIXTURES to the bank-files directory",
        path.display()
    );
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subcommands_edit_import_export_and_look_back() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = start_server(dir.path()).await;
    let ann = Script {
        url: server.url.clone(),
        config: dir.path().join("ann"),
    };
    let bob = Script {
        url: server.url.clone(),
        config: dir.path().join("bob"),
    };
    for (who, email) in [(&ann, "ann@example.com"), (&bob, "bob@example.com")] {
        let (code, _, err) = who
            .run(
                &["register", "--email", email, "--password-stdin"],
                "password one\n",
            )
            .await
            .expect("run");
        assert_eq!(code, 0, "{err}");
    }
    for (category, amount, date) in [
        ("Coffee", "3.80", "2026-11-02"),
        ("Coffee", "2.20", "2026-10-02"),
    ] {
        let (code, _, err) = ann
            .run(
                &[
                    "add",
                    category,
                    amount,
                    "--date",
                    date,
                    "--description",
                    "Flat white",
                ],
                "",
            )
            .await
            .expect("run");
        assert_eq!(code, 0, "{err}");
    }
    let (_, out, _) = ann.run(&["list", "--json"], "").await.expect("run");
    let ids: Vec<String> = json(&out)["expenses"]
        .as_array()
        .expect("expenses")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();

    let (code, out, err) = ann
        .run(
            &[
                "edit",
                &ids[0],
                "--amount",
                "5",
                "--category",
                "Food",
                "--no-description",
                "--json",
            ],
            "",
        )
        .await
        .expect("run");
    assert_eq!(code, 0, "{err}");
    let edited = json(&out);
    assert_eq!(
        (
            edited["amount"].as_str(),
            edited["category"].as_str(),
            edited["description"].is_null()
        ),
        (Some("5.00"), Some("Food"), true)
    );
    let (code, _, _) = ann.run(&["edit", &ids[0]], "").await.expect("run");
    assert_eq!(code, 2, "nothing to change is a usage error");
    let (code, _, _) = ann.run(&["rm", &ids[1]], "").await.expect("run");
    assert_eq!(code, 0);
    let (code, _, err) = ann.run(&["rm", &ids[1]], "").await.expect("run");
    assert_eq!(code, 1, "already gone: {err}");
    let (_, out, _) = ann.run(&["summary", "--json"], "").await.expect("run");
    assert_eq!(json(&out)["total"], "5.00");

    let ofx = fixture("sgml102_checking_crlf_106txns.ofx");
    let (code, out, err) = ann
        .run(&["import", "ofx", &ofx, "--dry-run", "--json"], "")
        .await
        .expect("run");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            json(&out)["imported"].clone(),
            json(&out)["dry_run"].clone()
        ),
        (Value::from(100), Value::from(true))
    );
    let (_, out, _) = ann
        .run(&["import", "ofx", &ofx, "--category", "Checking"], "")
        .await
        .expect("run");
    assert!(
        out.starts_with("Read 106 transactions. Imported 100"),
        "{out}"
    );
    let (_, out, _) = ann.run(&["import", "ofx", &ofx], "").await.expect("run");
    assert!(
        out.contains("Imported 0") && out.contains("skipped 100"),
        "{out}"
    );

    let chase = fixture("csv_chase_style_signed_amount.csv");
    let mapping = [
        "--map",
        "date=Posting Date",
        "--map",
        "date_format=%m/%d/%Y",
        "--map",
        "amount=Amount",
        "--map",
        "description=Description",
    ];
    let mut args = vec!["import", "csv", chase.as_str(), "--json"];
    args.extend(mapping);
    let (code, out, err) = ann.run(&args, "").await.expect("run");
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["imported"], 4);
    let (code, _, err) = ann
        .run(&["import", "csv", &chase, "--map", "colour=blue"], "")
        .await
        .expect("run");
    assert_eq!(code, 2, "unknown mapping key: {err}");
    let (code, _, err) = ann.run(&["import", "csv", &chase], "").await.expect("run");
    assert_eq!(code, 1, "no mapping for a bank's own layout: {err}");
    assert!(err.contains("mapping"), "{err}");

    let (_, out, _) = ann
        .run(&["list", "-q", "pg&e", "--json"], "")
        .await
        .expect("run");
    assert!(
        !json(&out)["expenses"]
            .as_array()
            .expect("expenses")
            .is_empty()
    );
    let (code, out, _) = ann
        .run(&["categories", "rename", "checking", "Bank"], "")
        .await
        .expect("run");
    assert_eq!((code, out.trim()), (0, "Moved 100 expenses to Bank"));
    let (_, out, _) = ann.run(&["categories", "--json"], "").await.expect("run");
    assert_eq!(json(&out)["categories"][0]["category"], "Bank");
    let (_, out, _) = ann
        .run(
            &["trend", "--months", "2", "--end", "2026-11-30", "--json"],
            "",
        )
        .await
        .expect("run");
    let trend = json(&out);
    assert_eq!(
        (
            trend["months"][0]["month"].as_str(),
            trend["months"][1]["total"].as_str()
        ),
        (Some("2026-10"), Some("5.00"))
    );

    // finance export | finance import csv -: everything, once, in another account.
    let (code, exported, err) = ann.run(&["export"], "").await.expect("run");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        exported.lines().count(),
        1 + 105,
        "header and every expense"
    );
    let (code, out, err) = bob
        .run(&["import", "csv", "-", "--json"], &exported)
        .await
        .expect("run");
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["imported"], 105);
    // The same in the background: queued, followed, reported; or queued only.
    let carol = Script {
        url: server.url.clone(),
        config: dir.path().join("carol"),
    };
    let (code, _, err) = carol
        .run(
            &[
                "register",
                "--email",
                "carol@example.com",
                "--password-stdin",
            ],
            "password one\n",
        )
        .await
        .expect("run");
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = carol
        .run(&["import", "csv", "-", "--background"], &exported)
        .await
        .expect("run");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("Read 105 transactions. Imported 105, skipped 0"),
        "{out}"
    );
    let (code, out, err) = carol
        .run(
            &["import", "csv", "-", "--background", "--no-wait", "--json"],
            &exported,
        )
        .await
        .expect("run");
    assert_eq!(code, 0, "{err}");
    let queued = json(&out);
    assert_eq!(queued["status"], "queued", "{out}");
    assert_eq!(queued["total"], 105);
    let (code, _, err) = carol
        .run(
            &["import", "csv", "-", "--background", "--dry-run"],
            &exported,
        )
        .await
        .expect("run");
    assert_eq!(code, 2, "--background with --dry-run is refused: {err}");
    let (_, again, _) = bob
        .run(&["import", "csv", "-"], &exported)
        .await
        .expect("run");
    assert!(
        again.contains("Imported 0") && again.contains("skipped 105"),
        "{again}"
    );
    let (_, ann_summary, _) = ann.run(&["summary", "--json"], "").await.expect("run");
    let (_, bob_summary, _) = bob.run(&["summary", "--json"], "").await.expect("run");
    assert_eq!(json(&ann_summary)["total"], json(&bob_summary)["total"]);
    let (code, out, _) = ann
        .run(&["export", "--format", "json"], "")
        .await
        .expect("run");
    assert_eq!((code, json(&out).as_array().map(Vec::len)), (0, Some(105)));
}
